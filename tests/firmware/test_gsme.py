# The GSME inside firmware/: gas model, registers, HH profile, valve, top-up, clock, the
# sleepy GET/GET-RESPONSE/PUT cycle and persistence. The crypto is a pure Python stand-in
# (toy Diffie-Hellman, hash-based signatures and GCM) so this runs under MicroPython too;
# tests/emulator/test_gsme_usecases.py runs the same flows with P-256 and AES-GCM.

import hashlib
import json
from binascii import unhexlify

from firmware.devices import gsme as G
from firmware.gbcs import asn1, codes, envelope, gbz, security, utrn
from firmware.gbcs.anchors import TrustAnchors
from firmware.gbcs.device_security import DeviceSecurity
from firmware.han import tunnel
from firmware.sim.clock import SteppedClock
from firmware.zcl import frame as Z
from firmware.zcl import se

_P = (1 << 127) - 1
_G = 3
GSME_EUI = unhexlify("00DB1234567890A1")
OTHER = unhexlify("00DB1234567890A0")
SUPPLIER = unhexlify("90B3D51F30010000")
ACB = unhexlify("90B3D51F30000002")
START = 473212800 + G.ZIGBEE_EPOCH - 10 * 86400    # 2014-12-20 00:00 UTC
NOW = START + 3 * 86400 + 600


class ToyKey:
    def __init__(self, secret):
        self.secret = secret
        self.public = pow(_G, secret, _P).to_bytes(64, "big")


class ToyCrypto:
    """Stand-in for the injected crypto (firmware/gbcs/security.py): same interface."""

    def sha256(self, data):
        return hashlib.sha256(data).digest()

    def ecdh(self, private_key, peer_xy):
        return pow(int.from_bytes(peer_xy, "big"), private_key.secret, _P).to_bytes(32, "big")

    def ecdsa_sign(self, private_key, data):
        return _signature(private_key.public, data)

    def ecdsa_verify(self, public_xy, data, signature):
        return signature == _signature(public_xy, data)

    def gmac(self, key, iv, aad):
        return hashlib.sha256(b"gmac" + key + iv + aad).digest()[:16]

    def _stream(self, key, iv, n):
        out = b""
        block = 0
        while len(out) < n:
            out += hashlib.sha256(key + iv + bytes((block,))).digest()
            block += 1
        return out[:n]

    def gcm_encrypt(self, key, iv, plaintext, aad):
        stream = self._stream(key, iv, len(plaintext))
        ciphertext = bytes(plaintext[i] ^ stream[i] for i in range(len(plaintext)))
        return ciphertext, hashlib.sha256(key + iv + aad + ciphertext).digest()[:16]

    def gcm_decrypt(self, key, iv, ciphertext, aad, tag):
        if hashlib.sha256(key + iv + aad + ciphertext).digest()[:len(tag)] != tag:
            raise ValueError("GCM tag does not verify")
        stream = self._stream(key, iv, len(ciphertext))
        return bytes(ciphertext[i] ^ stream[i] for i in range(len(ciphertext)))


def _signature(public, data):
    return hashlib.sha256(public + data).digest() + hashlib.sha256(data + public).digest()


CRYPTO = ToyCrypto()
KEYS = {}
for _n, _name in enumerate(("gsme-ds", "gsme-ka", "supplier-ds", "supplier-ka",
                            "supplier-pp-ka", "acb-ds", "acb-ka", "rogue-ds")):
    KEYS[_name] = ToyKey(1000003 + 7919 * _n)


def anchors():
    a = TrustAnchors()
    a.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER,
          ds_public=KEYS["supplier-ds"].public, ka_public=KEYS["supplier-ka"].public)
    a.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, SUPPLIER,
          ka_public=KEYS["supplier-pp-ka"].public)
    a.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB, ds_public=KEYS["acb-ds"].public,
          ka_public=KEYS["acb-ka"].public)
    return a


def gsme_security():
    return DeviceSecurity(GSME_EUI, KEYS["gsme-ds"], KEYS["gsme-ka"], CRYPTO, anchors())


def profile(wake=1800, depth=480):
    return {"clock": {"start": START}, "sleep": {"wake_interval": wake},
            "gas": {"hh_depth": depth, "annual_m3": 1100},
            "prepayment": {"mode": "credit", "initial_pence": 500}}


def make_gsme(wake=1800, depth=480, seed=7):
    clock = SteppedClock(START)
    meter = G.Gsme(profile(wake, depth), clock, seed, gsme_security())
    clock.set(NOW)
    meter.advance(NOW)
    return meter, clock


# -- commands as the DCC side sends them ---------------------------------------------------

def gbz_command(cluster, fc, tsn, command_id, payload):
    frame = Z.ZclFrame(fc, tsn, command_id, payload)
    return gbz.GbzPayload([gbz.GbzComponent(cluster, frame.encode())]).encode()


def read_registers_payload(ids=G.GCS13A_ATTRIBUTES):
    return gbz_command(se.METERING, 0x00, 0, Z.READ_ATTRIBUTES, Z.encode_read_attributes(ids))


def sampled_data_payload(earliest, count, sample_id=0):
    body = se.encode(se.METERING, False, se.GET_SAMPLED_DATA, {
        "sample_id": sample_id, "earliest_sample_time": G.zigbee_time(earliest),
        "sample_type": 0, "number_of_samples": count})
    return gbz_command(se.METERING, 0x01, 0, se.GET_SAMPLED_DATA, body)


def change_supply_payload(proposed, implementation=0):
    body = se.encode(se.METERING, False, se.CHANGE_SUPPLY, {
        "provider_id": 0, "issuer_event_id": 473385600, "request_date_time": 0,
        "implementation_date_time": implementation, "proposed_supply_status": proposed,
        "supply_control_bits": 1})
    return gbz_command(se.METERING, 0x01, 0, se.CHANGE_SUPPLY, body)


def top_up_payload(code):
    body = se.encode(se.PREPAYMENT, False, se.CONSUMER_TOP_UP,
                     {"originating_device": 0, "topup_code": code})
    return gbz_command(se.PREPAYMENT, 0x01, 0, se.CONSUMER_TOP_UP, body)


def set_time_payload(start, end):
    return asn1.sequence([asn1.generalized_time(asn1.generalized_time_text(start)),
                          asn1.generalized_time(asn1.generalized_time_text(end))])


def command(code, counter, payload, recipient=GSME_EUI, signer="supplier-ds", mac=True):
    message = envelope.GbcsMessage(envelope.CRA_COMMAND, counter, SUPPLIER, recipient, code,
                                   payload)
    if codes.is_critical(code):
        security.sign(CRYPTO, KEYS[signer], message)
    if mac:
        security.protect_mac(CRYPTO, CRYPTO.ecdh(KEYS["acb-ka"], KEYS["gsme-ka"].public),
                             message)
    return message.encode()


def mint(counter_hi, pence):
    shared = CRYPTO.ecdh(KEYS["supplier-pp-ka"], KEYS["gsme-ka"].public)
    return utrn.mint(CRYPTO, shared, SUPPLIER, GSME_EUI, counter_hi << 32, utrn.CLASS_PENCE,
                     pence).encode()


# -- reading the answers -------------------------------------------------------------------

def response(out, originator=GSME_EUI):
    assert len(out) >= 1
    reply = envelope.parse(out[0])
    assert reply.cra_flag == envelope.CRA_RESPONSE and reply.recipient == SUPPLIER
    assert reply.originator == originator
    if codes.is_critical(reply.message_code):
        assert security.verify_signature(CRYPTO, KEYS["gsme-ds"].public, reply)
        assert not reply.mac_protected
    else:
        shared = CRYPTO.ecdh(KEYS["supplier-ka"], KEYS["gsme-ka"].public)
        assert security.verify_mac(CRYPTO, shared, reply)
    return reply


def answer_frame(reply):
    """The one ZCL frame of a GBZ response, decrypted when it is encrypted."""
    payload = gbz.decode(reply.payload)
    assert len(payload.components) == 1
    component = payload.components[0]
    if not component.encrypted:
        return component, component.zcl_frame()
    shared = CRYPTO.ecdh(KEYS["supplier-ka"], KEYS["gsme-ka"].public)
    key = gbz.payload_key(CRYPTO, shared, reply.originator, reply.originator_counter,
                          reply.recipient)
    return component, Z.decode(gbz.decrypt_component(CRYPTO, key, reply.originator, component))


def alert_codes(out):
    found = []
    for raw in out:
        message = envelope.parse(raw)
        if message.cra_flag == envelope.CRA_ALERT:
            found.append(gbz.decode(message.payload).alert_code)
    return found


# -- the gas model -------------------------------------------------------------------------

def test_gas_model_is_seeded_and_integer():
    a = G.GasModel(1100, 400, seed=5)
    b = G.GasModel(1100, 400, seed=5)
    c = G.GasModel(1100, 400, seed=6)
    sa = [a.next_interval(START + i * 1800) for i in range(96)]
    sb = [b.next_interval(START + i * 1800) for i in range(96)]
    sc = [c.next_interval(START + i * 1800) for i in range(96)]
    assert sa == sb and sa != sc
    assert all(isinstance(v, int) and v >= 0 for v in sa)


def test_gas_model_follows_season_and_hour():
    model = G.GasModel(1100, 0)
    january = 1420070400            # 2015-01-01 00:00 UTC
    july = 1435708800               # 2015-07-01 00:00 UTC
    assert model.expected_dm3(january + 7 * 3600) > model.expected_dm3(july + 7 * 3600)
    assert model.expected_dm3(january + 7 * 3600) > model.expected_dm3(january + 3 * 3600)
    year = sum(model.expected_dm3(january + i * 1800) for i in range(365 * 48))
    assert 1000000 < year <= 1100000            # ~1100 m3 a year, integer truncation only


def test_registers_follow_the_profile():
    meter, _ = make_gsme()
    assert len(meter.hh) == (NOW - START) // 1800
    assert meter.summation == sum(meter.hh)
    assert meter.last_time == meter.hh_start + len(meter.hh) * 1800 <= NOW


def test_profile_depth_is_bounded():
    meter, clock = make_gsme(depth=48)
    later = NOW + 86400
    meter.advance(later)
    assert len(meter.hh) == 48
    assert meter.hh_start == meter.last_time - 48 * 1800


def test_prepayment_mode_debits_gas_used():
    clock = SteppedClock(START)
    spec = profile()
    spec["prepayment"]["mode"] = "prepayment"
    meter = G.Gsme(spec, clock, 7, gsme_security())
    meter.advance(START + 86400)
    cost = sum(meter.energy_wh(v) * G.DEFAULT_UNIT_PRICE // 1000 for v in meter.hh)
    assert cost > 0 and meter.credit == 500 * G.VALUE_PER_PENNY - cost


def test_profile_values_are_checked():
    for key, value in (("valve", {"initial": "ajar"}), ("prepayment", {"mode": "free"}),
                       ("sleep", {"wake_interval": 0})):
        spec = profile()
        spec[key] = value
        try:
            G.Gsme(spec, SteppedClock(START), 7, gsme_security())
        except ValueError:
            continue
        assert False, "accepted %s.%r" % (key, value)


def test_energy_conversion():
    meter, _ = make_gsme()
    # 1 m3 x 39.5 MJ/m3 x 1.02264 / 3.6 = 11.2206 kWh
    assert meter.energy_wh(1000) == 11220


# -- reads -----------------------------------------------------------------------------------

def test_read_registers_encrypted_for_the_requester():
    meter, _ = make_gsme()
    reply = response(meter.receive_gbcs(command(codes.GCS13A, 1000, read_registers_payload()),
                                        NOW))
    component, frame = answer_frame(reply)
    assert component.encrypted and component.cluster_id == se.METERING
    assert frame.frame_control == 0x18 and frame.command_id == Z.READ_ATTRIBUTES_RESPONSE
    records = Z.decode_read_attributes_response(frame.payload)
    assert records == [(0x0302, 0, 0x22, 1000), (0x0301, 0, 0x22, 1), (0x0300, 0, 0x30, 1),
                       (0x0000, 0, 0x25, meter.summation)]


def test_read_hh_profile():
    meter, _ = make_gsme()
    earliest = START + 86400
    reply = response(meter.receive_gbcs(command(codes.GCS17, 1000,
                                                sampled_data_payload(earliest, 97, 3)), NOW))
    _, frame = answer_frame(reply)
    assert frame.frame_control == 0x19 and frame.command_id == se.GET_SAMPLED_DATA_RESPONSE
    fields = se.decode(se.METERING, True, frame.command_id, frame.payload)
    index = (earliest - meter.hh_start) // 1800
    assert fields["sample_id"] == 3 and fields["sample_request_interval"] == 1800
    assert fields["sample_start_time"] == G.zigbee_time(earliest)
    assert fields["samples"] == meter.hh[index:index + 97]


def test_hh_profile_not_found():
    meter, _ = make_gsme()
    reply = response(meter.receive_gbcs(command(codes.GCS17, 1000,
                                                sampled_data_payload(NOW + 86400, 10)), NOW))
    _, frame = answer_frame(reply)
    assert frame.command_id == Z.DEFAULT_RESPONSE
    assert Z.decode_default_response(frame.payload) == (se.GET_SAMPLED_DATA, Z.NOT_FOUND)


# -- the valve -------------------------------------------------------------------------------

def test_valve_close_stops_gas_and_is_signed():
    meter, _ = make_gsme()
    reply = response(meter.receive_gbcs(command(codes.GCS32, 1000, change_supply_payload(0)),
                                        NOW))
    _, frame = answer_frame(reply)
    fields = se.decode(se.METERING, True, se.SUPPLY_STATUS_RESPONSE, frame.payload)
    assert frame.frame_control == 0x09 and fields["supply_status"] == se.SUPPLY_OFF
    assert fields["issuer_event_id"] == 473385600
    assert meter.valve == G.VALVE_CLOSED
    before = meter.summation
    meter.advance(NOW + 86400)
    assert meter.summation == before and meter.hh[-48:] == [0] * 48


def test_valve_arm_then_local_open():
    meter, _ = make_gsme()
    meter.receive_gbcs(command(codes.GCS32, 1000, change_supply_payload(0)), NOW)
    reply = response(meter.receive_gbcs(command(codes.GCS39, 1001, change_supply_payload(1)),
                                        NOW))
    _, frame = answer_frame(reply)
    assert se.decode(se.METERING, True, se.SUPPLY_STATUS_RESPONSE,
                     frame.payload)["supply_status"] == se.SUPPLY_OFF_ARMED
    assert meter.valve == G.VALVE_ARMED
    assert meter.open_valve_locally(NOW + 60)
    assert meter.valve == G.VALVE_OPEN
    assert not meter.open_valve_locally(NOW + 120)


def test_valve_refusals_change_nothing():
    meter, _ = make_gsme()
    # arming an open valve, a disable that proposes "armed", a future-dated disable
    cases = ((codes.GCS39, change_supply_payload(1), Z.FAILURE),
             (codes.GCS32, change_supply_payload(1), Z.INVALID_FIELD),
             (codes.GCS32, change_supply_payload(0, 500000000), Z.INVALID_FIELD))
    for i in range(len(cases)):
        code, payload, status = cases[i]
        reply = response(meter.receive_gbcs(command(code, 1000 + i, payload), NOW))
        _, frame = answer_frame(reply)
        assert frame.command_id == Z.DEFAULT_RESPONSE
        assert Z.decode_default_response(frame.payload) == (se.CHANGE_SUPPLY, status)
        assert meter.valve == G.VALVE_OPEN


def test_use_case_shape_is_enforced():
    meter, _ = make_gsme()
    # a MAC-only read (GCS13a) must not carry the critical valve command
    reply = response(meter.receive_gbcs(command(codes.GCS13A, 1000, change_supply_payload(0)),
                                        NOW))
    _, frame = answer_frame(reply)
    assert Z.decode_default_response(frame.payload) == (se.CHANGE_SUPPLY, Z.NOT_AUTHORIZED)
    assert meter.valve == G.VALVE_OPEN
    # and a read of an attribute GCS13a does not name is not that use case
    reply = response(meter.receive_gbcs(command(codes.GCS13A, 1001,
                                                read_registers_payload([0x0014])), NOW))
    assert answer_frame(reply)[1].command_id == Z.DEFAULT_RESPONSE


def test_unimplemented_use_case_is_answered_unsupported():
    meter, _ = make_gsme()
    calendar = gbz_command(0x0707, 0x01, 5, 0x00, b"")       # GCS07-style, not served
    reply = response(meter.receive_gbcs(command(codes.GCS07, 1000, calendar), NOW))
    _, frame = answer_frame(reply)
    assert frame.tsn == 5
    assert Z.decode_default_response(frame.payload) == (0x00, Z.UNSUP_CLUSTER_COMMAND)


# -- top-up ----------------------------------------------------------------------------------

def test_top_up_once_then_replay_refused():
    meter, _ = make_gsme()
    code = mint(6, 1250)
    before = meter.credit
    reply = response(meter.receive_gbcs(command(codes.CS01B, 6 << 32, top_up_payload(code)),
                                        NOW))
    _, frame = answer_frame(reply)
    fields = se.decode(se.PREPAYMENT, True, se.CONSUMER_TOP_UP_RESPONSE, frame.payload)
    assert fields["result_type"] == se.TOP_UP_ACCEPTED
    assert fields["top_up_value"] == 1250000 and meter.credit == before + 1250000
    assert fields["credit_remaining"] == meter.credit
    out = meter.receive_gbcs(command(codes.CS01B, 7 << 32, top_up_payload(code)), NOW)
    _, frame = answer_frame(response(out))
    fields = se.decode(se.PREPAYMENT, True, se.CONSUMER_TOP_UP_RESPONSE, frame.payload)
    assert fields["result_type"] == se.TOP_UP_REJECTED_DUPLICATE
    assert fields["top_up_value"] == -1 and fields["credit_remaining"] == -1
    assert alert_codes(out[1:]) == [codes.ALERT_DUPLICATE_UTRN]
    assert meter.credit == before + 1250000


def test_forged_utrn_refused():
    meter, _ = make_gsme()
    before = (meter.credit, meter.utrn_record.state())
    out = meter.receive_gbcs(command(codes.CS01B, 7 << 32,
                                     top_up_payload(b"12345678910121314156")), NOW)
    _, frame = answer_frame(response(out))
    fields = se.decode(se.PREPAYMENT, True, se.CONSUMER_TOP_UP_RESPONSE, frame.payload)
    assert fields["result_type"] == se.TOP_UP_REJECTED_INVALID
    assert alert_codes(out[1:]) == [codes.ALERT_UTRN_NOT_AUTHENTIC]
    assert (meter.credit, meter.utrn_record.state()) == before


# -- security refusals ------------------------------------------------------------------------

def test_refused_commands_change_nothing():
    meter, _ = make_gsme()
    meter.receive_gbcs(command(codes.GCS13A, 1000, read_registers_payload()), NOW)
    snapshot = json.dumps(meter.state())
    replay = meter.receive_gbcs(command(codes.GCS32, 1000, change_supply_payload(0)), NOW)
    assert alert_codes(replay) == [codes.ALERT_FAILED_AUTHENTICATION_OTHER]
    assert meter.receive_gbcs(command(codes.GCS32, 1001, change_supply_payload(0),
                                      recipient=OTHER), NOW) == []
    forged = meter.receive_gbcs(command(codes.GCS32, 1002, change_supply_payload(0),
                                        signer="rogue-ds"), NOW)
    assert alert_codes(forged) == [codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE]
    assert meter.valve == G.VALVE_OPEN
    state = meter.state()
    state["security"]["alert_counter"] = json.loads(snapshot)["security"]["alert_counter"]
    assert json.dumps(state) == snapshot


def test_malformed_gbz_raises_integrity_alert():
    meter, _ = make_gsme()
    out = meter.receive_gbcs(command(codes.GCS13A, 1000, b"\x01\x09\x01\x01\x07\x02\x00\x09"),
                             NOW)
    assert alert_codes(out) == [codes.ALERT_INTEGRITY_CHECK_FAILED]
    assert meter.receive_gbcs(b"\xdf\x09", NOW) == []
    assert meter.receive_gbcs(b"", NOW) == []


# -- the clock -------------------------------------------------------------------------------

def _set_time_answer(out):
    reply = response(out)
    body = asn1.Reader(reply.payload).enter()
    return body.generalized_time(), body.integer()


def test_set_clock_inside_and_outside_window():
    meter, _ = make_gsme()
    meter.clock_offset = 95               # the GSME's clock has drifted
    outside = set_time_payload(NOW + 3600, NOW + 7200)
    text, status = _set_time_answer(meter.receive_gbcs(command(codes.GCS28, 1000, outside),
                                                       NOW))
    assert status == G.TIME_NOT_ADJUSTED and text == asn1.generalized_time_text(NOW + 95)
    inside = set_time_payload(NOW - 1800, NOW + 1800)
    text, status = _set_time_answer(meter.receive_gbcs(command(codes.GCS28, 1001, inside),
                                                       NOW))
    assert status == G.TIME_RELIABLE and text == asn1.generalized_time_text(NOW)
    assert meter.time(NOW) == NOW


# -- sleeping and waking ---------------------------------------------------------------------

def test_sleeps_between_wakes_and_polls_until_nothing_remains():
    meter, _ = make_gsme(wake=900)
    read = command(codes.GCS13A, 1000, read_registers_payload())
    assert meter.receive_tunnel(tunnel.get_response(0, read), NOW) == []    # asleep
    assert meter.wake(NOW) == [tunnel.get()]
    assert meter.next_wake == NOW + 900 and not meter.wake_due(NOW + 899)
    out = meter.receive_tunnel(tunnel.get_response(1, read), NOW + 1)
    assert len(out) == 2 and out[1] == tunnel.get()
    kind, _, payload = tunnel.decode(out[0])
    assert kind == tunnel.PUT and response([payload]).message_code == codes.GCS13A
    assert meter.receive_tunnel(tunnel.get_response(0, b""), NOW + 2) == []
    assert not meter.awake
    assert meter.receive_tunnel(tunnel.get_response(0, read), NOW + 3) == []


def test_radio_window_closes():
    meter, _ = make_gsme()
    meter.wake(NOW)
    assert meter.receive_tunnel(tunnel.get_response(0, b""), NOW + G.DEFAULT_AWAKE_WINDOW + 1) == []
    assert not meter.awake


def test_battery_drains_with_wakes_and_time():
    meter, _ = make_gsme()
    days = meter.battery_days()
    used = meter.battery_used
    meter.wake(NOW)
    assert meter.battery_used > used
    meter.advance(NOW + 30 * 86400)
    assert meter.battery_days() < days


def test_mirror_report_is_incremental():
    meter, _ = make_gsme()
    first = meter.mirror_report(NOW)
    assert first["hh"] == meter.hh and first["hh_start"] == meter.hh_start
    assert first["summation"] == meter.summation
    second = meter.mirror_report(NOW + 3600)
    assert len(second["hh"]) == 2
    assert second["hh_start"] == first["hh_start"] + len(first["hh"]) * 1800
    meter.mirror_ack({"alert_counter": 40})
    assert meter.security.alert_counter == 40
    json.dumps(second)


# -- persistence -----------------------------------------------------------------------------

def test_state_round_trip():
    meter, clock = make_gsme()
    meter.receive_gbcs(command(codes.CS01B, 6 << 32, top_up_payload(mint(6, 300))), NOW)
    meter.receive_gbcs(command(codes.GCS32, 1000, change_supply_payload(0)), NOW)
    saved = json.loads(json.dumps(meter.state()))
    other = G.Gsme(profile(), clock, 7, gsme_security())
    other.load_state(saved)
    assert other.state() == meter.state()
    meter.advance(NOW + 86400)
    other.advance(NOW + 86400)
    assert other.state() == meter.state()
    # the replay record and counters came back too
    out = other.receive_gbcs(command(codes.GCS32, 1000, change_supply_payload(0)), NOW)
    assert alert_codes(out) == [codes.ALERT_FAILED_AUTHENTICATION_OTHER]
