"""The COSEM wrapper header of IEC 62056-47 §5.3.2 (TCP and UDP) as construct definitions.

    version (2) = 0x0001 | source wPort (2) | destination wPort (2) | length (2) | APDU

All fields big-endian; `length` counts the APDU bytes. The layout is fixed, so both
definitions are compiled.
"""

import struct

from construct import Const, ConstError, ConstructError, GreedyBytes, Int16ub, Prefixed, Struct

from emulator.codec.errors import CodecError

VERSION = 1
HEADER_LENGTH = 8


class WrapperCodecError(CodecError):
    layer = "wrapper"


WrapperHeader = Struct(
    "version" / Const(VERSION, Int16ub),
    "source_wport" / Int16ub,
    "destination_wport" / Int16ub,
    "length" / Int16ub,
).compile()

Wpdu = Struct(
    "version" / Const(VERSION, Int16ub),
    "source_wport" / Int16ub,
    "destination_wport" / Int16ub,
    "apdu" / Prefixed(Int16ub, GreedyBytes),
).compile()


def parse_header(data):
    """Container(source_wport, destination_wport, length) of the first 8 bytes."""
    data = bytes(data)
    if len(data) < HEADER_LENGTH:
        raise WrapperCodecError(len(data), "header needs %d bytes, %d there" % (
            HEADER_LENGTH, len(data)))
    try:
        return WrapperHeader.parse(data[:HEADER_LENGTH])
    except ConstError:
        raise WrapperCodecError(0, "version 0x%04x is not 0x0001" % (
            data[0] << 8 | data[1])) from None


def parse_wpdu(data):
    """Container(source_wport, destination_wport, apdu) of exactly one WPDU."""
    data = bytes(data)
    header = parse_header(data)
    if len(data) != HEADER_LENGTH + header.length:
        raise WrapperCodecError(6, "length field %d, but %d APDU bytes" % (
            header.length, len(data) - HEADER_LENGTH))
    return Wpdu.parse(data)


def build_wpdu(source_wport, destination_wport, apdu):
    try:
        return Wpdu.build(dict(source_wport=source_wport,
                               destination_wport=destination_wport, apdu=bytes(apdu)))
    except (ConstructError, struct.error) as err:   # compiled builders use struct directly
        raise WrapperCodecError(None, str(err).split("\n")[-1].strip()) from None
