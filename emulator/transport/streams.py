"""Blocking byte streams for the host-side client links.

The client side (``emulator/link.py``'s ``LinkConnection``, ``emulator/client.py``)
talks to a device through an object with exactly this API:

``write(data: bytes) -> None``
    sends all of ``data``.
``read(n: int, timeout: float) -> bytes``
    returns between 1 and ``n`` bytes as soon as any are available, or ``b""`` when
    ``timeout`` seconds pass with nothing received. Raises ``ConnectionError`` when the
    peer has closed the connection.
``close() -> None``
    idempotent; the streams are also context managers.

``SocketStream`` is a TCP connection (the IEC 62056-47 wrapper or HDLC carried over
TCP); ``SerialStream`` opens anything pyserial's ``serial_for_url`` understands, so a
UART, a pty from the emulator (``/dev/pts/N``) and ``socket://host:port`` all work.
"""

import socket

import serial


class SocketStream:
    """A blocking TCP client connection."""

    def __init__(self, host, port, connect_timeout=5.0):
        self._sock = socket.create_connection((host, port), timeout=connect_timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._closed = False

    def write(self, data):
        if self._closed:
            raise ConnectionError("stream is closed")
        self._sock.sendall(bytes(data))

    def read(self, n, timeout):
        if self._closed:
            raise ConnectionError("stream is closed")
        self._sock.settimeout(timeout)
        try:
            data = self._sock.recv(n)
        except socket.timeout:
            return b""
        if not data:
            raise ConnectionError("peer closed the connection")
        return data

    def close(self):
        if not self._closed:
            self._closed = True
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already reset by the peer
            self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class SerialStream:
    """A serial line (or pty, or ``socket://``) opened through pyserial."""

    def __init__(self, url, baudrate=9600, **serial_options):
        # serial_for_url clears pending input on open: synchronise with a request,
        # never by waiting for output the device sent earlier (MICROPYTHON.md, HIL lessons).
        self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=0, **serial_options)
        self._closed = False

    def write(self, data):
        if self._closed:
            raise ConnectionError("stream is closed")
        self._port.write(bytes(data))
        self._port.flush()

    def read(self, n, timeout):
        if self._closed:
            raise ConnectionError("stream is closed")
        try:
            self._port.timeout = timeout
            first = self._port.read(1)
            if not first:
                return b""
            self._port.timeout = 0
            rest = self._port.read(n - 1) if n > 1 else b""
        except serial.SerialException as exc:
            raise ConnectionError(str(exc))
        return first + rest

    def close(self):
        if not self._closed:
            self._closed = True
            self._port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
