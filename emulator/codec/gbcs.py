"""GBCS message envelope as declarative `construct` definitions (GBCS v4 clause 7.2).

The host-side oracle for `firmware/gbcs/envelope.py`: written from the same tables, sharing
no code, and compared with it on every RTDS message. Layout (checked on RTDS 4.5.0):

    MAC header      DD | 00×6 | BER length | 11 00000000 | general-signing | GCM tag (12)
    general-signing DF | 09 CRA counter(8) | 08 originator | 08 recipient |
                    00 / 0C date-time | BER other-information | BER payload | signature
    signature       absent (pre-command) | 00 | 40 r||s(64)
"""

from __future__ import annotations

import io

from construct import (
    Adapter,
    ValidationError,
    Byte,
    Bytes,
    Const,
    Construct,
    ConstructError,
    Enum,
    ExprValidator,
    FixedSized,
    GreedyBytes,
    Int16ub,
    Int64ub,
    Optional,
    Prefixed,
    Select,
    Struct,
    Terminated,
    this,
)

from emulator.codec.errors import CodecError

SECURITY_HEADER = b"\x11\x00\x00\x00\x00"
MAC_LENGTH = 12


class GbcsCodecError(CodecError):
    layer = "gbcs"


class BerLength(Construct):
    """X.690 8.1.3 definite length: short form, or 0x81..0x84 and that many octets."""

    def _parse(self, stream, context, path):
        first = stream.read(1)
        if not first:
            raise ConstructError("length expected, message ends", path=path)
        if first[0] < 0x80:
            return first[0]
        count = first[0] & 0x7F
        if not 1 <= count <= 4:
            raise ConstructError(f"unsupported BER length form 0x{first[0]:02X}", path=path)
        octets = stream.read(count)
        if len(octets) != count:
            raise ConstructError("BER length runs past the message", path=path)
        return int.from_bytes(octets, "big")

    def _build(self, obj, stream, context, path):
        if obj < 0x80:
            stream.write(bytes([obj]))
        else:
            octets = obj.to_bytes((obj.bit_length() + 7) // 8, "big")
            stream.write(bytes([0x80 | len(octets)]) + octets)
        return obj

    def _sizeof(self, context, path):
        raise ConstructError("BER length has no fixed size", path=path)


ber_length = BerLength()

# construct's Enum lets unknown numbers through; GBCS defines only these three
CraFlag = ExprValidator(Enum(Byte, command=1, response=2, alert=3),
                        lambda obj, ctx: int(obj) in (1, 2, 3))

OtherInformation = Struct(
    "message_code" / Int16ub,
    # supplementary remote party id + counter when the ACB originates for a user, then a
    # supplementary originator counter or a KA certificate (use-case specific)
    "supplementary" / Optional(Struct("remote_party" / Bytes(8), "remote_counter" / Int64ub)),
    "tail" / GreedyBytes,
)

class SignatureField(Adapter):
    """The trailing signature field: None when absent (a pre-command), b"" for `00`,
    the 64-byte r||s for `40` + signature."""

    def _decode(self, obj, context, path):
        if obj == b"":
            return None
        if obj == b"\x00":
            return b""
        if len(obj) == 65 and obj[0] == 0x40:
            return bytes(obj[1:])
        raise ValidationError(f"signature field must be absent, 00 or 40 + 64 bytes "
                              f"(found {len(obj)} bytes)", path=path)

    def _encode(self, obj, context, path):
        if obj is None:
            return b""
        if obj == b"":
            return b"\x00"
        if len(obj) != 64:
            raise ValidationError("a signature is 64 bytes r||s", path=path)
        return b"\x40" + bytes(obj)


Signature = SignatureField(GreedyBytes)

GeneralSigning = Struct(
    "tag" / Const(b"\xDF"),
    "transaction_id_length" / Const(b"\x09"),
    "cra_flag" / CraFlag,
    "originator_counter" / Int64ub,
    "originator" / Prefixed(Const(8, Byte), Bytes(8)),
    "recipient" / Prefixed(Const(8, Byte), Bytes(8)),
    "date_time" / Select(Prefixed(Const(12, Byte), Bytes(12)), Const(b"\x00")),
    "other_information" / Prefixed(ber_length, OtherInformation),
    "payload" / Prefixed(ber_length, GreedyBytes),
    "signature" / Signature,
)

MacProtected = Struct(
    "tag" / Const(b"\xDD"),
    "reserved" / Const(b"\x00" * 6),
    "length" / ber_length,
    "security_header" / Const(SECURITY_HEADER),
    "body" / FixedSized(this.length - len(SECURITY_HEADER) - MAC_LENGTH, GeneralSigning),
    "mac" / Bytes(MAC_LENGTH),
    Terminated,
)


def decode(data: bytes):
    """A construct Container for a GBCS message; `mac` is None when it is only signed."""
    stream = io.BytesIO(bytes(data))
    try:
        if data[:1] == b"\xDD":
            message = MacProtected.parse_stream(stream)
            body, mac = message.body, message.mac
        else:
            body, mac = GeneralSigning.parse_stream(stream), None
    except ConstructError as exc:
        raise GbcsCodecError(stream.tell(), _reason(exc)) from None
    body.mac = mac
    return body


def encode(body, mac: bytes | None = None) -> bytes:
    """Build a message from a GeneralSigning container (and its MAC when MAC'd)."""
    try:
        signing = GeneralSigning.build(body)
        if mac is None:
            return signing
        length = len(SECURITY_HEADER) + len(signing) + MAC_LENGTH
        return MacProtected.build({"length": length, "body": body, "mac": mac})
    except ConstructError as exc:
        raise GbcsCodecError(None, _reason(exc)) from None


def plain_fields(body) -> dict:
    """A decoded message as the firmware's `GbcsMessage.fields()` gives it (same names,
    same None for an absent date-time, supplementary party or signature), to compare the
    two codecs' readings."""
    supplementary = body.other_information.supplementary
    date_time = body.date_time
    return {
        "cra_flag": int(body.cra_flag), "originator_counter": body.originator_counter,
        "originator": body.originator, "recipient": body.recipient,
        "message_code": body.other_information.message_code, "payload": body.payload,
        "date_time": date_time if isinstance(date_time, bytes) and len(date_time) == 12
        else None,
        "supplementary_remote_party": supplementary.remote_party if supplementary else None,
        "supplementary_remote_counter": (supplementary.remote_counter if supplementary
                                         else None),
        "other_info_tail": body.other_information.tail, "signature": body.signature or None,
        "signature_field": body.signature is not None, "mac": body.mac}


def _reason(exc: ConstructError) -> str:
    text = str(exc)
    return text.split("\n")[0] if text else type(exc).__name__
