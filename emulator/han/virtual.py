"""A virtual HAN: GB-HRGP tunnel frames between the comms hub and its nodes, in process.

    han = VirtualHan(seed=1, loss=0.05, delay=0.2)
    hub = CommsHub(eui, security, han.send)      # han.send is the hub's han_send
    han.attach_hub(hub)
    han.attach(esme_eui, EsmeNode(esme_gbcs))
    up = hub.receive_wan(command, now)           # the hub queues frames on the HAN
    up += han.deliver(now + 1)                   # frames due by then travel; the hub's
                                                 # upstream messages come back
    up, now = han.settle(now)                    # run until nothing is in flight

Sans-IO and deterministic: time is the caller's (`now`, seconds; delays may be fractions,
but devices count whole seconds, so nodes and the hub are handed `int(now)`), and
loss, delay jitter and corruption are drawn from one `random.Random(seed)` in the order
frames are sent, so a seed replays the same bytes. Each frame is logged
(`FrameRecord`: when, from, to, the bytes sent, the bytes delivered, its fate) for pcap
export. A node is anything with `receive_tunnel(data, now) -> list[bytes]`; a node may
also have `poll(now) -> list[bytes]` for frames it sends on its own (a GSME waking to
send GET), which `deliver` asks for every time it runs.
"""

from __future__ import annotations

import heapq
import random

DELIVERED = "delivered"
LOST = "lost"
CORRUPTED = "corrupted"
UNREACHABLE = "unreachable"      # no node (or hub) attached at that EUI


class LinkProfile:
    """Impairments of one direction of a link: probabilities per frame, delays in s."""

    def __init__(self, loss: float = 0.0, corruption: float = 0.0, delay: float = 0.0,
                 jitter: float = 0.0):
        for name, p in (("loss", loss), ("corruption", corruption)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} is a probability")
        if delay < 0 or jitter < 0:
            raise ValueError("delay and jitter are not negative")
        self.loss = loss
        self.corruption = corruption
        self.delay = delay
        self.jitter = jitter


class FrameRecord:
    __slots__ = ("sent_at", "due", "source", "destination", "data", "delivered", "fate")

    def __init__(self, sent_at, due, source, destination, data, delivered, fate):
        self.sent_at = sent_at
        self.due = due
        self.source = source
        self.destination = destination
        self.data = data                  # as the sender sent it
        self.delivered = delivered        # as the receiver got it (None when lost)
        self.fate = fate

    def __repr__(self):
        return (f"FrameRecord({self.sent_at}->{self.due} {self.source.hex()}->"
                f"{self.destination.hex()} {self.fate} {self.data.hex()})")


class VirtualHan:
    def __init__(self, seed: int = 0, loss: float = 0.0, corruption: float = 0.0,
                 delay: float = 0.0, jitter: float = 0.0, log_limit: int = 100_000,
                 max_frames_per_run: int = 100_000):
        self._random = random.Random(seed)
        self._owed_draws = 0          # draws an unimpaired frame skipped (see _queue_frame)
        self.profile = LinkProfile(loss, corruption, delay, jitter)
        self.links: dict[bytes, LinkProfile] = {}     # per node EUI, both directions
        self.hub = None
        self.hub_eui = b"\x00" * 8
        self.nodes: dict[bytes, object] = {}
        self.now = 0
        self.log: list[FrameRecord] = []
        self.log_limit = log_limit
        self.max_frames_per_run = max_frames_per_run
        self._queue: list = []
        self._seq = 0
        self._last_due: dict = {}
        self._pollers = []            # (eui, node) with a poll(), in EUI order
        self._pollers_of: dict = {}   # the `nodes` they were listed from

    @property
    def random(self) -> random.Random:
        """The one source of loss, jitter and corruption, as if every frame had drawn."""
        self._pay_draws()
        return self._random

    @random.setter
    def random(self, value):
        self._random = value
        self._owed_draws = 0

    def _pay_draws(self):
        draw = self._random.random
        for _ in range(self._owed_draws):
            draw()
        self._owed_draws = 0

    # -- wiring --------------------------------------------------------------------------
    def attach_hub(self, hub, eui: bytes | None = None):
        self.hub = hub
        self.hub_eui = bytes(eui if eui is not None else getattr(hub, "eui", self.hub_eui))

    def attach(self, eui: bytes, node, profile: LinkProfile | None = None):
        self.nodes[bytes(eui)] = node
        if profile is not None:
            self.links[bytes(eui)] = profile

    def detach(self, eui: bytes):
        self.nodes.pop(bytes(eui), None)

    # -- sending -------------------------------------------------------------------------
    def send(self, eui: bytes, data: bytes):
        """The hub's `han_send`: one TransferData payload to the node at `eui`."""
        eui = bytes(eui)
        self._queue_frame(self.hub_eui, eui, bytes(data), eui)

    def send_to_hub(self, eui: bytes, data: bytes):
        """A node's frame to the hub (what `deliver` does with a node's answers)."""
        self._queue_frame(bytes(eui), self.hub_eui, bytes(data), bytes(eui))

    def _queue_frame(self, source, destination, data, node_eui):
        profile = self.links.get(node_eui, self.profile)
        if profile.loss or profile.corruption or profile.jitter:
            delivered, fate, delay = self._impair(profile, data)
        else:
            # the two draws (loss, corruption) could not change this frame's fate: they
            # are owed, and taken before the next draw that can, so a seed replays as ever
            self._owed_draws += 2
            delivered, fate, delay = data, DELIVERED, profile.delay
        # a link keeps its frames in order (the tunnel is a stream): jitter never reorders
        link = (source, destination)
        now = self.now
        due = now + delay
        last = self._last_due.get(link, now)
        if last > due:
            due = last
        self._last_due[link] = due
        record = FrameRecord(now, due, source, destination, data, delivered, fate)
        log = self.log
        log.append(record)
        if len(log) > self.log_limit:
            del log[: len(log) - self.log_limit]
        if delivered is not None:
            heapq.heappush(self._queue, (due, self._seq, record))
            self._seq += 1

    def _impair(self, profile, data):
        """(delivered bytes or None, fate, delay) of one frame on an impaired link."""
        if self._owed_draws:
            self._pay_draws()
        draw = self._random
        lost = draw.random() < profile.loss
        corrupt = draw.random() < profile.corruption
        delay = profile.delay + (draw.uniform(0, profile.jitter) if profile.jitter else 0.0)
        if lost:
            return None, LOST, delay
        if corrupt and data:
            damaged = bytearray(data)
            damaged[draw.randrange(len(data))] ^= draw.randrange(1, 256)
            return bytes(damaged), CORRUPTED, delay
        return data, DELIVERED, delay

    # -- time ----------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def next_due(self):
        return self._queue[0][0] if self._queue else None

    def deliver(self, now) -> list[bytes]:
        """Deliver every frame due by `now` (and the answers that fall due meanwhile);
        returns the hub's upstream messages in the order it produced them."""
        if now < self.now:
            raise ValueError("time runs forward on the HAN")
        self.now = now
        for eui, node in self._polling_nodes():
            for frame in node.poll(int(now)) or ():
                self.send_to_hub(eui, frame)
        upstream: list[bytes] = []
        queue = self._queue
        limit = self.max_frames_per_run
        count = 0
        while queue and queue[0][0] <= now:
            count += 1
            if count > limit:
                raise RuntimeError("HAN did not settle: more than %d frames in one run"
                                   % limit)
            due, _, record = heapq.heappop(queue)
            if due > self.now:
                self.now = due
            upstream.extend(self._arrive(record))
        self.now = now
        return upstream

    def _polling_nodes(self):
        if self._pollers_of != self.nodes:
            self._pollers_of = dict(self.nodes)
            self._pollers = [(eui, self.nodes[eui]) for eui in sorted(self.nodes)
                             if hasattr(self.nodes[eui], "poll")]
        return self._pollers

    def settle(self, now, horizon: float = 3600.0) -> tuple[list[bytes], float]:
        """Deliver until nothing is in flight (or `horizon` seconds pass): (upstream, now)."""
        upstream = self.deliver(now)
        limit = now + horizon
        while self._queue and self._queue[0][0] <= limit:
            now = max(now, self._queue[0][0])
            upstream.extend(self.deliver(now))
        return upstream, now

    def _arrive(self, record):
        destination = record.destination
        if destination == self.hub_eui and record.source in self.nodes:
            if self.hub is None:
                record.fate = UNREACHABLE
                return []
            return list(self.hub.receive_han(record.source, record.delivered, int(self.now)))
        node = self.nodes.get(destination)
        if node is None:
            record.fate = UNREACHABLE
            return []
        for frame in node.receive_tunnel(record.delivered, int(self.now)) or ():
            self._queue_frame(destination, self.hub_eui, bytes(frame), destination)
        return []
