"""The HDLC frame format type 3 of IEC 62056-46 §6.4, parsed and built.

    7E | format (2) | destination | source | control | [HCS (2) | information] | FCS (2) | 7E

Format field: 4 bits frame format type (0b1010 = type 3), the segmentation bit
S, 11 bits frame length = every byte between the two flags. Addresses (§6.4.2): 7 bits
per byte, bit 0 set only on the last byte; a client address is one byte, a server
address one, two or four (upper HDLC address = logical device, lower = physical device;
one byte carries the upper address only). The HCS covers the header and is present
only when there is an information field; the FCS covers everything between the flags.
There is no byte stuffing: the length field delimits the frame.

An address is kept as ``(value, size)``: ``value`` is the concatenation of the 7-bit
groups, most significant first (a two-byte server address is ``upper << 7 | lower``).
"""

from firmware.hdlc.crc import crc16, crc16_bytes

FLAG = 0x7E
FORMAT_TYPE_3 = 0xA000
FORMAT_TYPE_MASK = 0xF000
SEGMENTATION_BIT = 0x0800
LENGTH_MASK = 0x07FF
MAX_FRAME_LENGTH = 0x07FF
MIN_FRAME_LENGTH = 7        # format 2 + destination 1 + source 1 + control 1 + FCS 2

# Control field (IEC 62056-46 §6.4, ISO/IEC 13239, modulo 8). A frame's kind is
# its control byte with P/F, N(S) and N(R) cleared.
POLL_FINAL = 0x10
I = 0x00
RR = 0x01
RNR = 0x05
REJ = 0x09
SREJ = 0x0D
UI = 0x03
DM = 0x0F
DISC = 0x43
UA = 0x63
SNRM = 0x83
FRMR = 0x87

KIND_NAMES = {I: "I", RR: "RR", RNR: "RNR", REJ: "REJ", SREJ: "SREJ", UI: "UI",
              DM: "DM", DISC: "DISC", UA: "UA", SNRM: "SNRM", FRMR: "FRMR"}

# Reserved addresses (IEC 62056-46 §6.4.2.2): "no station" for either side.
NO_STATION = 0x00


class HdlcError(Exception):
    """A frame that cannot be parsed (or fields that cannot be built)."""

    def __init__(self, offset, reason):
        super().__init__(offset, reason)
        self.offset = offset
        self.reason = reason

    def __str__(self):
        return "hdlc: offset %d: %s" % (self.offset, self.reason)


def control_kind(control):
    """The frame kind of a control byte: I, an S kind or a U kind (maybe unknown)."""
    if control & 0x01 == 0:
        return I
    if control & 0x03 == 0x01:
        return control & 0x0F
    return control & 0xEF


def i_control(ns, nr, poll):
    """Control byte of an I frame: N(R) bits 7-5, P/F bit 4, N(S) bits 3-1, bit 0 = 0."""
    return (nr & 7) << 5 | (POLL_FINAL if poll else 0) | (ns & 7) << 1


def s_control(kind, nr, poll):
    """Control byte of a supervisory frame (RR, RNR, REJ, SREJ)."""
    return (nr & 7) << 5 | (POLL_FINAL if poll else 0) | kind


def u_control(kind, poll):
    """Control byte of an unnumbered frame (SNRM, DISC, UA, DM, FRMR, UI)."""
    return kind | (POLL_FINAL if poll else 0)


def encode_address(value, size):
    if size != 1 and size != 2 and size != 4:
        raise HdlcError(0, "address size %d is not 1, 2 or 4" % size)
    if value < 0 or value >= 1 << (7 * size):
        raise HdlcError(0, "address %d does not fit %d byte(s)" % (value, size))
    out = bytearray(size)
    for i in range(size):
        out[size - 1 - i] = ((value >> (7 * i)) & 0x7F) << 1
    out[size - 1] |= 1
    return bytes(out)


def decode_address(buf, offset, end):
    """Reads an extension-bit address at buf[offset:]; returns (value, size, next)."""
    value = 0
    i = offset
    while i < end and i - offset < 4:
        byte = buf[i]
        value = value << 7 | byte >> 1
        i += 1
        if byte & 1:
            size = i - offset
            if size == 3:
                raise HdlcError(offset, "3-byte address (only 1, 2 or 4 bytes exist)")
            return value, size, i
    if i - offset == 4:
        raise HdlcError(offset, "address longer than 4 bytes")
    raise HdlcError(offset, "address runs past the header")


def server_address(upper, lower, size):
    """The (value, size) of a server address; one byte carries the upper address only."""
    if size == 1:
        return upper, 1
    if size == 2:
        if upper > 0x7F or lower > 0x7F:
            raise HdlcError(0, "server address %d/%d needs 4 bytes" % (upper, lower))
        return upper << 7 | lower, 2
    return upper << 14 | lower, size


def split_server_address(address):
    """(upper, lower) of a server address; lower is None for a one-byte address."""
    value, size = address
    if size == 1:
        return value, None
    if size == 2:
        return value >> 7, value & 0x7F
    return value >> 14, value & 0x3FFF


class HdlcFrame:
    """One HDLC frame: the fields of IEC 62056-46 §6.4 without the checksums."""

    def __init__(self, control, destination, source, info=b"", segmented=False):
        self.control = control
        self.destination = destination
        self.source = source
        self.info = info
        self.segmented = segmented

    @property
    def kind(self):
        return control_kind(self.control)

    @property
    def poll(self):
        return self.control & POLL_FINAL != 0

    @property
    def ns(self):
        return (self.control >> 1) & 7

    @property
    def nr(self):
        return self.control >> 5

    def encode(self):
        if self.control < 0 or self.control > 0xFF:
            raise HdlcError(5, "control field %d is not a byte" % self.control)
        destination = encode_address(self.destination[0], self.destination[1])
        source = encode_address(self.source[0], self.source[1])
        header_length = 3 + len(destination) + len(source)
        length = header_length + 2
        if self.info:
            length += len(self.info) + 2
        if length > MAX_FRAME_LENGTH:
            raise HdlcError(1, "frame length %d exceeds %d" % (length, MAX_FRAME_LENGTH))
        fmt = FORMAT_TYPE_3 | length
        if self.segmented:
            fmt |= SEGMENTATION_BIT
        out = bytearray()
        out.append(FLAG)
        out.append(fmt >> 8)
        out.append(fmt & 0xFF)
        out.extend(destination)
        out.extend(source)
        out.append(self.control)
        if self.info:
            out.extend(crc16_bytes(out, 1))
            out.extend(self.info)
        out.extend(crc16_bytes(out, 1))
        out.append(FLAG)
        return bytes(out)

    def __eq__(self, other):
        return (isinstance(other, HdlcFrame) and self.control == other.control
                and self.destination == other.destination and self.source == other.source
                and bytes(self.info) == bytes(other.info)
                and self.segmented == other.segmented)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return "HdlcFrame(%s control=0x%02x dst=%r src=%r info=%d bytes%s)" % (
            KIND_NAMES.get(self.kind, "U?"), self.control, self.destination, self.source,
            len(self.info), " segmented" if self.segmented else "")


def frame_length(buf, offset):
    """The length field of the format at buf[offset:offset+2], or -1 if not type 3."""
    fmt = buf[offset] << 8 | buf[offset + 1]
    if fmt & FORMAT_TYPE_MASK != FORMAT_TYPE_3:
        return -1
    return fmt & LENGTH_MASK


def _check_crc(buf, start, end, at, name):
    want = crc16(buf, start, end)
    got = buf[at] | buf[at + 1] << 8
    if got != want:
        raise HdlcError(at, "%s mismatch (got 0x%04x, want 0x%04x)" % (name, got, want))


def parse_frame(buf, start=0, end=None):
    """Parses the flag-delimited frame buf[start:end] into an HdlcFrame.

    Offsets in errors are relative to ``start``.
    """
    if end is None:
        end = len(buf)
    try:
        return _parse(buf, start, end)
    except HdlcError as err:
        err.offset -= start
        raise err


def _parse(buf, start, end):
    if end - start < MIN_FRAME_LENGTH + 2:
        raise HdlcError(end, "frame of %d bytes is shorter than %d" % (
            end - start, MIN_FRAME_LENGTH + 2))
    if buf[start] != FLAG:
        raise HdlcError(start, "no opening flag")
    length = frame_length(buf, start + 1)
    if length < 0:
        raise HdlcError(start + 1, "frame format type is not 3 (0xA)")
    if length != end - start - 2:
        raise HdlcError(start + 1, "frame length field %d, but %d bytes between flags" % (
            length, end - start - 2))
    closing = end - 1
    if buf[closing] != FLAG:
        raise HdlcError(closing, "no closing flag")
    destination, dsize, i = decode_address(buf, start + 3, closing)
    source, ssize, i = decode_address(buf, i, closing)
    if i >= closing:
        raise HdlcError(i, "no control field")
    control = buf[i]
    header_end = i + 1
    rest = closing - header_end
    if rest == 2:
        info = b""
    elif rest >= 5:
        _check_crc(buf, start + 1, header_end, header_end, "HCS")
        info = bytes(buf[header_end + 2:closing - 2])
    else:
        raise HdlcError(header_end, "%d bytes after the header: neither FCS nor "
                                    "HCS + information + FCS" % rest)
    _check_crc(buf, start + 1, closing - 2, closing - 2, "FCS")
    segmented = buf[start + 1] & (SEGMENTATION_BIT >> 8) != 0
    return HdlcFrame(control, (destination, dsize), (source, ssize), info, segmented)
