"""HDLC over a real serial port, through pyserial (IEC 62056-46 on a UART).

The port is read in a worker thread (pyserial is blocking and portable that way); the
device is fed on the event loop, so one runtime can serve TCP, a pty and a UART at once.
"""

import asyncio
import logging

import serial

from emulator.runtime import CoreError, RuntimeFailure

log = logging.getLogger("smets_emu.serve")

READ_TIMEOUT = 0.1     # seconds a read waits, which bounds how long close() takes


class SerialServer:
    framing = "hdlc"

    def __init__(self, device, port, baudrate=9600, **serial_options):
        self.device = device
        self.path = port
        self.baudrate = baudrate
        self._options = serial_options
        self._port = None
        self._conn_id = None
        self._worker = None

    def describe(self):
        return "serial %s %s" % (self.path, self.framing)

    async def start(self):
        try:
            self._port = serial.serial_for_url(self.path, baudrate=self.baudrate,
                                               timeout=READ_TIMEOUT, **self._options)
        except serial.SerialException as exc:
            raise ConnectionError("cannot open serial port %s: %s" % (self.path, exc))
        self._conn_id = await self.device.open(self.framing, self.path)
        self._worker = asyncio.ensure_future(self._serve())
        return self

    async def close(self):
        if self._port is None:
            return
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        try:
            await self.device.close(self._conn_id)
        except (CoreError, RuntimeFailure) as exc:
            log.warning("event=close-failed conn=%d reason=%s", self._conn_id, exc)
        self._port.close()
        self._port = None

    def _read(self):
        return self._port.read(max(1, self._port.in_waiting))

    async def _serve(self):
        while True:
            try:
                data = await asyncio.to_thread(self._read)
            except serial.SerialException as exc:
                log.error("event=serial-error port=%s reason=%s", self.path, exc)
                await asyncio.sleep(1)
                continue
            if not data:
                continue
            try:
                out = await self.device.receive(self._conn_id, data)
            except (CoreError, RuntimeFailure) as exc:
                log.error("event=error port=%s reason=%s", self.path, exc)
                continue
            if out:
                await asyncio.to_thread(self._port.write, out)
