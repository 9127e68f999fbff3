"""A target from the `--dut` string: its resources, drivers and capabilities, and the
`Dut` object tests get.

    inprocess:PROFILE[/wrapper]      the core in this process (HDLC unless /wrapper);
                                     PROFILE is a shipped name or a path to a .toml
    micropython:PROFILE              the core in the `micropython` binary, on a pty,
                                     reached through pyserial; with the lab's ESME
                                     profile its ESME also stands in for the GBCS lab's
                                     (GBCS through the pipe, heap 2M)
    serial:/dev/ttyACM0[@baud]       a board on a serial port (HDLC)
    tcp:HOST:PORT[/wrapper|/hdlc]    a networked device (wrapper unless /hdlc)

Emulated DUTs (inprocess, micropython) start with `HISTORY` simulated seconds of
metering behind them, as a meter in service has, and run at wall speed from there.
"""

import asyncio
import re
import shutil
import tempfile
import threading
import time

from emulator import profiles
from emulator.client import DlmsClientError
from emulator.transport.clock import SimulatedTime
from hil.drivers import (LINK_DRIVERS, DlmsDriver, ExpectTimeout, Frame, GbcsDriver,
                         match_bytes)
from hil.resources import (InProcessPort, PowerSwitch, SerialPort, TcpEndpoint,
                           command_power_switch)

HISTORY = 2 * 86400 + 600          # as the lab: two days and ten minutes of metering
DEFAULT_PROFILE = "esme-single-phase"
LAB_PROFILE = "esme-single-phase"  # the ESME the GBCS lab builds (emulator/lab.py)
KINDS = ("inprocess", "micropython", "serial", "tcp")


class TargetError(Exception):
    """A --dut string that cannot be understood, or a target that would not start."""


def load_profile(name):
    path = profiles.profile_path(name)
    if not path.is_file():
        raise TargetError("no profile %s (shipped: %s)" % (name, ", ".join(profiles.profile_names())))
    return profiles.load_profile(path)


def parse_dut(text):
    """`--dut` text -> dict(kind, profile?, url?, baudrate?, host?, port?, framing)."""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in KINDS or not rest:
        raise TargetError("--dut %r: expected one of inprocess:PROFILE, micropython:PROFILE, "
                          "serial:DEVICE[@baud], tcp:HOST:PORT[/wrapper|/hdlc]" % text)
    if kind in ("inprocess", "micropython"):
        profile, _, framing = rest.partition("/")
        if ".toml" in rest:          # a profile by path: tests/fuzz/profiles/x.toml[/wrapper]
            profile, _, framing = rest.partition(".toml")
            profile += ".toml"
            framing = framing[1:] if framing.startswith("/") else framing
        framing = framing or "hdlc"
        if kind == "micropython" and framing != "hdlc":
            raise TargetError("--dut %r: the micropython DUT serves HDLC on its pty" % text)
        if framing not in LINK_DRIVERS:
            raise TargetError("--dut %r: framing %r is not hdlc or wrapper" % (text, framing))
        return {"kind": kind, "profile": profile, "framing": framing}
    if kind == "serial":
        match = re.fullmatch(r"(.+?)(?:@(\d+))?", rest)
        return {"kind": kind, "url": match.group(1),
                "baudrate": int(match.group(2) or 9600), "framing": "hdlc"}
    match = re.fullmatch(r"\[?([^\]/]+?)\]?:(\d+)(?:/(wrapper|hdlc))?", rest)
    if not match or int(match.group(2)) > 65535:
        raise TargetError("--dut %r: expected tcp:HOST:PORT[/wrapper|/hdlc]" % text)
    return {"kind": kind, "host": match.group(1), "port": int(match.group(2)),
            "framing": match.group(3) or "wrapper"}


def dut_label(text):
    """A file-system-safe name for the DUT (the log folder, the report column)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


class Target:
    """Resources + drivers + capabilities of one DUT, built from the `--dut` string."""

    def __init__(self, text, profile=None, seed=0, power_command=None, micropython="micropython",
                 power_on=None, power_off=None):
        self.text = text
        self.spec = parse_dut(text)
        self.name = dut_label(text)
        self.seed = seed
        self.micropython = micropython
        self.profile_name = self.spec.get("profile") or profile or DEFAULT_PROFILE
        self.profile = load_profile(self.profile_name)
        self.framing = self.spec["framing"]
        self.capabilities = {"dlms", self.framing, self.profile["device"]["kind"]}
        self.resources = {}
        self.link = None
        self.dlms = None
        self.gbcs = None
        self.power = board_power(power_command, power_on, power_off)
        self._core = None
        self._served = None
        self._state_dir = None
        self._clock = None

    # -- life cycle ------------------------------------------------------------------------
    def start(self):
        kind = self.spec["kind"]
        if kind == "inprocess":
            port = self._start_inprocess()
        elif kind == "micropython":
            port = self._start_micropython()
        elif kind == "serial":
            port = SerialPort(self.spec["url"], self.spec["baudrate"])
        else:
            port = TcpEndpoint(self.spec["host"], self.spec["port"])
        self.resources["port"] = port
        if self.power is not None:
            self.resources["power"] = self.power
            self.capabilities.add("power_cycle")
        self.link = LINK_DRIVERS[self.framing](port, self.profile)
        self.dlms = DlmsDriver(self.link, self.profile)
        self.link.open_stream()       # a port that is not there fails here, not mid-test
        return self

    def _start_inprocess(self):
        from firmware.board.meter import MeterCore
        self._state_dir = tempfile.mkdtemp(prefix="smets-hil-")
        start = self.profile["clock"]["start"]
        self._core = MeterCore(self.profile, start, seed=self.seed, state_dir=self._state_dir)
        self._core.advance(start + HISTORY)
        self._clock = SimulatedTime(start + HISTORY, 1)
        port = InProcessPort(self._core, self._clock, self.framing)
        self.power = PowerSwitch(self._restart_inprocess, "hard kill and restart of the core")
        self.capabilities.update({"emulated", "inprocess"})
        if self.profile_name == LAB_PROFILE:
            self.capabilities.add("gbcs")
        return port

    def _restart_inprocess(self):
        """A power cut: the core is dropped without its final save, and a new one starts
        from what it had saved (MeterCore saves before each acknowledged change)."""
        from firmware.board.meter import MeterCore
        self.link.close()
        self._core = MeterCore(self.profile, self._clock(), seed=self.seed,
                               state_dir=self._state_dir)
        self.resources["port"].core = self._core

    def _start_micropython(self):
        if shutil.which(self.micropython) is None:
            raise TargetError("the MicroPython binary %r is not on PATH" % self.micropython)
        self._state_dir = tempfile.mkdtemp(prefix="smets-hil-mp-")
        credentials = None
        if self.profile_name == LAB_PROFILE:
            # the core stands in for the lab's ESME: its keys and anchors, its GBCS port
            self.gbcs = GbcsDriver(seed=self.seed)
            credentials = self.gbcs.device_credentials("ESME")
        self._served = ServedPty(self.profile, seed=self.seed, binary=self.micropython,
                                 state_dir=self._state_dir, gbcs_credentials=credentials)
        path = self._served.start()
        self.power = PowerSwitch(self._served.power_cycle,
                                 "SIGKILL and restart of the micropython core")
        self.capabilities.update({"emulated", "micropython"})
        if credentials is not None:
            self.gbcs.attach_device("ESME", self._served.receive_gbcs)
            self.capabilities.add("gbcs")
        return SerialPort(path)

    def gbcs_driver(self):
        if "gbcs" not in self.capabilities:
            return None
        if self.gbcs is None:
            self.gbcs = GbcsDriver(seed=self.seed)
        return self.gbcs

    def stop(self):
        if self.dlms is not None:
            self.dlms.close()
        if self.gbcs is not None:
            self.gbcs.close()
            self.gbcs = None
        if self._served is not None:
            self._served.stop()
            self._served = None
        if self._core is not None:
            self._core.shutdown()
            self._core = None
        if self._state_dir:
            shutil.rmtree(self._state_dir, ignore_errors=True)

    def device_gbcs(self):
        """The DUT's own GBCS port (message -> [messages]) when its ESME takes GBCS (the
        micropython core standing in for the lab's ESME), else None."""
        if self._served is not None and self._served.gbcs_credentials is not None:
            return self._served.receive_gbcs
        return None

    def alive(self):
        """False when the DUT's process is known to have died (the micropython core);
        None when that cannot be told from here (a board, a networked device)."""
        if self._served is not None:
            return self._served.alive()
        return None

    def describe(self):
        port = self.resources.get("port")
        return "%s (%s, %s, profile %s; capabilities: %s)" % (
            self.text, port.describe() if port else "not started", self.framing,
            self.profile_name, ", ".join(sorted(self.capabilities)))


def board_power(cycle=None, on=None, off=None):
    """The power switch of a serial/tcp DUT from the command line: on and off commands
    go to `hil.power.CommandPowerSwitch` (the bench's power resource); a cycle command
    alone is run as it is. None when nothing is configured."""
    if on or off:
        if not (on and off):
            raise TargetError("--hil-power-on and --hil-power-off go together")
        from hil.power import CommandPowerSwitch
        switch = CommandPowerSwitch(on, off, cycle)
        return PowerSwitch(switch.cycle, "power on %r, off %r" % (on, off))
    return command_power_switch(cycle) if cycle else None


class ServedPty:
    """The core in the `micropython` binary, served with HDLC on a pty by the emulator's
    own transport (emulator/transport/pty.py), on an event loop in a thread."""

    def __init__(self, profile, seed=0, binary="micropython", startup_timeout=60.0,
                 state_dir=None, gbcs_credentials=None, command_timeout=30.0):
        self.profile = profile
        self.gbcs_credentials = gbcs_credentials
        self.command_timeout = command_timeout
        self.seed = seed
        self.state_dir = state_dir
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.loop = None
        self._thread = None
        self._runtime = self._server = self._clock_task = self._device = None

    def start(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        try:
            return self._call(self._start(), self.startup_timeout + 10)
        except BaseException:
            self.stop()
            raise

    def _call(self, coroutine, timeout):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _start(self):
        from emulator.transport.device import ServedDevice
        from emulator.transport.pty import PtyServer
        start = self.profile["clock"]["start"]
        self._runtime = self._new_runtime(start)
        await self._runtime.start()
        now = await self._runtime.advance(start + HISTORY)
        self._device = ServedDevice(self._runtime, SimulatedTime(now, 1))
        self._server = await PtyServer(self._device).start()
        self._clock_task = asyncio.ensure_future(self._device.run_clock(1.0))
        return self._server.path

    def _new_runtime(self, now):
        from emulator.runtime import MicroPythonRuntime
        return MicroPythonRuntime(self.profile, now, seed=self.seed, binary=self.binary,
                                  startup_timeout=self.startup_timeout,
                                  state_dir=self.state_dir,
                                  gbcs_credentials=self.gbcs_credentials,
                                  command_timeout=self.command_timeout)

    def alive(self):
        """Whether the micropython process is running (a hung one is alive)."""
        proc = getattr(self._runtime, "_proc", None)
        return proc is not None and proc.returncode is None

    def receive_gbcs(self, message):
        """One GBCS message to the core's ESME (its GBCS pipe channel): what it sends back.
        Called from another thread (the GBCS driver's loop): the core's loop runs it."""
        return self._call(self._receive_gbcs(bytes(message)), self.command_timeout + 10)

    async def _receive_gbcs(self, message):
        # the device clock first, as the pty's traffic does (ServedDevice), so the ESME
        # stamps and acts at the time the DUT shows
        await self._runtime.advance(self._device.time_source())
        return await self._runtime.receive_gbcs(message)

    def power_cycle(self):
        """SIGKILL the core (no final save: a power cut), start a new one on the saved
        state, and hand it the pty's connection; the pty itself stays."""
        self._call(self._power_cycle(), self.startup_timeout + 30)

    async def _power_cycle(self):
        import os
        import signal
        old = self._runtime
        if old.pid is not None:
            try:
                os.kill(old.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass           # it died on its own (a crash): restarting is all there is
        await old.stop()                       # finds it dead, reaps it, cleans up
        self._runtime = self._new_runtime(self._device.time_source())
        await self._runtime.start()
        self._device.runtime = self._runtime
        await self._runtime.open(self._server._conn_id, self._server.framing)

    async def _stop(self):
        if self._clock_task is not None:
            self._clock_task.cancel()
            await asyncio.gather(self._clock_task, return_exceptions=True)
        if self._server is not None:
            await self._server.close()
        if self._runtime is not None:
            await self._runtime.stop()

    def stop(self):
        if self.loop is None:
            return
        try:
            self._call(self._stop(), 30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
            self.loop = None


class Dut:
    """What a test holds: requests and expectations on decoded frames, raw bytes, and the
    drivers underneath (`dut.dlms`, `dut.gbcs`, `dut.target`)."""

    def __init__(self, target, log=None, timeout=5.0):
        self.target = target
        self.timeout = timeout
        self.received = []          # every APDU from the DUT, as a Frame
        self._cursor = 0
        self.log = None
        self.set_log(log)

    @property
    def name(self):
        return self.target.name

    @property
    def capabilities(self):
        return set(self.target.capabilities)

    @property
    def profile(self):
        return self.target.profile

    @property
    def dlms(self):
        return self.target.dlms

    @property
    def gbcs(self):
        driver = self.target.gbcs_driver()
        if driver is not None:
            driver.log = self.log
        return driver

    def set_log(self, log):
        self.log = log
        self.target.link.set_log(log)
        if self.target.gbcs is not None:
            self.target.gbcs.log = log

    # -- DLMS ------------------------------------------------------------------------------
    def associate(self, client="public", password=None):
        return self.dlms.associate(client, password)

    def release(self):
        self.dlms.release()

    def _associated(self):
        if (self.dlms.client is None or not self.dlms.client.conformance
                or self.target.link.connection is None):
            self.dlms.associate("public")

    def get(self, obis, attribute, class_id=None, selector=None, parameters=None):
        self._associated()
        return self.dlms.get(obis, attribute, class_id, selector, parameters)

    def set(self, obis, attribute, value, class_id=None):
        self._associated()
        return self.dlms.set(obis, attribute, value, class_id)

    def action(self, obis, method, parameters=None, class_id=None):
        self._associated()
        return self.dlms.action(obis, method, parameters, class_id)

    def read_profile(self, obis, **selection):
        self._associated()
        return self.dlms.read_profile(obis, **selection)

    def request(self, apdu):
        """Sends one APDU (bytes) on the open association; the answer as a Frame."""
        if self.target.link.connection is None:
            self._associated()
        answer = self.dlms.request(apdu)
        if answer is None:
            return None
        frame = Frame(answer)
        self.received.append(frame)
        return frame

    def expect(self, predicate, timeout=None):
        """The first APDU from the DUT since the last match for which `predicate(frame)`
        is true; waits up to `timeout` seconds for unsolicited ones."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            while self._cursor < len(self.received):
                frame = self.received[self._cursor]
                self._cursor += 1
                if predicate(frame):
                    return frame
            left = deadline - time.monotonic()
            if left <= 0 or self.target.link.connection is None:
                raise ExpectTimeout("no matching frame within %.1f s; saw %s" % (
                    timeout, [f.apdu for f in self.received[-10:]] or "nothing"))
            for apdu in self.dlms.receive(min(left, 0.5)):
                self.received.append(Frame(apdu))

    # -- raw bytes -------------------------------------------------------------------------
    def write(self, data):
        """Bytes straight onto the transport (no link state: close associations first
        when mixing the two)."""
        self.target.link.open_stream().write(bytes(data))

    def read_bytes(self, timeout):
        """Whatever the DUT sends within `timeout` seconds (b"" for silence)."""
        stream = self.target.link.open_stream()
        out = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            data = stream.read(4096, max(left, 0) if left > 0 else 0.05)
            if data:
                out += data
                continue
            if left <= 0 or not isinstance(self.target.resources["port"], (SerialPort, TcpEndpoint)):
                return bytes(out)

    def expect_bytes(self, pattern, timeout=None):
        """Reads until `pattern` (bytes, or a regex over the hex) is in what arrived."""
        timeout = self.timeout if timeout is None else timeout
        stream = self.target.link.open_stream()
        seen = bytearray()
        deadline = time.monotonic() + timeout
        while not match_bytes(pattern, bytes(seen)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ExpectTimeout("%r not seen within %.1f s; got %s" % (
                    pattern, timeout, bytes(seen).hex() or "nothing"))
            seen += stream.read(4096, left)
            if not seen and isinstance(self.target.resources["port"], InProcessPort):
                break
        if not match_bytes(pattern, bytes(seen)):
            raise ExpectTimeout("%r not answered by the in-process core; got nothing" % (pattern,))
        return bytes(seen)

    # -- GBCS and power --------------------------------------------------------------------
    def service_request(self, srv, target="ESME", body=None, supplier="A", log_period=None):
        driver = self.gbcs
        if driver is None:
            raise TargetError("%s has no GBCS capability" % self.name)
        return driver.service_request(srv, target, body, supplier, log_period)

    def power_cycle(self):
        power = self.target.power
        if power is None or "power_cycle" not in self.target.capabilities:
            raise TargetError("%s has no power switch" % self.name)
        self.target.link.close()
        self.target.dlms.client = None       # the association died with the power
        power.cycle()


__all__ = ["Target", "Dut", "ServedPty", "TargetError", "parse_dut", "dut_label", "HISTORY",
           "DlmsClientError"]
