"""The whole GBCS flow in one process: suppliers' head-ends, the DCC, the WAN, the comms
hub (with its GPF), the virtual HAN, an ESME and a sleeping GSME, all issued from one
`TestSmki` (docs/GBCS_INTERFACES.md section 9; ARCHITECTURE.md "The path of one request").

    async with Lab(seed=0, region="south", loss=0.0) as lab:
        outcome = await lab.request("A", "4.1.1", ESME_EUI)        # DUIS in, values out
        outcome.ok, outcome.response_code, outcome.fields, outcome.hops
        lab.hops                       # every hop of every request, in order
        lab.snapshot()                 # device state: registers, counters, supply, credit
        lab.wake_gsme()                # the GSME's next wake; what it sends up reaches the DCC
        await lab.collect_responses("B")   # B's late answers (I99 at first), as B's Results
        lab.export_keystore(folder)    # the test PKI in the RTDS keystore layout

Every hop is recorded (`Hop`): its name, direction, bytes, and what was verified there
with the result. GBCS hops are checked by an observer holding the lab's keys with the
same code as `smets-emu decode --keystore` (emulator/decode.py), so what the demo prints
verifies the same way from an exported keystore. DUIS hops carry the DCC's verdict
(response code) and the head-end's check of the DCC's XML signature.

Time is simulated: `lab.now` (seconds since 1970) moves forward one second per request
and by whole wake intervals when the GSME is let sleep; nothing waits on the wall clock
except the WAN's TCP round trip (asyncio on 127.0.0.1) and its configured latency.
"""

from __future__ import annotations

import asyncio
import pathlib

from emulator import duis, smki, wan
from emulator.crypto import HostCrypto
from emulator.dcc import Dcc, Party, RoutingTable
from emulator.decode import FAILED, dissect, is_gbcs
from emulator.headend import HeadEnd
from emulator.duis import DuisRequest, DuisResponse, XmlSigner
from emulator.han.nodes import EsmeNode
from emulator.han.virtual import VirtualHan
from emulator.profiles import load_profile
from emulator.usecases import USE_CASE_BUILDERS
from firmware.devices import esme_gbcs, gpf, gsme
from firmware.devices.chf import CommsHub
from firmware.devices.esme import Esme
from firmware.gbcs import codes, envelope
from firmware.gbcs.anchors import TrustAnchors
from firmware.gbcs.device_security import DeviceSecurity
from firmware.han import tunnel
from firmware.sim.clock import SteppedClock

# EUI-64s as RTDS 4.5.0 gives them to the same parties
ACB_EUI = bytes.fromhex("90B3D51F30000002")
TRANSCOS_EUI = bytes.fromhex("90B3D51F30000004")
SUPPLIER_EUIS = {"A": bytes.fromhex("90B3D51F30010000"), "B": bytes.fromhex("90B3D51F30020000")}
NETWORK_OPERATOR_EUI = bytes.fromhex("90B3D51F30040000")
ESME_EUI = bytes.fromhex("00DB1234567890A0")
GSME_EUI = bytes.fromhex("00DB1234567890A1")
HUB_EUI = bytes.fromhex("00DB1234567890A2")
GPF_EUI = bytes.fromhex("00DB1234567890A3")
DEVICE_NAMES = {ESME_EUI: "ESME", GSME_EUI: "GSME", HUB_EUI: "hub", GPF_EUI: "GPF"}

HISTORY = 2 * 86400 + 600           # simulated seconds of metering before the lab opens
REQUEST_STEP = 1                    # simulated seconds per request
I0 = duis.I0_SUCCESS
DEMO_TOP_UP_B = 500                 # pence: supplier B's top-ups in the demo


class Hop:
    """One message crossing one boundary: `name` (e.g. "DCC → hub"), `direction` ("down"
    toward the device, "up" toward the head-end), `layer` ("duis", "wan", "han"), the
    bytes, the GBCS message inside (or None), and `checks`: [{check, result, detail}]."""

    def __init__(self, index, step, name, direction, layer, data, gbcs=None, checks=(),
                 note=""):
        self.index = index
        self.step = step
        self.name = name
        self.direction = direction
        self.layer = layer
        self.data = bytes(data)
        self.gbcs = None if gbcs is None else bytes(gbcs)
        self.checks = list(checks)
        self.note = note

    @property
    def ok(self):
        return not any(c["result"] == FAILED for c in self.checks)

    def to_json(self):
        return {"hop": self.index, "step": self.step, "name": self.name,
                "direction": self.direction, "layer": self.layer, "hex": self.data.hex(),
                "gbcs": None if self.gbcs is None else self.gbcs.hex(),
                "checks": self.checks, "ok": self.ok, "note": self.note}


class Outcome:
    """What a head-end got back for one step (its `emulator.headend.Result`) and the hops
    the step took."""

    def __init__(self, srv, target, result, hops=()):
        self.srv = srv
        self.target = target
        self.result = result
        self.hops = list(hops)

    @property
    def response_code(self):
        return self.result.code

    @property
    def fields(self):
        return self.result.fields

    @property
    def checks(self):
        return self.result.checks

    @property
    def ok(self):
        return self.result.ok and all(h.ok for h in self.hops)

    def __repr__(self):
        return "Outcome(%s, %s, ok=%s)" % (self.srv, self.response_code, self.ok)


class LabKeys:
    """The lab's keys in `emulator.crypto.KeyStore`'s shape (what decode's checks use)."""

    def __init__(self, pki):
        self.pki = pki

    def _credential(self, eui, usage):
        for table in (self.pki.organisations, self.pki.devices):
            credentials = table.get(bytes(eui))
            if credentials is not None:
                return credentials.get(usage)
        return None

    def public_key(self, eui, usage):
        credential = self._credential(eui, usage)
        return None if credential is None else credential.public_xy

    def private_key(self, eui, usage):
        credential = self._credential(eui, usage)
        return None if credential is None else credential.private_key

    def is_device(self, eui):
        return bytes(eui) in self.pki.devices


class DccTap:
    """What the head-ends see as the DCC (`async handle(xml)`, `take_alerts(eui)`,
    `take_responses(eui)`): the lab's DCC, with each DUIS exchange recorded as two hops and
    each late answer as one."""

    def __init__(self, lab, name):
        self.lab = lab
        self.name = name

    async def handle(self, xml):
        return await self.lab.exchange(self.name, xml)

    def take_alerts(self, eui):
        return self.lab.dcc.take_alerts(eui)

    def take_responses(self, eui):
        return self.lab.take_late_answers(self.name, eui)


class SleepingGsmeNode:
    """The GSME as a HAN node: its radio is on only while it is awake. When its wake is
    due (`poll`, which the virtual HAN asks on each delivery) it first pushes its readings
    to the GPF's mirror (ZigBee attribute reporting on a real HAN; a direct call here, as
    `firmware.devices.gpf.wake_exchange` does) and then polls the hub with a GET."""

    def __init__(self, gsme, gpf):
        self.gsme = gsme
        self.gpf = gpf

    def poll(self, now):
        if not self.gsme.wake_due(now):
            return []
        self.gsme.mirror_ack(self.gpf.receive_mirror(self.gsme.mirror_report(now), now))
        return self.gsme.wake(now)

    def receive_tunnel(self, data, now):
        return self.gsme.receive_tunnel(data, now)


class Lab:
    def __init__(self, seed=0, region="south", loss=0.0, record=True, wan="tcp",
                 time_scale=0.01, wan_timeout=2.0, anomaly_thresholds=None):
        """`loss` replaces the region's WAN loss (None keeps it); `time_scale` scales the
        region's latency (1.0: as configured; the default runs a region in milliseconds);
        `wan="direct"` calls the hub in process instead of over TCP (benchmarks)."""
        self.seed = seed
        self.region = region
        self.loss = loss
        self.record = record
        self.wan_mode = wan
        self.time_scale = time_scale
        self.wan_timeout = wan_timeout
        self.anomaly_thresholds = anomaly_thresholds      # the DCC's, per SRV: (count, window)
        self.crypto = HostCrypto()
        self.pki = smki.TestSmki(seed)
        self.keys = LabKeys(self.pki)
        self.hops = []
        self.step = ""
        self._han_seen = 0
        self._reassemblers = {}          # (source, destination) -> tunnel.Reassembler
        self._gpf_alerts = []            # the GPF's own alerts, not yet sent up the WAN
        self._queued_waiters = {}        # GSME command bytes -> future: queued at the GPF
        self._issue_credentials()
        self._build_premise()
        self._build_dcc()
        self.headends = {name: self._head_end(name, eui) for name, eui in SUPPLIER_EUIS.items()}
        self.headends["N"] = self._head_end("N", NETWORK_OPERATOR_EUI)     # a network operator
        self.wan = self.wan_server = None

    # -- assembly ------------------------------------------------------------------------
    def _issue_credentials(self):
        pki = self.pki
        pki.organisation(ACB_EUI, smki.ROLE_ACB, "DCC ACB")
        pki.organisation(TRANSCOS_EUI, smki.ROLE_TRANSITIONAL_COS, "DCC TRANSCOS")
        for name, eui in SUPPLIER_EUIS.items():
            pki.organisation(eui, smki.ROLE_SUPPLIER, "SUPPLIER " + name)
        pki.organisation(NETWORK_OPERATOR_EUI, smki.ROLE_NETWORK_OPERATOR, "NETWORK OPERATOR")
        for eui in (ESME_EUI, GSME_EUI, HUB_EUI, GPF_EUI):
            pki.device(eui)

    def anchors(self):
        """The trust anchors a device leaves the factory with at installation: the root,
        supplier A (management and prepayment), the network operator, the ACB and the
        Transitional CoS party."""
        org = self.pki.organisations
        anchors = TrustAnchors()
        root = self.pki.root
        anchors.set(codes.ROLE_ROOT, codes.CELL_MANAGEMENT, bytes(8), ds_public=root.public_xy,
                    ds_key_id=_key_id(root.certificate))
        supplier = SUPPLIER_EUIS["A"]
        for role, eui in ((codes.ROLE_SUPPLIER, supplier),
                          (codes.ROLE_NETWORK_OPERATOR, NETWORK_OPERATOR_EUI),
                          (codes.ROLE_ACB, ACB_EUI),
                          (codes.ROLE_TRANSITIONAL_COS, TRANSCOS_EUI)):
            anchors.set(role, codes.CELL_MANAGEMENT, eui, ds_public=org[eui]["ds"].public_xy,
                        ka_public=org[eui]["ka"].public_xy,
                        ds_key_id=_key_id(org[eui]["ds"].certificate),
                        ka_key_id=_key_id(org[eui]["ka"].certificate))
        anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, supplier,
                    ka_public=org[supplier]["pp-ka"].public_xy,
                    ka_key_id=_key_id(org[supplier]["pp-ka"].certificate))
        return anchors

    def _security(self, eui):
        device = self.pki.devices[eui]
        return DeviceSecurity(eui, device["ds"].private_key, device["ka"].private_key,
                              self.crypto, self.anchors())

    def _build_premise(self):
        profile = load_profile("esme-single-phase")
        self.start_time = profile["clock"]["start"]
        self.now = self.start_time + HISTORY
        self.installed = self.now            # the devices' installation: the lab opens
        self.clock = SteppedClock(self.start_time)
        self.esme = Esme(profile, self.clock, seed=self.seed)
        self.clock.set(self.now)
        self.esme.advance(self.now)
        self.esme_security = self._security(ESME_EUI)
        self.esme_gbcs = esme_gbcs.EsmeGbcs(self.esme, self.esme_security, self.crypto)
        self.han = VirtualHan(seed=self.seed)
        self.han.now = self.now
        self.hub_security = self._security(HUB_EUI)
        self._build_gas()
        self.hub = CommsHub(HUB_EUI, self.hub_security, self.han.send, gpf=self.gpf)
        self.han.attach_hub(self.hub)
        self.han.attach(ESME_EUI, EsmeNode(self.esme_gbcs))
        self.hub.add_device(ESME_EUI, 1)                # device type ESME (GBCS CS03)
        self.han.attach(GSME_EUI, SleepingGsmeNode(self.gsme, self.gpf))
        self.hub.add_device(GSME_EUI, 0)                # device type GSME
        self.han.settle(self.now)            # the GSME's first wake at installation
        self._han_seen = len(self.han.log)

    def _build_gas(self):
        self.gsme_security = self._security(GSME_EUI)
        self.gsme = gsme.Gsme({"clock": {"start": self.start_time}}, self.clock, self.seed,
                              self.gsme_security, self.crypto)
        self.gsme.advance(self.now)
        # the GPF answers as the GSME (firmware/devices/gpf.py: its DeviceSecurity is built
        # on the GSME's EUI and keys, with counter records of its own)
        self.gpf = gpf.GasProxyFunction(GSME_EUI, self._security(GSME_EUI), self.crypto)
        self.gpf.upstream = _discard          # the hub forwards the GSME's PUTs itself
        # alerts the GPF raises on its own while the GSME polls (0x8F84: a command dropped
        # after max_offers unanswered offers) go up the hub's WAN like the GSME's own
        self.gpf.alert_sink = self._gpf_alerts.append

    def _build_dcc(self):
        org = self.pki.organisations
        self.routing = RoutingTable()
        supplier = SUPPLIER_EUIS["A"]
        for eui, device_type in ((ESME_EUI, codes.ESME), (GSME_EUI, codes.GSME),
                                 (HUB_EUI, codes.CHF)):
            credentials = self.pki.devices[eui]
            self.routing.add(eui, device_type, HUB_EUI, supplier, credentials["ds"].public_xy,
                             credentials["ka"].public_xy, network_operator=NETWORK_OPERATOR_EUI)
        users = [org[eui] for eui in SUPPLIER_EUIS.values()] + [org[NETWORK_OPERATOR_EUI]]
        self.acb = Party(ACB_EUI, org[ACB_EUI]["ds"].private_key, org[ACB_EUI]["ka"].private_key)
        self.transcos = Party(TRANSCOS_EUI, org[TRANSCOS_EUI]["ds"].private_key,
                              org[TRANSCOS_EUI]["ka"].private_key, counter=0x5000)
        self.dcc = Dcc(users, self.routing, {HUB_EUI: self._wan_send}, self.anomaly_thresholds,
                       acb=self.acb, transcos=self.transcos,
                       xml_signer=XmlSigner(org[ACB_EUI]["ds"].private_key,
                                            org[ACB_EUI]["ds"].certificate),
                       crypto=self.crypto, clock=lambda: self.now,
                       organisation_ca=self.pki.organisation_ca.certificate)

    def _head_end(self, name, eui):
        # UTRN counters time-based from one epoch all suppliers share (here the devices'
        # installation, when their UTRN records are empty): after a change of supplier
        # the new supplier's top-ups are above the counters the old one used on the meter
        # (emulator/headend.py, HeadEnd.next_top_up_counter)
        head_end = HeadEnd(eui, self.pki.organisations[eui], DccTap(self, name),
                           dcc_certificate=self.pki.organisations[ACB_EUI]["ds"].certificate,
                           crypto=self.crypto, clock=lambda: self.now,
                           path_certificates=[_der(self.pki.organisation_ca.certificate)],
                           top_up_epoch=self.installed, top_up_seconds=REQUEST_STEP)
        for record in self.routing:
            head_end.add_device(record.eui, record.device_type, record.ds_public,
                                record.ka_public)
        return head_end

    # -- life cycle -----------------------------------------------------------------------
    async def start(self):
        """Open the WAN: the hub's end serves on 127.0.0.1 (an ephemeral port), the DCC's
        end connects to it, both with the region's latency and loss (emulator/wan.py)."""
        if self.wan_mode != "tcp":
            return self
        profile = wan.region_profile(self.region)
        if self.loss is not None:
            profile = wan.RegionProfile(profile.name, profile.latency, profile.jitter,
                                        self.loss)
        self.wan_server = wan.WanServer(self._hub_receive, region=profile, seed=self.seed,
                                        time_scale=self.time_scale)
        port = await self.wan_server.start()
        self.wan = wan.WanClient(region=profile, seed=self.seed, time_scale=self.time_scale)
        await self.wan.connect("127.0.0.1", port)
        return self

    async def close(self):
        if self.wan is not None:
            await self.wan.close()
            await self.wan_server.close()
            self.wan = self.wan_server = None

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.close()

    # -- the WAN and the hub side ----------------------------------------------------------
    async def _wan_send(self, data):
        """The DCC's link to the hub: over the TCP WAN when started, else in process.
        Returns the response (if one came in time) and the alerts that came with it."""
        if self.record:
            self._hop("DCC → hub", "down", "wan", data, data)
        if self.wan is not None:
            answers = []
            try:
                answers.append(await self._wan_request(data))
            except wan.WanTimeout:
                pass
            await asyncio.sleep(0)               # alerts sent just after the response
            answers.extend(self.wan.unsolicited)
            del self.wan.unsolicited[:]
        else:
            answers = self._hub_receive(data)
        if self.record:            # naming the sender parses the answer: only for the record
            for answer in answers:
                self._hop(self._answered_by(answer) + " → DCC", "up", "wan", answer, answer)
        return answers

    async def _wan_request(self, data):
        """The WAN round trip; for the GSME, over as soon as the hub's GPF has queued the
        command (nothing will answer it before the GSME's next wake): WanTimeout then,
        without waiting out `wan_timeout`, as the direct WAN answers nothing at once."""
        if envelope.parse(data).recipient != GSME_EUI:
            return await self.wan.request(data, timeout=self.wan_timeout)
        loop = asyncio.get_running_loop()
        queued = self._queued_waiters[bytes(data)] = loop.create_future()
        request = asyncio.ensure_future(self.wan.request(data, timeout=self.wan_timeout))
        try:
            await asyncio.wait((request, queued), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._queued_waiters.pop(bytes(data), None)
        if request.done():
            return request.result()
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)
        raise wan.WanTimeout("queued at the GPF for the GSME's next wake")

    def _answered_by(self, answer):
        """"hub", or "hub (GPF)" for a GSME answer no HAN frame brought: the GPF's."""
        try:
            originator = envelope.parse(answer).originator
        except envelope.GbcsError:
            return "hub"
        fresh = self.hops and self.hops[-1].layer == "han"
        return "hub (GPF)" if originator == GSME_EUI and not fresh else "hub"

    def inject(self, data, name="attacker → hub"):
        """Bytes put on the WAN by someone other than the DCC: what the hub (and the HAN
        behind it) sends back up. In process, so silence is certain, not a time-out; the
        simulated clock does not move, so a snapshot before and after compares exactly."""
        self._hop(name, "down", "wan", data, data)
        answers = self._hub_receive(bytes(data))
        for answer in answers:
            self._hop("hub → attacker", "up", "wan", answer, answer)
        return answers

    def wake_gsme(self):
        """Let time run to the GSME's next wake: it updates the GPF's mirror, polls, takes
        each queued command and answers it. Returns what the hub sends up the WAN on its
        own (the GSME's responses and alerts, the GPF's alerts), recorded as hub -> DCC
        hops and delivered to the DCC, which completes what they answer (a GSME's late
        answer to a command that got I99: `collect_responses`) and queues alerts for
        their recipients (`HeadEnd.collect_alerts`)."""
        self.now = max(self.now, self.gsme.next_wake)
        self.clock.set(self.now)
        self.step = self.step or "GSME wakes"
        up, _ = self.han.settle(self.now)
        self._record_han()
        gpf_alerts = self._take_gpf_alerts()
        for answer in up + gpf_alerts:
            name = "hub (GPF) → DCC" if answer in gpf_alerts else "hub → DCC"
            self._hop(name, "up", "wan", answer, answer)
            self.dcc.receive_upstream(answer)
        return up + gpf_alerts

    def wakes_gsme_here(self):
        """Whether `wake_gsme` runs the GSME's wake: the hub's HAN is this lab's virtual
        HAN (a ZigBee premise takes it over, and wakes the GSME over its own radio)."""
        return self.hub.han_send == self.han.send

    async def collect_responses(self, name):
        """The DCC's late answers for head-end `name` (the device's answer to a request
        that got I99 or E21), as that head-end's `Result`s (`HeadEnd.collect_responses`: DCC
        signature, the request it answers, the device's MAC or signature, decoded
        fields), each recorded as a DCC -> head-end hop."""
        return await self.headends[name].collect_responses()

    def take_late_answers(self, name, eui):
        """The DCC's late answers for `eui` (signed DUIS XML), recorded as hops with the
        observer's checks, for head-end `name` (through its DccTap)."""
        out = self.dcc.take_responses(eui)
        for xml in out if self.record else ():
            self._dcc_reply_hop(name, xml, "late answer")
        return out

    def _hub_receive(self, data):
        """What the hub does with one WAN message, the HAN run until it settles."""
        up = list(self.hub.receive_wan(data, self.now))
        more, _ = self.han.settle(self.now)
        self._record_han()
        up = up + more + self._take_gpf_alerts()
        if not up and self._queued_waiters and self.gpf.queue and self.gpf.queue[-1] == data:
            waiter = self._queued_waiters.get(bytes(data))
            if waiter is not None and not waiter.done():
                waiter.set_result(True)
        return up

    def _take_gpf_alerts(self):
        alerts = self._gpf_alerts[:]         # the same list: it is the GPF's alert_sink
        del self._gpf_alerts[:]
        return alerts

    def _record_han(self):
        """HAN frames since the last look, as hops. A GBCS message longer than the
        maximum transfer size crosses in several segments (firmware/han/tunnel.py): each
        is a hop, and the message is checked on the segment that completes it."""
        if not self.record:
            self._han_seen = len(self.han.log)
            return
        for record in self.han.log[self._han_seen:]:
            source = DEVICE_NAMES.get(record.source, record.source.hex().upper())
            destination = DEVICE_NAMES.get(record.destination, record.destination.hex().upper())
            delivered = record.delivered if record.delivered is not None else record.data
            inner, note = self._han_message(record.source, record.destination, delivered)
            direction = "down" if record.source == HUB_EUI else "up"
            if record.fate != "delivered":
                note = record.fate
            self._hop("%s → %s" % (source, destination), direction, "han", record.data, inner,
                      note=note)
        self._han_seen = len(self.han.log)

    def _han_message(self, source, destination, frame):
        """(the GBCS message this frame completes or None, a note), per link direction."""
        reassembler = self._reassemblers.get((source, destination))
        if reassembler is None:
            reassembler = self._reassemblers[(source, destination)] = tunnel.Reassembler()
        try:
            got = reassembler.feed(frame, self.now)
        except tunnel.TunnelError as e:
            return None, "tunnel: %s" % e
        if got is None:
            return None, "segment"
        kind, _, payload = got
        if kind == tunnel.PUT or (kind == tunnel.GET_RESPONSE and payload):
            return payload, ""
        return None, {tunnel.GET: "GET (poll)", tunnel.GET_RESPONSE: "GET-RESPONSE (nothing queued)"
                      }.get(kind, "")

    def _hop(self, name, direction, layer, data, gbcs=None, checks=None, note=""):
        if not self.record:
            return None
        if checks is None:
            checks = self.observe(gbcs) if gbcs is not None and is_gbcs(gbcs) else []
        hop = Hop(len(self.hops), self.step, name, direction, layer, data,
                  gbcs if gbcs is not None and is_gbcs(gbcs) else None, checks, note)
        self.hops.append(hop)
        return hop

    def observe(self, gbcs):
        """MAC and signature of a GBCS message, checked as `decode --keystore` does."""
        dissection = dissect(gbcs, self.keys, ACB_EUI)
        checks = list(dissection.checks)
        if dissection.error:
            layer, offset, reason = dissection.error
            checks.append({"check": "decode", "result": FAILED,
                           "detail": "%s offset %d: %s" % (layer, offset, reason)})
        return checks

    # -- DUIS ------------------------------------------------------------------------------
    async def exchange(self, name, xml):
        """One signed DUIS request from head-end `name` to the DCC and the DCC's reply,
        recorded with the DCC's verdict and the observer's checks of the GBCS inside."""
        if not self.record:
            return await self.dcc.handle(xml)
        request = DuisRequest.from_xml(xml)
        self._hop("%s head-end → DCC" % name, "down", "duis", xml,
                  checks=[{"check": "duis request", "result": "sent", "detail": repr(request)}])
        reply_xml = await self.dcc.handle(xml)
        self._dcc_reply_hop(name, reply_xml, _dcc_reason(self.dcc, request))
        return reply_xml

    def _dcc_reply_hop(self, name, reply_xml, code_detail):
        """A DUIS response from the DCC to head-end `name`, recorded with its signature
        checked against the DCC's certificate, its response code and the observer's checks
        of the GBCS inside."""
        response = DuisResponse.from_xml(reply_xml)
        try:
            duis.verify_with_certificate(reply_xml,
                                         self.pki.organisations[ACB_EUI]["ds"].certificate)
            signature = {"check": "duis signature", "result": "verified",
                         "detail": "the DCC's DS key"}
        except duis.DuisError as e:
            signature = {"check": "duis signature", "result": FAILED, "detail": e.reason}
        checks = [signature, {"check": "response code", "result": response.response_code,
                              "detail": code_detail}]
        inner = response.pre_command or response.gbcs_payload
        if inner is not None:
            checks.extend(self.observe(inner))
        self._hop("DCC → %s head-end" % name, "up", "duis", reply_xml, inner, checks)

    async def request(self, supplier, srv_variant, target, body=None, counter=None, step=None):
        """A service request from supplier "A" or "B" through the whole chain."""
        return await self.run(supplier, lambda head_end: head_end.request(
            srv_variant, target, body, counter), step or "%s %s" % (
            srv_variant, duis.SERVICE_REQUESTS[srv_variant].name), srv_variant, target)

    async def run(self, supplier, action, step, srv="", target=b""):
        """`action(head_end)` (a HeadEnd coroutine: read_registers, top_up...) as one step."""
        self.now += REQUEST_STEP
        self.clock.set(self.now)
        self.step = step
        first = len(self.hops)
        result = await action(self.headends[supplier])
        return Outcome(srv or result.srv, target, result, self.hops[first:])

    # -- state -----------------------------------------------------------------------------
    def snapshot(self):
        """The devices' state the attack tests hold still: registers, counters, supply,
        credit, UTRN record, anchors, the hub's device log (not the clock: time passes)."""
        gb = self.esme.gbcs_objects
        out = {
            "esme": {"counters": self.esme_security.state()["counters"],
                     "supply": self.esme.supply_state,
                     "import": self.esme.import_register.value[1],
                     "credits": [c.amount for c in gb.credits],
                     "utrns": list(gb.token_gateway.record.accepted),
                     "anchors": self.esme_security.state()["anchors"]},
            "hub": {"counters": self.hub_security.state()["counters"],
                    "devices": sorted(self.hub.device_log)},
        }
        out["gsme"] = self.gsme.state()
        out["gpf"] = {"queue": [c.hex() for c in self.gpf.queue]}
        return out

    def export_keystore(self, folder):
        """The lab's test PKI as a keystore folder (RTDS layout)."""
        return self.pki.export(pathlib.Path(folder))


def _discard(_):
    return None


def _dcc_reason(dcc, request):
    for event in reversed(dcc.events):
        if event.request_id == request.request_id:
            detail = getattr(event, "detail", None) or {}
            if event.kind == "refused":
                return "%s: %s" % (detail.get("reason"), detail.get("detail"))
            return event.kind
    return ""


def _der(certificate):
    from cryptography.hazmat.primitives.serialization import Encoding
    return certificate.public_bytes(Encoding.DER)


def _key_id(certificate):
    from cryptography import x509
    return certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value.digest


# -- the demo sequence (smets-emu demo) -------------------------------------------------------

class Step:
    """One step of the demo: its outcome and what was expected of it, each expectation
    (what, passed, detail) checked against the devices themselves, not the head-end."""

    def __init__(self, title, outcome=None, skipped=None):
        self.title = title
        self.outcome = outcome
        self.skipped = skipped
        self.expectations = []
        self.values = []              # (label, text) shown to the reader

    def expect(self, what, passed, detail=""):
        self.expectations.append((what, bool(passed), detail))

    def show(self, label, value):
        self.values.append((label, value))

    @property
    def ok(self):
        if self.skipped:
            return True
        return all(p for _, p, _ in self.expectations) and (
            self.outcome is None or all(h.ok for h in self.outcome.hops))


def _missing_builder(use_case):
    if use_case in USE_CASE_BUILDERS:
        return None
    return "the %s builder (emulator/usecases) is not in this tree yet" % use_case


async def demo_sequence(lab):
    """The issue's readable sequence on a started lab: a list of `Step`."""
    from firmware.cosem.disconnect import CONNECTED, DISCONNECTED

    steps = []
    esme = lab.esme
    supplier_a, supplier_b = SUPPLIER_EUIS["A"], SUPPLIER_EUIS["B"]

    step = Step("Commission the ESME (SRV 8.1.1, ECS70, critical)")
    step.outcome = o = await lab.run("A", lambda h: h.commission(ESME_EUI), step.title, "8.1.1",
                                     ESME_EUI)
    step.expect("I0 and the device's signed response", o.ok, o.response_code)
    step.expect("ESME clock within the window", abs(esme.clock() - lab.now) <= 60,
                "meter clock %d, lab %d" % (esme.clock(), lab.now))
    step.show("meter clock", _utc(esme.clock()))
    steps.append(step)

    step = Step("Read instantaneous import registers (SRV 4.1.1, ECS17b, encrypted)")
    step.outcome = o = await lab.run("A", lambda h: h.read_registers(ESME_EUI), step.title,
                                     "4.1.1", ESME_EUI)
    held = esme.import_register.value[1]
    step.expect("I0", o.ok, o.response_code)
    step.expect("decrypted import register equals the meter's", o.fields.get("import_wh") == held,
                "read %s, meter %s" % (o.fields.get("import_wh"), held))
    step.show("import active energy", "%s Wh" % o.fields.get("import_wh"))
    steps.append(step)

    step = Step("Read the half-hourly profile, last 24 h (SRV 4.8.1, ECS22b, encrypted)")
    start, end = lab.now - 86400, lab.now
    step.outcome = o = await lab.run("A", lambda h: h.read_profile(ESME_EUI, start, end),
                                     step.title, "4.8.1", ESME_EUI)
    entries = o.fields.get("entries") or []
    ring = esme.hh_profile.ring
    stored = [ring.time(k) for k in range(ring.count) if start <= ring.time(k) <= end]
    step.expect("I0", o.ok, o.response_code)
    step.expect("48 entries, the meter's own times", [t for t, _ in entries] == stored
                and len(entries) == 48, "%d entries" % len(entries))
    if entries:
        step.show("entries", "%d, %s .. %s, last %s Wh" % (len(entries), _utc(entries[0][0]),
                                                          _utc(entries[-1][0]), entries[-1][1]))
    steps.append(step)

    credit = esme.gbcs_objects.credits[0]
    before = credit.amount
    step = Step("Top up £10 by UTRN (SRV 2.2, CS01a through the Token Gateway)")
    step.outcome = o = await lab.run("A", lambda h: h.top_up(ESME_EUI, 1000), step.title, "2.2",
                                     ESME_EUI)
    step.expect("I0", o.ok, o.response_code)
    step.expect("credit rose by 1000 p", credit.amount - before == 1000,
                "%d -> %d" % (before, credit.amount))
    step.show("UTRN", o.fields.get("utrn"))
    step.show("credit", "%d p" % credit.amount)
    steps.append(step)

    for title, action, srv, state in (
            ("Disable supply (SRV 7.2, ECS43, critical)", lambda h: h.disable_supply(ESME_EUI),
             "7.2", DISCONNECTED),
            ("Enable supply (SRV 7.1, ECS42, critical)", lambda h: h.enable_supply(ESME_EUI),
             "7.1", CONNECTED)):
        step = Step(title)
        step.outcome = o = await lab.run("A", action, title, srv, ESME_EUI)
        step.expect("I0 and the device's signed response", o.ok, o.response_code)
        step.expect("supply state %d" % state, esme.supply_state == state,
                    "supply state %d" % esme.supply_state)
        step.show("supply state", {0: "disconnected", 1: "connected",
                                   2: "ready for reconnection"}.get(esme.supply_state))
        steps.append(step)

    steps.append(await _gas_read(lab))
    steps.extend(await _change_of_supplier(lab, supplier_a, supplier_b))
    steps.extend(await _gas_change_of_supplier(lab, supplier_a, supplier_b))
    return steps


async def _gas_read(lab):
    title = "Gas registers through the GPF while the GSME sleeps (SRV 4.1.1, GCS13a)"
    missing = _missing_builder("GCS13a")
    if missing:
        return Step(title, skipped=missing)
    step = Step(title)
    wakes = lab.gsme.wakes
    step.outcome = o = await lab.run("A", lambda h: h.read_registers(GSME_EUI), title, "4.1.1",
                                     GSME_EUI)
    step.expect("I0, answered with the GSME's EUI", o.ok, o.response_code)
    step.expect("the GSME did not wake", lab.gsme.wakes == wakes and not lab.gsme.awake,
                "wakes %d -> %d" % (wakes, lab.gsme.wakes))
    mirror = lab.gpf.mirror or {}
    read = _first_present(o.fields, ("summation", "current_summation_delivered",
                                     "summation_dm3"))
    step.expect("the GPF's mirrored summation", read == mirror.get("summation"),
                "read %s, mirror %s" % (read, mirror.get("summation")))
    step.show("gas summation", "%s dm3" % read)
    return step


async def _change_of_supplier(lab, old, new):
    title = "Change of supplier to B by the Transitional CoS party (SRV 6.23, CS02b)"
    missing = _missing_builder("CS02bSupplierByTransCoS")
    if missing:
        return [Step(title, skipped=missing)]
    lab.routing.register_change_of_supplier(ESME_EUI, new)
    step = Step(title)
    step.outcome = o = await lab.run("B", lambda h: h.change_of_supplier(ESME_EUI), title,
                                     "6.23", ESME_EUI)
    anchor = lab.esme_security.anchors.get(codes.ROLE_SUPPLIER)
    step.expect("I0", o.ok, o.response_code)
    step.expect("the ESME's supplier anchor is B", anchor is not None and anchor.eui == new,
                anchor.eui.hex().upper() if anchor is not None else "none")
    step.expect("the DCC routes the ESME to B", lab.routing.get(ESME_EUI).supplier == new)
    steps = [step]

    title = "The old supplier A is refused (SRV 7.2 from A after the change)"
    step = Step(title)
    supply = lab.esme.supply_state
    step.outcome = o = await lab.run("A", lambda h: h.disable_supply(ESME_EUI), title, "7.2",
                                     ESME_EUI)
    step.expect("refused by the DCC with E4", o.response_code == "E4", o.response_code)
    step.expect("supply unchanged", lab.esme.supply_state == supply)
    steps.append(step)

    title = "The new supplier B reads the registers (SRV 4.1.1)"
    step = Step(title)
    step.outcome = o = await lab.run("B", lambda h: h.read_registers(ESME_EUI), title, "4.1.1",
                                     ESME_EUI)
    step.expect("I0, MAC'd to B with B's key", o.ok, o.response_code)
    step.show("import active energy", "%s Wh" % o.fields.get("import_wh"))
    steps.append(step)

    title = "B's first UTRN top-up on the ESME after the change (SRV 2.2, CS01a)"
    step = Step(title)
    credit = lab.esme.gbcs_objects.credits[0]
    before = credit.amount
    step.outcome = o = await lab.run("B", lambda h: h.top_up(ESME_EUI, DEMO_TOP_UP_B), title,
                                     "2.2", ESME_EUI)
    step.expect("I0", o.ok, o.response_code)
    step.expect("credit rose by %d p" % DEMO_TOP_UP_B, credit.amount - before == DEMO_TOP_UP_B,
                "%d -> %d" % (before, credit.amount))
    step.show("UTRN", o.fields.get("utrn"))
    step.show("credit", "%d p" % credit.amount)
    steps.append(step)
    return steps


async def _gas_change_of_supplier(lab, old, new):
    """SRV 6.23 for the sleeping GSME: the CS02b waits at the GPF (the DCC acknowledges it,
    I99), runs at the GSME's next wake, and the GSME's late answer completes the
    change at the DCC, which sends it to B; the GPF follows the GSME's new anchors."""
    title = "Gas: change of supplier to B (SRV 6.23, CS02b waits at the GPF for the wake)"
    missing = _missing_builder("CS02bSupplierByTransCoS") or _missing_builder("GCS13a")
    if not missing and not lab.wakes_gsme_here():
        missing = ("the hub's HAN is not the lab's virtual HAN (a ZigBee premise): the "
                   "GSME's wake is not the lab's to run")
    if missing:
        return [Step(title, skipped=missing)]
    lab.routing.register_change_of_supplier(GSME_EUI, new)
    step = Step(title)
    first = len(lab.hops)
    o = await lab.run("B", lambda h: h.change_of_supplier(GSME_EUI), title, "6.23", GSME_EUI)
    step.expect("queued at the GPF: acknowledged, the answer to follow (I99)",
                o.response_code == "I99" and len(lab.gpf.queue) == 1, o.response_code)
    lab.wake_gsme()
    late = await lab.collect_responses("B")
    step.outcome = Outcome("6.23", GSME_EUI, o.result, lab.hops[first:])
    step.expect("B gets the GSME's answer from the DCC (I0; DCC and GSME signatures verify,"
                " every replacement done)", [(r.code, r.ok) for r in late] == [("I0", True)],
                _late_detail(late))
    for name, security in (("GSME", lab.gsme_security), ("GPF", lab.gpf.security)):
        anchor = security.anchors.get(codes.ROLE_SUPPLIER)
        step.expect("the %s's supplier anchor is B" % name,
                    anchor is not None and anchor.eui == new,
                    anchor.eui.hex().upper() if anchor is not None else "none")
    step.expect("the DCC routes the GSME to B", lab.routing.get(GSME_EUI).supplier == new)
    steps = [step]

    title = "Gas: B reads the registers through the GPF, A is refused (SRV 4.1.1, GCS13a)"
    step = Step(title)
    first = len(lab.hops)
    o = await lab.run("B", lambda h: h.read_registers(GSME_EUI), title, "4.1.1", GSME_EUI)
    refused = await lab.run("A", lambda h: h.read_registers(GSME_EUI), title, "4.1.1",
                            GSME_EUI)
    step.outcome = Outcome("4.1.1", GSME_EUI, o.result, lab.hops[first:])
    step.expect("B: I0, answered by the GPF with B's key", o.ok, o.response_code)
    read = _first_present(o.fields, ("summation", "current_summation_delivered",
                                     "summation_dm3"))
    step.expect("the GPF's mirrored summation", read == (lab.gpf.mirror or {}).get("summation"),
                "read %s" % read)
    step.expect("A: refused by the DCC with E4", refused.response_code == "E4",
                refused.response_code)
    step.show("gas summation", "%s dm3" % read)
    steps.append(step)

    title = "Gas: B tops up the GSME (SRV 2.2, CS01b at its next wake)"
    step = Step(title)
    first = len(lab.hops)
    before = lab.gsme.credit
    o = await lab.run("B", lambda h: h.top_up(GSME_EUI, DEMO_TOP_UP_B), title, "2.2", GSME_EUI)
    lab.wake_gsme()
    late = await lab.collect_responses("B")
    step.outcome = Outcome("2.2", GSME_EUI, o.result, lab.hops[first:])
    step.expect("queued at the GPF (I99), answered at the wake (I0, GSME's MAC verifies)",
                o.response_code == "I99" and [(r.code, r.ok) for r in late] == [("I0", True)],
                "%s, then %s" % (o.response_code, _late_detail(late)))
    rise = DEMO_TOP_UP_B * gsme.VALUE_PER_PENNY
    step.expect("the GSME's credit rose by %d p" % DEMO_TOP_UP_B,
                lab.gsme.credit - before == rise,
                "%d -> %d" % (before, lab.gsme.credit))
    step.show("UTRN", o.fields.get("utrn"))
    step.show("GSME credit", "%d p" % (lab.gsme.credit // gsme.VALUE_PER_PENNY))
    steps.append(step)
    return steps


def _late_detail(late):
    """What a reader needs of late answers that are not what was expected: each one's
    code and its failed checks."""
    return "; ".join("%s%s" % (r.code, "".join(", %s: %s" % (hop, what)
                                             for hop, what, passed in r.checks if not passed))
                     for r in late) or "none"


def _first_present(fields, names):
    for name in names:
        if name in fields:
            return fields[name]
    return None


def _utc(seconds):
    import datetime
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%SZ")
