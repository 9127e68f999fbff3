# The ESME's GBCS port end to end inside firmware/: envelope, DeviceSecurity, the ACCESS
# request against the ESME's objects, the protected response. The crypto is a pure Python
# stand-in (toy Diffie-Hellman, hash-based signatures and GCM) so this runs under
# MicroPython too; tests/emulator/test_esme_usecases.py runs the same flows with P-256 and
# AES-GCM and the DCC-side builders.

import hashlib
import json
from binascii import unhexlify

from firmware.cosem import data_protection as DP
from firmware.cosem.base import DataAccessError
from firmware.cosem.disconnect import CONNECTED, DISCONNECTED, READY_FOR_RECONNECTION
from firmware.devices.esme import Esme
from firmware.devices import esme_gbcs as G
from firmware.dlms import access as A
from firmware.dlms import axdr
from firmware.dlms import cosem_datetime as cdt
from firmware.dlms import obis as O
from firmware.dlms import results as R
from firmware.dlms.apdu import decode_apdu
from firmware.gbcs import codes, envelope, security, utrn
from firmware.gbcs.anchors import TrustAnchors
from firmware.gbcs.device_security import DeviceSecurity
from firmware.sim.clock import SteppedClock

try:
    from tests.firmware.test_esme import START, tiny_profile
except ImportError:
    from test_esme import START, tiny_profile

_P = (1 << 127) - 1
_G = 3
DEVICE = unhexlify("00DB1234567890A0")
OTHER = unhexlify("00DB1234567890A1")
SUPPLIER = unhexlify("90B3D51F30010000")
ACB = unhexlify("90B3D51F30000002")
NOW = START + 2 * 86400 + 3600


class ToyKey:
    def __init__(self, secret):
        self.secret = secret
        self.public = pow(_G, secret, _P).to_bytes(64, "big")


class ToyCrypto:
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
for _n, _name in enumerate(("device-ds", "device-ka", "supplier-ds", "supplier-ka",
                            "supplier-pp-ka", "acb-ds", "acb-ka", "rogue-ds")):
    KEYS[_name] = ToyKey(1000003 + 7919 * _n)


def _device():
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER,
                ds_public=KEYS["supplier-ds"].public, ka_public=KEYS["supplier-ka"].public)
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, SUPPLIER,
                ka_public=KEYS["supplier-pp-ka"].public)
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB, ds_public=KEYS["acb-ds"].public,
                ka_public=KEYS["acb-ka"].public)
    sec = DeviceSecurity(DEVICE, KEYS["device-ds"], KEYS["device-ka"], CRYPTO, anchors)
    clock = SteppedClock(START)
    esme = Esme(tiny_profile(), clock, seed=3)
    clock.set(NOW)
    esme.advance(NOW)
    return G.EsmeGbcs(esme, sec, CRYPTO), esme, sec


def _command(code, counter, specs, data, signer="supplier-ds", invoke=None, recipient=DEVICE):
    if invoke is None:
        invoke = A.gbcs_long_invoke_id(counter)
    payload = A.AccessRequest(invoke, b"", specs, data).encode()
    return _envelope(code, counter, payload, signer, recipient)


def _envelope(code, counter, payload, signer="supplier-ds", recipient=DEVICE):
    message = envelope.GbcsMessage(envelope.CRA_COMMAND, counter, SUPPLIER, recipient, code,
                                   payload)
    if codes.is_critical(code):
        security.sign(CRYPTO, KEYS[signer], message)
    security.protect_mac(CRYPTO, CRYPTO.ecdh(KEYS["acb-ka"], KEYS["device-ka"].public), message)
    return message.encode()


def _response(out):
    assert len(out) >= 1
    reply = envelope.parse(out[0])
    assert reply.cra_flag == envelope.CRA_RESPONSE and reply.recipient == SUPPLIER
    if codes.is_critical(reply.message_code):
        assert security.verify_signature(CRYPTO, KEYS["device-ds"].public, reply)
    else:
        shared = CRYPTO.ecdh(KEYS["supplier-ka"], KEYS["device-ka"].public)
        assert security.verify_mac(CRYPTO, shared, reply)
    response = A.decode_response(reply.payload)
    assert response.long_invoke_id_and_priority == A.gbcs_long_invoke_id(reply.originator_counter)
    return reply, response


def _alert_code(raw):
    alert = envelope.parse(raw)
    assert alert.cra_flag == envelope.CRA_ALERT and alert.recipient == SUPPLIER
    assert security.verify_signature(CRYPTO, KEYS["device-ds"].public, alert)
    notification = decode_apdu(alert.payload)
    assert notification.long_invoke_id_and_priority == A.gbcs_long_invoke_id(
        alert.originator_counter)
    return notification.notification_body[1][0][1]


def _results(response):
    return [r.result for r in response.results]


def _state(gbcs, esme, sec):
    gb = esme.gbcs_objects
    return json.dumps([sec.state()["counters"], esme.supply_state,
                       esme.import_register.value[1], esme.clock(),
                       [c.amount for c in gb.credits], gb.token_gateway.record.accepted])


SCRIPTS = O.SUPPLY_SCRIPT_TABLE
SUPPLY_ACTION = A.RequestSpec.action(9, SCRIPTS, 1)
READ_SUPPLY = A.RequestSpec.get(70, O.DISCONNECT_CONTROL, 3)
NULL = (axdr.NULL_DATA, None)


def test_supply_commands_change_the_supply_and_answer_signed():
    gbcs, esme, _ = _device()
    assert esme.supply_state == CONNECTED
    for code, counter, script, state in ((codes.ECS43, 10, 52, DISCONNECTED),
                                         (codes.ECS44, 11, 54, READY_FOR_RECONNECTION),
                                         (codes.ECS42, 12, 51, CONNECTED)):
        out = gbcs.receive_gbcs(_command(code, counter, [SUPPLY_ACTION],
                                         [(axdr.LONG_UNSIGNED, script)]), NOW)
        reply, response = _response(out)
        assert reply.signature is not None and not reply.mac_protected
        assert _results(response) == [0] and esme.supply_state == state
    out = gbcs.receive_gbcs(_command(codes.ECS45, 13, [READ_SUPPLY], [NULL]), NOW)
    reply, response = _response(out)
    assert reply.mac_protected and response.data == [(axdr.ENUM, CONNECTED)]


def test_encrypted_register_read_opens_on_the_supplier_side():
    gbcs, esme, _ = _device()
    element = DP.object_list_element(1, G.GB_IMPORT_REGISTERS, 2)
    request = DP.get_request([element], 20, SUPPLIER, DEVICE)
    spec = A.RequestSpec.action(30, G.DP_REGISTERS, 1)
    reply, response = _response(gbcs.receive_gbcs(_command(codes.ECS17B, 20, [spec],
                                                           [request]), NOW))
    params, field = DP.parse_response(response.data[0])
    assert (params.originator, params.recipient, params.counter) == (DEVICE, SUPPLIER, 20)
    shared = CRYPTO.ecdh(KEYS["supplier-ka"], KEYS["device-ka"].public)
    key = security.derive_key(CRYPTO, shared, DEVICE, 4, 20, SUPPLIER)
    values = axdr.decode_all(DP.decrypt_field(CRYPTO, key, DEVICE, field))[1][0][1]
    assert values[0] == esme.import_register.value
    assert values[1] == (axdr.STRUCTURE, [(axdr.INTEGER, 0), (axdr.ENUM, 30)])
    assert values[3] == (axdr.STRUCTURE, [(axdr.INTEGER, 0), (axdr.ENUM, 32)])


def test_hh_profile_view_is_the_gb_compact_array_by_date():
    gbcs, esme, _ = _device()
    view = esme.gbcs_objects.hh_profile
    low, high = NOW - 3 * 3600, NOW - 3600
    selection = DP._restriction(DP.restriction_by_date(cdt.datetime_bytes(low),
                                                      cdt.datetime_bytes(high)))
    buffer = view.get(2, esme.context(), selection[0], selection[1])
    assert buffer[0] == axdr.COMPACT_ARRAY and buffer[1][0] == G.HH_DESCRIPTION
    rows = buffer[1][1]
    stamps = [r[1][0][1] + G.ZIGBEE_EPOCH for r in rows]
    assert stamps == [low + 1800 * i for i in range(5)]
    ring = esme.hh_profile.ring
    stored = {}
    for k in range(ring.count):
        stored[ring.time(k)] = axdr.decode_all(ring.entry(k))[1][1]
    assert [r[1][1] for r in rows] == [stored[t] for t in stamps]
    assert axdr.decode_all(axdr.encode(buffer)) == buffer      # the encoding is consistent


def test_a_request_of_another_use_cases_shape_is_denied_and_changes_nothing():
    gbcs, esme, sec = _device()
    before = _state(gbcs, esme, sec)
    # a MAC-only read (ECS45) carrying the disable action of ECS43
    out = gbcs.receive_gbcs(_command(codes.ECS45, 30, [SUPPLY_ACTION],
                                     [(axdr.LONG_UNSIGNED, 52)]), NOW)
    _, response = _response(out)
    assert _results(response) == [R.ACTION_READ_WRITE_DENIED]
    assert esme.supply_state == CONNECTED
    # ECS42 (enable) whose script id is the disable script
    out = gbcs.receive_gbcs(_command(codes.ECS42, 31, [SUPPLY_ACTION],
                                     [(axdr.LONG_UNSIGNED, 52)]), NOW)
    _, response = _response(out)
    assert _results(response) == [R.ACTION_OTHER_REASON] and esme.supply_state == CONNECTED
    after = json.loads(_state(gbcs, esme, sec))
    assert after[1:] == json.loads(before)[1:]          # only the counters moved


def test_reset_meter_balance_is_all_or_nothing():
    gbcs, esme, sec = _device()
    credits = esme.gbcs_objects.credits
    for credit, amount in zip(credits, (500, 200, 100)):
        credit.set_amount(amount)
    specs = [A.RequestSpec.action(112, name, 2) for name in G.CREDITS]
    bad = [(axdr.DOUBLE_LONG, 0), (axdr.LONG, 0), (axdr.DOUBLE_LONG, 0)]
    _, response = _response(gbcs.receive_gbcs(_command(codes.ECS04B, 40, specs, bad), NOW))
    assert _results(response) == [R.OTHER_REASON, R.ACTION_TYPE_UNMATCHED, R.OTHER_REASON]
    assert [c.amount for c in credits] == [500, 200, 100]
    good = [(axdr.DOUBLE_LONG, 0)] * 3
    reply, response = _response(gbcs.receive_gbcs(_command(codes.ECS04B, 41, specs, good), NOW))
    assert reply.signature is not None and _results(response) == [0, 0, 0]
    assert [c.amount for c in credits] == [0, 0, 0]


def test_top_up_once_then_duplicate_alert():
    gbcs, esme, _ = _device()
    shared = CRYPTO.ecdh(KEYS["supplier-pp-ka"], KEYS["device-ka"].public)
    token = utrn.mint(CRYPTO, shared, SUPPLIER, DEVICE, 3 << 32, utrn.CLASS_POUNDS, 10)
    spec = A.RequestSpec.action(115, G.TOKEN_GATEWAY, 1)
    out = gbcs.receive_gbcs(_command(codes.CS01A, 3 << 32, [spec],
                                     [(axdr.OCTET_STRING, token.encode())]), NOW)
    _, response = _response(out)
    assert _results(response) == [0] and len(out) == 1
    credit = esme.gbcs_objects.credits[0]
    assert credit.amount == 1000
    out = gbcs.receive_gbcs(_command(codes.CS01A, 4 << 32, [spec],
                                     [(axdr.OCTET_STRING, token.encode())]), NOW)
    _, response = _response(out)
    assert _results(response) == [R.ACTION_OTHER_REASON] and credit.amount == 1000
    assert len(out) == 2 and _alert_code(out[1]) == codes.ALERT_DUPLICATE_UTRN
    other = utrn.mint(CRYPTO, shared, SUPPLIER, OTHER, 5 << 32, utrn.CLASS_PENCE, 99)
    out = gbcs.receive_gbcs(_command(codes.CS01A, 5 << 32, [spec],
                                     [(axdr.OCTET_STRING, other.encode())]), NOW)
    assert _alert_code(out[1]) == codes.ALERT_UTRN_NOT_AUTHENTIC and credit.amount == 1000


def _clock_command(counter, start, end):
    clock = O.CLOCK
    specs = [A.RequestSpec.set(8, clock, 9), A.RequestSpec.action(8, clock, 5),
             A.RequestSpec.action(8, clock, 4), A.RequestSpec.get(8, clock, 2),
             A.RequestSpec.get(8, clock, 4)]
    data = [(axdr.ENUM, 5), (axdr.STRUCTURE, [(axdr.OCTET_STRING, cdt.UNSPECIFIED_DATETIME),
                                              (axdr.OCTET_STRING, cdt.datetime_bytes(start)),
                                              (axdr.OCTET_STRING, cdt.datetime_bytes(end))]),
            (axdr.INTEGER, 0), NULL, NULL]
    return _command(codes.ECS70, counter, specs, data)


def test_set_clock_adopts_the_window_midpoint_only_when_outside_it():
    gbcs, esme, _ = _device()
    _, response = _response(gbcs.receive_gbcs(_clock_command(50, NOW - 50, NOW + 10), NOW))
    assert _results(response) == [0, 0, 0, 0, 0] and esme.clock() == NOW
    assert response.data[3] == (axdr.OCTET_STRING, cdt.datetime_bytes(NOW))
    assert esme.clock_object.clock_base == 5
    target = NOW + 7200
    _, response = _response(gbcs.receive_gbcs(_clock_command(51, target - 30, target + 30),
                                              NOW))
    assert esme.clock() == target
    assert cdt.datetime_seconds(response.data[3][1]) == target


def test_malformed_authentic_payloads_raise_the_integrity_alert():
    gbcs, esme, sec = _device()
    out = gbcs.receive_gbcs(_envelope(codes.ECS45, 60, b"\xd9\x20\x00"), NOW)
    assert len(out) == 1 and _alert_code(out[0]) == codes.ALERT_INTEGRITY_CHECK_FAILED
    # an ACCESS request whose long-invoke-id is not the counter's
    out = gbcs.receive_gbcs(_command(codes.ECS45, 61, [READ_SUPPLY], [NULL], invoke=0x2000003C),
                            NOW)
    assert _alert_code(out[0]) == codes.ALERT_INTEGRITY_CHECK_FAILED
    assert sec.last_counter(SUPPLIER) == 61 and esme.supply_state == CONNECTED


def test_refused_envelopes_change_nothing():
    gbcs, esme, sec = _device()
    gbcs.receive_gbcs(_command(codes.ECS45, 70, [READ_SUPPLY], [NULL]), NOW)
    before = _state(gbcs, esme, sec)
    disable = _command(codes.ECS43, 71, [SUPPLY_ACTION], [(axdr.LONG_UNSIGNED, 52)],
                       signer="rogue-ds")
    stale = _command(codes.ECS43, 70, [SUPPLY_ACTION], [(axdr.LONG_UNSIGNED, 52)])
    tampered = bytearray(_command(codes.ECS43, 72, [SUPPLY_ACTION],
                                  [(axdr.LONG_UNSIGNED, 52)]))
    tampered[-20] ^= 0x01               # inside the signature: the MAC no longer holds
    cases = [(disable, codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE),
             (stale, codes.ALERT_FAILED_AUTHENTICATION_OTHER),
             (bytes(tampered), codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE)]
    for data, alert in cases:
        out = gbcs.receive_gbcs(data, NOW)
        assert len(out) == 1 and _alert_code(out[0]) == alert
        assert _state(gbcs, esme, sec) == before
    silent = [_command(codes.ECS43, 73, [SUPPLY_ACTION], [(axdr.LONG_UNSIGNED, 52)],
                       recipient=OTHER),
              b"", b"\xdd", stale[:40], stale[:7] + b"\x82\xff\xff" + stale[10:]]
    for data in silent:
        assert gbcs.receive_gbcs(data, NOW) == []
        assert _state(gbcs, esme, sec) == before


def test_the_port_never_raises_on_mangled_input():
    gbcs, esme, sec = _device()
    base = _command(codes.ECS43, 80, [SUPPLY_ACTION], [(axdr.LONG_UNSIGNED, 52)])
    for i in range(0, len(base), 3):
        for flip in (0x01, 0x80, 0xFF):
            mangled = bytearray(base)
            mangled[i] ^= flip
            out = gbcs.receive_gbcs(bytes(mangled), NOW)
            assert isinstance(out, list)
    assert esme.supply_state == CONNECTED
    assert sec.last_counter(SUPPLIER) == -1


def test_daily_log_view_layout_and_selection_by_entry():
    gbcs, esme, _ = _device()
    view = esme.gbcs_objects.daily_log
    everything = view.get(2, esme.context())
    assert everything[1][0] == G.DAILY_DESCRIPTION
    rows = everything[1][1]
    ring = esme.daily_log.ring
    assert len(rows) == ring.count == 2
    last = axdr.decode_all(ring.entry(1))[1]
    row = rows[1][1]
    assert row[0][1] + G.ZIGBEE_EPOCH == ring.time(1)
    assert row[1] == last[1]
    assert row[2][1][:4] == last[2:6] and len(row[2][1]) == 48
    assert row[2][1][4:] == [(axdr.DOUBLE_LONG_UNSIGNED, 0)] * 44
    assert [len(b[1]) for b in row[3:]] == [8, 8, 8, 8]
    by_entry = (axdr.STRUCTURE, [(axdr.DOUBLE_LONG_UNSIGNED, 2), (axdr.DOUBLE_LONG_UNSIGNED, 0),
                                 (axdr.LONG_UNSIGNED, 1), (axdr.LONG_UNSIGNED, 0)])
    assert view.get(2, esme.context(), 2, by_entry)[1][1] == [rows[1]]
    for bad in ((axdr.ARRAY, []), (axdr.STRUCTURE, [(axdr.UNSIGNED, 1)] * 4)):
        for selector in (1, 2):
            try:
                view.get(2, esme.context(), selector, bad)
            except DataAccessError as e:
                assert e.code == R.SCOPE_OF_ACCESS_VIOLATED
                continue
            raise AssertionError("malformed selection accepted")


def test_credit_and_utrn_record_survive_a_restart():
    gbcs, esme, sec = _device()
    shared = CRYPTO.ecdh(KEYS["supplier-pp-ka"], KEYS["device-ka"].public)
    token = utrn.mint(CRYPTO, shared, SUPPLIER, DEVICE, 3 << 32, utrn.CLASS_PENCE, 700)
    spec = A.RequestSpec.action(115, G.TOKEN_GATEWAY, 1)
    command = _command(codes.CS01A, 3 << 32, [spec], [(axdr.OCTET_STRING, token.encode())])
    gbcs.receive_gbcs(command, NOW)
    saved = json.loads(json.dumps([esme.save_state(), sec.state()]))
    again, esme2, sec2 = _device()
    esme2.restore_state(saved[0])
    sec2.load_state(saved[1])
    assert esme2.gbcs_objects.credits[0].amount == 700
    assert esme2.gbcs_objects.token_gateway.record.accepted == [3]
    replay = _command(codes.CS01A, 4 << 32, [spec], [(axdr.OCTET_STRING, token.encode())])
    out = again.receive_gbcs(replay, NOW)
    assert _alert_code(out[1]) == codes.ALERT_DUPLICATE_UTRN
    assert esme2.gbcs_objects.credits[0].amount == 700
