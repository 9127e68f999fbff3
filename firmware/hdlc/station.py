"""The HDLC secondary station of IEC 62056-46, sans-IO: bytes in, bytes out.

States (IEC 62056-46 §6.4, the NRM procedures of ISO/IEC 13239):

    NDM           normal disconnected mode: only SNRM opens a link; DISC gets DM
    NRM           normal response mode: I, RR, RNR, UI, DISC, SNRM (a reset)
    FRAME_REJECT  NRM after an FRMR: every command but SNRM or DISC gets the FRMR again

Each good frame addressed to this station is first classified into an event (its kind,
REPEAT for a retransmitted I frame, REJECT for a frame that breaks a rule), then
`_TRANSITIONS` names the handler and the next state. Frames with a bad HCS/FCS or for
another address are dropped without an answer. The station answers only
when polled (P = 1), as a secondary station in NRM must.

Sequence numbers are modulo 8: V(S) next N(S) to send, V(R) next N(S) expected, V(A)
oldest N(S) not yet acknowledged. An I frame whose N(S) is the one accepted last is the
client repeating itself because our answer was lost: the answer is sent again without
passing the data up twice. Any other N(S) out of sequence (V), an N(R) outside
V(A)..V(S) (Z), an information field over the negotiated maximum or a segmented
message over `max_apdu_size` (Y), and undefined or unsupported control fields or
information where none belongs (W, X) get FRMR.

Segmentation (IEC 62056-46 and the Green Book's HDLC segmentation rules): an I frame with
the segmentation bit is stored and answered with RR; the message is complete at the
first I frame without it. An answer longer than the negotiated maximum information
length goes out in segments, a window of them per poll; the client's RR asks for the
next. The LLC header (IEC 62056-46 §5, E6 E6 00 in requests, E6 E7 00 in responses) is
part of the segmented message, so it travels in the first segment only.
"""

from firmware.hdlc.frame import (DISC, DM, FRMR, I, NO_STATION, RNR, RR, SNRM, UA, UI,
                                 HdlcError, HdlcFrame, i_control, s_control, u_control)
from firmware.hdlc.parameters import LinkParameters, decode_parameters
from firmware.hdlc.reader import FrameReader

NDM = 0
NRM = 1
FRAME_REJECT = 2
STATE_NAMES = {NDM: "NDM", NRM: "NRM", FRAME_REJECT: "FRAME_REJECT"}

# Events besides the frame kinds (frame kinds are control bytes, never negative).
REPEAT = -1
REJECT = -2

# FRMR information field, third octet (ISO/IEC 13239, modulo 8).
REJECT_W = 0x01     # control field undefined or not implemented
REJECT_X = 0x02     # information field not permitted with this command
REJECT_Y = 0x04     # information field longer than the agreed maximum
REJECT_Z = 0x08     # N(R) acknowledges no outstanding frame
REJECT_V = 0x10     # N(S) out of sequence

LLC_REQUEST = b"\xe6\xe6\x00"     # destination LSAP, source LSAP (command), quality
LLC_RESPONSE = b"\xe6\xe7\x00"

# The largest information field that fits an 11-bit frame length with a 4-byte
# server address: 2047 - (format 2 + addresses 5 + control 1 + HCS 2 + FCS 2).
MAX_INFO_LIMIT = 2035

_TRANSITIONS = {
    (NDM, SNRM): ("_on_snrm", NRM),
    (NDM, DISC): ("_on_disc_disconnected", NDM),
    (NDM, UI): ("_on_ui", NDM),
    (NRM, SNRM): ("_on_snrm", NRM),
    (NRM, DISC): ("_on_disc", NDM),
    (NRM, I): ("_on_information", NRM),
    (NRM, REPEAT): ("_on_repeat", NRM),
    (NRM, RR): ("_on_receive_ready", NRM),
    (NRM, RNR): ("_on_receive_not_ready", NRM),
    (NRM, UI): ("_on_ui", NRM),
    (NRM, REJECT): ("_on_reject", FRAME_REJECT),
    (FRAME_REJECT, SNRM): ("_on_snrm", NRM),
    (FRAME_REJECT, DISC): ("_on_disc", NDM),
}
# Every other (state, event): what a station in that state does with a command it
# does not act on.
_OTHERWISE = {
    NDM: ("_on_disconnected_command", NDM),
    NRM: ("_on_reject", FRAME_REJECT),   # a safety net: _classify names every kind
    FRAME_REJECT: ("_on_repeat_reject", FRAME_REJECT),
}


class HdlcStation:
    """One secondary station (one server address) on one physical line."""

    def __init__(self, server_upper=1, server_lower=0x10, on_apdu=None, on_disconnect=None,
                 max_info_length=512, window_size=1, max_apdu_size=4096):
        if max_info_length < 1 or max_info_length > MAX_INFO_LIMIT:
            raise ValueError("max_info_length must be 1..%d" % MAX_INFO_LIMIT)
        if window_size < 1 or window_size > 7:
            raise ValueError("window_size must be 1..7")
        self.server_upper = server_upper
        self.server_lower = server_lower
        self.on_apdu = on_apdu
        self.on_disconnect = on_disconnect
        self.on_reject = None           # called with the FRMR information of a link's reject
        self.capability = LinkParameters(max_info_length, max_info_length,
                                         window_size, window_size)
        self.max_apdu_size = max_apdu_size
        self._addresses = _own_addresses(server_upper, server_lower)
        self._reader = FrameReader()
        self.state = NDM
        self.parameters = None          # the agreed LinkParameters while linked
        self.client_address = None      # the client of the current link
        self.upper_error = None         # last exception raised by on_apdu
        self.internal_error = None      # last unexpected exception inside receive
        self._peer = None               # addresses of the frame being answered, so the
        self._local = None              # answer uses the size the client chose
        self._reset_link()

    # -- bytes in, bytes out ------------------------------------------------------

    def receive(self, data):
        """Feeds received bytes (any chunking); returns the bytes to send (maybe b"")."""
        out = bytearray()
        try:
            self._reader.feed(data)
            while True:
                frame = self._reader.next_frame()
                if frame is None:
                    break
                if self._is_for_us(frame):
                    out.extend(self._handle(frame))
        except Exception as exc:      # a device never dies on its input
            self.internal_error = exc
            self._reader.clear()
        return bytes(out)

    def idle(self):
        """The line has been silent for the inter-frame time-out of IEC 62056-46:
        a frame still incomplete will not be completed, so it is dropped."""
        self._reader.clear()

    def _is_for_us(self, frame):
        source, size = frame.source
        return size == 1 and source != NO_STATION and frame.destination in self._addresses

    def _handle(self, frame):
        self._peer = frame.source
        self._local = frame.destination
        if self.state != NDM and frame.source[0] != self.client_address:
            if frame.kind != SNRM:      # another client has no link with us
                return self._on_disconnected_command(frame)
        event = self._classify(frame)
        handler, next_state = _TRANSITIONS.get((self.state, event), _OTHERWISE[self.state])
        reply = getattr(self, handler)(frame)
        self.state = next_state
        return reply

    # -- classification -----------------------------------------------------------

    def _classify(self, frame):
        kind = frame.kind
        if kind == SNRM:
            return self._classify_snrm(frame)
        if kind == DISC or kind == RR or kind == RNR:
            if frame.info:
                return self._rejecting(frame, REJECT_W | REJECT_X)
            if kind != DISC and not self._valid_nr(frame.nr):
                return self._rejecting(frame, REJECT_Z)
            return kind
        if kind == UI:
            return UI
        if kind == I:
            return self._classify_information(frame)
        return self._rejecting(frame, REJECT_W)

    def _classify_snrm(self, frame):
        try:
            self._requested = decode_parameters(frame.info)
        except HdlcError:
            return self._rejecting(frame, REJECT_W | REJECT_X)
        return SNRM

    def _classify_information(self, frame):
        max_info = self.parameters.max_info_receive if self.parameters else 0
        if len(frame.info) > max_info:
            return self._rejecting(frame, REJECT_Y)
        if not self._valid_nr(frame.nr):
            return self._rejecting(frame, REJECT_Z)
        if frame.ns == self._vr:
            if len(self._rx) + len(frame.info) > self.max_apdu_size + len(LLC_REQUEST):
                return self._rejecting(frame, REJECT_Y)
            return I
        if self._received_any and frame.ns == (self._vr - 1) & 7:
            return REPEAT
        return self._rejecting(frame, REJECT_V)

    def _rejecting(self, frame, reasons):
        if self.state != FRAME_REJECT:      # the condition repeats its first FRMR
            self._frmr_info = bytes((frame.control, self._vr << 5 | self._vs << 1, reasons))
        return REJECT

    def _valid_nr(self, nr):
        return (nr - self._va) & 7 <= (self._vs - self._va) & 7

    # -- handlers (named in _TRANSITIONS) -----------------------------------------

    def _on_snrm(self, frame):
        requested = self._requested
        if self.client_address is not None:
            self._notify_disconnect()       # a reset ends the link the association used
        self._reset_link()
        self.parameters = self.capability.answer(requested)
        self.client_address = frame.source[0]
        return self._u_frame(UA, self.parameters.encode())

    def _on_disc(self, frame):
        self._notify_disconnect()
        self._reset_link()
        return self._u_frame(UA)

    def _on_disc_disconnected(self, frame):
        return self._u_frame(DM)

    def _on_disconnected_command(self, frame):
        return self._u_frame(DM) if frame.poll else b""

    def _on_reject(self, frame):
        self._pending = None
        self._rx = bytearray()
        if self.on_reject is not None:
            self.on_reject(self._frmr_info)
        return self._u_frame(FRMR, self._frmr_info)

    def _on_repeat_reject(self, frame):
        return self._u_frame(FRMR, self._frmr_info) if frame.poll else b""

    def _on_ui(self, frame):
        if not frame.segmented:
            # an unconfirmed service: no answer goes back
            self._deliver(frame.info, frame.source[0])
        if self.state == NRM and frame.poll:
            return self._transmit()
        return b""

    def _on_information(self, frame):
        self._acknowledge(frame.nr)
        if self._unacked:
            # a new request while our last answer is unacknowledged: the client gave
            # up on it, so it was never delivered and its sequence numbers are free
            self._unacked = []
            self._vs = self._va
        self._pending = None
        self._peer_busy = False
        self._vr = (self._vr + 1) & 7
        self._received_any = True
        self._rx.extend(frame.info)
        if not frame.segmented:
            message = bytes(self._rx)
            self._rx = bytearray()
            reply = self._deliver(message, self.client_address)
            if reply:
                self._pending = LLC_RESPONSE + bytes(reply)
                self._pending_at = 0
        return self._transmit() if frame.poll else b""

    def _on_repeat(self, frame):
        self._acknowledge(frame.nr)
        return self._transmit() if frame.poll else b""

    def _on_receive_ready(self, frame):
        self._acknowledge(frame.nr)
        self._peer_busy = False
        return self._transmit() if frame.poll else b""

    def _on_receive_not_ready(self, frame):
        self._acknowledge(frame.nr)
        self._peer_busy = True
        return self._s_frame(RR) if frame.poll else b""

    # -- link state ---------------------------------------------------------------

    def _reset_link(self):
        self._vs = 0
        self._vr = 0
        self._va = 0
        self._received_any = False
        self._rx = bytearray()          # segments of the message being received
        self._pending = None            # LLC + answer not yet sent in full
        self._pending_at = 0
        self._unacked = []              # (N(S), info, segmented) sent, not acknowledged
        self._peer_busy = False
        self._frmr_info = b""
        self._requested = LinkParameters()
        self.parameters = None
        self.client_address = None

    def _notify_disconnect(self):
        if self.on_disconnect is not None:
            try:
                self.on_disconnect()
            except Exception as exc:
                self.upper_error = exc

    def _acknowledge(self, nr):
        while self._va != nr and self._unacked:
            self._unacked.pop(0)
            self._va = (self._va + 1) & 7
        self._va = nr

    def _deliver(self, message, client_sap):
        """Passes a complete LLC message up; returns the answer APDU or None."""
        if message[:3] != LLC_REQUEST or self.on_apdu is None:
            return None                 # not for the DLMS LSAP: nobody to give it to
        try:
            return self.on_apdu(message[3:], client_sap)
        except Exception as exc:
            self.upper_error = exc
            return None

    def _transmit(self):
        """The answer to a poll: unacknowledged I frames again, then new ones up to
        the window, the last with F; RR when there is nothing to send."""
        if self._peer_busy or (not self._unacked and self._pending is None):
            return self._s_frame(RR)
        window = self.parameters.window_transmit
        while len(self._unacked) < window and self._pending is not None:
            self._unacked.append(self._next_segment())
        out = bytearray()
        last = len(self._unacked) - 1
        for k in range(len(self._unacked)):
            ns, info, segmented = self._unacked[k]
            control = i_control(ns, self._vr, k == last)
            out.extend(HdlcFrame(control, self._peer, self._local, info, segmented).encode())
        return bytes(out)

    def _next_segment(self):
        size = self.parameters.max_info_transmit
        start = self._pending_at
        end = start + size
        info = self._pending[start:end]
        segmented = end < len(self._pending)
        if segmented:
            self._pending_at = end
        else:
            self._pending = None
        ns = self._vs
        self._vs = (self._vs + 1) & 7
        return ns, info, segmented

    def _u_frame(self, kind, info=b""):
        return HdlcFrame(u_control(kind, True), self._peer, self._local, info).encode()

    def _s_frame(self, kind):
        return HdlcFrame(s_control(kind, self._vr, True), self._peer, self._local).encode()


def _own_addresses(upper, lower):
    """The (value, size) destination addresses this station answers to: the one-byte
    form (upper address only) and the two- and four-byte forms of upper/lower."""
    own = [(upper, 1)] if upper <= 0x7F else []
    if upper <= 0x7F and lower <= 0x7F:
        own.append((upper << 7 | lower, 2))
    own.append((upper << 14 | lower, 4))
    return own
