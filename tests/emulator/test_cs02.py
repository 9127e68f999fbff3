"""CS02b Update Security Credentials: both codecs on RTDS, the device applying it, and
change of supplier by the Transitional CoS party (SRV 6.23) end to end at device level.

- every RTDS CS02b command, response and alert (and the CS03/CS04 payloads) decodes in the
  firmware reader (`firmware/gbcs/credentials.py`) and the construct codec
  (`emulator/codec/gbcs_asn1.py`), the two agree field by field, and both rebuild the
  bytes;
- a device holding the RTDS keystore's anchors executes the RTDS commands and answers
  with RTDS's own response and alert payloads, byte for byte (ECDH symmetry stands in for
  the device KA private key RTDS does not publish: see test_device_security.py);
- with a TestSmki (every key known, root anchor included), the Transitional CoS party
  moves the device to a new supplier: the old supplier is refused, the new one obeyed, and
  every attack is refused with the right reason and no state change.
"""

import json
import pathlib

import pytest
from cryptography import x509
from hypothesis import given, settings, strategies as st

from emulator import smki
from emulator.codec import gbcs_asn1
from emulator.codec.errors import CodecError
from emulator.crypto import HostCrypto, KeyStore
from firmware.gbcs import asn1, codes, credentials, envelope, security
from firmware.gbcs.anchors import DS, KA, TrustAnchors
from firmware.gbcs.asn1 import Asn1Error
from firmware.gbcs.device_security import (
    BAD_MAC, BAD_SIGNATURE, NOT_FOR_ME, ROLE_NOT_ELIGIBLE, STALE_COUNTER,
    TARGET_NOT_AUTHORISED, UNKNOWN_ORIGINATOR, WRONG_MODE, WRONG_SEQ_NUMBER, DeviceSecurity,
    GbcsRefusal)

VECTORS = pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs"
RTDS_DIR = VECTORS / "rtds-4.5.0"
RTDS = sorted(RTDS_DIR.glob("*/*.HEX"))
KEYSTORE = KeyStore(VECTORS / "keystore")
CRYPTO = HostCrypto()


def _eui(text):
    return bytes.fromhex(text)


RECOVERY = _eui("90B3D51F30000001")
ACB = _eui("90B3D51F30000002")
TRANSCOS = _eui("90B3D51F30000004")
WAN_PROVIDER = _eui("90B3D51F30000007")
SUPPLIER = _eui("90B3D51F30010000")
NEW_SUPPLIER = _eui("90B3D51F30030000")
NETWORK_OPERATOR = _eui("90B3D51F30020000")
ESME = _eui("00DB1234567890A0")
DATE_TIME = bytes.fromhex("07EA0B17FF0C000000000000")


def _load(path):
    return bytes.fromhex(path.read_text().strip())


def _message(relative):
    return envelope.parse(_load(RTDS_DIR / relative))


def _kind(message):
    code = message.message_code
    if code in codes.CS02B_CODES:
        return {1: "cs02b_command", 2: "cs02b_response"}[message.cra_flag]
    if code == codes.FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT:
        return "cs02b_alert"
    if code in (codes.CS03A1, codes.CS03A2, codes.CS03B, codes.CS03C):
        return {1: "join_command", 2: "join_response"}[message.cra_flag]
    if code in (codes.CS04AC, codes.CS04B):
        return {1: "unjoin_command", 2: "unjoin_response"}[message.cra_flag]
    simple = {codes.CS02E: "cs02e", codes.CS06: "cs06", codes.GCS28: "gcs28"}
    if code in simple:
        return simple[code] + {1: "_command", 2: "_response"}[message.cra_flag]
    if code == codes.FUTURE_DATED_FIRMWARE_ACTIVATION_ALERT:
        return "cs06_alert"
    return None


ASN1_VECTORS = [(p, envelope.parse(_load(p))) for p in RTDS]
ASN1_VECTORS = [(p, m) for p, m in ASN1_VECTORS if _kind(m) is not None]


# -- the two codecs agree on RTDS -----------------------------------------------------------

def _same_cell(firmware_cell, host_cell):
    assert firmware_cell.role == host_cell.role
    assert firmware_cell.key_usage == host_cell.key_usage
    assert firmware_cell.cell_usage == (host_cell.cell_usage or codes.CELL_MANAGEMENT)


def _same_changes(firmware_changes, host_changes):
    assert len(firmware_changes) == len(host_changes)
    for ours, theirs in zip(firmware_changes, host_changes):
        assert (ours.role, ours.floor) == (theirs.role, theirs.floor)
        if ours.specialist is None:
            assert theirs.specialist is None
        else:
            assert ours.specialist == [(s.usage, s.seq_number) for s in theirs.specialist]


def _same_outcome(ours, theirs):
    assert ours.authorising_seq_number == theirs.seq_number
    assert ours.mode == theirs.mode
    _same_changes(ours.seq_number_changes, theirs.seq_number_changes)
    assert len(ours.outcomes) == len(theirs.outcomes)
    for a, b in zip(ours.outcomes, theirs.outcomes):
        _same_cell(a.cell, b.cell)
        assert (a.status, a.existing_eui, a.existing_key_id, a.replacing_eui,
                a.replacing_key_id) == (b.status, b.existing_eui, b.existing_key_id,
                                        b.replacing_eui, b.replacing_key_id)


def _same_command(ours, theirs):
    control, host = ours.control, theirs.control
    assert control.mode == host.mode
    assert control.authorising_seq_number == host.seq_number
    assert control.plaintext_key == host.plaintext_key
    assert control.cpv_checks == host.cpv_checks
    assert control.new_floor == host.new_floor
    if control.authorising_cell is None:
        assert host.authorising_cell is None
    else:
        _same_cell(control.authorising_cell, host.authorising_cell)
    if control.new_specialist_floors is None:
        assert host.new_specialist_floors is None
    else:
        assert control.new_specialist_floors == [(s.usage, s.seq_number)
                                                 for s in host.new_specialist_floors]
    assert len(ours.replacements) == len(theirs.replacements)
    for a, b in zip(ours.replacements, theirs.replacements):
        assert a.certificate == b.certificate
        _same_cell(a.target, b.target)
    assert ours.path == list(theirs.path)
    assert ours.execution_date_time == theirs.execution_date_time


@pytest.mark.parametrize("path,message", ASN1_VECTORS, ids=[p.name for p, _ in ASN1_VECTORS])
def test_rtds_asn1_payloads_agree_in_both_codecs(path, message):
    kind = _kind(message)
    host = gbcs_asn1.decode(kind, message.payload)
    assert gbcs_asn1.encode(kind, host) == message.payload
    if kind == "cs02b_command":
        ours = credentials.parse_command(message.payload)
        _same_command(ours, host)
        assert credentials.encode_command(ours) == message.payload
        for replacement in ours.replacements:      # every certificate RTDS carries parses
            cert = credentials.parse_certificate(replacement.certificate)
            reference = x509.load_der_x509_certificate(replacement.certificate)
            assert cert.public_key == smki.public_xy(reference.public_key())
            assert cert.subject_eui == smki.organisation_eui(reference)
            assert cert.subject_role == smki.organisation_role(reference)
            ski = reference.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            assert cert.subject_key_id == ski.value.digest
            assert reference.signature_hash_algorithm.name == "sha256"
    elif kind == "cs02b_response":
        ours = credentials.parse_response(message.payload)
        if ours is None:
            assert host.outcome is None
        else:
            _same_outcome(ours, host.outcome)
        assert credentials.encode_response(ours) == message.payload
    elif kind == "join_command":
        assert host.join_method_and_role in codes.JOIN_METHOD_AND_ROLE
        assert host.device_type in codes.DEVICE_TYPES
        assert len(host.entity_id) == 8
    elif kind == "join_response":
        assert host in codes.JOIN_RESPONSES
        assert (host == 0) == ("_SUCCESS_" in path.name)
    elif kind == "unjoin_response":
        assert host in codes.UNJOIN_RESPONSES
        assert (host == 0) == ("_SUCCESS_" in path.name)
    elif kind == "cs02e_response" and "_SUCCESS_" in path.name:
        reference = x509.load_der_x509_certificate(host)
        assert smki.hardware_module_eui(reference) == message.originator
    elif kind == "gcs28_response":
        assert (host.time_status == 0) == ("_SUCCESS_" in path.name)
    elif kind == "cs06_alert":
        assert host.alert_code == int(path.name.split("_")[2], 16)
        outcome = "ERROR" if "_ERROR_" in path.name else "SUCCESS"
        command = envelope.parse(_load(path.parent / f"CS06_11.3_FUTURE_DATED_{outcome}_COMMAND_GBCS.HEX"))
        scheduled = gbcs_asn1.decode("cs06_command", command.payload)
        assert host.originator_counter == scheduled.originator_counter
        assert host.execution_date_time == scheduled.execution_date_time
    elif kind == "cs02b_alert":
        alert_code, when, ours = credentials.parse_alert(message.payload)
        assert (alert_code, when) == (host.alert_code, host.execution_date_time)
        assert alert_code == int(path.name.split("_")[2], 16)
        _same_outcome(ours, host.outcome)
        assert credentials.encode_alert(alert_code, when, ours) == message.payload


def test_rtds_asn1_vectors_cover_the_cs02b_and_join_variants():
    kinds = {}
    for _, message in ASN1_VECTORS:
        kinds.setdefault(_kind(message), set()).add(message.message_code)
    assert kinds["cs02b_command"] >= {0x0102, 0x0103, 0x0104, 0x0105, 0x0107}
    assert 0x0109 in kinds["cs02b_response"]
    assert "join_command" in kinds and "unjoin_command" in kinds
    for kind in ("cs02e_response", "cs06_command", "cs06_response", "cs06_alert",
                 "gcs28_command", "gcs28_response"):
        assert kind in kinds, kind


def test_rtds_certificates_chain_to_the_path_certificate():
    message = _message("6.23_CS02bSupplierByTransCoS/"
                       "CS02bSupplierByTransCoS_6.23_IMMEDIATE_SUCCESS_COMMAND_GBCS.HEX")
    command = credentials.parse_command(message.payload)
    issuer = credentials.parse_certificate(command.path[0])
    assert issuer.is_ca
    for replacement in command.replacements:
        cert = credentials.parse_certificate(replacement.certificate)
        assert cert.authority_key_id == issuer.subject_key_id
        assert CRYPTO.ecdsa_verify(issuer.public_key, cert.tbs, cert.signature)
        assert not CRYPTO.ecdsa_verify(issuer.public_key, cert.tbs + b"\x00", cert.signature)


# -- bad input: each codec raises only its own error, with an offset --------------------------

def test_truncated_and_absurd_payloads_raise_layer_errors():
    message = _message("6.23_CS02bSupplierByTransCoS/"
                       "CS02bSupplierByTransCoS_6.23_IMMEDIATE_SUCCESS_COMMAND_GBCS.HEX")
    payload = message.payload
    with pytest.raises(Asn1Error) as error:
        credentials.parse_command(payload[:-1])
    assert error.value.offset == 1                     # the outer length runs past the end
    with pytest.raises(CodecError):
        gbcs_asn1.decode("cs02b_command", payload[:-1])
    absurd = b"\x30\x85\xff\xff\xff\xff\xff" + payload[4:]
    with pytest.raises(Asn1Error) as error:
        credentials.parse_command(absurd)
    assert error.value.offset == 1 and "absurd" in error.value.reason
    with pytest.raises(CodecError):
        gbcs_asn1.decode("cs02b_command", absurd)
    with pytest.raises(Asn1Error) as error:
        credentials.parse_command(payload + b"\x00")
    assert error.value.offset == len(payload)
    with pytest.raises(CodecError):
        gbcs_asn1.decode("cs02b_command", payload + b"\x00")
    with pytest.raises(Asn1Error) as error:
        credentials.parse_command(b"\x30\x80\x00\x00")
    assert "indefinite" in error.value.reason


def test_nesting_is_bounded():
    deep = b"\x30\x00"
    for _ in range(20):
        deep = b"\x30" + bytes([len(deep)]) + deep
    reader = asn1.Reader(deep)
    with pytest.raises(Asn1Error) as error:
        while True:
            reader = reader.enter()
    assert "nested deeper" in error.value.reason
    assert error.value.offset == 2 * asn1.MAX_DEPTH


def test_der_integers_and_times():
    for value in (0, 1, 127, 128, 255, 256, -1, -128, -129, 6003, 1 << 63):
        encoded = asn1.integer(value)
        assert asn1.Reader(encoded).integer() == value
        host = gbcs_asn1.Integer().build(value)
        assert host == encoded
        assert gbcs_asn1.Integer().parse(encoded) == value
    with pytest.raises(Asn1Error):
        asn1.Reader(b"\x02\x02\x00\x01").integer()     # not the shortest form
    with pytest.raises(Asn1Error):
        asn1.Reader(b"\x02\x00").integer()
    with pytest.raises(Asn1Error):
        asn1.Reader(b"\x18\x0f2030010200000X").generalized_time()
    assert asn1.Reader(asn1.generalized_time("20300102000000Z")).generalized_time() == \
        "20300102000000Z"
    assert asn1.length(0xDE) == b"\x82\x00\xde"           # RTDS's form
    assert asn1.length(0xDE, der=True) == b"\x81\xde"


_CS02B_PAYLOADS = [m.payload for _, m in ASN1_VECTORS if _kind(m) == "cs02b_command"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_CS02B_PAYLOADS), st.integers(0, 2000), st.integers(0, 255),
       st.booleans())
def test_mutated_payloads_agree_or_fail_cleanly(payload, where, value, truncate):
    where %= len(payload)
    data = payload[:where] if truncate else payload[:where] + bytes([value]) + payload[where + 1:]
    try:
        ours = credentials.parse_command(data)
    except Asn1Error as exc:
        assert 0 <= exc.offset <= len(data)
        ours = None
    try:
        host = gbcs_asn1.decode("cs02b_command", data)
    except CodecError:
        host = None
    if ours is not None and host is not None:
        _same_command(ours, host)
        assert credentials.encode_command(ours) == gbcs_asn1.encode("cs02b_command", host)


# -- the device executes RTDS's own commands ---------------------------------------------------

def _ski(eui, usage):
    cert = KEYSTORE.certificate(eui, usage)
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _rtds_anchor(anchors, role, cell, eui, usages, key_ka_public=None):
    for usage in usages:
        public = KEYSTORE.public_key(eui, usage)
        slot = DS if usage == "ds" else KA
        if slot == KA and key_ka_public is not None:
            public = key_ka_public
        anchors.set_key(role, cell, slot, eui, public, _ski(eui, usage))


def _rtds_device(recipient):
    """A device with the anchors RTDS's responses name as existing (keystore keys and
    subject key ids); in RTDS the ACB's EUI also holds the network-operator cell."""
    anchors = TrustAnchors()
    device_ka = KEYSTORE.public_key(recipient, "ka")
    _rtds_anchor(anchors, codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB, ("ds", "ka"), device_ka)
    _rtds_anchor(anchors, codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER, ("ds", "ka"))
    _rtds_anchor(anchors, codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, SUPPLIER, ("pp-ka",))
    _rtds_anchor(anchors, codes.ROLE_NETWORK_OPERATOR, codes.CELL_MANAGEMENT, ACB, ("ds", "ka"))
    _rtds_anchor(anchors, codes.ROLE_TRANSITIONAL_COS, codes.CELL_MANAGEMENT, TRANSCOS, ("ds",))
    _rtds_anchor(anchors, codes.ROLE_WAN_PROVIDER, codes.CELL_MANAGEMENT, WAN_PROVIDER, ("ds",))
    _rtds_anchor(anchors, codes.ROLE_RECOVERY, codes.CELL_MANAGEMENT, RECOVERY, ("ds",))
    return DeviceSecurity(recipient, None, KEYSTORE.private_key(ACB, "ka"), CRYPTO, anchors)


def _rtds_pair(folder, stem):
    command = _message(f"{folder}/{stem}_COMMAND_GBCS.HEX")
    response = _message(f"{folder}/{stem}_RESPONSE_GBCS.HEX")
    return command, response


RTDS_IMMEDIATE = [
    ("6.23_CS02bSupplierByTransCoS", "CS02bSupplierByTransCoS_6.23_IMMEDIATE_SUCCESS"),
    ("6.15.1_CS02bSupplierBySupplier", "CS02bSupplierBySupplier_6.15.1_IMMEDIATE_SUCCESS"),
    ("6.15.1_CS02bSupplierBySupplier", "CS02bSupplierBySupplier_6.15.1_IMMEDIATE_ERROR"),
    ("6.21_CS02bNOByNOHandover", "CS02bNOByNOHandover_6.21_SUCCESS"),
    ("8.5_CS02bACBByACB", "CS02bACBByACB_8.5_SUCCESS"),
    ("NA_CS02bWPByWP", "CS02bWPByWP_NA_SUCCESS"),
]


@pytest.mark.parametrize("folder,stem", RTDS_IMMEDIATE, ids=[s for _, s in RTDS_IMMEDIATE])
def test_device_answers_rtds_credentials_commands_with_rtds_payloads(folder, stem):
    command, response = _rtds_pair(folder, stem)
    sec = _rtds_device(command.recipient)
    sec.accept_command(command)
    payload = sec.update_credentials(command)
    assert payload == response.payload
    outcome = credentials.parse_response(payload)
    for item in outcome.outcomes:
        cell = sec.anchors.get(item.cell.role, item.cell.cell_usage)
        slot = KA if item.cell.key_usage == codes.KEY_USAGE_KEY_AGREEMENT else DS
        assert cell.key(slot).eui == item.replacing_eui
        assert cell.key(slot).key_id == item.replacing_key_id


def test_rtds_failed_replacement_leaves_its_cell_alone():
    command, _ = _rtds_pair("6.15.1_CS02bSupplierBySupplier",
                            "CS02bSupplierBySupplier_6.15.1_IMMEDIATE_ERROR")
    sec = _rtds_device(command.recipient)
    before = sec.anchors.get(codes.ROLE_SUPPLIER).ka_public
    sec.accept_command(command)
    outcome = credentials.parse_response(sec.update_credentials(command))
    assert [o.status for o in outcome.outcomes] == [0, credentials.STATUS_NO_TRUST_ANCHOR, 0]
    assert sec.anchors.get(codes.ROLE_SUPPLIER).ka_public == before
    assert sec.anchors.get(codes.ROLE_SUPPLIER).ds_public != KEYSTORE.public_key(SUPPLIER, "ds")


def test_rtds_change_of_supplier_refuses_the_old_supplier():
    command, response = _rtds_pair("6.23_CS02bSupplierByTransCoS",
                                   "CS02bSupplierByTransCoS_6.23_IMMEDIATE_SUCCESS")
    old_supplier_command = _message("7.1_ECS42/ECS42_7.1_SUCCESS_COMMAND_GBCS.HEX")
    sec = _rtds_device(command.recipient)
    assert sec.accept_command(old_supplier_command, "ECS42").eui == SUPPLIER
    sec.accept_command(command, "CS02bSupplierByTransCoS")
    assert sec.update_credentials(command) == response.payload
    assert sec.anchors.get(codes.ROLE_SUPPLIER).eui == NEW_SUPPLIER
    assert sec.anchors.get(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT).eui == NEW_SUPPLIER
    assert sec.last_counter(NEW_SUPPLIER) == 0
    assert sec.specialist_floor(NEW_SUPPLIER) == 0
    assert sec.last_counter(SUPPLIER) == -1            # the old supplier's record is gone
    before = json.dumps(sec.state())
    replay = _message("7.1_ECS42/ECS42_7.1_SUCCESS_COMMAND_GBCS.HEX")
    replay.originator_counter += 1                     # a fresh counter does not help
    with pytest.raises(GbcsRefusal) as refused:
        sec.accept_command(replay, "ECS42")
    assert refused.value.reason == UNKNOWN_ORIGINATOR
    assert refused.value.alert_code == codes.ALERT_SOURCE_NOT_AUTHORISED
    assert json.dumps(sec.state()) == before


def test_rtds_future_dated_update_runs_later_and_alerts_like_rtds():
    for folder, stem, alert_name in (
            ("6.23_CS02bSupplierByTransCoS", "CS02bSupplierByTransCoS_6.23_FUTURE_DATED_SUCCESS",
             "CS02bSupplierByTransCoS_6.23_8F66_FUTURE_DATED_SUCCESS_ALERT_GBCS.HEX"),
            ("6.15.1_CS02bSupplierBySupplier",
             "CS02bSupplierBySupplier_6.15.1_FUTURE_DATED_SUCCESS",
             "CS02bSupplierBySupplier_6.15.1_8F66_FUTURE_DATED_SUCCESS_ALERT_GBCS.HEX"),
            ("6.15.1_CS02bSupplierBySupplier", "CS02bSupplierBySupplier_6.15.1_FUTURE_DATED_ERROR",
             "CS02bSupplierBySupplier_6.15.1_8F67_FUTURE_DATED_ERROR_ALERT_GBCS.HEX")):
        command, response = _rtds_pair(folder, stem)
        rtds_alert = _message(f"{folder}/{alert_name}")
        sec = _rtds_device(command.recipient)
        anchors_before = sec.anchors.state()
        sec.accept_command(command)
        assert sec.update_credentials(command) == response.payload      # accepted only
        assert sec.anchors.state() == anchors_before
        saved = json.loads(json.dumps(sec.state()))                     # survives a restart
        sec = DeviceSecurity.restore(saved, command.recipient, None,
                                     KEYSTORE.private_key(ACB, "ka"), CRYPTO)
        assert sec.pending_credentials_time() == credentials.parse_command(
            command.payload).execution_date_time
        recipient, alert_code, payload = sec.execute_pending_credentials()
        assert recipient == rtds_alert.recipient
        assert payload == rtds_alert.payload, stem
        assert alert_code == int(alert_name.split("_")[2], 16)
        assert sec.pending_credentials_time() is None


def test_rtds_cancellation_drops_the_pending_update():
    future, _ = _rtds_pair("6.23_CS02bSupplierByTransCoS",
                           "CS02bSupplierByTransCoS_6.23_FUTURE_DATED_SUCCESS")
    cancel, cancel_response = _rtds_pair("6.23_CS02bSupplierByTransCoS",
                                         "CS02bSupplierByTransCoS_6.23_CANCELLATION_SUCCESS")
    sec = _rtds_device(future.recipient)
    sec.accept_command(future)
    sec.update_credentials(future)
    assert sec.pending_credentials_time() is not None
    sec.accept_command(cancel)
    assert sec.update_credentials(cancel) == cancel_response.payload
    assert sec.pending_credentials_time() is None
    with pytest.raises(GbcsRefusal):
        sec.execute_pending_credentials()
    assert sec.anchors.get(codes.ROLE_SUPPLIER).eui == SUPPLIER


# -- change of supplier with a TestSmki: every key known, root anchor included ---------------

class Lab:
    """One ESME, its anchors issued by one TestSmki, and the parties that talk to it."""

    def __init__(self, seed=5):
        self.pki = smki.TestSmki(seed=seed)
        for eui, role, name in ((SUPPLIER, smki.ROLE_SUPPLIER, "OLD SUPPLIER"),
                                (NEW_SUPPLIER, smki.ROLE_SUPPLIER, "NEW SUPPLIER"),
                                (TRANSCOS, codes.ROLE_TRANSITIONAL_COS, "TRANSCOS"),
                                (ACB, smki.ROLE_ACB, "DCC")):
            self.pki.organisation(eui, role, name)
        self.pki.device(ESME)
        self.rogue = smki.TestSmki(seed=seed + 1000)
        self.rogue.organisation(NEW_SUPPLIER, smki.ROLE_SUPPLIER, "NEW SUPPLIER")

    def org(self, eui, usage="ds"):
        return self.pki.organisations[eui][usage]

    def device(self):
        anchors = TrustAnchors()
        root = self.pki.root
        anchors.set(codes.ROLE_ROOT, codes.CELL_MANAGEMENT, bytes(8),
                    ds_public=root.public_xy, ds_key_id=_cert_ski(root.certificate))
        for role, eui in ((codes.ROLE_SUPPLIER, SUPPLIER), (codes.ROLE_ACB, ACB),
                          (codes.ROLE_TRANSITIONAL_COS, TRANSCOS)):
            credentials_ = self.pki.organisations[eui]
            anchors.set(role, codes.CELL_MANAGEMENT, eui, ds_public=credentials_["ds"].public_xy,
                        ka_public=credentials_["ka"].public_xy,
                        ds_key_id=_cert_ski(credentials_["ds"].certificate),
                        ka_key_id=_cert_ski(credentials_["ka"].certificate))
        anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, SUPPLIER,
                    ka_public=self.org(SUPPLIER, "pp-ka").public_xy)
        device = self.pki.devices[ESME]
        return DeviceSecurity(ESME, device["ds"].private_key, device["ka"].private_key, CRYPTO,
                              anchors)

    def command(self, code, counter, payload, originator, signer=None, recipient=ESME):
        message = envelope.GbcsMessage(envelope.CRA_COMMAND, counter, originator, recipient,
                                       code, payload)
        if signer is not None:
            security.sign(CRYPTO, signer, message)
        shared = CRYPTO.ecdh(self.org(ACB, "ka").private_key, self.pki.devices[ESME]["ka"].public_xy)
        security.protect_mac(CRYPTO, shared, message)
        return envelope.parse(message.encode())

    def change_of_supplier_payload(self, counter, issuer=None, mode=7, targets=None,
                                   path=None):
        issuer = issuer or self.pki
        new = issuer.organisations[NEW_SUPPLIER]
        cells = targets or [
            (new["ds"], credentials.CellId(codes.ROLE_SUPPLIER, codes.KEY_USAGE_DIGITAL_SIGNATURE)),
            (new["ka"], credentials.CellId(codes.ROLE_SUPPLIER, codes.KEY_USAGE_KEY_AGREEMENT)),
            (new["pp-ka"], credentials.CellId(codes.ROLE_SUPPLIER, codes.KEY_USAGE_KEY_AGREEMENT,
                                              codes.CELL_PREPAYMENT)),
        ]
        control = credentials.Control(
            mode, counter,
            authorising_cell=credentials.CellId(codes.ROLE_TRANSITIONAL_COS,
                                                codes.KEY_USAGE_DIGITAL_SIGNATURE))
        replacements = [credentials.Replacement(_der(c.certificate), cell) for c, cell in cells]
        return credentials.encode_command(credentials.UpdateCommand(
            control, replacements, path or [_der(issuer.organisation_ca.certificate)]))

    def change_of_supplier(self, counter, **kwargs):
        payload = self.change_of_supplier_payload(counter, **kwargs)
        return self.command(codes.CS02B_SUPPLIER_BY_TRANSCOS, counter, payload, TRANSCOS,
                            self.org(TRANSCOS).private_key)


def _der(certificate):
    from cryptography.hazmat.primitives.serialization import Encoding
    return certificate.public_bytes(Encoding.DER)


def _cert_ski(certificate):
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


@pytest.fixture(scope="module")
def lab():
    return Lab()


def _refused(sec, message, use_case=None):
    before = json.dumps(sec.state())
    with pytest.raises(GbcsRefusal) as refused:
        sec.accept_command(message, use_case)
    assert json.dumps(sec.state()) == before
    return refused.value


def test_change_of_supplier_end_to_end(lab):
    sec = lab.device()
    supplier_ds = lab.org(SUPPLIER).private_key
    sec.accept_command(lab.command(codes.ECS42, 10, b"\xd9\x01", SUPPLIER, supplier_ds), "ECS42")
    cos = lab.change_of_supplier(500)
    sec.accept_command(cos, "CS02bSupplierByTransCoS")
    payload = sec.update_credentials(cos)
    outcome = credentials.parse_response(payload)
    assert [o.status for o in outcome.outcomes] == [0, 0, 0]
    assert all(o.existing_eui == SUPPLIER and o.replacing_eui == NEW_SUPPLIER
               for o in outcome.outcomes)
    assert outcome.authorising_seq_number == 500 and outcome.mode == 7
    host = gbcs_asn1.decode("cs02b_response", payload)
    _same_outcome(outcome, host.outcome)
    # the response goes back to the TransCoS, signed by the device
    reply = envelope.parse(sec.respond(cos, payload, DATE_TIME))
    assert reply.recipient == TRANSCOS and not reply.mac_protected
    assert security.verify_signature(CRYPTO, lab.pki.devices[ESME]["ds"].public_xy, reply)
    # the old supplier is refused, whatever its counter
    refusal = _refused(sec, lab.command(codes.ECS43, 11, b"\xd9\x02", SUPPLIER, supplier_ds),
                       "ECS43")
    assert refusal.reason == UNKNOWN_ORIGINATOR
    assert refusal.alert_code == codes.ALERT_SOURCE_NOT_AUTHORISED
    # the new supplier is obeyed, and its responses are MAC'd for its new KA key
    new_ds = lab.org(NEW_SUPPLIER).private_key
    command = lab.command(codes.ECS43, 1, b"\xd9\x03", NEW_SUPPLIER, new_ds)
    assert sec.accept_command(command, "ECS43").eui == NEW_SUPPLIER
    read = lab.command(codes.ECS17B, 2, b"\xd9\x04", NEW_SUPPLIER)
    sec.accept_command(read, "ECS17b")
    reply = envelope.parse(sec.respond(read, b"\xda\x00", DATE_TIME))
    new_side = CRYPTO.ecdh(lab.org(NEW_SUPPLIER, "ka").private_key,
                           lab.pki.devices[ESME]["ka"].public_xy)
    assert security.verify_mac(CRYPTO, new_side, reply)
    # the change of supplier survives a power cut
    again = DeviceSecurity.restore(json.loads(json.dumps(sec.state())), ESME,
                                   lab.pki.devices[ESME]["ds"].private_key,
                                   lab.pki.devices[ESME]["ka"].private_key, CRYPTO)
    assert again.anchors.get(codes.ROLE_SUPPLIER).eui == NEW_SUPPLIER
    assert _refused(again, lab.command(codes.ECS43, 12, b"\xd9", SUPPLIER, supplier_ds),
                    "ECS43").reason == UNKNOWN_ORIGINATOR


def test_change_of_supplier_attacks_are_refused_without_state_change(lab):
    sec = lab.device()
    sec.accept_command(lab.change_of_supplier(100), "CS02bSupplierByTransCoS")
    anchors = sec.anchors.state()
    good = lab.change_of_supplier(101)
    tampered = lab.change_of_supplier(102)
    tampered.payload = tampered.payload[:-1] + bytes([tampered.payload[-1] ^ 1])
    bad_mac = lab.change_of_supplier(103)
    bad_mac.mac = bytes(12)
    rogue_signed = lab.command(codes.CS02B_SUPPLIER_BY_TRANSCOS, 104,
                               lab.change_of_supplier_payload(104), TRANSCOS,
                               lab.rogue.organisations[NEW_SUPPLIER]["ds"].private_key)
    by_old_supplier = lab.command(codes.CS02B_SUPPLIER_BY_TRANSCOS, 105,
                                  lab.change_of_supplier_payload(105), SUPPLIER,
                                  lab.org(SUPPLIER).private_key)
    wrong_device = lab.command(codes.CS02B_SUPPLIER_BY_TRANSCOS, 106,
                               lab.change_of_supplier_payload(106), TRANSCOS,
                               lab.org(TRANSCOS).private_key, recipient=_eui("00DB1234567890A1"))
    cases = [(lab.change_of_supplier(100), STALE_COUNTER),
             (lab.change_of_supplier(99), STALE_COUNTER),
             (wrong_device, NOT_FOR_ME),
             (tampered, BAD_SIGNATURE),
             (bad_mac, BAD_MAC),
             (rogue_signed, BAD_SIGNATURE),
             (by_old_supplier, ROLE_NOT_ELIGIBLE)]
    for message, reason in cases:
        assert _refused(sec, message, "CS02bSupplierByTransCoS").reason == reason
    assert sec.anchors.state() == anchors
    sec.accept_command(good, "CS02bSupplierByTransCoS")          # still works afterwards
    sec.update_credentials(good)
    assert sec.anchors.get(codes.ROLE_SUPPLIER).eui == NEW_SUPPLIER


def test_credentials_that_exceed_authority_change_no_anchor(lab):
    sec = lab.device()
    anchors = sec.anchors.state()
    new = lab.pki.organisations[NEW_SUPPLIER]
    cases = [
        # mode 7 (supplier by TransCoS) may not touch the ACB's cell
        (lab.change_of_supplier(200, targets=[(new["ka"], credentials.CellId(
            codes.ROLE_ACB, codes.KEY_USAGE_KEY_AGREEMENT))]), TARGET_NOT_AUTHORISED),
        # the payload's mode must match the message code
        (lab.change_of_supplier(201, mode=2), WRONG_MODE),
    ]
    mismatched = lab.change_of_supplier_payload(999)       # seq number is not the counter
    cases.append((lab.command(codes.CS02B_SUPPLIER_BY_TRANSCOS, 202, mismatched, TRANSCOS,
                              lab.org(TRANSCOS).private_key), WRONG_SEQ_NUMBER))
    for message, reason in cases:
        sec.accept_command(message, "CS02bSupplierByTransCoS")
        with pytest.raises(GbcsRefusal) as refused:
            sec.update_credentials(message)
        assert refused.value.reason == reason
        assert sec.anchors.state() == anchors


def test_certificates_outside_the_root_are_not_installed(lab):
    sec = lab.device()
    anchors = sec.anchors.state()
    # the rogue PKI's certificates, with the rogue organisation CA as their path: the path
    # does not chain to the device's root anchor
    forged = lab.change_of_supplier(300, issuer=lab.rogue)
    sec.accept_command(forged, "CS02bSupplierByTransCoS")
    outcome = credentials.parse_response(sec.update_credentials(forged))
    assert [o.status for o in outcome.outcomes] == [credentials.STATUS_NO_TRUST_ANCHOR] * 3
    assert all(o.replacing_eui == SUPPLIER for o in outcome.outcomes)
    assert sec.anchors.state() == anchors
    # the rogue certificates with the genuine path: their signatures do not verify
    forged = lab.change_of_supplier(301, issuer=lab.rogue,
                                    path=[_der(lab.pki.organisation_ca.certificate)])
    sec.accept_command(forged, "CS02bSupplierByTransCoS")
    outcome = credentials.parse_response(sec.update_credentials(forged))
    assert all(o.status != credentials.STATUS_SUCCESS for o in outcome.outcomes)
    assert sec.anchors.state() == anchors
    # a DS certificate offered for the KA cell is a bad certificate
    new = lab.pki.organisations[NEW_SUPPLIER]
    wrong_usage = lab.change_of_supplier(302, targets=[(new["ds"], credentials.CellId(
        codes.ROLE_SUPPLIER, codes.KEY_USAGE_KEY_AGREEMENT))])
    sec.accept_command(wrong_usage, "CS02bSupplierByTransCoS")
    outcome = credentials.parse_response(sec.update_credentials(wrong_usage))
    assert outcome.outcomes[0].status == credentials.STATUS_BAD_CERTIFICATE
    assert sec.anchors.state() == anchors


def test_update_needs_an_accepted_command(lab):
    sec = lab.device()
    message = lab.change_of_supplier(400)
    with pytest.raises(GbcsRefusal):
        sec.update_credentials(message)                 # never went through accept_command
    assert sec.anchors.get(codes.ROLE_SUPPLIER).eui == SUPPLIER


def test_only_the_scheduling_party_may_cancel_or_replace_a_pending_update(lab):
    sec = lab.device()
    payload = lab.change_of_supplier_payload(700)
    command = credentials.parse_command(payload)
    command.execution_date_time = "20300102000000Z"
    future = lab.command(codes.CS02B_SUPPLIER_BY_TRANSCOS, 700, credentials.encode_command(command),
                         TRANSCOS, lab.org(TRANSCOS).private_key)
    sec.accept_command(future, "CS02bSupplierByTransCoS")
    assert credentials.parse_response(sec.update_credentials(future)) is None
    assert sec.pending_credentials_time() == "20300102000000Z"
    # the old supplier tries to cancel it with a supplier-by-supplier command of its own
    old = lab.pki.organisations[SUPPLIER]
    control = credentials.Control(2, 40, credentials.CellId(codes.ROLE_SUPPLIER,
                                                            codes.KEY_USAGE_DIGITAL_SIGNATURE))
    cancel = credentials.UpdateCommand(control, [credentials.Replacement(
        _der(old["ds"].certificate), credentials.CellId(codes.ROLE_SUPPLIER,
                                                        codes.KEY_USAGE_DIGITAL_SIGNATURE))],
        [_der(lab.pki.organisation_ca.certificate)], credentials.CANCEL_EXECUTION_DATE_TIME)
    message = lab.command(codes.CS02B_SUPPLIER_BY_SUPPLIER, 40, credentials.encode_command(cancel),
                          SUPPLIER, old["ds"].private_key)
    sec.accept_command(message, "CS02bSupplierBySupplier")
    with pytest.raises(GbcsRefusal) as refused:
        sec.update_credentials(message)
    assert refused.value.alert_code == codes.ALERT_SOURCE_NOT_AUTHORISED
    assert sec.pending_credentials_time() == "20300102000000Z"
    recipient, alert_code, alert_payload = sec.execute_pending_credentials()
    assert recipient == TRANSCOS and alert_code == codes.ALERT_FUTURE_DATED_ACTIONED
    assert sec.anchors.get(codes.ROLE_SUPPLIER).eui == NEW_SUPPLIER
    alert = envelope.parse(sec.alert(alert_code, alert_payload, recipient,
                                     message_code=codes.FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT))
    assert security.verify_signature(CRYPTO, lab.pki.devices[ESME]["ds"].public_xy, alert)
    host = gbcs_asn1.decode("cs02b_alert", alert.payload)
    assert host.alert_code == codes.ALERT_FUTURE_DATED_ACTIONED


_CERTIFICATES = [r.certificate for payload in _CS02B_PAYLOADS[:2]
                 for r in credentials.parse_command(payload).replacements]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_CERTIFICATES), st.integers(0, 600), st.integers(1, 255), st.booleans())
def test_mutated_certificates_parse_or_raise_asn1_error(cert, where, flip, truncate):
    where %= len(cert)
    data = cert[:where] if truncate else cert[:where] + bytes([cert[where] ^ flip]) + cert[where + 1:]
    try:
        parsed = credentials.parse_certificate(data)
    except Asn1Error as exc:
        assert 0 <= exc.offset <= len(data)
        return
    # what still parses keeps the fields' shapes the device relies on
    assert parsed.public_key is None or len(parsed.public_key) == 64
    assert parsed.subject_eui is None or len(parsed.subject_eui) == 8
    assert len(parsed.signature) == 64
