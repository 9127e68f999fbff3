"""xDLMS APDUs of the LN services as construct: GET, SET, ACTION, Exception-Response and
Data-Notification.

The host-side, declarative twin of ``firmware/dlms/apdu.py`` (written apart from it so
each checks the other). Layouts: DLMS UA 1000-2 Green Book 9.5, "Abstract syntax of
COSEM APDUs", encoded with A-XDR (IEC 61334-6); Data values are
``emulator.codec.axdr.Data`` converted to the tuple model of CORE_INTERFACES.md 1.

``XdlmsApdu`` is the whole APDU: tag, CHOICE (absent for D8 and 0F) and a ``Switch`` to
the variant's ``Struct``. The fixed layouts (attribute/method descriptor, block header,
invoke-id) are ``.compile()``d.

``decode_apdu(buf) -> (name, fields)`` and ``encode_apdu(name, fields) -> bytes`` use
the class names and field dicts of the firmware codec (``type(apdu).__name__`` and
``apdu.fields()``): e.g. ``("GetRequestNormal", {"invoke_id_and_priority": 0xC1,
"cosem_attribute_descriptor": {"class_id": 8, "instance_id": b"...", "attribute_id": 2},
"access_selection": None})``. Decoding failures raise ``XdlmsCodecError(offset, reason)``;
encoding failures raise it with ``offset=None``.
"""

import io
import struct

from construct import (
    Adapter, Bytes, Check, Construct, ConstructError, FocusedSeq,
    If, Int8sb, Int8ub, Int16ub, Int32ub,
    Rebuild, Struct, Switch, ValidationError, len_, stream_read, stream_write, this,
)

from emulator.codec import axdr
from emulator.codec.errors import CodecError


class XdlmsCodecError(CodecError):
    layer = "xdlms"


# ---------------------------------------------------------------- building blocks

class CheckedFixed(Construct):
    """A fixed layout, compiled, behind a checked read of its exact size: compiled
    construct reads with a bare io.read(n), which would let a truncated field through.
    No _emitparse on purpose, so an enclosing compiled parser links to this instance."""

    def __init__(self, subcon):
        super().__init__()
        self.size = subcon.sizeof()
        self.subcon = subcon.compile()

    def _parse(self, stream, context, path):
        start = stream.tell()
        try:
            return self.subcon.parse(stream_read(stream, self.size, path))
        except (ConstructError, struct.error):
            stream.seek(start)   # report the offset of the block, not of its end
            raise

    def _build(self, obj, stream, context, path):
        data = self.subcon.build(obj)
        stream_write(stream, data, self.size, path)
        return obj

    def _sizeof(self, context, path):
        return self.size


def _fixed(con):
    return CheckedFixed(con)


def _length(stream, context, path):
    """An A-XDR length; a bad prefix is reported at the prefix, not after it."""
    start = stream.tell()
    try:
        return Length._parsereport(stream, context, path)
    except ConstructError:
        stream.seek(start)
        raise


class DataValue(Adapter):
    """A-XDR Data in the firmware tuple model."""

    def _decode(self, obj, context, path):
        return axdr.to_model(obj)

    def _encode(self, obj, context, path):
        try:
            return axdr.from_model(obj)
        except Exception as e:  # the model checker's own error type is private
            raise ConstructError("bad Data value: %s" % e, path=path)


Data = DataValue(axdr.Data)
Length = axdr.AxdrLength


class OctetString(Construct):
    """A-XDR OCTET STRING: length then that many bytes, read with a checked read.
    No _emitparse on purpose (compiled Prefixed would read short without noticing)."""

    def _parse(self, stream, context, path):
        start = stream.tell()
        n = _length(stream, context, path)
        try:
            return stream_read(stream, n, path)
        except ConstructError:
            stream.seek(start)
            raise

    def _build(self, obj, stream, context, path):
        if not isinstance(obj, (bytes, bytearray)):
            raise ValidationError("octet-string must be bytes, got %r" % (obj,), path=path)
        Length._build(len(obj), stream, context, path)
        stream_write(stream, bytes(obj), len(obj), path)
        return obj


OctetString = OctetString()


class StrictBoolean(Construct):
    """A-XDR BOOLEAN restricted to 00/01 (any other octet would not re-encode the same).
    No _emitparse on purpose: compiled Mapping would leak a bare KeyError."""

    def _parse(self, stream, context, path):
        b = stream_read(stream, 1, path)[0]
        if b > 1:
            stream.seek(stream.tell() - 1)
            raise ValidationError("boolean must be 0 or 1, got %d" % b, path=path)
        return b == 1

    def _build(self, obj, stream, context, path):
        if obj is not True and obj is not False:
            raise ValidationError("boolean must be True or False, got %r" % (obj,), path=path)
        stream_write(stream, b"\x01" if obj else b"\x00", 1, path)
        return obj

    def _sizeof(self, context, path):
        return 1


Bool01 = StrictBoolean()

U8 = _fixed(Int8ub)
U32 = _fixed(Int32ub)


class BoundedArray(Construct):
    """SEQUENCE OF: an A-XDR count, then the items. A count that cannot fit in the bytes
    left (each item takes at least ``min_size``) is refused before reading any item."""

    def __init__(self, subcon, min_size):
        super().__init__()
        self.subcon = subcon
        self.min_size = min_size

    def _parse(self, stream, context, path):
        start = stream.tell()
        count = _length(stream, context, path)
        left = len(stream.getbuffer()) - stream.tell()
        if count * self.min_size > left:
            stream.seek(start)
            raise ValidationError("count %d cannot fit in the %d bytes left" % (count, left),
                                  path=path)
        return [self.subcon._parsereport(stream, context, path) for _ in range(count)]

    def _build(self, obj, stream, context, path):
        Length._build(len(obj), stream, context, path)
        for item in obj:
            self.subcon._build(item, stream, context, path)
        return obj


class Enumerated(Construct):
    """One octet restricted to known values (a CHOICE tag or an ENUMERATED); an unknown
    value is reported at its own offset, by name."""

    def __init__(self, what, values):
        super().__init__()
        self.what = what
        self.values = frozenset(values)

    def _parse(self, stream, context, path):
        value = stream_read(stream, 1, path)[0]
        if value not in self.values:
            stream.seek(stream.tell() - 1)
            raise ValidationError("unknown %s %d" % (self.what, value), path=path)
        return value

    def _build(self, obj, stream, context, path):
        if obj not in self.values:
            raise ValidationError("unknown %s %r" % (self.what, obj), path=path)
        stream_write(stream, bytes((obj,)), 1, path)
        return obj

    def _sizeof(self, context, path):
        return 1


class Unknown(Construct):
    """The default of a CHOICE Switch: names the tag that selected nothing, at its offset."""

    def __init__(self, what, key):
        super().__init__()
        self.what = what
        self.key = key

    def _parse(self, stream, context, path):
        stream.seek(stream.tell() - 1)
        raise ValidationError("unknown %s 0x%02x" % (self.what, context[self.key]), path=path)

    def _build(self, obj, stream, context, path):
        raise ValidationError("unknown %s %r" % (self.what, context.get(self.key)), path=path)


InvokeIdAndPriority = U8                         # Green Book 9.5 Invoke-Id-And-Priority
LongInvokeIdAndPriority = _fixed(Int32ub)

# Cosem-Attribute-Descriptor ::= SEQUENCE { class-id Unsigned16, instance-id
#   OCTET STRING (SIZE(6)), attribute-id Integer8 }
CosemAttributeDescriptor = _fixed(Struct(
    "class_id" / Int16ub, "instance_id" / Bytes(6), "attribute_id" / Int8sb))
CosemMethodDescriptor = _fixed(Struct(
    "class_id" / Int16ub, "instance_id" / Bytes(6), "method_id" / Int8sb))

# The head of DataBlock-G and DataBlock-SA: last-block BOOLEAN, block-number Unsigned32
BlockHeader = _fixed(Struct("last_block" / Bool01, "block_number" / Int32ub))
BlockNumber = U32


def AxdrOptional(subcon):
    """OPTIONAL component: presence octet 00/01, then the value when present."""
    return FocusedSeq(
        "value",
        "present" / Rebuild(Bool01, this.value != None),  # noqa: E711 (construct expression)
        "value" / If(this.present, subcon),
    )


def Choice2(name0, con0, name1, con1):
    """A two-way CHOICE [0]/[1] as two fields of which exactly one is not None."""
    return Struct(
        # 0 when the first alternative is present (a construct expression, compilable)
        "choice" / Rebuild(Enumerated("%s choice" % name0.replace("_", "-"), (0, 1)),
                           this[name0] == None),  # noqa: E711
        name0 / If(this.choice == 0, con0),
        name1 / If(this.choice == 1, con1),
    )


# Selective-Access-Descriptor ::= SEQUENCE { access-selector Unsigned8, access-parameters Data }
SelectiveAccess = Struct("access_selector" / U8, "access_parameters" / Data)
AccessSelection = AxdrOptional(SelectiveAccess)

DescriptorWithSelection = Struct(
    "cosem_attribute_descriptor" / CosemAttributeDescriptor,
    "access_selection" / AccessSelection,
)
# each Cosem-Attribute-Descriptor-With-Selection is at least 10 bytes (9 + presence octet)
DescriptorList = BoundedArray(DescriptorWithSelection, 10)

# Get-Data-Result ::= CHOICE { data [0] Data, data-access-result [1] Data-Access-Result }
DataAccessResult = U8
GetDataResult = Choice2("data", Data, "data_access_result", DataAccessResult)

# ---------------------------------------------------------------- GET (C0 / C4)

GetRequestNormal = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "cosem_attribute_descriptor" / CosemAttributeDescriptor,
    "access_selection" / AccessSelection,
)
GetRequestNext = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "block_number" / BlockNumber,
)
GetRequestWithList = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "attribute_descriptor_list" / DescriptorList,
)
GetResponseNormal = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "result" / GetDataResult,
)
# DataBlock-G ::= SEQUENCE { last-block, block-number, result CHOICE { raw-data [0]
#   OCTET STRING, data-access-result [1] Data-Access-Result } }
GetResponseWithDatablock = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "block_header" / BlockHeader,
    "result" / Choice2("raw_data", OctetString, "data_access_result", DataAccessResult),
)
GetResponseWithList = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "result" / BoundedArray(GetDataResult, 2),
)

# ---------------------------------------------------------------- SET (C1 / C5)
# DataBlock-SA ::= SEQUENCE { last-block BOOLEAN, block-number Unsigned32, raw-data OCTET STRING }

SetRequestNormal = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "cosem_attribute_descriptor" / CosemAttributeDescriptor,
    "access_selection" / AccessSelection,
    "value" / Data,
)
SetRequestWithFirstDatablock = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "cosem_attribute_descriptor" / CosemAttributeDescriptor,
    "access_selection" / AccessSelection,
    "block_header" / BlockHeader,
    "raw_data" / OctetString,
)
SetRequestWithDatablock = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "block_header" / BlockHeader,
    "raw_data" / OctetString,
)
SetRequestWithList = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "attribute_descriptor_list" / DescriptorList,
    "value_list" / BoundedArray(Data, 1),
)
SetRequestWithListAndFirstDatablock = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "attribute_descriptor_list" / DescriptorList,
    "block_header" / BlockHeader,
    "raw_data" / OctetString,
)
SetResponseNormal = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "result" / DataAccessResult,
)
SetResponseDatablock = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "block_number" / BlockNumber,
)
SetResponseLastDatablock = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "result" / DataAccessResult,
    "block_number" / BlockNumber,
)
SetResponseLastDatablockWithList = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "result" / BoundedArray(DataAccessResult, 1),
    "block_number" / BlockNumber,
)
SetResponseWithList = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "result" / BoundedArray(DataAccessResult, 1),
)

# ---------------------------------------------------------------- ACTION (C3 / C7)

ActionRequestNormal = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "cosem_method_descriptor" / CosemMethodDescriptor,
    "method_invocation_parameters" / AxdrOptional(Data),
)
# Action-Response-With-Optional-Data ::= SEQUENCE { result Action-Result,
#   return-parameters Get-Data-Result OPTIONAL }
ActionResponseNormal = Struct(
    "invoke_id_and_priority" / InvokeIdAndPriority,
    "result" / U8,
    "return_parameters" / AxdrOptional(GetDataResult),
)

# ---------------------------------------------------------------- D8, 0F

# ExceptionResponse ::= SEQUENCE { state-error [0] ENUMERATED, service-error [1] CHOICE }
# invocation-counter-error (6) carries the expected counter as Unsigned32.
ExceptionResponse = Struct(
    "state_error" / Enumerated("state-error", (1, 2)),
    "service_error" / Enumerated("service-error choice", (1, 2, 3, 4, 5, 6)),
    "invocation_counter" / If(this.service_error == 6, U32),
)

# Data-Notification ::= SEQUENCE { long-invoke-id-and-priority, date-time OCTET STRING
#   (empty or 12 bytes), notification-body Data }
DataNotification = Struct(
    "long_invoke_id_and_priority" / LongInvokeIdAndPriority,
    "date_time" / OctetString,
    Check((len_(this.date_time) == 0) | (len_(this.date_time) == 12)),
    "notification_body" / Data,
)

# ---------------------------------------------------------------- the APDU

GET_REQUEST, SET_REQUEST, ACTION_REQUEST = 0xC0, 0xC1, 0xC3
GET_RESPONSE, SET_RESPONSE, ACTION_RESPONSE = 0xC4, 0xC5, 0xC7
EXCEPTION_RESPONSE, DATA_NOTIFICATION = 0xD8, 0x0F

#: variant name -> (tag, choice or None, body construct)
VARIANTS = {
    "GetRequestNormal": (GET_REQUEST, 1, GetRequestNormal),
    "GetRequestNext": (GET_REQUEST, 2, GetRequestNext),
    "GetRequestWithList": (GET_REQUEST, 3, GetRequestWithList),
    "GetResponseNormal": (GET_RESPONSE, 1, GetResponseNormal),
    "GetResponseWithDatablock": (GET_RESPONSE, 2, GetResponseWithDatablock),
    "GetResponseWithList": (GET_RESPONSE, 3, GetResponseWithList),
    "SetRequestNormal": (SET_REQUEST, 1, SetRequestNormal),
    "SetRequestWithFirstDatablock": (SET_REQUEST, 2, SetRequestWithFirstDatablock),
    "SetRequestWithDatablock": (SET_REQUEST, 3, SetRequestWithDatablock),
    "SetRequestWithList": (SET_REQUEST, 4, SetRequestWithList),
    "SetRequestWithListAndFirstDatablock": (SET_REQUEST, 5, SetRequestWithListAndFirstDatablock),
    "SetResponseNormal": (SET_RESPONSE, 1, SetResponseNormal),
    "SetResponseDatablock": (SET_RESPONSE, 2, SetResponseDatablock),
    "SetResponseLastDatablock": (SET_RESPONSE, 3, SetResponseLastDatablock),
    "SetResponseLastDatablockWithList": (SET_RESPONSE, 4, SetResponseLastDatablockWithList),
    "SetResponseWithList": (SET_RESPONSE, 5, SetResponseWithList),
    "ActionRequestNormal": (ACTION_REQUEST, 1, ActionRequestNormal),
    "ActionResponseNormal": (ACTION_RESPONSE, 1, ActionResponseNormal),
    "ExceptionResponse": (EXCEPTION_RESPONSE, None, ExceptionResponse),
    "DataNotification": (DATA_NOTIFICATION, None, DataNotification),
}

_BY_KEY = {(tag, choice): name for name, (tag, choice, _) in VARIANTS.items()}
_NO_CHOICE = (EXCEPTION_RESPONSE, DATA_NOTIFICATION)
_CHOICE_TAGS = (GET_REQUEST, SET_REQUEST, ACTION_REQUEST, GET_RESPONSE, SET_RESPONSE,
                ACTION_RESPONSE)



def _family(tag):
    """One APDU family: its CHOICE octet and a Switch to the variants (Error if unknown)."""
    if tag in _NO_CHOICE:
        (con,) = [c for t, _, c in VARIANTS.values() if t == tag]
        return Struct("body" / con)
    return Struct(
        "choice" / U8,
        "body" / Switch(this.choice, {ch: c for t, ch, c in VARIANTS.values() if t == tag},
                        default=Unknown("choice of APDU", "choice")),
    )


#: The whole xDLMS APDU (interpreted)
XdlmsApdu = Struct(
    "tag" / U8,
    "apdu" / Switch(this.tag, {tag: _family(tag) for tag in _CHOICE_TAGS + _NO_CHOICE},
                    default=Unknown("APDU tag", "tag")),
)
#: The same, compiled (used for parsing and building; the Data adapter and checked
#: fixed blocks are linked in as instances)
XdlmsApduCompiled = XdlmsApdu.compile()


# ---------------------------------------------------------------- fields <-> containers

_FLATTEN = ("block_header", "result")   # nested containers merged into their parent


def _fields(name, container):
    out = {}
    for key, value in container.items():
        if key.startswith("_") or key in ("choice", "present"):
            continue
        out[key] = _plain(value)
    for key in _FLATTEN:
        if isinstance(out.get(key), dict) and key not in _KEEP_NESTED.get(name, ()):
            out.update(out.pop(key))
    return out


# variants whose "result" is a real nested field (Get-Data-Result), not a CHOICE to flatten
_KEEP_NESTED = {
    "GetResponseNormal": ("result",),
    "ActionResponseNormal": ("result",),
}


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()
                if not k.startswith("_") and k not in ("choice", "present")}
    if isinstance(value, list) and not isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _container(name, fields):
    body = dict(fields)
    con = VARIANTS[name][2]
    names = [sc.name for sc in con.subcons]
    if "block_header" in names:
        body["block_header"] = {"last_block": body.pop("last_block"),
                                "block_number": body.pop("block_number")}
    if name == "GetResponseWithDatablock":
        body["result"] = {"raw_data": body.pop("raw_data"),
                          "data_access_result": body.pop("data_access_result")}
    return body


def decode_apdu(buf):
    """Whole APDU -> (variant name, field dict); XdlmsCodecError on malformed input."""
    buf = bytes(buf)
    stream = io.BytesIO(buf)
    try:
        parsed = XdlmsApduCompiled.parse_stream(stream)
    except (ConstructError, struct.error) as e:
        raise XdlmsCodecError(stream.tell(), _reason(e))
    except axdr.AxdrCodecError as e:
        raise XdlmsCodecError(e.offset if e.offset is not None else stream.tell(), e.reason)
    except (KeyError, IndexError, ValueError, TypeError, OverflowError) as e:
        # generated (compiled) parsers can fail with plain exceptions: still our layer's error
        raise XdlmsCodecError(stream.tell(), "%s: %s" % (type(e).__name__, e))
    if stream.tell() != len(buf):
        raise XdlmsCodecError(stream.tell(), "%d trailing bytes" % (len(buf) - stream.tell()))
    name = _BY_KEY[(parsed.tag, parsed.apdu.get("choice"))]
    return name, _fields(name, parsed.apdu.body)


def encode_apdu(name, fields):
    """(variant name, field dict) -> APDU bytes."""
    if name not in VARIANTS:
        raise XdlmsCodecError(None, "unknown APDU variant %r" % name)
    tag, choice, _ = VARIANTS[name]
    try:
        return XdlmsApduCompiled.build({"tag": tag, "apdu": {"choice": choice,
                                                     "body": _container(name, fields)}})
    except (ConstructError, struct.error, KeyError, TypeError, ValueError, OverflowError) as e:
        raise XdlmsCodecError(None, "%s: %s" % (name, _reason(e)))


def _reason(e):
    text = str(e).strip()
    return text.splitlines()[-1] if text else type(e).__name__
