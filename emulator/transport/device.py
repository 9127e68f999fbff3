"""A device as the transports see it: a runtime, its simulated time, its connections.

Every transport connection (a TCP client, a pty, a serial line) becomes one connection
of the runtime. Before the device sees a request it is advanced to the current
simulated time, so a clock read is never stale; between requests `run_clock` advances
it periodically so profiles capture while nobody is connected.
"""

import asyncio
import logging

log = logging.getLogger("smets_emu.serve")

MAX_CONNECTIONS = 0x10000   # the stdio pipe numbers connections with 2 bytes


class ServedDevice:
    def __init__(self, runtime, time_source=None):
        self.runtime = runtime
        self.time_source = time_source
        self._open = set()
        self._next_id = 1

    @property
    def connection_count(self):
        return len(self._open)

    async def open(self, framing, peer=""):
        """Open a connection on the runtime; -> its id."""
        conn_id = self._allocate()
        await self.runtime.open(conn_id, framing)
        self._open.add(conn_id)
        log.info("event=open conn=%d framing=%s peer=%s", conn_id, framing, peer)
        return conn_id

    async def receive(self, conn_id, data):
        await self.tick()
        out = await self.runtime.receive(conn_id, data)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("event=rx conn=%d data=%s", conn_id, bytes(data).hex())
            log.debug("event=tx conn=%d data=%s", conn_id, out.hex())
        return out

    async def close(self, conn_id):
        if conn_id not in self._open:
            return
        self._open.discard(conn_id)
        await self.runtime.close(conn_id)
        log.info("event=close conn=%d", conn_id)

    async def tick(self):
        """Advance the device to the current simulated time."""
        if self.time_source is not None:
            await self.runtime.advance(self.time_source())

    async def run_clock(self, period=1.0):
        """Advance every `period` wall seconds until cancelled."""
        while True:
            await self.tick()
            await asyncio.sleep(period)

    def _allocate(self):
        if len(self._open) >= MAX_CONNECTIONS - 1:
            raise ConnectionError("too many open connections")
        while True:
            conn_id = self._next_id
            self._next_id = self._next_id % (MAX_CONNECTIONS - 1) + 1
            if conn_id not in self._open:
                return conn_id
