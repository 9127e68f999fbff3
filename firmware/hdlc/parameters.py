"""HDLC parameter negotiation: the information field of SNRM and UA.

IEC 62056-46 §6.4.4.4.3.2 (the general-format information field of ISO/IEC 13239):

    81 (format identifier) 80 (group identifier) LL (group length)
       05 n value   maximum information field length, transmit
       06 n value   maximum information field length, receive
       07 n value   window size, transmit
       08 n value   window size, receive

Values are unsigned big-endian of n = 1..4 bytes. Each side names "transmit" and
"receive" from its own point of view; a parameter that is absent takes the default
(128 bytes, window 1).
"""

from firmware.hdlc.frame import HdlcError

FORMAT_IDENTIFIER = 0x81
GROUP_IDENTIFIER = 0x80
MAX_INFO_TRANSMIT = 0x05
MAX_INFO_RECEIVE = 0x06
WINDOW_TRANSMIT = 0x07
WINDOW_RECEIVE = 0x08

DEFAULT_MAX_INFO = 128
DEFAULT_WINDOW = 1
MAX_WINDOW = 7          # modulo-8 sequence numbers


class LinkParameters:
    def __init__(self, max_info_transmit=DEFAULT_MAX_INFO, max_info_receive=DEFAULT_MAX_INFO,
                 window_transmit=DEFAULT_WINDOW, window_receive=DEFAULT_WINDOW):
        self.max_info_transmit = max_info_transmit
        self.max_info_receive = max_info_receive
        self.window_transmit = window_transmit
        self.window_receive = window_receive

    def encode(self):
        """The negotiation field: lengths in 1 or 2 bytes, windows in 4 (as in the
        Green Book examples)."""
        body = bytearray()
        _put(body, MAX_INFO_TRANSMIT, self.max_info_transmit, 0)
        _put(body, MAX_INFO_RECEIVE, self.max_info_receive, 0)
        _put(body, WINDOW_TRANSMIT, self.window_transmit, 4)
        _put(body, WINDOW_RECEIVE, self.window_receive, 4)
        return bytes((FORMAT_IDENTIFIER, GROUP_IDENTIFIER, len(body))) + bytes(body)

    def answer(self, requested):
        """What this side agrees to, seen from this side, when the peer proposed
        `requested` (seen from the peer): each value is the smaller of the two."""
        return LinkParameters(
            min(self.max_info_transmit, requested.max_info_receive),
            min(self.max_info_receive, requested.max_info_transmit),
            min(self.window_transmit, requested.window_receive),
            min(self.window_receive, requested.window_transmit))

    def __eq__(self, other):
        return (isinstance(other, LinkParameters)
                and self.max_info_transmit == other.max_info_transmit
                and self.max_info_receive == other.max_info_receive
                and self.window_transmit == other.window_transmit
                and self.window_receive == other.window_receive)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return "LinkParameters(max_info tx=%d rx=%d, window tx=%d rx=%d)" % (
            self.max_info_transmit, self.max_info_receive, self.window_transmit,
            self.window_receive)


def _put(out, ident, value, size):
    if value < 0 or value > 0xFFFFFFFF:
        raise HdlcError(0, "parameter 0x%02x value %d out of range" % (ident, value))
    if size == 0:
        size = 1 if value < 0x100 else (2 if value < 0x10000 else 4)
    out.append(ident)
    out.append(size)
    for i in range(size - 1, -1, -1):
        out.append((value >> (8 * i)) & 0xFF)


def decode_parameters(info):
    """LinkParameters from a SNRM/UA information field (empty: all defaults).

    Values must be at least 1 and windows at most 7; unknown parameter identifiers
    are skipped. Offsets in errors are within `info`.
    """
    params = LinkParameters()
    if not info:
        return params
    if len(info) < 3:
        raise HdlcError(0, "negotiation field of %d bytes" % len(info))
    if info[0] != FORMAT_IDENTIFIER:
        raise HdlcError(0, "format identifier 0x%02x is not 0x81" % info[0])
    if info[1] != GROUP_IDENTIFIER:
        raise HdlcError(1, "group identifier 0x%02x is not 0x80" % info[1])
    if info[2] != len(info) - 3:
        raise HdlcError(2, "group length %d, but %d bytes follow" % (info[2], len(info) - 3))
    i = 3
    while i < len(info):
        if i + 2 > len(info):
            raise HdlcError(i, "parameter header runs past the field")
        ident = info[i]
        size = info[i + 1]
        if size < 1 or size > 4 or i + 2 + size > len(info):
            raise HdlcError(i + 1, "parameter 0x%02x has a bad length %d" % (ident, size))
        value = 0
        for k in range(i + 2, i + 2 + size):
            value = value << 8 | info[k]
        _set(params, ident, value, i)
        i += 2 + size
    return params


def _set(params, ident, value, offset):
    if ident < MAX_INFO_TRANSMIT or ident > WINDOW_RECEIVE:
        return
    if value < 1:
        raise HdlcError(offset, "parameter 0x%02x is 0" % ident)
    if ident == MAX_INFO_TRANSMIT:
        params.max_info_transmit = value
    elif ident == MAX_INFO_RECEIVE:
        params.max_info_receive = value
    elif value > MAX_WINDOW:
        raise HdlcError(offset, "window size %d exceeds %d" % (value, MAX_WINDOW))
    elif ident == WINDOW_TRANSMIT:
        params.window_transmit = value
    else:
        params.window_receive = value
