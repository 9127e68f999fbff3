"""The DCC's Data Service Provider: DUIS in, GBCS over the WAN, DUIS back
(docs/GBCS_INTERFACES.md section 8; ARCHITECTURE.md "The path of one request", step 2).

    dcc = Dcc(smki_users, routing, hub_link, anomaly_thresholds, acb=Party(...), ...)
    reply_xml = await dcc.handle(request_xml)        # signed DUIS response XML
    reply = await dcc.submit(request_xml)             # the same as a DuisResponse
    alerts = dcc.take_alerts(user_eui)                # DeviceAlertMessage / DCC alerts, XML
    dcc.receive_upstream(gbcs)                        # what a hub sends up on its own
    responses = dcc.take_responses(user_eui)          # late answers, as DUIS responses (XML)

What happens to one request, in order (each refusal is a DUIS response code, an event in
`dcc.events`, and changes nothing else):
1. the XML is read (`emulator.duis`, bounded; `DuisError` propagates: the DSP rejects a
   schema-invalid document before it is a service request);
2. the user is authenticated: the RequestID originator is a known user, the KeyInfo names
   that user's organisation certificate, and the XML signature verifies with its DS key.
   The user's remote-party role is the certificate's OU (SMKI organisation profile) (E1);
3. the service reference variant is one the lab serves (E11), the user's role may send it
   (public DUIS request matrix, `duis.SERVICE_REQUESTS`) (E2), the device exists (E19) and
   has a use case for it (E11), the role is eligible for this device's fuel (E2), and the
   user is the responsible supplier / network operator in the routing table (E4); 6.23
   (change of supplier) is taken from the registered incoming supplier only;
4. the command variant fits the SRV's criticality: 1-3 non-critical, 4 and 5-7 critical
   (E12);
5. counters: the user's RequestID counter must rise strictly, per user, in two spaces as
   the device keeps them: top-ups (2.2, the UTRN counter, low 32 bits zero) and everything
   else; a signed pre-command (CV 5-7) must answer an outstanding transform (CV 4) with the
   same RequestID and carry exactly the pre-command the DCC made, signed by the user;
6. threshold anomaly detection: requests about to go to a device are counted per user per
   SRV in a sliding window of simulated time; above the configured count the request is
   quarantined (not sent) and reported: event "quarantined", response I99 with the
   DCCAlertMessage AD1 / QuarantinedRequest / ADUserThresholdBreach (XSD 5.4);
7. the GBCS command is built through the use-case builders (`emulator.usecases`) with the
   user as originator and the RequestID counter where the device obeys the user's role
   (`codes.SENDER_ROLES`); otherwise the ACB (or, for CS02b by TransCoS, the Transitional
   CoS party, which signs) originates with its own rising counter, the user and its counter
   in the supplementary remote party fields (RTDS 8.11 CCS01); the ACB adds the MAC
   (ACB KA private x device KA public);
8. the command goes to the device's hub over the WAN; what comes back is verified before it
   is passed on: a critical response or alert must carry the device's signature; a MAC'd
   one addressed to a DCC party is checked with that party's KA key; a MAC'd one addressed
   to the user is checked for its envelope only (the MAC key is the user's: its head-end
   verifies it); the response must answer this command (originator, recipient, counter,
   message code);
9. after a successful 6.23 the routing table makes the new supplier responsible, so the
   old supplier's next request is refused here (E4); the device refuses it independently
   (its supplier trust anchor was replaced). A future-dated 6.23 completes when the
   device's signed 0x8F66 alert to the TransCoS reports every replacement done.
10. late answers. A command that got no answer in time is remembered: a GSME's command
   waits at the GPF for the GSME's next wake, and the user gets I99 (acknowledged, the
   answer to follow); any other device's silence is E21. Either is kept (`MAX_AWAITING`,
   the oldest go first)
   by (device, originator, counter). When the device's answer comes up later, on its own
   (`receive_upstream`) or beside another command's answer, it is verified as in step 8
   against the command it answers; then the DCC records "answered" (late), completes a
   6.23 exactly as in step 9 (routing table: device -> new supplier), and queues the
   answer for the user as a signed DUIS ResponseMessage with the request's RequestID
   (`take_responses`). An answer that matches nothing awaited, or does not verify, is
   dropped (an event) and changes nothing; an unverified one leaves the command awaited.

Response codes: the public meanings (I0, I99, E1, E2, E4, E11, E12, E19, E20, E21) are
used as published; codes for conditions whose DUIS code is not public here are reasoned
placeholders from the XSD's enumeration (`UNCONFIRMED_CODES`), overridable with
`response_codes=`.
"""

from __future__ import annotations

import asyncio

from emulator import duis
from emulator.crypto import HostCrypto, public_xy
from emulator.duis import DuisRequest, DuisResponse, RequestId
from emulator.newest import NewestKept
from emulator.smki import organisation_eui, organisation_role
from emulator.usecases import USE_CASE_BUILDERS, BuildContext, UseCaseError
from emulator.wan import WanTimeout
from firmware.dlms.apdu import ApduError, DataNotification, decode_apdu
from firmware.devices.gsme import READS as GPF_MIRRORED_READS
from firmware.gbcs import codes
from firmware.gbcs import credentials as cs02
from firmware.gbcs import gbz
from firmware.gbcs import security
from firmware.gbcs.asn1 import Asn1Error
from firmware.gbcs.envelope import (CRA_ALERT, CRA_COMMAND, CRA_RESPONSE, GbcsError,
                                    GbcsMessage, parse)

# refusal -> DUIS response code. Public meanings (DUIS "DCC Systems Response Codes"); an
# XML signature that does not verify is taken as E1: the sender is not shown to be the user.
PUBLIC_CODES = {
    "unknown_user": "E1", "bad_signature": "E1", "role_not_eligible": "E2",
    "not_responsible": "E4", "not_served": "E11", "wrong_variant": "E12",
    "unknown_device": "E19", "no_link": "E20", "no_response": "E21",
}
# Placeholders: conditions the lab must answer whose public DUIS code we could not confirm.
UNCONFIRMED_CODES = {
    "stale_counter": "E40", "bad_parameters": "E41", "no_pre_command": "E42",
    "pre_command_altered": "E43", "bad_pre_command_signature": "E44",
    "response_unverified": "E45",
}

# DUIS user roles a remote-party role can act as, per fuel of the target device
_SUPPLIER_ROLES = {codes.ESME: ("IS", "ES"), codes.GSME: ("GS",), codes.GPF: ("GS",),
                   codes.CHF: ("IS", "GS")}
_NETWORK_ROLES = {codes.ESME: ("ED",), codes.GSME: ("GT",), codes.GPF: ("GT",),
                  codes.CHF: ("ED", "GT")}
TOP_UP_SRV = "2.2"
MAX_PRE_COMMANDS = 1024           # outstanding transforms kept; the oldest go first
EVENTS_KEPT = 4096                # the audit trail a long-running lab keeps; the oldest go
CHANGE_OF_SUPPLIER_SRV = "6.23"
MAX_AWAITING = 1024               # commands sent without an answer yet; the oldest go first


def duis_roles(remote_party_role, device_type=None):
    """The DUIS user roles of an organisation with this SMKI role (for a device type)."""
    if remote_party_role == codes.ROLE_SUPPLIER:
        table = _SUPPLIER_ROLES
    elif remote_party_role == codes.ROLE_NETWORK_OPERATOR:
        table = _NETWORK_ROLES
    elif remote_party_role == codes.ROLE_OTHER:
        return ("OU",)
    else:
        return ()
    if device_type is None:
        return tuple(sorted({r for roles in table.values() for r in roles}))
    return table.get(device_type, ())


def _eligible(remote_party_role, device_type, srv_roles):
    """Whether a DUIS user role of this SMKI role (on this device type) may send the SRV."""
    key = (remote_party_role, device_type, srv_roles)
    eligible = _ELIGIBLE.get(key)
    if eligible is None:
        eligible = _ELIGIBLE[key] = bool(set(duis_roles(remote_party_role, device_type))
                                         & set(srv_roles))
    return eligible


_ELIGIBLE = {}          # a handful of (role, device type, SRV roles): unbounded is fine


class User:
    """A DUIS user as the DCC knows it: its organisation DS certificate."""

    def __init__(self, certificate):
        self.certificate = certificate
        self.eui = organisation_eui(certificate)
        self.role = organisation_role(certificate)
        if self.eui is None or self.role is None:
            raise ValueError("not an SMKI organisation certificate (OU and EUI needed)")
        self.ds_public = public_xy(certificate.public_key())
        self.key_info = duis.issuer_serial(certificate)


class Party:
    """A DCC-operated remote party (ACB, Transitional CoS): its EUI and private keys."""

    def __init__(self, eui, ds_private=None, ka_private=None, counter=0):
        self.eui = bytes(eui)
        self.ds_private = ds_private
        self.ka_private = ka_private
        self.counter = counter

    def next_counter(self):
        self.counter += 1
        return self.counter


class DeviceRecord:
    def __init__(self, eui, device_type, hub, supplier, ds_public, ka_public,
                 network_operator=None):
        self.eui = bytes(eui)
        self.device_type = device_type
        self.hub = bytes(hub)
        self.supplier = bytes(supplier)
        self.network_operator = None if network_operator is None else bytes(network_operator)
        self.ds_public = ds_public
        self.ka_public = ka_public
        self.incoming_supplier = None


class RoutingTable:
    """The DCC's view of the estate: device EUI -> hub, device type, responsible supplier
    (and network operator), and the device's DS and KA public keys (from its certificates)."""

    def __init__(self):
        self._devices = {}

    def add(self, eui, device_type, hub, supplier, ds_public, ka_public,
            network_operator=None):
        record = DeviceRecord(eui, device_type, hub, supplier, ds_public, ka_public,
                              network_operator)
        self._devices[record.eui] = record
        return record

    def get(self, eui):
        return self._devices.get(bytes(eui))

    def __iter__(self):
        return iter(self._devices.values())

    def on_hub(self, hub):
        return [r for r in self._devices.values() if r.hub == bytes(hub)]

    def register_change_of_supplier(self, eui, new_supplier):
        """Registration data: `new_supplier` is gaining this device (it may send 6.23)."""
        self._devices[bytes(eui)].incoming_supplier = bytes(new_supplier)

    def complete_change_of_supplier(self, eui):
        record = self._devices[bytes(eui)]
        record.supplier, record.incoming_supplier = record.incoming_supplier, None
        return record


class DccEvent:
    """Something the lab can show: refused, quarantined, sent, answered, alert, cos..."""

    def __init__(self, kind, at, user=None, srv=None, request_id=None, **detail):
        self.kind = kind
        self.at = at
        self.user = user
        self.srv = srv
        self.request_id = request_id
        self._detail = detail

    @property
    def detail(self):
        """What happened, bytes shown as hex (written when first looked at: every request
        records its command and answer, few are ever read)."""
        detail = self._detail
        for name, value in detail.items():
            if isinstance(value, bytes):
                detail[name] = value.hex()
        return detail

    def __repr__(self):
        return "DccEvent(%s, %s, %s, %s)" % (self.kind, self.srv, self.request_id, self.detail)


class _Refusal(Exception):
    def __init__(self, condition, detail=""):
        super().__init__(condition)
        self.condition = condition
        self.detail = detail


class AnomalyDetector:
    """Threshold anomaly detection: at most `count` requests per user per SRV within
    `window` seconds of simulated time. `thresholds` maps an SRV variant, a (user EUI, SRV)
    pair or "*" (every SRV) to (count, window); the most specific entry applies."""

    def __init__(self, thresholds=None):
        self.thresholds = dict(thresholds or {})
        self._seen = {}                     # (user, srv) -> [times]

    def limit(self, user, srv):
        if not self.thresholds:
            return None
        for key in ((bytes(user), srv), srv, "*"):
            if key in self.thresholds:
                return self.thresholds[key]
        return None

    def admit(self, user, srv, now):
        """Count this request; False when it takes the user over the threshold."""
        limit = self.limit(user, srv)
        if limit is None:
            return True
        count, window = limit
        times = [t for t in self._seen.get((bytes(user), srv), []) if t > now - window]
        if len(times) >= count:
            self._seen[(bytes(user), srv)] = times
            return False
        times.append(now)
        self._seen[(bytes(user), srv)] = times
        return True


class Dcc:
    def __init__(self, smki_users, routing, hub_link, anomaly_thresholds=None, *, acb,
                 transcos=None, xml_signer=None, crypto=None, clock=None, builders=None,
                 organisation_ca=None, response_codes=None):
        self.users = {}
        for certificate in _certificates(smki_users):
            if organisation_ca is not None:
                certificate.verify_directly_issued_by(organisation_ca)
            user = User(certificate)
            self.users[user.eui] = user
        self.routing = routing
        self.hub_link = hub_link
        self.anomalies = AnomalyDetector(anomaly_thresholds)
        self.acb = acb
        self.transcos = transcos
        self.xml_signer = xml_signer
        self.crypto = crypto or HostCrypto()
        self.clock = clock or (lambda: 0)
        self.builders = USE_CASE_BUILDERS if builders is None else builders
        self.codes = dict(PUBLIC_CODES)
        self.codes.update(UNCONFIRMED_CODES)
        self.codes.update(response_codes or {})
        self.events = []
        self._counters = {}          # (user EUI, space) -> last RequestID counter
        self._pre_commands = NewestKept(MAX_PRE_COMMANDS)  # (user EUI, counter) ->
        #                                                    (srv, record, message)
        self._alerts = {}            # user EUI -> [DuisResponse]
        self._responses = {}         # user EUI -> [DuisResponse]: late answers
        self._awaiting = NewestKept(MAX_AWAITING)  # (device, originator, counter) ->
        #    (request, srv, record, command) sent and not answered in time (step 10)
        self._quarantine_refs = 0

    # -- the DUIS interface ---------------------------------------------------------------
    async def handle(self, xml) -> bytes:
        """A signed DUIS request in, the signed DUIS response out."""
        return (await self.submit(xml)).to_xml(self.xml_signer)

    async def submit(self, xml) -> DuisResponse:
        request = DuisRequest.from_xml(xml)
        try:
            return await self._serve(request)
        except _Refusal as refusal:
            self._event("refused", request, reason=refusal.condition, detail=refusal.detail,
                        code=self.codes[refusal.condition])
            return self._response(request, self.codes[refusal.condition])

    def take_alerts(self, user_eui):
        """Device alerts and DCC alerts queued for a user, as signed DUIS XML."""
        return [a.to_xml(self.xml_signer) for a in self._alerts.pop(bytes(user_eui), [])]

    def take_responses(self, user_eui):
        """Late answers to a user's requests (step 10), as signed DUIS ResponseMessage XML."""
        return [r.to_xml(self.xml_signer) for r in self._responses.pop(bytes(user_eui), [])]

    async def receive_alert(self, data):
        """An unsolicited GBCS alert from a hub: verified, then queued for its recipient."""
        self.receive_upstream(data)

    def receive_upstream(self, data):
        """A GBCS message a hub sends up on its own: an alert (verified, then queued for its
        recipient) or a device's late answer to a command that got none in time (step 10).
        Never raises; what is not for the DCC is dropped as an event."""
        try:
            message = parse(data)
        except GbcsError as e:
            self._event("dropped", None, reason="unparseable from device: %s" % e)
            return
        if message.cra_flag == CRA_ALERT:
            self._deliver_alert(message, bytes(data))
        elif message.cra_flag == CRA_RESPONSE:
            self._late_answer(message, bytes(data))
        else:
            self._event("dropped", None, reason="a command from a hub", gbcs=bytes(data).hex())

    # -- one request ----------------------------------------------------------------------
    async def _serve(self, request):
        user = self._authenticate(request)
        srv = duis.SERVICE_REQUESTS.get(request.service_reference_variant)
        if srv is None or srv.reference != request.service_reference:
            raise _Refusal("not_served", "SRV %s" % request.service_reference_variant)
        if not _eligible(user.role, None, srv.roles):
            raise _Refusal("role_not_eligible", "role %s for SRV %s" % (user.role, srv.variant))
        record = self.routing.get(request.request_id.target)
        if record is None:
            raise _Refusal("unknown_device")
        use_case = srv.use_cases.get(record.device_type)
        if use_case is None:
            raise _Refusal("not_served", "SRV %s on a %s" % (srv.variant, record.device_type))
        if not _eligible(user.role, record.device_type, srv.roles):
            raise _Refusal("role_not_eligible", "on a %s" % record.device_type)
        self._check_responsible(user, srv, record)
        variant = request.command_variant
        if srv.critical and variant in duis.CV_SIGNED_PRE_COMMAND:
            return await self._signed_pre_command(request, user, srv, record)
        if variant not in ((duis.CV_TRANSFORM,) if srv.critical else duis.CV_NON_CRITICAL):
            raise _Refusal("wrong_variant", "CV %d for a %scritical SRV"
                           % (variant, "" if srv.critical else "non-"))
        if request.body_name != srv.body:
            raise _Refusal("wrong_variant", "body %s for SRV %s" % (request.body_name, srv.variant))
        self._take_counter(user, srv, request.request_id.counter)
        use_case, params = _params(srv, record, request, user)
        message = self._command(user, record, use_case, params, request.request_id.counter)
        if variant == duis.CV_TRANSFORM:
            message.signature_field = False
            self._pre_commands[(user.eui, request.request_id.counter)] = (srv, record, message)
            self._event("pre-command", request, use_case=use_case)
            return self._response(request, duis.I0_SUCCESS, pre_command=message.encode())
        return await self._send(request, user, srv, record, message)

    def _authenticate(self, request):
        user = self.users.get(request.request_id.originator)
        if user is None:
            raise _Refusal("unknown_user", "no organisation certificate for the originator")
        if request.key_info != user.key_info:
            raise _Refusal("bad_signature", "KeyInfo does not name the user's certificate")
        try:
            duis.verify(request, user.ds_public)
        except duis.DuisError as e:
            raise _Refusal("bad_signature", e.reason)
        return user

    def _check_responsible(self, user, srv, record):
        if user.role == codes.ROLE_OTHER:
            return
        if srv.variant == CHANGE_OF_SUPPLIER_SRV:
            if record.incoming_supplier != user.eui:
                raise _Refusal("not_responsible", "not the registered incoming supplier")
            return
        if user.role == codes.ROLE_NETWORK_OPERATOR:
            responsible = [record.network_operator]
        elif record.device_type == codes.CHF:
            responsible = [r.supplier for r in self.routing.on_hub(record.eui)]
        else:
            responsible = [record.supplier]
        if user.eui not in responsible:
            raise _Refusal("not_responsible", "user is not responsible for the device")

    def _take_counter(self, user, srv, counter):
        space = (user.eui, "top-up" if srv.variant == TOP_UP_SRV else "general")
        if counter <= self._counters.get(space, -1):
            raise _Refusal("stale_counter", "counter %d not above %d"
                           % (counter, self._counters[space]))
        self._counters[space] = counter

    async def _signed_pre_command(self, request, user, srv, record):
        pending = self._pre_commands.get((user.eui, request.request_id.counter))
        if request.body_name != "SignedPreCommand":
            raise _Refusal("wrong_variant", "CV %d needs a SignedPreCommand body"
                           % request.command_variant)
        if pending is None or pending[0] is not srv or pending[1] is not record:
            raise _Refusal("no_pre_command", "no outstanding pre-command for this RequestID")
        try:
            signed = parse(request.gbcs_payload())
        except (GbcsError, duis.DuisError) as e:
            raise _Refusal("pre_command_altered", "GBCS payload does not parse: %s" % e)
        expected = pending[2]
        signed_part = signed.signed_part()      # what the signature covers, built once
        if signed.mac_protected or signed_part != expected.signed_part():
            raise _Refusal("pre_command_altered", "not the pre-command the DCC made")
        if signed.signature is None:
            raise _Refusal("bad_pre_command_signature", "pre-command carries no signature")
        if not self.crypto.ecdsa_verify(user.ds_public, signed_part, signed.signature):
            raise _Refusal("bad_pre_command_signature", "does not verify with the user's key")
        del self._pre_commands[(user.eui, request.request_id.counter)]
        return await self._send(request, user, srv, record, signed)

    # -- building ------------------------------------------------------------------------
    def _command(self, user, record, use_case, params, counter):
        builder = self.builders.get(use_case)
        if builder is None:
            raise _Refusal("not_served", "use case %s is not built in this lab" % use_case)
        code, critical = codes.use_case(use_case)[:2]
        originator, command_counter, on_behalf, signer = self._originator(user, code,
                                                                         critical, counter)
        ctx = BuildContext(command_counter, originator, record.eui, now=self.clock(),
                           crypto=self.crypto, target_ka_public=record.ka_public,
                           requester=user.eui)
        try:
            payload = builder.build(params, ctx)
        except (UseCaseError, KeyError, ValueError, TypeError) as e:
            raise _Refusal("bad_parameters", "%s: %s" % (use_case, e))
        message = GbcsMessage(CRA_COMMAND, command_counter, originator, record.eui, code,
                              payload)
        if on_behalf:
            message.supplementary_remote_party = user.eui
            message.supplementary_remote_counter = counter
        if signer is not None:
            security.sign(self.crypto, signer, message)
        return message

    def _originator(self, user, code, critical, counter):
        """(originator EUI, its counter, on the user's behalf?, DCC signing key or None):
        the user itself where the device obeys its role; else the Transitional CoS party
        (CS02b supplier-by-TransCoS, which it signs) or the ACB (non-critical), each with
        its own rising counter."""
        roles = codes.sender_roles(code)
        if user.role in roles:
            return user.eui, counter, False, None
        if codes.ROLE_TRANSITIONAL_COS in roles and self.transcos is not None:
            return self.transcos.eui, self.transcos.next_counter(), False, \
                self.transcos.ds_private
        if codes.ROLE_ACB in roles and not critical:
            return self.acb.eui, self.acb.next_counter(), True, None
        raise _Refusal("role_not_eligible", "no originator the device obeys for 0x%04X" % code)

    # -- sending and what comes back -----------------------------------------------------
    async def _send(self, request, user, srv, record, message):
        if not self.anomalies.admit(user.eui, srv.variant, self.clock()):
            return self._quarantine(request, user, srv)
        security.protect_mac(self.crypto, self.crypto.ecdh(self.acb.ka_private,
                                                           record.ka_public), message)
        data = message.encode()
        self._event("sent", request, hub=record.hub, gbcs=data)
        try:
            out = await self._link(record.hub)(data)
        except _Refusal:
            raise
        except (WanTimeout, asyncio.TimeoutError) as e:     # sent, nothing came back
            self._await_answer(request, srv, record, message)
            raise _Refusal("no_response", str(e))
        except Exception as e:          # the WAN's other failures are the DCC's E20
            raise _Refusal("no_link", "%s: %s" % (type(e).__name__, e))
        response = None
        for raw in out or []:
            response = self._sort(bytes(raw), message, response)
        if response is None:
            self._await_answer(request, srv, record, message)
            if (record.device_type == codes.GSME
                    and message.message_code not in GPF_MIRRORED_READS):
                # battery powered: what the GPF does not answer from its mirror waits at
                # the GPF for the GSME's next wake, so no answer now is the normal case.
                # DUIS acknowledges (I99); the answer follows as its own response (step 10)
                self._event("acknowledged", request, reason="held for the device's wake")
                return self._response(request, duis.I99_ACKNOWLEDGED)
            raise _Refusal("no_response")
        raw, answer = response
        problem = self._verify_response(answer, message, record)
        if problem:
            raise _Refusal("response_unverified", problem)
        self._event("answered", request, gbcs=raw)
        if srv.variant == CHANGE_OF_SUPPLIER_SRV:
            self._change_of_supplier(request, record, answer)
        return self._response(request, duis.I0_SUCCESS, gbcs_payload=raw)

    def _link(self, hub):
        """`hub_link` is one `async send(gbcs) -> [answers]` for every hub, or a dict of
        them by hub EUI."""
        link = self.hub_link
        if isinstance(link, dict):
            link = link.get(bytes(hub))
            if link is None:
                raise _Refusal("no_link", "no WAN link to hub %s" % bytes(hub).hex())
        return link

    def _sort(self, raw, command, response):
        try:
            message = parse(raw)
        except GbcsError as e:
            self._event("dropped", None, reason="unparseable from device: %s" % e)
            return response
        if (message.cra_flag == CRA_RESPONSE and message.originator == command.recipient
                and message.originator_counter == command.originator_counter
                and response is None):
            return raw, message
        if message.cra_flag == CRA_ALERT:
            self._deliver_alert(message, raw)
        elif message.cra_flag == CRA_RESPONSE:
            self._late_answer(message, raw)     # another command's, come late (step 10)
        else:
            self._event("dropped", None, reason="not the answer to this command",
                        gbcs=raw.hex())
        return response

    # -- late answers (step 10) ----------------------------------------------------------
    def _await_answer(self, request, srv, record, message):
        """A command sent with no answer in time: its answer may still come (a GSME's
        command waits at the GPF for the GSME's next wake)."""
        key = (record.eui, bytes(message.originator), message.originator_counter)
        self._awaiting[key] = (request, srv, record, message)

    def _late_answer(self, message, raw):
        key = (bytes(message.originator), bytes(message.recipient), message.originator_counter)
        awaited = self._awaiting.get(key)
        if awaited is None:
            self._event("dropped", None, reason="not the answer to a command awaiting one",
                        gbcs=raw.hex())
            return
        request, srv, record, command = awaited
        problem = self._verify_response(message, command, record)
        if problem:                         # a forgery does not use up the genuine answer
            self._event("dropped", request, reason="late answer: " + problem, gbcs=raw.hex())
            return
        del self._awaiting[key]
        self._event("answered", request, gbcs=raw, late=True)
        if srv.variant == CHANGE_OF_SUPPLIER_SRV:
            self._change_of_supplier(request, record, message)
        self._responses.setdefault(request.request_id.originator, []).append(
            self._response(request, duis.I0_SUCCESS, gbcs_payload=raw))

    def _verify_response(self, answer, command, record):
        if answer.recipient != command.originator:
            return "response addressed to another party"
        if answer.message_code != command.message_code:
            return "response message code 0x%04X, command 0x%04X" % (answer.message_code,
                                                                    command.message_code)
        return self._verify_from_device(answer, record)

    def _verify_from_device(self, message, record):
        """'' when the DCC can vouch for a device message, else why not."""
        critical = codes.is_critical(message.message_code)
        if message.cra_flag == CRA_ALERT:
            critical = codes.ALERT_MESSAGE_CRITICAL.get(message.message_code, critical)
        if critical:
            if message.signature is None:
                return "critical message from the device is not signed"
            if not security.verify_signature(self.crypto, record.ds_public, message):
                return "device signature does not verify"
            return ""
        if not message.mac_protected:
            return "non-critical message from the device carries no MAC"
        own = self._dcc_party(message.recipient)
        if own is not None:
            shared = self.crypto.ecdh(own.ka_private, record.ka_public)
            if not security.verify_mac(self.crypto, shared, message):
                return "device MAC does not verify"
        return ""

    def _dcc_party(self, eui):
        eui = bytes(eui)
        for party in (self.acb, self.transcos):
            if party is not None and party.eui == eui and party.ka_private is not None:
                return party
        return None

    def _deliver_alert(self, message, raw):
        record = self.routing.get(message.originator)
        if record is None:
            self._event("dropped", None, reason="alert from an unknown device", gbcs=raw.hex())
            return
        problem = self._verify_from_device(message, record)
        if problem:
            self._event("dropped", None, reason="alert: " + problem, gbcs=raw.hex())
            return
        code = alert_code(message)
        alert = DuisResponse(duis.I0_SUCCESS, self._now_text(), kind=duis.DEVICE_ALERT,
                             response_id=RequestId(message.originator, message.recipient,
                                                   message.originator_counter),
                             alert_code=code, gbcs_payload=raw)
        self._event("alert", None, device=message.originator.hex(),
                    recipient=message.recipient.hex(), alert_code="%04X" % code)
        if self._dcc_party(message.recipient) is None:
            self._alerts.setdefault(bytes(message.recipient), []).append(alert)
        elif (message.message_code == codes.FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT
              and self.transcos is not None and message.recipient == self.transcos.eui):
            self._future_dated_change_of_supplier(record, message)

    def _change_of_supplier(self, request, record, answer):
        outcome = _credentials_outcome(answer.payload)
        if outcome is None:
            self._event("cos-pending", request, device=record.eui.hex())
            return
        if (record.incoming_supplier == request.request_id.originator and outcome.outcomes
                and all(o.status == codes.STATUS_SUCCESS for o in outcome.outcomes)):
            old = record.supplier
            self.routing.complete_change_of_supplier(record.eui)
            self._event("cos", request, device=record.eui.hex(), old=old.hex(),
                        new=record.supplier.hex())

    def _future_dated_change_of_supplier(self, record, alert):
        """A future-dated 6.23 ran on the device (its signed 0x8F66 alert to the TransCoS,
        RTDS 6.23 8F66): now the incoming supplier is responsible. 0x8F67 (not actioned)
        or an outcome with a failed replacement leaves the routing as it was."""
        try:
            code, _, outcome = cs02.parse_alert(alert.payload)
        except Asn1Error:
            return
        if (record.incoming_supplier is not None and code == codes.ALERT_FUTURE_DATED_ACTIONED
                and outcome.outcomes
                and all(o.status == codes.STATUS_SUCCESS for o in outcome.outcomes)):
            old = record.supplier
            self.routing.complete_change_of_supplier(record.eui)
            self._event("cos", None, device=record.eui.hex(), old=old.hex(),
                        new=record.supplier.hex(), future_dated=True)

    def _quarantine(self, request, user, srv):
        self._quarantine_refs += 1
        limit = self.anomalies.limit(user.eui, srv.variant)
        self._event("quarantined", request, threshold=limit, reference=self._quarantine_refs)
        return self._response(
            request, duis.I99_ACKNOWLEDGED, kind=duis.DCC_ALERT, dcc_alert_code="AD1",
            dcc_alert={"QuarantinedRequest": {"ADUserThresholdBreach": {
                "RequestID": str(request.request_id),
                "QuarantineEventRef": self._quarantine_refs}}})

    # -- plumbing ------------------------------------------------------------------------
    def _response(self, request, code, kind=duis.RESPONSE_MESSAGE, **fields):
        if kind == duis.RESPONSE_MESSAGE:
            fields["service_reference"] = request.service_reference
            fields["service_reference_variant"] = request.service_reference_variant
        return DuisResponse(code, self._now_text(), kind=kind, request_id=request.request_id,
                            response_id=request.request_id.swapped(), **fields)

    def _now_text(self):
        return duis.date_time_text(self.clock())

    def _event(self, kind, request, **detail):
        user = srv = request_id = None
        if request is not None:
            user, srv, request_id = (request.request_id.originator,
                                     request.service_reference_variant, request.request_id)
        self.events.append(DccEvent(kind, self.clock(), user, srv, request_id, **detail))
        if len(self.events) > 2 * EVENTS_KEPT:     # trimmed in batches: O(1) per event
            del self.events[:-EVENTS_KEPT]


def _certificates(smki_users):
    if isinstance(smki_users, dict):
        smki_users = smki_users.values()
    out = []
    for item in smki_users:
        if isinstance(item, dict):               # TestSmki.organisation() result
            item = item["ds"]
        out.append(getattr(item, "certificate", item))
    return out


def alert_code(message):
    """The alert code an alert carries: DLMS Data-Notification {code, date-time, ...}
    (GBCS 7.2.x; RTDS), CS02b future-dated alert (ASN.1), GBZ alert header (the GSME's and
    the GPF's alerts, e.g. 0x8F84); 0 when none."""
    payload = message.payload
    try:
        if payload[:1] == b"\x0f":
            apdu = decode_apdu(payload)
            if isinstance(apdu, DataNotification):
                return apdu.notification_body[1][0][1]
        if payload[:1] == b"\x30":
            return cs02.parse_alert(payload)[0]
        if payload[:2] == b"\x01\x09":
            return gbz.decode(payload).alert_code or 0
    except (ApduError, Asn1Error, gbz.GbzError, IndexError, TypeError):
        return 0
    return 0


def _credentials_outcome(payload):
    try:
        return cs02.parse_response(payload)
    except Asn1Error:         # an unreadable outcome leaves the routing as it was
        return None


# -- DUIS body -> use-case parameters --------------------------------------------------------
def use_case_params(srv, device_type, body, role=codes.ROLE_SUPPLIER):
    """(use case, builder parameters) for an SRV on a device type from its DUIS body (the
    DCC's transform; the head-end uses it to check a pre-command before signing it).
    Raises ValueError when the body lacks what the use case needs. `role` picks the CS02b
    variant of 6.15.1 (a network operator replaces its own credentials: CS02b NO by NO)."""
    use_case = srv.use_cases.get(device_type)
    if srv.variant == "6.15.1" and role == codes.ROLE_NETWORK_OPERATOR:
        use_case = "CS02bNOByNO"
    if use_case is None:
        raise ValueError("SRV %s has no use case on a %s" % (srv.variant, device_type))
    body = body if isinstance(body, dict) else {}
    try:
        return _TRANSLATE.get(srv.variant, _no_params)(use_case, body)
    except (KeyError, TypeError, duis.DuisError) as e:
        raise ValueError("SRV %s body: %s" % (srv.variant, e))


def _params(srv, record, request, user):
    try:
        return use_case_params(srv, record.device_type, request.body, user.role)
    except ValueError as e:
        raise _Refusal("bad_parameters", str(e))


def _no_params(use_case, body):
    return use_case, {}


def _meter_balance(use_case, body):
    if "ResetMeterBalance" not in repr(body):
        raise ValueError("the lab serves ResetMeterBalance only")
    return use_case, {"value": 0}


def _top_up(use_case, body):
    return use_case, {"utrn": body["UTRN"]}


def _read_log(use_case, body):
    """ReadLogPeriod {StartDateTime, EndDateTime}; GBZ profile reads ask for a number of
    half-hour samples instead of an end (GCS17), so both are given."""
    period = body["ReadLogPeriod"]
    start = duis.parse_date_time(period["StartDateTime"])
    end = duis.parse_date_time(period["EndDateTime"])
    if end < start:
        raise ValueError("EndDateTime before StartDateTime")
    return use_case, {"from": start, "to": end, "count": (end - start) // 1800 + 1}


def _clock(use_case, body):
    """SynchroniseClock {CurrentDateTime, TolerancePeriod}: the validity window starts at
    CurrentDateTime and lasts TolerancePeriod (RTDS 6.11: 23:59:10 + 60 s -> 00:00:10)."""
    start = duis.parse_date_time(body["CurrentDateTime"])
    return use_case, {"validity_start": start,
                      "validity_end": start + int(body["TolerancePeriod"])}


def _credentials(use_case, body):
    certificates = body.get("SupplierReplacementCertificates") or body.get(
        "ReplacementCertificates") or {}
    if isinstance(certificates, dict) and "SupplierOrNetworkOperatorCertificates" in certificates:
        certificates = certificates["SupplierOrNetworkOperatorCertificates"]
    path = body.get("CertificationPathCertificates") or {}
    path = path.get("Certificate", []) if isinstance(path, dict) else []
    params = {
        "ds_certificate": _der(certificates.get("DigitalSigningCertificate")),
        "ka_certificate": _der(certificates.get("KeyAgreementCertificate")),
        "pp_ka_certificate": _der(certificates.get("KeyAgreementTopUpCertificate")),
        "path_certificates": [_der(c) for c in (path if isinstance(path, list) else [path])],
        "floor": int(body.get("SupplierFloorSeqNumber", 0)),
        "prepayment_floor": int(body.get("SupplierPrepaymentTopUpFloorSeqNumber", 0)),
        "apply_cpv_checks": body.get("ApplyTimeBasedCPVChecks", "true") == "true",
        "execution_date_time": (duis.parse_date_time(body["ExecutionDateTime"])
                                if body.get("ExecutionDateTime") else None),
    }
    if params["ds_certificate"] is None:
        raise ValueError("DigitalSigningCertificate missing")
    return use_case, params


def _der(text):
    return None if not text else duis.base64_bytes(text, "Certificate")


def _han_device_log(use_case, body):
    device = duis.parse_eui(body["DeviceID"], "DeviceID")
    if body["RequestType"] == "Remove":
        return "CCS02", {"device": device}
    add = body["AddDeviceToCHFWhitelist"]
    return "CCS01", {"device": device, "install_code": bytes.fromhex(add["InstallCode"]),
                     "join_time": int(add["JoinTimePeriod"])}


_TRANSLATE = {
    "1.5": _meter_balance, "2.2": _top_up, "4.6.1": _read_log, "4.8.1": _read_log,
    "6.11": _clock, "8.1.1": _clock, "6.15.1": _credentials, "6.23": _credentials,
    "8.11": _han_device_log,
}
