"""Device-side GBCS security with the real primitives (emulator.crypto.HostCrypto).

Three sources of keys:
- the GBCS 18.4 worked example and RTDS 4.5.0: neither publishes a device's KA private
  key, but both publish the private key on the other side of the agreement (the ACB's for
  commands, the recipient's for responses and alerts). ECDH is symmetric, so a device
  whose own KA key is the peer's private key and whose anchor holds the device's KA public
  key agrees exactly the secret the real device would: the MAC and signature checks then
  run on the real RTDS bytes, and MAC'd responses and alerts rebuild byte for byte;
- emulator.smki.TestSmki: full key pairs for every party, so nothing stands in.
"""

import json
import pathlib

import pytest

from emulator import smki
from emulator.crypto import HostCrypto, KeyStore
from firmware.gbcs import codes, envelope, security
from firmware.gbcs.anchors import TrustAnchors
from firmware.gbcs.device_security import (
    BAD_MAC, BAD_SIGNATURE, NOT_FOR_ME, ROLE_NOT_ELIGIBLE, STALE_COUNTER, UNKNOWN_ORIGINATOR,
    DeviceSecurity, GbcsRefusal)

VECTORS = pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs"
RTDS = sorted((VECTORS / "rtds-4.5.0").glob("*/*.HEX"))
KEYSTORE = KeyStore(VECTORS / "keystore")
CRYPTO = HostCrypto()
ACB = bytes.fromhex("90B3D51F30000002")
RTDS_ROLES = {
    "90b3d51f30000001": codes.ROLE_RECOVERY,
    "90b3d51f30000002": codes.ROLE_ACB,
    "90b3d51f30000004": codes.ROLE_TRANSITIONAL_COS,
    "90b3d51f30000007": codes.ROLE_WAN_PROVIDER,
    "90b3d51f30010000": codes.ROLE_SUPPLIER,
    "90b3d51f30020000": codes.ROLE_NETWORK_OPERATOR,
}
# RTDS 6.21 sends the NO-by-NO handover from the ACB's EUI: RTDS's device holds that EUI in
# its network-operator cell too (the 6.21 response names it as the existing NO anchor); a
# device holding it only as the ACB must refuse it (the ACB may not replace NO anchors).
RTDS_NO_HANDOVER_FROM_ACB = "CS02bNOByNOHandover_6.21_SUCCESS_COMMAND_GBCS.HEX"

EXAMPLE_18_4 = bytes.fromhex(
    "DD00000000000081A91100000000DF0901000000000000000108123456789ABCDEF008FFFFFFFFFFFFFFFE"
    "000200B335D92000000100030300700000130A00FF020300700000130A01FF020300700000130A02FF0203"
    "0500000000050000000005000000004059045AB0F554622B0360340B9D87B5A23ED5723B41DE3F206E58CD"
    "D10F915B9FE2E12E2DA3632478A8DF678E418895869AC1E55318CCE04D120D2D6B44DC167B5D832D15B57A"
    "56D620F198B3")
EXAMPLE_SUPPLIER_DS_PUBLIC = bytes.fromhex(
    "76628E1C84EF7935548AE5D62C7BB3AD28964CF794F0387A697EEC19CDD98F460A4D5E19087EF7216ED89C"
    "29831A6EE838C8DE88EF34F11D3F41F36D80B2A5D5")
EXAMPLE_ACB_KA_PRIVATE = 0xE4A6CFB431471CFCAE491FD566D19C87082CF9FA7722D7FA24B2B3F5669DBEFB
EXAMPLE_DEVICE_KA_PUBLIC = bytes.fromhex(
    "2DB45A3F21889438B42C8F464C75292BACF5FDDB5DA0B492501B299CBFE92D8FDB90FC8FF4026129838B1B"
    "CAD1402CAE47FE7D8084E409A41AFCE16D63579C5F")


def _load(path):
    return bytes.fromhex(path.read_text().strip())


def _role(eui):
    return RTDS_ROLES.get(eui.hex())


# -- GBCS 18.4 worked example ------------------------------------------------------------

def test_device_accepts_the_gbcs_18_4_example():
    from cryptography.hazmat.primitives.asymmetric import ec
    acb_ka_private = ec.derive_private_key(EXAMPLE_ACB_KA_PRIVATE, ec.SECP256R1())
    supplier = bytes.fromhex("123456789ABCDEF0")
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, supplier,
                ds_public=EXAMPLE_SUPPLIER_DS_PUBLIC)
    # the device's half of the agreement: its KA public key in the ACB cell (see docstring)
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB, ka_public=EXAMPLE_DEVICE_KA_PUBLIC)
    sec = DeviceSecurity(bytes.fromhex("FFFFFFFFFFFFFFFE"), None, acb_ka_private, CRYPTO, anchors)
    message = envelope.parse(EXAMPLE_18_4)
    party = sec.accept_command(message, "ECS04b")
    assert party.role == codes.ROLE_SUPPLIER
    assert sec.last_counter(supplier) == 1
    with pytest.raises(GbcsRefusal) as refused:
        sec.accept_command(envelope.parse(EXAMPLE_18_4), "ECS04b")
    assert refused.value.reason == STALE_COUNTER
    # one flipped payload bit breaks the supplier's signature
    tampered = bytearray(EXAMPLE_18_4)
    tampered[60] ^= 0x01
    fresh = DeviceSecurity(bytes.fromhex("FFFFFFFFFFFFFFFE"), None, acb_ka_private, CRYPTO,
                           anchors.copy())
    with pytest.raises(GbcsRefusal) as refused:
        fresh.accept_command(envelope.parse(bytes(tampered)), "ECS04b")
    assert refused.value.reason == BAD_SIGNATURE


# -- RTDS: every command a device would get is accepted, with the real bytes ----------------

def _rtds_device_for_command(message):
    """The recipient device, anchors from the RTDS keystore, the ACB-side stand-in key."""
    anchors = TrustAnchors()
    device_ka = KEYSTORE.public_key(message.recipient, "ka")
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB,
                ds_public=KEYSTORE.public_key(ACB, "ds"), ka_public=device_ka)
    role = _role(message.originator)
    if role is not None and role != codes.ROLE_ACB:
        anchors.set(role, codes.CELL_MANAGEMENT, message.originator,
                    ds_public=KEYSTORE.public_key(message.originator, "ds"))
    return DeviceSecurity(message.recipient, None, KEYSTORE.private_key(ACB, "ka"), CRYPTO,
                          anchors)


def _rtds_commands():
    for path in RTDS:
        if path.name.endswith("_COMMAND_GBCS.HEX"):
            yield path, envelope.parse(_load(path))


def test_every_rtds_command_is_accepted_by_its_device():
    accepted = 0
    for path, message in _rtds_commands():
        sec = _rtds_device_for_command(message)
        if path.name == RTDS_NO_HANDOVER_FROM_ACB:
            with pytest.raises(GbcsRefusal) as refused:
                sec.accept_command(message)
            assert refused.value.reason == ROLE_NOT_ELIGIBLE
            continue
        if _role(message.originator) is None:          # PCS02: from the PPMID, not a party
            with pytest.raises(GbcsRefusal) as refused:
                sec.accept_command(message)
            assert refused.value.reason == UNKNOWN_ORIGINATOR
            continue
        party = sec.accept_command(message)
        assert party.role == _role(message.originator), path.name
        if message.message_code in codes.TOP_UP_CODES:        # the UTRN record's counter
            assert sec.last_counter(message.originator) == -1
        else:
            assert sec.last_counter(message.originator) == message.originator_counter
        accepted += 1
    assert accepted > 100


def test_rtds_ecs42_is_refused_from_a_device_that_does_not_hold_the_supplier():
    path = next(p for p in RTDS if p.name == "ECS42_7.1_SUCCESS_COMMAND_GBCS.HEX")
    message = envelope.parse(_load(path))
    sec = _rtds_device_for_command(message)
    # the new supplier's DS key sits in the supplier cell: the old supplier is a stranger
    sec.anchors.remove(codes.ROLE_SUPPLIER)
    sec.anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, bytes.fromhex("90B3D51F30030000"),
                    ds_public=KEYSTORE.public_key(bytes.fromhex("90B3D51F30030000"), "ds"))
    with pytest.raises(GbcsRefusal) as refused:
        sec.accept_command(message, "ECS42")
    assert refused.value.alert_code == codes.ALERT_SOURCE_NOT_AUTHORISED
    # and the supplier's real command with the right anchors but the wrong device
    other = _rtds_device_for_command(message)
    other.own_eui = bytes.fromhex("00DB1234567890A1")
    with pytest.raises(GbcsRefusal) as refused:
        other.accept_command(message, "ECS42")
    assert refused.value.reason == NOT_FOR_ME and refused.value.alert_code is None


# -- RTDS: responses and alerts rebuilt byte for byte ---------------------------------------

def _command_for(response_path, response):
    for path in sorted(response_path.parent.glob("*_COMMAND_GBCS.HEX")):
        command = envelope.parse(_load(path))
        if (command.originator_counter == response.originator_counter
                and command.originator == response.recipient
                and command.recipient == response.originator
                and command.message_code == response.message_code):
            return command
    return None


def _rtds_device_answering(recipient, device):
    """The device, its KA half stood in by the recipient's published KA private key."""
    anchors = TrustAnchors()
    anchors.set(_role(recipient), codes.CELL_MANAGEMENT, recipient,
                ka_public=KEYSTORE.public_key(device, "ka"))
    return DeviceSecurity(device, None, KEYSTORE.private_key(recipient, "ka"), CRYPTO, anchors)


def test_mac_only_rtds_responses_rebuild_byte_for_byte():
    rebuilt = 0
    for path in RTDS:
        if not path.name.endswith("_RESPONSE_GBCS.HEX"):
            continue
        raw = _load(path)
        response = envelope.parse(raw)
        if not response.mac_protected or _role(response.recipient) is None:
            continue
        command = _command_for(path, response)
        assert command is not None, path.name
        sec = _rtds_device_answering(response.recipient, response.originator)
        assert sec.respond(command, response.payload, response.date_time) == raw, path.name
        rebuilt += 1
    assert rebuilt > 80


def test_signed_rtds_responses_rebuild_but_for_the_signature():
    device_ds = smki.TestSmki(seed=3).derive_key("device-ds")
    device_ds_public = smki.public_xy(device_ds.public_key())
    checked = 0
    for path in RTDS:
        if not path.name.endswith("_RESPONSE_GBCS.HEX"):
            continue
        raw = _load(path)
        response = envelope.parse(raw)
        if response.signature is None:
            continue
        command = _command_for(path, response)
        if command is None:                   # AnyByContingency: RTDS has no command
            continue
        sec = DeviceSecurity(response.originator, device_ds, None, CRYPTO, TrustAnchors())
        ours = envelope.parse(sec.respond(command, response.payload, response.date_time))
        assert ours.signed_part() == response.signed_part(), path.name
        assert not ours.mac_protected
        assert security.verify_signature(CRYPTO, device_ds_public, ours)
        checked += 1
    assert checked > 30


def test_mac_only_rtds_alerts_rebuild_byte_for_byte():
    rebuilt = 0
    for path in RTDS:
        if not path.name.endswith("_ALERT_GBCS.HEX"):
            continue
        raw = _load(path)
        alert = envelope.parse(raw)
        if not alert.mac_protected:
            continue
        alert_code = int(path.name.split("_")[2], 16)
        sec = _rtds_device_answering(alert.recipient, alert.originator)
        sec.alert_counter = alert.originator_counter - 1
        assert sec.next_alert_counter() == alert.originator_counter
        ours = sec.alert(alert_code, alert.payload, alert.recipient, date_time=alert.date_time,
                         message_code=alert.message_code)
        assert ours == raw, path.name
        rebuilt += 1
    assert rebuilt >= 4


# -- TestSmki: every party's keys known -----------------------------------------------------

SUPPLIER = bytes.fromhex("90B3D51F30010000")
NETWORK_OPERATOR = bytes.fromhex("90B3D51F30020000")
ESME = bytes.fromhex("00DB1234567890A0")


@pytest.fixture(scope="module")
def pki():
    authority = smki.TestSmki(seed=11)
    authority.organisation(SUPPLIER, smki.ROLE_SUPPLIER, "SUPPLIER A")
    authority.organisation(NETWORK_OPERATOR, smki.ROLE_NETWORK_OPERATOR, "DNO")
    authority.organisation(ACB, smki.ROLE_ACB, "DCC")
    authority.device(ESME)
    return authority


def _esme(pki):
    org = pki.organisations
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER,
                ds_public=org[SUPPLIER]["ds"].public_xy, ka_public=org[SUPPLIER]["ka"].public_xy)
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, SUPPLIER,
                ka_public=org[SUPPLIER]["pp-ka"].public_xy)
    anchors.set(codes.ROLE_NETWORK_OPERATOR, codes.CELL_MANAGEMENT, NETWORK_OPERATOR,
                ds_public=org[NETWORK_OPERATOR]["ds"].public_xy,
                ka_public=org[NETWORK_OPERATOR]["ka"].public_xy)
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB, ds_public=org[ACB]["ds"].public_xy,
                ka_public=org[ACB]["ka"].public_xy)
    device = pki.devices[ESME]
    return DeviceSecurity(ESME, device["ds"].private_key, device["ka"].private_key, CRYPTO,
                          anchors)


def _command(pki, code, counter, originator=SUPPLIER, signer=None, payload=b"\xd9\x20\x00"):
    message = envelope.GbcsMessage(envelope.CRA_COMMAND, counter, originator, ESME, code, payload)
    if signer is not None:
        security.sign(CRYPTO, signer, message)
    shared = CRYPTO.ecdh(pki.organisations[ACB]["ka"].private_key,
                         pki.devices[ESME]["ka"].public_xy)
    security.protect_mac(CRYPTO, shared, message)
    return envelope.parse(message.encode())


def test_full_round_trip_with_test_smki(pki):
    sec = _esme(pki)
    supplier_ds = pki.organisations[SUPPLIER]["ds"].private_key
    command = _command(pki, codes.ECS42, 0x10, signer=supplier_ds)
    assert sec.accept_command(command, "ECS42").role == codes.ROLE_SUPPLIER
    reply = envelope.parse(sec.respond(command, b"\xda\x20\x00\x00\x10", b"\x07\xea" + b"\x00" * 10))
    assert security.verify_signature(CRYPTO, pki.devices[ESME]["ds"].public_xy, reply)
    read = _command(pki, codes.ECS17B, 0x11)
    sec.accept_command(read, "ECS17b")
    reply = envelope.parse(sec.respond(read, b"\xda\x20\x00\x00\x11", b"\x07\xea" + b"\x00" * 10))
    supplier_side = CRYPTO.ecdh(pki.organisations[SUPPLIER]["ka"].private_key,
                                pki.devices[ESME]["ka"].public_xy)
    assert security.verify_mac(CRYPTO, supplier_side, reply)
    alert = envelope.parse(sec.alert(codes.ALERT_SMART_METER_INTEGRITY_WARNING, b"\x0f", SUPPLIER))
    assert security.verify_mac(CRYPTO, supplier_side, alert)
    saved = json.loads(json.dumps(sec.state()))
    again = DeviceSecurity.restore(saved, ESME, pki.devices[ESME]["ds"].private_key,
                                   pki.devices[ESME]["ka"].private_key, CRYPTO)
    with pytest.raises(GbcsRefusal) as refused:
        again.accept_command(read, "ECS17b")
    assert refused.value.reason == STALE_COUNTER


def test_attacks_with_real_keys_are_refused_without_state_change(pki):
    sec = _esme(pki)
    supplier_ds = pki.organisations[SUPPLIER]["ds"].private_key
    sec.accept_command(_command(pki, codes.ECS43, 100, signer=supplier_ds), "ECS43")
    before = json.dumps(sec.state())
    rogue = smki.TestSmki(seed=99).derive_key("rogue")
    tampered = _command(pki, codes.ECS17B, 102)
    tampered.payload = b"\xd9\x20\x01"
    bad_mac = _command(pki, codes.ECS17B, 103)
    bad_mac.mac = bytes(12)
    cases = [
        (_command(pki, codes.ECS43, 100, signer=supplier_ds), STALE_COUNTER),
        (_command(pki, codes.ECS43, 99, signer=supplier_ds), STALE_COUNTER),
        (_command(pki, codes.ECS42, 101, signer=rogue), BAD_SIGNATURE),
        (tampered, BAD_MAC),
        (bad_mac, BAD_MAC),
        (_command(pki, codes.ECS42, 104, originator=NETWORK_OPERATOR,
                  signer=pki.organisations[NETWORK_OPERATOR]["ds"].private_key),
         ROLE_NOT_ELIGIBLE),
    ]
    for message, reason in cases:
        with pytest.raises(GbcsRefusal) as refused:
            sec.accept_command(message)
        assert refused.value.reason == reason
        assert json.dumps(sec.state()) == before


# -- any corruption of a genuine command is refused, never crashes, changes nothing ----------

from hypothesis import given, settings, strategies as st  # noqa: E402


@pytest.fixture(scope="module")
def genuine(pki):
    supplier_ds = pki.organisations[SUPPLIER]["ds"].private_key
    critical = _command(pki, codes.ECS42, 0x500, signer=supplier_ds, payload=b"\xd9\x20\x00\x05")
    read = _command(pki, codes.ECS17B, 0x501, payload=b"\xd9\x20\x00\x05\x01")
    return [critical.encode(), read.encode()]


@settings(max_examples=300, deadline=None)
@given(which=st.integers(0, 1), where=st.integers(0, 400), flip=st.integers(1, 255))
def test_corrupted_commands_are_refused_without_state_change(pki, genuine, which, where, flip):
    raw = bytearray(genuine[which])
    where %= len(raw)
    raw[where] ^= flip
    sec = _esme(pki)
    before = json.dumps(sec.state())
    try:
        message = envelope.parse(bytes(raw))
    except envelope.GbcsError:
        return                                   # the envelope layer refuses it first
    with pytest.raises(GbcsRefusal):
        sec.accept_command(message)
    assert json.dumps(sec.state()) == before


# -- DLMS alerts: RTDS's payloads and messages rebuilt -------------------------------------

RTDS_DLMS_ALERTS = [p for p in RTDS if p.name.endswith("_ALERT_GBCS.HEX")
                    and envelope.parse(_load(p)).payload[:1] == b"\x0f"]


def _extra_elements(payload):
    """The A-XDR elements after the alert code and date-time, split as the alert carries
    them (each extra element in RTDS is an octet-string, structure or simple value)."""
    from firmware.dlms import axdr
    count = payload[7] - 2
    offset = 8 + 3 + 14
    elements = []
    for _ in range(count):
        _, end = axdr.decode(payload, offset)
        elements.append(payload[offset:end])
        offset = end
    assert offset == len(payload)
    return elements


def test_rtds_dlms_alerts_rebuild():
    assert len(RTDS_DLMS_ALERTS) >= 6
    for path in RTDS_DLMS_ALERTS:
        raw = _load(path)
        alert = envelope.parse(raw)
        alert_code = int(path.name.split("_")[2], 16)
        date_time = alert.payload[13:25]
        if alert.mac_protected:
            sec = _rtds_device_answering(alert.recipient, alert.originator)
        else:
            sec = DeviceSecurity(alert.originator, smki.TestSmki(seed=4).derive_key("d"), None,
                                 CRYPTO, TrustAnchors())
        sec.alert_counter = alert.originator_counter - 1
        ours = sec.dlms_alert(alert_code, alert.recipient, date_time,
                              _extra_elements(alert.payload), message_code=alert.message_code)
        if alert.mac_protected:
            assert ours == raw, path.name
        else:
            assert envelope.parse(ours).signed_part() == alert.signed_part(), path.name
        assert sec.next_alert_counter() == alert.originator_counter + 1


# -- prepayment top-ups: their own counter space, replay refused by the UTRN record ---------

def test_rtds_top_up_counters_live_apart_from_the_suppliers_other_commands():
    from firmware.gbcs import utrn
    top_up = _message_at("2.2_CS01a/CS01a_2.2_SUCCESS_COMMAND_GBCS.HEX")
    enable = _message_at("7.1_ECS42/ECS42_7.1_SUCCESS_COMMAND_GBCS.HEX")
    assert top_up.originator_counter > enable.originator_counter
    sec = _rtds_device_for_command(top_up)
    record = utrn.UtrnAntiReplay()
    shared = CRYPTO.ecdh(KEYSTORE.private_key(SUPPLIER_RTDS, "pp-ka"),
                         KEYSTORE.public_key(top_up.recipient, "ka"))
    token = _utrn_in(top_up.payload)
    for attempt in range(2):
        sec.accept_command(_message_at("2.2_CS01a/CS01a_2.2_SUCCESS_COMMAND_GBCS.HEX"), "CS01a")
        if attempt == 0:
            counter, _, value = utrn.verify(CRYPTO, shared, top_up.originator, top_up.recipient,
                                            token, record)
            assert counter == top_up.originator_counter and value == 10
        else:                                   # the replayed top-up: the UTRN record says no
            with pytest.raises(utrn.UtrnError):
                utrn.verify(CRYPTO, shared, top_up.originator, top_up.recipient, token, record)
    # the supplier's ordinary counter space is untouched: its ECS42 (counter far below the
    # top-up's) is still accepted
    assert sec.accept_command(enable, "ECS42").role == codes.ROLE_SUPPLIER


def _message_at(relative):
    return envelope.parse(_load(VECTORS / "rtds-4.5.0" / relative))


def _utrn_in(payload):
    """The 20-digit UTRN an ACTION on the Token Gateway carries (octet-string of 20)."""
    at = payload.index(b"\x09\x14") + 2
    return payload[at:at + 20].decode()


SUPPLIER_RTDS = bytes.fromhex("90B3D51F30010000")
