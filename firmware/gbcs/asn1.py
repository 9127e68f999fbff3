"""A minimal, bounded ASN.1 DER reader and writer (ITU-T X.690) for GBCS payloads.

GBCS section 13 defines the CS02/CS03/CS04/CS06/GCS28 payloads in ASN.1, DER-encoded;
the certificates they carry are X.509 (RFC 5280), also DER. Only what those use is here:
single-byte tags (universal, context-specific, constructed), definite lengths up to four
length bytes, INTEGER/ENUMERATED, BIT STRING, OCTET STRING, NULL, GeneralizedTime.

Bounded: every read checks the length against the enclosing element (X.690 8.1.3),
minimal integers are enforced (X.690 8.3.2), nesting is limited to MAX_DEPTH, and every
fault raises `Asn1Error(offset, reason)` with the offset of the offending byte in the
buffer the outermost Reader was given.

Lengths: the GBCS payloads in RTDS write every length of 128 or more in the two-byte long
form (`30 82 00 DE`, not DER's `30 81 DE`), so the reader accepts a long form that is not
the shortest (BER, X.690 8.1.3.5) and the writer produces RTDS's form by default.
"""

from firmware.dlms.cosem_datetime import civil_from_seconds

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
ENUMERATED = 0x0A
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
SET = 0x31

CONTEXT = 0x80
CONSTRUCTED = 0x20

MAX_DEPTH = 12
MAX_INTEGER_BYTES = 20          # serial numbers (RFC 5280 4.1.2.2) are the longest we read


class Asn1Error(Exception):
    def __init__(self, offset, reason):
        super().__init__("asn1: offset %d: %s" % (offset, reason))
        self.offset = offset
        self.reason = reason


def context(number, constructed=False):
    """The tag byte of [number] (context-specific, X.690 8.1.2)."""
    return CONTEXT | (CONSTRUCTED if constructed else 0) | number


class Reader:
    """Reads DER elements from buf[start:end], in order."""

    def __init__(self, buf, start=0, end=None, depth=0):
        self.buf = buf
        self.pos = start
        self.end = len(buf) if end is None else end
        self.depth = depth
        if self.end > len(buf) or start > self.end:
            raise Asn1Error(start, "element runs past the buffer")

    def at_end(self):
        return self.pos >= self.end

    def peek_tag(self):
        return None if self.pos >= self.end else self.buf[self.pos]

    def present(self, tag):
        return self.peek_tag() == tag

    def expect_end(self, what="element"):
        if self.pos != self.end:
            raise Asn1Error(self.pos, "%d unexpected bytes at the end of %s"
                            % (self.end - self.pos, what))

    # -- raw TLV ----------------------------------------------------------------------------
    def read_tlv(self, tag=None):
        """(tag, value start, value end), advancing past the element."""
        at = self.pos
        if at >= self.end:
            raise Asn1Error(at, "element expected, %s ends" % ("input" if self.depth == 0
                                                               else "enclosing element"))
        found = self.buf[at]
        if found & 0x1F == 0x1F:
            raise Asn1Error(at, "multi-byte tags are not used by GBCS")
        if tag is not None and found != tag:
            raise Asn1Error(at, "expected tag %02X, found %02X" % (tag, found))
        length, value_at = self._length(at + 1)
        if value_at + length > self.end:
            raise Asn1Error(at + 1, "length %d runs past the enclosing element" % length)
        self.pos = value_at + length
        return found, value_at, value_at + length

    def _length(self, at):
        if at >= self.end:
            raise Asn1Error(at, "length expected")
        first = self.buf[at]
        if first < 0x80:
            return first, at + 1
        count = first & 0x7F
        if count == 0:
            raise Asn1Error(at, "indefinite length is not DER")
        if count > 4:
            raise Asn1Error(at, "length of %d bytes is absurd" % count)
        if at + 1 + count > self.end:
            raise Asn1Error(at, "length bytes run past the enclosing element")
        value = 0
        for i in range(count):
            value = (value << 8) | self.buf[at + 1 + i]
        return value, at + 1 + count

    def raw(self, tag=None):
        """The whole element (tag, length and value) as bytes: certificates, for instance."""
        at = self.pos
        _, _, end = self.read_tlv(tag)
        return bytes(self.buf[at:end])

    def value(self, tag=None):
        _, start, end = self.read_tlv(tag)
        return bytes(self.buf[start:end])

    # -- constructed ------------------------------------------------------------------------
    def enter(self, tag=SEQUENCE):
        """A Reader over the contents of the next (constructed) element."""
        at = self.pos
        found, start, end = self.read_tlv(tag)
        if not found & CONSTRUCTED:
            raise Asn1Error(at, "tag %02X is not constructed" % found)
        if self.depth + 1 > MAX_DEPTH:
            raise Asn1Error(at, "nested deeper than %d" % MAX_DEPTH)
        return Reader(self.buf, start, end, self.depth + 1)

    def sequence_of(self, item, tag=SEQUENCE):
        """[item(reader) ...] over the elements of a SEQUENCE OF."""
        inner = self.enter(tag)
        items = []
        while not inner.at_end():
            items.append(item(inner))
        return items

    # -- primitives -------------------------------------------------------------------------
    def integer(self, tag=INTEGER):
        """A signed INTEGER / ENUMERATED (X.690 8.3), minimal two's complement."""
        at = self.pos
        _, start, end = self.read_tlv(tag)
        if end == start:
            raise Asn1Error(at, "an integer needs at least one byte")
        if end - start > MAX_INTEGER_BYTES:
            raise Asn1Error(at, "integer of %d bytes is too long" % (end - start))
        if end - start > 1:
            first, second = self.buf[start], self.buf[start + 1]
            if (first == 0 and second < 0x80) or (first == 0xFF and second >= 0x80):
                raise Asn1Error(start, "integer not in its shortest form (DER)")
        value = 0
        for i in range(start, end):
            value = (value << 8) | self.buf[i]
        if self.buf[start] & 0x80:
            value -= 1 << (8 * (end - start))
        return value

    def unsigned(self, tag=INTEGER):
        at = self.pos
        value = self.integer(tag)
        if value < 0:
            raise Asn1Error(at, "negative where a count or counter is expected")
        return value

    def enumerated(self, tag=ENUMERATED):
        return self.integer(tag)

    def octet_string(self, tag=OCTET_STRING):
        return self.value(tag)

    def null(self, tag=NULL):
        at = self.pos
        _, start, end = self.read_tlv(tag)
        if end != start:
            raise Asn1Error(at, "NULL must be empty")

    def bit_string(self, tag=BIT_STRING):
        """(unused bits, bytes) of a BIT STRING (X.690 8.6)."""
        at = self.pos
        _, start, end = self.read_tlv(tag)
        if end == start:
            raise Asn1Error(at, "BIT STRING needs its unused-bits byte")
        unused = self.buf[start]
        if unused > 7 or (unused and end - start == 1):
            raise Asn1Error(start, "bad unused-bits count %d" % unused)
        return unused, bytes(self.buf[start + 1:end])

    def generalized_time(self, tag=GENERALIZED_TIME):
        """The text of a GeneralizedTime, checked to be YYYYMMDDHHMMSSZ (X.690 11.7)."""
        at = self.pos
        text = self.value(tag)
        if len(text) != 15 or text[14] != 0x5A:
            raise Asn1Error(at, "GeneralizedTime must be YYYYMMDDHHMMSSZ")
        for i in range(14):
            if not 0x30 <= text[i] <= 0x39:
                raise Asn1Error(at, "GeneralizedTime digit expected")
        return text.decode()


# -- writer ---------------------------------------------------------------------------------

def length(n, der=False):
    """RTDS's form (82 hi lo from 128 up), or the shortest (DER) form when `der`."""
    if n < 0:
        raise ValueError("negative length")
    if n < 0x80:
        return bytes((n,))
    if not der and n < 0x10000:
        return bytes((0x82, n >> 8, n & 0xFF))
    body = b""
    while n:
        body = bytes((n & 0xFF,)) + body
        n >>= 8
    return bytes((0x80 | len(body),)) + body


def tlv(tag, content):
    return bytes((tag,)) + length(len(content)) + bytes(content)


def sequence(parts, tag=SEQUENCE):
    return tlv(tag, b"".join(parts))


def integer(value, tag=INTEGER):
    """Minimal two's complement (X.690 8.3.2)."""
    body = b""
    n = value
    while True:
        body = bytes((n & 0xFF,)) + body
        n >>= 8
        if (n == 0 and not body[0] & 0x80) or (n == -1 and body[0] & 0x80):
            break
    return tlv(tag, body)


def enumerated(value, tag=ENUMERATED):
    return integer(value, tag)


def octet_string(data, tag=OCTET_STRING):
    return tlv(tag, data)


def null(tag=NULL):
    return bytes((tag, 0))


def bit_string(unused, data, tag=BIT_STRING):
    return tlv(tag, bytes((unused,)) + bytes(data))


def generalized_time_text(seconds):
    """YYYYMMDDHHMMSSZ (X.690 11.7) for integer seconds since 1970 UTC."""
    fields = civil_from_seconds(seconds)
    text = "%04d" % fields[0]
    for value in fields[1:6]:
        text += "%02d" % value
    return text + "Z"


def generalized_time(text, tag=GENERALIZED_TIME):
    return tlv(tag, text.encode())
