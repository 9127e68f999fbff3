"""CS02b Update Security Credentials, DCC side: the builders against RTDS 4.5.0 byte for
byte (6.15.1 supplier-by-supplier, 6.23 supplier-by-TransCoS, 6.21 NO-by-NO, 8.5
ACB-by-ACB), the readers on RTDS responses and future-dated alerts, and a change of
supplier by the Transitional CoS party through the DCC and the real comms hub
(firmware/devices/chf.py) to the ESME in the in-process lab.

The replacing certificates come from the RTDS keystore; the certification path
certificate (the organisation CA) is not in the keystore, so it is taken from the
command it travels in.
"""

import asyncio
import calendar
import pathlib
import time

import pytest

from emulator import dcc as D
from emulator.crypto import KeyStore
from emulator.lab import ACB_EUI, ESME_EUI, GSME_EUI, SUPPLIER_EUIS, TRANSCOS_EUI, Lab
from emulator.usecases import USE_CASE_BUILDERS, BuildContext, UseCaseError
from firmware.gbcs import codes, envelope, security
from firmware.gbcs import credentials as cs02
from firmware.gbcs.envelope import CRA_ALERT, CRA_COMMAND, GbcsMessage

VECTORS = pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs"
RTDS = VECTORS / "rtds-4.5.0"
KEYSTORE = KeyStore(VECTORS / "keystore")

# whose credentials each RTDS command installs (RTDS 4.5.0 keystore EUIs); None: the
# replacing certificates are fresh ones the keystore does not hold (a party replacing its
# own), so they are taken from the command like the path certificate
RTDS_CASES = [
    ("6.15.1_CS02bSupplierBySupplier", "CS02bSupplierBySupplier", None),
    ("6.23_CS02bSupplierByTransCoS", "CS02bSupplierByTransCoS", "90B3D51F30030000"),
    ("6.21_CS02bNOByNOHandover", "CS02bNOByNO", "90B3D51F30020000"),
    ("8.5_CS02bACBByACB", "CS02bACBByACB", None),
]
USAGES = {(codes.KEY_USAGE_DIGITAL_SIGNATURE, codes.CELL_MANAGEMENT): ("ds_certificate", "ds"),
          (codes.KEY_USAGE_KEY_AGREEMENT, codes.CELL_MANAGEMENT): ("ka_certificate", "ka"),
          (codes.KEY_USAGE_KEY_AGREEMENT, codes.CELL_PREPAYMENT): ("pp_ka_certificate", "pp-ka")}


def _load(path):
    return envelope.parse(bytes.fromhex(path.read_text().strip()))


def _seconds(text):
    return calendar.timegm(time.strptime(text, "%Y%m%d%H%M%SZ"))


def _rtds_params(message, new_party):
    """The parameters of an RTDS command as its DUIS request gives them: which of the new
    party's certificates, its floors, CPV checks and execution date-time."""
    sent = cs02.parse_command(message.payload)
    params = {"path_certificates": sent.path}
    for replacement in sent.replacements:
        key, usage = USAGES[(replacement.target.key_usage, replacement.target.cell_usage)]
        params[key] = (replacement.certificate if new_party is None
                       else KEYSTORE.certificate(bytes.fromhex(new_party), usage))
    if sent.control.cpv_checks == cs02.DISAPPLY_CPV_CHECKS:
        params["apply_cpv_checks"] = False
    if sent.execution_date_time == cs02.CANCEL_EXECUTION_DATE_TIME:
        params["cancel"] = True
    elif sent.execution_date_time is not None:
        params["execution_date_time"] = _seconds(sent.execution_date_time)
    return params


@pytest.mark.parametrize("folder,use_case,new_party", RTDS_CASES)
def test_rtds_commands_rebuilt_byte_for_byte(folder, use_case, new_party):
    files = sorted((RTDS / folder).glob("*_COMMAND_GBCS.HEX"))
    assert files
    builder = USE_CASE_BUILDERS[use_case]
    for path in files:
        message = _load(path)
        assert message.message_code == builder.message_code
        ctx = BuildContext(message.originator_counter, message.originator, message.recipient)
        built = builder.build(_rtds_params(message, new_party), ctx)
        assert built == message.payload, path.name


def test_rtds_6_23_rebuilt_from_the_duis_parameters():
    """The DCC's own mapping of a 6.23 body (SupplierFloorSeqNumber, the three
    certificates, the path) gives RTDS 6.23 IMMEDIATE byte for byte."""
    import base64
    message = _load(next((RTDS / "6.23_CS02bSupplierByTransCoS").glob("*IMMEDIATE*COMMAND*")))
    path = cs02.parse_command(message.payload).path[0]
    new = bytes.fromhex("90B3D51F30030000")

    def b64(usage):
        from cryptography.hazmat.primitives.serialization import Encoding
        return base64.b64encode(KEYSTORE.certificate(new, usage).public_bytes(Encoding.DER)
                                ).decode()
    body = {"SupplierFloorSeqNumber": 0, "SupplierPrepaymentTopUpFloorSeqNumber": 0,
            "SupplierReplacementCertificates": {
                "DigitalSigningCertificate": b64("ds"), "KeyAgreementCertificate": b64("ka"),
                "KeyAgreementTopUpCertificate": b64("pp-ka")},
            "CertificationPathCertificates": {"Certificate": base64.b64encode(path).decode()}}
    from emulator import duis
    use_case, params = D.use_case_params(duis.SERVICE_REQUESTS["6.23"], codes.ESME, body)
    assert use_case == "CS02bSupplierByTransCoS"
    ctx = BuildContext(message.originator_counter, message.originator, message.recipient)
    assert USE_CASE_BUILDERS[use_case].build(params, ctx) == message.payload


@pytest.mark.parametrize("folder,use_case,new_party", RTDS_CASES)
def test_rtds_responses_and_alerts_read(folder, use_case, new_party):
    builder = USE_CASE_BUILDERS[use_case]
    for path in sorted((RTDS / folder).glob("*_RESPONSE_GBCS.HEX")):
        fields = builder.read_response(_load(path).payload, None)
        assert fields["accepted"]
        immediate = "IMMEDIATE" in path.name or "_8.5_" in path.name or "_6.21_" in path.name
        assert fields["pending"] == (not immediate)
        if immediate:
            statuses = [o["status"] for o in fields["outcome"]["outcomes"]]
            assert fields["ok"] == ("ERROR" not in path.name)
            assert (codes.STATUS_SUCCESS in statuses)
            assert fields["outcome"]["seq_number"] == _load(path).originator_counter
    for path in sorted((RTDS / folder).glob("*_ALERT_GBCS.HEX")):
        message = _load(path)
        assert message.message_code == codes.FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT
        fields = builder.read_alert(message.payload)
        expected = (codes.ALERT_FUTURE_DATED_ACTIONED if "8F66" in path.name
                    else codes.ALERT_FUTURE_DATED_NOT_ACTIONED)
        assert fields["alert_code"] == expected
        assert fields["ok"] == (expected == codes.ALERT_FUTURE_DATED_ACTIONED)


def test_malformed_parameters_and_payloads_are_refused():
    builder = USE_CASE_BUILDERS["CS02bSupplierByTransCoS"]
    ctx = BuildContext(1, TRANSCOS_EUI, ESME_EUI)
    with pytest.raises(UseCaseError):
        builder.build({"path_certificates": []}, ctx)                 # replaces nothing
    with pytest.raises(UseCaseError):
        builder.build({"ds_certificate": b"\x04\x00"}, ctx)           # not a certificate
    with pytest.raises(UseCaseError):
        USE_CASE_BUILDERS["CS02bNOByNO"].build(
            {"pp_ka_certificate": KEYSTORE.certificate(bytes.fromhex("90B3D51F30010000"),
                                                       "pp-ka")}, ctx)
    with pytest.raises(UseCaseError):
        builder.read_response(b"\x30\x02\x05", ctx)
    with pytest.raises(UseCaseError):
        builder.read_alert(b"\x30\x00", ctx)


# -- change of supplier through the DCC and the real hub ---------------------------------------

OLD, NEW = SUPPLIER_EUIS["A"], SUPPLIER_EUIS["B"]


def _direct_command(lab, use_case, originator, signer, counter, params, target=ESME_EUI):
    """A command put on the WAN by `originator` itself (not through the DCC): built, signed
    with `signer` (critical) and MAC'd with the ACB's key, as the DCC would have."""
    builder = USE_CASE_BUILDERS[use_case]
    ctx = BuildContext(counter, originator, target, now=lab.now, crypto=lab.crypto)
    message = GbcsMessage(CRA_COMMAND, counter, originator, target, builder.message_code,
                          builder.build(params, ctx))
    if builder.critical:
        security.sign(lab.crypto, signer, message)
    acb_ka = lab.pki.organisations[ACB_EUI]["ka"].private_key
    security.protect_mac(lab.crypto, lab.crypto.ecdh(
        acb_ka, lab.pki.devices[target]["ka"].public_xy), message)
    return message.encode()


def _device_state(lab):
    """Supply, counters and trust anchors; a refusal moves only the alert counter (the
    alert it raises carries the next one)."""
    state = dict(lab.esme_security.state())
    del state["alert_counter"]
    return (lab.esme.supply_state, state)


def test_change_of_supplier_by_transcos_through_the_dcc_and_hub():
    async def scenario():
        lab = Lab(seed=4, wan="direct", record=False)
        lab.routing.register_change_of_supplier(ESME_EUI, NEW)
        cos = await lab.run("B", lambda h: h.change_of_supplier(ESME_EUI), "6.23", "6.23",
                            ESME_EUI)
        assert cos.ok, cos.response_code
        anchors = lab.esme_security.anchors
        assert anchors.get(codes.ROLE_SUPPLIER).eui == NEW
        assert anchors.get(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT).eui == NEW
        assert lab.routing.get(ESME_EUI).supplier == NEW

        # the new supplier is obeyed (a critical command, signed by B)
        before = lab.esme.supply_state
        obeyed = await lab.run("B", lambda h: h.disable_supply(ESME_EUI), "7.2", "7.2",
                               ESME_EUI)
        assert obeyed.ok, obeyed.response_code
        assert lab.esme.supply_state != before

        # the old supplier: refused by the DCC's routing ...
        state = _device_state(lab)
        refused = await lab.run("A", lambda h: h.enable_supply(ESME_EUI), "7.1", "7.1",
                                ESME_EUI)
        assert refused.response_code == "E4"
        assert _device_state(lab) == state

        # ... and by the device when A's signed command reaches it directly
        a_ds = lab.pki.organisations[OLD]["ds"].private_key
        data = _direct_command(lab, "ECS42", OLD, a_ds, 0x7000, {})
        answers = lab.inject(data)
        alerts = [envelope.parse(a) for a in answers]
        assert alerts and all(m.cra_flag == CRA_ALERT for m in alerts)
        assert [D.alert_code(m) for m in alerts] == [codes.ALERT_SOURCE_NOT_AUTHORISED]
        assert alerts[0].originator == ESME_EUI and alerts[0].recipient != OLD
        assert _device_state(lab) == state
    asyncio.run(scenario())


def test_future_dated_change_of_supplier_runs_when_due_and_alerts():
    """A 6.23 dated ahead is only accepted; when its time comes the ESME installs B's
    credentials and sends the TransCoS the signed 0x00CB alert (0x8F66), as RTDS shows."""
    async def scenario():
        lab = Lab(seed=5, wan="direct", record=False)
        org = lab.pki.organisations
        when = lab.now + 3600
        params = {"ds_certificate": org[NEW]["ds"], "ka_certificate": org[NEW]["ka"],
                  "pp_ka_certificate": org[NEW]["pp-ka"],
                  "path_certificates": [lab.pki.organisation_ca], "execution_date_time": when}
        data = _direct_command(lab, "CS02bSupplierByTransCoS", TRANSCOS_EUI,
                               org[TRANSCOS_EUI]["ds"].private_key, 0x9000, params)
        answers = [envelope.parse(a) for a in lab.inject(data)]
        builder = USE_CASE_BUILDERS["CS02bSupplierByTransCoS"]
        assert len(answers) == 1 and answers[0].recipient == TRANSCOS_EUI
        assert builder.read_response(answers[0].payload, None)["pending"]
        assert lab.esme_security.anchors.get(codes.ROLE_SUPPLIER).eui == OLD

        assert lab.esme_gbcs.credentials_due(when - 1) == []
        alerts = [envelope.parse(a) for a in lab.esme_gbcs.credentials_due(when)]
        assert len(alerts) == 1
        alert = alerts[0]
        assert alert.message_code == codes.FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT
        assert alert.recipient == TRANSCOS_EUI
        assert security.verify_signature(lab.crypto, lab.pki.devices[ESME_EUI]["ds"].public_xy,
                                         alert)
        fields = builder.read_alert(alert.payload)
        assert fields["ok"] and fields["alert_code"] == codes.ALERT_FUTURE_DATED_ACTIONED
        assert fields["execution_date_time"] == time.strftime("%Y%m%d%H%M%SZ",
                                                              time.gmtime(when))
        assert lab.esme_security.anchors.get(codes.ROLE_SUPPLIER).eui == NEW
        assert lab.esme_gbcs.credentials_due(when + 10) == []          # ran once
    asyncio.run(scenario())


def test_the_gsme_takes_a_change_of_supplier_and_refuses_the_old_supplier_after():
    """The GSME's GBCS port runs CS02b too (here straight into the port, as the GPF hands
    it over at the GSME's wake): B's credentials replace A's; a second CS02b from the old
    supplier A is refused with 0x8F30 (GBZ alert) and changes nothing."""
    lab = Lab(seed=6, wan="direct", record=False)
    org = lab.pki.organisations
    gsme = lab.gsme
    params = {"ds_certificate": org[NEW]["ds"], "ka_certificate": org[NEW]["ka"],
              "pp_ka_certificate": org[NEW]["pp-ka"],
              "path_certificates": [lab.pki.organisation_ca]}
    data = _direct_command(lab, "CS02bSupplierByTransCoS", TRANSCOS_EUI,
                           org[TRANSCOS_EUI]["ds"].private_key, 0x9100, params, GSME_EUI)
    answers = [envelope.parse(a) for a in gsme.receive_gbcs(data, lab.now)]
    assert len(answers) == 1 and answers[0].recipient == TRANSCOS_EUI
    assert security.verify_signature(lab.crypto, lab.pki.devices[GSME_EUI]["ds"].public_xy,
                                     answers[0])
    fields = USE_CASE_BUILDERS["CS02bSupplierByTransCoS"].read_response(answers[0].payload,
                                                                        None)
    assert fields["ok"] and len(fields["outcome"]["outcomes"]) == 3
    assert lab.gsme_security.anchors.get(codes.ROLE_SUPPLIER).eui == NEW

    before = dict(lab.gsme_security.state())
    stale = _direct_command(lab, "CS02bSupplierBySupplier", OLD,
                            org[OLD]["ds"].private_key, 0x9200, params, GSME_EUI)
    alerts = [envelope.parse(a) for a in gsme.receive_gbcs(stale, lab.now)]
    assert len(alerts) == 1 and alerts[0].cra_flag == CRA_ALERT
    from firmware.gbcs import gbz
    assert gbz.decode(alerts[0].payload).alert_code == codes.ALERT_SOURCE_NOT_AUTHORISED
    after = dict(lab.gsme_security.state())
    del before["alert_counter"], after["alert_counter"]
    assert after == before
