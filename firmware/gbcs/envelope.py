"""GBCS message envelope: MAC header, general-signing grouping header, payload, signature.

Byte layout (GBCS v4 clause 7.2, checked against RTDS 4.5.0 and the clause 18.4 worked
example; see shared/design/DOMAIN.md):

    [MAC header]  DD 00 00 00 00 00 00  <BER length>  11 00 00 00 00     (MAC'd messages)
    DF                                   general-signing tag
    09 <CRA flag> <originator counter: 8>     transaction id
    08 <originator EUI-64>
    08 <recipient EUI-64>
    00 | 0C <date-time: 12>
    <BER length> <message code: 2> [<supp. remote party: 8> <supp. counter: 8>] [rest]
    <BER length> <payload>
    [00 | 40 <signature r||s: 64>]      absent altogether in a pre-command
    [<GCM tag: 12>]                     MAC'd messages

The signature covers the grouping header from the byte after DF to the end of the
payload; the MAC covers everything from DF to the end of the signature field.
"""

import struct

MAC_HEADER_TAG = 0xDD
GENERAL_SIGNING_TAG = 0xDF
SECURITY_HEADER = b"\x11\x00\x00\x00\x00"
MAC_LENGTH = 12
SIGNATURE_LENGTH = 64

_DF = bytes((GENERAL_SIGNING_TAG,))
_SIGNATURE_LENGTH_BYTE = bytes((SIGNATURE_LENGTH,))
_MAC_HEADER_START = bytes((MAC_HEADER_TAG,)) + b"\x00" * 6
_MAC_OVERHEAD = len(SECURITY_HEADER) + MAC_LENGTH

CRA_COMMAND = 1
CRA_RESPONSE = 2
CRA_ALERT = 3


class GbcsError(Exception):
    """A GBCS envelope that cannot be parsed; `offset` is where the fault was found."""

    def __init__(self, offset, reason):
        super().__init__("gbcs: offset %d: %s" % (offset, reason))
        self.offset = offset
        self.reason = reason


def read_ber_length(buf, offset):
    """BER definite length (X.690 8.1.3): short form or 0x81/0x82/0x83/0x84 long form."""
    if offset >= len(buf):
        raise GbcsError(offset, "length expected, message ends")
    first = buf[offset]
    if first < 0x80:
        return first, offset + 1
    count = first & 0x7F
    if count == 0 or count > 4:
        raise GbcsError(offset, "unsupported BER length form 0x%02X" % first)
    if offset + 1 + count > len(buf):
        raise GbcsError(offset, "BER length runs past the message")
    value = 0
    for i in range(count):
        value = (value << 8) | buf[offset + 1 + i]
    return value, offset + 1 + count


def ber_length(n):
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return bytes((0x82, n >> 8, n & 0xFF))
    raise ValueError("GBCS lengths stop at 65535")


def _immutable(fields):
    """Whether `fields` can change in place: a tuple of bytes, ints and None hashes, one
    holding a bytearray, a writable memoryview or a list does not (one call, no loop)."""
    try:
        hash(fields)
    except (TypeError, ValueError):
        return False
    return True


def _uint64(buf, offset):
    hi, lo = struct.unpack_from(">II", buf, offset)
    return (hi << 32) | lo


def _pack_uint64(n):
    if n < 0 or n >= 1 << 64:
        raise ValueError("counter out of range")
    return struct.pack(">II", n >> 32, n & 0xFFFFFFFF)


class GbcsMessage:
    """One GBCS message, parsed or to be built. Lengths are derived, never stored."""

    def __init__(self, cra_flag, originator_counter, originator, recipient, message_code,
                 payload, date_time=None, supplementary_remote_party=None,
                 supplementary_remote_counter=None, other_info_tail=b"",
                 signature=None, signature_field=True, mac=None, mac_protected=False,
                 _signed_part=None):
        self.cra_flag = cra_flag
        self.originator_counter = originator_counter
        self.originator = originator
        self.recipient = recipient
        self.message_code = message_code
        self.payload = payload
        self.date_time = date_time
        self.supplementary_remote_party = supplementary_remote_party
        self.supplementary_remote_counter = supplementary_remote_counter
        # after the supplementary fields: a supplementary originator counter (8 bytes) or
        # a KA certificate (DER, starts 0x30), as the use case defines
        self.other_info_tail = other_info_tail
        self.signature = signature            # None: "00" (or absent); else 64 bytes
        self.signature_field = signature_field  # False in a pre-command: no length byte
        self.mac = mac
        self.mac_protected = mac_protected
        # (the fields it was built from, the signed part): what signing, the MAC and
        # encoding reuse while those fields are unchanged (a parsed message holds the bytes
        # it came in); a copy made from vars() takes it along and checks it the same way
        self._signed_part = _signed_part

    def fields(self):
        """What the message is, by name: the constructor's fields (not the cached signed
        part). One reading for comparing a message with another codec's or a rebuilt one."""
        return {
            "cra_flag": self.cra_flag, "originator_counter": self.originator_counter,
            "originator": self.originator, "recipient": self.recipient,
            "message_code": self.message_code, "payload": self.payload,
            "date_time": self.date_time,
            "supplementary_remote_party": self.supplementary_remote_party,
            "supplementary_remote_counter": self.supplementary_remote_counter,
            "other_info_tail": self.other_info_tail, "signature": self.signature,
            "signature_field": self.signature_field, "mac": self.mac}

    # -- building ---------------------------------------------------------------
    def other_information(self):
        out = struct.pack(">H", self.message_code)
        if self.supplementary_remote_party is not None:
            out += self.supplementary_remote_party + _pack_uint64(self.supplementary_remote_counter)
        return out + self.other_info_tail

    def signed_part(self):
        """The bytes the signature covers: after DF, to the end of the payload. Written
        once while the fields stay equal (a MAC'd command is signed, MAC'd, encoded and
        checked on the same bytes)."""
        fields = (self.cra_flag, self.originator_counter, self.originator, self.recipient,
                  self.date_time, self.message_code, self.supplementary_remote_party,
                  self.supplementary_remote_counter, self.other_info_tail, self.payload)
        known = self._signed_part          # (the fields it was written from, its bytes)
        if known is not None and known[0] == fields:
            return known[1]
        dt = b"\x00" if self.date_time is None else b"\x0c" + self.date_time
        other = self.other_information()
        part = (b"\x09" + bytes((self.cra_flag,)) + _pack_uint64(self.originator_counter)
                + b"\x08" + self.originator + b"\x08" + self.recipient + dt
                + ber_length(len(other)) + other
                + ber_length(len(self.payload)) + self.payload)
        # only immutable fields: equal fields later then mean the same bytes
        if _immutable(fields):
            self._signed_part = (fields, part)
        return part

    def body(self):
        """General-signing grouping header, payload and signature: what the MAC covers."""
        if not self.signature_field:
            return _DF + self.signed_part()
        if self.signature is None:
            return _DF + self.signed_part() + b"\x00"
        return _DF + self.signed_part() + _SIGNATURE_LENGTH_BYTE + self.signature

    def encode(self):
        body = self.body()
        if not self.mac_protected:
            return body
        if self.mac is None or len(self.mac) != MAC_LENGTH:
            raise ValueError("a MAC'd message needs its 12-byte MAC (see protect())")
        return (_MAC_HEADER_START + ber_length(len(body) + _MAC_OVERHEAD) + SECURITY_HEADER
                + body + self.mac)


def parse(buf):
    """Parse a GBCS message. Raises GbcsError with the offset of the first fault.

    Every device and hop parses what it receives: the common fields are read inline, each
    check in the order (and with the error) of the layout above."""
    buf = bytes(buf)
    end = len(buf)
    offset = 0
    mac_protected = False
    if end == 0:
        raise GbcsError(0, "empty message")
    if buf[0] == MAC_HEADER_TAG:
        if buf[1:7] != _SIX_ZEROS:
            raise GbcsError(1, "MAC header: expected six zero bytes after DD")
        if end > 7 and buf[7] < 0x80:
            length = buf[7]
            offset = 8
        elif end > 8 and buf[7] == 0x81:         # a signed command or response: 128-255
            length = buf[8]
            offset = 9
        else:
            length, offset = read_ber_length(buf, 7)
        if offset + length != end:
            raise GbcsError(7, "MAC header length %d but %d bytes follow" % (length, end - offset))
        if buf[offset:offset + 5] != SECURITY_HEADER:
            raise GbcsError(offset, "security header is not 11 00000000")
        offset += 5
        end -= MAC_LENGTH
        if end <= offset:
            raise GbcsError(offset, "no room for the 12-byte MAC")
        mac_protected = True
    body_start = offset
    if buf[offset] != GENERAL_SIGNING_TAG:
        raise GbcsError(offset, "expected general-signing tag DF, found %02X" % buf[offset])
    offset += 1
    if offset + 28 <= end:
        length, cra_flag, hi, lo, size, originator, size2, recipient = struct.unpack_from(
            _HEADER, buf, offset)
        if (length == 9 and size == 8 and size2 == 8
                and (cra_flag == CRA_COMMAND or cra_flag == CRA_RESPONSE
                     or cra_flag == CRA_ALERT)):
            counter = (hi << 32) | lo
            offset += 28
        else:
            cra_flag, counter, originator, recipient, offset = _header(buf, offset, end)
    else:
        cra_flag, counter, originator, recipient, offset = _header(buf, offset, end)
    if offset >= end:
        _need(buf, offset, 1, end, "date-time")
    date_time = None
    if buf[offset] == 0x0C:
        _need(buf, offset + 1, 12, end, "date-time")
        date_time = buf[offset + 1:offset + 13]
        offset += 13
    elif buf[offset] == 0x00:
        offset += 1
    else:
        raise GbcsError(offset, "date-time length must be 00 or 0C")
    canonical = True            # every length in its shortest form: encode() gives `buf`
    if offset < len(buf) and buf[offset] < 0x80:     # short form (read_ber_length's first case)
        other_len = buf[offset]
        offset += 1
    else:
        at = offset
        other_len, offset = read_ber_length(buf, offset)
        if offset - at != _ber_size(other_len):
            canonical = False
    if other_len < 2:
        raise GbcsError(offset, "other-information must hold the message code")
    if offset + other_len > end:
        _need(buf, offset, other_len, end, "other-information")
    other_at = offset
    offset += other_len
    if offset < len(buf) and buf[offset] < 0x80:
        payload_len, payload_at = buf[offset], offset + 1
    else:
        payload_len, payload_at = read_ber_length(buf, offset)
        if payload_at - offset != _ber_size(payload_len):
            canonical = False
    if payload_at + payload_len > end:
        _need(buf, payload_at, payload_len, end, "payload")
    offset = payload_at + payload_len
    payload = buf[payload_at:offset]
    signed_end = offset
    if offset == end:
        signature, signature_field = None, False   # pre-command: no signature field at all
    elif offset + 65 == end and buf[offset] == SIGNATURE_LENGTH:
        signature, signature_field = buf[offset + 1:end], True
    else:
        signature, signature_field, offset = _signature(buf, offset, end)
        if offset != end:
            raise GbcsError(offset, "%d unexpected bytes after the signature" % (end - offset))
    message_code = (buf[other_at] << 8) | buf[other_at + 1]
    if other_len >= 18:
        party = buf[other_at + 2:other_at + 10]
        hi, lo = struct.unpack_from(">II", buf, other_at + 10)
        party_counter = (hi << 32) | lo
        tail = buf[other_at + 18:other_at + other_len]
    else:
        party = party_counter = None
        tail = buf[other_at + 2:other_at + other_len]
    message = GbcsMessage(cra_flag, counter, originator, recipient, message_code, payload,
                          date_time, party, party_counter, tail, signature, signature_field,
                          buf[end:] if mac_protected else None, mac_protected)
    if canonical:           # the bytes it came in, beside the fields as signed_part lists them
        message._signed_part = ((cra_flag, counter, originator, recipient, date_time,
                                 message_code, party, party_counter, tail, payload),
                                buf[body_start + 1:signed_end])
    return message


_SIX_ZEROS = b"\x00" * 6
_HEADER = ">BBIIB8sB8s"      # transaction id (9, CRA flag, counter), originator, recipient


def _header(buf, offset, end):
    """Transaction id, originator and recipient, each checked in turn (the first fault)."""
    _need(buf, offset, 10, end, "transaction id")
    if buf[offset] != 9:
        raise GbcsError(offset, "transaction id length must be 9")
    cra_flag = buf[offset + 1]
    if cra_flag not in (CRA_COMMAND, CRA_RESPONSE, CRA_ALERT):
        raise GbcsError(offset + 1, "CRA flag %d is not 1, 2 or 3" % cra_flag)
    counter = _uint64(buf, offset + 2)
    offset += 10
    originator, offset = _eui(buf, offset, end, "originator")
    recipient, offset = _eui(buf, offset, end, "recipient")
    return cra_flag, counter, originator, recipient, offset


def _ber_size(n):
    """Bytes of the shortest BER length of `n` (0: none, past what ber_length writes)."""
    if n < 0x80:
        return 1
    if n < 0x100:
        return 2
    if n < 0x10000:
        return 3
    return 0


def _need(buf, offset, count, end, what):
    if offset + count > end:
        raise GbcsError(offset, "%s needs %d bytes, %d left" % (what, count, end - offset))


def _eui(buf, offset, end, what):
    _need(buf, offset, 9, end, what)
    if buf[offset] != 8:
        raise GbcsError(offset, "%s EUI-64 length must be 8" % what)
    return buf[offset + 1:offset + 9], offset + 9


def _signature(buf, offset, end):
    if offset == end:
        return None, False, offset          # pre-command: no signature field at all
    length = buf[offset]
    if length == 0:
        return None, True, offset + 1
    if length != SIGNATURE_LENGTH:
        raise GbcsError(offset, "signature length must be 00 or 40, found %02X" % length)
    _need(buf, offset + 1, SIGNATURE_LENGTH, end, "signature")
    return buf[offset + 1:offset + 65], True, offset + 65
