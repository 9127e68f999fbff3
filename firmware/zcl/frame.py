"""ZCL frame header and the general commands the GSME uses (ZCL r7 2.4, 2.5).

Header (ZCL r7 2.4.1): frame control (bits 0-1 frame type: 0 general, 1 cluster
specific; bit 2 manufacturer specific; bit 3 direction, 1 = server to client; bit 4
disable default response), [manufacturer code, 2 bytes LE], transaction sequence number,
command identifier. Then the command payload.
"""

from firmware.zcl.types import (ZclError, is_known, read, read_uint, write,
                                write_uint)

FRAME_TYPE_GENERAL = 0x00
FRAME_TYPE_CLUSTER = 0x01
MANUFACTURER_SPECIFIC = 0x04
SERVER_TO_CLIENT = 0x08
DISABLE_DEFAULT_RESPONSE = 0x10

READ_ATTRIBUTES = 0x00
READ_ATTRIBUTES_RESPONSE = 0x01
DEFAULT_RESPONSE = 0x0B

# ZCL status codes (ZCL r7 2.6.3) the GSME answers with
SUCCESS = 0x00
FAILURE = 0x01
NOT_AUTHORIZED = 0x7E
MALFORMED_COMMAND = 0x80
UNSUP_CLUSTER_COMMAND = 0x81
UNSUP_GENERAL_COMMAND = 0x82
INVALID_FIELD = 0x85
UNSUPPORTED_ATTRIBUTE = 0x86
INVALID_VALUE = 0x87
NOT_FOUND = 0x8B
HARDWARE_FAILURE = 0xC0


class ZclFrame:
    """One ZCL frame: header fields and the command payload (bytes)."""

    def __init__(self, frame_control, tsn, command_id, payload=b"", manufacturer_code=None):
        self.frame_control = frame_control
        self.tsn = tsn
        self.command_id = command_id
        self.payload = bytes(payload)
        self.manufacturer_code = manufacturer_code

    @property
    def cluster_specific(self):
        return self.frame_control & 0x03 == FRAME_TYPE_CLUSTER

    @property
    def server_to_client(self):
        return bool(self.frame_control & SERVER_TO_CLIENT)

    def header(self):
        return encode_header(self.frame_control, self.tsn, self.command_id,
                             self.manufacturer_code)

    def encode(self):
        return self.header() + self.payload

    def __eq__(self, other):
        return (isinstance(other, ZclFrame) and self.encode() == other.encode())

    def __repr__(self):
        return "ZclFrame(fc=0x%02X, tsn=%d, cmd=0x%02X, %d bytes)" % (
            self.frame_control, self.tsn, self.command_id, len(self.payload))


def encode_header(frame_control, tsn, command_id, manufacturer_code=None):
    if frame_control & 0xE0 or frame_control & 0x03 > 1:
        raise ZclError(None, "frame control 0x%02X uses reserved bits" % frame_control)
    if (manufacturer_code is not None) != bool(frame_control & MANUFACTURER_SPECIFIC):
        raise ZclError(None, "manufacturer code present iff the frame control says so")
    out = bytes((frame_control,))
    if manufacturer_code is not None:
        out += write_uint(manufacturer_code, 2)
    return out + write_uint(tsn, 1) + write_uint(command_id, 1)


def decode_header(buf, offset=0):
    """(frame control, manufacturer code or None, tsn, command id, payload offset)."""
    if offset >= len(buf):
        raise ZclError(offset, "ZCL header expected")
    fc = buf[offset]
    if fc & 0xE0 or fc & 0x03 > 1:
        raise ZclError(offset, "frame control 0x%02X uses reserved bits" % fc)
    at = offset + 1
    manufacturer = None
    if fc & MANUFACTURER_SPECIFIC:
        manufacturer, at = read_uint(buf, at, 2)
    if at + 2 > len(buf):
        raise ZclError(at, "sequence number and command id expected")
    return fc, manufacturer, buf[at], buf[at + 1], at + 2


def header_length(buf, offset=0):
    return decode_header(buf, offset)[4] - offset


def decode(buf):
    fc, manufacturer, tsn, command_id, at = decode_header(buf)
    return ZclFrame(fc, tsn, command_id, buf[at:], manufacturer)


# -- Read Attributes (ZCL r7 2.5.1, 2.5.2) -----------------------------------------------

def encode_read_attributes(attribute_ids):
    out = b""
    for attribute_id in attribute_ids:
        out += write_uint(attribute_id, 2)
    return out


def decode_read_attributes(payload):
    if len(payload) % 2:
        raise ZclError(len(payload) - 1, "attribute identifiers are 2 bytes each")
    ids = []
    for i in range(0, len(payload), 2):
        ids.append(payload[i] | (payload[i + 1] << 8))
    return ids


def encode_read_attributes_response(records):
    """records: [(attribute id, status, type id, value)]; type and value only on SUCCESS."""
    out = b""
    for attribute_id, status, type_id, value in records:
        out += write_uint(attribute_id, 2) + write_uint(status, 1)
        if status == SUCCESS:
            out += write_uint(type_id, 1) + write(type_id, value)
    return out


def decode_read_attributes_response(payload):
    records = []
    at = 0
    while at < len(payload):
        attribute_id, at = read_uint(payload, at, 2)
        status, at = read_uint(payload, at, 1)
        if status != SUCCESS:
            records.append((attribute_id, status, None, None))
            continue
        type_id, at = read_uint(payload, at, 1)
        if not is_known(type_id):
            raise ZclError(at - 1, "data type 0x%02X not supported" % type_id)
        value, at = read(type_id, payload, at)
        records.append((attribute_id, status, type_id, value))
    return records


# -- Default Response (ZCL r7 2.5.12) -----------------------------------------------------

def encode_default_response(command_id, status):
    return write_uint(command_id, 1) + write_uint(status, 1)


def decode_default_response(payload):
    if len(payload) != 2:
        raise ZclError(0, "a default response is command id and status")
    return payload[0], payload[1]
