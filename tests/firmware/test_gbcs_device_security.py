# Device-side GBCS security (GBCS 4.3, 6.2) against a pure-Python stand-in crypto, so it
# runs under MicroPython too. The stand-in keeps the properties the checks rely on: the
# agreed secret is symmetric (modular Diffie-Hellman, not P-256), a signature verifies only
# with the public key of the signer, the MAC depends on every byte of key, IV and AAD. The
# real primitives are exercised in tests/emulator/test_device_security.py.

import hashlib
import json
from binascii import unhexlify

from firmware.gbcs import codes, envelope, security
from firmware.gbcs.anchors import TrustAnchors
from firmware.gbcs.device_security import (
    ALERT_COUNTER, BAD_MAC, BAD_SIGNATURE, NO_MAC, NO_SIGNATURE, NOT_A_COMMAND, NOT_FOR_ME,
    ROLE_NOT_ELIGIBLE, STALE_COUNTER, UNKNOWN_ORIGINATOR, UNKNOWN_USE_CASE, WRONG_USE_CASE,
    DeviceSecurity, GbcsRefusal)

_P = (1 << 127) - 1          # a Mersenne prime: a toy Diffie-Hellman group
_G = 3

DEVICE = unhexlify("00DB1234567890A0")
OTHER_DEVICE = unhexlify("00DB1234567890A1")
SUPPLIER = unhexlify("90B3D51F30010000")
NETWORK_OPERATOR = unhexlify("90B3D51F30020000")
ACB = unhexlify("90B3D51F30000002")
STRANGER = unhexlify("90B3D51F300000FF")
DATE_TIME = unhexlify("07E90B17FF0C000000000000")


class ToyKey:
    def __init__(self, secret):
        self.secret = secret
        self.public = pow(_G, secret, _P).to_bytes(64, "big")


class ToyCrypto:
    def __init__(self):
        self.calls = []

    def sha256(self, data):
        return hashlib.sha256(data).digest()

    def ecdh(self, private_key, peer_xy):
        self.calls.append("ecdh")
        shared = pow(int.from_bytes(peer_xy, "big"), private_key.secret, _P)
        return shared.to_bytes(32, "big")

    def ecdsa_sign(self, private_key, data):
        self.calls.append("sign")
        return _toy_signature(private_key.public, data)

    def ecdsa_verify(self, public_xy, data, signature):
        self.calls.append("verify")
        return signature == _toy_signature(public_xy, data)

    def gmac(self, key, iv, aad):
        self.calls.append("gmac")
        return hashlib.sha256(b"gmac" + key + iv + aad).digest()[:16]


def _toy_signature(public, data):
    return hashlib.sha256(public + data).digest() + hashlib.sha256(data + public).digest()


KEYS = {}
for _n, _name in enumerate(("device-ds", "device-ka", "supplier-ds", "supplier-ka",
                            "no-ds", "no-ka", "acb-ka", "acb-ds", "rogue-ds")):
    KEYS[_name] = ToyKey(1000003 + 7919 * _n)


def _anchors():
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER,
                ds_public=KEYS["supplier-ds"].public, ka_public=KEYS["supplier-ka"].public)
    anchors.set(codes.ROLE_NETWORK_OPERATOR, codes.CELL_MANAGEMENT, NETWORK_OPERATOR,
                ds_public=KEYS["no-ds"].public, ka_public=KEYS["no-ka"].public)
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB, ds_public=KEYS["acb-ds"].public,
                ka_public=KEYS["acb-ka"].public)
    return anchors


def _device(crypto=None, counters=None):
    return DeviceSecurity(DEVICE, KEYS["device-ds"], KEYS["device-ka"],
                          crypto or ToyCrypto(), _anchors(), counters)


def _command(code, counter, originator=SUPPLIER, recipient=DEVICE, signer="supplier-ds",
             payload=b"\xd9\x20\x00\x00\x01\x01\x02\x03", mac=True, crypto=None):
    """A command as the head-end and the DCC (ACB) would build it, parsed back."""
    crypto = crypto or ToyCrypto()
    message = envelope.GbcsMessage(envelope.CRA_COMMAND, counter, originator, recipient, code,
                                   payload)
    if signer is not None:
        security.sign(crypto, KEYS[signer], message)
    if mac:
        shared = crypto.ecdh(KEYS["acb-ka"], KEYS["device-ka"].public)
        security.protect_mac(crypto, shared, message)
    return envelope.parse(message.encode())


def _refusal(sec, message, use_case=None):
    before = json.dumps(sec.state())
    try:
        sec.accept_command(message, use_case)
    except GbcsRefusal as refusal:
        assert json.dumps(sec.state()) == before, "a refused command changed state"
        return refusal
    raise AssertionError("command was accepted")


# -- acceptance ---------------------------------------------------------------------------

def test_accepts_a_non_critical_command_and_records_its_counter():
    sec = _device()
    party = sec.accept_command(_command(codes.ECS17B, 0x100, signer=None), "ECS17b")
    assert party.role == codes.ROLE_SUPPLIER
    assert party.eui == SUPPLIER
    assert sec.last_counter(SUPPLIER) == 0x100


def test_accepts_a_critical_command_signed_by_the_supplier():
    sec = _device()
    party = sec.accept_command(_command(codes.ECS42, 0x200), "ECS42")
    assert party.role == codes.ROLE_SUPPLIER
    assert sec.last_counter(SUPPLIER) == 0x200


def test_use_case_may_be_a_code_or_taken_from_the_message():
    sec = _device()
    sec.accept_command(_command(codes.ECS42, 1), codes.ECS42)
    sec.accept_command(_command(codes.ECS42, 2))
    assert sec.last_counter(SUPPLIER) == 2


def test_counters_are_per_originator():
    sec = _device()
    sec.accept_command(_command(codes.ECS17B, 500, signer=None), "ECS17b")
    sec.accept_command(_command(codes.ECS17B, 7, originator=NETWORK_OPERATOR, signer=None),
                       "ECS17b")
    assert sec.last_counter(SUPPLIER) == 500
    assert sec.last_counter(NETWORK_OPERATOR) == 7


def test_acb_replacing_its_own_credentials_is_authorised_by_the_mac():
    sec = _device()
    message = _command(codes.CS02B_ACB_BY_ACB, 1300, originator=ACB, signer=None)
    assert sec.accept_command(message, "CS02bACBByACB").role == codes.ROLE_ACB


# -- refusals: each the right reason and alert, and no state change -------------------------

def test_replayed_counter_is_refused():
    sec = _device()
    sec.accept_command(_command(codes.ECS42, 10), "ECS42")
    refusal = _refusal(sec, _command(codes.ECS42, 10), "ECS42")
    assert refusal.reason == STALE_COUNTER
    assert refusal.alert_code == codes.ALERT_FAILED_AUTHENTICATION_OTHER


def test_lower_counter_is_refused():
    sec = _device(counters={"90b3d51f30010000": 10})
    refusal = _refusal(sec, _command(codes.ECS17B, 9, signer=None), "ECS17b")
    assert refusal.reason == STALE_COUNTER
    assert sec.last_counter(SUPPLIER) == 10


def test_wrong_recipient_is_silence_and_costs_no_crypto():
    crypto = ToyCrypto()
    sec = _device(crypto)
    refusal = _refusal(sec, _command(codes.ECS42, 1, recipient=OTHER_DEVICE), "ECS42")
    assert refusal.reason == NOT_FOR_ME
    assert refusal.alert_code is None
    assert crypto.calls == []


def test_tampered_payload_breaks_the_mac_of_a_non_critical_command():
    message = _command(codes.ECS17B, 3, signer=None)
    message.payload = message.payload[:-1] + b"\x04"
    refusal = _refusal(_device(), message, "ECS17b")
    assert refusal.reason == BAD_MAC
    assert refusal.alert_code == codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE


def test_tampered_payload_breaks_the_signature_of_a_critical_command():
    message = _command(codes.ECS43, 3)
    message.payload = message.payload[:-1] + b"\x04"
    refusal = _refusal(_device(), message, "ECS43")
    assert refusal.reason == BAD_SIGNATURE
    assert refusal.alert_code == codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE


def test_tampered_mac_is_refused():
    message = _command(codes.ECS42, 3)
    message.mac = bytes((message.mac[0] ^ 1,)) + message.mac[1:]
    assert _refusal(_device(), message, "ECS42").reason == BAD_MAC


def test_mac_under_another_acb_key_is_refused():
    crypto = ToyCrypto()
    message = envelope.GbcsMessage(envelope.CRA_COMMAND, 4, SUPPLIER, DEVICE, codes.ECS17B,
                                   b"\xd9\x00")
    security.protect_mac(crypto, crypto.ecdh(KEYS["rogue-ds"], KEYS["device-ka"].public),
                         message)
    assert _refusal(_device(), envelope.parse(message.encode()), "ECS17b").reason == BAD_MAC


def test_signature_by_a_key_not_in_the_anchor_is_refused():
    refusal = _refusal(_device(), _command(codes.ECS42, 5, signer="rogue-ds"), "ECS42")
    assert refusal.reason == BAD_SIGNATURE


def test_critical_command_without_signature_is_refused():
    refusal = _refusal(_device(), _command(codes.ECS42, 5, signer=None), "ECS42")
    assert refusal.reason == NO_SIGNATURE


def test_command_without_mac_is_refused():
    refusal = _refusal(_device(), _command(codes.ECS42, 5, mac=False), "ECS42")
    assert refusal.reason == NO_MAC


def test_role_not_eligible_is_refused_with_source_not_authorised():
    # a network operator may read registers but not enable supply
    message = _command(codes.ECS42, 5, originator=NETWORK_OPERATOR, signer="no-ds")
    refusal = _refusal(_device(), message, "ECS42")
    assert refusal.reason == ROLE_NOT_ELIGIBLE
    assert refusal.alert_code == codes.ALERT_SOURCE_NOT_AUTHORISED


def test_unknown_originator_is_refused_with_source_not_authorised():
    refusal = _refusal(_device(), _command(codes.ECS17B, 5, originator=STRANGER, signer=None),
                       "ECS17b")
    assert refusal.reason == UNKNOWN_ORIGINATOR
    assert refusal.alert_code == codes.ALERT_SOURCE_NOT_AUTHORISED


def test_use_case_must_match_the_message_code():
    sec = _device()
    assert _refusal(sec, _command(codes.ECS42, 5), "ECS43").reason == WRONG_USE_CASE
    assert _refusal(sec, _command(codes.ECS42, 5), "NoSuchUseCase").reason == UNKNOWN_USE_CASE
    assert _refusal(sec, _command(0x7FFF, 5)).reason == UNKNOWN_USE_CASE


def test_a_response_is_not_a_command():
    sec = _device()
    reply = envelope.parse(sec.respond(_command(codes.ECS17B, 9, signer=None), b"\xda",
                                       DATE_TIME))
    reply.recipient = DEVICE
    assert _refusal(sec, reply).reason == NOT_A_COMMAND


def test_checks_run_in_the_contract_order():
    crypto = ToyCrypto()
    sec = _device(crypto, counters={"90b3d51f30020000": 50})
    # ineligible role and stale counter: the role is checked first
    message = _command(codes.ECS42, 1, originator=NETWORK_OPERATOR, signer="no-ds")
    assert _refusal(sec, message, "ECS42").reason == ROLE_NOT_ELIGIBLE
    # stale counter and bad signature: the counter is checked before any crypto
    crypto.calls = []
    message = _command(codes.ECS17B, 50, originator=NETWORK_OPERATOR, signer=None)
    message.mac = b"\x00" * 12
    assert _refusal(sec, message, "ECS17b").reason == STALE_COUNTER
    assert crypto.calls == []
    # bad signature and bad MAC: the signature is checked first
    message = _command(codes.ECS42, 60, signer="rogue-ds")
    message.mac = b"\x00" * 12
    assert _refusal(sec, message, "ECS42").reason == BAD_SIGNATURE


def test_a_refused_counter_is_not_consumed():
    sec = _device()
    good = _command(codes.ECS17B, 77, signer=None)
    bad = _command(codes.ECS17B, 77, signer=None)
    bad.mac = b"\xff" * 12
    _refusal(sec, bad, "ECS17b")
    sec.accept_command(good, "ECS17b")
    assert sec.last_counter(SUPPLIER) == 77


def test_garbage_is_a_refusal_not_a_crash():
    sec = _device()
    message = _command(codes.ECS17B, 5, signer=None)
    message.originator = None
    refusal = _refusal(sec, message, "ECS17b")
    assert refusal.alert_code == codes.ALERT_INTEGRITY_CHECK_FAILED
    try:
        sec.respond(message, None, DATE_TIME)
    except GbcsRefusal:
        pass
    else:
        raise AssertionError("respond accepted garbage")


# -- responses and alerts -------------------------------------------------------------------

def test_non_critical_response_is_mac_only_with_the_command_counter():
    crypto = ToyCrypto()
    sec = _device(crypto)
    command = _command(codes.ECS17B, 0x1234, signer=None)
    sec.accept_command(command, "ECS17b")
    reply = envelope.parse(sec.respond(command, b"\xda\x20\x00\x12\x34", DATE_TIME))
    assert reply.cra_flag == envelope.CRA_RESPONSE
    assert reply.originator_counter == 0x1234
    assert reply.originator == DEVICE and reply.recipient == SUPPLIER
    assert reply.message_code == codes.ECS17B
    assert reply.date_time == DATE_TIME
    assert reply.signature is None and reply.mac_protected
    # the supplier checks it with its KA private key and the device's KA public key
    shared = crypto.ecdh(KEYS["supplier-ka"], KEYS["device-ka"].public)
    assert security.verify_mac(crypto, shared, reply)


def test_critical_response_is_signed_only():
    crypto = ToyCrypto()
    sec = _device(crypto)
    command = _command(codes.ECS42, 0x2000)
    sec.accept_command(command, "ECS42")
    reply = envelope.parse(sec.respond(command, b"\xda\x20\x00\x20\x00", DATE_TIME))
    assert not reply.mac_protected
    assert security.verify_signature(crypto, KEYS["device-ds"].public, reply)
    assert not security.verify_signature(crypto, KEYS["supplier-ds"].public, reply)


def test_response_to_the_acb_keeps_the_supplementary_remote_party():
    crypto = ToyCrypto()
    sec = _device(crypto)
    message = envelope.GbcsMessage(envelope.CRA_COMMAND, 1302, ACB, DEVICE, codes.ECS17B,
                                   b"\xd9\x00", supplementary_remote_party=SUPPLIER,
                                   supplementary_remote_counter=1002)
    security.protect_mac(crypto, crypto.ecdh(KEYS["acb-ka"], KEYS["device-ka"].public),
                         message)
    command = envelope.parse(message.encode())
    sec.accept_command(command, "ECS17b")
    reply = envelope.parse(sec.respond(command, b"\xda\x00", DATE_TIME))
    assert reply.recipient == ACB
    assert reply.supplementary_remote_party == SUPPLIER
    assert reply.supplementary_remote_counter == 1002
    assert security.verify_mac(crypto, crypto.ecdh(KEYS["acb-ka"], KEYS["device-ka"].public),
                               reply)


def test_response_to_a_party_without_ka_anchor_is_refused():
    sec = _device()
    command = _command(codes.ECS17B, 1, originator=STRANGER, signer=None)
    try:
        sec.respond(command, b"\xda", DATE_TIME)
    except GbcsRefusal as refusal:
        assert refusal.alert_code is None
    else:
        raise AssertionError("no KA anchor for the recipient, yet a MAC'd response")


def test_critical_alert_is_signed_and_uses_the_device_counter():
    crypto = ToyCrypto()
    sec = _device(crypto)
    assert sec.next_alert_counter() == 1
    alert = envelope.parse(sec.alert(codes.ALERT_SOURCE_NOT_AUTHORISED, b"\x0f\x20", SUPPLIER))
    assert alert.cra_flag == envelope.CRA_ALERT
    assert alert.message_code == codes.GENERIC_CRITICAL_ALERT
    assert alert.originator_counter == 1
    assert not alert.mac_protected
    assert security.verify_signature(crypto, KEYS["device-ds"].public, alert)
    second = envelope.parse(sec.alert(codes.ALERT_SOURCE_NOT_AUTHORISED, b"\x0f", SUPPLIER))
    assert second.originator_counter == 2


def test_non_critical_alert_is_mac_only():
    crypto = ToyCrypto()
    sec = _device(crypto)
    alert = envelope.parse(sec.alert(codes.ALERT_SMART_METER_INTEGRITY_WARNING, b"\x0f",
                                     SUPPLIER, counter=2000))
    assert alert.message_code == codes.GENERIC_NON_CRITICAL_ALERT
    assert alert.originator_counter == 2000
    assert alert.signature is None and alert.mac_protected
    assert security.verify_mac(crypto, crypto.ecdh(KEYS["supplier-ka"],
                                                   KEYS["device-ka"].public), alert)
    assert sec.next_alert_counter() == 2001


def test_alert_message_code_decides_criticality():
    crypto = ToyCrypto()
    sec = _device(crypto)
    alert = envelope.parse(sec.alert(codes.ALERT_FUTURE_DATED_ACTIONED, b"\x30\x00", SUPPLIER,
                                     message_code=codes.FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT))
    assert alert.message_code == 0x00CB and alert.signature is not None


def test_alert_counter_never_goes_back():
    sec = _device()
    sec.alert(codes.ALERT_SOURCE_NOT_AUTHORISED, b"\x0f", SUPPLIER, counter=10)
    try:
        sec.alert(codes.ALERT_SOURCE_NOT_AUTHORISED, b"\x0f", SUPPLIER, counter=10)
    except GbcsRefusal as refusal:
        assert refusal.reason == ALERT_COUNTER
    else:
        raise AssertionError("alert counter reused")
    assert sec.alert_counter == 10


# -- persistence ----------------------------------------------------------------------------

def test_state_survives_a_power_cut():
    crypto = ToyCrypto()
    sec = _device(crypto)
    sec.accept_command(_command(codes.ECS42, 41), "ECS42")
    sec.alert(codes.ALERT_SOURCE_NOT_AUTHORISED, b"\x0f", SUPPLIER)
    saved = json.loads(json.dumps(sec.state()))
    again = DeviceSecurity.restore(saved, DEVICE, KEYS["device-ds"], KEYS["device-ka"], crypto)
    assert again.last_counter(SUPPLIER) == 41
    assert again.next_alert_counter() == 2
    assert again.anchors.state() == sec.anchors.state()
    refusal = _refusal(again, _command(codes.ECS42, 41), "ECS42")
    assert refusal.reason == STALE_COUNTER
    assert again.accept_command(_command(codes.ECS42, 42), "ECS42").role == codes.ROLE_SUPPLIER


def test_large_counters_survive_json():
    sec = _device(counters={"90B3D51F30010000": 0x0000000300000000})
    text = json.dumps(sec.state())
    again = DeviceSecurity.restore(json.loads(text), DEVICE, KEYS["device-ds"],
                                   KEYS["device-ka"], ToyCrypto())
    assert again.last_counter(SUPPLIER) == 0x0000000300000000


# -- CS02b change of supplier on the device core (MicroPython too) ---------------------------
# Certificates are built here with the firmware's DER writer and "signed" with the stand-in
# crypto, so the whole update runs on MicroPython: parse, path check, apply, refuse.

from firmware.gbcs import asn1, credentials  # noqa: E402  (kept beside the tests using it)

TRANSCOS = unhexlify("90B3D51F30000004")
NEW_SUPPLIER = unhexlify("90B3D51F30030000")
for _n, _name in enumerate(("root", "org-ca", "rogue-ca", "transcos-ds", "new-ds", "new-ka",
                            "new-pp-ka")):
    KEYS[_name] = ToyKey(2000003 + 104729 * _n)

_OID = {"ou": b"\x55\x04\x0b", "uid": b"\x55\x04\x2d", "ec": b"\x2a\x86\x48\xce\x3d\x02\x01",
        "p256": b"\x2a\x86\x48\xce\x3d\x03\x01\x07", "ecdsa": b"\x2a\x86\x48\xce\x3d\x04\x03\x02",
        "ku": b"\x55\x1d\x0f", "ski": b"\x55\x1d\x0e", "aki": b"\x55\x1d\x23",
        "bc": b"\x55\x1d\x13"}


def _oid(name):
    return asn1.tlv(asn1.OBJECT_IDENTIFIER, _OID[name])


def _extension(name, value, critical=False):
    parts = [_oid(name)]
    if critical:
        parts.append(b"\x01\x01\xff")
    return asn1.sequence(parts + [asn1.octet_string(value)])


def _toy_certificate(key, issuer_key, ski, aki, key_usage, eui=None, role=None, ca=False):
    subject = []
    if role is not None:
        subject.append(asn1.sequence([asn1.sequence([_oid("ou"),
                                                     asn1.tlv(0x13, b"%02d" % role)])], asn1.SET))
    if eui is not None:
        subject.append(asn1.sequence([asn1.sequence([_oid("uid"), asn1.bit_string(0, eui)])],
                                     asn1.SET))
    extensions = [_extension("ku", credentials.key_usage_bit_string(key_usage), True),
                  _extension("ski", asn1.octet_string(ski)),
                  _extension("aki", asn1.sequence([asn1.tlv(0x80, aki)]))]
    if ca:
        extensions.append(_extension("bc", asn1.sequence([b"\x01\x01\xff"]), True))
    algorithm = asn1.sequence([_oid("ecdsa")])
    tbs = asn1.sequence([
        asn1.tlv(0xA0, asn1.integer(2)), asn1.integer(ski[0] + 1), algorithm,
        asn1.sequence([]), asn1.sequence([]), asn1.sequence(subject),
        asn1.sequence([asn1.sequence([_oid("ec"), _oid("p256")]),
                       asn1.bit_string(0, b"\x04" + key.public)]),
        asn1.tlv(0xA3, asn1.sequence(extensions))])
    signature = ToyCrypto().ecdsa_sign(issuer_key, tbs)
    value = asn1.sequence([asn1.integer(int.from_bytes(signature[:32], "big")),
                           asn1.integer(int.from_bytes(signature[32:], "big"))])
    return asn1.sequence([tbs, algorithm, asn1.bit_string(0, value)])


def _cos_device():
    sec = _device()
    sec.anchors.set(codes.ROLE_ROOT, codes.CELL_MANAGEMENT, bytes(8),
                    ds_public=KEYS["root"].public, ds_key_id=b"ROOTKEY1")
    sec.anchors.set(codes.ROLE_TRANSITIONAL_COS, codes.CELL_MANAGEMENT, TRANSCOS,
                    ds_public=KEYS["transcos-ds"].public)
    sec.anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, SUPPLIER,
                    ka_public=KEYS["supplier-ka"].public)
    return sec


def _change_of_supplier(counter, ca_key="org-ca", ca_issuer="root", leaf_signer=None):
    org_ca = _toy_certificate(KEYS[ca_key], KEYS[ca_issuer], b"ORGCA001", b"ROOTKEY1",
                              codes.KEY_USAGE_KEY_CERT_SIGN, role=7, ca=True)
    targets = (("new-ds", codes.KEY_USAGE_DIGITAL_SIGNATURE, codes.CELL_MANAGEMENT),
               ("new-ka", codes.KEY_USAGE_KEY_AGREEMENT, codes.CELL_MANAGEMENT),
               ("new-pp-ka", codes.KEY_USAGE_KEY_AGREEMENT, codes.CELL_PREPAYMENT))
    replacements = []
    for n, (name, usage, cell) in enumerate(targets):
        cert = _toy_certificate(KEYS[name], KEYS[leaf_signer or ca_key], bytes((0x40 + n,)) * 8,
                                b"ORGCA001",
                                usage, NEW_SUPPLIER, codes.ROLE_SUPPLIER)
        replacements.append(credentials.Replacement(
            cert, credentials.CellId(codes.ROLE_SUPPLIER, usage, cell)))
    control = credentials.Control(7, counter, credentials.CellId(
        codes.ROLE_TRANSITIONAL_COS, codes.KEY_USAGE_DIGITAL_SIGNATURE),
        other_changes=[credentials.SeqNumberChange(codes.ROLE_SUPPLIER, 0, [(0, 0)])])
    payload = credentials.encode_command(credentials.UpdateCommand(control, replacements,
                                                                   [org_ca]))
    return _command(codes.CS02B_SUPPLIER_BY_TRANSCOS, counter, originator=TRANSCOS,
                    signer="transcos-ds", payload=payload)


def test_change_of_supplier_on_the_device_core():
    sec = _cos_device()
    sec.accept_command(_command(codes.ECS42, 5), "ECS42")
    cos = _change_of_supplier(60)
    assert sec.accept_command(cos, "CS02bSupplierByTransCoS").role == codes.ROLE_TRANSITIONAL_COS
    outcome = credentials.parse_response(sec.update_credentials(cos))
    assert [o.status for o in outcome.outcomes] == [0, 0, 0]
    assert outcome.outcomes[0].existing_eui == SUPPLIER
    assert outcome.outcomes[0].replacing_eui == NEW_SUPPLIER
    assert outcome.outcomes[0].replacing_key_id == b"\x40" * 8
    assert outcome.seq_number_changes[0].specialist == [(0, 0)]
    assert sec.anchors.get(codes.ROLE_SUPPLIER).ds_public == KEYS["new-ds"].public
    assert sec.anchors.get(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT).ka_public == \
        KEYS["new-pp-ka"].public
    assert sec.last_counter(NEW_SUPPLIER) == 0 and sec.last_counter(SUPPLIER) == -1
    refusal = _refusal(sec, _command(codes.ECS42, 6), "ECS42")
    assert refusal.reason == UNKNOWN_ORIGINATOR
    assert refusal.alert_code == codes.ALERT_SOURCE_NOT_AUTHORISED
    accepted = sec.accept_command(_command(codes.ECS42, 1, originator=NEW_SUPPLIER,
                                           signer="new-ds"), "ECS42")
    assert accepted.eui == NEW_SUPPLIER
    saved = json.loads(json.dumps(sec.state()))
    again = DeviceSecurity.restore(saved, DEVICE, KEYS["device-ds"], KEYS["device-ka"],
                                   ToyCrypto())
    assert again.anchors.get(codes.ROLE_SUPPLIER).eui == NEW_SUPPLIER
    assert again.specialist_floor(NEW_SUPPLIER) == 0


def test_change_of_supplier_with_a_path_outside_the_root_changes_nothing():
    sec = _cos_device()
    anchors = json.dumps(sec.anchors.state())
    # an organisation CA that signed itself, claiming the root's key id
    cos = _change_of_supplier(61, ca_key="rogue-ca", ca_issuer="rogue-ca")
    sec.accept_command(cos, "CS02bSupplierByTransCoS")
    outcome = credentials.parse_response(sec.update_credentials(cos))
    assert [o.status for o in outcome.outcomes] == [credentials.STATUS_NO_TRUST_ANCHOR] * 3
    assert [o.replacing_eui for o in outcome.outcomes] == [SUPPLIER] * 3
    assert json.dumps(sec.anchors.state()) == anchors
    # the genuine CA in the path, but replacement certificates it did not sign
    cos = _change_of_supplier(62, leaf_signer="rogue-ca")
    sec.accept_command(cos, "CS02bSupplierByTransCoS")
    outcome = credentials.parse_response(sec.update_credentials(cos))
    assert [o.status for o in outcome.outcomes] == [credentials.STATUS_BAD_CERTIFICATE] * 3
    assert json.dumps(sec.anchors.state()) == anchors
    assert sec.accept_command(_command(codes.ECS42, 7), "ECS42").eui == SUPPLIER


def test_change_of_supplier_by_the_supplier_itself_is_refused():
    sec = _cos_device()
    cos = _change_of_supplier(62)
    cos.originator = SUPPLIER           # the old supplier may not move its own customer
    refusal = _refusal(sec, cos, "CS02bSupplierByTransCoS")
    assert refusal.reason == ROLE_NOT_ELIGIBLE


def test_refusal_alerts_can_be_remapped():
    from firmware.gbcs.device_security import STALE_COUNTER as STALE
    sec = DeviceSecurity(DEVICE, KEYS["device-ds"], KEYS["device-ka"], ToyCrypto(), _anchors(),
                         {"90b3d51f30010000": 9},
                         refusal_alerts={STALE: codes.ALERT_UNUSUAL_COMMANDS})
    refusal = _refusal(sec, _command(codes.ECS17B, 9, signer=None), "ECS17b")
    assert refusal.alert_code == codes.ALERT_UNUSUAL_COMMANDS
    refusal = _refusal(sec, _command(codes.ECS17B, 10, recipient=OTHER_DEVICE, signer=None),
                       "ECS17b")
    assert refusal.alert_code is None                 # unmapped reasons keep their default


def test_dlms_alert_payload_matches_rtds():
    from firmware.gbcs.device_security import dlms_alert_payload
    date_time = unhexlify("07DF0101FF000000008000FF")
    # RTDS NA_GCA-DLMS (0x8F30, counter 2000) and NA_MIIWA-DLMS (0x81A0 + octet-string 0005)
    assert dlms_alert_payload(0x8F30, 2000, date_time) == unhexlify(
        "0F200007D0000202128F30090C07DF0101FF000000008000FF")
    assert dlms_alert_payload(0x81A0, 2000, date_time, [unhexlify("09020005")]) == unhexlify(
        "0F200007D00002031281A0090C07DF0101FF000000008000FF09020005")
    # the invoke id keeps the low 24 bits of the counter only
    assert dlms_alert_payload(0x8F30, 0x123456789, date_time)[1:5] == unhexlify("20456789")


def test_dlms_alert_uses_the_next_counter():
    crypto = ToyCrypto()
    sec = _device(crypto)
    sec.alert_counter = 41
    alert = envelope.parse(sec.dlms_alert(codes.ALERT_SOURCE_NOT_AUTHORISED, SUPPLIER,
                                          DATE_TIME))
    assert alert.originator_counter == 42 and alert.payload[1:5] == unhexlify("2000002A")
    assert alert.message_code == codes.GENERIC_CRITICAL_ALERT
    assert security.verify_signature(crypto, KEYS["device-ds"].public, alert)
    try:
        sec.dlms_alert(codes.ALERT_SOURCE_NOT_AUTHORISED, SUPPLIER, b"\x00")
    except GbcsRefusal:
        pass
    else:
        raise AssertionError("a short date-time made an alert")
    assert sec.next_alert_counter() == 43



# -- prepayment top-ups ---------------------------------------------------------------------

def test_top_up_counters_do_not_move_the_general_counter():
    sec = _device()
    sec.accept_command(_command(codes.ECS17B, 1000, signer=None), "ECS17b")
    sec.accept_command(_command(codes.CS01A, 3 << 32, signer=None), "CS01a")
    assert sec.last_counter(SUPPLIER) == 1000
    # a later ordinary command with a small counter is still fresh
    sec.accept_command(_command(codes.ECS17B, 1001, signer=None), "ECS17b")
    # top-ups may arrive out of order: the UTRN record, not this check, refuses replays
    sec.accept_command(_command(codes.CS01A, 2 << 32, signer=None), "CS01a")


def test_top_up_counter_shape_and_floor():
    from firmware.gbcs.device_security import BAD_TOP_UP_COUNTER
    sec = _device()
    refusal = _refusal(sec, _command(codes.CS01A, (3 << 32) + 1, signer=None), "CS01a")
    assert refusal.reason == BAD_TOP_UP_COUNTER
    sec.specialist_floors["90b3d51f30010000"] = {"0": 5 << 32}
    refusal = _refusal(sec, _command(codes.CS01A, 5 << 32, signer=None), "CS01a")
    assert refusal.reason == STALE_COUNTER
    sec.accept_command(_command(codes.CS01A, 6 << 32, signer=None), "CS01a")
    # the MAC still guards a top-up like any other command
    message = _command(codes.CS01A, 7 << 32, signer=None)
    message.mac = bytes(12)
    assert _refusal(sec, message, "CS01a").reason == BAD_MAC
