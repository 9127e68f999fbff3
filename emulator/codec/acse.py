"""ACSE PDUs (AARQ, AARE, RLRQ, RLRE) and the xDLMS Initiate PDUs, as construct.

The host-side, declarative twin of ``firmware/dlms/acse.py`` (written apart from it so
each checks the other). BER per ISO/IEC 8825-1 as profiled by DLMS UA 1000-2 Green Book
9.4 (ISO/IEC 8650-1 AARQ/AARE/RLRQ/RLRE with the DLMS subset); user-information carries
an A-XDR xDLMS InitiateRequest / InitiateResponse / ConfirmedServiceError (Green Book 9.5).

A PDU is ``Pdu``: an [APPLICATION n] tag and a BER length around a ``GreedyRange`` of
tagged TLVs (``Tlv``). ``FIELDS[tag]`` maps every element tag to its field name and the
construct of its contents; ``decode_acse`` / ``encode_acse`` turn the TLV list into the
named-field dict and back, skipping element tags they do not know.

Field dicts (same names and value model as the firmware ``fields()``):
``{"pdu": "aarq"|"aare"|"rlrq"|"rlre", <field>: value or None, ...}``.

``decode_user_information(bytes) -> {"pdu": "initiate_request"|"initiate_response"|
"confirmed_service_error", ...}``, ``encode_user_information(dict) -> bytes``.
Every decoding failure raises ``AcseCodecError(offset, reason)``.
"""

import io

from construct import (
    Bytes, Const, Construct, ConstructError, ExprAdapter, FocusedSeq, GreedyBytes,
    GreedyRange, IfThenElse, Int8sb, Int8ub, Int16ub, BytesInteger, Mapping, Prefixed,
    Rebuild, Struct, Computed, Tell, Terminated, stream_read, stream_write, this,
)

from emulator.codec import axdr
from emulator.codec.errors import CodecError
from emulator.codec.xdlms import AxdrOptional, Bool01


class AcseCodecError(CodecError):
    layer = "acse"


# ---------------------------------------------------------------- BER primitives
# ISO/IEC 8825-1 8.1.2 (identifier octets) and 8.1.3 (definite length).

MAX_LENGTH = 0xFFFF


class BerLength(Construct):
    """Definite length: short form below 0x80, else 0x81/0x82 + 1/2 octets (bounded)."""

    def _parse(self, stream, context, path):
        first = stream_read(stream, 1, path)[0]
        if first < 0x80:
            return first
        if first == 0x80:
            raise ConstructError("indefinite length not allowed", path=path)
        count = first & 0x7F
        if count > 2:
            raise ConstructError("length of %d octets exceeds the bound" % count, path=path)
        return int.from_bytes(stream_read(stream, count, path), "big")

    def _build(self, obj, stream, context, path):
        if not 0 <= obj <= MAX_LENGTH:
            raise ConstructError("BER length %r out of range" % obj, path=path)
        if obj < 0x80:
            data = bytes((obj,))
        elif obj < 0x100:
            data = bytes((0x81, obj))
        else:
            data = bytes((0x82,)) + obj.to_bytes(2, "big")
        stream_write(stream, data, len(data), path)
        return obj


class BerTag(Construct):
    """Identifier octets as bytes; a high tag number (low bits 0x1F) spans up to 5 octets."""

    def _parse(self, stream, context, path):
        tag = stream_read(stream, 1, path)
        if tag[0] & 0x1F == 0x1F:
            while True:
                if len(tag) >= 5:
                    raise ConstructError("tag number too long", path=path)
                b = stream_read(stream, 1, path)
                tag += b
                if not b[0] & 0x80:
                    break
        return tag

    def _build(self, obj, stream, context, path):
        stream_write(stream, obj, len(obj), path)
        return obj


Tlv = Struct("tag" / BerTag(), "value" / Prefixed(BerLength(), GreedyBytes))

# The PDU: [APPLICATION n] IMPLICIT SEQUENCE (constructed), its elements in any order.
PDU_TAGS = {"aarq": 0x60, "aare": 0x61, "rlrq": 0x62, "rlre": 0x63}
PduHeader = Struct("tag" / Int8ub, "length" / BerLength())
Elements = Struct(
    "elements" / GreedyRange(Struct("offset" / Tell, "tag" / BerTag(),
                                    "value" / Prefixed(BerLength(), GreedyBytes))),
    "end" / Tell,
)


def _inner(tag):
    """Contents holding exactly one primitive TLV with the given tag (EXPLICIT tagging)."""
    return FocusedSeq("value", Const(bytes((tag,))),
                      "value" / Prefixed(BerLength(), GreedyBytes), Terminated)


OctetStringField = _inner(0x04)        # AP titles, AE qualifiers, user-information
ObjectIdentifierField = _inner(0x06)   # application-context-name
CharStringField = _inner(0x80)         # Authentication-value: charstring [0] GraphicString


def _uint_decode(obj, ctx):
    if not 1 <= len(obj) <= 4:
        raise ConstructError("INTEGER of %d bytes" % len(obj))
    if obj[0] & 0x80:
        raise ConstructError("negative INTEGER")
    return int.from_bytes(obj, "big")


def _uint_encode(obj, ctx):
    if not 0 <= obj <= 0x7FFFFFFF:
        raise ConstructError("INTEGER %r out of range" % obj)
    return obj.to_bytes(obj.bit_length() // 8 + 1, "big")  # minimal, sign bit clear


UnsignedInteger = ExprAdapter(GreedyBytes, _uint_decode, _uint_encode)
IntegerField = FocusedSeq("value", Const(b"\x02"),
                          "value" / Prefixed(BerLength(), UnsignedInteger), Terminated)

# result-source-diagnostic ::= CHOICE { acse-service-user [1], acse-service-provider [2] }
DiagnosticField = Struct(
    "diagnostic_source" / Mapping(Int8ub, {1: 0xA1, 2: 0xA2}),
    "result_source_diagnostic" / Prefixed(BerLength(), IntegerField),
    Terminated,
)


def _requirements_decode(obj, ctx):
    # ACSE-requirements ::= BIT STRING { authentication(0) }; first octet: unused bits
    if len(obj) < 1 or obj[0] > 7 or (len(obj) == 1 and obj[0] != 0):
        raise ConstructError("bad ACSE-requirements BIT STRING")
    return len(obj) > 1 and bool(obj[1] & 0x80)


AcseRequirements = ExprAdapter(GreedyBytes, _requirements_decode,
                               lambda obj, ctx: b"\x07\x80" if obj else b"\x07\x00")
ProtocolVersion = ExprAdapter(Bytes(2), lambda obj, ctx: int.from_bytes(obj, "big"),
                              lambda obj, ctx: obj.to_bytes(2, "big"))
ObjectIdentifier = GreedyBytes        # IMPLICIT OBJECT IDENTIFIER: the content octets

_COMMON = {
    0x80: ("protocol_version", FocusedSeq("value", "value" / ProtocolVersion, Terminated)),
    0xA1: ("application_context_name", ObjectIdentifierField),
    0xBE: ("user_information", OctetStringField),
}

# Element tag -> (field name, contents construct), per PDU (Green Book 9.4, ISO 8650-1)
FIELDS = {
    "aarq": {**_COMMON, **{
        0xA2: ("called_ap_title", OctetStringField),
        0xA3: ("called_ae_qualifier", OctetStringField),
        0xA6: ("calling_ap_title", OctetStringField),
        0xA7: ("calling_ae_qualifier", OctetStringField),
        0x8A: ("sender_acse_requirements", AcseRequirements),
        0x8B: ("mechanism_name", ObjectIdentifier),
        0xAC: ("calling_authentication_value", CharStringField),
    }},
    "aare": {**_COMMON, **{
        0xA2: ("result", IntegerField),
        0xA3: (("diagnostic_source", "result_source_diagnostic"), DiagnosticField),
        0xA4: ("responding_ap_title", OctetStringField),
        0x88: ("responder_acse_requirements", AcseRequirements),
        0x89: ("mechanism_name", ObjectIdentifier),
        0xAA: ("responding_authentication_value", CharStringField),
    }},
    "rlrq": {0x80: ("reason", UnsignedInteger), 0xBE: ("user_information", OctetStringField)},
    "rlre": {0x80: ("reason", UnsignedInteger), 0xBE: ("user_information", OctetStringField)},
}

# The order elements are written in: ascending tag number (the ASN.1 SEQUENCE order).
ORDER = {
    "aarq": ["protocol_version", "application_context_name", "called_ap_title",
             "called_ae_qualifier", "calling_ap_title", "calling_ae_qualifier",
             "sender_acse_requirements", "mechanism_name", "calling_authentication_value",
             "user_information"],
    "aare": ["protocol_version", "application_context_name", "result",
             ("diagnostic_source", "result_source_diagnostic"), "responding_ap_title",
             "responder_acse_requirements", "mechanism_name",
             "responding_authentication_value", "user_information"],
    "rlrq": ["reason", "user_information"],
    "rlre": ["reason", "user_information"],
}

REQUIRED = {
    "aarq": ("application_context_name",),
    "aare": ("application_context_name", "result", "result_source_diagnostic"),
    "rlrq": (),
    "rlre": (),
}

_PDU_BY_TAG = {v: k for k, v in PDU_TAGS.items()}


def _names(key):
    return key if isinstance(key, tuple) else (key,)


def field_names(pdu):
    names = []
    for key in ORDER[pdu]:
        names.extend(_names(key))
    return names


def decode_acse(buf):
    """BER bytes -> field dict; AcseCodecError on anything malformed."""
    buf = bytes(buf)
    stream = io.BytesIO(buf)
    try:
        header = PduHeader.parse_stream(stream)
    except ConstructError as e:
        raise AcseCodecError(stream.tell(), "PDU header: %s" % _reason(e))
    pdu = _PDU_BY_TAG.get(header.tag)
    if pdu is None:
        raise AcseCodecError(0, "unknown ACSE tag 0x%02x" % header.tag)
    start = stream.tell()
    if start + header.length > len(buf):
        raise AcseCodecError(start, "length %d exceeds the %d bytes left"
                             % (header.length, len(buf) - start))
    if start + header.length < len(buf):
        raise AcseCodecError(start + header.length, "trailing bytes after the PDU")
    content = buf[start:]
    parsed = Elements.parse(content)
    if parsed.end != len(content):
        raise AcseCodecError(start + parsed.end, "malformed element TLV")
    fields = {"pdu": pdu}
    for name in field_names(pdu):
        fields[name] = None
    table = FIELDS[pdu]
    for element in parsed.elements:
        entry = table.get(element.tag[0]) if len(element.tag) == 1 else None
        pos = start + element.offset
        if entry is not None:
            key, con = entry
            try:
                value = con.parse(element.value)
            except ConstructError as e:
                raise AcseCodecError(pos, "%s: %s" % (_names(key)[-1], _reason(e)))
            if isinstance(key, tuple):
                for name in key:
                    fields[name] = value[name]
            else:
                fields[key] = value
    for name in REQUIRED[pdu]:
        if fields[name] is None:
            raise AcseCodecError(start, "%s without %s" % (pdu.upper(), name))
    if pdu == "aare" and fields["diagnostic_source"] is None:
        fields["diagnostic_source"] = 1
    return fields


def encode_acse(fields):
    """Field dict (as from decode_acse) -> BER bytes."""
    pdu = fields["pdu"]
    by_name = {}
    for tag, (key, con) in FIELDS[pdu].items():
        by_name[key] = (tag, con)
    elements = []
    for key in ORDER[pdu]:
        tag, con = by_name[key]
        if isinstance(key, tuple):
            value = {name: fields.get(name) for name in key}
            if value[key[-1]] is None:
                continue
            if value["diagnostic_source"] is None:
                value["diagnostic_source"] = 1
        else:
            value = fields.get(key)
            if value is None:
                continue
        try:
            elements.append({"tag": bytes((tag,)), "value": con.build(value)})
        except (ConstructError, TypeError, ValueError, OverflowError) as e:
            raise AcseCodecError(None, "%s: %s" % (_names(key)[-1], _reason(e)))
    for name in REQUIRED[pdu]:
        if fields.get(name) is None:
            raise AcseCodecError(None, "%s needs %s" % (pdu.upper(), name))
    try:
        content = b"".join(Tlv.build(e) for e in elements)
        header = PduHeader.build({"tag": PDU_TAGS[pdu], "length": len(content)})
    except ConstructError as e:
        raise AcseCodecError(None, "%s: %s" % (pdu.upper(), _reason(e)))
    return header + content


# ---------------------------------------------------------------- xDLMS in user-information
# A-XDR (IEC 61334-6); Green Book 9.5 InitiateRequest, InitiateResponse, ConfirmedServiceError


# A-XDR variable length, strict BOOLEAN and OPTIONAL: shared with the APDU codec
AxdrLength = axdr.AxdrLength


def AxdrDefault(subcon, default):
    """Component with a DEFAULT: 00 means the default, 01 + value otherwise."""
    return FocusedSeq(
        "value",
        "present" / Rebuild(Bool01, lambda ctx: ctx.value != default),
        "value" / IfThenElse(this.present, subcon, Computed(default)),
    )


# Conformance ::= [APPLICATION 31] IMPLICIT BIT STRING (SIZE(24)), BER inside A-XDR
Conformance = FocusedSeq("value", Const(b"\x5f\x1f\x04\x00"), "value" / BytesInteger(3))

InitiateRequest = Struct(
    Const(b"\x01"),
    "dedicated_key" / AxdrOptional(Prefixed(AxdrLength, GreedyBytes)),
    "response_allowed" / AxdrDefault(Bool01, True),
    "proposed_quality_of_service" / AxdrOptional(Int8sb),
    "proposed_dlms_version_number" / Int8ub,
    "proposed_conformance" / Conformance,
    "client_max_receive_pdu_size" / Int16ub,
    Terminated,
)

InitiateResponse = Struct(
    Const(b"\x08"),
    "negotiated_quality_of_service" / AxdrOptional(Int8sb),
    "negotiated_dlms_version_number" / Int8ub,
    "negotiated_conformance" / Conformance,
    "server_max_receive_pdu_size" / Int16ub,
    "vaa_name" / Int16ub,
    Terminated,
)

# ConfirmedServiceError ::= CHOICE { initiateError [1] ServiceError, ... } with
# ServiceError ::= CHOICE { ..., initiate [6] IMPLICIT ENUMERATED, ... }
ConfirmedServiceError = Struct(
    Const(b"\x0e"),
    "confirmed_service" / Int8ub,
    "service_error" / Int8ub,
    "value" / Int8ub,
    Terminated,
)

USER_INFORMATION = {
    "initiate_request": (0x01, InitiateRequest),
    "initiate_response": (0x08, InitiateResponse),
    "confirmed_service_error": (0x0E, ConfirmedServiceError),
}
_UI_BY_TAG = {tag: (name, con) for name, (tag, con) in USER_INFORMATION.items()}


def decode_user_information(buf):
    buf = bytes(buf)
    if not buf:
        raise AcseCodecError(0, "empty user-information")
    entry = _UI_BY_TAG.get(buf[0])
    if entry is None:
        raise AcseCodecError(0, "unsupported xDLMS PDU 0x%02x in user-information" % buf[0])
    name, con = entry
    stream = io.BytesIO(buf)
    try:
        parsed = con.parse_stream(stream)
    except ConstructError as e:
        raise AcseCodecError(stream.tell(), "%s: %s" % (name, _reason(e)))
    return _plain(parsed, name)


def encode_user_information(fields):
    con = USER_INFORMATION[fields["pdu"]][1]
    try:
        return con.build({k: v for k, v in fields.items() if k != "pdu"})
    except (ConstructError, TypeError, ValueError, OverflowError) as e:
        raise AcseCodecError(None, "%s: %s" % (fields["pdu"], _reason(e)))


def _plain(container, name):
    out = {"pdu": name}
    for k, v in container.items():
        if not k.startswith("_"):
            out[k] = v
    return out


def _reason(e):
    text = str(e).strip()
    return text.splitlines()[-1] if text else type(e).__name__
