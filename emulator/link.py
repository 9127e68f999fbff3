"""The host (client) side of the two DLMS data links, sans-IO, on the construct codecs.

`HdlcPrimary` is the primary station of IEC 62056-46: it opens the link with SNRM
(and reads the negotiated parameters from the UA), sends each APDU behind the LLC
header E6 E6 00 in I frames, cut into segments when it is longer than the server
accepts (the next segment after the server's RR), reassembles segmented answers
(sending RR for each segment), and closes with DISC. `WrapperClient` is the client
of the IEC 62056-47 TCP wrapper. Both have the same surface:

    out = link.connect()           bytes to send (b"" for the wrapper)
    out = link.send_apdu(apdu)     bytes to send
    events, out = link.receive(data)
    out = link.disconnect()
    out = link.retransmit()        what to send again after a time-out

and report what happened as events: `Connected`, `ApduReceived`, `Acknowledged`,
`Disconnected`, `FrameRejected`, `LinkError`. No I/O and no clocks here;
`LinkConnection` is the small blocking adapter that moves the bytes over a stream
(`write(bytes)`, `read(n, timeout)`, see emulator/transport/streams.py).
"""

import time

from emulator.codec import hdlc as codec
from emulator.codec import wrapper as wrapper_codec

LLC_REQUEST = b"\xe6\xe6\x00"       # IEC 62056-46 §5: destination LSAP, source LSAP, quality
LLC_RESPONSE = b"\xe6\xe7\x00"


# -- events -----------------------------------------------------------------------------

class Event:
    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __repr__(self):
        fields = ", ".join("%s=%r" % item for item in sorted(vars(self).items()))
        return "%s(%s)" % (type(self).__name__, fields)


class Connected(Event):
    """The link is up; `parameters` are the negotiated values seen from the client
    (dict: max_info_transmit, max_info_receive, window_transmit, window_receive), or
    None for the wrapper."""

    def __init__(self, parameters=None):
        self.parameters = parameters


class ApduReceived(Event):
    def __init__(self, apdu):
        self.apdu = apdu


class Acknowledged(Event):
    """The server took the whole request and has no answer (RR instead of I frames)."""


class Disconnected(Event):
    """The link is down: `reason` is "UA" (after our DISC) or "DM" (the server is in
    disconnected mode, or refused the SNRM)."""

    def __init__(self, reason):
        self.reason = reason


class FrameRejected(Event):
    """FRMR: `info` is its information field (rejected control byte, V(S)/V(R), and
    the W/X/Y/Z/V reason bits)."""

    def __init__(self, info):
        self.info = info

    @property
    def rejected_control(self):
        return self.info[0] if self.info else None

    @property
    def reasons(self):
        return self.info[2] if len(self.info) > 2 else 0


class LinkError(Event):
    """The server broke a rule of the link (sequence numbers, LLC header, ports)."""

    def __init__(self, reason):
        self.reason = reason


# -- HDLC -------------------------------------------------------------------------------

DISCONNECTED = "disconnected"
CONNECTING = "connecting"
CONNECTED = "connected"
DISCONNECTING = "disconnecting"


class HdlcPrimary:
    def __init__(self, client_address=0x10, server_upper=1, server_lower=0x10,
                 address_size=2):
        self.client = codec.client_address(client_address)
        self.server = codec.server_address(server_upper, server_lower, address_size)
        self.state = DISCONNECTED
        self.parameters = None
        self._buf = bytearray()
        self._last_sent = b""
        self._reset_sequences()

    def _reset_sequences(self):
        self._vs = 0
        self._vr = 0
        self._outgoing = b""         # LLC + APDU being sent
        self._sent_upto = 0          # bytes of it handed to frames so far
        self._unacked = []           # (ns, start, end, segmented)
        self._rx = bytearray()

    # -- commands ----------------------------------------------------------------------

    def connect(self, parameters=None):
        """SNRM; `parameters` (dict of the four values) proposes a negotiation."""
        info = codec.build_parameters(**parameters) if parameters else b""
        self.state = CONNECTING
        return self._send(self._frame(codec.control("SNRM", True), info))

    def disconnect(self):
        self.state = DISCONNECTING
        return self._send(self._frame(codec.control("DISC", True)))

    def send_apdu(self, apdu):
        if self.state != CONNECTED:
            raise RuntimeError("link is %s, not connected" % self.state)
        self._outgoing = LLC_REQUEST + bytes(apdu)
        self._sent_upto = 0
        self._unacked = []
        self._rx = bytearray()
        return self._send(self._next_window())

    def poll(self):
        """RR with the poll bit: asks the server for whatever it holds."""
        return self._send(self._frame(codec.control("RR", True, nr=self._vr)))

    def retransmit(self):
        """What to send after a time-out: the last command again (the server repeats
        its answer to a repeated I frame without acting twice)."""
        return self._last_sent

    def _send(self, data):
        self._last_sent = data
        return data

    def _frame(self, control, info=b"", segmented=False):
        return codec.build_frame(control, self.server, self.client, info, segmented)

    def _next_window(self):
        """New I frames up to the window; P on the last."""
        window = self.parameters["window_transmit"]
        size = self.parameters["max_info_transmit"]
        while len(self._unacked) < window and self._sent_upto < len(self._outgoing):
            start = self._sent_upto
            end = min(start + size, len(self._outgoing))
            self._unacked.append((self._vs, start, end, end < len(self._outgoing)))
            self._vs = (self._vs + 1) & 7
            self._sent_upto = end
        return self._i_frames()

    def _i_frames(self):
        out = bytearray()
        for k, (ns, start, end, segmented) in enumerate(self._unacked):
            last = k == len(self._unacked) - 1
            control = codec.control("I", last, ns=ns, nr=self._vr)
            out += self._frame(control, self._outgoing[start:end], segmented)
        return bytes(out)

    # -- bytes in ------------------------------------------------------------------------

    def receive(self, data):
        """(events, bytes to send) for received bytes, in any chunking."""
        self._buf += data
        events = []
        out = bytearray()
        for frame in self._frames():
            if frame.destination != self.client or frame.source != self.server:
                continue
            out += self._handle(frame, events)
        if out:
            self._last_sent = bytes(out)
        return events, bytes(out)

    def _frames(self):
        buf = self._buf
        while True:
            start = buf.find(b"\x7e")
            if start < 0:
                buf.clear()
                return
            del buf[:start]
            if len(buf) < 3:
                return
            if buf[1] & 0xF0 != 0xA0:
                del buf[:1]
                continue
            length = (buf[1] & 0x07) << 8 | buf[2]
            if len(buf) < length + 2:
                return
            try:
                frame = codec.parse_frame(bytes(buf[:length + 2]))
            except codec.HdlcCodecError:
                del buf[:1]
                continue
            del buf[:length + 1]          # the closing flag may open the next frame
            yield frame

    def _handle(self, frame, events):
        kind = frame.control.kind
        if kind == "UA":
            return self._on_ua(frame, events)
        if kind == "DM":
            self.state = DISCONNECTED
            events.append(Disconnected("DM"))
        elif kind == "FRMR":
            events.append(FrameRejected(frame.info))
        elif kind == "I":
            return self._on_information(frame, events)
        elif kind == "RR":
            return self._on_receive_ready(frame, events)
        elif kind == "RNR":
            # the server is busy: send nothing now; after a time-out, poll it with RR
            self._acknowledge(frame.control.nr)
            self._last_sent = self._frame(codec.control("RR", True, nr=self._vr))
        else:
            events.append(LinkError("unexpected %s frame" % kind))
        return b""

    def _on_ua(self, frame, events):
        if self.state == CONNECTING:
            try:
                server = codec.parse_parameters(frame.info)
            except codec.HdlcCodecError as err:
                events.append(LinkError("UA parameters: %s" % err))
                return b""
            # the server's transmit is our receive and the other way round
            self.parameters = dict(max_info_transmit=server["max_info_receive"],
                                   max_info_receive=server["max_info_transmit"],
                                   window_transmit=server["window_receive"],
                                   window_receive=server["window_transmit"])
            self._reset_sequences()
            self.state = CONNECTED
            events.append(Connected(dict(self.parameters)))
        elif self.state == DISCONNECTING:
            self.state = DISCONNECTED
            events.append(Disconnected("UA"))
        return b""

    def _acknowledge(self, nr):
        while self._unacked and self._unacked[0][0] != nr:
            self._unacked.pop(0)

    def _on_information(self, frame, events):
        ns, nr = frame.control.ns, frame.control.nr
        if ns != self._vr:
            if ns == (self._vr - 1) & 7:
                return b""                # a repeat of what we already have
            events.append(LinkError("N(S) %d, expected %d" % (ns, self._vr)))
            return b""
        self._acknowledge(nr)
        if not self._unacked and self._sent_upto >= len(self._outgoing):
            self._outgoing = b""          # the request is through: this is the answer
        self._vr = (self._vr + 1) & 7
        self._rx += frame.info
        if frame.segmented:
            if frame.control.pf:
                return self._frame(codec.control("RR", True, nr=self._vr))
            return b""
        message = bytes(self._rx)
        self._rx = bytearray()
        if not message.startswith(LLC_RESPONSE):
            events.append(LinkError("answer without the LLC header E6 E7 00: %s"
                                    % message[:3].hex()))
            return b""
        events.append(ApduReceived(message[len(LLC_RESPONSE):]))
        return b""

    def _on_receive_ready(self, frame, events):
        self._acknowledge(frame.control.nr)
        if self._unacked:
            return self._i_frames()       # the server lost some: go back to N(R)
        if self._sent_upto < len(self._outgoing):
            return self._next_window()
        if self._outgoing:
            self._outgoing = b""
            events.append(Acknowledged())
        return b""


# -- TCP wrapper ------------------------------------------------------------------------

class WrapperClient:
    def __init__(self, client_wport=0x10, server_wport=1):
        self.client_wport = client_wport
        self.server_wport = server_wport
        self.state = DISCONNECTED
        self.parameters = None
        self._buf = bytearray()
        self._last_sent = b""

    def connect(self, parameters=None):
        self.state = CONNECTED        # the TCP connection is the link
        return b""

    def disconnect(self):
        self.state = DISCONNECTED
        return b""

    def send_apdu(self, apdu):
        self._last_sent = wrapper_codec.build_wpdu(self.client_wport, self.server_wport, apdu)
        return self._last_sent

    def retransmit(self):
        return b""                    # TCP retransmits; a repeat would be a new request

    def receive(self, data):
        self._buf += data
        events = []
        while len(self._buf) >= wrapper_codec.HEADER_LENGTH:
            try:
                header = wrapper_codec.parse_header(self._buf)
            except wrapper_codec.WrapperCodecError as err:
                events.append(LinkError(str(err)))
                self._buf.clear()
                break
            end = wrapper_codec.HEADER_LENGTH + header.length
            if len(self._buf) < end:
                break
            wpdu = wrapper_codec.parse_wpdu(bytes(self._buf[:end]))
            del self._buf[:end]
            if (wpdu.source_wport, wpdu.destination_wport) != (self.server_wport,
                                                               self.client_wport):
                events.append(LinkError("WPDU from wPort %d to %d" % (
                    wpdu.source_wport, wpdu.destination_wport)))
                continue
            events.append(ApduReceived(wpdu.apdu))
        return events, b""


# -- blocking adapter -------------------------------------------------------------------

class LinkTimeout(Exception):
    """No answer after every retry. The link's sequence state is then unknown (was the
    request or the answer lost?): `open()` again to reset it before the next request."""


class LinkFailure(Exception):
    """The peer rejected a frame, dropped the link or broke a link rule."""

    def __init__(self, event):
        super().__init__(repr(event))
        self.event = event


class LinkConnection:
    """Drives a sans-IO link over a blocking stream: one request, one answer.

    `timeout` is how long the peer may stay silent (each received byte restarts it);
    after it the link's `retransmit()` is sent, up to `retries` times.
    """

    def __init__(self, link, stream, timeout=3.0, retries=2):
        self.link = link
        self.stream = stream
        self.timeout = timeout
        self.retries = retries

    def open(self, parameters=None):
        """Opens the link; the negotiated parameters (None for the wrapper)."""
        out = self.link.connect(parameters)
        if out:
            event = self._exchange(out, (Connected, Disconnected))
            if isinstance(event, Disconnected):
                raise LinkFailure(event)
        return self.link.parameters

    def request(self, apdu):
        """Sends one APDU; the answer APDU, or None when the server has none."""
        event = self._exchange(self.link.send_apdu(apdu), (ApduReceived, Acknowledged))
        return event.apdu if isinstance(event, ApduReceived) else None

    def close(self):
        out = self.link.disconnect()
        if out:
            self._exchange(out, (Disconnected,))

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    def _exchange(self, out, wanted):
        self.stream.write(out)
        for attempt in range(self.retries + 1):
            if attempt:
                again = self.link.retransmit()
                if not again:
                    break
                self.stream.write(again)
            event = self._wait(wanted)
            if event is not None:
                return event
        raise LinkTimeout("no %s within %.1f s (%d tries)" % (
            "/".join(w.__name__ for w in wanted), self.timeout, self.retries + 1))

    def _wait(self, wanted):
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.stream.read(4096, left)
            if not data:
                continue
            deadline = time.monotonic() + self.timeout     # a time-out is silence, not size
            events, out = self.link.receive(data)
            if out:
                self.stream.write(out)
            for event in events:
                if isinstance(event, wanted):
                    return event
                if isinstance(event, (FrameRejected, LinkError, Disconnected)):
                    raise LinkFailure(event)
