"""GB-HRGP: GBCS messages over the ZSE Tunneling cluster (0x0704), protocol id 6.

What this module builds and reads is the `data` of a Tunneling TransferData command
(ZSE 1.4 10.6; GBCS 10.2 "GB-HRGP"; the layout checked against Wireshark's
`gbcs_tunnel` dissector, packet-gbcs.c):

    01                                   GET           (a sleepy device polls the hub)
    02 <remaining: 1> <GBCS message>     GET-RESPONSE  (remaining: messages still queued)
    03 <GBCS message>                    PUT

    frame = put(message); kind, remaining, payload = decode(frame)   # remaining: None
                                                                     # unless GET-RESPONSE

Segmentation. The receiving end advertises a maximum incoming transfer size (1500 in
GB, DOMAIN.md "HAN tunnel"); a longer frame travels as several TransferData commands.
The Tunneling cluster carries a byte stream: TransferData commands of one tunnel are
delivered and must be processed in order, and the tunnelled protocol frames itself
(ZSE 1.4 10.6.4.x "TransferData"). So `segments()` cuts the frame into consecutive
slices, every one but the last exactly `max_transfer` bytes, with no header of its own,
and the receiver (`Reassembler`) finds the end of the GBCS message from the message's
own lengths (`message_length`: the MAC header's BER length, or the grouping header's
fields up to the signature length byte). Reassembly is bounded: at most `max_message`
bytes, one partial message per peer, dropped after `timeout` seconds of silence or at
the first inconsistency (a short middle segment, bytes past the message's end), so a
lost segment costs one message, never the tunnel. The general-signing form without a
signature field (a pre-command) never crosses the HAN, so every message has one.
"""

GET = 0x01
GET_RESPONSE = 0x02
PUT = 0x03
KIND_NAMES = {GET: "GET", GET_RESPONSE: "GET-RESPONSE", PUT: "PUT"}

PROTOCOL_ID_GB_HRGP = 6
TUNNELING_CLUSTER = 0x0704
MAX_TRANSFER = 1500              # maximum incoming transfer size (GB HAN)
MAX_MESSAGE = 16 * 1024          # reassembly bound: far above any GBCS HAN message
REASSEMBLY_TIMEOUT = 60          # seconds of silence after which a partial is dropped

_MAC_HEADER = 0xDD
_GENERAL_SIGNING = 0xDF
_SIGNATURE_LENGTH = 64


class TunnelError(Exception):
    """A TransferData payload that cannot be read: `offset` into the frame, `reason`."""

    def __init__(self, offset, reason):
        super().__init__("tunnel: offset %d: %s" % (offset, reason))
        self.offset = offset
        self.reason = reason


# -- frames ----------------------------------------------------------------------------

def get():
    return bytes((GET,))


def get_response(remaining, payload=b""):
    """GET-RESPONSE: `remaining` messages still queued after this one (0..255), and the
    message (empty when the queue was empty)."""
    if not isinstance(remaining, int) or not 0 <= remaining <= 255:
        raise ValueError("remaining-messages count is one octet")
    return bytes((GET_RESPONSE, remaining)) + bytes(payload)


def put(payload):
    if len(payload) == 0:
        raise ValueError("a PUT carries a GBCS message")
    return bytes((PUT,)) + bytes(payload)


def decode(data):
    """(kind, remaining, payload) of one whole TransferData payload."""
    if len(data) == 0:
        raise TunnelError(0, "empty TransferData")
    kind = data[0]
    if kind == PUT:
        if len(data) < 2:
            raise TunnelError(1, "PUT carries no GBCS message")
        return PUT, None, bytes(data[1:])
    if kind == GET:
        if len(data) != 1:
            raise TunnelError(1, "GET carries no data, %d bytes follow" % (len(data) - 1))
        return GET, None, b""
    if kind == GET_RESPONSE:
        if len(data) < 2:
            raise TunnelError(1, "GET-RESPONSE needs its remaining-messages count")
        return GET_RESPONSE, data[1], bytes(data[2:])
    raise TunnelError(0, "unknown GB-HRGP command 0x%02X" % kind)


def header_length(kind):
    return 2 if kind == GET_RESPONSE else 1


# -- segmentation ----------------------------------------------------------------------

def segments(frame, max_transfer=MAX_TRANSFER):
    """The TransferData payloads that carry `frame`, in order."""
    if max_transfer < 2:
        raise ValueError("maximum transfer size too small")
    frame = bytes(frame)
    if len(frame) <= max_transfer:
        return [frame]
    out = []
    for start in range(0, len(frame), max_transfer):
        out.append(frame[start:start + max_transfer])
    return out


def message_length(buf, base=0):
    """Length of the GBCS message that starts `buf`, from its own length fields; None
    when `buf` is too short to tell yet. TunnelError (offset + `base`) when the bytes
    cannot start a GBCS message."""
    n = len(buf)
    if n == 0:
        return None
    if buf[0] == _MAC_HEADER:
        # GBCS 7.2.x MAC header: DD, six zero octets, BER length of the rest
        if n < 7 or buf[1:7] != _SIX_ZEROS:                # one compare on the common path
            for i in range(1, min(n, 7)):
                if buf[i] != 0:
                    raise TunnelError(base + i, "MAC header: expected zero octets after DD")
        return _field_end(buf, 7, base)
    if buf[0] != _GENERAL_SIGNING:
        raise TunnelError(base, "not a GBCS message: starts 0x%02X" % buf[0])
    return _signed_length(buf, base)


_SIX_ZEROS = bytes(6)


def _signed_length(buf, base):
    # general-signing grouping header (GBCS 7.2.x): 09 transaction id, 08 EUI, 08 EUI,
    # then the date-time length at 29; a header that is not whole and well formed is
    # read field by field, for the first error's offset
    n = len(buf)
    if n > 29 and buf[1] == 9 and buf[11] == 8 and buf[20] == 8:
        at = 29
    else:
        at = _identities_end(buf, base)
        if at is None:
            return None
    if buf[at] == 0x0C:
        at += 13
    elif buf[at] == 0x00:
        at += 1
    else:
        raise TunnelError(base + at, "date-time length must be 00 or 0C")
    for _ in range(2):                    # other-information, then the payload
        if at < n and buf[at] < 0x80:     # short-form length
            at += 1 + buf[at]
        else:
            at = _field_end(buf, at, base)
            if at is None:
                return None
    if at >= n:
        return None
    if buf[at] == 0:
        return at + 1
    if buf[at] == _SIGNATURE_LENGTH:
        return at + 1 + _SIGNATURE_LENGTH
    raise TunnelError(base + at, "signature length must be 00 or 40")


def _identities_end(buf, base):
    """Offset of the date-time length after the grouping header's 09 transaction id,
    08 originator, 08 recipient (GBCS 7.2.x); None if short."""
    at = 1
    for size, what in ((9, "transaction id"), (8, "originator"), (8, "recipient")):
        if at >= len(buf):
            return None
        if buf[at] != size:
            raise TunnelError(base + at, "%s length must be %d" % (what, size))
        at += 1 + size
    if at >= len(buf):
        return None
    return at


def _field_end(buf, at, base):
    """Offset after the field at `at`: a BER definite length (X.690 8.1.3) and as many
    octets as it counts. None when `buf` ends inside the length."""
    if at >= len(buf):
        return None
    first = buf[at]
    if first < 0x80:
        return at + 1 + first
    count = first & 0x7F
    if count == 0 or count > 3:
        raise TunnelError(base + at, "unsupported BER length form 0x%02X" % first)
    if at + 1 + count > len(buf):
        return None
    value = buf[at + 1]
    if count > 1:
        value = (value << 8) | buf[at + 2]
    if count > 2:
        value = (value << 8) | buf[at + 3]
    return at + 1 + count + value


class Reassembler:
    """Joins the TransferData payloads from one peer into whole GB-HRGP frames.

        r = Reassembler()
        got = r.feed(data, now)   # None while a message is incomplete, else
                                  # (kind, remaining, payload); TunnelError on bad input

    A payload that does not continue the partial message consistently ends it (a
    segment was lost); if that payload is itself the start of a transfer it is read as
    one, so a lost segment costs one message. After a TunnelError nothing is pending.
    """

    def __init__(self, max_transfer=MAX_TRANSFER, max_message=MAX_MESSAGE,
                 timeout=REASSEMBLY_TIMEOUT):
        self.max_transfer = max_transfer
        self.max_message = max_message
        self.timeout = timeout
        self.reset()

    def reset(self):
        self._buf = None
        self._kind = None
        self._remaining = None
        self._last = 0

    @property
    def pending(self):
        return self._buf is not None

    def feed(self, data, now):
        data = bytes(data)
        if self._buf is not None and now - self._last > self.timeout:
            self.reset()
        if self._buf is None:
            return self._first(data, now)
        return self._more(data, now)

    def _first(self, data, now):
        if len(data) > self.max_transfer:
            raise TunnelError(self.max_transfer, "TransferData longer than the maximum "
                              "incoming transfer size %d" % self.max_transfer)
        kind, remaining, payload = decode(data)
        if kind == GET or (kind == GET_RESPONSE and len(payload) == 0):
            return kind, remaining, payload
        head = 2 if kind == GET_RESPONSE else 1            # header_length(kind)
        total = message_length(payload, head)
        if total is not None:
            if total > self.max_message:
                raise TunnelError(head, "message of %d bytes exceeds the reassembly bound %d"
                                  % (total, self.max_message))
            if total == len(payload):
                return kind, remaining, payload
            if total < len(payload):
                raise TunnelError(head + total, "%d bytes after the GBCS message"
                                  % (len(payload) - total))
        if len(data) < self.max_transfer:
            raise TunnelError(len(data), "GBCS message ends early (segments but the last "
                              "fill the maximum transfer size)")
        self._buf = bytearray(payload)
        self._kind = kind
        self._remaining = remaining
        self._last = now
        return None

    def _more(self, data, now):
        try:
            return self._append(data, now)
        except TunnelError as error:
            # the partial lost a segment; this payload may open the next transfer
            self.reset()
            try:
                return self._first(data, now)
            except TunnelError:
                raise error

    def _append(self, data, now):
        head = header_length(self._kind)
        buf = self._buf
        if len(buf) + len(data) > self.max_message or len(data) > self.max_transfer:
            raise TunnelError(0, "reassembly exceeds its bound")
        buf.extend(data)
        total = message_length(buf, head)
        if total is not None and total > self.max_message:
            raise TunnelError(head, "message exceeds the reassembly bound")
        if total is not None and total <= len(buf):
            kind, remaining = self._kind, self._remaining
            self.reset()
            if total < len(buf):
                raise TunnelError(head + total, "segment runs past the GBCS message")
            return kind, remaining, bytes(buf)
        if len(data) < self.max_transfer:
            raise TunnelError(0, "short segment before the end of the message")
        self._last = now
        return None
