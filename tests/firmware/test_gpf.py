# The GPF inside firmware/: reads answered from the mirror while the GSME sleeps, commands
# queued (bounded, in order) and delivered on wake, the GSME's PUTs forwarded upstream.
# Stand-in crypto from test_gsme (MicroPython-runnable).

import json

from firmware.devices import gpf as F
from firmware.devices import gsme as G
from firmware.gbcs import codes, envelope
from firmware.gbcs.device_security import DeviceSecurity
from firmware.han import tunnel
from firmware.zcl import frame as Z
from firmware.zcl import se

try:
    from tests.firmware import test_gsme as T
except ImportError:
    import test_gsme as T


def gpf_security():
    # the GSME-side credentials the GPF speaks with in the emulator (see gpf.py)
    return DeviceSecurity(T.GSME_EUI, T.KEYS["gsme-ds"], T.KEYS["gsme-ka"], T.CRYPTO,
                          T.anchors())


def lab(limit=F.DEFAULT_QUEUE_LIMIT):
    meter, clock = T.make_gsme()
    proxy = F.GasProxyFunction(T.GSME_EUI, gpf_security(), queue_limit=limit)
    return meter, proxy


def registers(reply):
    _, frame = T.answer_frame(reply)
    return Z.decode_read_attributes_response(frame.payload)


def test_gpf_must_speak_as_the_gsme():
    try:
        F.GasProxyFunction(T.OTHER, gpf_security())
    except ValueError:
        return
    assert False, "a GPF for another EUI than its security's"


def test_read_served_from_the_mirror_while_the_gsme_sleeps():
    meter, proxy = lab()
    proxy.receive_mirror(meter.mirror_report(T.NOW), T.NOW)
    mirrored = meter.summation
    meter.advance(T.NOW + 7200)            # the meter moves on, asleep
    out = proxy.receive_gbcs(T.command(codes.GCS13A, 1000, T.read_registers_payload()),
                             T.NOW + 7200)
    reply = T.response(out)                # originator is the GSME's EUI, MAC verifies
    assert registers(reply)[3] == (0x0000, 0, 0x25, mirrored)
    assert not meter.awake and proxy.queue == []


def test_hh_profile_served_from_the_mirror():
    meter, proxy = lab()
    proxy.receive_mirror(meter.mirror_report(T.NOW), T.NOW)
    earliest = T.START + 86400
    out = proxy.receive_gbcs(T.command(codes.GCS17, 1000, T.sampled_data_payload(earliest, 20)),
                             T.NOW)
    _, frame = T.answer_frame(T.response(out))
    fields = se.decode(se.METERING, True, frame.command_id, frame.payload)
    index = (earliest - meter.hh_start) // 1800
    assert fields["samples"] == meter.hh[index:index + 20]


def test_read_before_any_mirror_reports_failure():
    _, proxy = lab()
    out = proxy.receive_gbcs(T.command(codes.GCS13A, 1000, T.read_registers_payload()), T.NOW)
    assert [r[1] for r in registers(T.response(out))] == [Z.HARDWARE_FAILURE] * 4


def test_valve_status_served_in_clear():
    meter, proxy = lab()
    status = T.gbz_command(se.METERING, 0x00, 0, Z.READ_ATTRIBUTES,
                           Z.encode_read_attributes([0x0205, 0x0014]))
    out = proxy.receive_gbcs(T.command(codes.GCS33, 1000, status), T.NOW)
    component, frame = T.answer_frame(T.response(out))
    assert not component.encrypted and frame.frame_control == 0x08
    assert [r[1] for r in Z.decode_read_attributes_response(frame.payload)] == \
        [Z.HARDWARE_FAILURE] * 2
    proxy.receive_mirror(meter.mirror_report(T.NOW), T.NOW)
    out = proxy.receive_gbcs(T.command(codes.GCS33, 1001, status), T.NOW)
    records = Z.decode_read_attributes_response(T.answer_frame(T.response(out))[1].payload)
    assert records == [(0x0205, 0, 0x21, meter.battery_days()), (0x0014, 0, 0x30, 2)]


def test_commands_queue_and_are_delivered_in_order_on_wake():
    meter, proxy = lab()
    close = T.command(codes.GCS32, 1000, T.change_supply_payload(0))
    arm = T.command(codes.GCS39, 1001, T.change_supply_payload(1))
    assert proxy.receive_gbcs(close, T.NOW) == []
    assert proxy.receive_gbcs(arm, T.NOW) == []
    assert proxy.queue == [close, arm] and meter.valve == G.VALVE_OPEN
    upstream = F.wake_exchange(meter, proxy, T.NOW + 60)
    replies = [T.response([raw]) for raw in upstream]
    assert [r.originator_counter for r in replies] == [1000, 1001]
    statuses = [se.decode(se.METERING, True, se.SUPPLY_STATUS_RESPONSE,
                          T.answer_frame(r)[1].payload)["supply_status"] for r in replies]
    assert statuses == [se.SUPPLY_OFF, se.SUPPLY_OFF_ARMED]
    assert meter.valve == G.VALVE_ARMED and proxy.queue == [] and not meter.awake
    assert proxy.mirror["supply_status"] == se.SUPPLY_OFF_ARMED


def test_get_response_counts_what_remains():
    """Each GET-RESPONSE carries one command and the count still waiting behind it; the
    GSME's answer (PUT) to one lets the next GET have the next."""
    meter, proxy = lab()
    for i in range(3):
        proxy.receive_gbcs(T.command(codes.GCS32, 1000 + i, T.change_supply_payload(0)), T.NOW)
    remaining = []
    pending = meter.wake(T.NOW + 60)
    while pending:
        for reply in proxy.receive_tunnel(pending.pop(0), T.NOW + 60):
            kind, left, payload = tunnel.decode(reply)
            if kind == tunnel.GET_RESPONSE:
                remaining.append((left, len(payload) > 0))
            pending.extend(meter.receive_tunnel(reply, T.NOW + 60))
    assert remaining == [(2, True), (1, True), (0, True)]     # told 0 left, it stops asking
    assert proxy.queue == []
    kind, left, payload = tunnel.decode(proxy.receive_tunnel(tunnel.get(), T.NOW + 60)[0])
    assert (kind, left, payload) == (tunnel.GET_RESPONSE, 0, b"")


def test_full_queue_refuses_without_state_change():
    meter, proxy = lab(limit=2)
    for i in range(2):
        assert proxy.receive_gbcs(T.command(codes.GCS32, 1000 + i, T.change_supply_payload(0)),
                                  T.NOW) == []
    counters = dict(proxy.security.counters)
    out = proxy.receive_gbcs(T.command(codes.GCS32, 1002, T.change_supply_payload(0)), T.NOW)
    assert T.alert_codes(out) == [F.ALERT_QUEUE_FULL]
    assert envelope.parse(out[0]).originator == T.GSME_EUI
    assert len(proxy.queue) == 2 and proxy.security.counters == counters
    # once the GSME has taken its commands, the same command is accepted
    F.wake_exchange(meter, proxy, T.NOW + 60)
    assert proxy.receive_gbcs(T.command(codes.GCS32, 1002, T.change_supply_payload(0)),
                              T.NOW + 61) == []


def test_forged_and_replayed_commands_take_no_slot():
    _, proxy = lab()
    forged = proxy.receive_gbcs(T.command(codes.GCS32, 1000, T.change_supply_payload(0),
                                          signer="rogue-ds"), T.NOW)
    assert T.alert_codes(forged) == [codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE]
    unmacd = proxy.receive_gbcs(T.command(codes.GCS32, 1000, T.change_supply_payload(0),
                                          mac=False), T.NOW)
    assert T.alert_codes(unmacd) == [codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE]
    assert proxy.receive_gbcs(T.command(codes.GCS32, 1000, T.change_supply_payload(0)),
                              T.NOW) == []
    replay = proxy.receive_gbcs(T.command(codes.GCS32, 1000, T.change_supply_payload(0)),
                                T.NOW)
    assert T.alert_codes(replay) == [codes.ALERT_FAILED_AUTHENTICATION_OTHER]
    assert len(proxy.queue) == 1
    assert proxy.receive_gbcs(T.command(codes.GCS32, 1001, T.change_supply_payload(0),
                                        recipient=T.OTHER), T.NOW) == []


def test_top_up_through_the_queue_once():
    meter, proxy = lab()
    code = T.mint(6, 1250)
    proxy.receive_gbcs(T.command(codes.CS01B, 6 << 32, T.top_up_payload(code)), T.NOW)
    proxy.receive_gbcs(T.command(codes.CS01B, 7 << 32, T.top_up_payload(code)), T.NOW)
    before = meter.credit
    upstream = F.wake_exchange(meter, proxy, T.NOW + 60)
    results = []
    for raw in upstream:
        message = envelope.parse(raw)
        if message.cra_flag == envelope.CRA_RESPONSE:
            fields = se.decode(se.PREPAYMENT, True, se.CONSUMER_TOP_UP_RESPONSE,
                               T.answer_frame(T.response([raw]))[1].payload)
            results.append(fields["result_type"])
    assert results == [se.TOP_UP_ACCEPTED, se.TOP_UP_REJECTED_DUPLICATE]
    assert T.alert_codes(upstream) == [codes.ALERT_DUPLICATE_UTRN]
    assert meter.credit == before + 1250000 == proxy.mirror["credit"]


def test_put_from_another_device_is_dropped():
    meter, proxy = lab()
    reply = meter.receive_gbcs(T.command(codes.GCS13A, 1000, T.read_registers_payload()), T.NOW)
    proxy.receive_tunnel(tunnel.put(reply[0]), T.NOW)
    assert len(proxy.take_upstream()) == 1
    alien = T.command(codes.GCS13A, 1001, T.read_registers_payload())   # from the supplier
    proxy.receive_tunnel(tunnel.put(alien), T.NOW)
    proxy.receive_tunnel(b"\x07garbage", T.NOW)
    assert proxy.take_upstream() == []


def test_upstream_callback():
    meter, _ = lab()
    sent = []
    proxy = F.GasProxyFunction(T.GSME_EUI, gpf_security(), upstream=sent.append)
    proxy.receive_gbcs(T.command(codes.GCS32, 1000, T.change_supply_payload(0)), T.NOW)
    assert F.wake_exchange(meter, proxy, T.NOW) == []
    assert len(sent) == 1 and T.response(sent).originator_counter == 1000


def test_mirror_merges_and_restarts_after_a_gap():
    meter, proxy = lab()
    proxy.mirror_depth = 100
    proxy.receive_mirror(meter.mirror_report(T.NOW), T.NOW)
    proxy.receive_mirror(meter.mirror_report(T.NOW + 3600), T.NOW + 3600)
    assert proxy.mirror["hh"] == meter.hh[-100:]
    assert proxy.mirror["hh_start"] == meter.last_time - 100 * 1800
    lost = meter.mirror_report(T.NOW + 7200)           # never reaches the GPF
    assert len(lost["hh"]) == 2
    proxy.receive_mirror(meter.mirror_report(T.NOW + 9000), T.NOW + 9000)
    assert proxy.mirror["hh_start"] == meter.last_time - 1800
    assert proxy.mirror["summation"] == meter.summation


def test_alert_counters_stay_rising_across_gsme_and_gpf():
    meter, proxy = lab(limit=0)
    out = proxy.receive_gbcs(T.command(codes.GCS32, 1000, T.change_supply_payload(0)), T.NOW)
    gpf_counter = envelope.parse(out[0]).originator_counter
    meter.mirror_ack(proxy.receive_mirror(meter.mirror_report(T.NOW), T.NOW))
    first = meter.receive_gbcs(T.command(codes.GCS13A, 1, T.read_registers_payload()), T.NOW)
    meter_alerts = meter.receive_gbcs(T.command(codes.GCS13A, 1, T.read_registers_payload()),
                                      T.NOW)
    assert envelope.parse(meter_alerts[0]).originator_counter > gpf_counter
    assert envelope.parse(first[0]).cra_flag == envelope.CRA_RESPONSE


def test_state_round_trip():
    meter, proxy = lab()
    proxy.receive_mirror(meter.mirror_report(T.NOW), T.NOW)
    proxy.receive_gbcs(T.command(codes.GCS32, 1000, T.change_supply_payload(0)), T.NOW)
    saved = json.loads(json.dumps(proxy.state()))
    other = F.GasProxyFunction(T.GSME_EUI, gpf_security())
    other.load_state(saved)
    assert other.state() == proxy.state()
    upstream = F.wake_exchange(meter, other, T.NOW + 60)
    assert T.response(upstream).originator_counter == 1000
