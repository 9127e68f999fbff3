"""HDLC over a pseudo-terminal: the device looks like a meter on a serial port.

`PtyServer` opens a pty pair and serves the device (HDLC, IEC 62056-46) on the master;
any serial client (pyserial, Gurux, minicom, the HIL harness) opens the slave path it
prints. The server keeps its own slave descriptor open, so a client may close and
reopen the port: the master never sees a hang-up, and the HDLC station takes the next
SNRM as a new link.
"""

import asyncio
import logging
import os
import tty

from emulator.runtime import CoreError, RuntimeFailure

log = logging.getLogger("smets_emu.serve")

READ_SIZE = 4096


class PtyServer:
    framing = "hdlc"

    def __init__(self, device):
        self.device = device
        self.path = None
        self._master = None
        self._slave = None
        self._conn_id = None
        self._inbox = None
        self._worker = None

    def describe(self):
        return "pty %s %s" % (self.path, self.framing)

    async def start(self):
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)          # no echo, no line discipline: bytes pass as sent
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._conn_id = await self.device.open(self.framing, self.path)
        self._inbox = asyncio.Queue()
        loop = asyncio.get_running_loop()
        loop.add_reader(self._master, self._on_readable)
        self._worker = asyncio.ensure_future(self._serve())
        return self

    async def close(self):
        if self._master is None:
            return
        asyncio.get_running_loop().remove_reader(self._master)
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        try:
            await self.device.close(self._conn_id)
        except (CoreError, RuntimeFailure) as exc:
            log.warning("event=close-failed conn=%d reason=%s", self._conn_id, exc)
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = None

    def _on_readable(self):
        try:
            data = os.read(self._master, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:       # EIO: cannot happen while we hold the slave open
            log.error("event=pty-error path=%s reason=%s", self.path, exc)
            return
        if data:
            self._inbox.put_nowait(data)

    async def _serve(self):
        while True:
            data = await self._inbox.get()
            try:
                out = await self.device.receive(self._conn_id, data)
            except (CoreError, RuntimeFailure) as exc:
                log.error("event=error path=%s reason=%s", self.path, exc)
                continue
            if out:
                await self._write_all(out)

    async def _write_all(self, data):
        view = memoryview(data)
        loop = asyncio.get_running_loop()
        while view:
            try:
                written = os.write(self._master, view)
                view = view[written:]
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_writer(self._master, ready.set_result, None)
                try:
                    await ready
                finally:
                    loop.remove_writer(self._master)
