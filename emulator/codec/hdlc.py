"""The HDLC frame format type 3 of IEC 62056-46 §6.4 as construct definitions.

The host's independent reading of the frame (the device's is `firmware/hdlc/frame.py`;
property tests hold the two to the same bytes):

    7E | format | destination | source | control | [HCS | information] | FCS | 7E

A parsed frame is a flat Container::

    segmented:    bool, the format field's S bit (more segments follow)
    destination:  Container(value, size): the address's 7-bit groups concatenated,
    source:       size 1, 2 or 4 bytes (a two-byte server address is upper << 7 | lower)
    control:      Container(kind, pf, ns, nr[, code]) (see `Control`)
    info:         bytes, b"" when the frame has no information field

`parse_frame` and `build_frame` raise `HdlcCodecError(offset, reason)`, the offset
being where the failing field starts in the frame.

Not `.compile()`d: the layout varies with the address sizes and the information field,
and a compiled `HdlcFrame` measured no faster (the address and control adapters and the
checksums are called back from the generated code either way).
"""

import io

from construct import (Adapter, BitsInteger, BitStruct, Byte, Bytes, BytesInteger, Check,
                       Checksum, Const, ConstructError, Container, Flag,
                       GreedyRange, If, Int16ul, Nibble, Prefixed, RawCopy, Rebuild,
                       RepeatUntil, Struct, Subconstruct, Terminated, this)

from emulator.codec.errors import CodecError

FLAG = b"\x7e"
MAX_FRAME_LENGTH = 0x7FF


class HdlcCodecError(CodecError):
    layer = "hdlc"


def _crc_table():
    table = []
    for byte in range(256):
        register = byte
        for _ in range(8):
            register = (register >> 1) ^ 0x8408 if register & 1 else register >> 1
        table.append(register)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_x25(data):
    """CRC-16/X.25 (IEC 62056-46 HCS/FCS): reflected 0x1021, init and xorout 0xFFFF."""
    register = 0xFFFF
    for byte in data:
        register = (register >> 8) ^ _CRC_TABLE[(register ^ byte) & 0xFF]
    return register ^ 0xFFFF


class _Located(Subconstruct):
    """Reports any failure inside `subcon` as HdlcCodecError at the field's offset."""

    def __init__(self, subcon, what):
        super().__init__(subcon)
        self.what = what

    def _parse(self, stream, context, path):
        offset = stream.tell()
        try:
            return self.subcon._parsereport(stream, context, path)
        except ConstructError as err:
            raise HdlcCodecError(offset, "%s: %s" % (self.what, _reason(err))) from None

    def _build(self, obj, stream, context, path):
        offset = stream.tell()
        try:
            return self.subcon._build(obj, stream, context, path)
        except ConstructError as err:
            raise HdlcCodecError(offset, "%s: %s" % (self.what, _reason(err))) from None


def _reason(err):
    text = str(err)
    if text.startswith("Error in path"):
        text = text.split("\n", 1)[-1]
    return text.strip()


# -- addresses (IEC 62056-46 §6.4.2) ---------------------------------------------------

class _AddressAdapter(Adapter):
    """Extension-bit address bytes <-> Container(value, size)."""

    def _decode(self, obj, context, path):
        if len(obj) > 4 or not obj[-1] & 1:
            raise HdlcCodecError(None, "address longer than 4 bytes")
        if len(obj) == 3:
            raise HdlcCodecError(None, "3-byte address (only 1, 2 or 4 bytes exist)")
        value = 0
        for byte in obj:
            value = value << 7 | byte >> 1
        return Container(value=value, size=len(obj))

    def _encode(self, obj, context, path):
        value, size = obj["value"], obj["size"]
        if size not in (1, 2, 4) or not 0 <= value < 1 << (7 * size):
            raise HdlcCodecError(None, "address %r does not fit %r byte(s)" % (value, size))
        groups = [(value >> (7 * i)) & 0x7F for i in reversed(range(size))]
        return [g << 1 for g in groups[:-1]] + [groups[-1] << 1 | 1]


class _AddressField(Subconstruct):
    """Gives the adapter's errors the offset of the address."""

    def _parse(self, stream, context, path):
        offset = stream.tell()
        try:
            return self.subcon._parsereport(stream, context, path)
        except HdlcCodecError as err:
            raise HdlcCodecError(offset, err.reason) from None
        except ConstructError as err:
            raise HdlcCodecError(offset, "address: %s" % _reason(err)) from None

    def _build(self, obj, stream, context, path):
        return self.subcon._build(obj, stream, context, path)


Address = _AddressField(_AddressAdapter(
    RepeatUntil(lambda byte, got, ctx: byte & 1 or len(got) == 5, Byte)))


def address(value, size):
    return Container(value=value, size=size)


def client_address(sap):
    return address(sap, 1)


def server_address(upper, lower, size):
    """One byte carries the upper address only; two bytes 7 + 7 bits; four 14 + 14."""
    if size == 1:
        return address(upper, 1)
    if size == 2:
        return address(upper << 7 | lower, 2)
    return address(upper << 14 | lower, 4)


# -- control field (IEC 62056-46 §6.4, ISO/IEC 13239 modulo 8) --------------------------

SUPERVISORY = {0b00: "RR", 0b01: "RNR", 0b10: "REJ", 0b11: "SREJ"}
UNNUMBERED = {0x83: "SNRM", 0x43: "DISC", 0x63: "UA", 0x0F: "DM", 0x87: "FRMR", 0x03: "UI"}
_SUPERVISORY_CODES = {name: code for code, name in SUPERVISORY.items()}
_UNNUMBERED_CODES = {name: code for code, name in UNNUMBERED.items()}


class _ControlAdapter(Adapter):
    """The control byte <-> Container(kind, pf, ns, nr[, code]).

    I:  N(R) bits 7-5, P/F bit 4, N(S) bits 3-1, bit 0 = 0
    S:  N(R) bits 7-5, P/F bit 4, function bits 3-2, bits 1-0 = 01
    U:  modifier bits 7-5 and 3-2, P/F bit 4, bits 1-0 = 11; an unnamed modifier
        decodes as kind "U" with `code` (the byte without P/F) so it can be rejected.
    """

    def _decode(self, byte, context, path):
        pf = bool(byte & 0x10)
        if byte & 0x01 == 0:
            return Container(kind="I", pf=pf, ns=(byte >> 1) & 7, nr=byte >> 5)
        if byte & 0x03 == 0x01:
            return Container(kind=SUPERVISORY[(byte >> 2) & 3], pf=pf, ns=None, nr=byte >> 5)
        code = byte & 0xEF
        return Container(kind=UNNUMBERED.get(code, "U"), pf=pf, ns=None, nr=None, code=code)

    def _encode(self, obj, context, path):
        kind = obj["kind"]
        pf = 0x10 if obj.get("pf") else 0
        if kind == "I":
            return _bits3(obj["nr"]) << 5 | pf | _bits3(obj["ns"]) << 1
        if kind in _SUPERVISORY_CODES:
            return _bits3(obj["nr"]) << 5 | pf | _SUPERVISORY_CODES[kind] << 2 | 0x01
        code = _UNNUMBERED_CODES.get(kind, obj.get("code") if kind == "U" else None)
        if code is None or code & 0x13 != 0x03:
            raise HdlcCodecError(None, "control kind %r" % (kind,))
        return code | pf


def _bits3(n):
    if not 0 <= n <= 7:
        raise HdlcCodecError(None, "sequence number %r is not 0..7" % (n,))
    return n


Control = _ControlAdapter(Byte)


def control(kind, pf=True, ns=None, nr=None, code=None):
    return Container(kind=kind, pf=pf, ns=ns, nr=nr, code=code)


# -- the frame --------------------------------------------------------------------------

def _frame_length(ctx):
    """Every byte between the flags: format 2, addresses, control 1, [HCS 2 + info], FCS 2."""
    header = 2 + ctx._.destination.size + ctx._.source.size + 1
    info = ctx._._.info
    return header + 2 + (len(info) + 2 if info else 0)


_Header = Struct(
    # IEC 62056-46 §6.4 format field: frame format type 3 (0b1010), segmentation bit,
    # 11-bit frame length
    "format" / _Located(BitStruct(
        "type" / Const(0xA, Nibble),
        "segmented" / Flag,
        "length" / Rebuild(BitsInteger(11), _frame_length),
    ), "format field"),
    "destination" / Address,
    "source" / Address,
    "control" / _Located(Control, "control field"),
)


def _rest(ctx):
    """Bytes after the header up to the FCS: 0 (no information) or HCS + information."""
    return ctx.header.value.format.length - len(ctx.header.data) - 2


_Body = Struct(
    "header" / RawCopy(_Header),
    _Located(Check(lambda ctx: _rest(ctx) == 0 or _rest(ctx) >= 3),
             "after the header there must be the FCS alone or HCS + information + FCS"),
    # the HCS covers format..control and exists only with an information field
    "hcs" / If(lambda ctx: _rest(ctx) > 0,
               _Located(Checksum(Int16ul, crc16_x25, this.header.data), "HCS")),
    "info" / If(lambda ctx: _rest(ctx) > 0,
                _Located(Bytes(lambda ctx: _rest(ctx) - 2), "information field")),
)

_Frame = Struct(
    "opening_flag" / _Located(Const(FLAG), "opening flag"),
    "body" / RawCopy(_Body),
    # the FCS covers every byte between the flags before it
    "fcs" / _Located(Checksum(Int16ul, crc16_x25, this.body.data), "FCS"),
    "closing_flag" / _Located(Const(FLAG), "closing flag"),
    _Located(Terminated, "bytes after the closing flag"),
)


class _FlatFrame(Adapter):
    """Hides the RawCopy nesting the checksums need: one flat Container per frame."""

    def _decode(self, obj, context, path):
        body = obj.body.value
        header = body.header.value
        return Container(segmented=header.format.segmented,
                         destination=header.destination, source=header.source,
                         control=header.control, info=body.info or b"")

    def _encode(self, obj, context, path):
        header = dict(format=dict(segmented=bool(obj.get("segmented", False))),
                      destination=obj["destination"], source=obj["source"],
                      control=obj["control"])
        info = bytes(obj.get("info") or b"")
        return dict(body=dict(value=dict(header=dict(value=header), info=info)))


HdlcFrame = _FlatFrame(_Frame)


def parse_frame(data):
    """The flat Container of exactly one flag-delimited frame."""
    try:
        return HdlcFrame.parse_stream(io.BytesIO(bytes(data)))
    except HdlcCodecError:
        raise
    except ConstructError as err:
        raise HdlcCodecError(0, _reason(err)) from None


def build_frame(control, destination, source, info=b"", segmented=False):
    try:
        return HdlcFrame.build(dict(control=control, destination=destination, source=source,
                                    info=info, segmented=segmented))
    except HdlcCodecError:
        raise
    except ConstructError as err:
        raise HdlcCodecError(None, _reason(err)) from None


# -- parameter negotiation (IEC 62056-46 §6.4.4.4.3.2) ----------------------------------

MAX_INFO_TRANSMIT = 0x05
MAX_INFO_RECEIVE = 0x06
WINDOW_TRANSMIT = 0x07
WINDOW_RECEIVE = 0x08
_PARAMETER_NAMES = {MAX_INFO_TRANSMIT: "max_info_transmit", MAX_INFO_RECEIVE: "max_info_receive",
                    WINDOW_TRANSMIT: "window_transmit", WINDOW_RECEIVE: "window_receive"}
DEFAULT_PARAMETERS = dict(max_info_transmit=128, max_info_receive=128, window_transmit=1,
                          window_receive=1)


def _parameter_size(ctx):
    """Windows in 4 bytes, lengths in as few as fit (the Green Book examples' choice)."""
    if ctx.id in (WINDOW_TRANSMIT, WINDOW_RECEIVE):
        return 4
    return 1 if ctx.value < 0x100 else 2 if ctx.value < 0x10000 else 4


_Parameter = Struct(
    "id" / Byte,
    "size" / Rebuild(Byte, _parameter_size),
    Check(lambda ctx: 1 <= ctx.size <= 4),
    "value" / BytesInteger(this.size),
)

HdlcParameters = Struct(
    "format_identifier" / Const(b"\x81"),
    "group_identifier" / Const(b"\x80"),
    "parameters" / Prefixed(Byte, Struct("items" / GreedyRange(_Parameter), Terminated)),
    Terminated,
)


def parse_parameters(info):
    """A dict of the four negotiated values (defaults for absent ones) from the
    information field of SNRM or UA; unknown parameters are skipped."""
    values = dict(DEFAULT_PARAMETERS)
    if not info:
        return values
    try:
        parsed = HdlcParameters.parse_stream(io.BytesIO(bytes(info)))
    except ConstructError as err:
        raise HdlcCodecError(0, "parameter negotiation field: %s" % _reason(err)) from None
    for item in parsed.parameters["items"]:
        name = _PARAMETER_NAMES.get(item.id)
        if name is not None:
            values[name] = item.value
    return values


def build_parameters(max_info_transmit=128, max_info_receive=128, window_transmit=1,
                     window_receive=1):
    items = [dict(id=MAX_INFO_TRANSMIT, value=max_info_transmit),
             dict(id=MAX_INFO_RECEIVE, value=max_info_receive),
             dict(id=WINDOW_TRANSMIT, value=window_transmit),
             dict(id=WINDOW_RECEIVE, value=window_receive)]
    try:
        return HdlcParameters.build(dict(parameters=dict(items=items)))
    except ConstructError as err:
        raise HdlcCodecError(None, "parameter negotiation field: %s" % _reason(err)) from None
