"""The DLMS ACCESS service as construct: access-request (D9) and access-response (DA).

The host-side, declarative twin of ``firmware/dlms/access.py`` (written apart from it so
each checks the other). Layouts: DLMS UA 1000-2 Green Book 9.3 "ACCESS service" and 9.5
ASN.1 (Access-Request, Access-Response and their bodies), encoded with A-XDR; descriptors,
Selective-Access-Descriptor and Data come from ``emulator.codec.xdlms``.

``decode_access(buf) -> (name, fields)`` with name ``"AccessRequest"`` or
``"AccessResponse"`` and the field dicts of the firmware codec's ``fields()``, plus
``"encodings"``: each Data value's own bytes, so that an unchanged value re-encodes as it
came (RTDS writes BOOLEAN TRUE as FF, A-XDR builds it as 01; both read as TRUE).
``encode_access(name, fields) -> bytes`` (``"encodings"`` optional). Errors are
``AccessCodecError(offset, reason)`` (``offset=None`` when encoding).
"""

import io
import struct

from construct import (
    Byte, ConstructError, Error, FocusedSeq, If, Int8ub, PrefixedArray, RawCopy, Rebuild,
    Struct, Switch, this,
)

from emulator.codec import axdr
from emulator.codec.errors import CodecError
from emulator.codec.xdlms import (
    Bool01, CosemAttributeDescriptor, CosemMethodDescriptor, Data, Length,
    LongInvokeIdAndPriority, OctetString, SelectiveAccess,
)


class AccessCodecError(CodecError):
    layer = "access"


ACCESS_REQUEST = 0xD9
ACCESS_RESPONSE = 0xDA
GET, SET, ACTION, GET_WITH_SELECTION, SET_WITH_SELECTION = 1, 2, 3, 4, 5

# Access-Request-Specification ::= CHOICE { get [1], set [2], action [3],
#   get-with-selection [4], set-with-selection [5] } (Green Book 9.5)
_WITH_SELECTION = Struct(
    "descriptor" / CosemAttributeDescriptor,
    "access_selection" / SelectiveAccess,
)
RequestSpecification = Struct(
    "kind" / Int8ub,
    "body" / Switch(this.kind, {
        GET: Struct("descriptor" / CosemAttributeDescriptor),
        SET: Struct("descriptor" / CosemAttributeDescriptor),
        ACTION: Struct("descriptor" / CosemMethodDescriptor),
        GET_WITH_SELECTION: _WITH_SELECTION,
        SET_WITH_SELECTION: _WITH_SELECTION,
    }, default=Error),
)
RequestSpecifications = PrefixedArray(Length, RequestSpecification)

# Access-Response-Specification ::= CHOICE { get [1] Data-Access-Result, set [2]
#   Data-Access-Result, action [3] Action-Result }
ResponseSpecification = Struct(
    "kind" / Int8ub,
    "result" / Switch(this.kind, {GET: Byte, SET: Byte, ACTION: Byte}, default=Error),
)

# SEQUENCE OF Data, each value with its own bytes kept
ListOfData = PrefixedArray(Length, RawCopy(Data))

AccessRequestBody = Struct(
    "long_invoke_id_and_priority" / LongInvokeIdAndPriority,
    "date_time" / OctetString,
    "specifications" / RequestSpecifications,
    "data" / ListOfData,
)

AccessResponseBody = Struct(
    "long_invoke_id_and_priority" / LongInvokeIdAndPriority,
    "date_time" / OctetString,
    # access-request-specification [0] ... OPTIONAL: A-XDR presence octet
    "request_specifications" / FocusedSeq(
        "value",
        "present" / Rebuild(Bool01, this.value != None),  # noqa: E711 (construct expr)
        "value" / If(this.present, RequestSpecifications),
    ),
    "data" / ListOfData,
    "results" / PrefixedArray(Length, ResponseSpecification),
)

AccessApdu = Struct(
    "tag" / Int8ub,
    "body" / Switch(this.tag, {ACCESS_REQUEST: AccessRequestBody,
                               ACCESS_RESPONSE: AccessResponseBody}, default=Error),
)
AccessApduCompiled = AccessApdu.compile()

_NAMES = {ACCESS_REQUEST: "AccessRequest", ACCESS_RESPONSE: "AccessResponse"}
_TAGS = {"AccessRequest": ACCESS_REQUEST, "AccessResponse": ACCESS_RESPONSE}


# ---------------------------------------------------------------- fields <-> containers

def _descriptor(container):
    out = {"class_id": container.class_id, "instance_id": bytes(container.instance_id)}
    if "method_id" in container:
        out["method_id"] = container.method_id
    else:
        out["attribute_id"] = container.attribute_id
    return out


def _spec_fields(spec):
    selection = spec.body.get("access_selection")
    if selection is not None:
        selection = {"access_selector": selection.access_selector,
                     "access_parameters": selection.access_parameters}
    return {"kind": spec.kind, "descriptor": _descriptor(spec.body.descriptor),
            "access_selection": selection}


def _spec_container(spec):
    body = {"descriptor": dict(spec["descriptor"])}
    if spec["kind"] in (GET_WITH_SELECTION, SET_WITH_SELECTION):
        body["access_selection"] = spec["access_selection"]
    elif spec.get("access_selection") is not None:
        raise AccessCodecError(None, "access-selection goes with the with-selection kinds")
    return {"kind": spec["kind"], "body": body}


def _fields(tag, body):
    out = {"long_invoke_id_and_priority": body.long_invoke_id_and_priority,
           "date_time": bytes(body.date_time)}
    if tag == ACCESS_REQUEST:
        out["specifications"] = [_spec_fields(s) for s in body.specifications]
    else:
        echoed = body.request_specifications
        out["request_specifications"] = (None if echoed is None
                                         else [_spec_fields(s) for s in echoed])
    out["data"] = [item.value for item in body.data]
    out["encodings"] = [bytes(item.data) for item in body.data]
    if tag == ACCESS_RESPONSE:
        out["results"] = [{"kind": r.kind, "result": r.result} for r in body.results]
    return out


def _data_container(fields):
    values = fields["data"]
    encodings = fields.get("encodings")
    out = []
    for i, value in enumerate(values):
        if encodings is not None and i < len(encodings) and _same_as_encoded(value, encodings[i]):
            out.append({"data": encodings[i]})
        else:
            out.append({"value": value})
    return out


def _same_as_encoded(value, encoding):
    try:
        return Data.parse(encoding) == value
    except (ConstructError, axdr.AxdrCodecError, ValueError, TypeError, KeyError):
        return False


def _body_container(name, fields):
    body = {"long_invoke_id_and_priority": fields["long_invoke_id_and_priority"],
            "date_time": fields["date_time"], "data": _data_container(fields)}
    if name == "AccessRequest":
        body["specifications"] = [_spec_container(s) for s in fields["specifications"]]
    else:
        echoed = fields.get("request_specifications")
        body["request_specifications"] = (None if echoed is None
                                          else [_spec_container(s) for s in echoed])
        body["results"] = [{"kind": r["kind"], "result": r["result"]}
                           for r in fields["results"]]
    return body


# ---------------------------------------------------------------- the codec

def decode_access(buf):
    """ACCESS APDU -> (name, fields); AccessCodecError on malformed input."""
    buf = bytes(buf)
    stream = io.BytesIO(buf)
    try:
        parsed = AccessApduCompiled.parse_stream(stream)
    except (ConstructError, struct.error) as e:
        raise AccessCodecError(stream.tell(), _reason(e))
    except axdr.AxdrCodecError as e:
        raise AccessCodecError(e.offset if e.offset is not None else stream.tell(), e.reason)
    except (KeyError, IndexError, ValueError, TypeError, OverflowError) as e:
        raise AccessCodecError(stream.tell(), "%s: %s" % (type(e).__name__, e))
    if stream.tell() != len(buf):
        raise AccessCodecError(stream.tell(), "%d trailing bytes" % (len(buf) - stream.tell()))
    return _NAMES[parsed.tag], _fields(parsed.tag, parsed.body)


def encode_access(name, fields):
    """(name, fields) -> ACCESS APDU bytes."""
    if name not in _TAGS:
        raise AccessCodecError(None, "unknown ACCESS APDU %r" % (name,))
    try:
        return AccessApdu.build({"tag": _TAGS[name], "body": _body_container(name, fields)})
    except AccessCodecError:
        raise
    except (ConstructError, struct.error, KeyError, TypeError, ValueError,
            OverflowError) as e:
        raise AccessCodecError(None, "%s: %s" % (name, _reason(e)))


def _reason(e):
    text = str(e).strip()
    return text.splitlines()[-1] if text else type(e).__name__
