"""Stateful test of the DCC (emulator/dcc.py) on the lab's in-process premise
(emulator/lab.py, WAN "direct": head-ends -> DCC -> hub -> HAN -> ESME / GPF / GSME).

The machine plays three DCC users (suppliers A and B, network operator N) and a stranger:
service requests from each, eligible and not, critical (transform, sign, send) and not;
top-ups; HAN device log updates on the hub; change of supplier between A and B; and
requests the DCC must refuse: XML signatures that do not verify, a user it does not
know, replayed RequestIDs and documents, unknown devices, the wrong command variant,
altered or wrongly signed pre-commands. Invariants (issue 6):

- every DUIS request gets exactly one response, for its RequestID, signed by the DCC;
- a request the DCC refuses gets the DUIS refusal code and sends nothing to the hub:
  the devices are as they were;
- a request the DCC accepts sends exactly one GBCS command, and an I0 carries the
  device's response to that command;
- the originator counters the DCC sends rise strictly per (originator, device, counter
  space: top-ups run in their own space, GBCS 14);
- no RequestID is executed twice;
- the responsible supplier changes only by an accepted change of supplier (SRV 6.23).

Expected refusal codes come from the model below: the public DUIS request matrix's roles
(`duis.SERVICE_REQUESTS`), what each user role means for each fuel, and who the model
says is responsible for each device.
"""

import asyncio

from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from emulator import duis
from emulator.duis import DuisRequest, DuisResponse, RequestId, XmlSigner
from emulator.headend import HeadEndError
from emulator.lab import ESME_EUI, GSME_EUI, HUB_EUI, NETWORK_OPERATOR_EUI, SUPPLIER_EUIS, Lab
from emulator.smki import ROLE_SUPPLIER, TestSmki
from firmware.gbcs import codes, security
from firmware.gbcs.envelope import CRA_RESPONSE, parse
from tests.fuzz.budget import stateful_settings

USERS = {"A": SUPPLIER_EUIS["A"], "B": SUPPLIER_EUIS["B"], "N": NETWORK_OPERATOR_EUI}
SUPPLIERS = ("A", "B")
STRANGER_EUI = bytes.fromhex("90B3D51F300F0000")
STRANGER = TestSmki(seed=66).organisation(STRANGER_EUI, ROLE_SUPPLIER, "NOT A DCC USER")
NOWHERE = bytes.fromhex("00DB1234567890FF")           # a device the DCC does not know
CANDIDATE = bytes.fromhex("00DB1234567890B1")         # a HAN device for the hub's log
DEVICE_TYPES = {ESME_EUI: codes.ESME, GSME_EUI: codes.GSME, HUB_EUI: codes.CHF}
# DUIS user roles (import/export supplier, gas supplier; distributor, transporter) a
# supplier and a network operator act as, per fuel of the device
FUEL_ROLES = {
    "supplier": {codes.ESME: {"IS", "ES"}, codes.GSME: {"GS"}, codes.CHF: {"IS", "GS"}},
    "network": {codes.ESME: {"ED"}, codes.GSME: {"GT"}, codes.CHF: {"ED", "GT"}},
}
READS = ("4.1.1", "7.4")
CRITICAL = ("7.1", "7.2", "7.3")
REFUSALS = ("E1", "E2", "E4", "E11", "E12", "E19", "E40", "E42", "E43", "E44")
STALE, NO_PRE_COMMAND, ALTERED, BAD_PRE_SIGNATURE = "E40", "E42", "E43", "E44"
TOP_UP_STEP = 1 << 32


def event(text):
    """Count what happened for --hypothesis-show-statistics (also callable outside)."""
    if currently_in_test_context():
        hypothesis_event(text)


class Exchange:
    """One DUIS request, its response, and the GBCS the DCC sent to the hub meanwhile."""

    def __init__(self, xml, request, response, sent):
        self.xml = xml
        self.request = request
        self.response = response
        self.sent = sent

    @property
    def code(self):
        return self.response.response_code


class DuisTap:
    """What the head-ends see as the DCC: each exchange recorded and checked to have one
    response, for its RequestID, signed by the DCC."""

    def __init__(self, machine):
        self.machine = machine

    async def handle(self, xml):
        machine = self.machine
        request = DuisRequest.from_xml(xml)
        first = len(machine.sent)
        reply = await machine.lab.dcc.handle(xml)
        response = DuisResponse.from_xml(reply)
        duis.verify_with_certificate(reply, machine.dcc_certificate)
        assert response.request_id == request.request_id
        machine.exchanges.append(Exchange(bytes(xml), request, response,
                                          machine.sent[first:]))
        return reply

    def take_alerts(self, eui):
        return self.machine.lab.dcc.take_alerts(eui)


class DccMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.lab = Lab(seed=7, wan="direct", record=False)
        org = self.lab.pki.organisations
        self.dcc_certificate = self.lab.dcc.xml_signer.certificate
        self.sent = []                       # every GBCS command the DCC sent, parsed
        self.exchanges = []
        self.lab.dcc.hub_link = self._recording(self.lab.dcc.hub_link)
        tap = DuisTap(self)
        for head_end in self.lab.headends.values():
            head_end.dcc = tap
        self.signers = {name: XmlSigner(org[eui]["ds"].private_key, org[eui]["ds"].certificate)
                        for name, eui in USERS.items()}
        self.signers["X"] = XmlSigner(STRANGER["ds"].private_key, STRANGER["ds"].certificate)
        # the model
        self.supplier = {ESME_EUI: "A", GSME_EUI: "A"}
        self.incoming = None
        self.last_counter = {}               # (originator, device, space) -> counter
        self.executed = {}                   # RequestID -> commands sent for it
        self.replayable = []                 # (user, exchange) of executed requests
        self.utrn_counters = set()           # UTRN counters the ESME credited

    def _recording(self, link):
        """The DCC's hub link (one `async send` or a dict of them by hub, dcc.Dcc), with
        every command it carries kept in `self.sent`."""
        if isinstance(link, dict):
            return {hub: self._recording(send) for hub, send in link.items()}

        async def send(data):
            self.sent.append(parse(data))
            return await link(data)
        return send

    def teardown(self):
        self.loop.close()

    # -- driving -----------------------------------------------------------------------
    def _step(self, user, action):
        """Run `action(head_end)` as one lab step; the exchanges it made."""
        first = len(self.exchanges)
        outcome = self.loop.run_until_complete(self.lab.run(user, action, "fuzz", "-"))
        self.result = outcome.result         # the head-end's Result, when it made the step
        return self.exchanges[first:]

    def _raw(self, user, srv, target, variant=None, body=None, counter=None, signer=None,
             tamper=None):
        """A DUIS request the head-end would not make, as one lab step."""
        service = duis.SERVICE_REQUESTS[srv]
        head_end = self.lab.headends[user if user in USERS else "A"]
        eui = STRANGER_EUI if user == "X" else head_end.eui
        counter = head_end.next_counter() if counter is None else counter
        request = DuisRequest(RequestId(eui, target, counter),
                              variant or (4 if service.critical else 1), service.reference,
                              srv, service.body, body or {})
        xml = request.to_xml(signer or self.signers[user])
        if tamper is not None:
            xml = tamper(xml)

        async def send(_):
            return await head_end.dcc.handle(xml)
        return self._step("A", send)

    def _refused(self, exchanges, code, before):
        assert [e.code for e in exchanges] == [code], [e.code for e in exchanges]
        assert exchanges[0].sent == []
        assert self.lab.snapshot() == before
        event("refused %s" % code)

    def _accepted(self, exchanges, critical, codes_allowed):
        """The request went to its device once; returns the last exchange."""
        if critical:
            transform = exchanges[0]
            assert transform.code == duis.I0_SUCCESS and transform.sent == []
            assert transform.response.pre_command is not None
            exchanges = exchanges[1:]
        assert len(exchanges) == 1, [e.code for e in exchanges]
        done = exchanges[0]
        assert done.code in codes_allowed, (done.code, codes_allowed)
        assert len(done.sent) == 1
        command = done.sent[0]
        self._count(done.request.request_id, command)
        if done.code == duis.I0_SUCCESS:
            answer = parse(done.response.gbcs_payload)
            assert (answer.cra_flag, answer.originator, answer.originator_counter,
                    answer.message_code) == (CRA_RESPONSE, command.recipient,
                                             command.originator_counter, command.message_code)
        event("sent, %s" % done.code)
        return done

    def _count(self, request_id, command):
        key = str(request_id)
        assert key not in self.executed, "RequestID %s executed twice" % key
        self.executed[key] = command
        space = "top-up" if command.message_code in codes.TOP_UP_CODES else "general"
        slot = (command.originator, command.recipient, space)
        assert command.originator_counter > self.last_counter.get(slot, -1), slot
        self.last_counter[slot] = command.originator_counter

    # -- the model -----------------------------------------------------------------------
    def verdict(self, user, srv, target):
        """The DUIS refusal code the DCC must give, or None when it must send."""
        service = duis.SERVICE_REQUESTS[srv]
        kind = "network" if user == "N" else "supplier"
        if user == "X":
            return "E1"
        every_fuel = set().union(*FUEL_ROLES[kind].values())
        if not every_fuel & set(service.roles):
            return "E2"
        device_type = DEVICE_TYPES.get(target)
        if device_type is None:
            return "E19"
        if device_type not in service.use_cases:
            return "E11"
        if not FUEL_ROLES[kind][device_type] & set(service.roles):
            return "E2"
        if srv == "6.23":
            return None if user == self.incoming else "E4"
        if user == "N":
            return None                      # the network operator of every device here
        if target == HUB_EUI:
            responsible = set(self.supplier.values())
        else:
            responsible = {self.supplier[target]}
        return None if user in responsible else "E4"

    def answer_codes(self, user, srv, target):
        """What a request the DCC sends comes back with. The GPF queues the GSME's
        non-read commands for its next wake: the DCC acknowledges them (I99), the answer to
        follow. (The lab's devices are installed with the network operator's anchor, so
        what it may ask is answered.)"""
        if target == GSME_EUI and srv not in READS:
            return (duis.I99_ACKNOWLEDGED,)
        return (duis.I0_SUCCESS,)

    # -- service requests --------------------------------------------------------------
    @rule(user=st.sampled_from(sorted(USERS)), srv=st.sampled_from(READS + CRITICAL),
          device=st.sampled_from([ESME_EUI, GSME_EUI, HUB_EUI]))
    def service_request(self, user, srv, device):
        target = device
        critical = duis.SERVICE_REQUESTS[srv].critical
        verdict = self.verdict(user, srv, target)
        before = self.lab.snapshot()
        try:
            exchanges = self._step(user, lambda h: h.request(srv, target))
        except HeadEndError:                 # no use case there: the head-end won't build it
            exchanges = self._raw(user, srv, target)
        if verdict is not None:
            return self._refused(exchanges, verdict, before)
        done = self._accepted(exchanges, critical, self.answer_codes(user, srv, target))
        self.replayable.append((user, done))

    @rule(user=st.sampled_from(sorted(USERS)), device=st.sampled_from([ESME_EUI, GSME_EUI]),
          pence=st.integers(1, 5000))
    def top_up(self, user, device, pence):
        target = device
        verdict = self.verdict(user, "2.2", target)
        before = self.lab.snapshot()
        credit = self.lab.esme.gbcs_objects.credits[0]
        amount = credit.amount
        if user == "N":                      # no prepayment key to mint with
            head_end = self.lab.headends["N"]
            exchanges = self._raw("N", "2.2", target, body={"UTRN": "1" * 20},
                                  counter=head_end.next_top_up_counter())
        else:
            exchanges = self._step(user, lambda h: h.top_up(target, pence))
        if verdict is not None:
            return self._refused(exchanges, verdict, before)
        done = self._accepted(exchanges, False, self.answer_codes(user, "2.2", target))
        self.replayable.append((user, done))
        if target != ESME_EUI:
            return
        # the ESME answered; it credits a UTRN whose counter it has not accepted before,
        # whoever minted it (after a change of supplier the new one's first counters may
        # be ones the old one used: the device refuses them, GBCS 14)
        counter = done.request.request_id.counter
        accepted = self.result.fields.get("ok") is True
        event("top-up %s" % ("credited" if accepted else "refused by the ESME"))
        assert credit.amount == amount + (pence if accepted else 0), (amount, credit.amount)
        if accepted:
            assert counter not in self.utrn_counters, "UTRN counter %d credited twice" % counter
            self.utrn_counters.add(counter)

    @rule(user=st.sampled_from(sorted(USERS)), remove=st.booleans())
    def han_device_log(self, user, remove):
        verdict = self.verdict(user, "8.11", HUB_EUI)
        before = self.lab.snapshot()
        exchanges = self._step(user, lambda h: h.update_han_device_log(
            HUB_EUI, CANDIDATE, install_code=bytes(16), remove=remove))
        if verdict is not None:
            return self._refused(exchanges, verdict, before)
        done = self._accepted(exchanges, False, (duis.I0_SUCCESS,))
        assert self.lab.hub.knows(CANDIDATE) != remove
        self.replayable.append((user, done))

    # -- change of supplier ------------------------------------------------------------
    @rule(user=st.sampled_from(sorted(USERS)), registered=st.booleans())
    def change_of_supplier(self, user, registered):
        """SRV 6.23 for the ESME from `user`; `registered`: registration data first names
        `user` as the incoming supplier (only a supplier that is not already responsible)."""
        if registered and user in SUPPLIERS and user != self.supplier[ESME_EUI]:
            self.lab.routing.register_change_of_supplier(ESME_EUI, USERS[user])
            self.incoming = user
        verdict = self.verdict(user, "6.23", ESME_EUI)
        before = self.lab.snapshot()
        if user == "N":
            exchanges = self._raw("N", "6.23", ESME_EUI)
        else:
            exchanges = self._step(user, lambda h: h.change_of_supplier(ESME_EUI))
        if verdict is not None:
            return self._refused(exchanges, verdict, before)
        self._accepted(exchanges, False, (duis.I0_SUCCESS,))
        self.supplier[ESME_EUI], self.incoming = user, None
        event("change of supplier to %s" % user)
        anchor = self.lab.esme_security.anchors.get(codes.ROLE_SUPPLIER)
        assert anchor.eui == USERS[user]

    # -- requests the DCC must refuse --------------------------------------------------
    @rule(user=st.sampled_from(sorted(USERS)),
          how=st.sampled_from(["another user's key", "RequestID altered", "signature altered"]))
    def bad_signature(self, user, how):
        before = self.lab.snapshot()
        other = "B" if user == "A" else "A"
        if how == "another user's key":
            exchanges = self._raw(user, "7.4", ESME_EUI, signer=self.signers[other])
        elif how == "RequestID altered":
            exchanges = self._raw(user, "7.4", ESME_EUI, tamper=_bump_request_counter)
        else:
            exchanges = self._raw(user, "7.4", ESME_EUI, tamper=_flip_signature)
        self._refused(exchanges, "E1", before)

    @rule(srv=st.sampled_from(READS + CRITICAL))
    def unknown_user(self, srv):
        before = self.lab.snapshot()
        self._refused(self._raw("X", srv, ESME_EUI, counter=5000), "E1", before)

    @rule(user=st.sampled_from(sorted(USERS)), srv=st.sampled_from(READS + CRITICAL))
    def unknown_device(self, user, srv):
        before = self.lab.snapshot()
        expected = self.verdict(user, srv, NOWHERE)
        self._refused(self._raw(user, srv, NOWHERE), expected, before)

    @rule(user=st.sampled_from(sorted(USERS)), srv=st.sampled_from(READS + CRITICAL))
    def wrong_command_variant(self, user, srv):
        before = self.lab.snapshot()
        expected = self.verdict(user, srv, ESME_EUI) or "E12"
        variant = 1 if duis.SERVICE_REQUESTS[srv].critical else 4
        self._refused(self._raw(user, srv, ESME_EUI, variant=variant), expected, before)

    @precondition(lambda self: self.replayable)
    @rule(pick=st.integers(0, 10**6), how=st.sampled_from(["document", "RequestID"]))
    def replay(self, pick, how):
        user, done = self.replayable[pick % len(self.replayable)]
        request = done.request
        before = self.lab.snapshot()
        srv = request.service_reference_variant
        verdict = self.verdict(user, srv, request.request_id.target)
        if how == "document":
            signed_pre_command = request.command_variant in duis.CV_SIGNED_PRE_COMMAND
            expected = verdict or (NO_PRE_COMMAND if signed_pre_command else STALE)

            async def again(_):
                return await self.lab.headends[user].dcc.handle(done.xml)
            exchanges = self._step(user, again)
        else:
            if srv == "2.2":                 # a top-up's counter is in its own space
                return
            expected = self.verdict(user, "7.4", request.request_id.target) or STALE
            exchanges = self._raw(user, "7.4", request.request_id.target,
                                  counter=request.request_id.counter)
        self._refused(exchanges, expected, before)

    @rule(srv=st.sampled_from(CRITICAL), how=st.sampled_from(["altered", "signed by another"]))
    def bad_pre_command(self, srv, how):
        """A's critical request to the ESME (when A is its supplier): the transform, then a
        CV5 with a pre-command altered or signed by another user (refused), then the
        genuine one, which the DCC still holds and now sends."""
        user = self.supplier[ESME_EUI]
        other = "B" if user == "A" else "A"
        head_end = self.lab.headends[user]
        counter = head_end.next_counter()
        transform = self._raw(user, srv, ESME_EUI, counter=counter)
        assert [e.code for e in transform] == [duis.I0_SUCCESS] and transform[0].sent == []
        pre_command = parse(transform[0].response.pre_command)
        key = self.lab.pki.organisations[USERS[user]]["ds"].private_key
        if how == "altered":
            genuine_payload = pre_command.payload
            pre_command.payload = genuine_payload[:-1] + bytes((genuine_payload[-1] ^ 1,))
            expected = ALTERED
        else:
            key = self.lab.pki.organisations[USERS[other]]["ds"].private_key
            expected = BAD_PRE_SIGNATURE
        security.sign(self.lab.crypto, key, pre_command)
        before = self.lab.snapshot()
        self._refused(self._signed_pre_command(user, srv, counter, pre_command.encode()),
                      expected, before)
        genuine = parse(transform[0].response.pre_command)
        security.sign(self.lab.crypto, self.lab.pki.organisations[USERS[user]]["ds"].private_key,
                      genuine)
        exchanges = self._signed_pre_command(user, srv, counter, genuine.encode())
        done = self._accepted(exchanges, False, (duis.I0_SUCCESS,))
        self.replayable.append((user, done))

    def _signed_pre_command(self, user, srv, counter, gbcs):
        service = duis.SERVICE_REQUESTS[srv]
        request = DuisRequest.signed_pre_command(RequestId(USERS[user], ESME_EUI, counter),
                                                 service.reference, srv, gbcs)
        xml = request.to_xml(self.signers[user])

        async def send(head_end):
            return await head_end.dcc.handle(xml)
        return self._step(user, send)

    # -- invariants --------------------------------------------------------------------
    @invariant()
    def responsible_supplier_changes_only_by_change_of_supplier(self):
        for eui, user in self.supplier.items():
            assert self.lab.routing.get(eui).supplier == USERS[user]

    @invariant()
    def every_command_sent_belongs_to_one_request(self):
        assert len(self.sent) == len(self.executed)


def _bump_request_counter(xml):
    """The RequestID's counter raised by one after signing (a replay dressed as new)."""
    head, tail = xml.split(b"</sr:RequestID>", 1)
    prefix, counter = head.rsplit(b":", 1)
    return prefix + b":" + str(int(counter) + 1).encode() + b"</sr:RequestID>" + tail


def _flip_signature(xml):
    head, tail = xml.split(b"<ds:SignatureValue>", 1)
    value, rest = tail.split(b"</ds:SignatureValue>", 1)
    flipped = (b"B" if value[:1] == b"A" else b"A") + value[1:]
    return head + b"<ds:SignatureValue>" + flipped + b"</ds:SignatureValue>" + rest


TestDcc = DccMachine.TestCase
TestDcc.settings = stateful_settings()
