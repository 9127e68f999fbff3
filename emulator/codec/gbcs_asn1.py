"""GBCS ASN.1 payloads as declarative `construct` definitions (GBCS section 13).

The host-side oracle for `firmware/gbcs/credentials.py` (CS02b), and the CS02e, CS03/CS04
join/unjoin, CS06 activate-firmware and GCS28 set-time payloads: written from the ASN.1 module, sharing no code with the firmware
reader, and held to the same fields and bytes on the RTDS vectors (tests/emulator/
test_cs02.py). Tags (X.690 8.1.2): universal INTEGER 02, BIT STRING 03, OCTET STRING 04,
NULL 05, ENUMERATED 0A, GeneralizedTime 18, SEQUENCE 30; context-specific [n] 80+n,
constructed A0+n.

Lengths: the RTDS payloads write every length from 128 up as `82 hi lo` (not DER's
shortest form); `DerLength` reads any definite form and builds that one, so a decoded
RTDS payload rebuilds byte for byte.

Not compiled: the element lengths are data-dependent and `DerLength` is a custom
construct, which `construct`'s compiler cannot emit.
"""

from __future__ import annotations

import io

from construct import (
    Adapter,
    Const,
    Construct,
    ConstructError,
    FocusedSeq,
    GreedyBytes,
    GreedyRange,
    GreedyString,
    Optional,
    Prefixed,
    RawCopy,
    Select,
    Struct,
    Terminated,
    ValidationError,
)

from emulator.codec.errors import CodecError


class Asn1CodecError(CodecError):
    layer = "gbcs-asn1"


class DerLength(Construct):
    """X.690 8.1.3 definite length; builds the RTDS form (short, else 82 + two octets)."""

    def _parse(self, stream, context, path):
        first = stream.read(1)
        if not first:
            raise ConstructError("length expected, payload ends", path=path)
        if first[0] < 0x80:
            return first[0]
        count = first[0] & 0x7F
        if count == 0:
            raise ConstructError("indefinite length is not allowed", path=path)
        if count > 4:
            raise ConstructError(f"length of {count} octets is absurd", path=path)
        octets = stream.read(count)
        if len(octets) != count:
            raise ConstructError("length octets run past the payload", path=path)
        return int.from_bytes(octets, "big")

    def _build(self, obj, stream, context, path):
        if obj < 0x80:
            stream.write(bytes([obj]))
        elif obj < 0x10000:
            stream.write(bytes([0x82]) + obj.to_bytes(2, "big"))
        else:
            octets = obj.to_bytes((obj.bit_length() + 7) // 8, "big")
            stream.write(bytes([0x80 | len(octets)]) + octets)
        return obj

    def _sizeof(self, context, path):
        raise ConstructError("a DER length has no fixed size", path=path)


der_length = DerLength()


def Der(tag: int, body):
    """One element: its tag, its length, and `body` exactly filling the value."""
    return FocusedSeq("value", Const(bytes([tag])),
                      "value" / Prefixed(der_length, FocusedSeq("v", "v" / body, Terminated)))


class IntegerBody(Adapter):
    """INTEGER / ENUMERATED contents (X.690 8.3): minimal two's complement."""

    def _decode(self, obj, context, path):
        if not obj:
            raise ValidationError("an integer needs at least one octet", path=path)
        if len(obj) > 1 and ((obj[0] == 0 and obj[1] < 0x80) or (obj[0] == 0xFF and obj[1] >= 0x80)):
            raise ValidationError("integer not in its shortest form", path=path)
        return int.from_bytes(obj, "big", signed=True)

    def _encode(self, obj, context, path):
        size = 1
        while not -(1 << (8 * size - 1)) <= obj < (1 << (8 * size - 1)):
            size += 1
        return obj.to_bytes(size, "big", signed=True)


def Integer(tag: int = 0x02):
    return Der(tag, IntegerBody(GreedyBytes))


class KeyUsageBody(Adapter):
    """A trust-anchor cell's KeyUsage: one named bit of an X.509 KeyUsage BIT STRING
    (bit 0 = most significant bit), encoded with trailing zero bits dropped (X.690 11.2.2)."""

    def _decode(self, obj, context, path):
        if len(obj) < 2 or obj[0] > 7:
            raise ValidationError("BIT STRING needs its unused-bits octet and data", path=path)
        bits = [i for i in range((len(obj) - 1) * 8 - obj[0])
                if obj[1 + i // 8] & (0x80 >> (i % 8))]
        if len(bits) != 1:
            raise ValidationError("a trust-anchor cell names exactly one key usage", path=path)
        return bits[0]

    def _encode(self, obj, context, path):
        data = bytearray(obj // 8 + 1)
        data[obj // 8] = 0x80 >> (obj % 8)
        return bytes([7 - obj % 8]) + bytes(data)


class CertificateBytes(Adapter):
    """A whole X.509 Certificate (RFC 5280), kept as its DER bytes."""

    def _decode(self, obj, context, path):
        return obj.data

    def _encode(self, obj, context, path):
        if not isinstance(obj, (bytes, bytearray)) or obj[:1] != b"\x30":
            raise ValidationError("a certificate is its DER bytes", path=path)
        return {"data": bytes(obj)}


def SequenceOf(item, tag: int = 0x30):
    return Der(tag, GreedyRange(item))


Null = Const(b"\x05\x00")
OctetString = Der(0x04, GreedyBytes)
GeneralizedTime = Der(0x18, GreedyString("ascii"))
Certificate = CertificateBytes(RawCopy(Der(0x30, GreedyBytes)))

# TrustAnchorCellIdentifier ::= SEQUENCE { remotePartyRole INTEGER, keyUsage BIT STRING,
#                                          cellUsage INTEGER DEFAULT management }
CellIdBody = Struct(
    "role" / Integer(),
    "key_usage" / Der(0x03, KeyUsageBody(GreedyBytes)),
    "cell_usage" / Optional(Integer()),          # None: management (the DEFAULT)
)
CellId = Der(0x30, CellIdBody)

SpecialistSeqNumber = Der(0x30, Struct("usage" / Integer(), "seq_number" / Integer()))

RemotePartySeqNumberChange = Der(0x30, Struct(
    "role" / Integer(),
    "floor" / Integer(),
    "specialist" / Optional(SequenceOf(SpecialistSeqNumber)),
))

# -- CS02b Update Security Credentials (GBCS 13.3.2.4) ---------------------------------------
AuthorisingRemotePartyControl = Der(0x30, Struct(
    "mode" / Integer(),
    "plaintext_key" / Optional(Der(0x80, GreedyBytes)),
    "cpv_checks" / Optional(Integer(0x81)),
    "authorising_cell" / Optional(Der(0xA2, CellIdBody)),
    "seq_number" / Integer(0x83),
    "new_floor" / Optional(Integer(0x84)),
    "new_specialist_floors" / Optional(SequenceOf(SpecialistSeqNumber, 0xA5)),
    "other_changes" / Optional(SequenceOf(RemotePartySeqNumberChange, 0xA6)),
))

TrustAnchorReplacement = Der(0x30, Struct(
    "certificate" / Certificate,
    "target" / CellId,
))

UpdateSecurityCredentials = Der(0x30, Struct(
    "control" / AuthorisingRemotePartyControl,
    "replacements" / SequenceOf(TrustAnchorReplacement),
    "path" / SequenceOf(Certificate),
    "execution_date_time" / Optional(GeneralizedTime),
))

ReplacementOutcome = Der(0x30, Struct(
    "cell" / CellId,
    "status" / Integer(0x0A),
    "existing_eui" / OctetString,
    "existing_key_id" / OctetString,
    "replacing_eui" / OctetString,
    "replacing_key_id" / OctetString,
))

ExecutionOutcome = Der(0x30, Struct(
    "seq_number" / Integer(),
    "mode" / Integer(),
    "seq_number_changes" / SequenceOf(RemotePartySeqNumberChange),
    "outcomes" / SequenceOf(ReplacementOutcome),
))

UpdateSecurityCredentialsResponse = Der(0x30, Struct(
    "accepted" / Null,
    "outcome" / Optional(ExecutionOutcome),
))

UpdateSecurityCredentialsAlert = Der(0x30, Struct(
    "alert_code" / Integer(),
    "execution_date_time" / GeneralizedTime,
    "outcome" / ExecutionOutcome,
))

# -- CS03 join / CS04 unjoin (GBCS 13.3.3, 13.3.4) ------------------------------------------
# value names (JoinMethodAndRole, DeviceType, response codes): firmware/gbcs/codes.py
JoinDeviceCommand = Der(0x30, Struct(
    "join_method_and_role" / Integer(),
    "entity_id" / OctetString,
    "device_type" / Integer(),
    "certificate" / Optional(Certificate),
))
JoinDeviceResponse = Integer()           # codes.JOIN_RESPONSES
UnjoinDeviceCommand = OctetString         # the entity id
UnjoinDeviceResponse = Integer()          # codes.UNJOIN_RESPONSES

# -- CS02e provide device certificate (GBCS 13.3.2.5) -----------------------------------------
ProvideDeviceCertificateCommand = Der(0x30, Struct(
    "key_usage" / Der(0x03, KeyUsageBody(GreedyBytes))))
# the certificate, or a response code (1 invalid key usage, 2 no certificate held,
# 3 certificate retrieval failure)
ProvideDeviceCertificateResponse = Select(Certificate, Integer())

# -- CS06 activate firmware (GBCS 13.3.5) -------------------------------------------------------
ActivateFirmwareOutcome = Der(0x30, Struct(
    "response_code" / Integer(),                 # 0 success, 1 no image, 2 hash mismatch, 3 failure
    "firmware_version" / OctetString,
))
ActivateFirmwareCommand = Der(0x30, Struct(
    "image_hash" / OctetString,
    "originator_counter" / Integer(),
    "execution_date_time" / Optional(GeneralizedTime),
))
ActivateFirmwareResponse = Select(Null, ActivateFirmwareOutcome)
ActivateFirmwareAlert = Der(0x30, Struct(
    "alert_code" / Integer(),
    "execution_date_time" / GeneralizedTime,
    "originator_counter" / Integer(),
    "outcome" / ActivateFirmwareOutcome,
))

# -- GCS28 set time on the GSME (GBCS 13.3.6) -------------------------------------------------
SetTimeCommand = Der(0x30, Struct(
    "validity_start" / GeneralizedTime,
    "validity_end" / GeneralizedTime,
))
SetTimeResponse = Der(0x30, Struct(
    "device_time" / GeneralizedTime,
    "time_status" / Integer(),                   # 0 reliable, 1 invalid, 2 unreliable
))

PAYLOADS = {
    "cs02b_command": UpdateSecurityCredentials,
    "cs02b_response": UpdateSecurityCredentialsResponse,
    "cs02b_alert": UpdateSecurityCredentialsAlert,
    "join_command": JoinDeviceCommand,
    "join_response": JoinDeviceResponse,
    "unjoin_command": UnjoinDeviceCommand,
    "unjoin_response": UnjoinDeviceResponse,
    "cs02e_command": ProvideDeviceCertificateCommand,
    "cs02e_response": ProvideDeviceCertificateResponse,
    "cs06_command": ActivateFirmwareCommand,
    "cs06_response": ActivateFirmwareResponse,
    "cs06_alert": ActivateFirmwareAlert,
    "gcs28_command": SetTimeCommand,
    "gcs28_response": SetTimeResponse,
}


def decode(kind: str, data: bytes):
    """Decode one payload; raises Asn1CodecError(offset, reason)."""
    definition = PAYLOADS[kind]
    stream = io.BytesIO(bytes(data))
    try:
        value = definition.parse_stream(stream)
        Terminated.parse_stream(stream)
    except ConstructError as exc:
        raise Asn1CodecError(stream.tell(), _reason(exc)) from None
    return value


def encode(kind: str, value) -> bytes:
    try:
        return PAYLOADS[kind].build(value)
    except ConstructError as exc:
        raise Asn1CodecError(None, _reason(exc)) from None


def _reason(exc: ConstructError) -> str:
    text = str(exc)
    return text.split("\n")[0] if text else type(exc).__name__
