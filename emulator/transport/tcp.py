"""DLMS over TCP: each TCP connection is one connection of the device.

Framing `wrapper` is the IEC 62056-47 COSEM transport (wrapper header + APDU); `hdlc`
carries IEC 62056-46 HDLC frames over the TCP stream, as many head-ends and Gurux do.
"""

import asyncio
import logging

from emulator.runtime import CoreError, RuntimeFailure

log = logging.getLogger("smets_emu.serve")

FRAMINGS = ("wrapper", "hdlc")
DLMS_PORT = 4059          # IANA "DLMS/COSEM" port (IEC 62056-47 clause 6)
READ_SIZE = 4096


class TcpServer:
    def __init__(self, device, framing="wrapper", host="127.0.0.1", port=DLMS_PORT):
        if framing not in FRAMINGS:
            raise ValueError("unknown framing %r (expected wrapper or hdlc)" % framing)
        self.device = device
        self.framing = framing
        self.host = host
        self.port = port
        self._server = None
        self._handlers = set()

    @property
    def address(self):
        """(host, port) actually bound, so port 0 can be used."""
        return self._server.sockets[0].getsockname()[:2]

    def describe(self):
        return "tcp %s:%d %s" % (self.address[0], self.address[1], self.framing)

    async def start(self):
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        return self

    async def close(self):
        if self._server is None:
            return
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader, writer):
        task = asyncio.current_task()
        self._handlers.add(task)
        peer = "%s:%s" % writer.get_extra_info("peername")[:2]
        conn_id = None
        try:
            conn_id = await self.device.open(self.framing, peer)
            await self._pump(conn_id, reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except (CoreError, RuntimeFailure) as exc:
            log.error("event=error peer=%s reason=%s", peer, exc)
        finally:
            self._handlers.discard(task)
            if conn_id is not None:
                try:
                    await self.device.close(conn_id)
                except (CoreError, RuntimeFailure) as exc:
                    log.warning("event=close-failed conn=%d reason=%s", conn_id, exc)
            writer.close()

    async def _pump(self, conn_id, reader, writer):
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                return
            out = await self.device.receive(conn_id, data)
            if out:
                writer.write(out)
                await writer.drain()
