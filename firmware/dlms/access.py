"""The DLMS ACCESS service: access-request (D9) and access-response (DA).

Layouts from DLMS UA 1000-2 Green Book (Ed. 8+), 9.3 "ACCESS service" and 9.5 ASN.1
of the xDLMS APDUs, encoded with A-XDR:

    Access-Request ::= SEQUENCE {
        long-invoke-id-and-priority   Long-Invoke-Id-And-Priority,   -- Unsigned32
        date-time                     OCTET STRING,                  -- may be empty
        access-request-body           SEQUENCE {
            access-request-specification  SEQUENCE OF Access-Request-Specification,
            access-request-list-of-data   SEQUENCE OF Data } }
    Access-Request-Specification ::= CHOICE {
        access-request-get                 [1] Cosem-Attribute-Descriptor,
        access-request-set                 [2] Cosem-Attribute-Descriptor,
        access-request-action              [3] Cosem-Method-Descriptor,
        access-request-get-with-selection  [4] Cosem-Attribute-Descriptor,
                                               Selective-Access-Descriptor,
        access-request-set-with-selection  [5] (the same) }
    Access-Response ::= SEQUENCE {
        long-invoke-id-and-priority, date-time OCTET STRING,
        access-response-body          SEQUENCE {
            access-request-specification  [0] SEQUENCE OF ... OPTIONAL,
            access-response-list-of-data  SEQUENCE OF Data,
            access-response-specification SEQUENCE OF CHOICE {
                access-response-get [1] Data-Access-Result,
                access-response-set [2] Data-Access-Result,
                access-response-action [3] Action-Result } } }

The list of data has one entry per specification (null-data where a GET asks nothing,
the value to write, the method parameters; in a response, the value read or null).
GBCS (clause 7.2.x, checked on all ACCESS payloads of RTDS 4.5.0) sets the
long-invoke-id-and-priority to 0x20 (processing-option: break-on-error) followed by the
low 24 bits of the GBCS originator counter: `gbcs_long_invoke_id(counter)`.

API: `AccessRequest`, `AccessResponse`, `RequestSpec`, `ResponseSpec` (plain classes,
``encode() -> bytes``, ``==``, ``fields()``); `decode(buf)` returns either, by tag;
`decode_request(buf)`, `decode_response(buf)`. Every decode error is
`AccessError(offset, reason)`; encode raises ValueError (or axdr.AxdrError for a bad
Data value).
"""

from struct import unpack_from

from firmware.dlms.record import Record
from firmware.dlms import axdr
from firmware.dlms.results import OTHER_REASON
from firmware.dlms.apdu import (ApduError, AttributeDescriptor, MethodDescriptor,
                                SelectiveAccess, _Reader)

ACCESS_REQUEST = 0xD9
ACCESS_RESPONSE = 0xDA

# Access-Request-Specification / Access-Response-Specification CHOICE tags
GET = 1
SET = 2
ACTION = 3
GET_WITH_SELECTION = 4
SET_WITH_SELECTION = 5
KIND_NAMES = {GET: "get", SET: "set", ACTION: "action",
              GET_WITH_SELECTION: "get-with-selection",
              SET_WITH_SELECTION: "set-with-selection"}
# the response CHOICE answering each request kind
RESPONSE_KIND = {GET: GET, SET: SET, ACTION: ACTION, GET_WITH_SELECTION: GET,
                 SET_WITH_SELECTION: SET}

GBCS_PRIORITY_BITS = 0x20000000     # processing-option = break-on-error (bit 29)
UINT32_MAX = 0xFFFFFFFF
# smallest encodings: a request specification is tag + 2 + 6 + 1 bytes, a Data value and
# a response specification at least one byte each (bounds counts before allocating)
_MIN_SPEC = 10


class AccessError(Exception):
    """A malformed ACCESS APDU: ``offset`` into the buffer and ``reason``."""

    def __init__(self, offset, reason):
        super().__init__(offset, reason)
        self.offset = offset
        self.reason = reason

    def __str__(self):
        return "access: offset %d: %s" % (self.offset, self.reason)


def gbcs_long_invoke_id(originator_counter):
    """GBCS long-invoke-id-and-priority: 0x20 then the counter's low 24 bits."""
    return GBCS_PRIORITY_BITS | (originator_counter & 0xFFFFFF)


class RequestSpec(Record):
    """One Access-Request-Specification. `descriptor` is an AttributeDescriptor (get, set
    and the with-selection kinds) or a MethodDescriptor (action)."""

    FIELDS = ("kind", "descriptor", "access_selection")

    def __init__(self, kind, descriptor, access_selection=None):
        self.kind = kind
        self.descriptor = descriptor
        self.access_selection = access_selection

    @staticmethod
    def get(class_id, logical_name, attribute_id, access_selection=None):
        kind = GET if access_selection is None else GET_WITH_SELECTION
        return RequestSpec(kind, AttributeDescriptor(class_id, logical_name, attribute_id),
                           access_selection)

    @staticmethod
    def set(class_id, logical_name, attribute_id, access_selection=None):
        kind = SET if access_selection is None else SET_WITH_SELECTION
        return RequestSpec(kind, AttributeDescriptor(class_id, logical_name, attribute_id),
                           access_selection)

    @staticmethod
    def action(class_id, logical_name, method_id):
        return RequestSpec(ACTION, MethodDescriptor(class_id, logical_name, method_id))

    def encode_into(self, out):
        kind = self.kind
        if kind not in KIND_NAMES:
            raise ValueError("unknown access-request-specification %r" % (kind,))
        wants_method = kind == ACTION
        if isinstance(self.descriptor, MethodDescriptor) != wants_method:
            raise ValueError("%s needs a %s descriptor" % (
                KIND_NAMES[kind], "method" if wants_method else "attribute"))
        with_selection = kind == GET_WITH_SELECTION or kind == SET_WITH_SELECTION
        if with_selection != (self.access_selection is not None):
            raise ValueError("access-selection goes with the with-selection kinds only")
        out.append(kind)
        self.descriptor.encode_into(out)
        if with_selection:
            self.access_selection.encode_into(out)

    @staticmethod
    def read(r):
        at = r.pos
        kind = r.u8("access-request-specification")
        if kind == ACTION:
            return RequestSpec(kind, MethodDescriptor.read(r))
        if kind == GET or kind == SET:
            return RequestSpec(kind, AttributeDescriptor.read(r))
        if kind == GET_WITH_SELECTION or kind == SET_WITH_SELECTION:
            descriptor = AttributeDescriptor.read(r)
            return RequestSpec(kind, descriptor, SelectiveAccess.read(r))
        raise ApduError(at, "unknown access-request-specification choice %d" % kind)


class ResponseSpec(Record):
    """One Access-Response-Specification: kind GET/SET (data-access-result) or ACTION
    (action-result), and the result code."""

    FIELDS = ("kind", "result")

    def __init__(self, kind, result):
        self.kind = kind
        self.result = result

    def encode_into(self, out):
        if self.kind not in (GET, SET, ACTION):
            raise ValueError("unknown access-response-specification %r" % (self.kind,))
        if not isinstance(self.result, int) or not 0 <= self.result <= 255:
            raise ValueError("result out of range: %r" % (self.result,))
        out.append(self.kind)
        out.append(self.result)

    @staticmethod
    def read(r):
        at = r.pos
        kind = r.u8("access-response-specification")
        if kind not in (GET, SET, ACTION):
            raise ApduError(at, "unknown access-response-specification choice %d" % kind)
        return ResponseSpec(kind, r.u8("result"))


class _Encodings:
    """Keeps each decoded Data value's own bytes, so an unchanged value re-encodes as it
    came: A-XDR reads any non-zero octet as TRUE, and RTDS writes TRUE as FF where our
    A-XDR encoder writes 01 (both valid)."""

    _decoded = None         # a copy of `data` as decoded; None when not decoded
    _encodings = None

    def keep(self, encodings):
        self._decoded = list(self.data)
        self._encodings = list(encodings)

    def _data_into(self, out):
        values = self.data
        _list(out, values, "list of data")
        decoded = self._decoded
        if decoded is None:
            for value in values:
                axdr.encode_into(out, value)
            return
        for i in range(len(values)):
            if i < len(decoded) and values[i] == decoded[i]:
                out.extend(self._encodings[i])
            else:
                axdr.encode_into(out, values[i])


class AccessRequest(Record, _Encodings):
    FIELDS = ("long_invoke_id_and_priority", "date_time", "specifications", "data")

    def __init__(self, long_invoke_id_and_priority, date_time, specifications, data,
                 encodings=None):
        self.long_invoke_id_and_priority = long_invoke_id_and_priority
        self.date_time = bytes(date_time)
        self.specifications = list(specifications)
        self.data = list(data)
        if encodings is not None:
            self.keep(encodings)

    def encode(self):
        out = bytearray((ACCESS_REQUEST,))
        _head(out, self.long_invoke_id_and_priority, self.date_time)
        _specs(out, self.specifications)
        self._data_into(out)
        return bytes(out)


class AccessResponse(Record, _Encodings):
    """`request_specifications` is the OPTIONAL echo of the request's list (None when
    absent, as in every GBCS response)."""

    FIELDS = ("long_invoke_id_and_priority", "date_time", "request_specifications", "data",
              "results")

    def __init__(self, long_invoke_id_and_priority, date_time, data, results,
                 request_specifications=None, encodings=None):
        self.long_invoke_id_and_priority = long_invoke_id_and_priority
        self.date_time = bytes(date_time)
        self.request_specifications = (None if request_specifications is None
                                       else list(request_specifications))
        self.data = list(data)
        self.results = list(results)
        if encodings is not None:
            self.keep(encodings)

    def encode(self):
        out = bytearray((ACCESS_RESPONSE,))
        _head(out, self.long_invoke_id_and_priority, self.date_time)
        if self.request_specifications is None:
            out.append(0)               # OPTIONAL component absent
        else:
            out.append(1)
            _specs(out, self.request_specifications)
        self._data_into(out)
        _list(out, self.results, "access-response-specification")
        for spec in self.results:
            spec.encode_into(out)
        return bytes(out)


# -- encoding helpers ---------------------------------------------------------------------

def _head(out, long_invoke_id, date_time):
    if type(long_invoke_id) is not int or not 0 <= long_invoke_id <= UINT32_MAX:
        # the slow check lets int subclasses other than bool through
        if (not isinstance(long_invoke_id, int) or isinstance(long_invoke_id, bool)
                or not 0 <= long_invoke_id <= UINT32_MAX):
            raise ValueError("long-invoke-id-and-priority out of range: %r"
                             % (long_invoke_id,))
    out += long_invoke_id.to_bytes(4, "big")
    n = len(date_time)
    if n < 0x80:
        out.append(n)
    else:
        out += axdr.encode_length(n)
    out += date_time


def _list(out, items, name):
    if not isinstance(items, list):
        raise ValueError("%s must be a list" % name)
    n = len(items)
    if n < 0x80:
        out.append(n)
    else:
        out += axdr.encode_length(n)


def _specs(out, specs):
    _list(out, specs, "access-request-specification")
    for spec in specs:
        spec.encode_into(out)


# -- decoding -----------------------------------------------------------------------------

def decode(buf):
    """An AccessRequest or AccessResponse from its APDU bytes (no trailing bytes)."""
    if len(buf) == 0:
        raise AccessError(0, "empty APDU")
    tag = buf[0]
    if tag == ACCESS_REQUEST:
        return decode_request(buf)
    if tag == ACCESS_RESPONSE:
        return decode_response(buf)
    raise AccessError(0, "not an ACCESS APDU: tag 0x%02X" % tag)


def decode_request(buf):
    request = _plain_request(buf)
    if request is not None:
        return request
    return _decoding(_read_request, buf)


def decode_response(buf):
    response = _plain_response(buf)
    if response is not None:
        return response
    return _decoding(_read_response, buf)


# The shape of every GBCS ACCESS payload (no date-time, no echoed specifications, short
# lists, gets, sets and actions without selective access) read in one pass over the bytes;
# None for anything else or anything wrong, which the reader below then reads (and
# reports) field by field. Both give the same objects.

def _plain_request(buf):
    end = len(buf)
    if type(buf) is not bytes or end < 8 or buf[0] != ACCESS_REQUEST or buf[5] != 0:
        return None
    count = buf[6]
    pos = 7
    if count >= 0x80 or pos + count * _MIN_SPEC > end:
        return None
    specs = []
    for _ in range(count):
        kind = buf[pos]
        index = buf[pos + 9]
        if index > 127:
            index -= 256
        descriptor = (buf[pos + 1] << 8) | buf[pos + 2], buf[pos + 3:pos + 9], index
        if kind == ACTION:
            specs.append(RequestSpec(ACTION, MethodDescriptor(*descriptor)))
        elif kind == GET or kind == SET:
            specs.append(RequestSpec(kind, AttributeDescriptor(*descriptor)))
        else:
            return None
        pos += _MIN_SPEC
    data, encodings, pos = _plain_data(buf, pos, end)
    if data is None or pos != end:
        return None
    return AccessRequest(unpack_from(">I", buf, 1)[0], b"", specs, data, encodings)


def _plain_response(buf):
    end = len(buf)
    if (type(buf) is not bytes or end < 9 or buf[0] != ACCESS_RESPONSE or buf[5] != 0
            or buf[6] != 0):
        return None
    data, encodings, pos = _plain_data(buf, 7, end)
    if data is None or pos >= end:
        return None
    count = buf[pos]
    pos += 1
    if count >= 0x80 or pos + 2 * count != end:
        return None
    results = []
    for _ in range(count):
        kind = buf[pos]
        if kind != GET and kind != SET and kind != ACTION:
            return None
        results.append(ResponseSpec(kind, buf[pos + 1]))
        pos += 2
    return AccessResponse(unpack_from(">I", buf, 1)[0], b"", data, results, None, encodings)


def _plain_data(buf, pos, end):
    """(values, their bytes, next offset) of a short list of data, or (None, None, pos)."""
    if pos >= end or buf[pos] >= 0x80 or buf[pos] > end - pos - 1:
        return None, None, pos
    count = buf[pos]
    pos += 1
    values = []
    encodings = []
    for _ in range(count):
        try:
            value, nxt = axdr.decode(buf, pos)      # (end is len(buf): raises past it)
        except (axdr.AxdrError, IndexError, ValueError, TypeError):
            return None, None, pos
        values.append(value)
        encodings.append(buf[pos:nxt])
        pos = nxt
    return values, encodings, pos


def _decoding(reader, buf):
    try:
        return reader(_Reader(buf, 0))
    except ApduError as e:
        raise AccessError(e.offset, e.reason)
    except (IndexError, ValueError, TypeError) as e:      # never anything else
        raise AccessError(0, "malformed: %s" % e)


def _expect_tag(r, tag):
    at = r.pos
    got = r.u8("APDU tag")
    if got != tag:
        raise ApduError(at, "expected tag 0x%02X, found 0x%02X" % (tag, got))


def _read_head(r):
    invoke = r.u32("long-invoke-id-and-priority")
    return invoke, r.octets("date-time")


def _read_specs(r):
    n = r.count("access-request-specification list", _MIN_SPEC)
    specs = []
    for _ in range(n):
        specs.append(RequestSpec.read(r))
    return specs


def _read_data_list(r):
    """The values and each one's own bytes."""
    n = r.count("list of data", 1)
    values = []
    encodings = []
    for _ in range(n):
        start = r.pos
        values.append(r.data("list of data"))
        encodings.append(bytes(r.buf[start:r.pos]))
    return values, encodings


def _read_request(r):
    _expect_tag(r, ACCESS_REQUEST)
    invoke, date_time = _read_head(r)
    specs = _read_specs(r)
    data, encodings = _read_data_list(r)
    r.end()
    return AccessRequest(invoke, date_time, specs, data, encodings)


def _read_response(r):
    _expect_tag(r, ACCESS_RESPONSE)
    invoke, date_time = _read_head(r)
    echoed = None
    if r.optional_flag("access-request-specification (optional)"):
        echoed = _read_specs(r)
    data, encodings = _read_data_list(r)
    n = r.count("access-response-specification list", 2)
    results = []
    for _ in range(n):
        results.append(ResponseSpec.read(r))
    r.end()
    return AccessResponse(invoke, date_time, data, results, echoed, encodings)


def refused_all(request, access_code, action_code):
    """(data, results) answering every specification of `request` with one refusal:
    `action_code` (an action-result) for actions, `access_code` (a data-access-result)
    for gets and sets; nothing ran, so every data item is null-data."""
    data = []
    results = []
    for spec in request.specifications:
        kind = RESPONSE_KIND[spec.kind]
        data.append((axdr.NULL_DATA, None))
        results.append(ResponseSpec(kind, action_code if kind == ACTION else access_code))
    return data, results


def refused_at(request, index, code):
    """(data, results) when specification `index` was refused with `code`: the request
    runs all or nothing, so the others answer other-reason (250)."""
    data = []
    results = []
    specs = request.specifications
    for i in range(len(specs)):
        data.append((axdr.NULL_DATA, None))
        results.append(ResponseSpec(RESPONSE_KIND[specs[i].kind],
                                    code if i == index else OTHER_REASON))
    return data, results
