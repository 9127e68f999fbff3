"""Our ESME served on 127.0.0.1:<ephemeral> for a synchronous peer such as Gurux.

The device core runs on either runtime (`emulator/runtime.py`) behind the project's
asyncio TCP transport (`emulator/transport/tcp.py`), in an event loop on a background
thread, so a blocking client can talk to it from the test's thread. The device is run
to `now` before serving and is not advanced while served: what a peer reads is exactly
what a CPython reference core, run to the same `now` with the same seed, holds
(ARCHITECTURE.md principle 7), whichever runtime serves it.

    with ServedEsme(profile, start, now, runtime="micropython", framing="hdlc") as esme:
        GuruxPeer("127.0.0.1", esme.port, framing="hdlc", ...)
"""

import asyncio
import threading

from emulator.runtime import make_runtime
from emulator.transport.device import ServedDevice
from emulator.transport.tcp import TcpServer
from firmware.board.meter import MeterCore
from firmware.cosem.base import Context
from firmware.dlms import axdr
from firmware.dlms.cosem_datetime import datetime_seconds

STARTUP_TIMEOUT = 90.0


class ServedEsme:
    def __init__(self, profile, start, now, runtime="cpython", framing="wrapper", seed=0,
                 heapsize=None):
        self.profile = profile
        self.start = start
        self.now = now
        self.runtime_name = runtime
        self.framing = framing
        self.seed = seed
        self.heapsize = heapsize
        self.port = None
        self.runtime = None
        self._loop = None
        self._stop = None
        self._ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT):
            raise RuntimeError("the %s runtime did not come up in %.0f s"
                               % (self.runtime_name, STARTUP_TIMEOUT))
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc):
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self._error is not None and exc[0] is None:
            raise self._error

    def _run(self):
        try:
            asyncio.run(self._serve())
        except BaseException as exc:   # reported to the test's thread
            self._error = exc
            self._ready.set()

    async def _serve(self):
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        options = {"seed": self.seed}
        if self.runtime_name == "micropython" and self.heapsize:
            options["heapsize"] = self.heapsize
        self.runtime = make_runtime(self.runtime_name, self.profile, self.start, **options)
        await self.runtime.start()
        server = None
        try:
            await self.runtime.advance(self.now)
            server = await TcpServer(ServedDevice(self.runtime), self.framing,
                                     "127.0.0.1", 0).start()
            self.port = server.address[1]
            self._ready.set()
            await self._stop.wait()
        finally:
            if server is not None:
                await server.close()
            await self.runtime.stop()


class ReferenceCore:
    """The same ESME on CPython in this process, run to the same `now`: the expected values."""

    def __init__(self, profile, start, now, seed=0):
        self.core = MeterCore(profile, start, seed=seed)
        self.core.advance(now)
        self.now = now
        self.device = self.core.esme.logical_device

    def get(self, class_id, logical_name, attribute, client_sap=16):
        obj = self.device.find(class_id, logical_name)
        return obj.get(attribute, Context(self.now, client_sap))

    def hh_rows(self):
        """[(capture seconds, value)] of the half-hourly profile, oldest first."""
        rows = []
        for encoded in self.core.esme.hh_profile.entries():
            _tag, (stamp, value) = axdr.decode_all(bytes(encoded))
            rows.append((datetime_seconds(stamp[1]), value[1]))
        return rows


class InProcessMedia:
    """GXNet's synchronous-media surface over a `MeterCore` connection, with no socket:
    `send()` feeds the core, `receive()` hands back what the core answered. Lets the
    Gurux reader drive the device core in this thread, frame by frame."""

    def __init__(self, core, framing, conn_id=1):
        self.core = core
        self.framing = framing
        self.conn_id = conn_id
        self.eop = None
        self._pending = bytearray()
        self._open = False

    def open(self):
        self.core.open(self.conn_id, self.framing)
        self._open = True

    def close(self):
        if self._open:
            self.core.close(self.conn_id)
            self._open = False

    def isOpen(self):
        return self._open

    def getSynchronous(self):
        return _NoLock()

    def send(self, data, receiver=None):
        self._pending += self.core.receive(self.conn_id, bytes(data))

    def receive(self, p):
        if not self._pending:
            return False
        p.reply = bytearray(self._pending)
        del self._pending[:]
        return True


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
