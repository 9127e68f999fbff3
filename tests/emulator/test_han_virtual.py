"""The virtual HAN (emulator/han/virtual.py) and the ESME node adapter."""

import pytest

from emulator.han.nodes import EsmeNode
from emulator.han.virtual import (CORRUPTED, DELIVERED, LOST, UNREACHABLE, LinkProfile,
                                  VirtualHan)
from firmware.gbcs.envelope import CRA_COMMAND, CRA_RESPONSE, GbcsMessage, parse
from firmware.han import tunnel as T

HUB = bytes.fromhex("00db1234567890a2")
ESME = bytes.fromhex("00db1234567890a0")
GSME = bytes.fromhex("00db1234567890a1")
SUPPLIER = bytes.fromhex("90b3d51f30010000")


class RecordingHub:
    eui = HUB

    def __init__(self):
        self.got = []

    def receive_han(self, eui, frame, now):
        self.got.append((eui, frame, now))
        return [b"up:" + frame]


class EchoNode:
    def __init__(self):
        self.got = []

    def receive_tunnel(self, data, now):
        self.got.append((data, now))
        return [b"\x03echo" + data]


class EsmeStandIn:
    """`EsmeGbcs.receive_gbcs` as the contract gives it: responses to commands."""

    def __init__(self):
        self.calls = []

    def receive_gbcs(self, data, now):
        self.calls.append((data, now))
        m = parse(data)
        return [GbcsMessage(CRA_RESPONSE, m.originator_counter, ESME, m.originator,
                            m.message_code, b"\xda" + m.payload[1:]).encode()]


def wired(**options):
    han = VirtualHan(**options)
    hub = RecordingHub()
    han.attach_hub(hub)
    return han, hub


def fates(han):
    return [(r.source, r.destination, r.data, r.delivered, r.fate, r.due) for r in han.log]


def test_frames_travel_both_ways_with_the_delay():
    han, hub = wired(delay=2)
    node = EchoNode()
    han.attach(ESME, node)
    han.now = 10
    han.send(ESME, b"\x03ping")
    assert han.deliver(11) == [] and node.got == [] and han.in_flight == 1
    assert han.deliver(12) == []
    assert node.got == [(b"\x03ping", 12)]
    assert han.deliver(14) == [b"up:\x03echo\x03ping"]
    assert hub.got == [(ESME, b"\x03echo\x03ping", 14)]
    assert [r.fate for r in han.log] == [DELIVERED, DELIVERED]
    assert [(r.sent_at, r.due) for r in han.log] == [(10, 12), (12, 14)]


def test_zero_delay_settles_in_one_run():
    han, _ = wired()
    han.attach(ESME, EchoNode())
    han.send(ESME, b"\x03a")
    assert han.deliver(0) == [b"up:\x03echo\x03a"]


def test_same_seed_same_fates_and_bytes():
    def run(seed):
        han, _ = wired(seed=seed, loss=0.3, corruption=0.3, delay=1, jitter=5)
        han.attach(ESME, EchoNode())
        for i in range(200):
            han.send(ESME, bytes((3, i)) + b"payload")
        up, _ = han.settle(0)
        return fates(han), up
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_loss_and_corruption_rates_follow_the_profile():
    han, _ = wired(seed=3, loss=0.2, corruption=0.1)
    for i in range(2000):
        han.send(ESME, b"\x03" + bytes(30))
    counts = {}
    for r in han.log:
        counts[r.fate] = counts.get(r.fate, 0) + 1
    assert 330 < counts[LOST] < 470
    assert 100 < counts[CORRUPTED] < 220
    for r in han.log:
        if r.fate == CORRUPTED:
            diff = [i for i in range(len(r.data)) if r.data[i] != r.delivered[i]]
            assert len(diff) == 1
        if r.fate == LOST:
            assert r.delivered is None
    han.settle(0)
    assert all(r.fate == UNREACHABLE for r in han.log if r.fate not in (LOST,))


def test_jitter_never_reorders_a_link():
    han, _ = wired(seed=5, delay=0.5, jitter=3)
    node = EchoNode()
    han.attach(ESME, node)
    for i in range(50):
        han.send(ESME, bytes((3, i)))
    han.settle(0)
    assert [d[1] for d, _ in node.got] == list(range(50))


def test_per_link_profile():
    han, _ = wired(seed=1)
    han.attach(ESME, EchoNode(), LinkProfile(loss=1.0))
    han.attach(GSME, EchoNode())
    han.send(ESME, b"\x03a")
    han.send(GSME, b"\x03b")
    up, _ = han.settle(0)
    assert up == [b"up:\x03echo\x03b"]
    assert [r.fate for r in han.log] == [LOST, DELIVERED, DELIVERED]


def test_polling_nodes_send_on_their_own():
    class Sleepy:
        def __init__(self):
            self.wakes = 0

        def poll(self, now):
            if now >= 100 * (self.wakes + 1):
                self.wakes += 1
                return [T.get()]
            return []

        def receive_tunnel(self, data, now):
            return []
    han, hub = wired()
    han.attach(GSME, Sleepy())
    assert han.deliver(50) == []
    assert han.deliver(100) == [b"up:\x01"]
    assert hub.got == [(GSME, b"\x01", 100)]


def test_a_ping_pong_that_never_settles_is_stopped():
    class Echoing(RecordingHub):
        def receive_han(self, eui, frame, now):
            han.send(eui, frame)
            return []
    han = VirtualHan(max_frames_per_run=500)
    han.attach_hub(Echoing())
    han.attach(ESME, EchoNode())
    han.send(ESME, b"\x03x")
    with pytest.raises(RuntimeError):
        han.deliver(0)


def test_time_runs_forward_and_the_log_is_bounded():
    han, _ = wired(log_limit=10)
    for _ in range(25):
        han.send(ESME, b"\x03z")
    assert len(han.log) == 10
    han.deliver(5)
    with pytest.raises(ValueError):
        han.deliver(4)


def test_esme_node_runs_the_port_behind_the_tunnel():
    port = EsmeStandIn()
    node = EsmeNode(port)
    command = GbcsMessage(CRA_COMMAND, 0x77, SUPPLIER, ESME, 0x27, b"\xd9" + b"\x01" * 3000)
    command = command.encode()
    parts = T.segments(T.put(command))
    outs = [node.receive_tunnel(p, 5) for p in parts]
    assert outs[:-1] == [[]] * (len(parts) - 1)
    assert port.calls == [(command, 5)]
    frames = outs[-1]
    assert len(frames) == 3 and all(len(f) <= T.MAX_TRANSFER for f in frames)
    r = T.Reassembler()
    kind, _, answer = [r.feed(f, 5) for f in frames][-1]
    assert kind == T.PUT and parse(answer).originator_counter == 0x77
    assert node.receive_tunnel(T.get(), 6) == [] and node.receive_tunnel(b"\x09", 6) == []
    assert node.dropped == 2 and len(port.calls) == 1
