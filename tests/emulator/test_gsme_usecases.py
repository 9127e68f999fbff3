"""GSME use cases with the real primitives: the DCC-side builders against RTDS 4.5.0, the
device's encrypted GBZ components against RTDS, then end to end on a test SMKI: a read
served by the GPF while the GSME sleeps, a valve command queued and delivered on wake, a
top-up once and its replay refused, and refusals that change nothing.

RTDS does not publish the GSME's KA private key; it publishes the supplier's. ECDH is
symmetric, so the supplier's private key with the GSME's public key agrees the secret the
GSME used.
"""

import calendar
import json
import pathlib

import pytest

from emulator.crypto import HostCrypto, KeyStore
from emulator.smki import TestSmki
from emulator.usecases import USE_CASE_BUILDERS, BuildContext, UseCaseError
from firmware.devices import gpf as F
from firmware.devices import gsme as G
from firmware.gbcs import codes, envelope, gbz, security, utrn
from firmware.gbcs.anchors import TrustAnchors
from firmware.gbcs.device_security import DeviceSecurity
from firmware.sim.clock import SteppedClock

VECTORS = pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs"
RTDS = VECTORS / "rtds-4.5.0"
KEYSTORE = KeyStore(VECTORS / "keystore")
CRYPTO = HostCrypto()
SUPPLIER = bytes.fromhex("90B3D51F30010000")
ACB = bytes.fromhex("90B3D51F30000002")
GSME_EUI = bytes.fromhex("00DB1234567890A1")
RTDS_NOW = calendar.timegm((2015, 1, 1, 0, 0, 0))


def _load(name):
    path = next(RTDS.glob("*/" + name + "_GBCS.HEX"))
    return envelope.parse(bytes.fromhex(path.read_text().strip()))


RTDS_COMMANDS = {
    "GCS13a": ("GCS13a_4.1.1_SUCCESS_UNRELIABLE_COMMAND", {}),
    "GCS17": ("GCS17_4.8.1_SUCCESS_COMMAND", {"from": calendar.timegm((2014, 12, 30, 0, 0, 0)),
                                               "count": 97}),
    "GCS32": ("GCS32_7.2_SUCCESS_COMMAND", {}),
    "GCS33": ("GCS33_7.4_SUCCESS_COMMAND", {}),
    "GCS39": ("GCS39_7.3_SUCCESS_COMMAND", {}),
    "CS01b": ("CS01b_2.2_SUCCESS_COMMAND", {"utrn": "73950067887105178605"}),
    "GCS28": ("GCS28_6.11_SUCCESS_COMMAND",
              {"validity_start": calendar.timegm((2014, 12, 31, 23, 30, 0)),
               "validity_end": calendar.timegm((2015, 1, 1, 0, 30, 0))}),
    "GCS28Commission": ("GCS28Commission_8.1.1_ERROR_COMMAND",
                        {"validity_start": calendar.timegm((2015, 1, 1, 1, 0, 0)),
                         "validity_end": calendar.timegm((2015, 1, 1, 2, 0, 0))}),
}


@pytest.mark.parametrize("name", sorted(RTDS_COMMANDS))
def test_builders_rebuild_rtds_commands(name):
    stem, params = RTDS_COMMANDS[name]
    message = _load(stem)
    ctx = BuildContext(message.originator_counter, message.originator, message.recipient,
                       now=RTDS_NOW)
    uc = USE_CASE_BUILDERS[name]
    assert uc.message_code == message.message_code
    assert uc.build(params, ctx) == message.payload


def _rtds_ctx(command):
    return BuildContext(command.originator_counter, command.originator, command.recipient,
                        crypto=CRYPTO, ka_private=KEYSTORE.private_key(command.originator, "ka"),
                        target_ka_public=KEYSTORE.public_key(command.recipient, "ka"))


def test_readers_open_rtds_responses():
    ctx = _rtds_ctx(_load("GCS13a_4.1.1_SUCCESS_UNRELIABLE_COMMAND"))
    read = USE_CASE_BUILDERS["GCS13a"].read_response(
        _load("GCS13a_4.1.1_SUCCESS_UNRELIABLE_RESPONSE").payload, ctx)
    assert read["ok"] and read["current_summation_delivered"] == 12345
    assert (read["unit_of_measure"], read["multiplier"], read["divisor"]) == (1, 1, 1000)
    error = USE_CASE_BUILDERS["GCS13a"].read_response(
        _load("GCS13a_4.1.1_ERROR_RESPONSE").payload, _rtds_ctx(_load("GCS13a_4.1.1_ERROR_COMMAND")))
    assert not error["ok"] and error["records"][0] == (0x0302, 0xC0, None)
    hh = USE_CASE_BUILDERS["GCS17"].read_response(
        _load("GCS17_4.8.1_SUCCESS_RESPONSE").payload, _rtds_ctx(_load("GCS17_4.8.1_SUCCESS_COMMAND")))
    assert hh["start"] == calendar.timegm((2014, 12, 30, 0, 0, 0)) and len(hh["samples"]) == 97
    assert hh["interval"] == 1800
    not_found = USE_CASE_BUILDERS["GCS17"].read_response(
        _load("GCS17_4.8.1_NOT_FOUND_RESPONSE").payload, ctx)
    assert not_found == {"ok": False, "status": 0x8B, "command_id": 0x08}
    top_up = USE_CASE_BUILDERS["CS01b"].read_response(
        _load("CS01b_2.2_SUCCESS_RESPONSE").payload, ctx)
    assert top_up["ok"] and top_up["top_up_value"] == 1250000
    assert top_up["credit_remaining"] == 25144000
    valve = USE_CASE_BUILDERS["GCS39"].read_response(
        _load("GCS39_7.3_SUCCESS_RESPONSE").payload, ctx)
    assert valve["ok"] and valve["supply_status"] == 1
    clock = USE_CASE_BUILDERS["GCS28"].read_response(_load("GCS28_6.11_ERROR_RESPONSE").payload,
                                                     ctx)
    assert clock == {"ok": False, "time_status": 2, "device_time": RTDS_NOW}


def test_tampered_encrypted_response_is_refused():
    ctx = _rtds_ctx(_load("GCS13a_4.1.1_SUCCESS_UNRELIABLE_COMMAND"))
    payload = bytearray(_load("GCS13a_4.1.1_SUCCESS_UNRELIABLE_RESPONSE").payload)
    payload[-1] ^= 1
    with pytest.raises(UseCaseError):
        USE_CASE_BUILDERS["GCS13a"].read_response(bytes(payload), ctx)
    with pytest.raises(UseCaseError):
        USE_CASE_BUILDERS["GCS13a"].read_response(b"\x01\x09\x01", ctx)


def test_device_rebuilds_rtds_gcs33_response():
    """Valve status and battery life (RTDS: 100 days, supply on) travel in clear."""
    command = _load("GCS33_7.4_SUCCESS_COMMAND")
    request = gbz.decode(command.payload).components[0]
    answer = G.read_answer({"summation": 0, "supply_status": 2, "battery_days": 100}, request,
                           request.zcl_frame(), encrypted=False)
    payload = gbz.GbzPayload([gbz.GbzComponent(answer.cluster_id, answer.frame.encode())])
    assert payload.encode() == _load("GCS33_7.4_SUCCESS_RESPONSE").payload
    read = USE_CASE_BUILDERS["GCS33"].read_response(payload.encode(), _rtds_ctx(command))
    assert read["ok"] and read["remaining_battery_life_days"] == 100
    assert read["supply_status"] == 2


def test_device_encryption_rebuilds_rtds_gcs13a_response():
    """The GSME's answer to the RTDS read, encrypted as the device does it, is RTDS's."""
    command = _load("GCS13a_4.1.1_SUCCESS_UNRELIABLE_COMMAND")
    rtds = _load("GCS13a_4.1.1_SUCCESS_UNRELIABLE_RESPONSE")
    request = gbz.decode(command.payload).components[0]
    answer = G.read_answer({"summation": 12345, "supply_status": 2}, request,
                           request.zcl_frame())
    shared = CRYPTO.ecdh(KEYSTORE.private_key(SUPPLIER, "ka"), KEYSTORE.public_key(GSME_EUI, "ka"))
    key = gbz.payload_key(CRYPTO, shared, GSME_EUI, command.originator_counter, SUPPLIER)
    component = gbz.encrypt_component(CRYPTO, key, GSME_EUI, answer.cluster_id,
                                      answer.frame.encode())
    assert gbz.GbzPayload([component]).encode() == rtds.payload


# -- end to end on a test SMKI ---------------------------------------------------------------

SMKI = TestSmki(seed=3)
SUPPLIER_KEYS = SMKI.organisation(SUPPLIER, codes.ROLE_SUPPLIER, "supplier")
ACB_KEYS = SMKI.organisation(ACB, codes.ROLE_ACB, "dcc")
GSME_KEYS = SMKI.device(GSME_EUI)
START = calendar.timegm((2026, 1, 10, 0, 0, 0))
NOW = START + 3 * 86400


def _anchors():
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER,
                ds_public=SUPPLIER_KEYS["ds"].public_xy, ka_public=SUPPLIER_KEYS["ka"].public_xy)
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, SUPPLIER,
                ka_public=SUPPLIER_KEYS["pp-ka"].public_xy)
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB, ds_public=ACB_KEYS["ds"].public_xy,
                ka_public=ACB_KEYS["ka"].public_xy)
    return anchors


def _security():
    return DeviceSecurity(GSME_EUI, GSME_KEYS["ds"].private_key, GSME_KEYS["ka"].private_key,
                          CRYPTO, _anchors())


def _premise():
    clock = SteppedClock(START)
    meter = G.Gsme({"clock": {"start": START}, "gas": {"hh_depth": 480}}, clock, 11, _security())
    clock.set(NOW)
    proxy = F.GasProxyFunction(GSME_EUI, _security())       # GSME-side credentials (gpf.py)
    F.wake_exchange(meter, proxy, NOW)                      # a first wake fills the mirror
    return meter, proxy


def _ctx(counter, now=NOW):
    return BuildContext(counter, SUPPLIER, GSME_EUI, now=now, crypto=CRYPTO,
                        ka_private=SUPPLIER_KEYS["ka"].private_key,
                        target_ka_public=GSME_KEYS["ka"].public_xy)


def _command(name, counter, params=None, now=NOW):
    uc = USE_CASE_BUILDERS[name]
    payload = uc.build(params or {}, _ctx(counter, now))
    message = envelope.GbcsMessage(envelope.CRA_COMMAND, counter, SUPPLIER, GSME_EUI,
                                   uc.message_code, payload)
    if uc.critical:
        security.sign(CRYPTO, SUPPLIER_KEYS["ds"].private_key, message)
    shared = CRYPTO.ecdh(ACB_KEYS["ka"].private_key, GSME_KEYS["ka"].public_xy)
    return security.protect_mac(CRYPTO, shared, message).encode()


def _verified(raw):
    """The supplier's check of an answer: from the GSME's EUI, signed or MAC'd by it."""
    reply = envelope.parse(raw)
    assert reply.originator == GSME_EUI and reply.recipient == SUPPLIER
    if codes.is_critical(reply.message_code) or reply.cra_flag == envelope.CRA_ALERT and \
            reply.signature is not None:
        assert security.verify_signature(CRYPTO, GSME_KEYS["ds"].public_xy, reply)
    else:
        shared = CRYPTO.ecdh(SUPPLIER_KEYS["ka"].private_key, GSME_KEYS["ka"].public_xy)
        assert security.verify_mac(CRYPTO, shared, reply)
    return reply


def _alert_codes(raws):
    return [gbz.decode(_verified(r).payload).alert_code for r in raws
            if envelope.parse(r).cra_flag == envelope.CRA_ALERT]


def test_read_served_by_the_gpf_while_the_gsme_sleeps():
    meter, proxy = _premise()
    assert not meter.awake
    later = NOW + 900                                        # the GSME sleeps on
    out = proxy.receive_gbcs(_command("GCS13a", 2000, now=later), later)
    reply = _verified(out[0])
    assert reply.cra_flag == envelope.CRA_RESPONSE and reply.originator_counter == 2000
    read = USE_CASE_BUILDERS["GCS13a"].read_response(reply.payload, _ctx(2000))
    assert read["ok"] and read["current_summation_delivered"] == proxy.mirror["summation"]
    assert read["current_summation_delivered"] == meter.summation
    hh = USE_CASE_BUILDERS["GCS17"].read_response(
        _verified(proxy.receive_gbcs(_command("GCS17", 2001, {"from": START + 86400,
                                                               "count": 48}), later)[0]).payload,
        _ctx(2001))
    index = (START + 86400 - meter.hh_start) // 1800
    assert hh["samples"] == meter.hh[index:index + 48] and hh["start"] == START + 86400
    valve = USE_CASE_BUILDERS["GCS33"].read_response(
        _verified(proxy.receive_gbcs(_command("GCS33", 2002), later)[0]).payload, _ctx(2002))
    assert valve["supply_status"] == 2 and valve["remaining_battery_life_days"] > 300
    assert not meter.awake and proxy.queue == []


def test_valve_command_queued_delivered_on_wake_answered_as_the_gsme():
    meter, proxy = _premise()
    assert proxy.receive_gbcs(_command("GCS32", 2000), NOW) == []
    assert len(proxy.queue) == 1 and meter.valve == G.VALVE_OPEN
    upstream = F.wake_exchange(meter, proxy, NOW + 1800)
    assert len(upstream) == 1
    reply = _verified(upstream[0])
    assert reply.signature is not None and not reply.mac_protected
    valve = USE_CASE_BUILDERS["GCS32"].read_response(reply.payload, _ctx(2000))
    assert valve["ok"] and valve["supply_status"] == 0
    assert meter.valve == G.VALVE_CLOSED and proxy.mirror["supply_status"] == 0
    # the GPF now reports the closed valve's flat consumption while the GSME sleeps
    before = meter.summation
    F.wake_exchange(meter, proxy, NOW + 5 * 3600)
    assert meter.summation == before == proxy.mirror["summation"]


def _mint(counter_hi, pence):
    shared = CRYPTO.ecdh(SUPPLIER_KEYS["pp-ka"].private_key, GSME_KEYS["ka"].public_xy)
    return utrn.mint(CRYPTO, shared, SUPPLIER, GSME_EUI, counter_hi << 32, utrn.CLASS_PENCE,
                     pence)


def test_top_up_once_and_replayed_utrn_refused_without_state_change():
    meter, proxy = _premise()
    code = _mint(9, 2000)
    before = meter.credit
    proxy.receive_gbcs(_command("CS01b", 9 << 32, {"utrn": code}), NOW)
    upstream = F.wake_exchange(meter, proxy, NOW + 60)
    top_up = USE_CASE_BUILDERS["CS01b"].read_response(_verified(upstream[0]).payload,
                                                      _ctx(9 << 32))
    assert top_up["ok"] and top_up["top_up_value"] == 2000000
    assert meter.credit == before + 2000000 == top_up["credit_remaining"]
    state = json.dumps({"credit": meter.credit, "record": meter.utrn_record.state(),
                        "valve": meter.valve, "summation": meter.summation})
    proxy.receive_gbcs(_command("CS01b", 10 << 32, {"utrn": code}), NOW + 120)
    upstream = F.wake_exchange(meter, proxy, NOW + 120)
    refused = USE_CASE_BUILDERS["CS01b"].read_response(_verified(upstream[0]).payload,
                                                       _ctx(10 << 32))
    assert not refused["ok"] and refused["result_type"] == 2
    assert _alert_codes(upstream[1:]) == [codes.ALERT_DUPLICATE_UTRN]
    assert json.dumps({"credit": meter.credit, "record": meter.utrn_record.state(),
                       "valve": meter.valve, "summation": meter.summation}) == state


def test_refused_commands_change_nothing_at_gpf_or_gsme():
    meter, proxy = _premise()
    proxy.receive_gbcs(_command("GCS13a", 3000), NOW)
    gsme_state = json.dumps(meter.state())
    gpf_counters = dict(proxy.security.counters)
    tampered = bytearray(_command("GCS32", 3001))
    tampered[-1] ^= 1                                        # the MAC
    replayed = _command("GCS39", 3000)                       # counter already used
    for raw in (bytes(tampered), replayed):
        out = proxy.receive_gbcs(raw, NOW)
        assert _alert_codes(out) in ([codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE],
                                     [codes.ALERT_FAILED_AUTHENTICATION_OTHER])
    assert proxy.queue == [] and proxy.security.counters == gpf_counters
    assert json.dumps(meter.state()) == gsme_state


# -- bad input never breaks the GSME or the GPF -----------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

_FUZZ_METER, _FUZZ_PROXY = _premise()
_VALID = [_command("GCS32", 5000), _command("GCS13a", 5001), _command("GCS17", 5002,
          {"from": START, "count": 4}), _command("CS01b", 30 << 32, {"utrn": _mint(30, 100)})]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_VALID), st.integers(0, 10 ** 6), st.integers(1, 255),
       st.sampled_from(["flip", "truncate", "extend"]))
def test_mangled_commands_change_nothing(raw, where, xor, how):
    data = bytearray(raw)
    at = where % len(data)
    if how == "flip":
        data[at] ^= xor
    elif how == "truncate":
        data = data[:at]
    else:
        data = data + bytes((xor,)) * (1 + at % 7)
    meter, proxy = _FUZZ_METER, _FUZZ_PROXY
    before = (json.dumps(meter.state()), json.dumps(proxy.state()["queue"]),
              json.dumps(proxy.security.counters))
    for device in (meter, proxy):
        out = device.receive_gbcs(bytes(data), NOW)
        for reply in out:
            assert envelope.parse(reply).cra_flag == envelope.CRA_ALERT
    after = (json.dumps(meter.state()), json.dumps(proxy.state()["queue"]),
             json.dumps(proxy.security.counters))
    # alert counters rise with each alert; nothing else may move
    strip = json.loads(before[0]), json.loads(after[0])
    for state in strip:
        state["security"]["alert_counter"] = 0
    assert strip[0] == strip[1] and before[1:] == after[1:]
