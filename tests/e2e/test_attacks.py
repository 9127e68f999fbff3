"""Attacks on the whole lab: each refused at the right hop (DCC, hub or device) with the
right DUIS response code or GBCS alert, and nothing changes on the devices (registers,
counters, supply state, credit, UTRN record, anchors, hub device log).

Messages the DCC would never send are put on the WAN between DCC and hub (`lab.inject`),
built the way the DCC builds them (emulator.usecases builders, the supplier's signature,
the ACB MAC) and then damaged; DUIS-level attacks go through a head-end to the DCC.
"""

import asyncio
import json

import pytest

from emulator import smki
from emulator.dcc import alert_code
from emulator.lab import ACB_EUI, ESME_EUI, SUPPLIER_EUIS, TRANSCOS_EUI, Lab
from emulator.usecases import USE_CASE_BUILDERS, BuildContext
from firmware.cosem.disconnect import DISCONNECTED
from firmware.gbcs import codes, envelope, security
from firmware.gbcs.envelope import CRA_ALERT, CRA_RESPONSE

SUPPLIER_A = SUPPLIER_EUIS["A"]
SUPPLIER_B = SUPPLIER_EUIS["B"]
STRANGER = bytes.fromhex("00DB1234567890FF")     # a device on no hub of this lab


def run(coroutine):
    return asyncio.run(coroutine)


class Attack:
    """A started lab, supplier A's commands built as the DCC builds them."""

    def __init__(self):
        self.lab = Lab(seed=3, wan="direct")
        self.crypto = self.lab.crypto
        self.head_end = self.lab.headends["A"]

    def org(self, eui, usage="ds"):
        return self.lab.pki.organisations[eui][usage]

    def command(self, use_case, params=None, counter=None, originator=SUPPLIER_A,
                recipient=ESME_EUI, signer=None):
        """GBCS bytes: payload from the builder, signed by `signer` (default the
        originator's DS key) when critical, MAC'd by the ACB for the device."""
        if counter is None:
            counter = self.head_end.next_counter()
        builder = USE_CASE_BUILDERS[use_case]
        device = self.lab.pki.devices[ESME_EUI]
        ctx = BuildContext(counter, originator, recipient, self.lab.now, self.crypto,
                           target_ka_public=device["ka"].public_xy)
        message = envelope.GbcsMessage(envelope.CRA_COMMAND, counter, originator, recipient,
                                       builder.message_code, builder.build(params or {}, ctx))
        if builder.critical:
            security.sign(self.crypto, signer or self.org(originator).private_key, message)
        shared = self.crypto.ecdh(self.org(ACB_EUI, "ka").private_key, device["ka"].public_xy)
        security.protect_mac(self.crypto, shared, message)
        return message.encode()

    def snapshot(self):
        return json.dumps(self.lab.snapshot(), sort_keys=True, default=str)


def _esme_alerts(lab, answers):
    """(alert codes, responses) among the hub's answers; every alert signed by the ESME."""
    alerts, responses = [], []
    for raw in answers:
        message = envelope.parse(raw)
        assert message.originator == ESME_EUI
        if message.cra_flag == CRA_ALERT:
            public = lab.pki.devices[ESME_EUI]["ds"].public_xy
            assert security.verify_signature(lab.crypto, public, message)
            alerts.append(alert_code(message))
        elif message.cra_flag == CRA_RESPONSE:
            responses.append(message)
    return alerts, responses


@pytest.fixture
def attack():
    a = Attack()
    run(a.lab.request("A", "7.2", ESME_EUI))            # supply off: a state to keep
    assert a.lab.esme.supply_state == DISCONNECTED
    return a


def _refused_by_device(a, data, alert):
    """Forwarded by the hub, refused by the ESME with `alert`, nothing changed."""
    before = a.snapshot()
    first = len(a.lab.hops)
    alerts, responses = _esme_alerts(a.lab, a.lab.inject(data))
    assert alerts == [alert] and responses == []
    assert a.snapshot() == before
    assert [h.name for h in a.lab.hops[first:]] == ["attacker → hub", "hub → ESME",
                                                    "ESME → hub", "hub → attacker"]


def test_replayed_counter_is_refused_by_the_esme(attack):
    data = attack.command("ECS42")
    alerts, responses = _esme_alerts(attack.lab, attack.lab.inject(data))
    assert alerts == [] and len(responses) == 1               # accepted once: supply on
    assert attack.lab.esme.supply_state != DISCONNECTED
    _refused_by_device(attack, data, codes.ALERT_FAILED_AUTHENTICATION_OTHER)


def test_lower_counter_is_refused_by_the_esme(attack):
    last = attack.head_end.counter
    _refused_by_device(attack, attack.command("ECS42", counter=last - 1),
                       codes.ALERT_FAILED_AUTHENTICATION_OTHER)


def test_tampered_payload_is_refused_by_the_esme(attack):
    data = bytearray(attack.command("ECS42"))
    message = envelope.parse(bytes(data))
    at = bytes(data).index(message.payload) + len(message.payload) - 1
    data[at] ^= 0x01                                    # the script selector
    _refused_by_device(attack, bytes(data), codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE)


def test_tampered_mac_is_refused_by_the_esme(attack):
    data = bytearray(attack.command("ECS42"))
    data[-1] ^= 0x80
    _refused_by_device(attack, bytes(data), codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE)


def test_signature_by_a_key_not_in_the_anchor_is_refused_by_the_esme(attack):
    rogue = smki.TestSmki(seed=99).derive_key("rogue supplier ds")
    _refused_by_device(attack, attack.command("ECS42", signer=rogue),
                       codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE)


def test_a_role_the_device_does_not_obey_is_refused_by_the_esme(attack):
    # the ACB may not operate the supply (codes.SENDER_ROLES: ECS42 is the supplier's)
    data = attack.command("ECS42", originator=ACB_EUI, counter=0x7000,
                          signer=attack.org(ACB_EUI).private_key)
    _refused_by_device(attack, data, codes.ALERT_SOURCE_NOT_AUTHORISED)


def test_a_role_not_eligible_for_the_srv_is_refused_by_the_dcc(attack):
    before = attack.snapshot()
    sent = len([e for e in attack.lab.dcc.events if e.kind == "sent"])
    outcome = run(attack.lab.request("N", "7.2", ESME_EUI))   # a network operator: not IS/GS
    assert outcome.response_code == "E2"
    assert len([e for e in attack.lab.dcc.events if e.kind == "sent"]) == sent
    assert [h.layer for h in outcome.hops] == ["duis", "duis"]   # never reached the WAN
    assert attack.snapshot() == before


def test_wrong_recipient_is_dropped_by_the_hub(attack):
    before = attack.snapshot()
    dropped = attack.lab.hub.stats.get("unknown recipient", 0)
    assert attack.lab.inject(attack.command("ECS42", recipient=STRANGER)) == []
    assert attack.lab.hub.stats.get("unknown recipient", 0) == dropped + 1
    assert attack.snapshot() == before


@pytest.mark.parametrize("damage", ["truncated", "absurd length"])
def test_malformed_envelopes_are_dropped_by_the_hub(attack, damage):
    data = attack.command("ECS42")
    if damage == "truncated":
        data = data[:-13]
    else:
        data = data[:7] + b"\x82\xff\xf0" + data[9:]   # MAC header length 65520
    before = attack.snapshot()
    han = len(attack.lab.han.log)
    assert attack.lab.inject(data) == []
    assert len(attack.lab.han.log) == han                    # nothing went on the HAN
    assert attack.snapshot() == before
    assert not attack.lab.hops[-1].ok                       # the observer cannot decode it


def test_replayed_utrn_is_refused_by_the_esme_with_the_duplicate_alert(attack):
    lab = attack.lab
    first = run(lab.run("A", lambda h: h.top_up(ESME_EUI, 500), "top-up"))
    assert first.ok
    credit = lab.esme.gbcs_objects.credits[0].amount
    before = json.loads(attack.snapshot())
    token = first.fields["utrn"]
    counter = attack.head_end.next_top_up_counter()      # a fresh counter, the same UTRN
    outcome = run(lab.run("A", lambda h: h.request("2.2", ESME_EUI, {"UTRN": token},
                                                  counter=counter), "replayed UTRN"))
    assert outcome.fields["results"] == [(3, 250)]       # ACTION other-reason
    alerts = run(attack.head_end.collect_alerts())
    assert [a.alert_code for a in alerts] == [codes.ALERT_DUPLICATE_UTRN]
    assert all(a.verified for a in alerts)
    after = json.loads(attack.snapshot())
    assert lab.esme.gbcs_objects.credits[0].amount == credit
    assert after["esme"]["utrns"] == before["esme"]["utrns"]
    assert after["esme"]["supply"] == before["esme"]["supply"]


def _change_supplier(attack):
    """Supplier A -> B on the ESME: SRV 6.23 from B through the DCC, whose Transitional CoS
    party signs the CS02b command (emulator/usecases/credentials.py)."""
    lab = attack.lab
    lab.routing.register_change_of_supplier(ESME_EUI, SUPPLIER_B)
    outcome = run(lab.run("B", lambda h: h.change_of_supplier(ESME_EUI), "6.23"))
    assert outcome.ok, outcome.checks
    cs02b = envelope.parse(outcome.hops[1].gbcs)
    assert cs02b.originator == TRANSCOS_EUI and cs02b.signature is not None


def test_the_old_supplier_is_refused_by_the_dcc_after_change_of_supplier(attack):
    lab = attack.lab
    _change_supplier(attack)
    assert lab.routing.get(ESME_EUI).supplier == SUPPLIER_B
    before = attack.snapshot()
    outcome = run(lab.request("A", "7.1", ESME_EUI))
    assert outcome.response_code == "E4"
    assert [h.layer for h in outcome.hops] == ["duis", "duis"]    # never reached the WAN
    assert lab.esme.supply_state == DISCONNECTED and attack.snapshot() == before


def test_the_old_supplier_is_refused_by_the_esme_after_change_of_supplier(attack):
    lab = attack.lab
    _change_supplier(attack)
    assert lab.esme_security.anchors.get(codes.ROLE_SUPPLIER).eui == SUPPLIER_B
    # A's signature no longer matches any supplier anchor: refused, nothing changes
    _refused_by_device(attack, attack.command("ECS42"), codes.ALERT_SOURCE_NOT_AUTHORISED)
    # and B now runs the meter
    assert run(lab.request("B", "7.1", ESME_EUI)).ok
    assert lab.esme.supply_state != DISCONNECTED


def test_requests_above_the_anomaly_threshold_are_quarantined_by_the_dcc():
    lab = Lab(seed=4, wan="direct", anomaly_thresholds={"7.4": (3, 3600)})
    assert all(run(lab.request("A", "7.4", ESME_EUI)).ok for _ in range(3))
    before = json.dumps(lab.snapshot(), sort_keys=True)
    outcome = run(lab.request("A", "7.4", ESME_EUI))
    assert outcome.response_code == "I99"                # acknowledged, quarantined
    assert [h.layer for h in outcome.hops] == ["duis", "duis"]       # not sent to the device
    assert [e.kind for e in lab.dcc.events][-1] == "quarantined"
    assert json.dumps(lab.snapshot(), sort_keys=True) == before
    assert run(lab.request("A", "4.1.1", ESME_EUI)).ok    # another SRV is not held back
