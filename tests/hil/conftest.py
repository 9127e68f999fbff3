"""Helpers for the harness's own tests: the device core served on a pty (the far end
of the `serial` driver) and `smets-emu serve` as a subprocess (the `tcp` driver's peer),
both with metering history behind them, as the shipped scenarios expect."""

import os
import select
import sys
import threading

import pytest

from firmware.board.meter import MeterCore
from hil.resources import PtyPair, Subprocess
from hil.targets import HISTORY, load_profile

PROFILE = "esme-single-phase"
SHIPPED_SCENARIOS = os.path.join(os.path.dirname(__file__), "..", "..", "hil", "scenarios")


class CoreOnPty:
    """A MeterCore answering HDLC on the master end of a pty, from a thread."""

    def __init__(self, pty, core, start):
        self.pty = pty
        self.core = core
        self.start = start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        core.open(1, "hdlc")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(5)

    def _serve(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.pty.master], [], [], 0.05)
            if not ready:
                continue
            data = os.read(self.pty.master, 4096)
            out = self.core.receive(1, data)
            if out:
                os.write(self.pty.master, out)


@pytest.fixture
def aged_core(tmp_path):
    """A meter with HISTORY seconds of metering, saving its state in tmp_path/state."""
    profile = load_profile(PROFILE)
    start = profile["clock"]["start"]
    core = MeterCore(profile, start, seed=0, state_dir=str(tmp_path / "state"))
    core.advance(start + HISTORY)
    return core


@pytest.fixture
def core_on_pty(aged_core):
    with PtyPair() as pty, CoreOnPty(pty, aged_core, aged_core.now) as server:
        yield pty.path, server


@pytest.fixture
def smets_serve(aged_core, tmp_path):
    """Starts `smets-emu serve` on 127.0.0.1, an ephemeral port, restoring the aged
    meter's saved state; yields a function framing -> (host, port)."""
    aged_core.shutdown()                 # the final save: two days of history on disk
    started = []

    def serve(framing="wrapper"):
        process = Subprocess(
            [sys.executable, "-m", "emulator.cli", "serve", "--profile", PROFILE,
             "--tcp", "127.0.0.1:0", "--framing", framing, "--state", tmp_path / "state"],
            ready=r"listening tcp ([0-9.]+):(\d+) " + framing, ready_timeout=30).start()
        started.append(process)
        match = process.wait_ready()
        return match.group(1), int(match.group(2))

    yield serve
    for process in started:
        process.stop(timeout=10)
