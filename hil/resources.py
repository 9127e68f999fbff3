"""Resources: what exists on the bench, apart from how it is used (labgrid's split).

A resource knows how to reach a thing and how to open a byte stream to it, nothing about
the protocols on it (those are `hil/drivers.py`):

- `SerialPort(url, baudrate)`: a UART, a pty path or any pyserial URL (`socket://...`)
- `TcpEndpoint(host, port)`: a networked device
- `PtyPair()`: a pseudo-terminal pair this process opens (serve a core on the master,
  point a `SerialPort` at `path`)
- `Subprocess(argv, ready)`: a helper process (e.g. `smets-emu serve`) started and stopped
  cleanly, ready once a line of its output matches `ready`
- `InProcessPort(core, clock)`: the device core in this process, a byte stream without
  any wire (what `inprocess:PROFILE` talks to)
- `PowerSwitch(cycle)`: something that can cut and restore the DUT's power

Every stream has the API of `emulator/transport/streams.py` (`write`, `read(n, timeout)`,
`close`).
"""

import os
import re
import signal
import subprocess
import threading
import time
import tty

from emulator.transport.streams import SerialStream, SocketStream


class ResourceError(Exception):
    """A resource that is not there or would not start."""


class SerialPort:
    kind = "serial"

    def __init__(self, url, baudrate=9600):
        self.url = url
        self.baudrate = baudrate

    def open_stream(self):
        try:
            return SerialStream(self.url, baudrate=self.baudrate)
        except Exception as exc:         # serial.SerialException, OSError
            raise ResourceError("cannot open serial port %s: %s" % (self.url, exc))

    def describe(self):
        return "serial %s @%d" % (self.url, self.baudrate)


class TcpEndpoint:
    kind = "tcp"

    def __init__(self, host, port, connect_timeout=5.0):
        self.host = host
        self.port = int(port)
        self.connect_timeout = connect_timeout

    def open_stream(self):
        try:
            return SocketStream(self.host, self.port, self.connect_timeout)
        except OSError as exc:
            raise ResourceError("cannot connect to %s:%d: %s" % (self.host, self.port, exc))

    def describe(self):
        return "tcp %s:%d" % (self.host, self.port)


class PtyPair:
    """A raw pty pair: `master` (a descriptor) for the device side, `path` for the client."""

    kind = "pty"

    def __init__(self):
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)          # no echo, no line discipline
        self.path = os.ttyname(self._slave)

    def close(self):
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master = self._slave = -1

    def describe(self):
        return "pty %s" % self.path

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class Subprocess:
    """A child process whose output is read in a thread; `wait_ready()` returns the
    regex match of the first line that matches `ready`."""

    kind = "process"

    def __init__(self, argv, ready=None, env=None, cwd=None, ready_timeout=60.0):
        self.argv = [str(a) for a in argv]
        self.ready = re.compile(ready) if ready else None
        self.env = env
        self.cwd = cwd
        self.ready_timeout = ready_timeout
        self.lines = []
        self._proc = None
        self._match = None
        self._seen = threading.Condition()
        self._reader = None

    def start(self):
        self._proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        for raw in self._proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            with self._seen:
                self.lines.append(line)
                if self._match is None and self.ready is not None:
                    self._match = self.ready.search(line)
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        with self._seen:
            while self._match is None:
                if self._proc.poll() is not None and not self._reader.is_alive():
                    raise ResourceError("%s exited with code %s before it was ready:\n%s"
                                        % (self.argv[0], self._proc.returncode, self.output()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ResourceError("%s not ready within %g s:\n%s"
                                        % (self.argv[0], self.ready_timeout, self.output()))
                self._seen.wait(min(left, 0.2))
            return self._match

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    def alive(self):
        return self._proc is not None and self._proc.poll() is None

    def output(self):
        return "\n".join(self.lines[-50:])

    def stop(self, timeout=10.0):
        """SIGINT (the served core saves and quits), then SIGKILL if it hangs."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._reader is not None:
            self._reader.join(2)
        proc.stdout.close()
        self._proc = None
        return proc.returncode

    def kill(self):
        """A hard power cut: SIGKILL, nothing saved on the way out."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)

    def describe(self):
        return "process %s" % " ".join(self.argv)


class InProcessPort:
    """The device core in this process as a byte stream: `write` hands the bytes to the
    core (advanced to `clock()` first), `read` returns what it answered.

    `core` has `MeterCore`'s API (open/receive/close/advance); `clock()` gives board
    seconds."""

    kind = "inprocess"

    def __init__(self, core, clock, framing="hdlc"):
        self.core = core
        self.clock = clock
        self.framing = framing
        self._next_conn = 1

    def open_stream(self):
        conn_id = self._next_conn
        self._next_conn += 1
        self.core.open(conn_id, self.framing)
        return _CoreStream(self, conn_id)

    def describe(self):
        return "in-process core (%s)" % self.framing


class _CoreStream:
    def __init__(self, port, conn_id):
        self._port = port
        self._conn_id = conn_id
        self._pending = bytearray()
        self._closed = False

    def write(self, data):
        if self._closed:
            raise ConnectionError("stream is closed")
        core = self._port.core
        core.advance(self._port.clock())
        self._pending += core.receive(self._conn_id, bytes(data))

    def read(self, n, timeout):
        if self._closed:
            raise ConnectionError("stream is closed")
        if not self._pending:
            # nothing is in flight in this process: silence is certain, no need to wait
            return b""
        out = bytes(self._pending[:n])
        del self._pending[:n]
        return out

    def close(self):
        if not self._closed:
            self._closed = True
            try:
                self._port.core.close(self._conn_id)
            except Exception:
                pass            # the core was replaced (power cycle): the link is gone

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class PowerSwitch:
    """Cuts and restores the DUT's power: `cycle()` calls the hook it was given (a USB hub
    or relay command for a board, a hard kill and restart for an emulated DUT)."""

    kind = "power"

    def __init__(self, cycle, description="power switch"):
        self._cycle = cycle
        self.description = description
        self.cycles = 0

    def cycle(self):
        self._cycle()
        self.cycles += 1

    def describe(self):
        return self.description


def command_power_switch(command, timeout=60.0):
    """A PowerSwitch running a shell command (e.g. `uhubctl -a cycle -p 2`)."""
    def run():
        done = subprocess.run(command, shell=True, capture_output=True, timeout=timeout)
        if done.returncode != 0:
            raise ResourceError("power command %r failed (%d): %s" % (
                command, done.returncode, done.stderr.decode("utf-8", "replace")))
    return PowerSwitch(run, "command %r" % command)
