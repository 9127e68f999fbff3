"""GB-HRGP tunnel frames as declarative `construct` definitions (host oracle).

The data of a ZSE Tunneling (cluster 0x0704, protocol id 6) TransferData command
(GBCS 10.2; layout as Wireshark's `gbcs_tunnel` dissector reads it, packet-gbcs.c):

    GET           01
    GET-RESPONSE  02 | remaining messages (1) | GBCS message (may be empty)
    PUT           03 | GBCS message (at least one byte)

Written apart from `firmware/han/tunnel.py` and held to the same bytes, verdicts and
error offsets by tests/emulator/test_tunnel_codecs.py. `message_length` is the second
reading of where a GBCS message ends (the segmentation scheme is described in the
firmware module): the MAC header's BER length, or the general-signing grouping header
walked to its signature field.
"""

from __future__ import annotations

import io
import struct

from construct import (
    Array,
    Byte,
    Bytes,
    Const,
    Construct,
    ConstructError,
    GreedyBytes,
    Int8ub,
    OneOf,
    Prefixed,
    StreamError,
    Struct,
    Terminated,
    Check,
    len_,
    this,
)

from emulator.codec.errors import CodecError

GET = 0x01
GET_RESPONSE = 0x02
PUT = 0x03
MAX_TRANSFER = 1500


class TunnelCodecError(CodecError):
    layer = "tunnel"


# -- TransferData payloads -------------------------------------------------------------

GetFrame = Struct("command" / Const(b"\x01"), Terminated).compile()
GetResponseFrame = Struct(
    "command" / Const(b"\x02"),
    "remaining" / Int8ub,
    "payload" / GreedyBytes,
).compile()
PutFrame = Struct(
    "command" / Const(b"\x03"),
    "payload" / GreedyBytes,
    Check(len_(this.payload) > 0),
).compile()

_FRAMES = {GET: GetFrame, GET_RESPONSE: GetResponseFrame, PUT: PutFrame}
_FAULTS = {GET: "GET carries no data", GET_RESPONSE: "GET-RESPONSE needs its remaining count",
           PUT: "PUT carries no GBCS message"}


def decode(data: bytes) -> tuple[int, int | None, bytes]:
    """(kind, remaining, payload), as `firmware.han.tunnel.decode` returns it."""
    data = bytes(data)
    if not data:
        raise TunnelCodecError(0, "empty TransferData")
    frame = _FRAMES.get(data[0])
    if frame is None:
        raise TunnelCodecError(0, f"unknown GB-HRGP command 0x{data[0]:02X}")
    stream = io.BytesIO(data)
    try:
        parsed = frame.parse_stream(stream)
    except (ConstructError, struct.error):     # compiled fields raise struct.error
        # every failure of these three layouts sits at offset 1
        raise TunnelCodecError(1, _FAULTS[data[0]]) from None
    if data[0] == GET:
        return GET, None, b""
    if data[0] == GET_RESPONSE:
        return GET_RESPONSE, parsed.remaining, parsed.payload
    return PUT, None, parsed.payload


def encode(kind: int, payload: bytes = b"", remaining: int | None = None) -> bytes:
    try:
        if kind == GET:
            if payload or remaining is not None:
                raise TunnelCodecError(None, "GET carries nothing")
            return GetFrame.build({})
        if kind == GET_RESPONSE:
            return GetResponseFrame.build({"remaining": remaining, "payload": bytes(payload)})
        if kind == PUT:
            return PutFrame.build({"payload": bytes(payload)})
    except ConstructError as exc:
        raise TunnelCodecError(None, _reason(exc)) from None
    raise TunnelCodecError(None, f"unknown GB-HRGP command {kind!r}")


# -- where a GBCS message ends (segmentation) ------------------------------------------

class _BerLength(Construct):
    """X.690 8.1.3 definite length, short or 0x81..0x83; a short stream is StreamError
    (more bytes may come), a bad form is a plain ConstructError (never a message)."""

    def _parse(self, stream, context, path):
        first = stream.read(1)
        if not first:
            raise StreamError("length expected", path=path)
        if first[0] < 0x80:
            return first[0]
        count = first[0] & 0x7F
        if not 1 <= count <= 3:
            raise ConstructError(f"unsupported BER length form 0x{first[0]:02X}", path=path)
        octets = stream.read(count)
        if len(octets) != count:
            raise StreamError("BER length incomplete", path=path)
        return int.from_bytes(octets, "big")

    def _build(self, obj, stream, context, path):
        raise ConstructError("parse only", path=path)


_ber = _BerLength()

MacHeaderHead = Struct(
    "tag" / Const(b"\xDD"),
    # one octet at a time, so a wrong octet is refused before the rest arrives
    "reserved" / Array(6, Const(b"\x00")),
    "length" / _ber,
)

SigningExtent = Struct(
    "tag" / Const(b"\xDF"),
    "transaction_id" / Prefixed(Const(9, Byte), Bytes(9)),
    "originator" / Prefixed(Const(8, Byte), Bytes(8)),
    "recipient" / Prefixed(Const(8, Byte), Bytes(8)),
    "date_time_length" / OneOf(Byte, [0, 12]),
    "date_time" / Bytes(this.date_time_length),
    "other_information" / Prefixed(_ber, GreedyBytes),
    "payload" / Prefixed(_ber, GreedyBytes),
    # the signature's own bytes need not have arrived: its length ends the message
    "signature_length" / OneOf(Byte, [0, 64]),
)


def message_length(buf: bytes) -> int | None:
    """Bytes in the GBCS message that starts `buf`; None when more bytes are needed."""
    buf = bytes(buf)
    if not buf:
        return None
    stream = io.BytesIO(buf)
    try:
        if buf[0] == 0xDD:
            head = MacHeaderHead.parse_stream(stream)
            return stream.tell() + head.length
        extent = SigningExtent.parse_stream(stream)
        return stream.tell() + extent.signature_length
    except StreamError:
        return None
    except ConstructError as exc:
        raise TunnelCodecError(stream.tell(), _reason(exc)) from None


def segments(frame: bytes, max_transfer: int = MAX_TRANSFER) -> list[bytes]:
    frame = bytes(frame)
    return [frame[i:i + max_transfer] for i in range(0, max(len(frame), 1), max_transfer)]


def reassemble(parts: list[bytes]) -> tuple[int, int | None, bytes]:
    """The frame carried by a whole sequence of segments, checked end to end."""
    frame = b"".join(parts)
    kind, remaining, payload = decode(frame)
    if payload:
        head = 2 if kind == GET_RESPONSE else 1
        total = message_length(payload)
        if total != len(payload):
            raise TunnelCodecError(head + (total or len(payload)),
                                   "segments do not end with the GBCS message")
    return kind, remaining, payload


def _reason(exc: ConstructError) -> str:
    text = str(exc)
    return text.split("\n")[0] if text else type(exc).__name__
