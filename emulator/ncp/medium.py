"""A virtual IEEE 802.15.4 medium shared by virtual NCPs, with two bands.

Bands and PHYs:
- ``"2.4"``: 2.4 GHz O-QPSK, 250 kbit/s (IEEE 802.15.4-2006 §6.5), channels 11-26 on
  page 0. Synchronisation header 4 preamble octets + 1 SFD, PHY header 1 octet.
- ``"868"``: GB sub-GHz (ZigBee R22 sub-GHz, IEEE 802.15.4-2015 SUN FSK, as GB dual-band
  comms hubs use it), channel pages 28-31, **100 kbit/s** 2-GFSK: the one SUN FSK rate
  the ZigBee sub-GHz specification mandates for 863-876 MHz, so every GB sub-GHz device
  talks at it. SHR 8 preamble octets + 2 SFD octets, PHR 2 octets (802.15.4-2015
  §20.2); the PSDU keeps the 2-octet FCS our frames carry.

Airtime = (SHR + PHR + PSDU) * 8 / bit rate. A MAC acknowledgement follows a received
frame that asks for one after aTurnaroundTime: 12 symbols = 192 us at 2.4 GHz, 1 ms for
SUN FSK (802.15.4-2015 §11.3).

Impairments per band (``configure``): loss and corruption are probabilities per frame,
delay is added to the airtime. All draws come from one ``random.Random(seed)`` in the
order frames are sent, so a seed replays the same run. Every frame on the air is kept in
``records`` (when, band, page, channel, PSDU as received, fate) for pcap export.

Sans-IO: ``transmit`` schedules, ``poll(now)`` delivers what is due and
``next_deadline()`` says when to call it next. A radio is any object with ``eui64``,
``listening() -> [(band, page, channel)]``, ``on_air(psdu, band, now) -> bool`` (True:
addressed to me and accepted, which is what makes the medium send the MAC ack) and
``on_tx_done(token, acked, now)``.
"""

from __future__ import annotations

import heapq
import random

from emulator.ncp import frames

DELIVERED = "delivered"
LOST = "lost"
CORRUPTED = "corrupted"


class Band:
    def __init__(self, name, bit_rate, shr_octets, phr_octets, turnaround):
        self.name = name
        self.bit_rate = bit_rate
        self.shr_octets = shr_octets
        self.phr_octets = phr_octets
        self.turnaround = turnaround
        self.loss = 0.0
        self.corruption = 0.0
        self.delay = 0.0

    def airtime(self, psdu_len: int) -> float:
        return (self.shr_octets + self.phr_octets + psdu_len) * 8 / self.bit_rate


def default_bands():
    return {
        "2.4": Band("2.4", 250_000, 5, 1, 192e-6),
        "868": Band("868", 100_000, 10, 2, 1e-3),
    }


class FrameRecord:
    """One frame on the air: ``psdu`` as sent, ``received`` as the receivers got it."""

    __slots__ = ("time", "band", "page", "channel", "psdu", "received", "fate", "sender")

    def __init__(self, time, band, page, channel, psdu, fate, sender, received=None):
        self.time = time
        self.band = band
        self.page = page
        self.channel = channel
        self.psdu = psdu
        self.received = psdu if received is None else received
        self.fate = fate
        self.sender = sender

    def __repr__(self):
        return (f"FrameRecord({self.time:.6f}, {self.band}, ch {self.channel}, "
                f"{self.fate}, {self.psdu.hex()})")


class VirtualMedium:
    def __init__(self, seed: int = 0, sink=None):
        self.rng = random.Random(seed)
        self.sink = sink                 # e.g. a PcapWriter: sink.frame(record) per frame
        self.bands = default_bands()
        self.radios: list = []
        self.records: list[FrameRecord] = []
        self._events: list = []          # heap of (time, order, fn, args)
        self._order = 0
        self._busy_until: dict = {}      # (band, page, channel) -> end of airtime

    def configure(self, band: str, loss: float | None = None, delay: float | None = None,
                  corruption: float | None = None) -> None:
        b = self.bands[band]
        for name, value in (("loss", loss), ("corruption", corruption)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability, got {value}")
        if delay is not None and delay < 0:
            raise ValueError("delay cannot be negative")
        if loss is not None:
            b.loss = loss
        if corruption is not None:
            b.corruption = corruption
        if delay is not None:
            b.delay = delay

    def attach(self, radio) -> None:
        if radio not in self.radios:
            self.radios.append(radio)

    def airtime(self, band: str, psdu_len: int) -> float:
        return self.bands[band].airtime(psdu_len)

    # --- scheduling ------------------------------------------------------------------
    def _at(self, when: float, fn, *args) -> None:
        self._order += 1
        heapq.heappush(self._events, (when, self._order, fn, args))

    def next_deadline(self):
        return self._events[0][0] if self._events else None

    def poll(self, now: float) -> int:
        done = 0
        while self._events and self._events[0][0] <= now:
            when, _order, fn, args = heapq.heappop(self._events)
            fn(when, *args)
            done += 1
        return done

    # --- the air ---------------------------------------------------------------------
    def transmit(self, sender, psdu: bytes, band: str, page: int, channel: int, now: float,
                 token=None) -> float:
        """Send ``psdu`` on (band, page, channel) at ``now`` (or once the channel is free).

        Returns when the sender learns the outcome (``on_tx_done``): after the MAC ack
        window for frames that ask for an ack, after the airtime otherwise.
        """
        b = self.bands[band]
        key = (band, page, channel)
        start = max(now, self._busy_until.get(key, 0.0))     # CSMA: wait for a free channel
        air = b.airtime(len(psdu))
        self._busy_until[key] = start + air
        lost = self.rng.random() < b.loss
        corrupt = not lost and self.rng.random() < b.corruption
        received = psdu
        if corrupt:
            received = self._corrupt(psdu)
        fate = LOST if lost else CORRUPTED if corrupt else DELIVERED
        self._record(FrameRecord(start, band, page, channel, psdu, fate, sender, received))
        arrival = start + air + b.delay
        wants_ack = len(psdu) > 3 and bool(psdu[0] & 0x20)
        ack_wait = arrival + b.turnaround + b.airtime(5)
        if lost:
            self._at(ack_wait if wants_ack else start + air, self._tx_done, sender, token, False)
        else:
            self._at(arrival, self._deliver, sender, received, key, token, wants_ack)
        return ack_wait if wants_ack else start + air

    def _record(self, record) -> None:
        self.records.append(record)
        if self.sink is not None:
            self.sink.frame(record)

    def _corrupt(self, psdu: bytes) -> bytes:
        damaged = bytearray(psdu)
        i = self.rng.randrange(len(damaged))
        damaged[i] ^= 1 << self.rng.randrange(8)
        return bytes(damaged)

    def _deliver(self, now, sender, psdu, key, token, wants_ack) -> None:
        if wants_ack:                             # the ack window is the receiver's: no CCA
            b = self.bands[key[0]]
            self._busy_until[key] = max(self._busy_until.get(key, 0.0),
                                        now + b.turnaround + b.airtime(5))
        accepted_by = None
        if frames.fcs_ok(psdu):                   # a receiver drops a frame with a bad FCS
            for radio in list(self.radios):
                if radio is sender or key not in radio.listening():
                    continue
                if radio.on_air(psdu, key[0], now) and accepted_by is None:
                    accepted_by = radio
        if not wants_ack:
            self._tx_done(now, sender, token, True)
            return
        if accepted_by is None:
            b = self.bands[key[0]]
            self._at(now + b.turnaround + b.airtime(5), self._tx_done, sender, token, False)
            return
        self._send_ack(now, accepted_by, sender, psdu[2], key, token)

    def _send_ack(self, now, receiver, sender, seq, key, token) -> None:
        b = self.bands[key[0]]
        start = now + b.turnaround
        ack = frames.mac_ack(seq)
        lost = self.rng.random() < b.loss
        self._record(FrameRecord(start, key[0], key[1], key[2], ack,
                                 LOST if lost else DELIVERED, receiver))
        self._at(start + b.airtime(len(ack)) + b.delay, self._tx_done, sender, token, not lost)

    def _tx_done(self, now, sender, token, acked) -> None:
        if token is not None:
            sender.on_tx_done(token, acked, now)
