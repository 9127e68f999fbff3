"""A-XDR encoding of COSEM `Data` (DLMS UA 1000-2 Green Book, 9.5 "Data" CHOICE;
IEC 61334-6 A-XDR rules). The value model is docs/CORE_INTERFACES.md section 1:
a value is ``(tag, payload)``.

Hot path of the device (every GET.response): one dict lookup per value, one
struct call per fixed-size value, no per-byte loops. MicroPython's struct does not
range-check, so encoding checks every integer itself.
"""

from struct import pack, unpack_from

NULL_DATA = 0
ARRAY = 1
STRUCTURE = 2
BOOLEAN = 3
BIT_STRING = 4
DOUBLE_LONG = 5
DOUBLE_LONG_UNSIGNED = 6
OCTET_STRING = 9
VISIBLE_STRING = 10
UTF8_STRING = 12
BCD = 13
INTEGER = 15
LONG = 16
UNSIGNED = 17
LONG_UNSIGNED = 18
COMPACT_ARRAY = 19
LONG64 = 20
LONG64_UNSIGNED = 21
ENUM = 22
FLOAT32 = 23
FLOAT64 = 24
DATE_TIME = 25
DATE = 26
TIME = 27
DONT_CARE = 255
RAW = -1  # pseudo-tag: payload is already-encoded A-XDR, copied through by encode

MAX_DEPTH = 16

TYPE_NAMES = {
    NULL_DATA: "null-data", ARRAY: "array", STRUCTURE: "structure",
    BOOLEAN: "boolean", BIT_STRING: "bit-string", DOUBLE_LONG: "double-long",
    DOUBLE_LONG_UNSIGNED: "double-long-unsigned", OCTET_STRING: "octet-string",
    VISIBLE_STRING: "visible-string", UTF8_STRING: "utf8-string", BCD: "bcd",
    INTEGER: "integer", LONG: "long", UNSIGNED: "unsigned",
    LONG_UNSIGNED: "long-unsigned", COMPACT_ARRAY: "compact-array",
    LONG64: "long64", LONG64_UNSIGNED: "long64-unsigned", ENUM: "enum",
    FLOAT32: "float32", FLOAT64: "float64", DATE_TIME: "date-time",
    DATE: "date", TIME: "time", DONT_CARE: "dont-care", RAW: "raw",
}


class AxdrError(Exception):
    """Bad A-XDR input (decode) or a value outside its DLMS type (encode)."""

    def __init__(self, offset, reason):
        super().__init__(offset, reason)
        self.offset = offset
        self.reason = reason

    def __str__(self):
        return "axdr: offset %d: %s" % (self.offset, self.reason)


# Fixed-size integer types: tag -> (struct format of the payload, size, lo, hi).
_INTS = {
    DOUBLE_LONG: (">i", 4, -0x80000000, 0x7FFFFFFF),
    DOUBLE_LONG_UNSIGNED: (">I", 4, 0, 0xFFFFFFFF),
    BCD: (">B", 1, 0, 0xFF),
    INTEGER: (">b", 1, -0x80, 0x7F),
    LONG: (">h", 2, -0x8000, 0x7FFF),
    UNSIGNED: (">B", 1, 0, 0xFF),
    LONG_UNSIGNED: (">H", 2, 0, 0xFFFF),
    LONG64: (">q", 8, -0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
    LONG64_UNSIGNED: (">Q", 8, 0, 0xFFFFFFFFFFFFFFFF),
    ENUM: (">B", 1, 0, 0xFF),
}
# Everything that decodes with one unpack_from: tag -> (format, size).
_FIXED = {FLOAT32: (">f", 4), FLOAT64: (">d", 8)}
for _tag in _INTS:
    _spec = _INTS[_tag]
    _FIXED[_tag] = (_spec[0], _spec[1])
    # (..., format with the tag byte in front): encoding is one pack() per value
    _INTS[_tag] = _spec + (">B" + _spec[0][1],)
del _tag, _spec
# The same indexed by tag byte: a list index is cheaper than dict.get on the hot path.
# (format, size, how to read it inline: 1 one unsigned byte, 2 two big-endian unsigned
# bytes, 0 unpack_from)
_FIXED_BY_TAG = [None] * 256
for _tag in _FIXED:
    _fmt = _FIXED[_tag][0]
    _FIXED_BY_TAG[_tag] = _FIXED[_tag] + ({">B": 1, ">H": 2}.get(_fmt, 0),)
del _tag, _fmt

# Fixed-length octet types (Blue Book 4.1.6.1): tag -> byte length.
_OCTETS = {DATE_TIME: 12, DATE: 5, TIME: 4}
_STRINGS = (OCTET_STRING, VISIBLE_STRING, UTF8_STRING)


# ---------------------------------------------------------------- lengths

def encode_length(n):
    """A-XDR variable length: one byte below 0x80, else 0x8N and N big-endian bytes."""
    if n < 0x80:
        if n < 0:
            raise AxdrError(0, "negative length %d" % n)
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    if n <= 0xFFFF:
        return pack(">BH", 0x82, n)
    if n <= 0xFFFFFF:
        return pack(">BBH", 0x83, n >> 16, n & 0xFFFF)
    if n <= 0xFFFFFFFF:
        return pack(">BI", 0x84, n)
    raise AxdrError(0, "length %d does not fit in 4 bytes" % n)


def _encode_length_into(out, n):
    if n < 0x80:
        out.append(n)
    else:
        out += encode_length(n)


def decode_length(buf, offset):
    """-> (length, next_offset). Accepts non-minimal forms; rejects 0x80 and >4 bytes."""
    return _decode_length(buf, offset, len(buf))


def _decode_length(buf, pos, end):
    if pos >= end:
        raise AxdrError(pos, "truncated: length expected")
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    size = first & 0x7F
    if size == 0 or size > 4:
        raise AxdrError(pos, "bad length prefix 0x%02x" % first)
    nxt = pos + 1 + size
    if nxt > end:
        raise AxdrError(pos, "truncated: %d-byte length" % size)
    n = 0
    for i in range(pos + 1, nxt):
        n = (n << 8) | buf[i]
    return n, nxt


# ---------------------------------------------------------------- encoding

def encode(value):
    out = bytearray()
    _encode(out, value, 0)
    return bytes(out)


def encode_into(out, value):
    _encode(out, value, 0)


def _bad(out, reason):
    return AxdrError(len(out), reason)


def _encode(out, value, depth):
    try:
        tag, payload = value
    except (TypeError, ValueError):
        raise _bad(out, "not a (tag, payload) pair: %r" % (value,))
    if type(tag) is not int:
        raise _bad(out, "data type tag must be an int: %r" % (tag,))
    spec = _INTS.get(tag)
    if spec is not None:
        if type(payload) is not int or payload < spec[2] or payload > spec[3]:
            raise _bad(out, "%s out of range: %r" % (TYPE_NAMES[tag], payload))
        out += pack(spec[4], tag, payload)
        return
    encoder = _ENCODERS.get(tag)
    if encoder is None:
        raise _bad(out, "unknown data type tag %r" % (tag,))
    if tag != RAW:
        out.append(tag)
    encoder(out, payload, depth)


def _encode_payload(out, tag, payload, depth):
    """The payload without its tag (compact-array contents)."""
    spec = _INTS.get(tag)
    if spec is not None:
        if type(payload) is not int or payload < spec[2] or payload > spec[3]:
            raise _bad(out, "%s out of range: %r" % (TYPE_NAMES[tag], payload))
        out += pack(spec[0], payload)
        return
    _ENCODERS[tag](out, payload, depth)


def _enc_none(out, payload, depth):
    if payload is not None:
        raise _bad(out, "null-data/dont-care payload must be None")


def _enc_boolean(out, payload, depth):
    if payload is True:
        out.append(1)
    elif payload is False:
        out.append(0)
    else:
        raise _bad(out, "boolean payload must be True or False: %r" % (payload,))


def _is_bytes(b):
    return isinstance(b, (bytes, bytearray, memoryview))


def _enc_bit_string(out, payload, depth):
    try:
        count, data = payload
    except (TypeError, ValueError):
        raise _bad(out, "bit-string payload must be (bit_count, bytes)")
    if type(count) is not int or count < 0 or not _is_bytes(data):
        raise _bad(out, "bad bit-string %r" % (payload,))
    if len(data) != (count + 7) >> 3:
        raise _bad(out, "bit-string of %d bits needs %d bytes, got %d"
                   % (count, (count + 7) >> 3, len(data)))
    unused = (8 - (count & 7)) & 7
    if unused and data[len(data) - 1] & ((1 << unused) - 1):
        raise _bad(out, "bit-string unused trailing bits are not 0")
    _encode_length_into(out, count)
    out += data


def _enc_string(out, payload, depth):
    if not _is_bytes(payload):
        raise _bad(out, "string payload must be bytes: %r" % (payload,))
    _encode_length_into(out, len(payload))
    out += payload


def _octets_encoder(size):
    def encoder(out, payload, depth):
        if not _is_bytes(payload) or len(payload) != size:
            raise _bad(out, "payload must be %d bytes: %r" % (size, payload))
        out += payload
    return encoder


_F32_MAX = 3.4028234663852886e38
_INF = float("inf")


def _as_float(out, payload):
    if type(payload) is float:
        return payload
    if type(payload) is int:
        return float(payload)
    raise _bad(out, "float payload must be float: %r" % (payload,))


def _enc_float32(out, payload, depth):
    x = _as_float(out, payload)
    try:
        b = pack(">f", x)
    except OverflowError:
        raise _bad(out, "float32 out of range: %r" % x)
    # MicroPython packs an overflow as inf instead of raising.
    if x != _INF and x != -_INF and x == x and unpack_from(">f", b, 0)[0] in (_INF, -_INF):
        raise _bad(out, "float32 out of range: %r" % x)
    out += b


def _enc_float64(out, payload, depth):
    out += pack(">d", _as_float(out, payload))


def _enc_list(out, payload, depth):
    if depth >= MAX_DEPTH:
        raise _bad(out, "nesting deeper than %d" % MAX_DEPTH)
    if type(payload) is not list and not isinstance(payload, (list, tuple)):
        raise _bad(out, "array/structure payload must be a list")
    count = len(payload)
    if count < 0x80:
        out.append(count)
    else:
        out += encode_length(count)
    depth += 1
    ints = _INTS
    # Inline fast paths for the common elements of a profile buffer and already encoded
    # parts (RAW); anything else, and every error, goes through _encode.
    for item in payload:
        try:
            tag, value = item
        except (TypeError, ValueError):
            _encode(out, item, depth)
            continue
        if type(tag) is int:
            spec = ints.get(tag)
            if spec is not None:
                if type(value) is int and spec[2] <= value <= spec[3]:
                    out += pack(spec[4], tag, value)
                    continue
            elif tag == OCTET_STRING:
                if type(value) is bytes and len(value) < 0x80:
                    out.append(OCTET_STRING)
                    out.append(len(value))
                    out += value
                    continue
            elif tag == STRUCTURE or tag == ARRAY:
                out.append(tag)
                _enc_list(out, value, depth)
                continue
            elif tag == NULL_DATA and value is None:
                out.append(NULL_DATA)
                continue
            elif tag == RAW and type(value) is bytes and value:
                out += value
                continue
        _encode(out, item, depth)


def _enc_raw(out, payload, depth):
    if not _is_bytes(payload) or not len(payload):
        raise _bad(out, "raw payload must be non-empty encoded bytes")
    out += payload


def _enc_compact_array(out, payload, depth):
    if depth >= MAX_DEPTH:
        raise _bad(out, "nesting deeper than %d" % MAX_DEPTH)
    try:
        description, items = payload
    except (TypeError, ValueError):
        raise _bad(out, "compact-array payload must be (description, items)")
    width = _encode_description(out, description, depth + 1)
    if not isinstance(items, (list, tuple)):
        raise _bad(out, "compact-array items must be a list")
    if width == 0 and len(items):
        raise _bad(out, "compact-array elements of zero size cannot be counted")
    contents = bytearray()
    layout = _fixed_layout(description)
    try:
        if layout is not None and layout[1] is not None and _all_ints(layout[1]):
            _encode_int_rows(contents, items, description, layout)
        else:
            for item in items:
                _encode_described(contents, item, description)
    except AxdrError as e:
        # offsets into the contents count from where their length will be written
        raise AxdrError(len(out) + e.offset, e.reason)
    _encode_length_into(out, len(contents))
    out += contents


def _all_ints(tags):
    for tag in tags:
        if tag not in _INTS:
            return False
    return True


def _encode_int_rows(contents, items, description, layout):
    """Structures of integers (the GB half-hourly layout): check each member, pack a
    row in one call; anything unexpected goes through _encode_described (and its
    error)."""
    fmt, tags = layout
    count = len(tags)
    specs = [_INTS[tag] for tag in tags]
    for item in items:
        if type(item) is tuple and len(item) == 2 and item[0] == STRUCTURE:
            members = item[1]
            if type(members) is list and len(members) == count:
                values = []
                for i in range(count):
                    member = members[i]
                    if type(member) is not tuple or len(member) != 2 or member[0] != tags[i]:
                        break
                    value = member[1]
                    spec = specs[i]
                    if type(value) is not int or value < spec[2] or value > spec[3]:
                        break
                    values.append(value)
                else:
                    contents += pack(fmt, *values)
                    continue
        _encode_described(contents, item, description)


def _encode_description(out, desc, depth):
    """TypeDescription (Blue Book 4.1.6.1, compact-array). Returns the minimum width."""
    if type(desc) is int:
        width = _simple_width(desc)
        if width < 0:
            raise _bad(out, "type %r cannot describe compact-array contents" % (desc,))
        out.append(desc)
        return width
    if depth >= MAX_DEPTH:
        raise _bad(out, "nesting deeper than %d" % MAX_DEPTH)
    if not isinstance(desc, (tuple, list)) or not desc:
        raise _bad(out, "bad type description %r" % (desc,))
    if desc[0] == ARRAY and len(desc) == 3:
        count = desc[1]
        if type(count) is not int or count < 0 or count > 0xFFFF:
            raise _bad(out, "array description count out of range: %r" % (count,))
        out += pack(">BH", ARRAY, count)
        width = _encode_description(out, desc[2], depth + 1)
        if width == 0 and count:
            raise _bad(out, "array of zero-size elements in a type description")
        return count * width
    if desc[0] == STRUCTURE and len(desc) == 2 and isinstance(desc[1], (list, tuple)):
        out.append(STRUCTURE)
        _encode_length_into(out, len(desc[1]))
        width = 0
        for member in desc[1]:
            width += _encode_description(out, member, depth + 1)
        return width
    raise _bad(out, "bad type description %r" % (desc,))


def _encode_described(out, value, desc):
    try:
        tag, payload = value
    except (TypeError, ValueError):
        raise _bad(out, "not a (tag, payload) pair: %r" % (value,))
    if type(desc) is int:
        if tag != desc:
            raise _bad(out, "compact-array element %r is not a %s" % (value, TYPE_NAMES[desc]))
        _encode_payload(out, tag, payload, 0)
        return
    if tag != desc[0] or not isinstance(payload, (list, tuple)):
        raise _bad(out, "compact-array element %r does not match %r" % (value, desc))
    if tag == ARRAY:
        if len(payload) != desc[1]:
            raise _bad(out, "compact-array element has %d entries, description says %d"
                       % (len(payload), desc[1]))
        for item in payload:
            _encode_described(out, item, desc[2])
    else:
        members = desc[1]
        if len(payload) != len(members):
            raise _bad(out, "compact-array structure has %d members, description says %d"
                       % (len(payload), len(members)))
        for i in range(len(members)):
            _encode_described(out, payload[i], members[i])


def _simple_width(tag):
    """Encoded size of a simple type in compact-array contents (variable: 1, its
    minimum); -1 if the tag cannot appear as a simple type description."""
    if tag in _FIXED:
        return _FIXED[tag][1]
    if tag in _OCTETS:
        return _OCTETS[tag]
    if tag == NULL_DATA or tag == DONT_CARE:
        return 0
    if tag == BOOLEAN:
        return 1
    if tag == BIT_STRING or tag in _STRINGS:
        return 1
    return -1


_ENCODERS = {
    NULL_DATA: _enc_none,
    DONT_CARE: _enc_none,
    ARRAY: _enc_list,
    STRUCTURE: _enc_list,
    BOOLEAN: _enc_boolean,
    BIT_STRING: _enc_bit_string,
    OCTET_STRING: _enc_string,
    VISIBLE_STRING: _enc_string,
    UTF8_STRING: _enc_string,
    COMPACT_ARRAY: _enc_compact_array,
    FLOAT32: _enc_float32,
    FLOAT64: _enc_float64,
    DATE_TIME: _octets_encoder(12),
    DATE: _octets_encoder(5),
    TIME: _octets_encoder(4),
    RAW: _enc_raw,
}


# ---------------------------------------------------------------- decoding

def decode(buf, offset=0):
    """-> (value, next_offset)."""
    return _decode(buf, offset, len(buf), 0)


def decode_all(buf):
    value, pos = _decode(buf, 0, len(buf), 0)
    if pos != len(buf):
        raise AxdrError(pos, "%d trailing bytes after the value" % (len(buf) - pos))
    return value


def _decode(buf, pos, end, depth):
    if pos >= end:
        raise AxdrError(pos, "truncated: data type tag expected")
    tag = buf[pos]
    pos += 1
    fixed = _FIXED.get(tag)
    if fixed is not None:
        nxt = pos + fixed[1]
        if nxt > end:
            raise AxdrError(pos, "truncated %s" % TYPE_NAMES[tag])
        return (tag, unpack_from(fixed[0], buf, pos)[0]), nxt
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise AxdrError(pos - 1, "unknown data type tag %d" % tag)
    payload, nxt = decoder(buf, pos, end, depth)
    return (tag, payload), nxt


def _dec_none(buf, pos, end, depth):
    return None, pos


def _dec_boolean(buf, pos, end, depth):
    if pos >= end:
        raise AxdrError(pos, "truncated boolean")
    return buf[pos] != 0, pos + 1


def _dec_bit_string(buf, pos, end, depth):
    count, pos = _decode_length(buf, pos, end)
    size = (count + 7) >> 3
    nxt = pos + size
    if nxt > end:
        raise AxdrError(pos, "truncated bit-string: %d bytes needed" % size)
    data = bytes(buf[pos:nxt])
    unused = (8 - (count & 7)) & 7
    if unused and data[size - 1] & ((1 << unused) - 1):
        # the model keeps unused bits 0 (CORE_INTERFACES.md section 1)
        data = data[:size - 1] + bytes((data[size - 1] & (0xFF << unused) & 0xFF,))
    return (count, data), nxt


def _dec_string(buf, pos, end, depth):
    n, pos = _decode_length(buf, pos, end)
    nxt = pos + n
    if nxt > end:
        raise AxdrError(pos, "truncated string: %d bytes needed, %d left" % (n, end - pos))
    return bytes(buf[pos:nxt]), nxt


def _octets_decoder(size):
    def decoder(buf, pos, end, depth):
        nxt = pos + size
        if nxt > end:
            raise AxdrError(pos, "truncated: %d bytes needed" % size)
        return bytes(buf[pos:nxt]), nxt
    return decoder


_FAST_PATH_MIN_ROWS = 8

# How a short list reads a value, by its tag byte (0: through _decode).
_OCTETS_SHORT, _LIST, _ONE_BYTE, _TWO_BYTES, _OTHER_FIXED, _NULL_KIND = 1, 2, 3, 4, 5, 6
_SHORT_KIND = bytearray(256)
_SHORT_KIND[OCTET_STRING] = _OCTETS_SHORT
_SHORT_KIND[STRUCTURE] = _SHORT_KIND[ARRAY] = _LIST
_SHORT_KIND[NULL_DATA] = _NULL_KIND
for _tag in _FIXED:
    _SHORT_KIND[_tag] = {1: _ONE_BYTE, 2: _TWO_BYTES}.get(_FIXED_BY_TAG[_tag][2], _OTHER_FIXED)
del _tag


def _dec_list(buf, pos, end, depth):
    if depth >= MAX_DEPTH:
        raise AxdrError(pos - 1, "nesting deeper than %d" % MAX_DEPTH)
    if pos < end and buf[pos] < 0x80:
        count = buf[pos]
        pos += 1
    else:
        count, pos = _decode_length(buf, pos, end)
    if count > end - pos:
        raise AxdrError(pos, "%d elements cannot fit in %d bytes" % (count, end - pos))
    depth += 1
    # The row fast paths pay for their set-up only on long arrays (profile buffers);
    # GBCS payloads are full of short lists of structures that would only thrash them.
    if count >= _FAST_PATH_MIN_ROWS:
        return _dec_long_list(buf, pos, end, depth, count)
    items = []
    append = items.append
    kinds = _SHORT_KIND
    whole = type(buf) is bytes          # slices of bytes are bytes; of anything else, copied
    # Inline fast paths, most frequent first in GBCS payloads: short octet-strings, nested
    # lists, one- and two-byte unsigned values (no struct call), other fixed-size values,
    # null-data; anything else, and every error, via _decode.
    for _ in range(count):
        if pos < end:
            tag = buf[pos]
            kind = kinds[tag]
            if kind == _OCTETS_SHORT:
                nxt = pos + 2
                if nxt <= end:
                    size = buf[pos + 1]
                    nxt += size
                    if size < 0x80 and nxt <= end:
                        append((tag, buf[pos + 2:nxt] if whole else bytes(buf[pos + 2:nxt])))
                        pos = nxt
                        continue
            elif kind == _LIST:
                # (too deep: _dec_list raises what _decode would)
                value, pos = _dec_list(buf, pos + 1, end, depth)
                append((tag, value))
                continue
            elif kind == _ONE_BYTE:
                if pos + 1 < end:
                    append((tag, buf[pos + 1]))
                    pos += 2
                    continue
            elif kind == _TWO_BYTES:
                nxt = pos + 3
                if nxt <= end:
                    append((tag, (buf[pos + 1] << 8) | buf[pos + 2]))
                    pos = nxt
                    continue
            elif kind == _OTHER_FIXED:
                fixed = _FIXED_BY_TAG[tag]
                nxt = pos + 1 + fixed[1]
                if nxt <= end:
                    append((tag, unpack_from(fixed[0], buf, pos + 1)[0]))
                    pos = nxt
                    continue
            elif kind == _NULL_KIND:
                append(_NULL)
                pos += 1
                continue
        value, pos = _decode(buf, pos, end, depth)
        append(value)
    return items, pos


_NULL = (NULL_DATA, None)


def _dec_long_list(buf, pos, end, depth, count):
    if depth < MAX_DEPTH and pos < end and buf[pos] == STRUCTURE:
        rows = _uniform_rows(buf, pos, end, count)
        if rows is not None:
            return rows
    items = []
    append = items.append
    fixed_types = _FIXED_BY_TAG
    row = None  # layout of the first structure element, tried on the following ones
    tried = False
    # Inline fast paths for fixed-size values, short octet-strings and nested
    # structures (a profile buffer); anything else, and every error, via _decode.
    for _ in range(count):
        if row is not None:
            nxt = pos + row_size
            if nxt <= end and unpack_from(row_header, buf, pos) == row_headers:
                append((STRUCTURE, list(zip(row_tags, unpack_from(row_values, buf, pos)))))
                pos = nxt
                continue
        if pos < end:
            tag = buf[pos]
            fixed = fixed_types[tag]
            if fixed is not None:
                nxt = pos + 1 + fixed[1]
                if nxt <= end:
                    append((tag, unpack_from(fixed[0], buf, pos + 1)[0]))
                    pos = nxt
                    continue
            elif tag == OCTET_STRING:
                if pos + 1 < end:
                    size = buf[pos + 1]
                    nxt = pos + 2 + size
                    if size < 0x80 and nxt <= end:
                        append((OCTET_STRING, bytes(buf[pos + 2:nxt])))
                        pos = nxt
                        continue
            elif tag == STRUCTURE or tag == ARRAY:
                if depth < MAX_DEPTH:
                    value, nxt = _dec_list(buf, pos + 1, end, depth)
                    append((tag, value))
                    if tag == STRUCTURE and not tried:
                        tried = True
                        row = _row_layout(buf, pos, value)
                        if row is not None:
                            row_header, row_values, row_size, row_headers, row_tags = row
                    pos = nxt
                    continue
        value, pos = _decode(buf, pos, end, depth)
        append(value)
    return items, pos


# An array of structures that all have one shape (same member tags, same octet-string
# lengths: a Profile Generic buffer, Blue Book 4.3.6 attribute 2) is read in blocks of
# rows: one unpack_from for the tag/length bytes of a block, compared with what the
# first row's shape predicts for every row, and one for its values. Any difference,
# or too few bytes, and the array is read value by value instead (which reports the
# error, if there is one).
_SIZES_BY_TAG = [None] * 256        # payload size of a tag a uniform row may hold
for _tag in _FIXED:
    _SIZES_BY_TAG[_tag] = _FIXED[_tag][1]
for _tag in _OCTETS:
    _SIZES_BY_TAG[_tag] = _OCTETS[_tag]
_SIZES_BY_TAG[OCTET_STRING] = -1    # its one-byte length follows the tag
del _tag
_BLOCK_ROWS = (32, 16, 8, 4, 2, 1)  # block sizes: a bounded set of formats per shape
# row shape -> (row size, tags, {rows: block layout}); cleared when full. All the
# layouts of a two-member shape take 4.4 KB on the 64-bit unix port (measured with
# gc.mem_free), about half that on a 32-bit board: two shapes at most stay cached.
_SHAPES = {}
_SHAPES_MAX = 2


def _uniform_rows(buf, pos, end, count):
    """-> (items, next_offset) for `count` structures of one shape at `pos`, or None."""
    shape = _row_shape(buf, pos, end)
    if shape is None:
        return None
    known = _SHAPES.get(shape)
    if known is None:
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        known = _SHAPES[shape] = _shape_record(shape)
    row_size, tags, blocks = known
    if pos + count * row_size > end:
        return None
    items = []
    left = count
    for rows in _BLOCK_ROWS:
        while left >= rows:
            block = blocks.get(rows)
            if block is None:
                block = blocks[rows] = _block_layout(shape, rows)
            if unpack_from(block[0], buf, pos) != block[2]:
                return None
            it = iter(unpack_from(block[1], buf, pos))
            if len(tags) == 2:
                t0, t1 = tags
                items += [(STRUCTURE, [(t0, a), (t1, b)]) for a, b in zip(it, it)]
            else:
                items += [(STRUCTURE, list(zip(tags, row))) for row in zip(*([it] * len(tags)))]
            pos += rows * row_size
            left -= rows
    return items, pos


def _row_shape(buf, pos, end):
    """The shape of the structure at `pos` as a tuple: its member count, then each
    member's tag (and an octet-string's length); None unless every member is a
    fixed-size value or an octet-string shorter than 0x80."""
    if pos + 1 >= end:
        return None
    count = buf[pos + 1]
    if count == 0 or count >= 0x80:
        return None
    shape = [count]
    at = pos + 2
    for _ in range(count):
        if at >= end:
            return None
        tag = buf[at]
        size = _SIZES_BY_TAG[tag]
        if size is None:
            return None
        shape.append(tag)
        if size < 0:
            if at + 1 >= end:
                return None
            size = buf[at + 1]
            if size >= 0x80:
                return None
            shape.append(size)
            at += 1
        at += 1 + size
    return tuple(shape)


def _members(shape):
    """[(tag, header bytes, payload size, struct code)] of a row shape."""
    out = []
    i = 1
    header = bytes((STRUCTURE, shape[0]))
    while i < len(shape):
        tag = shape[i]
        size = _SIZES_BY_TAG[tag]
        if size < 0:
            i += 1
            size = shape[i]
            header += bytes((tag, size))
            code = "%ds" % size
        else:
            header += bytes((tag,))
            code = _FIXED[tag][0][1] if tag in _FIXED else "%ds" % size
        out.append((tag, header, size, code))
        header = b""
        i += 1
    return out


def _shape_record(shape):
    """(row size, member tags, {rows: block layout, filled on demand}) of a shape."""
    size = 0
    tags = []
    for member in _members(shape):
        size += len(member[1]) + member[2]
        tags.append(member[0])
    return size, tuple(tags), {}


def _block_layout(shape, rows):
    """(header format, value format, expected headers) for `rows` rows of `shape`."""
    header_format = ""
    value_format = ""
    headers = []
    for member in _members(shape):
        header_format += "%ds%dx" % (len(member[1]), member[2])
        value_format += "%dx%s" % (len(member[1]), member[3])
        headers.append(member[1])
    return (">" + header_format * rows, ">" + value_format * rows, tuple(headers) * rows)


def _row_layout(buf, pos, members):
    """Layout of a structure of fixed-size values and short octet-strings, as found at
    `pos` (a profile buffer row): struct formats that unpack the tag/length bytes and
    the values of a row in one call each. The next rows take this path only if their
    tag/length bytes are identical; None when the structure does not qualify."""
    count = len(members)
    if count == 0 or count >= 0x80:
        return None
    header_format = ">"
    value_format = ">"
    headers = []
    tags = []
    chunk = bytes((STRUCTURE, count))
    total = 0
    for tag, value in members:
        fixed = _FIXED_BY_TAG[tag]
        if fixed is not None:
            chunk += bytes((tag,))
            size = fixed[1]
            code = fixed[0][1]
        elif tag == OCTET_STRING and len(value) < 0x80:
            chunk += bytes((tag, len(value)))
            size = len(value)
            code = "%ds" % size
        else:
            return None
        header_format += "%ds%dx" % (len(chunk), size)
        value_format += "%dx%s" % (len(chunk), code)
        total += len(chunk) + size
        headers.append(chunk)
        tags.append(tag)
        chunk = b""
    return (header_format, value_format, total, tuple(headers), tuple(tags))


def _dec_compact_array(buf, pos, end, depth):
    if depth >= MAX_DEPTH:
        raise AxdrError(pos - 1, "nesting deeper than %d" % MAX_DEPTH)
    desc, width, pos = _decode_description(buf, pos, end, depth + 1)
    size, pos = _decode_length(buf, pos, end)
    stop = pos + size
    if stop > end:
        raise AxdrError(pos, "truncated compact-array contents: %d bytes needed" % size)
    if width == 0 and size:
        raise AxdrError(pos, "compact-array elements of zero size cannot be counted")
    items = []
    fixed = _fixed_layout(desc)
    if fixed is not None and width and size % width == 0:
        # every element is fixed-size: one unpack_from per element
        fmt, tags = fixed
        if tags is None:
            for p in range(pos, stop, width):
                items.append((desc, unpack_from(fmt, buf, p)[0]))
        else:
            for p in range(pos, stop, width):
                items.append((STRUCTURE, list(zip(tags, unpack_from(fmt, buf, p)))))
        return (desc, items), stop
    while pos < stop:
        value, pos = _decode_described(buf, pos, stop, desc)
        items.append(value)
    return (desc, items), stop


def _fixed_layout(desc):
    """(format, member tags) of a description made only of numbers unpackable in one
    call (a simple number type, or a structure of them); None otherwise."""
    if type(desc) is int:
        fixed = _FIXED.get(desc)
        return None if fixed is None else (fixed[0], None)
    if desc[0] != STRUCTURE or not desc[1]:
        return None
    fmt = ">"
    for member in desc[1]:
        if type(member) is not int or member not in _FIXED:
            return None
        fmt += _FIXED[member][0][1]
    return fmt, tuple(desc[1])


def _decode_description(buf, pos, end, depth):
    """-> (description, minimum element width, next_offset)."""
    if pos >= end:
        raise AxdrError(pos, "truncated type description")
    tag = buf[pos]
    if tag == ARRAY or tag == STRUCTURE:
        if depth >= MAX_DEPTH:
            raise AxdrError(pos, "nesting deeper than %d" % MAX_DEPTH)
        if tag == ARRAY:
            if pos + 3 > end:
                raise AxdrError(pos + 1, "truncated array description")
            count = unpack_from(">H", buf, pos + 1)[0]
            element, width, nxt = _decode_description(buf, pos + 3, end, depth + 1)
            if width == 0 and count:
                raise AxdrError(pos, "array of zero-size elements in a type description")
            return (ARRAY, count, element), count * width, nxt
        count, nxt = _decode_length(buf, pos + 1, end)
        if count > end - nxt:
            raise AxdrError(nxt, "%d members cannot fit in %d bytes" % (count, end - nxt))
        members = []
        width = 0
        for _ in range(count):
            member, w, nxt = _decode_description(buf, nxt, end, depth + 1)
            members.append(member)
            width += w
        return (STRUCTURE, members), width, nxt
    width = _simple_width(tag)
    if width < 0:
        raise AxdrError(pos, "type %d cannot describe compact-array contents" % tag)
    return tag, width, pos + 1


def _decode_described(buf, pos, end, desc):
    if type(desc) is int:
        fixed = _FIXED.get(desc)
        if fixed is not None:
            nxt = pos + fixed[1]
            if nxt > end:
                raise AxdrError(pos, "truncated %s in compact-array" % TYPE_NAMES[desc])
            return (desc, unpack_from(fixed[0], buf, pos)[0]), nxt
        payload, nxt = _DECODERS[desc](buf, pos, end, 0)
        return (desc, payload), nxt
    items = []
    if desc[0] == ARRAY:
        element = desc[2]
        for _ in range(desc[1]):
            value, pos = _decode_described(buf, pos, end, element)
            items.append(value)
    else:
        for member in desc[1]:
            value, pos = _decode_described(buf, pos, end, member)
            items.append(value)
    return (desc[0], items), pos


_DECODERS = {
    NULL_DATA: _dec_none,
    DONT_CARE: _dec_none,
    ARRAY: _dec_list,
    STRUCTURE: _dec_list,
    BOOLEAN: _dec_boolean,
    BIT_STRING: _dec_bit_string,
    OCTET_STRING: _dec_string,
    VISIBLE_STRING: _dec_string,
    UTF8_STRING: _dec_string,
    COMPACT_ARRAY: _dec_compact_array,
    DATE_TIME: _octets_decoder(12),
    DATE: _octets_decoder(5),
    TIME: _octets_decoder(4),
}


# ---------------------------------------------------------------- constructors

def null_data():
    return (NULL_DATA, None)


def dont_care():
    return (DONT_CARE, None)


def boolean(b):
    return (BOOLEAN, bool(b))


def integer(n):
    return (INTEGER, n)


def long(n):
    return (LONG, n)


def double_long(n):
    return (DOUBLE_LONG, n)


def long64(n):
    return (LONG64, n)


def unsigned(n):
    return (UNSIGNED, n)


def long_unsigned(n):
    return (LONG_UNSIGNED, n)


def double_long_unsigned(n):
    return (DOUBLE_LONG_UNSIGNED, n)


def long64_unsigned(n):
    return (LONG64_UNSIGNED, n)


def enum(n):
    return (ENUM, n)


def float32(x):
    return (FLOAT32, x)


def float64(x):
    return (FLOAT64, x)


def octet_string(b):
    return (OCTET_STRING, bytes(b))


def visible_string(b):
    return (VISIBLE_STRING, bytes(b))


def utf8_string(b):
    return (UTF8_STRING, bytes(b))


def bcd(n):
    return (BCD, n)


def bit_string(count, b):
    return (BIT_STRING, (count, bytes(b)))


def date_time(b12):
    return (DATE_TIME, bytes(b12))


def date(b5):
    return (DATE, bytes(b5))


def time(b4):
    return (TIME, bytes(b4))


def structure(items):
    return (STRUCTURE, list(items))


def array(items):
    return (ARRAY, list(items))


def compact_array(description, items):
    return (COMPACT_ARRAY, (description, list(items)))


def raw(encoded):
    return (RAW, bytes(encoded))
