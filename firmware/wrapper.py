"""The COSEM wrapper of the TCP-based transport layer (IEC 62056-47 §5.3.2 and §6.3).

A wrapper PDU (WPDU) is an 8-byte header and the APDU, all big-endian:

    version (2) = 0x0001 | source wPort (2) | destination wPort (2) | length (2) | APDU

TCP keeps no message boundaries, so the endpoint buffers until `length` bytes of APDU
are there. The client's source wPort is its SAP; the answer goes back with the wPorts
swapped.

Bad input, and what the endpoint does with it (the standard says a WPDU that is not
valid is discarded; a TCP stream gives no way to find where the next one starts):
- version not 0x0001: the header is not a header, so nothing buffered can be trusted;
  the buffer is dropped and the next chunk is read as the start of a new WPDU (a
  client writes each request in one go and waits for the answer, so the stream falls
  back into step at its next request).
- a valid header whose length exceeds `max_apdu_size`, or addressed to a wPort this
  endpoint does not serve: the WPDU is well delimited, so exactly its bytes are
  skipped (not buffered) and the stream stays in step.
- a WPDU that never completes (noise that happened to start like a header): the
  transport calls `idle()` when the peer has been silent for its time-out.
`receive` never raises and never holds more than one WPDU of `max_apdu_size`.
"""

import struct

VERSION = 0x0001
HEADER_LENGTH = 8
MAX_WPDU_LENGTH = 0xFFFF


class WrapperError(Exception):
    def __init__(self, offset, reason):
        super().__init__(offset, reason)
        self.offset = offset
        self.reason = reason

    def __str__(self):
        return "wrapper: offset %d: %s" % (self.offset, self.reason)


def encode_wpdu(source_wport, destination_wport, apdu):
    for offset, port in ((2, source_wport), (4, destination_wport)):
        if port < 0 or port > 0xFFFF:
            raise WrapperError(offset, "wPort %d is not 16 bits" % port)
    if len(apdu) > MAX_WPDU_LENGTH:
        raise WrapperError(6, "APDU of %d bytes does not fit the length field" % len(apdu))
    return struct.pack(">HHHH", VERSION, source_wport, destination_wport, len(apdu)) + apdu


def decode_header(buf, offset=0):
    """(source wPort, destination wPort, APDU length) of the header at buf[offset:]."""
    if len(buf) - offset < HEADER_LENGTH:
        raise WrapperError(len(buf) - offset, "header needs %d bytes, %d there" % (
            HEADER_LENGTH, len(buf) - offset))
    version, source, destination, length = struct.unpack_from(">HHHH", buf, offset)
    if version != VERSION:
        raise WrapperError(0, "version 0x%04x is not 0x0001" % version)
    return source, destination, length


def decode_wpdu(buf):
    """(source wPort, destination wPort, APDU) of exactly one WPDU."""
    source, destination, length = decode_header(buf)
    if len(buf) != HEADER_LENGTH + length:
        raise WrapperError(6, "length field %d, but %d APDU bytes" % (
            length, len(buf) - HEADER_LENGTH))
    return source, destination, bytes(buf[HEADER_LENGTH:])


class WrapperEndpoint:
    """The server side of one TCP connection."""

    def __init__(self, on_apdu=None, on_disconnect=None, wport=None, max_apdu_size=4096):
        self.on_apdu = on_apdu
        self.on_disconnect = on_disconnect
        self.wport = wport                  # None: answer every destination wPort
        self.max_apdu_size = max_apdu_size
        self.dropped = 0                    # bytes discarded as not valid WPDUs
        self.upper_error = None
        self.internal_error = None
        self._buf = bytearray()
        self._skip = 0

    def receive(self, data):
        """Feeds received bytes (any chunking); returns the bytes to send (maybe b"")."""
        out = bytearray()
        try:
            self._buf.extend(data)
            self._skip_bytes()
            while len(self._buf) >= HEADER_LENGTH:
                reply = self._next_wpdu()
                if reply is None:
                    break
                out.extend(reply)
        except Exception as exc:      # a device never dies on its input
            self.internal_error = exc
            self._buf = bytearray()
        return bytes(out)

    def close(self):
        """The TCP connection is gone."""
        self._buf = bytearray()
        self._skip = 0
        if self.on_disconnect is not None:
            self.on_disconnect()

    def buffered(self):
        return len(self._buf)

    def idle(self):
        """The client has been silent for the transport's time-out: a WPDU still
        incomplete will not be completed, so its bytes are dropped."""
        self.dropped += len(self._buf)
        self._buf = bytearray()
        self._skip = 0

    def _skip_bytes(self):
        if self._skip:
            n = min(self._skip, len(self._buf))
            self._buf = self._buf[n:]
            self._skip -= n
            self.dropped += n

    def _next_wpdu(self):
        """The answer to the next whole WPDU (b"" if none), None to wait for bytes."""
        try:
            source, destination, length = decode_header(self._buf)
        except WrapperError:
            self.dropped += len(self._buf)
            self._buf = bytearray()
            return None
        if length > self.max_apdu_size or (self.wport is not None
                                           and destination != self.wport):
            self._skip = HEADER_LENGTH + length
            self._skip_bytes()
            return b""
        end = HEADER_LENGTH + length
        if len(self._buf) < end:
            return None
        apdu = bytes(self._buf[HEADER_LENGTH:end])
        self._buf = self._buf[end:]
        reply = self._deliver(apdu, source)
        if not reply:
            return b""
        return encode_wpdu(destination, source, bytes(reply))

    def _deliver(self, apdu, client_sap):
        if self.on_apdu is None:
            return None
        try:
            return self.on_apdu(apdu, client_sap)
        except Exception as exc:
            self.upper_error = exc
            return None
