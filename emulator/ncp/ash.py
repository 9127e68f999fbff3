"""ASH, the UART framing of EZSP, from the NCP's side, as a sans-IO object.

Silicon Labs UG101 "UART-EZSP Gateway Protocol Reference" (ASH version 2):

- a frame is ``control | data | CRC-CCITT (init 0xFFFF, big-endian)`` with the reserved
  bytes 7E 7D 11 13 18 1A escaped as ``7D, byte ^ 0x20`` and ended by the flag 7E
  (UG101 §2.3, §4.2);
- DATA payloads are XOR-ed with a pseudo-random sequence (LFSR seeded 0x42: shift right,
  XOR 0xB8 when the low bit was set) so long runs of reserved bytes are unlikely (§4.3);
- control bytes: DATA ``0 frmNum(3) reTx ackNum(3)``, ACK ``100 res nRdy ackNum``,
  NAK ``101 res nRdy ackNum``, RST ``C0``, RSTACK ``C1 version resetCode``, ERROR
  ``C2 version errorCode`` (§3);
- ``ackNum`` is the number of the next frame the receiver expects; a receiver NAKs a DATA
  frame with a bad CRC or out of sequence once, then stays in the reject condition until
  an in-sequence frame arrives (§3.3); a retransmitted frame (``reTx``) is acknowledged
  even when it is a duplicate, and not delivered twice;
- unacknowledged DATA is sent again, with ``reTx`` set, on NAK or after ``t_rx_ack``; after
  ``ACK_TIMEOUTS`` timeouts in a row the NCP gives up and sends ERROR (§3.4).

The window is one frame, as bellows (``TX_K = 1``) uses it. Time is the caller's: every
call that may start or check a timer takes ``now`` in seconds.

    ash = AshNcp()
    ash.receive(serial_bytes, now)   # -> list of EZSP frames for the NCP (in order)
    ash.send(ezsp_frame, now)        # queue an EZSP frame to the host
    ash.poll(now)                    # timers: retransmit or fail
    wire = ash.outgoing()            # bytes to write to the serial line
"""

from __future__ import annotations

import binascii

FLAG = 0x7E
ESCAPE = 0x7D
XON = 0x11
XOFF = 0x13
SUBSTITUTE = 0x18
CANCEL = 0x1A
RESERVED = frozenset((FLAG, ESCAPE, XON, XOFF, SUBSTITUTE, CANCEL))

ASH_VERSION = 2

# UG101 §3: control byte values and masks.
RST = 0xC0
RSTACK = 0xC1
ERROR = 0xC2
ACK = 0x80
NAK = 0xA0

# NcpResetCode (EmberZNet ``EzspStatus`` reset reasons carried in RSTACK/ERROR)
RESET_SOFTWARE = 0x0B
ERROR_EXCEEDED_MAXIMUM_ACK_TIMEOUT_COUNT = 0x51

# UG101 §3.4 timer values (seconds); TX_K as bellows
T_RX_ACK_INIT = 1.6
T_RX_ACK_MIN = 0.4
T_RX_ACK_MAX = 3.2
ACK_TIMEOUTS = 4
TX_K = 1
MAX_DATA_LEN = 128          # EZSP frames never exceed this on ASH (UG101 §2.1)
MAX_ERRORS = 32             # decode errors kept for inspection
# the longest frame on the line: control, data, CRC, every byte escaped
MAX_STUFFED = 2 * (1 + MAX_DATA_LEN + 2)


class AshError(Exception):
    """A frame that cannot be decoded: ``offset`` into the unstuffed frame, ``reason``."""

    def __init__(self, offset: int, reason: str):
        super().__init__(f"ASH error at offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason


def _pseudo_random(length: int) -> bytes:
    out = bytearray()
    rand = 0x42
    for _ in range(length):
        out.append(rand)
        rand = (rand >> 1) ^ 0xB8 if rand & 1 else rand >> 1
    return bytes(out)


PSEUDO_RANDOM = _pseudo_random(256)


def crc_ccitt(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)


def randomise(data: bytes) -> bytes:
    """XOR with the LFSR sequence; its own inverse (UG101 §4.3)."""
    return bytes(b ^ r for b, r in zip(data, PSEUDO_RANDOM))


def stuff(frame: bytes) -> bytes:
    out = bytearray()
    for b in frame:
        if b in RESERVED:
            out.append(ESCAPE)
            out.append(b ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def unstuff(data: bytes) -> bytes:
    out = bytearray()
    escaped = False
    for i, b in enumerate(data):
        if escaped:
            if b ^ 0x20 not in RESERVED:
                raise AshError(i, f"escaped byte 0x{b ^ 0x20:02X} is not a reserved byte")
            out.append(b ^ 0x20)
            escaped = False
        elif b == ESCAPE:
            escaped = True
        else:
            out.append(b)
    if escaped:
        raise AshError(len(data), "frame ends inside an escape")
    return bytes(out)


def with_crc(body: bytes) -> bytes:
    return body + crc_ccitt(body).to_bytes(2, "big")


def encode(body: bytes) -> bytes:
    """Control + data (already randomised for DATA) -> bytes on the wire, flag included."""
    return stuff(with_crc(body)) + bytes((FLAG,))


def data_frame(frm_num: int, ack_num: int, ezsp: bytes, re_tx: bool = False) -> bytes:
    control = (frm_num & 7) << 4 | (0x08 if re_tx else 0) | (ack_num & 7)
    return bytes((control,)) + randomise(ezsp)


def ack_frame(ack_num: int, not_ready: bool = False) -> bytes:
    return bytes((ACK | (0x08 if not_ready else 0) | (ack_num & 7),))


def nak_frame(ack_num: int, not_ready: bool = False) -> bytes:
    return bytes((NAK | (0x08 if not_ready else 0) | (ack_num & 7),))


class Frame:
    """One decoded ASH frame: ``kind`` is DATA, ACK, NAK, RST, RSTACK or ERROR."""

    __slots__ = ("kind", "frm_num", "ack_num", "re_tx", "not_ready", "payload")

    def __init__(self, kind, frm_num=None, ack_num=None, re_tx=False, not_ready=False,
                 payload=b""):
        self.kind = kind
        self.frm_num = frm_num
        self.ack_num = ack_num
        self.re_tx = re_tx
        self.not_ready = not_ready
        self.payload = payload

    def __repr__(self):
        return (f"Frame({self.kind}, frm={self.frm_num}, ack={self.ack_num}, "
                f"reTx={self.re_tx}, {self.payload.hex()})")


def decode(frame: bytes) -> Frame:
    """Unstuffed frame (no flag) -> Frame; ``AshError`` on bad CRC or layout."""
    if len(frame) < 3:
        raise AshError(len(frame), "frame shorter than control byte and CRC")
    body, crc = frame[:-2], frame[-2:]
    if crc_ccitt(body) != int.from_bytes(crc, "big"):
        raise AshError(len(body), "CRC-CCITT mismatch")
    control, data = body[0], body[1:]
    if control & 0x80 == 0:
        if len(data) > MAX_DATA_LEN:
            raise AshError(1, f"DATA field of {len(data)} bytes is too long")
        return Frame("DATA", frm_num=control >> 4 & 7, ack_num=control & 7,
                     re_tx=bool(control & 0x08), payload=randomise(data))
    if control & 0xE0 in (ACK, NAK):
        if data:
            raise AshError(1, "ACK/NAK carries no data")
        return Frame("ACK" if control & 0xE0 == ACK else "NAK", ack_num=control & 7,
                     not_ready=bool(control & 0x08))
    if control == RST:
        if data:
            raise AshError(1, "RST carries no data")
        return Frame("RST")
    if control in (RSTACK, ERROR):
        if len(data) != 2:
            raise AshError(1, "RSTACK/ERROR carries version and code")
        if data[0] != ASH_VERSION:
            raise AshError(1, f"ASH version {data[0]} (expected {ASH_VERSION})")
        return Frame("RSTACK" if control == RSTACK else "ERROR", payload=bytes(data))
    raise AshError(0, f"unknown control byte 0x{control:02X}")


class AshNcp:
    """The NCP end of an ASH link (window 1)."""

    def __init__(self, reset_code: int = RESET_SOFTWARE, t_rx_ack: float = T_RX_ACK_INIT,
                 ack_timeouts: int = ACK_TIMEOUTS):
        self._reset_code = reset_code
        self._t_rx_ack_init = t_rx_ack
        self._ack_timeouts = ack_timeouts
        self._out = bytearray()
        self._buf = bytearray()
        self._discarding = False
        self.connected = False          # RSTACK sent; DATA accepted from then on
        self.failed = False             # ERROR sent; only RST brings it back
        self.errors: list[AshError] = []   # the last MAX_ERRORS decode errors, newest last
        self.resets = 0                 # RSTs answered (the NCP rebooted each time)
        self._reset_state()

    def _reset_state(self) -> None:
        self._tx_seq = 0                # frmNum of the next new DATA frame
        self._rx_seq = 0                # ackNum: next frame expected from the host
        self._rejecting = False
        self._queue: list[bytes] = []   # EZSP frames waiting for the window
        self._unacked = None            # (frm_num, ezsp) in flight
        self._sent_at = 0.0
        self._timeouts = 0
        self._t_rx_ack = self._t_rx_ack_init

    # --- host -> NCP ----------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> list[bytes]:
        """Feed serial bytes; return the EZSP frames delivered, in order."""
        delivered: list[bytes] = []
        for b in data:
            if self._discarding:
                if b == FLAG:
                    self._discarding = False
                    self._buf.clear()
                continue
            if b == FLAG:
                if self._buf:
                    self._frame(bytes(self._buf), now, delivered)
                    self._buf.clear()
            elif b == CANCEL:
                self._buf.clear()                  # UG101 §2.3: frame in progress dropped
            elif b == SUBSTITUTE:
                self._discarding = True            # up to the next flag
                self._buf.clear()
            elif b in (XON, XOFF):
                continue                           # flow control: not used on a pty
            else:
                self._buf.append(b)
                if len(self._buf) > MAX_STUFFED:   # no flag in sight: noise, not a frame
                    self._fault(AshError(len(self._buf), "frame longer than %d bytes"
                                         % MAX_STUFFED))
                    self._discarding = True
                    self._buf.clear()
        self._pump(now)
        return delivered

    def _frame(self, raw: bytes, now: float, delivered: list) -> None:
        try:
            frame = decode(unstuff(raw))
        except AshError as exc:
            self._fault(exc)
            if raw and raw[0] & 0x80 == 0 and self.connected and not self.failed:
                self._reject()                     # a damaged DATA frame is NAKed
            return
        kind = frame.kind
        if kind == "RST":
            self._reset_state()
            self.resets += 1
            self.failed = False
            self.connected = True
            self._out += encode(bytes((RSTACK, ASH_VERSION, self._reset_code)))
            return
        if not self.connected or self.failed:
            return                                 # UG101: only RST before RSTACK
        if kind in ("DATA", "ACK", "NAK"):
            self._acknowledged(frame.ack_num, now)
        if kind == "NAK" and self._unacked is not None:
            self._retransmit(now)
        elif kind == "DATA":
            self._data(frame, delivered)

    def _fault(self, exc: AshError) -> None:
        self.errors.append(exc)
        del self.errors[:-MAX_ERRORS]              # a line of noise must not fill memory

    def _data(self, frame: Frame, delivered: list) -> None:
        if frame.frm_num == self._rx_seq:
            self._rx_seq = (self._rx_seq + 1) & 7
            self._rejecting = False
            self._out += encode(ack_frame(self._rx_seq))
            delivered.append(frame.payload)
        elif frame.re_tx:
            self._out += encode(ack_frame(self._rx_seq))   # duplicate: ACK, not again
        else:
            self._reject()

    def _reject(self) -> None:
        if not self._rejecting:
            self._out += encode(nak_frame(self._rx_seq))
            self._rejecting = True

    def _acknowledged(self, ack_num: int, now: float) -> None:
        if self._unacked is not None and ack_num == (self._unacked[0] + 1) & 7:
            # UG101 §3.4: t_rx_ack = 7/8 t_rx_ack + 1/2 measured
            self._t_rx_ack = self._clamp(7 / 8 * self._t_rx_ack + (now - self._sent_at) / 2)
            self._unacked = None
            self._timeouts = 0

    # --- NCP -> host ----------------------------------------------------------------
    def send(self, ezsp: bytes, now: float) -> None:
        if len(ezsp) > MAX_DATA_LEN:
            raise ValueError(f"EZSP frame of {len(ezsp)} bytes exceeds ASH's {MAX_DATA_LEN}")
        self._queue.append(bytes(ezsp))
        self._pump(now)

    def _pump(self, now: float) -> None:
        if self._unacked is None and self._queue and self.connected and not self.failed:
            ezsp = self._queue.pop(0)
            self._unacked = (self._tx_seq, ezsp)
            self._tx_seq = (self._tx_seq + 1) & 7
            self._sent_at = now
            self._out += encode(data_frame(self._unacked[0], self._rx_seq, ezsp))

    def _retransmit(self, now: float) -> None:
        frm_num, ezsp = self._unacked
        self._sent_at = now
        self._out += encode(data_frame(frm_num, self._rx_seq, ezsp, re_tx=True))

    def poll(self, now: float) -> None:
        """Run timers: retransmit unacknowledged DATA, or fail after too many tries."""
        if self._unacked is None or now < self._sent_at + self._t_rx_ack:
            return
        self._timeouts += 1
        self._t_rx_ack = self._clamp(2 * self._t_rx_ack)
        if self._timeouts >= self._ack_timeouts:
            self.failed = True
            self._unacked = None
            self._queue.clear()
            self._out += encode(bytes((ERROR, ASH_VERSION,
                                       ERROR_EXCEEDED_MAXIMUM_ACK_TIMEOUT_COUNT)))
            return
        self._retransmit(now)

    def next_deadline(self):
        """When ``poll`` next has work, or None."""
        if self._unacked is None:
            return None
        return self._sent_at + self._t_rx_ack

    @property
    def idle(self) -> bool:
        return self._unacked is None and not self._queue

    def outgoing(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    @staticmethod
    def _clamp(value: float) -> float:
        return max(T_RX_ACK_MIN, min(T_RX_ACK_MAX, value))
