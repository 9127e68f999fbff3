# The GPF's reliable hand-over inside firmware/ (MicroPython-runnable, stand-in crypto from
# test_gsme): a command stays at the head of the queue until the GSME's PUT answers it, is
# offered again on the next GET, and is dropped with ALERT_UNDELIVERED after max_offers;
# the GSME answers a command offered again with the replies it already sent.
# tests/emulator/test_gpf_reliable_handover.py runs the same with P-256 and the lab.

import json

from firmware.devices import gpf as F
from firmware.devices import gsme as G
from firmware.gbcs import codes, envelope
from firmware.gbcs.device_security import DeviceSecurity
from firmware.han import tunnel

try:
    from tests.firmware import test_gsme as T
except ImportError:
    import test_gsme as T


def _lab(max_offers=F.DEFAULT_MAX_OFFERS):
    meter, _ = T.make_gsme()
    security = DeviceSecurity(T.GSME_EUI, T.KEYS["gsme-ds"], T.KEYS["gsme-ka"], T.CRYPTO,
                              T.anchors())
    return meter, F.GasProxyFunction(T.GSME_EUI, security, max_offers=max_offers)


def _wake(meter, proxy, now, lose_down=False, lose_up=False):
    """One wake; the first GET-RESPONSE carrying a command and/or the first PUT lost.
    Returns (upstream, the PUT payloads lost)."""
    meter.mirror_ack(proxy.receive_mirror(meter.mirror_report(now), now))
    pending = meter.wake(now)
    lost = []
    while pending:
        frame = pending.pop(0)
        kind, _, payload = tunnel.decode(frame)
        if kind == tunnel.PUT and lose_up:
            lose_up = False
            lost.append(payload)
            continue
        for reply in proxy.receive_tunnel(frame, now):
            if lose_down and tunnel.decode(reply)[2]:
                lose_down = False
                continue
            pending.extend(meter.receive_tunnel(reply, now))
    meter.mirror_ack(proxy.receive_mirror(meter.mirror_report(now), now))
    return proxy.take_upstream(), lost


def test_lost_get_response_is_offered_again():
    meter, proxy = _lab()
    close = T.command(codes.GCS32, 1000, T.change_supply_payload(0))
    assert proxy.receive_gbcs(close, T.NOW) == []
    up, _ = _wake(meter, proxy, T.NOW + 60, lose_down=True)
    assert up == [] and meter.valve == G.VALVE_OPEN
    assert proxy.queue == [close] and proxy.offers == 1
    up, _ = _wake(meter, proxy, T.NOW + 1900)
    assert [envelope.parse(r).originator_counter for r in up] == [1000]
    assert meter.valve == G.VALVE_CLOSED and proxy.queue == [] and proxy.offers == 0


def test_lost_put_is_answered_again_without_moving_the_valve_twice():
    meter, proxy = _lab()
    close = T.command(codes.GCS32, 1000, T.change_supply_payload(0))
    proxy.receive_gbcs(close, T.NOW)
    up, lost = _wake(meter, proxy, T.NOW + 60, lose_up=True)
    assert up == [] and len(lost) == 1 and meter.valve == G.VALVE_CLOSED
    saved = json.loads(json.dumps(meter.state()))
    meter.load_state(saved)                          # a battery change meanwhile
    up, _ = _wake(meter, proxy, T.NOW + 1900)
    assert up == lost and T.alert_codes(up) == []    # the same reply, byte for byte
    assert meter.valve == G.VALVE_CLOSED and proxy.queue == []


def test_a_top_up_offered_again_is_refused_as_used_and_credited_once():
    meter, proxy = _lab()
    top_up = T.command(codes.CS01B, 6 << 32, T.top_up_payload(T.mint(6, 1250)))
    proxy.receive_gbcs(top_up, T.NOW)
    credit = meter.credit
    up, lost = _wake(meter, proxy, T.NOW + 60, lose_up=True)
    assert up == [] and len(lost) == 1 and meter.credit == credit + 1250000
    up, _ = _wake(meter, proxy, T.NOW + 1900)
    assert T.alert_codes(up) == [codes.ALERT_DUPLICATE_UTRN]
    assert meter.credit == credit + 1250000 and proxy.queue == []


def test_dropped_after_max_offers_with_undelivered_alert():
    meter, proxy = _lab(max_offers=2)
    close = T.command(codes.GCS32, 1000, T.change_supply_payload(0))
    arm = T.command(codes.GCS39, 1001, T.change_supply_payload(1))
    proxy.receive_gbcs(close, T.NOW)
    proxy.receive_gbcs(arm, T.NOW)
    for i in range(2):
        up, _ = _wake(meter, proxy, T.NOW + 60 + 1800 * i, lose_down=True)
        assert up == [] and proxy.queue == [close, arm] and proxy.offers == i + 1
    up, _ = _wake(meter, proxy, T.NOW + 60 + 3600)
    assert T.alert_codes(up) == [F.ALERT_UNDELIVERED]
    assert envelope.parse(up[0]).recipient == T.SUPPLIER
    # the arm ran next (and failed: the valve it finds is open), the close never did
    assert [envelope.parse(r).originator_counter for r in up[1:]] == [1001]
    assert meter.valve == G.VALVE_OPEN and proxy.queue == []


def test_handed_over_state_round_trip():
    meter, proxy = _lab()
    proxy.receive_gbcs(T.command(codes.GCS32, 1000, T.change_supply_payload(0)), T.NOW)
    proxy.receive_tunnel(tunnel.get(), T.NOW)
    saved = json.loads(json.dumps(proxy.state()))
    _, other = _lab()
    other.load_state(saved)
    assert other.state() == proxy.state() and other.offers == 1
