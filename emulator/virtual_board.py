"""A virtual MicroPython board: the unix `micropython` binary with its REPL on a pty.

    board = VirtualBoard(directory).start()
    board.repl_port      # what a board's USB serial is: `mpremote connect <it> resume ...`
    board.uart_port      # the board's UART: the meter's HDLC line once main.py runs
    board.power_cut()    # SIGKILL, then boot again (state written so far survives)
    board.stop()

What is emulated, and how:

- **Ports.** Each port is a `NullModem`: two pseudo-terminals whose masters a thread
  joins, as a null-modem cable joins two serial ports. The board's side is one slave,
  the host opens the other slave's path with pyserial (mpremote, the HIL drivers). Both
  slaves stay open here, so either side may close and reopen without a hang-up.
- **Filesystem.** `directory` is the board's flash: micropython runs with it as working
  directory, so mpremote's relative paths (`:main.py`, `:lib/...`) land in it. Use
  relative remote paths only: an absolute one would reach the host's root.
  `sys.path` is the board's (`''`, `.frozen`, `lib`).
- **Boot.** Like a board's firmware, boot runs `main.py` when there is one and then
  gives the REPL (`micropython -i main.py`); otherwise the bare REPL.
- **Ctrl-C.** The REPL's tty is raw except ISIG, and is the child's controlling
  terminal, so mpremote's Ctrl-C interrupts a running `main.py` (KeyboardInterrupt, as a
  board's USB stack does it); the REPL then sets its own raw mode.
- **Reset.** The unix build has no `machine.reset()`, and a soft reset (Ctrl-D in the
  REPL, `machine.soft_reset()`) ends the process. The board treats the end of the
  process as the reset line: it boots again, which runs `main.py`. So mpremote can
  drive everything with `resume` (no soft reset on connect); `emulator/flash.py`
  resets with `machine.reset()` falling back to `machine.soft_reset()`. mpremote's own
  `soft-reset` command cannot work here: it waits for the "soft reboot" banner a
  board's firmware prints, which the unix build never prints before it exits.
- **UART.** The unix port has no `machine.UART`; the board-side path of the UART pty is
  passed to `firmware/board/main.py` in the environment variable `SMETS_UART`.
"""

import fcntl
import os
import pathlib
import select
import shutil
import signal
import subprocess
import termios
import threading
import time
import tty

import firmware

REPO_ROOT = pathlib.Path(firmware.__file__).resolve().parent.parent
UART_ENVIRONMENT = "SMETS_UART"


class BoardFailure(Exception):
    """The virtual board could not start."""


def _raw(fd, isig=False):
    tty.setraw(fd)
    if isig:
        attrs = termios.tcgetattr(fd)
        attrs[3] |= termios.ISIG
        termios.tcsetattr(fd, termios.TCSANOW, attrs)


class NullModem:
    """Two ptys joined master to master; `board_path` and `host_path` are their slaves."""

    def __init__(self, board_isig=False):
        self._board_master, self._board_slave = os.openpty()
        self._host_master, self._host_slave = os.openpty()
        _raw(self._board_slave, isig=board_isig)
        _raw(self._host_slave)
        self.board_path = os.ttyname(self._board_slave)
        self.host_path = os.ttyname(self._host_slave)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._pump, daemon=True,
                                        name="null-modem %s" % self.host_path)
        self._thread.start()

    @property
    def board_fd(self):
        """The board's slave descriptor, for a child's stdio."""
        return self._board_slave

    def _pump(self):
        peer = {self._board_master: self._host_master, self._host_master: self._board_master}
        while True:
            ready, _, _ = select.select([self._board_master, self._host_master, self._stop_r],
                                        [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                _write_all(peer[fd], data)

    def close(self):
        if self._stop_w is None:
            return
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        for fd in (self._board_master, self._board_slave, self._host_master,
                   self._host_slave, self._stop_r, self._stop_w):
            os.close(fd)
        self._stop_w = None


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1)
            continue
        view = view[n:]


class VirtualBoard:
    def __init__(self, directory, binary="micropython", heapsize=None):
        self.directory = pathlib.Path(directory)
        self.binary = binary
        self.heapsize = heapsize
        self.repl = None
        self.uart = None
        self.boots = 0
        self._proc = None
        self._lock = threading.Lock()
        self._running = False
        self._watcher = None
        self._log_path = None

    @property
    def repl_port(self):
        return self.repl.host_path

    @property
    def uart_port(self):
        return self.uart.host_path

    @property
    def pid(self):
        proc = self._proc
        return proc.pid if proc is not None else None

    def start(self):
        if shutil.which(self.binary) is None:
            raise BoardFailure("MicroPython binary %r not found on PATH" % self.binary)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.repl = NullModem(board_isig=True)
        self.uart = NullModem()
        self._running = True
        self._boot()
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name="virtual board %s" % self.repl_port)
        self._watcher.start()
        return self

    def command_line(self):
        argv = [shutil.which(self.binary)]
        if self.heapsize:
            argv += ["-X", "heapsize=%s" % self.heapsize]
        if (self.directory / "main.py").exists():
            argv += ["-i", "main.py"]
        return argv

    def environment(self):
        env = dict(os.environ)
        env["MICROPYPATH"] = ".frozen:lib"       # with '' first: a board's sys.path
        env[UART_ENVIRONMENT] = self.uart.board_path
        env.pop("MICROPYINSPECT", None)
        return env

    def _boot(self):
        slave = self.repl.board_fd
        # A REPL killed in raw mode leaves ISIG off: power-on resets the line settings.
        _raw(slave, isig=True)

        def controlling_terminal():      # runs in the child, after setsid
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        with self._lock:
            self._proc = subprocess.Popen(
                self.command_line(), stdin=slave, stdout=slave, stderr=slave,
                cwd=str(self.directory), env=self.environment(), start_new_session=True,
                preexec_fn=controlling_terminal)
            self.boots += 1

    def _watch(self):
        """A process that ends on its own was reset: boot again."""
        while self._running:
            proc = self._proc
            if proc is None:
                time.sleep(0.05)
                continue
            try:
                proc.wait(0.1)
            except subprocess.TimeoutExpired:
                continue
            with self._lock:
                again = self._running and self._proc is proc
            if again:
                self._boot()

    def power_cut(self, off_seconds=0.0):
        """Pull the power (SIGKILL: no shutdown code runs), wait, power on again."""
        with self._lock:
            proc = self._proc
            self._proc = None
        if proc is not None:
            _kill(proc)
        time.sleep(off_seconds)
        if self._running:
            self._boot()

    def wait_boot(self, boots, timeout=10.0):
        """Waits until the board has booted `boots` times in all."""
        deadline = time.monotonic() + timeout
        while self.boots < boots:
            if time.monotonic() > deadline:
                raise BoardFailure("the board booted %d times, not %d, within %g s"
                                   % (self.boots, boots, timeout))
            time.sleep(0.02)

    def stop(self):
        self._running = False
        if self._watcher is not None:
            self._watcher.join(5)
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            _kill(proc)
        for modem in (self.repl, self.uart):
            if modem is not None:
                modem.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def _kill(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)
