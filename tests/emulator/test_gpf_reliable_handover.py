"""The GPF's hand-over of queued commands survives a lost HAN frame (GBCS 10.3.4 GSME
command retrieval): the GPF keeps a handed-over command until the GSME's PUT answering
it arrives and offers it again on the next GET, up to `max_offers` times, then drops it
with alert 0x8F84 to its originator; the GSME answers a command offered again with the
replies it already sent, without executing it twice (a top-up excepted: its UTRN record
refuses it as used, as it would a replay).

Frames are lost deterministically: `_wake` is `gpf.wake_exchange` with chosen frames
dropped on the air, and `LossyGsmeNode` does the same on the lab's virtual HAN.
"""

import calendar
import json

import pytest

from emulator.crypto import HostCrypto
from emulator.lab import ACB_EUI, GSME_EUI as LAB_GSME_EUI, SUPPLIER_EUIS, Lab
from emulator.smki import TestSmki
from emulator.usecases import USE_CASE_BUILDERS, BuildContext
from firmware.devices import gpf as F
from firmware.devices import gsme as G
from firmware.gbcs import codes, envelope, gbz, security
from firmware.gbcs.device_security import DeviceSecurity
from firmware.han import tunnel
from firmware.sim.clock import SteppedClock
from tests.fuzz.parties import InstalledDevice

CRYPTO = HostCrypto()
SUPPLIER = bytes.fromhex("90B3D51F30010000")
ACB = bytes.fromhex("90B3D51F30000002")
GSME_EUI = bytes.fromhex("00DB1234567890A1")
PARTIES = InstalledDevice(CRYPTO, TestSmki(seed=5), GSME_EUI, SUPPLIER, ACB)
KEYS = PARTIES.org
SUPPLIER_KEYS, ACB_KEYS, GSME_KEYS = KEYS[SUPPLIER], KEYS[ACB], PARTIES.device
START = calendar.timegm((2026, 1, 10, 0, 0, 0))
NOW = START + 3 * 86400
WAKE = 1800


def _security():
    return DeviceSecurity(GSME_EUI, GSME_KEYS["ds"].private_key, GSME_KEYS["ka"].private_key,
                          CRYPTO, PARTIES.anchors())


def _premise(**gpf_options):
    clock = SteppedClock(START)
    meter = G.Gsme({"clock": {"start": START}, "gas": {"hh_depth": 480}}, clock, 11, _security())
    clock.set(NOW)
    proxy = F.GasProxyFunction(GSME_EUI, _security(), **gpf_options)
    F.wake_exchange(meter, proxy, NOW)
    return meter, proxy


def _ctx(counter, originator=SUPPLIER):
    return BuildContext(counter, originator, GSME_EUI, now=NOW, crypto=CRYPTO,
                        ka_private=KEYS[originator]["ka"].private_key,
                        target_ka_public=GSME_KEYS["ka"].public_xy)


def _command(name, counter, params=None, originator=SUPPLIER):
    uc = USE_CASE_BUILDERS[name]
    message = envelope.GbcsMessage(envelope.CRA_COMMAND, counter, originator, GSME_EUI,
                                   uc.message_code, uc.build(params or {},
                                                             _ctx(counter, originator)))
    if uc.critical:
        security.sign(CRYPTO, KEYS[originator]["ds"].private_key, message)
    shared = CRYPTO.ecdh(ACB_KEYS["ka"].private_key, GSME_KEYS["ka"].public_xy)
    return security.protect_mac(CRYPTO, shared, message).encode()


def _mint(counter_hi, pence):
    return PARTIES.mint(counter_hi, pence)


def _verified(raw, recipient=SUPPLIER):
    reply = envelope.parse(raw)
    assert reply.originator == GSME_EUI and reply.recipient == recipient
    if reply.signature is not None:
        assert security.verify_signature(CRYPTO, GSME_KEYS["ds"].public_xy, reply)
    else:
        shared = CRYPTO.ecdh(KEYS[recipient]["ka"].private_key, GSME_KEYS["ka"].public_xy)
        assert security.verify_mac(CRYPTO, shared, reply)
    return reply


def _kinds(raws):
    """(CRA flag, counter of a response / alert code of an alert) of each message."""
    out = []
    for raw in raws:
        message = _verified(raw)
        if message.cra_flag == envelope.CRA_ALERT:
            out.append(("alert", gbz.decode(message.payload).alert_code))
        else:
            out.append(("response", message.originator_counter))
    return out


def _wake(meter, proxy, now, lose_down=(), lose_up=()):
    """`gpf.wake_exchange` with frames lost on the air: `lose_down` holds the indexes
    (0-based, in this wake) of the GET-RESPONSEs carrying a command that are lost,
    `lose_up` those of the GSME's PUTs. Returns (upstream, the PUT payloads lost)."""
    meter.mirror_ack(proxy.receive_mirror(meter.mirror_report(now), now))
    pending = meter.wake(now)
    offered = put = 0
    lost = []
    while pending:
        frame = pending.pop(0)
        kind, _, payload = tunnel.decode(frame)
        if kind == tunnel.PUT:
            put += 1
            if put - 1 in lose_up:
                lost.append(payload)
                continue
        for reply in proxy.receive_tunnel(frame, now):
            if tunnel.decode(reply)[2]:
                offered += 1
                if offered - 1 in lose_down:
                    continue
            pending.extend(meter.receive_tunnel(reply, now))
    meter.mirror_ack(proxy.receive_mirror(meter.mirror_report(now), now))
    return proxy.take_upstream(), lost


def _valve_answer(raw, counter):
    return USE_CASE_BUILDERS["GCS32"].read_response(_verified(raw).payload, _ctx(counter))


# -- (1) the GET-RESPONSE carrying the command is lost once ---------------------------------

def test_lost_get_response_command_delivered_on_next_poll_once():
    meter, proxy = _premise()
    close = _command("GCS32", 2000)
    assert proxy.receive_gbcs(close, NOW) == []
    up, _ = _wake(meter, proxy, NOW + WAKE, lose_down={0})
    assert up == [] and meter.valve == G.VALVE_OPEN       # the GSME never heard it
    assert proxy.queue == [close] and proxy.offers == 1 and proxy.waiting() == 0
    up, _ = _wake(meter, proxy, NOW + 2 * WAKE)
    assert _kinds(up) == [("response", 2000)]
    answer = _valve_answer(up[0], 2000)
    assert answer["ok"] and answer["supply_status"] == 0
    assert meter.valve == G.VALVE_CLOSED and proxy.queue == [] and proxy.offers == 0
    # nothing left to offer: the next wake brings nothing and executes nothing
    state = meter.state()
    up, _ = _wake(meter, proxy, NOW + 3 * WAKE)
    assert up == [] and meter.state()["answered"] == state["answered"]


def test_remaining_count_leaves_out_the_command_offered():
    _, proxy = _premise()
    for counter in (2000, 2001, 2002):
        assert proxy.receive_gbcs(_command("GCS32", counter), NOW) == []
    seen = []
    for _ in range(2):                                      # unanswered: offered again
        kind, left, payload = tunnel.decode(proxy.receive_tunnel(tunnel.get(), NOW)[0])
        seen.append((kind, left, envelope.parse(payload).originator_counter))
    assert seen == [(tunnel.GET_RESPONSE, 2, 2000)] * 2
    assert len(proxy.queue) == 3 and proxy.waiting() == 2


# -- (2) the GSME's PUT is lost -------------------------------------------------------------

def test_lost_put_of_a_top_up_is_refused_as_used_when_offered_again_and_credited_once():
    """A top-up's counter is its UTRN's, which the GPF cannot check, so the same top-up
    again may be a replay: the GSME's UTRN record decides (GBCS has no other way to tell).
    Offered again after its answer was lost, it is refused as used, with the duplicate-UTRN
    alert; the credit went on once, and the refusal settles it at the GPF."""
    meter, proxy = _premise()
    top_up = _command("CS01b", 9 << 32, {"utrn": _mint(9, 2000)})
    assert proxy.receive_gbcs(top_up, NOW) == []
    credit = meter.credit
    up, lost = _wake(meter, proxy, NOW + WAKE, lose_up={0})
    assert up == [] and len(lost) == 1 and meter.credit == credit + 2000000
    assert proxy.queue == [top_up] and proxy.offers == 1     # unanswered as far as it knows
    record = meter.utrn_record.state()
    up, lost_again = _wake(meter, proxy, NOW + 2 * WAKE)
    assert lost_again == []
    assert _kinds(up) == [("response", 9 << 32), ("alert", codes.ALERT_DUPLICATE_UTRN)]
    read = USE_CASE_BUILDERS["CS01b"].read_response(_verified(up[0]).payload, _ctx(9 << 32))
    assert not read["ok"]
    assert meter.credit == credit + 2000000 and meter.utrn_record.state() == record
    assert proxy.queue == [] and proxy.offers == 0


def test_lost_put_of_valve_command_does_not_move_the_valve_again():
    meter, proxy = _premise()
    proxy.receive_gbcs(_command("GCS32", 2000), NOW)
    _wake(meter, proxy, NOW + WAKE)
    assert meter.valve == G.VALVE_CLOSED                       # arming needs it closed
    arm = _command("GCS39", 2001)
    proxy.receive_gbcs(arm, NOW + WAKE)
    _, lost = _wake(meter, proxy, NOW + 2 * WAKE, lose_up={0})
    assert meter.valve == G.VALVE_ARMED and proxy.queue == [arm]
    assert meter.open_valve_locally(NOW + 2 * WAKE + 60)        # the consumer opens it
    up, _ = _wake(meter, proxy, NOW + 3 * WAKE)
    assert up == lost and _kinds(up) == [("response", 2001)]
    assert meter.valve == G.VALVE_OPEN                        # not armed a second time
    assert proxy.queue == []


def test_lost_put_mid_wake_is_answered_in_the_same_wake():
    """The GSME polls again at once when more is queued: the lost answer's command is
    offered again before the next one, and each is answered upstream once."""
    meter, proxy = _premise()
    close = _command("GCS32", 2000)
    top_up = _command("CS01b", 9 << 32, {"utrn": _mint(9, 2000)})
    proxy.receive_gbcs(close, NOW)
    proxy.receive_gbcs(top_up, NOW)
    credit = meter.credit
    up, lost = _wake(meter, proxy, NOW + WAKE, lose_up={0})
    assert _kinds(up) == [("response", 2000), ("response", 9 << 32)]
    assert up[0] == lost[0]                                  # the same reply, byte for byte
    assert meter.credit == credit + 2000000 and meter.valve == G.VALVE_CLOSED
    assert proxy.queue == [] and proxy.offers == 0


def test_replay_on_the_gbcs_port_is_still_refused():
    """Only a command handed over again through the tunnel is answered from the record."""
    meter, proxy = _premise()
    close = _command("GCS32", 2000)
    proxy.receive_gbcs(close, NOW)
    _wake(meter, proxy, NOW + WAKE, lose_up={0})
    replay = meter.receive_gbcs(close, NOW + WAKE)
    assert _kinds(replay) == [("alert", codes.ALERT_FAILED_AUTHENTICATION_OTHER)]


# -- (3) the attempt limit ------------------------------------------------------------------

@pytest.mark.parametrize("max_offers", [1, 3])
def test_command_dropped_after_max_offers_with_alert_and_queue_moves_on(max_offers):
    sink = []
    meter, proxy = _premise(max_offers=max_offers, alert_sink=sink.append)
    close = _command("GCS32", 2000)
    top_up = _command("CS01b", 12 << 32, {"utrn": _mint(12, 500)})
    assert proxy.receive_gbcs(close, NOW) == [] and proxy.receive_gbcs(top_up, NOW) == []
    credit = meter.credit
    now = NOW
    for attempt in range(max_offers):
        now += WAKE
        up, _ = _wake(meter, proxy, now, lose_down={0})
        assert up == [] and sink == []
        assert proxy.queue == [close, top_up] and proxy.offers == attempt + 1
    now += WAKE
    up, _ = _wake(meter, proxy, now)
    assert [envelope.parse(a).recipient for a in sink] == [SUPPLIER]
    assert _kinds(sink) == [("alert", F.ALERT_UNDELIVERED)] and F.ALERT_UNDELIVERED == 0x8F84
    assert _kinds(up) == [("response", 12 << 32)]
    assert meter.valve == G.VALVE_OPEN                      # the dropped close never ran
    assert meter.credit == credit + 500000
    assert proxy.queue == [] and proxy.offers == 0


def test_drop_alert_goes_to_the_outbox_without_a_sink():
    meter, proxy = _premise(max_offers=1)
    proxy.receive_gbcs(_command("GCS32", 2000), NOW)
    _wake(meter, proxy, NOW + WAKE, lose_down={0})
    up, _ = _wake(meter, proxy, NOW + 2 * WAKE)
    assert _kinds(up) == [("alert", F.ALERT_UNDELIVERED)]
    assert meter.valve == G.VALVE_OPEN and proxy.queue == []


def test_queue_bound_counts_only_the_commands_waiting():
    meter, proxy = _premise(queue_limit=1)
    first, second, third = (_command("GCS32", c) for c in (2000, 2001, 2002))
    assert proxy.receive_gbcs(first, NOW) == []
    _wake(meter, proxy, NOW + WAKE, lose_down={0})          # first handed over, unanswered
    assert proxy.receive_gbcs(second, NOW + WAKE) == []      # the hand-over made room
    out = proxy.receive_gbcs(third, NOW + WAKE)
    assert _kinds(out) == [("alert", F.ALERT_QUEUE_FULL)]
    assert proxy.queue == [first, second]


# -- (4) same counter, another originator ---------------------------------------------------

def test_response_to_another_originator_with_same_counter_does_not_settle():
    meter, proxy = _premise()
    close = _command("GCS32", 2000)
    proxy.receive_gbcs(close, NOW)
    kind, _, payload = tunnel.decode(proxy.receive_tunnel(tunnel.get(), NOW)[0])
    assert payload == close and proxy.offers == 1
    # the GSME's answer to the ACB's read with the same counter 2000
    read = meter.receive_gbcs(_command("GCS13a", 2000, originator=ACB), NOW)
    assert _verified(read[0], ACB).originator_counter == 2000
    proxy.receive_tunnel(tunnel.put(read[0]), NOW)
    assert proxy.queue == [close] and proxy.offers == 1
    kind, _, payload = tunnel.decode(proxy.receive_tunnel(tunnel.get(), NOW)[0])
    assert payload == close and proxy.offers == 2
    # the right answer settles it
    answer = meter.receive_gbcs(close, NOW)
    proxy.receive_tunnel(tunnel.put(answer[0]), NOW)
    assert proxy.queue == [] and proxy.offers == 0


def test_gsme_executes_another_originators_command_with_the_same_counter():
    meter, proxy = _premise()
    close = _command("GCS32", 2000)
    proxy.receive_gbcs(close, NOW)
    _, lost = _wake(meter, proxy, NOW + WAKE, lose_up={0})
    assert meter.valve == G.VALVE_CLOSED and len(lost) == 1
    # awake again, the GSME is handed the ACB's read carrying counter 2000
    meter.wake(NOW + 2 * WAKE)
    acb_read = _command("GCS13a", 2000, originator=ACB)
    frames = meter.receive_tunnel(tunnel.get_response(1, acb_read), NOW + 2 * WAKE)
    puts = [tunnel.decode(f)[2] for f in frames if tunnel.decode(f)[0] == tunnel.PUT]
    assert len(puts) == 1 and puts[0] != lost[0]
    reply = _verified(puts[0], ACB)
    assert reply.cra_flag == envelope.CRA_RESPONSE and reply.originator_counter == 2000
    fields = USE_CASE_BUILDERS["GCS13a"].read_response(reply.payload, _ctx(2000, ACB))
    assert fields["ok"] and fields["current_summation_delivered"] == meter.summation
    # the supplier's command offered again still gets its own, first answer
    frames = meter.receive_tunnel(tunnel.get_response(0, close), NOW + 2 * WAKE)
    assert [tunnel.decode(f)[2] for f in frames] == lost
    # a different command from the supplier with the used counter is a replay
    meter.wake(NOW + 3 * WAKE)
    other = _command("GCS39", 2000)
    frames = meter.receive_tunnel(tunnel.get_response(0, other), NOW + 3 * WAKE)
    assert _kinds([tunnel.decode(f)[2] for f in frames]) == [
        ("alert", codes.ALERT_FAILED_AUTHENTICATION_OTHER)]
    assert meter.valve == G.VALVE_CLOSED


# -- power cuts and bad input ---------------------------------------------------------------

def test_hand_over_survives_restarts_of_gpf_and_gsme():
    meter, proxy = _premise()
    close = _command("GCS32", 2000)
    proxy.receive_gbcs(close, NOW)
    _, lost = _wake(meter, proxy, NOW + WAKE, lose_up={0})
    gpf_state = json.loads(json.dumps(proxy.state()))
    gsme_state = json.loads(json.dumps(meter.state()))
    assert gpf_state["offers"] == 1 and len(gsme_state["answered"]) == 1
    proxy = F.GasProxyFunction(GSME_EUI, _security())
    proxy.load_state(gpf_state)
    meter.load_state(gsme_state)
    assert proxy.state() == gpf_state and meter.state() == gsme_state
    up, _ = _wake(meter, proxy, NOW + 2 * WAKE)
    assert up == lost and meter.valve == G.VALVE_CLOSED and proxy.queue == []


def test_bad_configuration_and_state_are_refused_without_change():
    with pytest.raises(ValueError):
        F.GasProxyFunction(GSME_EUI, _security(), max_offers=0)
    with pytest.raises(ValueError):
        F.GasProxyFunction(GSME_EUI, _security(), queue_limit=-1)
    meter, proxy = _premise()
    proxy.receive_gbcs(_command("GCS32", 2000), NOW)
    proxy.receive_tunnel(tunnel.get(), NOW)
    before = json.dumps(proxy.state())
    for bad in ({"queue": [], "offers": 1}, {"queue": ["zz"]}, {"offers": -1},
                {"offers": "two"}, {"outbox": None}):
        state = json.loads(before)
        state.update(bad)
        with pytest.raises(ValueError):
            proxy.load_state(state)
        assert json.dumps(proxy.state()) == before
    gsme_before = json.dumps(meter.state())
    state = json.loads(gsme_before)
    state["answered"] = [["00", "not hex", []]]
    with pytest.raises(ValueError):
        meter.load_state(state)
    assert json.dumps(meter.state()) == gsme_before


# -- the same on the lab's virtual HAN, through the comms hub -------------------------------

class LossyGsmeNode:
    """The lab's GSME node with frames lost on the air: `lose(direction, kind, payload)`
    says whether a frame (direction "down" to the GSME, "up" from it) is lost."""

    def __init__(self, inner, lose):
        self.inner = inner
        self.lose = lose

    def poll(self, now):
        return self.inner.poll(now)

    def receive_tunnel(self, data, now):
        if self.lose("down", *tunnel.decode(data)[::2]):
            return []
        return [f for f in self.inner.receive_tunnel(data, now)
                if not self.lose("up", *tunnel.decode(f)[::2])]


def _lab_valve_command(lab, counter):
    parties = InstalledDevice.in_lab(lab, LAB_GSME_EUI, SUPPLIER_EUIS["A"], ACB_EUI)
    return parties.command("GCS32", {}, counter, lab.now)


@pytest.mark.parametrize("lost", ["down", "up"])
def test_lab_loses_one_frame_and_the_supplier_still_gets_one_answer(lost):
    lab = Lab(seed=4, wan="direct", record=False)
    losses = []

    def lose(direction, kind, payload):
        if direction == lost and payload and not losses:
            losses.append((direction, kind))
            return True
        return False

    lab.han.attach(LAB_GSME_EUI, LossyGsmeNode(lab.han.nodes[LAB_GSME_EUI], lose))
    counter = lab.headends["A"].next_counter()
    command = _lab_valve_command(lab, counter)
    assert lab.inject(command, "DCC → hub") == []
    assert lab.wake_gsme() == []
    assert len(losses) == 1 and lab.gpf.queue == [command] and lab.gpf.offers == 1
    assert lab.gsme.valve == ("open" if lost == "down" else "closed")
    up = lab.wake_gsme()
    assert [(m.cra_flag, m.originator_counter) for m in map(envelope.parse, up)] == [
        (envelope.CRA_RESPONSE, counter)]
    assert lab.gsme.valve == "closed" and lab.gpf.queue == []
    assert lab.wake_gsme() == []                            # answered once, never again
