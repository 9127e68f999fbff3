"""ZCL data types the GSME uses (ZCL r7 section 2.6.2, Table 2-10): all little-endian.

A value is read with `read(type_id, buf, offset) -> (value, next offset)` and written
with `write(type_id, value) -> bytes`; both raise `ZclError(offset, reason)`.
"""

BITMAP8 = 0x18
BITMAP16 = 0x19
UINT8 = 0x20
UINT16 = 0x21
UINT24 = 0x22
UINT32 = 0x23
UINT48 = 0x25
INT8 = 0x28
INT16 = 0x29
INT24 = 0x2A
INT32 = 0x2B
ENUM8 = 0x30
ENUM16 = 0x31
OCTET_STRING = 0x41
CHARACTER_STRING = 0x42
UTC_TIME = 0xE2

# type id -> (size in bytes, signed)
_FIXED = {
    BITMAP8: (1, False), BITMAP16: (2, False), UINT8: (1, False), UINT16: (2, False),
    UINT24: (3, False), UINT32: (4, False), UINT48: (6, False), INT8: (1, True),
    INT16: (2, True), INT24: (3, True), INT32: (4, True), ENUM8: (1, False),
    ENUM16: (2, False), UTC_TIME: (4, False),
}
_STRINGS = (OCTET_STRING, CHARACTER_STRING)


class ZclError(Exception):
    """A ZCL frame that cannot be read or written; `offset` is where the fault is."""

    def __init__(self, offset, reason):
        super().__init__("zcl: offset %s: %s" % (offset, reason))
        self.offset = offset
        self.reason = reason


def is_known(type_id):
    return type_id in _FIXED or type_id in _STRINGS


def read_uint(buf, offset, size):
    if offset + size > len(buf):
        raise ZclError(offset, "%d-byte integer runs past the frame" % size)
    value = 0
    for i in range(size - 1, -1, -1):
        value = (value << 8) | buf[offset + i]
    return value, offset + size


def read_int(buf, offset, size):
    value, end = read_uint(buf, offset, size)
    if value >> (8 * size - 1):
        value -= 1 << (8 * size)
    return value, end


def write_uint(value, size, offset=None):
    if not 0 <= value < (1 << (8 * size)):
        raise ZclError(offset, "%r does not fit %d unsigned bytes" % (value, size))
    out = bytearray(size)
    for i in range(size):
        out[i] = (value >> (8 * i)) & 0xFF
    return bytes(out)


def write_int(value, size, offset=None):
    half = 1 << (8 * size - 1)
    if not -half <= value < half:
        raise ZclError(offset, "%r does not fit %d signed bytes" % (value, size))
    return write_uint(value + (1 << (8 * size)) if value < 0 else value, size)


def read_lv(buf, offset):
    """A one-byte length, then that many bytes (ZCL octet/character string)."""
    if offset >= len(buf):
        raise ZclError(offset, "string length expected")
    n = buf[offset]
    if n == 0xFF:                   # invalid string (ZCL 2.6.2.10): kept as None
        return None, offset + 1
    if offset + 1 + n > len(buf):
        raise ZclError(offset, "string of %d bytes runs past the frame" % n)
    return bytes(buf[offset + 1:offset + 1 + n]), offset + 1 + n


def write_lv(data):
    if data is None:
        return b"\xff"
    if len(data) > 254:
        raise ZclError(None, "a ZCL string holds at most 254 bytes")
    return bytes((len(data),)) + bytes(data)


def read(type_id, buf, offset):
    if type_id in _STRINGS:
        return read_lv(buf, offset)
    spec = _FIXED.get(type_id)
    if spec is None:
        raise ZclError(offset, "data type 0x%02X not supported" % type_id)
    if spec[1]:
        return read_int(buf, offset, spec[0])
    return read_uint(buf, offset, spec[0])


def write(type_id, value):
    if type_id in _STRINGS:
        return write_lv(value)
    spec = _FIXED.get(type_id)
    if spec is None:
        raise ZclError(None, "data type 0x%02X not supported" % type_id)
    if spec[1]:
        return write_int(value, spec[0])
    return write_uint(value, spec[0])
