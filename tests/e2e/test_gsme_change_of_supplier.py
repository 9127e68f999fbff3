"""Change of supplier for the sleeping gas meter (SRV 6.23, CS02b by the Transitional CoS
party), end to end in the lab: the CS02b waits at the GPF, runs at the GSME's next wake,
the GSME's late answer reaches the DCC, which completes the change (routing table:
GSME -> B) and sends B the response; the GPF follows the GSME's new anchors, so it obeys
B (reads, CS01b top-ups) and refuses A as the ESME refuses A after its change. Also: the
GPF's 0x8F84 (a command dropped after max_offers unanswered offers) reaches the supplier.
"""

import asyncio
import json

import pytest

from emulator.dcc import alert_code
from emulator.han.virtual import LinkProfile
from emulator.lab import (ACB_EUI, ESME_EUI, GSME_EUI, SUPPLIER_EUIS, TRANSCOS_EUI, Lab)
from emulator.usecases import USE_CASE_BUILDERS, BuildContext
from firmware.devices import gpf as gpf_module
from firmware.devices import gsme as gsme_module
from firmware.gbcs import codes, envelope, security
from firmware.gbcs import credentials as cs02
from firmware.gbcs.envelope import CRA_ALERT, CRA_RESPONSE

SUPPLIER_A = SUPPLIER_EUIS["A"]
SUPPLIER_B = SUPPLIER_EUIS["B"]


def run(coroutine):
    return asyncio.run(coroutine)


def supplier_anchor(device_security):
    return device_security.anchors.get(codes.ROLE_SUPPLIER).eui


def command(lab, use_case, originator, recipient, params=None):
    """GBCS bytes built as the DCC builds them for `originator` (its signature when
    critical, the ACB's MAC): what a supplier could put on the WAN past the DCC."""
    counter = lab.headends["A" if originator == SUPPLIER_A else "B"].next_counter()
    builder = USE_CASE_BUILDERS[use_case]
    device = lab.pki.devices[recipient]
    ctx = BuildContext(counter, originator, recipient, lab.now, lab.crypto,
                       target_ka_public=device["ka"].public_xy)
    message = envelope.GbcsMessage(envelope.CRA_COMMAND, counter, originator, recipient,
                                   builder.message_code, builder.build(params or {}, ctx))
    if builder.critical:
        security.sign(lab.crypto, lab.pki.organisations[originator]["ds"].private_key, message)
    acb = lab.pki.organisations[ACB_EUI]["ka"].private_key
    security.protect_mac(lab.crypto, lab.crypto.ecdh(acb, device["ka"].public_xy), message)
    return message.encode()


def collect(lab, supplier):
    """The supplier head-end's late answers (Results), fetched through the lab."""
    return run(lab.collect_responses(supplier))


def request_change(lab, device=GSME_EUI):
    lab.routing.register_change_of_supplier(device, SUPPLIER_B)
    return run(lab.run("B", lambda h: h.change_of_supplier(device), "6.23"))


def wake_captured(lab):
    """One GSME wake whose upstream messages the test holds instead of the DCC."""
    held = []
    deliver = lab.dcc.receive_upstream
    lab.dcc.receive_upstream = held.append
    try:
        lab.wake_gsme()
    finally:
        lab.dcc.receive_upstream = deliver
    return held


@pytest.fixture
def lab():
    return Lab(seed=3, wan="direct")


def test_srv_6_23_for_the_gsme_end_to_end(lab):
    gsme = lab.gsme
    outcome = request_change(lab)
    # the GSME sleeps: the CS02b waits at the GPF; nothing has changed yet anywhere
    assert outcome.response_code == "I99" and len(lab.gpf.queue) == 1
    cs02b = envelope.parse(lab.gpf.queue[0])
    assert cs02b.originator == TRANSCOS_EUI and cs02b.signature is not None
    assert supplier_anchor(lab.gsme_security) == supplier_anchor(lab.gpf.security) == SUPPLIER_A
    assert lab.routing.get(GSME_EUI).supplier == SUPPLIER_A
    assert collect(lab, "B") == []
    assert run(lab.request("B", "4.1.1", GSME_EUI)).response_code == "E4"   # not yet B's

    wakes = gsme.wakes
    up = lab.wake_gsme()
    assert gsme.wakes == wakes + 1 and not lab.gpf.queue
    [raw] = up
    answer = envelope.parse(raw)
    assert answer.cra_flag == CRA_RESPONSE and answer.originator == GSME_EUI
    assert answer.recipient == TRANSCOS_EUI
    assert answer.originator_counter == cs02b.originator_counter
    assert security.verify_signature(lab.crypto, lab.pki.devices[GSME_EUI]["ds"].public_xy,
                                     answer)
    outcome = cs02.parse_response(answer.payload)
    assert outcome.outcomes and all(o.status == codes.STATUS_SUCCESS for o in outcome.outcomes)
    # the GSME, the GPF and the DCC all moved to B
    assert supplier_anchor(lab.gsme_security) == supplier_anchor(lab.gpf.security) == SUPPLIER_B
    assert lab.routing.get(GSME_EUI).supplier == SUPPLIER_B
    assert lab.routing.get(GSME_EUI).incoming_supplier is None
    assert lab.routing.get(ESME_EUI).supplier == SUPPLIER_A          # only the GSME moved
    [late] = collect(lab, "B")
    assert late.ok and late.code == "I0", late.checks
    assert late.response.request_id == late.request_id == outcome_request_id(lab)
    assert late.srv == "6.23" and late.use_case == "CS02bSupplierByTransCoS"
    assert late.response.gbcs_payload == raw
    assert ("device", "device signature verifies", True) in late.checks
    assert late.fields["ok"] is True and len(late.fields["outcomes"]) == len(outcome.outcomes)
    assert collect(lab, "B") == []                              # delivered once
    assert [e.kind for e in lab.dcc.events if e.kind == "cos"] == ["cos"]

    # B reads the gas registers: answered by the GPF at once, with B's key
    read = run(lab.request("B", "4.1.1", GSME_EUI))
    assert read.ok, read.checks
    assert read.fields["current_summation_delivered"] == lab.gpf.mirror["summation"]
    # A is refused at the DCC (E4), as for the ESME; nothing reaches the WAN
    for srv in ("4.1.1", "2.2"):
        first = len(lab.hops)
        if srv == "2.2":
            refused = run(lab.run("A", lambda h: h.top_up(GSME_EUI, 300), "A top-up"))
        else:
            refused = run(lab.request("A", srv, GSME_EUI))
        assert refused.response_code == "E4"
        assert [h.layer for h in lab.hops[first:]] == ["duis", "duis"]
    assert not lab.gpf.queue

    # B tops up the GSME: CS01b queued at the GPF, credited at the next wake
    credit = gsme.credit
    top_up = run(lab.run("B", lambda h: h.top_up(GSME_EUI, 700), "B top-up"))
    assert top_up.response_code == "I99" and len(lab.gpf.queue) == 1
    lab.wake_gsme()
    assert gsme.credit == credit + 700 * gsme_module.VALUE_PER_PENNY
    [late] = collect(lab, "B")
    assert late.ok and late.code == "I0", late.checks
    assert envelope.parse(late.response.gbcs_payload).message_code == \
        codes.use_case("CS01b")[0]
    assert late.fields["top_up_value"] == 700 * gsme_module.VALUE_PER_PENNY
    assert late.fields["result_type"] == 0
    assert ("device", "device MAC verifies with our KA key", True) in late.checks


def outcome_request_id(lab):
    """The RequestID of B's 6.23 as the DCC recorded it."""
    [sent] = [e for e in lab.dcc.events if e.kind == "sent" and e.srv == "6.23"]
    return sent.request_id


def test_the_old_supplier_bypassing_the_dcc_is_refused_as_the_esme_refuses_it(lab):
    # before the change the GPF takes A's valve command into its queue
    lab.inject(command(lab, "GCS32", SUPPLIER_A, GSME_EUI))
    assert len(lab.gpf.queue) == 1
    lab.wake_gsme()
    assert lab.gsme.valve == "closed" and not lab.gpf.queue
    assert request_change(lab).response_code == "I99"           # the GSME's: at its wake
    assert request_change(lab, ESME_EUI).ok
    lab.wake_gsme()
    assert supplier_anchor(lab.gpf.security) == supplier_anchor(lab.esme_security) == SUPPLIER_B
    before = json.dumps(lab.snapshot(), sort_keys=True, default=str)
    gpf_before = json.dumps(lab.gpf.state(), sort_keys=True)

    # A's commands put on the WAN past the DCC: each refused with the same alert
    esme_up = lab.inject(command(lab, "ECS42", SUPPLIER_A, ESME_EUI))
    gsme_up = lab.inject(command(lab, "GCS39", SUPPLIER_A, GSME_EUI))   # valve open
    gas_read = lab.inject(command(lab, "GCS13a", SUPPLIER_A, GSME_EUI))
    refusals = []
    for up, device in ((esme_up, ESME_EUI), (gsme_up, GSME_EUI), (gas_read, GSME_EUI)):
        [raw] = up
        alert = envelope.parse(raw)
        assert alert.cra_flag == CRA_ALERT and alert.originator == device
        assert security.verify_signature(lab.crypto, lab.pki.devices[device]["ds"].public_xy,
                                         alert) or alert.mac_protected
        refusals.append((alert_code(alert), alert.recipient))
    assert refusals == [(codes.ALERT_SOURCE_NOT_AUTHORISED, ACB_EUI)] * 3
    assert lab.gsme.valve == "closed" and not lab.gpf.queue
    after = json.loads(json.dumps(lab.snapshot(), sort_keys=True, default=str))
    assert after["esme"] == json.loads(before)["esme"]
    assert json.loads(gpf_before)["security"]["anchors"] == lab.gpf.state()["security"]["anchors"]

    # and the GPF obeys B: B's valve command is queued and run at the wake
    lab.inject(command(lab, "GCS39", SUPPLIER_B, GSME_EUI))
    assert len(lab.gpf.queue) == 1
    lab.wake_gsme()
    assert lab.gsme.valve != "closed" and not lab.gpf.queue


def test_the_gpf_follows_only_the_change_the_gsme_made(lab):
    """A CS02b the GSME never receives (every hand-over lost, dropped after max_offers)
    leaves the GPF, the GSME and the DCC with supplier A."""
    assert request_change(lab).response_code == "I99"
    lab.han.links[GSME_EUI] = LinkProfile(loss=0.8)
    for _ in range(60):
        if not lab.gpf.queue:
            break
        lab.wake_gsme()
    assert not lab.gpf.queue
    assert supplier_anchor(lab.gsme_security) == supplier_anchor(lab.gpf.security) == SUPPLIER_A
    assert lab.routing.get(GSME_EUI).supplier == SUPPLIER_A
    assert collect(lab, "B") == []
    # A still runs the gas meter through the GPF
    assert run(lab.request("A", "4.1.1", GSME_EUI)).ok


def test_a_forged_or_repeated_late_answer_changes_nothing_at_the_dcc(lab):
    request_change(lab)
    [raw] = wake_captured(lab)
    assert supplier_anchor(lab.gsme_security) == SUPPLIER_B
    assert lab.routing.get(GSME_EUI).supplier == SUPPLIER_A        # the DCC has not seen it
    forged = bytearray(raw)
    forged[-5] ^= 1                                                 # in the signature
    lab.dcc.receive_upstream(bytes(forged))
    lab.dcc.receive_upstream(b"\x00not gbcs")
    assert lab.routing.get(GSME_EUI).supplier == SUPPLIER_A
    assert collect(lab, "B") == []
    dropped = [e.detail["reason"] for e in lab.dcc.events if e.kind == "dropped"]
    assert "late answer: device signature does not verify" in dropped
    # the genuine answer still completes the change, once
    lab.dcc.receive_upstream(raw)
    lab.dcc.receive_upstream(raw)
    assert lab.routing.get(GSME_EUI).supplier == SUPPLIER_B
    assert len(collect(lab, "B")) == 1
    assert [e.kind for e in lab.dcc.events].count("cos") == 1


def test_the_gpf_and_gsme_keep_the_new_anchors_across_state_round_trips(lab):
    request_change(lab)
    lab.wake_gsme()
    saved = json.loads(json.dumps(lab.gpf.state()))
    fresh = gpf_module.GasProxyFunction(GSME_EUI, lab._security(GSME_EUI), lab.crypto)
    assert supplier_anchor(fresh.security) == SUPPLIER_A            # as it left the factory
    fresh.load_state(saved)
    assert supplier_anchor(fresh.security) == SUPPLIER_B
    assert fresh.state() == saved
    # a malformed state is refused and changes nothing
    broken = dict(saved, queue=["zz"])
    with pytest.raises(ValueError):
        fresh.load_state(broken)
    assert fresh.state() == saved
    gsme_saved = json.loads(json.dumps(lab.gsme.state()))
    assert gsme_saved["security"]["anchors"] == saved["security"]["anchors"]
    other = Lab(seed=3, wan="direct").gsme
    other.load_state(gsme_saved)
    assert supplier_anchor(other.security) == SUPPLIER_B and other.state() == gsme_saved


class DeafGsme:
    """The GSME's HAN node with its receiver out of the hub's reach: it wakes and polls,
    and every frame the hub sends it is lost."""

    def __init__(self, node):
        self.node = node
        self.lost = 0

    def poll(self, now):
        return self.node.poll(now)

    def receive_tunnel(self, data, now):
        self.lost += 1
        return []


def wake_until_dropped(lab, wakes=60):
    offers = []
    for _ in range(wakes):
        if not lab.gpf.queue:
            break
        lab.wake_gsme()
        offers.append(lab.gpf.offers)
    assert not lab.gpf.queue and max(offers) == lab.gpf.max_offers
    return offers


def undelivered_alerts(lab, supplier):
    alerts = run(lab.headends[supplier].collect_alerts())
    return [(a.alert_code, a.verified, a.device, a.recipient) for a in alerts]


def test_the_gpf_undelivered_alert_reaches_the_supplier(lab):
    """A's CS01b for the GSME waits at the GPF; the hub's frames to the GSME are all lost,
    so every hand-over fails; after max_offers offers the GPF drops the command and raises
    0x8F84, which goes up through the hub to the DCC and on to A, protected as the GSME's."""
    credit = lab.gsme.credit
    assert run(lab.run("A", lambda h: h.top_up(GSME_EUI, 500), "A top-up")).response_code \
        == "I99"
    deaf = DeafGsme(lab.han.nodes[GSME_EUI])
    lab.han.attach(GSME_EUI, deaf)
    assert wake_until_dropped(lab) == [1, 2, 3, 0]
    # three offers lost, then the empty GET-RESPONSE after the drop
    assert deaf.lost == 4 and lab.gsme.credit == credit                # never credited
    assert undelivered_alerts(lab, "A") == [
        (gpf_module.ALERT_UNDELIVERED, True, GSME_EUI, SUPPLIER_A)]
    assert [h.name for h in lab.hops if h.gbcs and alert_code(envelope.parse(h.gbcs))
            == gpf_module.ALERT_UNDELIVERED] == ["hub (GPF) → DCC"]
    assert collect(lab, "A") == [] and undelivered_alerts(lab, "B") == []


def test_loss_on_the_gsme_link_ends_in_the_undelivered_alert(lab):
    """The same over the virtual HAN with 80% loss on the GSME's link (seeded): no offer's
    GET-RESPONSE and PUT both get through, so A hears 0x8F84 and no answer. (Whether the
    GSME ran the command is what 0x8F84 cannot say: a lost PUT looks the same.)"""
    assert run(lab.run("A", lambda h: h.top_up(GSME_EUI, 500), "A top-up")).response_code \
        == "I99"
    lab.han.links[GSME_EUI] = LinkProfile(loss=0.8)
    wake_until_dropped(lab)
    assert undelivered_alerts(lab, "A") == [
        (gpf_module.ALERT_UNDELIVERED, True, GSME_EUI, SUPPLIER_A)]
    assert collect(lab, "A") == []


def test_a_late_answer_that_comes_up_beside_another_commands_answer_completes_too(lab):
    """The GSME's wake falls due while the hub carries another request (A reads the ESME):
    its answer to the CS02b comes up with that request's answer, and the DCC still takes
    it as the late answer it awaits."""
    request_change(lab)
    lab.now = lab.gsme.next_wake - 1                  # lab.run adds the request's second
    wakes = lab.gsme.wakes
    read = run(lab.request("A", "4.1.1", ESME_EUI))
    assert read.ok and lab.gsme.wakes == wakes + 1
    assert lab.routing.get(GSME_EUI).supplier == SUPPLIER_B
    assert supplier_anchor(lab.gpf.security) == SUPPLIER_B
    [late] = collect(lab, "B")
    assert late.ok and late.code == "I0" and late.fields["ok"], late.checks


def test_the_demo_leaves_the_gsme_change_to_a_premise_that_wakes_the_gsme(lab):
    """On a ZigBee premise the hub's HAN is not the lab's virtual HAN: the demo skips the
    gas change of supplier (it cannot run the GSME's wake) and changes nothing."""
    from emulator.lab import _gas_change_of_supplier
    assert lab.wakes_gsme_here()
    lab.hub.han_send = lambda eui, data: None          # as ZigbeePremise takes it over
    assert not lab.wakes_gsme_here()
    [step] = run(_gas_change_of_supplier(lab, SUPPLIER_A, SUPPLIER_B))
    assert step.skipped and "virtual HAN" in step.skipped
    assert lab.routing.get(GSME_EUI).incoming_supplier is None and not lab.gpf.queue
