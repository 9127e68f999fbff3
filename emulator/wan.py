"""The WAN between the DCC and a comms hub: asyncio TCP on loopback, with the latency and
loss of the CSP region the premise is in (docs/GBCS_INTERFACES.md section 7).

    server = WanServer(lambda data: hub.receive_wan(data, clock()), region="north", seed=1)
    port = await server.start()                  # 127.0.0.1, an ephemeral port
    dcc = WanClient(region="north", seed=1)
    await dcc.connect("127.0.0.1", port)
    response = await dcc.request(command)        # matched by GBCS originator counter
    await server.push(alert)                     # hub -> DCC, unsolicited (dcc.unsolicited)
    await dcc.close(); await server.close()

Framing. Each TCP frame is a 4-byte big-endian length, then a 1-byte type and a 4-byte
sequence number, then (DATA) one GBCS message. TCP itself never loses a byte, so the CSP
link's character is put on top: each frame (DATA or ACK) is dropped with the region's
loss probability and sent after its one-way latency plus uniform jitter (scaled by
`time_scale`, so tests run a long-range radio region in milliseconds). A `WanLink` (one
end of a connection) retransmits a DATA frame until its ACK arrives, at most `retries`
more times, then raises `WanTimeout`; the receiver acknowledges every copy and delivers
each sequence number once, so loss costs time, never a duplicate. Frames may overtake
one another (jitter), as datagrams on a radio bearer do; GBCS does not care.

Requests. `WanClient.request` sends a command and waits for the response carrying the
same originator counter back to the same originator (CRA flag 2, recipient = the
command's originator); anything else (alerts, late answers) lands in `unsolicited`. A
response that does not come within `timeout` raises `WanTimeout` naming the counter and
the device.

Region profiles (`REGIONS`; unconfirmed defaults, override with a `RegionProfile`): the
North is served by long-range radio (seconds of latency, more loss); Central and South by
cellular (a few hundred milliseconds, little loss). Everything is bound to 127.0.0.1:
this is a lab, not a network service. Randomness comes from `random.Random(seed)` per
link direction, so the same seed draws the same losses and delays (wall-clock
interleaving of two directions may still differ).
"""

from __future__ import annotations

import asyncio
import collections
import random
import struct

from firmware.gbcs.envelope import CRA_COMMAND, CRA_RESPONSE, GbcsError, parse

DATA = 0x01
ACK = 0x02
MAX_FRAME = 1 << 20           # no GBCS message comes near a mebibyte
DEDUPE_WINDOW = 4096          # sequence numbers remembered per direction
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class WanError(Exception):
    """The WAN could not carry a message (connection lost, bad frame)."""


class WanTimeout(WanError):
    """A frame was not acknowledged, or a response did not come, in time."""


class RegionProfile:
    def __init__(self, name: str, latency: float, jitter: float, loss: float):
        if not 0.0 <= loss <= 1.0 or latency < 0 or jitter < 0:
            raise ValueError("loss is a probability; latency and jitter are not negative")
        self.name = name
        self.latency = latency        # one way, seconds
        self.jitter = jitter          # uniform extra delay, seconds
        self.loss = loss              # per frame

    def __repr__(self):
        return (f"RegionProfile({self.name!r}, latency={self.latency}, jitter={self.jitter}, "
                f"loss={self.loss})")


REGIONS = {
    "north": RegionProfile("north", latency=1.5, jitter=1.0, loss=0.05),      # long-range radio
    "central": RegionProfile("central", latency=0.15, jitter=0.1, loss=0.01),  # cellular
    "south": RegionProfile("south", latency=0.15, jitter=0.1, loss=0.01),      # cellular
}


def region_profile(region) -> RegionProfile:
    if isinstance(region, RegionProfile):
        return region
    try:
        return REGIONS[region]
    except KeyError:
        raise ValueError(f"unknown CSP region {region!r}: one of {sorted(REGIONS)}") from None


def _check_loopback(host):
    if host not in LOOPBACK:
        raise ValueError("the emulated WAN binds and connects to loopback only")


class _Outgoing:
    """A DATA frame awaiting its ACK: the bytes, tries so far, the retry timer, the
    future its sender holds."""

    __slots__ = ("data", "tries", "timer", "future")

    def __init__(self, data, future):
        self.data = data
        self.tries = 0
        self.timer = None
        self.future = future


class WanLink:
    """One end of a WAN connection: reliable, impaired, duplicate-free message delivery.

    `on_message(data)` is called once per message the peer sent, in arrival order.
    Sending is timer-driven, not a task per frame: `post(data)` transmits at once and
    arms a retry timer (`loop.call_later`), a delayed frame is written by its own timer,
    and an ACK resolves the future `post` returned; `send` awaits that future.
    """

    def __init__(self, reader, writer, profile: RegionProfile, rng: random.Random,
                 on_message, time_scale: float = 1.0, retries: int = 6,
                 ack_timeout: float | None = None):
        self.reader = reader
        self.writer = writer
        self.profile = profile
        self.rng = rng
        self.on_message = on_message
        self.time_scale = time_scale
        self.retries = retries
        worst = (profile.latency + profile.jitter) * time_scale
        self.ack_timeout = ack_timeout if ack_timeout is not None else 2 * worst + 0.05
        self.stats = collections.Counter()
        self._next_seq = 0
        self._outgoing: dict[int, _Outgoing] = {}
        self._seen: set[int] = set()
        self._seen_order: collections.deque = collections.deque()
        self._delayed: set[asyncio.TimerHandle] = set()
        self._unsent: list[bytes] = []
        self._reader_task: asyncio.Task | None = None
        self._loop = None
        self.closed = asyncio.Event()

    def start(self):
        self._loop = asyncio.get_running_loop()
        self._reader_task = asyncio.ensure_future(self._read_loop())

    # -- sending ---------------------------------------------------------------------
    async def send(self, data: bytes):
        """Deliver `data` to the peer once; WanTimeout after `retries` retransmissions."""
        await self.post(data)

    def post(self, data: bytes) -> asyncio.Future:
        """Transmit `data` now; the future is done when the peer acknowledged it, or
        fails with WanTimeout (no ACK after `retries` retransmissions) or WanError (the
        link closed). Cancelling it stops the retransmissions."""
        loop = self._loop or asyncio.get_running_loop()
        future = loop.create_future()
        if self.closed.is_set():
            future.set_exception(WanError("link closed"))
            return future
        seq = self._next_seq
        self._next_seq = (self._next_seq + 1) & 0xFFFFFFFF
        self._outgoing[seq] = _Outgoing(bytes(data), future)
        future.add_done_callback(lambda _, seq=seq: self._forget(seq))
        self._try(seq)
        return future

    def _try(self, seq):
        out = self._outgoing.get(seq)
        if out is None:
            return
        if out.tries and self.closed.is_set():
            out.future.set_exception(WanError("link closed"))
            return
        if out.tries > self.retries:
            self.stats["send timeouts"] += 1
            out.future.set_exception(WanTimeout(
                f"frame {seq} not acknowledged after {self.retries + 1} tries "
                f"({self.profile.name}, {self.ack_timeout:.3f} s each)"))
            return
        if out.tries:
            self.stats["retransmissions"] += 1
        out.tries += 1
        self._transmit(DATA, seq, out.data)
        out.timer = self._loop.call_later(self.ack_timeout, self._try, seq)

    def _forget(self, seq):
        out = self._outgoing.pop(seq, None)
        if out is not None and out.timer is not None:
            out.timer.cancel()

    def _transmit(self, kind, seq, payload=b""):
        if self.rng.random() < self.profile.loss:
            self.stats["lost"] += 1
            return
        delay = self.profile.latency
        if self.profile.jitter:
            delay += self.rng.uniform(0, self.profile.jitter)
        frame = struct.pack(">IBI", 5 + len(payload), kind, seq) + payload
        delay *= self.time_scale
        if delay <= 0:
            self._write(frame)
            return
        box = []
        handle = self._loop.call_later(delay, self._write_delayed, frame, box)
        box.append(handle)
        self._delayed.add(handle)

    def _write_delayed(self, frame, box):
        self._delayed.discard(box[0])
        self._write(frame)

    def _write(self, frame):
        """Queue `frame`; the frames queued in one turn of the loop go in one write (an
        ACK and the answer it comes with: one send, not two)."""
        if not self._unsent:
            self._loop.call_soon(self._flush)
        self._unsent.append(frame)

    def _flush(self):
        frames, self._unsent = self._unsent, []
        if self.writer.is_closing():
            return
        try:
            self.writer.write(b"".join(frames))
        except (ConnectionError, OSError):
            self.closed.set()

    # -- receiving -------------------------------------------------------------------
    async def _read_loop(self):
        """Frames out of whatever the socket gives (several per read when they queue)."""
        buffer = bytearray()
        try:
            while True:
                chunk = await self.reader.read(65536)
                if not chunk:
                    break
                buffer += chunk
                used = self._frames(buffer)
                if used is None:
                    break
                del buffer[:used]
        except (ConnectionError, OSError):
            pass
        finally:
            self._closed()
            self.writer.close()        # a peer that breaks the framing is hung up on

    def _frames(self, buffer):
        """Handle each whole frame in `buffer`; the bytes used, or None on a bad frame."""
        offset, size = 0, len(buffer)
        while size - offset >= 4:
            (length,) = struct.unpack_from(">I", buffer, offset)
            if not 5 <= length <= MAX_FRAME:
                self.stats["bad frames"] += 1
                return None
            if size - offset - 4 < length:
                break
            kind, seq = struct.unpack_from(">BI", buffer, offset + 4)
            if kind == ACK:
                out = self._outgoing.get(seq)
                if out is not None and not out.future.done():
                    out.future.set_result(None)
            elif kind == DATA:
                self._transmit(ACK, seq)
                self._deliver(seq, bytes(buffer[offset + 9:offset + 4 + length]))
            else:
                self.stats["bad frames"] += 1
                return None
            offset += 4 + length
        return offset

    def _deliver(self, seq, payload):
        if seq in self._seen:
            self.stats["duplicates"] += 1
            return
        self._seen.add(seq)
        self._seen_order.append(seq)
        if len(self._seen_order) > DEDUPE_WINDOW:
            self._seen.discard(self._seen_order.popleft())
        self.stats["delivered"] += 1
        self.on_message(payload)

    def _closed(self):
        """The link is down: nothing more is written; what awaits an ACK fails with
        WanError when its retry falls due (`_try`), unless `close` cancels it first."""
        self.closed.set()
        for handle in self._delayed:
            handle.cancel()
        self._delayed.clear()

    async def close(self):
        """Hang up: what still awaits an ACK is cancelled (a peer hanging up fails it)."""
        for out in list(self._outgoing.values()):
            out.future.cancel()
        self._closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)


class WanServer:
    """The hub's side: `handler(data) -> list[bytes]` answers each message from the DCC;
    `push(data)` sends what the hub produces later (HAN answers, alerts)."""

    def __init__(self, handler, region="central", seed: int = 0, time_scale: float = 1.0,
                 host: str = "127.0.0.1", retries: int = 6):
        _check_loopback(host)
        self.handler = handler
        self.profile = region_profile(region)
        self.seed = seed
        self.time_scale = time_scale
        self.host = host
        self.retries = retries
        self.links: list[WanLink] = []
        self.errors: list[Exception] = []
        self._server = None
        self.connected = asyncio.Event()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        return self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader, writer):
        rng = random.Random(f"wan {self.seed} hub->dcc {len(self.links)}")
        link = WanLink(reader, writer, self.profile, rng, None, self.time_scale, self.retries)
        link.on_message = lambda data: self._answer(link, data)
        self.links.append(link)
        link.start()
        self.connected.set()

    def _answer(self, link, data):
        """The hub's answers to one message, each posted at once (no task per message)."""
        try:
            answers = self.handler(data)
        except Exception as exc:            # the hub never raises; report if one does
            self.errors.append(exc)
            return
        for answer in answers or ():
            link.post(answer).add_done_callback(self._sent)

    def _sent(self, future):
        if not future.cancelled() and future.exception() is not None:
            self.errors.append(future.exception())

    async def push(self, data: bytes):
        """Send `data` up to the DCC on the newest open connection."""
        for link in reversed(self.links):
            if not link.closed.is_set():
                await link.send(data)
                return
        raise WanError("no DCC connected")

    async def close(self):
        for link in self.links:
            await link.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class WanClient:
    """The DCC's side: `request(command) -> response`, matched by originator counter."""

    def __init__(self, region="central", seed: int = 0, time_scale: float = 1.0,
                 retries: int = 6, unsolicited_limit: int = 10_000):
        self.profile = region_profile(region)
        self.seed = seed
        self.time_scale = time_scale
        self.retries = retries
        self.link: WanLink | None = None
        self.unsolicited: list[bytes] = []
        self.unsolicited_limit = unsolicited_limit
        self.unsolicited_event = asyncio.Event()
        self._pending: dict[tuple[bytes, int], asyncio.Future] = {}

    async def connect(self, host: str, port: int):
        _check_loopback(host)
        reader, writer = await asyncio.open_connection(host, port)
        rng = random.Random(f"wan {self.seed} dcc->hub")
        self.link = WanLink(reader, writer, self.profile, rng, self._on_message,
                            self.time_scale, self.retries)
        self.link.start()

    def default_timeout(self) -> float:
        link = self.link
        return 2 * (self.retries + 1) * link.ack_timeout + 1.0

    async def send(self, data: bytes):
        if self.link is None:
            raise WanError("not connected")
        await self.link.send(data)

    async def request(self, command: bytes, timeout: float | None = None) -> bytes:
        """Send a GBCS command; the response with its originator counter, or WanTimeout."""
        try:
            message = parse(command)
        except GbcsError as exc:
            raise WanError(f"not a GBCS message: {exc}") from None
        if message.cra_flag != CRA_COMMAND:
            raise WanError("only commands are requests")
        if self.link is None:
            raise WanError("not connected")
        key = (bytes(message.originator), message.originator_counter)
        if key in self._pending:
            raise WanError(f"counter {message.originator_counter} already awaits a response")
        answer = asyncio.get_running_loop().create_future()
        self._pending[key] = answer
        limit = self.default_timeout() if timeout is None else timeout
        sent = self.link.post(command)
        sent.add_done_callback(lambda done: _fail_with(answer, done))
        try:
            return await asyncio.wait_for(answer, limit)
        except asyncio.TimeoutError:
            raise WanTimeout(
                f"no response to counter {message.originator_counter:#x} from "
                f"{bytes(message.recipient).hex()} within {limit:.2f} s "
                f"({self.profile.name})") from None
        finally:
            self._pending.pop(key, None)
            if not sent.done():
                sent.cancel()          # the answer came while its ACK was still lost

    def _on_message(self, data: bytes):
        try:
            message = parse(data)
        except GbcsError:
            self._unsolicited(data)
            return
        if message.cra_flag == CRA_RESPONSE:
            key = (bytes(message.recipient), message.originator_counter)
            waiting = self._pending.get(key)
            if waiting is not None and not waiting.done():
                waiting.set_result(bytes(data))
                return
        self._unsolicited(data)

    def _unsolicited(self, data):
        self.unsolicited.append(bytes(data))
        if len(self.unsolicited) > self.unsolicited_limit:
            del self.unsolicited[0]
        self.unsolicited_event.set()

    async def close(self):
        if self.link is not None:
            await self.link.close()


def _fail_with(answer, sent):
    """A command that never got through (its link's WanTimeout or WanError) fails the
    request waiting for its answer; an answer that came first stands."""
    if sent.cancelled() or answer.done():
        if not sent.cancelled():
            sent.exception()           # retrieved: an ACK lost after the answer is no error
        return
    if sent.exception() is not None:
        answer.set_exception(sent.exception())
