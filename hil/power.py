"""Power for a device under test: cut it, restore it, cycle it.

A power switch is a resource (labgrid's sense): `on()`, `off()`, `cycle(off_seconds)`.

`CommandPowerSwitch` runs a command for each, for whatever switches the board's supply
on a bench: a USB hub with per-port power (uhubctl), a relay board, a smart plug's CLI.
For a board on port 2 of the hub at location 1-1:

    CommandPowerSwitch(on_cmd="uhubctl -l 1-1 -p 2 -a on",
                       off_cmd="uhubctl -l 1-1 -p 2 -a off",
                       cycle_cmd="uhubctl -l 1-1 -p 2 -a cycle -d {off_seconds}")

Commands are argument lists or strings split like a shell (`shlex`, no shell runs);
`{off_seconds}` in the cycle command is replaced by the requested off time. Without
a cycle command, `cycle` is `off`, a wait, `on`.

`ProcessPower` is the power of an emulated device: the device is a subprocess
(`smets-emu serve --state DIR`, `micropython -m firmware.board.stdio_main ... --state DIR`,
a virtual board); `off()` is SIGKILL to its whole process group, so no shutdown code
runs, exactly like pulling the plug; `on()` starts the same command again, with the
same state directory in it.
"""

import os
import shlex
import signal
import subprocess
import time


class PowerError(Exception):
    """A power command failed or timed out."""


class PowerSwitch:
    def on(self):
        raise NotImplementedError

    def off(self):
        raise NotImplementedError

    def cycle(self, off_seconds=1.0):
        self.off()
        time.sleep(off_seconds)
        self.on()


def _argv(command):
    return shlex.split(command) if isinstance(command, str) else list(command)


class CommandPowerSwitch(PowerSwitch):
    def __init__(self, on_cmd, off_cmd, cycle_cmd=None, timeout=30.0):
        self.on_cmd = _argv(on_cmd)
        self.off_cmd = _argv(off_cmd)
        self.cycle_cmd = _argv(cycle_cmd) if cycle_cmd else None
        self.timeout = timeout

    def on(self):
        self._run(self.on_cmd, "on")

    def off(self):
        self._run(self.off_cmd, "off")

    def cycle(self, off_seconds=1.0):
        if self.cycle_cmd is None:
            return PowerSwitch.cycle(self, off_seconds)
        argv = [arg.replace("{off_seconds}", _seconds_text(off_seconds))
                for arg in self.cycle_cmd]
        self._run(argv, "cycle")

    def _run(self, argv, what):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except FileNotFoundError:
            raise PowerError("power %s: no such command %r" % (what, argv[0]))
        except subprocess.TimeoutExpired:
            raise PowerError("power %s: %s did not finish within %g s"
                             % (what, shlex.join(argv), self.timeout))
        if done.returncode != 0:
            raise PowerError("power %s: %s exited %d: %s" % (
                what, shlex.join(argv), done.returncode, (done.stderr or done.stdout).strip()))


def _seconds_text(seconds):
    return str(int(seconds)) if float(seconds).is_integer() else "%g" % seconds


class ProcessPower(PowerSwitch):
    """An emulated device's supply: its process runs while the power is on.

    `popen` options go to `subprocess.Popen` (pipes, cwd, env); the process always gets
    its own session, so `off()` reaches every child it started (a `serve` and its
    micropython core) and nothing else. `process` is the running Popen, or None.
    """

    def __init__(self, argv, **popen):
        self.argv = list(argv)
        self.popen = popen
        self.process = None
        self.starts = 0
        self.cuts = 0

    @property
    def is_on(self):
        return self.process is not None and self.process.poll() is None

    def on(self):
        if self.is_on:
            raise PowerError("already on (pid %d)" % self.process.pid)
        self.process = subprocess.Popen(self.argv, start_new_session=True, **self.popen)
        self.starts += 1
        return self.process

    def off(self):
        """SIGKILL, now: no handler, no final save, no flush of the process's buffers."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.cuts += 1
        code = process.wait(10)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass      # bytes still buffered for a process that is gone
        return code
