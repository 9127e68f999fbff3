"""The supplier head-end collects and checks late answers itself (HeadEnd.collect_responses):
a GSME's command that got I99 waits at the GPF for the GSME's next wake; the GSME's answer
comes up then, the DCC verifies it and queues it (emulator/dcc.py step 10), and the
head-end checks it as it checks an immediate answer: the DCC's XML signature, that it
answers a request this head-end sent and still awaits, the device's MAC or signature, and
the use case's reader. Run in the lab (seed 3, the WAN in process)."""

import asyncio

import pytest

from emulator.duis import DuisResponse, RequestId, XmlSigner
from emulator.lab import GSME_EUI, SUPPLIER_EUIS, Lab
from emulator.usecases.gsme import SUPPLY_OFF
from firmware.devices import gsme as gsme_module
from firmware.gbcs import codes, envelope

SUPPLIER_A = SUPPLIER_EUIS["A"]
ANSWERS = "response answers this request"


def run(coroutine):
    return asyncio.run(coroutine)


class HeldDcc:
    """The head-end's DCC, except that its late answers are the XML the test gives."""

    def __init__(self, dcc, late):
        self.dcc = dcc
        self.late = list(late)

    async def handle(self, xml):
        return await self.dcc.handle(xml)

    def take_alerts(self, eui):
        return self.dcc.take_alerts(eui)

    def take_responses(self, eui):
        out, self.late = self.late, []
        return out


def signed_like(response, signer, payload=None, request_id=None):
    """`response` again with another GBCS payload or RequestID, signed by `signer`."""
    request_id = request_id or response.request_id
    return DuisResponse(response.response_code, response.response_date_time,
                        request_id=request_id, response_id=request_id.swapped(),
                        service_reference=response.service_reference,
                        service_reference_variant=response.service_reference_variant,
                        gbcs_payload=response.gbcs_payload if payload is None else payload
                        ).to_xml(signer)


def failed(result):
    return [(hop, what) for hop, what, passed in result.checks if not passed]


@pytest.fixture
def lab():
    return Lab(seed=3, wan="direct")


def top_up_late_xml(lab, pence=400):
    """A's CS01b top-up of the GSME: I99, then the GSME's wake; the DCC's late answer for A
    taken from the DCC (signed DUIS XML), not yet given to the head-end."""
    outcome = run(lab.run("A", lambda h: h.top_up(GSME_EUI, pence), "A top-up"))
    assert outcome.response_code == "I99" and len(lab.gpf.queue) == 1
    lab.wake_gsme()
    [xml] = lab.dcc.take_responses(SUPPLIER_A)
    return outcome, xml


def test_a_critical_late_answer_is_checked_and_decoded(lab):
    """SRV 7.2 (GCS32, close the valve; critical: pre-command signed by A) waits at the
    GPF; at the wake the GSME closes the valve and its signed answer reaches A's head-end."""
    outcome = run(lab.run("A", lambda h: h.disable_supply(GSME_EUI), "valve", "7.2", GSME_EUI))
    assert outcome.response_code == "I99" and outcome.result.signed_pre_command is not None
    assert run(lab.collect_responses("A")) == []                 # nothing before the wake
    lab.wake_gsme()
    assert lab.gsme.valve == "closed"
    first = len(lab.hops)
    [late] = run(lab.collect_responses("A"))
    assert late.late and late.ok, late.checks
    assert late.code == "I0" and late.srv == "7.2" and late.use_case == "GCS32"
    assert late.request_id == outcome.result.request_id
    assert late.fields["supply_status"] == SUPPLY_OFF and late.fields["ok"] is True
    assert late.gbcs.originator == GSME_EUI and late.gbcs.signature is not None
    assert [(hop, what) for hop, what, _ in late.checks] == [
        ("DCC", "DUIS response signed by the DCC"), ("DCC", ANSWERS),
        ("device", "the device's answer is in the response"),
        ("device", "GBCS response answers the command"),
        ("device", "device signature verifies")]
    assert all(passed for _, _, passed in late.checks)
    # the lab records the late answer as a hop, with its observer's checks
    [hop] = lab.hops[first:]
    assert hop.name == "DCC → A head-end" and hop.ok and hop.gbcs == late.response.gbcs_payload
    assert run(lab.collect_responses("A")) == []                 # delivered once


def test_a_late_top_up_is_decoded_and_moves_the_credited_counter(lab):
    credited = dict(lab.headends["A"].utrn_credited)
    outcome, xml = top_up_late_xml(lab)
    head_end = lab.headends["A"]
    head_end.dcc = HeldDcc(head_end.dcc, [xml])
    [late] = run(head_end.collect_responses())
    assert late.ok, late.checks
    assert ("device", "device MAC verifies with our KA key", True) in late.checks
    assert late.fields["top_up_value"] == 400 * gsme_module.VALUE_PER_PENNY
    assert late.fields["result_type"] == 0
    assert envelope.parse(late.response.gbcs_payload).message_code == \
        codes.use_case("CS01b")[0]
    assert head_end.utrn_credited[GSME_EUI] == outcome.result.request_id.counter >> 32
    assert head_end.utrn_credited != credited


def test_a_tampered_late_answer_fails_the_device_check_and_the_genuine_one_still_counts(lab):
    outcome, xml = top_up_late_xml(lab)
    genuine = DuisResponse.from_xml(xml)
    tampered = bytearray(genuine.gbcs_payload)
    tampered[-1] ^= 0x01                                          # in the GSME's MAC
    signer = lab.dcc.xml_signer                                   # the DCC signs it: good
    head_end = lab.headends["A"]
    head_end.dcc = HeldDcc(head_end.dcc, [signed_like(genuine, signer, bytes(tampered))])
    [late] = run(head_end.collect_responses())
    assert not late.ok and late.fields == {}
    assert failed(late) == [("device", "device MAC verifies with our KA key")]
    assert ("DCC", "DUIS response signed by the DCC", True) in late.checks
    assert ("DCC", ANSWERS, True) in late.checks
    # a forgery does not settle the request: the genuine answer is still taken, once
    head_end.dcc.late = [xml, xml]
    first, again = run(head_end.collect_responses())
    assert first.ok, first.checks
    assert not again.ok and failed(again) == [("DCC", ANSWERS + " (none of ours awaits %s)"
                                               % outcome.result.request_id)]
    assert again.fields == {}


def test_a_late_answer_to_a_request_never_sent_is_not_trusted(lab):
    _, xml = top_up_late_xml(lab)
    genuine = DuisResponse.from_xml(xml)
    never = RequestId(SUPPLIER_A, GSME_EUI, genuine.request_id.counter + (1 << 32))
    signer = lab.dcc.xml_signer
    head_end = lab.headends["A"]
    other = lab.headends["B"]                   # B sent no such request either
    head_end.dcc = HeldDcc(head_end.dcc, [signed_like(genuine, signer, request_id=never)])
    other.dcc = HeldDcc(other.dcc, [xml])
    for late in run(head_end.collect_responses()) + run(other.collect_responses()):
        assert not late.ok and late.fields == {} and late.gbcs is None
        assert [what for _, what in failed(late)] == [
            ANSWERS + " (none of ours awaits %s)" % late.request_id]
    # and A's own request is still awaited: its genuine answer is taken
    head_end.dcc.late = [xml]
    [late] = run(head_end.collect_responses())
    assert late.ok, late.checks


def test_a_late_answer_not_signed_by_the_dcc_is_not_trusted(lab):
    _, xml = top_up_late_xml(lab)
    genuine = DuisResponse.from_xml(xml)
    b = lab.pki.organisations[SUPPLIER_EUIS["B"]]["ds"]
    head_end = lab.headends["A"]
    head_end.dcc = HeldDcc(head_end.dcc, [signed_like(genuine, XmlSigner(b.private_key,
                                                                         b.certificate))])
    [late] = run(head_end.collect_responses())
    assert not late.ok and late.response is None and late.fields == {}
    [(hop, what)] = failed(late)
    assert hop == "DCC" and what.startswith("DUIS response signed by the DCC: ")


def test_the_head_end_remembers_a_bounded_number_of_requests(lab, monkeypatch):
    """The oldest request that got I99 is forgotten first: its answer is then not trusted."""
    head_end = lab.headends["A"]
    monkeypatch.setattr(head_end._awaited, "limit", 1)      # AWAITED_KEPT, made 1
    results = [run(lab.run("A", lambda h: h.top_up(GSME_EUI, pence), "A top-up")).result
               for pence in (100, 200)]
    assert [r.code for r in results] == ["I99", "I99"]
    for _ in range(4):
        if not lab.gpf.queue:
            break
        lab.wake_gsme()
    late = run(head_end.collect_responses())
    assert [r.request_id for r in late] == [r.request_id for r in results]
    assert [r.ok for r in late] == [False, True]
    assert failed(late[0]) == [("DCC", ANSWERS + " (none of ours awaits %s)"
                                % results[0].request_id)]


def test_only_a_command_held_for_the_wake_is_acknowledged(lab, monkeypatch):
    """I99 says the answer will follow: the DCC gives it to a GSME command the GPF queues
    for the wake, and nothing else. A GSME read the GPF does not answer from its mirror
    (the GPF made silent here) is E21, as any device's silence is; the DCC's events say
    which."""
    queued = run(lab.run("A", lambda h: h.top_up(GSME_EUI, 300), "A top-up"))
    assert queued.response_code == "I99" and len(lab.gpf.queue) == 1
    monkeypatch.setattr(lab.gpf, "receive_gbcs", lambda data, now: [])
    silent = run(lab.request("A", "4.1.1", GSME_EUI))
    assert silent.response_code == "E21" and not silent.ok
    kinds = [(e.kind, e.detail.get("reason")) for e in lab.dcc.events
             if e.kind in ("acknowledged", "refused")]
    assert kinds[-2:] == [("acknowledged", "held for the device's wake"),
                          ("refused", "no_response")]
