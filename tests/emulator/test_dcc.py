"""The DCC (emulator/dcc.py) against a real ESME: DUIS in, GBCS to the device through a
stand-in hub (an async callable GBCS -> answers, what emulator/wan.py will carry), DUIS out.

The premise is the device core's own ESME (`firmware.devices.esme_gbcs.EsmeGbcs`) with a
`DeviceSecurity` whose trust anchors come from a run-time TestSmki, so every refusal is
also checked for what it must not do: reach the device, or change it.
"""

import asyncio
import time

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from emulator import dcc as D
from emulator import duis
from emulator.crypto import HostCrypto
from emulator.duis import DuisRequest, RequestId, XmlSigner
from emulator.smki import TestSmki
from emulator.usecases import USE_CASE_BUILDERS, BuildContext, UseCase
from firmware.cosem.disconnect import CONNECTED, DISCONNECTED
from firmware.devices import esme_gbcs as G
from firmware.devices.esme import Esme
from firmware.dlms import cosem_datetime as cdt
from firmware.gbcs import codes, security
from firmware.gbcs import credentials as cs02
from firmware.gbcs.anchors import TrustAnchors
from firmware.gbcs.device_security import DeviceSecurity, GbcsRefusal
from firmware.gbcs.envelope import CRA_ALERT, CRA_COMMAND, CRA_RESPONSE, parse
from firmware.sim.clock import SteppedClock
from tests.firmware.test_esme import START, tiny_profile

ACB = bytes.fromhex("90B3D51F30000002")
TRANSCOS = bytes.fromhex("90B3D51F30000004")
SUPPLIER_A = bytes.fromhex("90B3D51F30010000")
SUPPLIER_B = bytes.fromhex("90B3D51F30020000")
NETWORK = bytes.fromhex("90B3D51F30030000")
OTHER_USER = bytes.fromhex("90B3D51F30040000")
STRANGER = bytes.fromhex("90B3D51F30050000")
ESME = bytes.fromhex("00DB1234567890A0")
GSME = bytes.fromhex("00DB1234567890A1")
HUB = bytes.fromhex("00DB1234567890A2")
NOW = START + 2 * 86400 + 3600
_DER = Encoding.DER

CRYPTO = HostCrypto()
SMKI = TestSmki(seed=11)
ORGS = {
    ACB: SMKI.organisation(ACB, codes.ROLE_ACB, "DCC ACB"),
    TRANSCOS: SMKI.organisation(TRANSCOS, codes.ROLE_TRANSITIONAL_COS, "DCC TransCoS"),
    SUPPLIER_A: SMKI.organisation(SUPPLIER_A, codes.ROLE_SUPPLIER, "Supplier A"),
    SUPPLIER_B: SMKI.organisation(SUPPLIER_B, codes.ROLE_SUPPLIER, "Supplier B"),
    NETWORK: SMKI.organisation(NETWORK, codes.ROLE_NETWORK_OPERATOR, "DNO"),
    OTHER_USER: SMKI.organisation(OTHER_USER, codes.ROLE_OTHER, "Other user"),
}
STRANGER_CREDS = TestSmki(seed=12).organisation(STRANGER, codes.ROLE_SUPPLIER, "not ours")
DEVICES = {ESME: SMKI.device(ESME), GSME: SMKI.device(GSME)}
USERS = [ORGS[e] for e in (SUPPLIER_A, SUPPLIER_B, NETWORK, OTHER_USER)]


def run(coroutine):
    return asyncio.run(coroutine)


def key(eui, usage):
    return ORGS[eui][usage].private_key


def public(eui, usage):
    source = ORGS.get(eui) or DEVICES[eui]
    return source[usage].public_xy


class SimClock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


class Premise:
    """Stand-in for the comms hub and its HAN: the GBCS a DCC sends reaches the ESME (CS02b
    credentials updates through `DeviceSecurity.update_credentials`, as firmware/devices/
    chf.py runs them), and the ESME's answers come back. `seen` records what arrived."""

    def __init__(self, clock):
        self.clock = clock
        anchors = TrustAnchors()
        anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER_A,
                    ds_public=public(SUPPLIER_A, "ds"), ka_public=public(SUPPLIER_A, "ka"))
        anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, SUPPLIER_A,
                    ka_public=public(SUPPLIER_A, "pp-ka"))
        anchors.set(codes.ROLE_NETWORK_OPERATOR, codes.CELL_MANAGEMENT, NETWORK,
                    ds_public=public(NETWORK, "ds"), ka_public=public(NETWORK, "ka"))
        anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB, ds_public=public(ACB, "ds"),
                    ka_public=public(ACB, "ka"))
        anchors.set(codes.ROLE_TRANSITIONAL_COS, codes.CELL_MANAGEMENT, TRANSCOS,
                    ds_public=public(TRANSCOS, "ds"))
        self.security = DeviceSecurity(ESME, DEVICES[ESME]["ds"].private_key,
                                       DEVICES[ESME]["ka"].private_key, CRYPTO, anchors)
        meter_clock = SteppedClock(START)
        self.esme = Esme(tiny_profile(), meter_clock, seed=3)
        meter_clock.set(NOW)
        self.esme.advance(NOW)
        self.port = G.EsmeGbcs(self.esme, self.security, CRYPTO)
        self.seen = []

    async def send(self, data):
        return self.receive(data)

    def receive(self, data):
        self.seen.append(bytes(data))
        message = parse(data)
        if message.recipient != ESME:
            return []
        if message.message_code in codes.CS02B_CODES:
            return self._credentials(message)
        return self.port.receive_gbcs(data, self.clock())

    def _credentials(self, message):
        try:
            self.security.accept_command(message)
            payload = self.security.update_credentials(message)
        except GbcsRefusal:
            return []
        return [self.security.respond(message, payload, cdt.datetime_bytes(self.clock()))]

    def supply_state(self):
        return self.esme.disconnect.control_state


class CoSStandIn(UseCase):
    """Stand-in for emulator/usecases/credentials.py (not in the tree yet): CS02b supplier
    by TransCoS as RTDS 6.23 shapes it (authorising cell TransCoS DS, the supplier's three
    cells, its floors as otherRemotePartySeqNumberChanges)."""

    name = "CS02bSupplierByTransCoS"

    def build(self, params, ctx):
        supplier = codes.ROLE_SUPPLIER
        cells = ((params["ds_certificate"], cs02.CellId(supplier, 0)),
                 (params["ka_certificate"], cs02.CellId(supplier, 4)),
                 (params["pp_ka_certificate"], cs02.CellId(supplier, 4, codes.CELL_PREPAYMENT)))
        control = cs02.Control(
            codes.CS02B_MODE[self.message_code], ctx.counter,
            cs02.CellId(codes.ROLE_TRANSITIONAL_COS, 0),
            other_changes=[cs02.SeqNumberChange(supplier, params["floor"],
                                                [(0, params["prepayment_floor"])])])
        when = params.get("execution_date_time")
        return cs02.encode_command(cs02.UpdateCommand(
            control, [cs02.Replacement(der, cell) for der, cell in cells if der],
            params["path_certificates"],
            None if when is None else time.strftime("%Y%m%d%H%M%SZ", time.gmtime(when))))

    def read_response(self, payload, ctx):
        return {"outcome": cs02.parse_response(payload)}


def builders():
    table = dict(USE_CASE_BUILDERS)
    table.setdefault("CS02bSupplierByTransCoS", CoSStandIn())
    return table


class Lab:
    def __init__(self, thresholds=None, link=None):
        self.clock = SimClock(NOW)
        self.premise = Premise(self.clock)
        self.routing = D.RoutingTable()
        self.routing.add(ESME, codes.ESME, HUB, SUPPLIER_A, public(ESME, "ds"),
                         public(ESME, "ka"), network_operator=NETWORK)
        self.routing.add(GSME, codes.GSME, HUB, SUPPLIER_A, public(GSME, "ds"),
                         public(GSME, "ka"))
        self.dcc = D.Dcc(USERS, self.routing, link or {HUB: self.premise.send}, thresholds,
                         acb=D.Party(ACB, key(ACB, "ds"), key(ACB, "ka"), counter=500),
                         transcos=D.Party(TRANSCOS, key(TRANSCOS, "ds"), key(TRANSCOS, "ka"),
                                          counter=6000),
                         xml_signer=XmlSigner(key(ACB, "ds"), ORGS[ACB]["ds"].certificate),
                         crypto=CRYPTO, clock=self.clock, builders=builders(),
                         organisation_ca=SMKI.organisation_ca.certificate)

    def submit(self, user, srv, counter, body=None, variant=1, target=ESME, signer=None,
               body_name=None):
        service = duis.SERVICE_REQUESTS.get(srv)
        request = DuisRequest(RequestId(user, target, counter), variant,
                              service.reference if service else srv, srv,
                              body_name or (service.body if service else "Unknown"), body)
        signer = signer or XmlSigner(key(user, "ds"), ORGS[user]["ds"].certificate)
        reply = run(self.dcc.submit(request.to_xml(signer)))
        assert reply.request_id == request.request_id
        assert reply.response_id == request.request_id.swapped()
        return reply

    def signed_pre_command(self, user, srv, counter, gbcs, variant=5, target=ESME):
        service = duis.SERVICE_REQUESTS[srv]
        request = DuisRequest.signed_pre_command(RequestId(user, target, counter),
                                                 service.reference, srv, gbcs, variant)
        signer = XmlSigner(key(user, "ds"), ORGS[user]["ds"].certificate)
        return run(self.dcc.submit(request.to_xml(signer)))

    def reasons(self, kind="refused"):
        return [e.detail.get("reason") for e in self.dcc.events if e.kind == kind]


def sign(gbcs, signer_key):
    message = parse(gbcs)
    security.sign(CRYPTO, signer_key, message)
    return message.encode()


# -- a request all the way -----------------------------------------------------------------

def test_non_critical_read_reaches_the_esme_and_its_response_comes_back():
    lab = Lab()
    reply = lab.submit(SUPPLIER_A, "4.1.1", 1000)
    assert reply.response_code == "I0" and reply.ok
    sent = parse(lab.premise.seen[0])
    assert (sent.originator, sent.recipient, sent.originator_counter) == (SUPPLIER_A, ESME, 1000)
    assert sent.message_code == codes.ECS17B and sent.mac_protected and sent.signature is None
    shared = CRYPTO.ecdh(key(ACB, "ka"), public(ESME, "ka"))
    assert security.verify_mac(CRYPTO, shared, sent)              # the ACB's MAC
    answer = parse(reply.gbcs_payload)
    assert answer.cra_flag == CRA_RESPONSE and answer.recipient == SUPPLIER_A
    assert security.verify_mac(CRYPTO, CRYPTO.ecdh(key(SUPPLIER_A, "ka"), public(ESME, "ka")),
                               answer)
    ctx = BuildContext(1000, SUPPLIER_A, ESME, crypto=CRYPTO, ka_private=key(SUPPLIER_A, "ka"),
                       target_ka_public=public(ESME, "ka"))
    fields = USE_CASE_BUILDERS["ECS17b"].read_response(answer.payload, ctx)
    assert fields["ok"] and fields["import_wh"] == lab.premise.esme.import_register.value[1] > 0
    assert [e.kind for e in lab.dcc.events] == ["sent", "answered"]


def test_signed_duis_response_verifies_with_the_dcc_certificate():
    lab = Lab()
    service = duis.SERVICE_REQUESTS["7.4"]
    request = DuisRequest(RequestId(SUPPLIER_A, ESME, 1000), 1, "7.4", "7.4", service.body)
    xml = run(lab.dcc.handle(request.to_xml(XmlSigner(key(SUPPLIER_A, "ds"),
                                                      ORGS[SUPPLIER_A]["ds"].certificate))))
    duis.verify_with_certificate(xml, ORGS[ACB]["ds"].certificate)
    reply = duis.DuisResponse.from_xml(xml)
    assert reply.response_code == "I0" and parse(reply.gbcs_payload).message_code == codes.ECS45
    with pytest.raises(duis.DuisError):
        duis.verify_with_certificate(xml, ORGS[SUPPLIER_A]["ds"].certificate)


# -- who may ask ----------------------------------------------------------------------------

def test_unknown_user_and_a_signature_by_another_key_are_refused_E1():
    lab = Lab()
    stranger = XmlSigner(STRANGER_CREDS["ds"].private_key, STRANGER_CREDS["ds"].certificate)
    assert lab.submit(STRANGER, "4.1.1", 1000, signer=stranger).response_code == "E1"
    # supplier A's RequestID, signed with a key that is not A's
    assert lab.submit(SUPPLIER_A, "4.1.1", 1001, signer=stranger).response_code == "E1"
    impostor = XmlSigner(key(SUPPLIER_B, "ds"), ORGS[SUPPLIER_A]["ds"].certificate)
    assert lab.submit(SUPPLIER_A, "4.1.1", 1002, signer=impostor).response_code == "E1"
    assert lab.premise.seen == []
    assert lab.reasons() == ["unknown_user", "bad_signature", "bad_signature"]


def test_a_tampered_signed_request_is_refused_E1():
    lab = Lab()
    service = duis.SERVICE_REQUESTS["7.4"]
    request = DuisRequest(RequestId(SUPPLIER_A, ESME, 1000), 1, "7.4", "7.4", service.body)
    xml = request.to_xml(XmlSigner(key(SUPPLIER_A, "ds"), ORGS[SUPPLIER_A]["ds"].certificate))
    tampered = xml.replace(b":1000<", b":1001<")
    assert run(lab.dcc.submit(tampered)).response_code == "E1"
    assert lab.premise.seen == []


def test_eligibility_follows_the_duis_request_matrix():
    lab = Lab()
    # 7.1 Enable Supply: IS only; a network operator (ED) and an other user (OU) may not
    assert lab.submit(NETWORK, "7.1", 1000, variant=4).response_code == "E2"
    assert lab.submit(OTHER_USER, "7.1", 1000, variant=4).response_code == "E2"
    # 2.2 Top Up: IS/GS only
    assert lab.submit(NETWORK, "2.2", 1 << 32, {"UTRN": "0" * 20}).response_code == "E2"
    # 4.1.1: ED may read registers; the DNO is this ESME's network operator
    assert lab.submit(NETWORK, "4.1.1", 1001).response_code == "I0"
    # 7.1 on a gas meter: no GBCS use case (gas valves are not enabled remotely)
    assert lab.submit(SUPPLIER_A, "7.1", 1000, variant=4, target=GSME).response_code == "E11"
    # an SRV the lab does not serve
    assert lab.submit(SUPPLIER_A, "3.1", 1001, body_name="DisplayMessage").response_code == "E11"
    assert len(lab.premise.seen) == 1


def test_routing_refuses_unknown_devices_and_users_not_responsible():
    lab = Lab()
    assert lab.submit(SUPPLIER_A, "4.1.1", 1000, target=HUB).response_code == "E19"
    assert lab.submit(SUPPLIER_B, "4.1.1", 1000).response_code == "E4"
    assert lab.premise.seen == []


def test_requests_go_to_the_hub_the_routing_table_names():
    other_hub = bytes.fromhex("00DB1234567890B2")
    got = []

    async def elsewhere(data):
        got.append(data)
        return []

    lab = Lab()
    lab.dcc.hub_link = {HUB: lab.premise.send, other_hub: elsewhere}
    assert lab.submit(SUPPLIER_A, "7.4", 1000).response_code == "I0"
    lab.routing.get(ESME).hub = other_hub
    assert lab.submit(SUPPLIER_A, "7.4", 1001).response_code == "E21"   # nobody answers there
    assert len(lab.premise.seen) == 1 and len(got) == 1
    lab.routing.get(ESME).hub = bytes.fromhex("00DB1234567890C2")
    assert lab.submit(SUPPLIER_A, "7.4", 1002).response_code == "E20"   # no link at all


# -- critical commands: transform, sign, send ---------------------------------------------

def test_critical_srv_transforms_to_a_pre_command_then_runs_signed():
    lab = Lab()
    assert lab.submit(SUPPLIER_A, "7.2", 1000, variant=1).response_code == "E12"
    reply = lab.submit(SUPPLIER_A, "7.2", 1001, variant=4)
    assert reply.response_code == "I0" and reply.gbcs_version == duis.GBCS_VERSION
    pre = parse(reply.pre_command)
    assert not pre.mac_protected and not pre.signature_field          # no signature field
    assert (pre.originator, pre.recipient, pre.originator_counter) == (SUPPLIER_A, ESME, 1001)
    assert pre.message_code == codes.ECS43 and pre.cra_flag == CRA_COMMAND
    assert lab.premise.seen == [] and lab.premise.supply_state() == CONNECTED
    signed = sign(reply.pre_command, key(SUPPLIER_A, "ds"))
    done = lab.signed_pre_command(SUPPLIER_A, "7.2", 1001, signed)
    assert done.response_code == "I0"
    assert lab.premise.supply_state() == DISCONNECTED
    sent = parse(lab.premise.seen[0])
    assert sent.signature == parse(signed).signature and sent.mac_protected
    answer = parse(done.gbcs_payload)
    assert not answer.mac_protected
    assert security.verify_signature(CRYPTO, public(ESME, "ds"), answer)   # critical: signed
    # the signed pre-command is used up: sending it again is refused
    again = lab.signed_pre_command(SUPPLIER_A, "7.2", 1001, signed)
    assert again.response_code == D.UNCONFIRMED_CODES["no_pre_command"]
    assert len(lab.premise.seen) == 1


@pytest.mark.parametrize("what", ["unsigned", "other key", "altered", "mac'd", "no transform"])
def test_bad_signed_pre_commands_are_refused_and_reach_nothing(what):
    lab = Lab()
    reply = lab.submit(SUPPLIER_A, "7.2", 1000, variant=4)
    message = parse(reply.pre_command)
    counter = 1000
    if what == "unsigned":
        message.signature_field = True                   # "00": a signature field, no signature
        gbcs, expected = message.encode(), "bad_pre_command_signature"
    elif what == "other key":
        gbcs, expected = sign(reply.pre_command, key(SUPPLIER_B, "ds")), "bad_pre_command_signature"
    elif what == "altered":
        message.payload = message.payload[:-1] + bytes((message.payload[-1] ^ 1,))
        security.sign(CRYPTO, key(SUPPLIER_A, "ds"), message)
        gbcs, expected = message.encode(), "pre_command_altered"
    elif what == "mac'd":
        security.sign(CRYPTO, key(SUPPLIER_A, "ds"), message)
        security.protect_mac(CRYPTO, b"\x01" * 32, message)
        gbcs, expected = message.encode(), "pre_command_altered"
    else:
        counter = 1001
        message.originator_counter = counter
        security.sign(CRYPTO, key(SUPPLIER_A, "ds"), message)
        gbcs, expected = message.encode(), "no_pre_command"
    refused = lab.signed_pre_command(SUPPLIER_A, "7.2", counter, gbcs)
    assert refused.response_code == D.UNCONFIRMED_CODES[expected]
    assert lab.reasons() == [expected]
    assert lab.premise.seen == [] and lab.premise.supply_state() == CONNECTED
    # the genuine signed pre-command still goes through afterwards
    good = lab.signed_pre_command(SUPPLIER_A, "7.2", 1000, sign(reply.pre_command,
                                                                key(SUPPLIER_A, "ds")))
    assert good.response_code == "I0" and lab.premise.supply_state() == DISCONNECTED


# -- counters -------------------------------------------------------------------------------

def test_request_counters_rise_strictly_per_user_top_ups_in_their_own_space():
    lab = Lab()
    stale = D.UNCONFIRMED_CODES["stale_counter"]
    assert lab.submit(SUPPLIER_A, "7.4", 2000).response_code == "I0"
    assert lab.submit(SUPPLIER_A, "7.4", 2000).response_code == stale      # replay
    assert lab.submit(SUPPLIER_A, "7.4", 1999).response_code == stale      # lower
    assert lab.submit(SUPPLIER_A, "4.1.1", 2000).response_code == stale    # other SRV, same user
    assert lab.submit(NETWORK, "4.1.1", 2000).response_code == "I0"       # another user's space
    # a top-up counter (low 32 bits zero, GBCS 14) lives apart from the general counters
    top_up = lab.submit(SUPPLIER_A, "2.2", 1 << 32, {"UTRN": "73946144332040217315"})
    assert top_up.response_code == "I0"                  # the device judges the UTRN itself
    assert lab.submit(SUPPLIER_A, "7.4", 2001).response_code == "I0"
    assert lab.submit(SUPPLIER_A, "2.2", 1 << 32, {"UTRN": "7" * 20}).response_code == stale
    # a top-up counter with low bits set cannot be a UTRN counter
    bad = lab.submit(SUPPLIER_A, "2.2", (2 << 32) + 1, {"UTRN": "7" * 20})
    assert bad.response_code == D.UNCONFIRMED_CODES["bad_parameters"]
    assert len(lab.premise.seen) == 4


def test_acb_originates_for_roles_the_device_does_not_know_with_its_own_counter():
    lab = Lab()
    first = lab.submit(OTHER_USER, "4.8.1", 77, {"ReadLogPeriod": {
        "StartDateTime": duis.date_time_text(NOW - 86400),
        "EndDateTime": duis.date_time_text(NOW)}})
    second = lab.submit(OTHER_USER, "4.8.1", 78, {"ReadLogPeriod": {
        "StartDateTime": duis.date_time_text(NOW - 3600),
        "EndDateTime": duis.date_time_text(NOW)}})
    assert first.response_code == "I0" and second.response_code == "I0"
    sent = [parse(raw) for raw in lab.premise.seen]
    assert [m.originator for m in sent] == [ACB, ACB]
    assert [m.originator_counter for m in sent] == [501, 502]           # the ACB's own
    assert [m.supplementary_remote_party for m in sent] == [OTHER_USER, OTHER_USER]
    assert [m.supplementary_remote_counter for m in sent] == [77, 78]
    answer = parse(first.gbcs_payload)
    assert answer.recipient == ACB      # MAC'd to the ACB: the DCC checked it before passing on
    assert security.verify_mac(CRYPTO, CRYPTO.ecdh(key(ACB, "ka"), public(ESME, "ka")), answer)


# -- what comes back is verified ------------------------------------------------------------

@pytest.mark.parametrize("fault,code", [("flip", "E45"), ("drop", "E21"), ("raise", "E20"),
                                        ("garbage", "E21")])
def test_device_answers_are_verified_before_they_are_passed_on(fault, code):
    lab = Lab()

    async def faulty(data):
        out = await lab.premise.send(data)
        if fault == "flip":
            return [o[:-70] + bytes((o[-70] ^ 1,)) + o[-69:] for o in out]
        if fault == "drop":
            return []
        if fault == "garbage":
            return [b"\xdd\x00\x01"]
        raise ConnectionError("WAN down")

    lab.dcc.hub_link = faulty
    reply = lab.submit(SUPPLIER_A, "7.2", 1000, variant=4)
    done = lab.signed_pre_command(SUPPLIER_A, "7.2", 1000,
                                  sign(reply.pre_command, key(SUPPLIER_A, "ds")))
    expected = D.UNCONFIRMED_CODES["response_unverified"] if code == "E45" else code
    assert done.response_code == expected and done.gbcs_payload is None


# -- threshold anomaly detection ------------------------------------------------------------

def test_requests_over_the_threshold_are_quarantined_and_reported():
    lab = Lab(thresholds={"7.4": (2, 3600), (NETWORK, "4.1.1"): (1, 60)})
    assert lab.submit(SUPPLIER_A, "7.4", 1000).response_code == "I0"
    lab.clock.now += 1000
    assert lab.submit(SUPPLIER_A, "7.4", 1001).response_code == "I0"
    lab.clock.now += 1000
    held = lab.submit(SUPPLIER_A, "7.4", 1002)
    assert held.response_code == "I99" and held.kind == duis.DCC_ALERT
    assert held.dcc_alert_code == "AD1"
    breach = held.dcc_alert["QuarantinedRequest"]["ADUserThresholdBreach"]
    assert breach["RequestID"] == str(RequestId(SUPPLIER_A, ESME, 1002))
    assert len(lab.premise.seen) == 2                     # quarantined: not sent
    quarantined = [e for e in lab.dcc.events if e.kind == "quarantined"]
    assert len(quarantined) == 1 and quarantined[0].detail["threshold"] == (2, 3600)
    # other users and other SRVs are counted apart
    assert lab.submit(SUPPLIER_A, "4.1.1", 1003).response_code == "I0"
    assert lab.submit(NETWORK, "4.1.1", 1).response_code == "I0"
    assert lab.submit(NETWORK, "4.1.1", 2).response_code == "I99"
    # the window slides: an hour after the first, one more fits
    lab.clock.now += 1700
    assert lab.submit(SUPPLIER_A, "7.4", 1004).response_code == "I0"
    # the quarantined request's counter was used: replaying it does not slip through later
    assert lab.submit(SUPPLIER_A, "7.4", 1002).response_code == D.UNCONFIRMED_CODES[
        "stale_counter"]


# -- change of supplier -----------------------------------------------------------------------

def _cos_body(new_supplier):
    creds = ORGS[new_supplier]

    def b64(usage):
        return duis.base64_text(creds[usage].certificate.public_bytes(_DER))

    return {"SupplierFloorSeqNumber": 0, "SupplierPrepaymentTopUpFloorSeqNumber": 0,
            "SupplierReplacementCertificates": {"DigitalSigningCertificate": b64("ds"),
                                                "KeyAgreementCertificate": b64("ka"),
                                                "KeyAgreementTopUpCertificate": b64("pp-ka")},
            "CertificationPathCertificates": {"Certificate": duis.base64_text(
                SMKI.organisation_ca.certificate.public_bytes(_DER))},
            "ApplyTimeBasedCPVChecks": False}



def test_change_of_supplier_moves_responsibility_and_the_old_supplier_is_refused_twice():
    lab = Lab()
    assert lab.submit(SUPPLIER_A, "7.4", 1000).response_code == "I0"
    # only the registered incoming supplier may ask for 6.23
    assert lab.submit(SUPPLIER_B, "6.23", 10, _cos_body(SUPPLIER_B)).response_code == "E4"
    lab.routing.register_change_of_supplier(ESME, SUPPLIER_B)
    assert lab.submit(SUPPLIER_A, "6.23", 1001, _cos_body(SUPPLIER_A)).response_code == "E4"
    seen = len(lab.premise.seen)
    reply = lab.submit(SUPPLIER_B, "6.23", 11, _cos_body(SUPPLIER_B))
    assert reply.response_code == "I0"
    command = parse(lab.premise.seen[seen])
    assert (command.originator, command.originator_counter) == (TRANSCOS, 6001)
    assert security.verify_signature(CRYPTO, public(TRANSCOS, "ds"), command)
    answer = parse(reply.gbcs_payload)
    assert security.verify_signature(CRYPTO, public(ESME, "ds"), answer)
    assert all(o.status == 0 for o in cs02.parse_response(answer.payload).outcomes)
    assert lab.routing.get(ESME).supplier == SUPPLIER_B
    assert [e.kind for e in lab.dcc.events][-1] == "cos"
    # the DCC refuses the old supplier; the new one is served
    assert lab.submit(SUPPLIER_A, "7.4", 1002).response_code == "E4"
    assert lab.submit(SUPPLIER_B, "7.4", 12).response_code == "I0"
    # and the device refuses the old supplier on its own: a DCC whose routing is wrong
    # lets A through, the ESME raises 0x8F30 (source has no authority) to the ACB
    lab.routing.get(ESME).supplier = SUPPLIER_A
    before = lab.premise.supply_state()
    reply = lab.submit(SUPPLIER_A, "7.4", 1003)
    assert reply.response_code == "E21"
    alerts = [e for e in lab.dcc.events if e.kind == "alert"]
    assert alerts[-1].detail["alert_code"] == "8F30" and alerts[-1].detail["recipient"] == ACB.hex()
    assert lab.premise.supply_state() == before


def test_future_dated_change_of_supplier_completes_on_the_devices_alert():
    lab = Lab()
    lab.routing.register_change_of_supplier(ESME, SUPPLIER_B)
    body = _cos_body(SUPPLIER_B)
    body["ExecutionDateTime"] = duis.date_time_text(NOW + 3600)
    reply = lab.submit(SUPPLIER_B, "6.23", 11, body)
    assert reply.response_code == "I0"
    assert cs02.parse_response(parse(reply.gbcs_payload).payload) is None   # accepted only
    assert lab.routing.get(ESME).supplier == SUPPLIER_A                    # not yet
    assert lab.dcc.events[-1].kind == "cos-pending"
    security_ = lab.premise.security
    recipient, code, payload = security_.execute_pending_credentials()
    alert = security_.alert(code, payload, recipient,
                            message_code=codes.FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT)
    assert recipient == TRANSCOS and code == codes.ALERT_FUTURE_DATED_ACTIONED
    forged = bytearray(alert)
    forged[-5] ^= 1
    run(lab.dcc.receive_alert(bytes(forged)))                  # not the device's signature
    assert lab.routing.get(ESME).supplier == SUPPLIER_A
    run(lab.dcc.receive_alert(alert))
    assert lab.routing.get(ESME).supplier == SUPPLIER_B
    assert lab.dcc.events[-1].kind == "cos" and lab.dcc.events[-1].detail["future_dated"]
    assert lab.submit(SUPPLIER_A, "7.4", 1000).response_code == "E4"
    assert lab.dcc.take_alerts(TRANSCOS) == []                # the DCC's own, not queued


def test_device_alerts_are_verified_and_queued_for_their_recipient():
    lab = Lab()
    stamp = cdt.datetime_bytes(NOW)
    alert = lab.premise.security.dlms_alert(codes.ALERT_SUPPLY_ARMED, SUPPLIER_A, stamp)
    run(lab.dcc.receive_alert(alert))
    forged = bytearray(alert)
    forged[-3] ^= 1
    run(lab.dcc.receive_alert(bytes(forged)))
    queued = lab.dcc.take_alerts(SUPPLIER_A)
    assert len(queued) == 1 and lab.dcc.take_alerts(SUPPLIER_A) == []
    duis.verify_with_certificate(queued[0], ORGS[ACB]["ds"].certificate)
    message = duis.DuisResponse.from_xml(queued[0])
    assert message.kind == duis.DEVICE_ALERT and message.alert_code == codes.ALERT_SUPPLY_ARMED
    assert message.gbcs_payload == alert and parse(alert).cra_flag == CRA_ALERT
    assert lab.reasons("dropped") == ["alert: device signature does not verify"]


def test_malformed_duis_is_a_duis_error_not_a_response():
    lab = Lab()
    for bad in (b"", b"<sr:Request", b"<!DOCTYPE x [<!ENTITY a 'b'>]><x/>", b"<x/>"):
        with pytest.raises(duis.DuisError):
            run(lab.dcc.submit(bad))
    assert lab.premise.seen == [] and lab.dcc.events == []


# -- through the WAN (emulator/wan.py) ---------------------------------------------------------

def test_requests_travel_the_tcp_wan_and_a_silent_device_is_E21():
    from emulator import wan

    async def scenario():
        lab = Lab()
        server = wan.WanServer(lab.premise.receive, region="north", seed=4, time_scale=0.002)
        port = await server.start()
        client = wan.WanClient(region="north", seed=4, time_scale=0.002)
        await client.connect("127.0.0.1", port)

        async def over_the_wan(data):
            answers = []
            try:
                answers.append(await client.request(data, timeout=2.0))
            except wan.WanTimeout:
                pass
            await asyncio.sleep(0.05)                 # alerts that follow the response
            answers.extend(client.unsolicited)
            del client.unsolicited[:]
            return answers

        async def timing_out(data):
            return [await client.request(data, timeout=0.3)]

        lab.dcc.hub_link = {HUB: over_the_wan}
        signer = XmlSigner(key(SUPPLIER_A, "ds"), ORGS[SUPPLIER_A]["ds"].certificate)
        try:
            read = await lab.dcc.submit(DuisRequest(
                RequestId(SUPPLIER_A, ESME, 1000), 1, "4.1", "4.1.1",
                "ReadInstantaneousImportRegisters").to_xml(signer))
            pre = await lab.dcc.submit(DuisRequest(
                RequestId(SUPPLIER_A, ESME, 1001), 4, "7.2", "7.2", "DisableSupply"
            ).to_xml(signer))
            done = await lab.dcc.submit(DuisRequest.signed_pre_command(
                RequestId(SUPPLIER_A, ESME, 1001), "7.2", "7.2",
                sign(pre.pre_command, key(SUPPLIER_A, "ds"))).to_xml(signer))
            lab.premise.security.own_eui = bytes(8)   # the device stops answering to its EUI
            lab.dcc.hub_link = {HUB: timing_out}
            silent = await lab.dcc.submit(DuisRequest(
                RequestId(SUPPLIER_A, ESME, 1002), 1, "7.4", "7.4",
                "ReadSupplyStatus").to_xml(signer))
        finally:
            await client.close()
            await server.close()
        return lab, read, done, silent

    lab, read, done, silent = run(scenario())
    assert read.response_code == "I0" and parse(read.gbcs_payload).message_code == codes.ECS17B
    assert done.response_code == "I0" and lab.premise.supply_state() == DISCONNECTED
    assert silent.response_code == "E21"
    assert lab.reasons()[-1] == "no_response"


def test_users_must_chain_to_the_organisation_ca():
    lab = Lab()
    with pytest.raises(Exception):
        D.Dcc(USERS + [STRANGER_CREDS], lab.routing, {}, acb=lab.dcc.acb,
              organisation_ca=SMKI.organisation_ca.certificate)
    dcc = D.Dcc(USERS + [STRANGER_CREDS], lab.routing, {}, acb=lab.dcc.acb)   # no CA given
    assert STRANGER in dcc.users and dcc.users[SUPPLIER_A].role == codes.ROLE_SUPPLIER
    assert dcc.users[OTHER_USER].role == codes.ROLE_OTHER
    assert D.duis_roles(codes.ROLE_OTHER) == ("OU",)
    assert D.duis_roles(codes.ROLE_SUPPLIER, codes.GSME) == ("GS",)
    assert D.duis_roles(codes.ROLE_ACB) == ()
