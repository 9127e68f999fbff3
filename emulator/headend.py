"""A supplier's head-end: builds DUIS requests, signs pre-commands, verifies what comes back
(docs/GBCS_INTERFACES.md section 8; ARCHITECTURE.md "The path of one request", steps 1 and 6).

    head_end = HeadEnd(eui, credentials, dcc, dcc_certificate=..., clock=...)
    head_end.add_device(eui, codes.ESME, ds_public, ka_public)
    result = await head_end.read_registers(eui)        # Result: ok, fields, checks
    result = await head_end.disable_supply(eui)        # critical: transform, sign, send
    alerts = await head_end.collect_alerts()
    results = await head_end.collect_responses()      # late answers (requests that got I99/E21)

Services: read_registers (4.1.1), read_profile (4.8.1), read_daily_log (4.6.1),
read_supply_status (7.4), enable/disable/arm_supply (7.1/7.2/7.3), set_clock (6.11),
commission (8.1.1), reset_meter_balance (1.5), top_up (2.2), change_of_supplier (6.23,
from the incoming supplier), update_han_device_log (8.11), and `request(srv, device, body)`
for any SRV in `duis.SERVICE_REQUESTS`.

`credentials` are the supplier's SMKI organisation credentials (TestSmki.organisation():
"ds", "ka" and "pp-ka" key pairs with certificates); `dcc` is anything with
`async handle(xml) -> xml`, `take_alerts(eui) -> [xml]` and `take_responses(eui) -> [xml]`
(emulator.dcc.Dcc in process).

Every request is signed XML (the head-end's DS key, `emulator.duis.XmlSigner`). Critical
use cases go in two steps: command variant 4 returns the pre-command, which the head-end
checks is exactly the command it asked for (its own builder makes the same payload; same
originator, recipient, counter, message code; no MAC, no signature field) before it signs
the GBCS signed part with its DS key (`firmware.gbcs.security.sign`) and sends it back with
command variant 5. What comes back is checked hop by hop and each check is kept in
`Result.checks` for a reader (the lab's demo) to show: the DCC's XML signature on the DUIS
response; the GBCS response answers this command; a critical response carries the device's
signature, a non-critical one the MAC agreed between the head-end's KA key and the
device's (a response addressed to a DCC party - the TransCoS, the ACB - is MAC'd for
them, so its MAC is the DCC's to check, and the check says so); then the use case's reader
decodes it (decrypting encrypted fields with the head-end's KA key).

Late answers: a request the DCC answered I99 (acknowledged: a GSME's command waits at the
GPF for the GSME's next wake) or E21 (no answer in time) is remembered by its RequestID
with its SRV, use case and device (the newest `AWAITED_KEPT`). `collect_responses` takes the DCC's late answers
(`take_responses`, dcc.py step 10) and makes each a `Result` checked exactly as an
immediate one: the DCC's XML signature; the response answers a request this head-end sent
and still awaits (same RequestID and SRV); the device's signature or MAC; the use case's
reader. A late answer that passes every check settles its request, so a second copy of it
is reported with a failed check; one that fails a check is not trusted and leaves the
request awaited (a forgery does not use up the genuine answer).

Counters: one strictly rising counter for requests, and one for top-ups whose low 32 bits
are zero (GBCS 14: the UTRN carries bits 41..32), as the device and the DCC keep them apart.
Top-ups mint the UTRN with `firmware.gbcs.utrn.mint` and the prepayment KA key. With
`top_up_epoch` the top-up counters are time-based (`next_top_up_counter`), so that after a
change of supplier the new supplier's UTRN counters lie above those the old one used on the
meter; without it they count 1, 2, 3... from `top_up_counter`.
"""

from __future__ import annotations

from operator import itemgetter

from cryptography.hazmat.primitives.serialization import Encoding

from emulator import duis
from emulator.crypto import HostCrypto
from emulator.dcc import PUBLIC_CODES, alert_code, use_case_params
from emulator.duis import DuisRequest, DuisResponse, RequestId, XmlSigner
from emulator.newest import NewestKept
from emulator.smki import organisation_role
from emulator.usecases import USE_CASE_BUILDERS, BuildContext, UseCaseError
from firmware.gbcs import codes, security, utrn
from firmware.gbcs import credentials as cs02
from firmware.gbcs.envelope import CRA_ALERT, CRA_COMMAND, CRA_RESPONSE, GbcsError, parse

TOP_UP_STEP = 1 << 32
UTRN_REACH = 511         # how far above a meter's newest UTRN counter its 10 bits still reach
AWAITED_KEPT = 1024      # requests that got I99/E21 and may still be answered; oldest go first
NO_RESPONSE = PUBLIC_CODES["no_response"]       # E21
TOP_UP_SRV = "2.2"
_DER = Encoding.DER
_PASSED = itemgetter(2)  # of a check (hop, what, passed)
# the DCC's codes for a command sent on whose answer may come later: I99, held for a GSME's
# wake; E21, no answer in time
_ANSWER_TO_FOLLOW = (duis.I99_ACKNOWLEDGED, NO_RESPONSE)


class HeadEndError(Exception):
    """A request the head-end cannot make (unknown device, amount out of range...)."""


class DeviceKeys:
    def __init__(self, eui, device_type, ds_public, ka_public):
        self.eui = bytes(eui)
        self.device_type = device_type
        self.ds_public = ds_public
        self.ka_public = ka_public


class Result:
    """The outcome of one service request, with every check made on the way back."""

    def __init__(self, srv, request_id, use_case):
        self.srv = srv
        self.request_id = request_id
        self.use_case = use_case
        self.response = None            # the final DuisResponse
        self.pre_command = None         # GBCS bytes the DCC returned (critical SRVs)
        self.signed_pre_command = None  # what the head-end signed and sent back
        self.gbcs = None                # the device's GBCS response (parsed)
        self.fields = {}
        self.checks = []                # (hop, what, passed)
        self.late = False               # a late answer (collect_responses), not request's own

    @property
    def code(self):
        return None if self.response is None else self.response.response_code

    @property
    def ok(self):
        return (self.response is not None and self.response.response_code == duis.I0_SUCCESS
                and all(map(_PASSED, self.checks))
                and self.fields.get("ok", True) is not False)

    def check(self, hop, what, passed):
        passed = bool(passed)
        self.checks.append((hop, what, passed))
        return passed

    def __repr__(self):
        return "Result(%s %s %s ok=%s)" % (self.srv, self.request_id, self.code, self.ok)


class Alert:
    def __init__(self, device, recipient, counter, alert_code, verified, checks, message):
        self.device = device
        self.recipient = recipient
        self.counter = counter
        self.alert_code = alert_code
        self.verified = verified
        self.checks = checks
        self.message = message

    def __repr__(self):
        return "Alert(%s %04X verified=%s)" % (self.device.hex(), self.alert_code, self.verified)


class HeadEnd:
    def __init__(self, eui, credentials, dcc, *, dcc_certificate=None, crypto=None,
                 clock=None, counter=1000, top_up_counter=0, path_certificates=(),
                 top_up_epoch=None, top_up_seconds=1):
        """`dcc_certificate` verifies the DCC's DUIS signatures; by default the one an
        in-process `emulator.dcc.Dcc` signs with. `top_up_epoch` (seconds, on `clock`)
        makes the UTRN counters time-based: `top_up_seconds` per step of bits 63..32."""
        self.eui = bytes(eui)
        self.credentials = credentials
        self.dcc = dcc
        if dcc_certificate is None:
            dcc_certificate = getattr(getattr(dcc, "xml_signer", None), "certificate", None)
        if dcc_certificate is None:
            raise ValueError("the DCC's DUIS signing certificate is needed (dcc_certificate=)")
        self.dcc_certificate = dcc_certificate
        self.crypto = crypto or HostCrypto()
        self.clock = clock or (lambda: 0)
        self.counter = counter
        self.top_up_counter = top_up_counter
        if not isinstance(top_up_seconds, int) or top_up_seconds < 1:
            raise ValueError("top_up_seconds is a whole number of seconds, 1 or more")
        self.top_up_epoch = top_up_epoch
        self.top_up_seconds = top_up_seconds
        self.utrn_credited = {}         # device EUI -> bits 63..32 of the last UTRN it credited
        self.path_certificates = list(path_certificates)   # DER, for change of supplier
        self.signer = XmlSigner(credentials["ds"].private_key, credentials["ds"].certificate)
        self.role = organisation_role(credentials["ds"].certificate)
        self.devices = {}
        self._awaited = NewestKept(AWAITED_KEPT)   # RequestId -> (SRV, use case, device EUI)

    def add_device(self, eui, device_type, ds_public, ka_public):
        self.devices[bytes(eui)] = DeviceKeys(eui, device_type, ds_public, ka_public)

    # -- counters ------------------------------------------------------------------------
    def next_counter(self):
        self.counter += 1
        return self.counter

    def next_top_up_counter(self, device=None):
        """The next UTRN counter (low 32 bits zero), strictly above the last one.

        Time-based (with `top_up_epoch`), as GB head-ends conventionally keep originator
        counters (a convention, not checked against GBCS text here): bits 63..32 are the
        time since the epoch, so a supplier that gains a meter (change
        of supplier, SRV 6.23) tops up with counters above the ones the old supplier used
        there, which the meter's UTRN record would refuse as used. This is the head-end's
        side of it; the meter does not reset its UTRN record when the prepayment anchor
        is replaced (no documented basis for that in shared/design/DOMAIN.md or the seeds,
        and the record is what refuses the old supplier's UTRNs after the change).
        A UTRN carries only bits 41..32 and the meter rebuilds the rest from its newest
        accepted counter (utrn.UtrnAntiReplay.full_counter, 511 above it at most), so
        the time is capped at UTRN_REACH above the last counter this head-end had
        credited on `device` (from 0, a meter's empty record, if none; with no `device`,
        above this head-end's last counter): a long pause between top-ups does not make
        a UTRN the meter rebuilds wrongly."""
        last = self.top_up_counter // TOP_UP_STEP
        if self.top_up_epoch is None:
            high = last + 1
        else:
            now = (self.clock() - self.top_up_epoch) // self.top_up_seconds
            reach = UTRN_REACH
            if device is not None:
                reach += self.utrn_credited.get(bytes(device), 0)
            else:
                reach += last
            high = max(last + 1, min(int(now), reach))
        self.top_up_counter = high * TOP_UP_STEP
        return self.top_up_counter

    # -- service requests ----------------------------------------------------------------
    async def read_registers(self, device):
        return await self.request("4.1.1", device)

    async def read_profile(self, device, start, end):
        return await self.request("4.8.1", device, _read_log_period(start, end))

    async def read_daily_log(self, device, start, end):
        return await self.request("4.6.1", device, _read_log_period(start, end))

    async def read_supply_status(self, device):
        return await self.request("7.4", device)

    async def enable_supply(self, device):
        return await self.request("7.1", device)

    async def disable_supply(self, device):
        return await self.request("7.2", device)

    async def arm_supply(self, device):
        return await self.request("7.3", device)

    async def reset_meter_balance(self, device):
        return await self.request("1.5", device, {"CreditMode": {"ResetMeterBalance": ""}})

    async def set_clock(self, device, current=None, tolerance=60):
        return await self.request("6.11", device, _clock_body(self, current, tolerance))

    async def commission(self, device, current=None, tolerance=60):
        return await self.request("8.1.1", device, _clock_body(self, current, tolerance))

    async def top_up(self, device, pence):
        """Mint a UTRN for `pence` (value class pence, or pounds when it is whole pounds
        above the 13-bit pence range) and send it with SRV 2.2."""
        keys = self._device(device)
        if 0 < pence <= utrn.MAX_VALUE:
            value_class, value = utrn.CLASS_PENCE, pence
        elif pence % 100 == 0 and 0 < pence // 100 <= utrn.MAX_VALUE:
            value_class, value = utrn.CLASS_POUNDS, pence // 100
        else:
            raise HeadEndError("a top-up of %d pence does not fit a UTRN" % pence)
        counter = self.next_top_up_counter(keys.eui)
        shared = self.crypto.ecdh(self.credentials["pp-ka"].private_key, keys.ka_public)
        token = utrn.mint(self.crypto, shared, self.eui, keys.eui, counter, value_class, value)
        result = await self.request("2.2", device, {"UTRN": token}, counter=counter)
        result.fields.setdefault("utrn", token)
        if result.ok:                      # credited: the meter's newest counter moved
            self.utrn_credited[keys.eui] = max(self.utrn_credited.get(keys.eui, 0), counter >> 32)
        return result

    async def change_of_supplier(self, device, floor=0, prepayment_floor=0):
        """SRV 6.23 from the incoming supplier: its own DS, KA and prepayment KA certificates
        replace the old supplier's on the device (the Transitional CoS party signs)."""
        def der(usage):
            return duis.base64_text(self.credentials[usage].certificate.public_bytes(_DER))

        body = {"SupplierFloorSeqNumber": floor,
                "SupplierPrepaymentTopUpFloorSeqNumber": prepayment_floor,
                "SupplierReplacementCertificates": {
                    "DigitalSigningCertificate": der("ds"),
                    "KeyAgreementCertificate": der("ka"),
                    "KeyAgreementTopUpCertificate": der("pp-ka")},
                "CertificationPathCertificates": {"Certificate": [
                    duis.base64_text(c) for c in self.path_certificates]
                    if len(self.path_certificates) > 1 else
                    duis.base64_text(self.path_certificates[0])},
                "ApplyTimeBasedCPVChecks": False}
        return await self.request("6.23", device, body)

    async def update_han_device_log(self, hub, device, install_code=b"", join_time=90,
                                    remove=False):
        """SRV 8.11 to the comms hub: add `device` to the CHF device log with its install
        code (CCS01), or remove it (CCS02)."""
        body = {"DeviceID": duis.eui_text(bytes(device)),
                "RequestType": "Remove" if remove else "Add"}
        if not remove:
            body["AddDeviceToCHFWhitelist"] = {"JoinTimePeriod": join_time,
                                               "InstallCode": bytes(install_code).hex().upper()}
        return await self.request("8.11", hub, body)

    async def request(self, srv_variant, device, body=None, counter=None):
        """Any SRV of `duis.SERVICE_REQUESTS`: non-critical in one step, critical through
        the pre-command."""
        srv = duis.SERVICE_REQUESTS[srv_variant]
        keys = self._device(device)
        try:
            use_case, params = use_case_params(srv, keys.device_type, body or {}, self.role)
        except ValueError as e:
            raise HeadEndError(str(e))
        counter = self.next_counter() if counter is None else counter
        request_id = RequestId(self.eui, keys.eui, counter)
        result = Result(srv.variant, request_id, use_case)
        request = DuisRequest(request_id, 4 if srv.critical else 1, srv.reference,
                              srv.variant, srv.body, body or {})
        response = await self._exchange(request, result)
        if srv.critical and response is not None:
            if not result.check("DCC", "a pre-command to sign",
                                response.pre_command is not None):
                return result
            signed = self._sign_pre_command(result, response.pre_command, keys, use_case,
                                            params)
            if signed is None:
                return result
            request = DuisRequest.signed_pre_command(request_id, srv.reference, srv.variant,
                                                     signed)
            response = await self._exchange(request, result)
        if response is not None and response.gbcs_payload is not None:
            self._read_answer(result, response.gbcs_payload, keys, use_case)
        elif result.code in _ANSWER_TO_FOLLOW and all(map(_PASSED, result.checks)):
            self._await_answer(request_id, srv.variant, use_case, keys.eui)
        return result

    async def collect_responses(self):
        """The DCC's late answers for this head-end (requests that got I99 or E21), each a
        `Result` checked as `request` checks an immediate answer, against the request it
        answers (see the module docstring). Each comes from the DCC once."""
        take = getattr(self.dcc, "take_responses", None)
        return [self._late_answer(xml) for xml in (take(self.eui) if take else [])]

    async def collect_alerts(self):
        """The DCC's queued alerts for this head-end, each verified (DCC XML signature,
        then the device's signature or MAC)."""
        out = []
        for xml in self.dcc.take_alerts(self.eui):
            checks = []
            try:
                response = DuisResponse.from_xml(xml)
                duis.verify_with_certificate(response, self.dcc_certificate)
                checks.append(("DCC", "DUIS alert signed by the DCC", True))
                message = parse(response.gbcs_payload or b"")
            except (duis.DuisError, GbcsError) as e:
                checks.append(("DCC", "DUIS alert readable and signed: %s" % e, False))
                out.append(Alert(b"", self.eui, None, 0, False, checks, None))
                continue
            keys = self.devices.get(message.originator)
            passed = keys is not None and message.cra_flag == CRA_ALERT
            checks.append(("device", "alert from a known device", passed))
            if passed:
                passed = self._device_protection(checks, message, keys, alert=True)
            out.append(Alert(message.originator, message.recipient, message.originator_counter,
                             alert_code(message), passed and all(c[2] for c in checks),
                             checks, message))
        return out

    # -- the steps -----------------------------------------------------------------------
    async def _exchange(self, request, result):
        xml = await self._handle(request.to_xml(self.signer))
        response = self._dcc_response(xml, result)
        if response is None:
            return None
        result.check("DCC", "response answers this request",
                     response.request_id == request.request_id)
        return response if response.response_code == duis.I0_SUCCESS else None

    def _dcc_response(self, xml, result):
        """The DUIS response in `xml` if the DCC signed it (kept in `result.response`),
        else None; the check goes in `result`."""
        try:
            response = DuisResponse.from_xml(xml)
            duis.verify_with_certificate(response, self.dcc_certificate)
        except duis.DuisError as e:
            result.check("DCC", "DUIS response signed by the DCC: %s" % e.reason, False)
            return None
        result.check("DCC", "DUIS response signed by the DCC", True)
        result.response = response
        return response

    def _await_answer(self, request_id, srv_variant, use_case, device):
        self._awaited[request_id] = (srv_variant, use_case, device)

    def _late_answer(self, xml):
        result = Result(None, None, None)
        result.late = True
        response = self._dcc_response(xml, result)
        if response is None:
            return result
        result.srv, result.request_id = response.service_reference_variant, response.request_id
        awaited = self._awaited.get(response.request_id)
        answers = awaited is not None and awaited[0] == response.service_reference_variant
        result.check("DCC", "response answers this request" + (
            "" if answers else " (none of ours awaits %s)" % response.request_id), answers)
        if not answers:
            return result
        srv_variant, result.use_case, device = awaited
        if response.response_code == duis.I0_SUCCESS:
            if result.check("device", "the device's answer is in the response",
                            response.gbcs_payload is not None):
                self._read_answer(result, response.gbcs_payload, self._device(device),
                                  result.use_case)
        if all(map(_PASSED, result.checks)):                  # settled: once only
            del self._awaited[response.request_id]
            if srv_variant == TOP_UP_SRV and result.ok:        # as top_up does at once
                self.utrn_credited[device] = max(self.utrn_credited.get(device, 0),
                                                 response.request_id.counter >> 32)
        return result

    async def _handle(self, xml):
        handle = getattr(self.dcc, "handle", None) or self.dcc
        return await handle(xml)

    def _sign_pre_command(self, result, raw, keys, use_case, params):
        result.pre_command = raw
        try:
            message = parse(raw)
        except GbcsError as e:
            result.check("head-end", "pre-command parses: %s" % e, False)
            return None
        expected = self._own_payload(use_case, params, result.request_id, keys)
        passed = (message.cra_flag == CRA_COMMAND and message.originator == self.eui
                  and message.recipient == keys.eui
                  and message.originator_counter == result.request_id.counter
                  and message.message_code == codes.use_case(use_case)[0]
                  and not message.mac_protected and not message.signature_field
                  and (expected is None or message.payload == expected))
        what = "pre-command is the command asked for" + (
            "" if expected is not None else " (payload not rebuilt: no builder here)")
        if not result.check("head-end", what, passed):
            return None
        security.sign(self.crypto, self.credentials["ds"].private_key, message)
        result.signed_pre_command = message.encode()
        return result.signed_pre_command

    def _own_payload(self, use_case, params, request_id, keys):
        builder = USE_CASE_BUILDERS.get(use_case)
        if builder is None:
            return None
        ctx = BuildContext(request_id.counter, self.eui, keys.eui, now=self.clock(),
                           crypto=self.crypto, target_ka_public=keys.ka_public)
        try:
            return builder.build(params, ctx)
        except UseCaseError:
            return None

    def _read_answer(self, result, raw, keys, use_case):
        try:
            message = parse(raw)
        except GbcsError as e:
            result.check("device", "GBCS response parses: %s" % e, False)
            return
        result.gbcs = message
        code = codes.use_case(use_case)[0]
        answers = (message.cra_flag == CRA_RESPONSE and message.originator == keys.eui
                   and message.message_code == code)
        result.check("device", "GBCS response answers the command", answers)
        if not answers or not self._device_protection(result.checks, message, keys):
            return
        result.fields = self._decode(use_case, message, keys)

    def _device_protection(self, checks, message, keys, alert=False):
        critical = codes.is_critical(message.message_code)
        if alert:
            critical = codes.ALERT_MESSAGE_CRITICAL.get(message.message_code, critical)
        if critical:
            passed = security.verify_signature(self.crypto, keys.ds_public, message)
            checks.append(("device", "device signature verifies", passed))
            return passed
        if message.recipient != self.eui:
            checks.append(("device", "MAC'd to %s: checked by the DCC" % message.recipient.hex(),
                           message.mac_protected))
            return message.mac_protected
        shared = self.crypto.ecdh(self.credentials["ka"].private_key, keys.ka_public)
        passed = security.verify_mac(self.crypto, shared, message)
        checks.append(("device", "device MAC verifies with our KA key", passed))
        return passed

    def _decode(self, use_case, message, keys):
        if message.message_code in codes.CS02B_CODES:
            outcome = cs02.parse_response(message.payload)
            if outcome is None:
                return {"ok": True, "accepted": True}
            return {"ok": all(o.status == codes.STATUS_SUCCESS for o in outcome.outcomes),
                    "outcomes": [(o.cell.role, o.cell.key_usage, o.cell.cell_usage, o.status)
                                 for o in outcome.outcomes]}
        reader = USE_CASE_BUILDERS.get(use_case)
        if reader is None:
            return {}
        ctx = BuildContext(message.originator_counter, self.eui, keys.eui, now=self.clock(),
                           crypto=self.crypto, ka_private=self.credentials["ka"].private_key,
                           target_ka_public=keys.ka_public)
        try:
            return reader.read_response(message.payload, ctx)
        except UseCaseError as e:
            return {"ok": False, "error": str(e)}

    def _device(self, eui):
        keys = self.devices.get(bytes(eui))
        if keys is None:
            raise HeadEndError("device %s is not one of ours" % bytes(eui).hex())
        return keys


def _read_log_period(start, end):
    return {"ReadLogPeriod": {"StartDateTime": duis.date_time_text(start),
                              "EndDateTime": duis.date_time_text(end)}}


def _clock_body(head_end, current, tolerance):
    current = head_end.clock() if current is None else current
    return {"CurrentDateTime": duis.date_time_text(current), "TolerancePeriod": tolerance}

