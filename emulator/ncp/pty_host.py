"""Virtual NCPs on pseudo-terminals: bellows opens the slave path as a serial port.

    with NcpHost(medium) as host:
        path = host.add(VirtualNcp(eui64, medium, ezsp_version=13))
        # bellows: {"path": path} (or "serial://" + path is not needed: a path works)

One thread runs every NCP of the host and the medium they share, on one clock
(``time.monotonic``): it waits on the pty masters with ``select`` until bytes come or
the next timer (ASH retransmission, a frame's airtime) is due, so the sans-IO cores see
exactly the bytes bellows writes. The host keeps each slave descriptor open, so bellows
may close and reopen the port without the master seeing a hang-up. Touch an NCP's state
from another thread only under ``host.lock``.
"""

from __future__ import annotations

import logging
import os
import select
import termios
import threading
import time
import tty

log = logging.getLogger("smets_emu.ncp")

READ_SIZE = 4096
IDLE_WAIT = 0.05


class NcpHost:
    def __init__(self, medium=None, clock=time.monotonic):
        self.medium = medium
        self.clock = clock
        self.lock = threading.RLock()
        self._ports: dict = {}            # master fd -> (ncp, slave fd, path)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = None
        self._stop = False
        self.errors: list = []            # exceptions raised by an NCP or the medium

    def add(self, ncp) -> str:
        """Serve ``ncp`` on a new pty; return the slave path for bellows."""
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        path = os.ttyname(slave)
        with self.lock:
            self._ports[master] = (ncp, slave, path)
        self._wake()
        return path

    def path_of(self, ncp) -> str:
        for owner, _slave, path in self._ports.values():
            if owner is ncp:
                return path
        raise KeyError("NCP not hosted here")

    def start(self) -> "NcpHost":
        self._thread = threading.Thread(target=self._run, name="ncp-host", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for master, (_ncp, slave, _path) in list(self._ports.items()):
            os.close(master)
            os.close(slave)
        self._ports.clear()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _timeout(self, now: float) -> float:
        deadlines = [ncp.next_deadline() for ncp, _s, _p in self._ports.values()]
        if self.medium is not None:
            deadlines.append(self.medium.next_deadline())
        due = [d for d in deadlines if d is not None]
        if not due:
            return IDLE_WAIT
        return min(IDLE_WAIT, max(0.0, min(due) - now))

    def _run(self) -> None:
        while not self._stop:
            with self.lock:
                fds = list(self._ports)
                timeout = self._timeout(self.clock())
            readable, _w, _x = select.select(fds + [self._wake_r], [], [], timeout)
            with self.lock:
                try:
                    self._step(readable)
                except Exception as exc:  # a bug in a core: keep serving, let tests see it
                    self.errors.append(exc)
                    log.exception("virtual NCP failed")

    def _step(self, readable) -> None:
        if self._wake_r in readable:
            os.read(self._wake_r, 512)
        now = self.clock()
        for master in readable:
            if master not in self._ports:
                continue
            try:
                data = os.read(master, READ_SIZE)
            except (BlockingIOError, OSError):
                continue
            ncp, slave, _path = self._ports[master]
            resets = ncp.ash.resets
            ncp.receive(data, now)
            if ncp.ash.resets != resets:
                # What the NCP wrote before this RST and nobody read is stale: a UART
                # would have lost it, a pty keeps it for the next reader.
                termios.tcflush(slave, termios.TCIFLUSH)
        if self.medium is not None:
            self.medium.poll(now)
        for master, (ncp, _slave, _path) in self._ports.items():
            ncp.poll(now)
            out = ncp.outgoing()
            if out:
                self._write(master, out)

    @staticmethod
    def _write(master: int, data: bytes) -> None:
        """Write what the pty takes; with no reader draining it, the rest is lost, as
        bytes on a UART nobody listens to are."""
        view = memoryview(data)
        while view:
            try:
                n = os.write(master, view)
            except BlockingIOError:
                if not select.select([], [master], [], 0.05)[1]:
                    log.debug("pty full, %d bytes dropped", len(view))
                    return
                continue
            view = view[n:]


def run_on_pty(ncp, medium=None):
    """Start a host for one NCP; return (host, slave path). ``host.stop()`` when done."""
    host = NcpHost(medium).start()
    return host, host.add(ncp)
