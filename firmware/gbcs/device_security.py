"""Device-side GBCS security: accept commands, protect responses and alerts (GBCS 4.3, 6.2).

    sec = DeviceSecurity(own_eui, own_ds_private, own_ka_private, crypto, anchors,
                         counters=None)        # counters: {originator EUI hex: last accepted}
    party = sec.accept_command(message, use_case)    # GbcsMessage in; raises GbcsRefusal
    reply = sec.respond(command, payload, date_time)  # bytes; CRA 2, the command's counter
    alert = sec.alert(alert_code, payload, recipient, counter=None, date_time=None)
    sec.update_credentials(message)                   # CS02b, after accept_command
    sec.state() -> dict                               # counters + anchors, JSON-safe
    DeviceSecurity.restore(state, own_eui, own_ds_private, own_ka_private, crypto)

`accept_command` checks, in this order, and changes nothing unless every check passes:
recipient is me; the originator is a known remote party whose role may send this use case
(codes.SENDER_ROLES); its counter is strictly greater than the last accepted from it (for
a prepayment top-up: a UTRN counter above the prepayment floor, its replay left to the
UTRN record, codes.TOP_UP_CODES); the
signature verifies against that party's DS anchor when the use case is critical; the MAC
verifies with the key agreed between my KA private key and the ACB's KA anchor. Only then
is the counter recorded. Every refusal is a `GbcsRefusal(reason, alert_code)`: the alert the
device raises, or None when the right answer is silence (a message not addressed to me).

Responses: critical -> signed only; non-critical -> MAC only (my KA private x the
recipient's KA anchor). Alerts likewise by criticality, with the device's own counter,
which rises strictly and is persisted (GBCS 4.3.1.5; DOMAIN.md "Counters").
"""

import binascii

from firmware.gbcs import codes
from firmware.gbcs import credentials
from firmware.gbcs import security
from firmware.gbcs.anchors import DS, KA, TrustAnchors
from firmware.gbcs.asn1 import Asn1Error, generalized_time_text
from firmware.gbcs.envelope import CRA_ALERT, CRA_COMMAND, CRA_RESPONSE, GbcsMessage

# refusal reasons (stable strings: tests and logs compare them)
NOT_FOR_ME = "recipient is not this device"
NOT_A_COMMAND = "not a command (CRA flag)"
WRONG_USE_CASE = "message code does not match the use case"
UNKNOWN_USE_CASE = "unknown use case"
UNKNOWN_ORIGINATOR = "originator is not a known remote party"
ROLE_NOT_ELIGIBLE = "originator's role may not send this use case"
STALE_COUNTER = "originator counter not greater than the last accepted"
BAD_TOP_UP_COUNTER = "a top-up counter has its low 32 bits zero"
NO_SIGNATURE = "critical command carries no signature"
BAD_SIGNATURE = "signature does not verify against the trust anchor"
NO_MAC = "command carries no MAC"
NO_ACB_ANCHOR = "no ACB key-agreement anchor"
BAD_MAC = "MAC does not verify"
NO_RECIPIENT_ANCHOR = "no key-agreement anchor for the recipient"
ALERT_COUNTER = "alert counter must rise"
MALFORMED = "malformed"
NOT_ACCEPTED = "credentials update for a command that was not accepted"
NOT_CREDENTIALS = "not an update-security-credentials command"
WRONG_MODE = "credentials replacement mode does not match the message code"
WRONG_SEQ_NUMBER = "authorising seq number is not the originator counter"
WRONG_AUTHORISING_CELL = "authorising trust-anchor cell is not the originator's"
TARGET_NOT_AUTHORISED = "replacement targets a cell this mode may not replace"
NO_PENDING = "no future-dated credentials update is pending"
PENDING_OF_ANOTHER = "another party's future-dated credentials update is pending"

# CredentialsReplacementMode -> the roles whose cells it may replace (GBCS 13.3.2)
_ALL_ROLES = (codes.ROLE_ROOT, codes.ROLE_RECOVERY, codes.ROLE_SUPPLIER,
              codes.ROLE_NETWORK_OPERATOR, codes.ROLE_ACB, codes.ROLE_TRANSITIONAL_COS,
              codes.ROLE_WAN_PROVIDER)
_MODE_TARGETS = {
    0: (codes.ROLE_ROOT,), 1: (codes.ROLE_ROOT,), 2: (codes.ROLE_SUPPLIER,),
    3: (codes.ROLE_NETWORK_OPERATOR,), 4: (codes.ROLE_ACB,), 5: (codes.ROLE_WAN_PROVIDER,),
    6: (codes.ROLE_TRANSITIONAL_COS,), 7: (codes.ROLE_SUPPLIER,), 8: _ALL_ROLES[1:],
    9: _ALL_ROLES,
}
# the X.509 KeyUsage bit a cell names -> the key slot that holds it (the root's
# keyCertSign key sits in the signing slot)
_KEY_SLOT = {codes.KEY_USAGE_DIGITAL_SIGNATURE: DS, codes.KEY_USAGE_KEY_AGREEMENT: KA,
             codes.KEY_USAGE_KEY_CERT_SIGN: DS}
_NO_EUI = b"\x00" * 8


class GbcsRefusal(Exception):
    """A command the device will not obey. `alert_code` is the alert to raise, or None."""

    def __init__(self, reason, alert_code=None):
        super().__init__(reason)
        self.reason = reason
        self.alert_code = alert_code


class DeviceSecurity:
    def __init__(self, own_eui, own_ds_private, own_ka_private, crypto, anchors,
                 counters=None, alert_counter=0, refusal_alerts=None):
        self.own_eui = bytes(own_eui)
        # reason -> alert code, where the default is a reasoned choice rather than a clause
        # we could confirm (see codes.py): a deployment may map them differently
        self.refusal_alerts = refusal_alerts or {}
        self.own_ds_private = own_ds_private
        self.own_ka_private = own_ka_private
        self.crypto = crypto
        self.anchors = anchors if anchors is not None else TrustAnchors()
        self.counters = {}
        if counters:
            for eui_hex in counters:
                self.counters[eui_hex.lower()] = int(counters[eui_hex])
        self.alert_counter = int(alert_counter)
        self.specialist_floors = {}      # originator EUI hex -> {usage: floor} (UTRN etc.)
        self.pending_credentials = None  # a future-dated CS02b, JSON-safe

    # -- commands ------------------------------------------------------------------------
    def accept_command(self, message, use_case=None):
        """The originator's AnchorCell when the command may be obeyed; else GbcsRefusal."""
        try:
            party = self._check(message, use_case)
        except GbcsRefusal as refusal:
            raise self._mapped(refusal)
        except Exception as exc:         # never let a bad input escape as anything else
            raise GbcsRefusal("%s: %s" % (MALFORMED, exc), codes.ALERT_INTEGRITY_CHECK_FAILED)
        if message.message_code not in codes.TOP_UP_CODES:
            self.counters[eui_text(message.originator)] = message.originator_counter
        return party

    def _mapped(self, refusal):
        if refusal.reason in self.refusal_alerts:
            refusal.alert_code = self.refusal_alerts[refusal.reason]
        return refusal

    def _check(self, message, use_case):
        if bytes(message.recipient) != self.own_eui:
            raise GbcsRefusal(NOT_FOR_ME, None)
        if message.cra_flag != CRA_COMMAND:
            raise GbcsRefusal(NOT_A_COMMAND, codes.ALERT_INTEGRITY_CHECK_FAILED)
        critical = _critical_for(message.message_code, use_case)
        party = self._eligible_party(message)
        if message.message_code in codes.TOP_UP_CODES:
            self._check_top_up_counter(message)
        elif message.originator_counter <= self.last_counter(message.originator):
            raise GbcsRefusal(STALE_COUNTER, codes.ALERT_FAILED_AUTHENTICATION_OTHER)
        if critical and message.message_code not in codes.MAC_AUTHORISED_CRITICAL:
            self._check_signature(message, party)
        self._check_mac(message)
        return party

    def _check_top_up_counter(self, message):
        """A top-up's counter is the UTRN counter (low 32 bits zero) above the prepayment
        floor a CS02b set; its replay is the UTRN record's to refuse (codes.TOP_UP_CODES)."""
        counter = message.originator_counter
        if counter & 0xFFFFFFFF or counter == 0:
            raise GbcsRefusal(BAD_TOP_UP_COUNTER, codes.ALERT_INTEGRITY_CHECK_FAILED)
        floor = self.specialist_floor(message.originator)
        if floor is not None and counter <= floor:
            raise GbcsRefusal(STALE_COUNTER, codes.ALERT_FAILED_AUTHENTICATION_OTHER)

    def _eligible_party(self, message):
        cells = [c for c in self.anchors.find(message.originator)
                 if c.cell == codes.CELL_MANAGEMENT]
        if not cells:
            raise GbcsRefusal(UNKNOWN_ORIGINATOR, codes.ALERT_SOURCE_NOT_AUTHORISED)
        eligible = codes.sender_roles(message.message_code)
        for cell in cells:
            if cell.role in eligible:
                return cell
        raise GbcsRefusal(ROLE_NOT_ELIGIBLE, codes.ALERT_SOURCE_NOT_AUTHORISED)

    def _check_signature(self, message, party):
        if message.signature is None:
            raise GbcsRefusal(NO_SIGNATURE, codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE)
        key = party.key(DS)
        if key is None or key.eui != bytes(message.originator):
            raise GbcsRefusal(BAD_SIGNATURE, codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE)
        if not security.verify_signature(self.crypto, key.public, message):
            raise GbcsRefusal(BAD_SIGNATURE, codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE)

    def _check_mac(self, message):
        if not message.mac_protected or message.mac is None:
            raise GbcsRefusal(NO_MAC, codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE)
        acb = self.anchors.get(codes.ROLE_ACB)
        if acb is None or acb.ka_public is None:
            raise GbcsRefusal(NO_ACB_ANCHOR, codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE)
        shared = self._shared_secret(acb.ka_public)
        if not security.verify_mac(self.crypto, shared, message):
            raise GbcsRefusal(BAD_MAC, codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE)

    def last_counter(self, originator):
        """The last counter accepted from `originator` (-1 when none yet)."""
        return self.counters.get(eui_text(originator), -1)

    # -- responses and alerts -----------------------------------------------------------
    def respond(self, command, payload, date_time):
        """The response to an accepted command: CRA 2, the command's counter, bytes."""
        return _refusing(self._respond, (command, payload, date_time))

    def _respond(self, command, payload, date_time):
        critical = codes.is_critical(command.message_code)
        if critical is None:
            critical = command.signature is not None
        message = GbcsMessage(CRA_RESPONSE, command.originator_counter, self.own_eui,
                              bytes(command.originator), command.message_code, bytes(payload),
                              date_time,
                              supplementary_remote_party=command.supplementary_remote_party,
                              supplementary_remote_counter=command.supplementary_remote_counter)
        return self._protect(message, critical)

    def next_alert_counter(self):
        """The counter the next alert will carry (payloads such as a DLMS notification's
        long-invoke-id are built from it before `alert` is called)."""
        return self.alert_counter + 1

    def alert(self, alert_code, payload, recipient, counter=None, date_time=None,
              message_code=None):
        """An alert to `recipient` (EUI-64): CRA 3, the device's own rising counter.

        The message code defaults to the generic critical/non-critical alert that carries
        `alert_code`; criticality follows the message code where GBCS fixes it.
        """
        return _refusing(self._alert, (alert_code, payload, recipient, counter, date_time,
                                       message_code))

    def dlms_alert(self, alert_code, recipient, date_time, extra_elements=(),
                   message_code=None):
        """A DLMS alert (ESME, CHF): the Data-Notification payload built for the next alert
        counter, then protected as `alert` does. `date_time` is the 12-byte COSEM
        date-time of the event; `extra_elements` are A-XDR encoded data the alert adds."""
        counter = self.next_alert_counter()
        try:
            payload = dlms_alert_payload(alert_code, counter, date_time, extra_elements)
        except Exception as exc:
            raise GbcsRefusal("%s: %s" % (MALFORMED, exc), None)
        return self.alert(alert_code, payload, recipient, counter, None, message_code)

    def _alert(self, alert_code, payload, recipient, counter, date_time, message_code):
        if message_code is None:
            message_code = codes.alert_message_code(alert_code)
        critical = codes.ALERT_MESSAGE_CRITICAL.get(message_code)
        if critical is None:
            critical = codes.alert_is_critical(alert_code)
        if counter is None:
            counter = self.next_alert_counter()
        if counter <= self.alert_counter:
            raise GbcsRefusal(ALERT_COUNTER, None)
        message = GbcsMessage(CRA_ALERT, counter, self.own_eui, bytes(recipient), message_code,
                              bytes(payload), date_time)
        encoded = self._protect(message, critical)
        self.alert_counter = counter
        return encoded

    def _protect(self, message, critical):
        if critical:
            security.sign(self.crypto, self.own_ds_private, message)
            message.mac_protected = False
            return message.encode()
        message.signature = None
        message.signature_field = True
        recipient_ka = self._ka_anchor(message.recipient)
        if recipient_ka is None:
            raise GbcsRefusal(NO_RECIPIENT_ANCHOR, None)
        shared = self._shared_secret(recipient_ka)
        security.protect_mac(self.crypto, shared, message)
        return message.encode()

    def _shared_secret(self, peer_ka_public):
        """Static-static ECDH with a remote party's KA key: fixed for this pair of keys, so
        kept (a few entries; forgotten if our own KA key or the crypto is replaced)."""
        owner = (self.own_ka_private, self.crypto)
        cache = getattr(self, "_shared", None)
        if cache is None or cache[0][0] is not owner[0] or cache[0][1] is not owner[1]:
            cache = self._shared = (owner, {})
        peer = bytes(peer_ka_public)
        secret = cache[1].get(peer)
        if secret is None:
            if len(cache[1]) >= 8:
                cache[1].clear()
            secret = cache[1][peer] = self.crypto.ecdh(self.own_ka_private, peer)
        return secret

    def _ka_anchor(self, eui):
        eui = bytes(eui)
        for cell in self.anchors.find(eui):
            key = cell.key(KA)
            if cell.cell == codes.CELL_MANAGEMENT and key is not None and key.eui == eui:
                return key.public
        return None

    # -- CS02b update security credentials (GBCS 13.3.2) -------------------------------------
    def update_credentials(self, message):
        """Apply an accepted CS02b command; returns the response payload (ASN.1 DER).

        Immediate: every replacement is checked (certificate, issuer in the certification
        path, key usage, role), then the ones that pass are installed together and the
        counters of the replaced parties take their new floors; each replacement's status
        is in the response (RTDS 6.15.1 IMMEDIATE_ERROR: one fails, the others succeed).
        Future-dated: stored, answered with commandAccepted only, executed by
        `execute_pending_credentials`; a command dated 9999-12-31 cancels it.
        A command that exceeds its originator's authority changes nothing.
        """
        try:
            return _refusing(self._update_credentials, (message,))
        except GbcsRefusal as refusal:
            raise self._mapped(refusal)

    def _update_credentials(self, message):
        if message.message_code not in codes.CS02B_CODES:
            raise GbcsRefusal(NOT_CREDENTIALS, codes.ALERT_INTEGRITY_CHECK_FAILED)
        if self.last_counter(message.originator) != message.originator_counter:
            raise GbcsRefusal(NOT_ACCEPTED, codes.ALERT_FAILED_AUTHENTICATION_OTHER)
        command = _parse_credentials(message.payload)
        self._authorise_credentials(message, command)
        when = command.execution_date_time
        if when is None:
            return credentials.encode_response(self._apply_credentials(command))
        pending = self.pending_credentials
        if pending is not None and pending["originator"] != eui_text(message.originator):
            raise GbcsRefusal(PENDING_OF_ANOTHER, codes.ALERT_SOURCE_NOT_AUTHORISED)
        if when == credentials.CANCEL_EXECUTION_DATE_TIME:
            self.pending_credentials = None
        else:
            self.pending_credentials = {"payload": binascii.hexlify(bytes(message.payload)).decode(),
                                        "originator": eui_text(message.originator),
                                        "code": message.message_code,
                                        "counter": message.originator_counter,
                                        "execute_at": when}
        return credentials.encode_response(None)

    def _authorise_credentials(self, message, command):
        control = command.control
        if control.mode != codes.CS02B_MODE[message.message_code]:
            raise GbcsRefusal(WRONG_MODE, codes.ALERT_INTEGRITY_CHECK_FAILED)
        if control.authorising_seq_number != message.originator_counter:
            raise GbcsRefusal(WRONG_SEQ_NUMBER, codes.ALERT_FAILED_AUTHENTICATION_OTHER)
        cell = control.authorising_cell
        if cell is not None:
            roles = codes.sender_roles(message.message_code)
            if (cell.role not in roles or cell.key_usage != codes.KEY_USAGE_DIGITAL_SIGNATURE
                    or cell.cell_usage != codes.CELL_MANAGEMENT
                    or cell.role not in self.anchors.roles_of(message.originator)):
                raise GbcsRefusal(WRONG_AUTHORISING_CELL, codes.ALERT_SOURCE_NOT_AUTHORISED)
        allowed = _MODE_TARGETS.get(control.mode, ())
        for replacement in command.replacements:
            target = replacement.target
            if (target.role not in allowed or target.key_usage not in _KEY_SLOT
                    or (target.cell_usage == codes.CELL_PREPAYMENT
                        and target.role != codes.ROLE_SUPPLIER)):
                raise GbcsRefusal(TARGET_NOT_AUTHORISED, codes.ALERT_SOURCE_NOT_AUTHORISED)

    def pending_credentials_time(self):
        """GeneralizedTime text of the pending CS02b's execution, or None."""
        pending = self.pending_credentials
        return None if pending is None else pending["execute_at"]

    def execute_pending_credentials(self):
        """Run the future-dated CS02b: (recipient EUI, alert code, alert payload) for
        `alert(..., message_code=FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT)`."""
        return _refusing(self._execute_pending, ())

    def _execute_pending(self):
        pending = self.pending_credentials
        if pending is None:
            raise GbcsRefusal(NO_PENDING, None)
        command = _parse_credentials(_unhex(pending["payload"]))
        outcome = self._apply_credentials(command)
        self.pending_credentials = None
        failed = [o for o in outcome.outcomes if o.status != credentials.STATUS_SUCCESS]
        code = codes.ALERT_FUTURE_DATED_NOT_ACTIONED if failed else \
            codes.ALERT_FUTURE_DATED_ACTIONED
        payload = credentials.encode_alert(code, pending["execute_at"], outcome)
        return _unhex(pending["originator"]), code, payload

    def _apply_credentials(self, command):
        anchors = self.anchors.copy()
        issuers = self._path_issuers(command.path)
        outcomes = []
        for replacement in command.replacements:
            outcomes.append(self._replace(anchors, replacement, issuers))
        changes = _seq_number_changes(command)
        counters = dict(self.counters)
        specialist = dict(self.specialist_floors)
        for change in changes:
            _apply_floor(anchors, self.anchors, counters, specialist, change)
        _prune(anchors, counters, specialist)
        self.anchors, self.counters, self.specialist_floors = anchors, counters, specialist
        control = command.control
        return credentials.ExecutionOutcome(control.authorising_seq_number, control.mode,
                                            changes, outcomes)

    def _path_issuers(self, path):
        """Certificates of the certification path that may issue a replacement: each one
        checked against the root anchor when the device holds one. Without a root anchor
        (RTDS does not publish its root key) the path is taken as the authorised party
        sent it: the command's own signature and MAC vouch for it."""
        root = self.anchors.get(codes.ROLE_ROOT)
        root_key = None if root is None else root.key(DS)
        issuers = []
        for der in path:
            try:
                cert = credentials.parse_certificate(der)
            except Asn1Error:
                continue                    # cannot issue anything: its dependants fail
            if cert.public_key is None or not cert.is_ca:
                continue
            if root_key is None or self._issued_by_root(cert, root_key):
                issuers.append(cert)
        if root_key is not None:
            issuers.append(_RootIssuer(root_key))
        return issuers

    def _issued_by_root(self, cert, root_key):
        if (cert.authority_key_id is not None and root_key.key_id is not None
                and cert.authority_key_id != root_key.key_id):
            return False
        return self.crypto.ecdsa_verify(root_key.public, cert.tbs, cert.signature)

    def _replace(self, anchors, replacement, issuers):
        target = replacement.target
        slot = _KEY_SLOT[target.key_usage]
        cell = anchors.get(target.role, target.cell_usage)
        existing = None if cell is None else cell.key(slot)
        existing_eui = _NO_EUI if existing is None else existing.eui
        existing_id = b"" if existing is None or existing.key_id is None else existing.key_id
        status, cert = self._check_certificate(replacement, issuers)
        if status != credentials.STATUS_SUCCESS:
            return credentials.ReplacementOutcome(target, status, existing_eui, existing_id,
                                                  existing_eui, existing_id)
        eui = cert.subject_eui or _NO_EUI
        key_id = cert.subject_key_id or b""
        anchors.set_key(target.role, target.cell_usage, slot, eui, cert.public_key, key_id)
        return credentials.ReplacementOutcome(target, status, existing_eui, existing_id, eui,
                                              key_id)

    def _check_certificate(self, replacement, issuers):
        target = replacement.target
        try:
            cert = credentials.parse_certificate(replacement.certificate)
        except Asn1Error:
            return credentials.STATUS_BAD_CERTIFICATE, None
        if (cert.public_key is None or target.key_usage not in cert.key_usage
                or (cert.subject_role is not None and cert.subject_role != target.role)
                or (target.role != codes.ROLE_ROOT and cert.subject_eui is None)):
            return credentials.STATUS_BAD_CERTIFICATE, cert
        issuer = None
        for candidate in issuers:
            if candidate.subject_key_id == cert.authority_key_id:
                issuer = candidate
        if issuer is None and target.role == codes.ROLE_ROOT and cert.is_ca:
            issuer = cert                   # a new root vouches for itself
        if issuer is None:
            return credentials.STATUS_NO_TRUST_ANCHOR, cert
        if not self.crypto.ecdsa_verify(issuer.public_key, cert.tbs, cert.signature):
            return credentials.STATUS_BAD_CERTIFICATE, cert
        return credentials.STATUS_SUCCESS, cert

    def specialist_floor(self, originator, usage=credentials.SEQ_NUMBER_USAGE_PREPAYMENT_TOP_UP):
        """The floor a CS02b set for a party's specialist counter (UTRN top-ups), or None."""
        floors = self.specialist_floors.get(eui_text(originator))
        return None if floors is None else floors.get(str(usage))

    # -- persistence ---------------------------------------------------------------------
    def state(self):
        counters = {}
        for eui_hex in self.counters:
            counters[eui_hex] = self.counters[eui_hex]
        return {"eui": eui_text(self.own_eui), "counters": counters,
                "alert_counter": self.alert_counter, "anchors": self.anchors.state(),
                "specialist_floors": self.specialist_floors,
                "pending_credentials": self.pending_credentials}

    def load_state(self, state):
        """Replace counters and anchors with a saved state (keys and crypto stay)."""
        restored = DeviceSecurity(self.own_eui, None, None, None,
                                  TrustAnchors.restore(state.get("anchors", {})),
                                  state.get("counters"), state.get("alert_counter", 0))
        self.anchors = restored.anchors
        self.counters = restored.counters
        self.alert_counter = restored.alert_counter
        self.specialist_floors = state.get("specialist_floors") or {}
        self.pending_credentials = state.get("pending_credentials")

    @classmethod
    def restore(cls, state, own_eui=None, own_ds_private=None, own_ka_private=None,
                crypto=None):
        """A DeviceSecurity from `state()`; keys and crypto are handles, never persisted."""
        if own_eui is None:
            own_eui = _unhex(state["eui"])
        sec = cls(own_eui, own_ds_private, own_ka_private, crypto, None)
        sec.load_state(state)
        return sec


def dlms_alert_payload(alert_code, counter, date_time, extra_elements=()):
    """GBCS DLMS alert payload (checked on every DLMS alert in RTDS 4.5.0):
    Data-Notification (Green Book 9.5, tag 0F) with long-invoke-id-and-priority 0x20 + the
    low 24 bits of the alert counter, no date-time (00), and as notification body a
    structure of { long-unsigned alert code, octet-string(12) date-time, extra... }."""
    if len(date_time) != 12 or not 0 <= alert_code <= 0xFFFF:
        raise ValueError("alert code is 16 bits and the date-time 12 bytes")
    invoke = 0x20000000 | (counter & 0xFFFFFF)
    out = bytes((0x0F, invoke >> 24, (invoke >> 16) & 0xFF, (invoke >> 8) & 0xFF,
                 invoke & 0xFF, 0x00, 0x02, 2 + len(extra_elements), 0x12,
                 alert_code >> 8, alert_code & 0xFF, 0x09, 0x0C))
    out += bytes(date_time)
    for element in extra_elements:
        out += bytes(element)
    return out


def _parse_credentials(payload):
    try:
        return credentials.parse_command(payload)
    except Asn1Error as exc:
        raise GbcsRefusal("%s: %s" % (MALFORMED, exc), codes.ALERT_INTEGRITY_CHECK_FAILED)


def _seq_number_changes(command):
    """remotePartySeqNumberChanges of the outcome: the replaced party's new floors when the
    command sets them ([4], [5]), then the command's other changes ([6]) as given (RTDS:
    6.15.1 sets [4] and [5], 6.23 names the new supplier's floors in [6])."""
    control = command.control
    changes = []
    if control.new_floor is not None or control.new_specialist_floors is not None:
        role = command.replacements[0].target.role if command.replacements else None
        if role is not None:
            changes.append(credentials.SeqNumberChange(role, control.new_floor or 0,
                                                       control.new_specialist_floors))
    for change in control.other_changes or ():
        changes.append(change)
    return changes


def _apply_floor(anchors, before, counters, specialist, change):
    """The party now in the role's cell takes the floor. A party that keeps its EUI keeps
    a higher counter: a floor never reopens counters it has already used."""
    cell = anchors.get(change.role)
    if cell is None or cell.eui is None or cell.eui == _NO_EUI:
        return
    key = eui_text(cell.eui)
    previous = before.get(change.role)
    same_party = previous is not None and previous.eui == cell.eui
    floor = change.floor
    if same_party and counters.get(key, -1) > floor:
        floor = counters[key]
    counters[key] = floor
    if change.specialist is not None:
        floors = {}
        for usage, seq in change.specialist:
            floors[str(usage)] = seq
        specialist[key] = floors


def _prune(anchors, counters, specialist):
    """Counters of parties no longer anchored go: they could never be checked again."""
    for table in (counters, specialist):
        for key in list(table):
            if not anchors.find(_unhex(key)):
                del table[key]


class _RootIssuer:
    def __init__(self, key):
        self.subject_key_id = key.key_id
        self.public_key = key.public


def _refusing(build, args):
    """Run a builder; anything but a GbcsRefusal (a bad key handle, a payload that is not
    bytes) becomes one, so the device loop only ever sees refusals."""
    try:
        return build(*args)
    except GbcsRefusal:
        raise
    except Exception as exc:
        raise GbcsRefusal("%s: %s" % (MALFORMED, exc), None)


def _critical_for(message_code, use_case):
    if use_case is None:
        critical = codes.is_critical(message_code)
        if critical is None:
            raise GbcsRefusal(UNKNOWN_USE_CASE, codes.ALERT_INTEGRITY_CHECK_FAILED)
        return critical
    if isinstance(use_case, int):
        if use_case != message_code:
            raise GbcsRefusal(WRONG_USE_CASE, codes.ALERT_INTEGRITY_CHECK_FAILED)
        return _critical_for(message_code, None)
    entry = codes.USE_CASES.get(use_case)
    if entry is None:
        raise GbcsRefusal(UNKNOWN_USE_CASE, codes.ALERT_INTEGRITY_CHECK_FAILED)
    if entry[0] != message_code:
        raise GbcsRefusal(WRONG_USE_CASE, codes.ALERT_INTEGRITY_CHECK_FAILED)
    return entry[1]


def eui_text(data):
    """EUI-64 as hex text (the same few parties on every message: kept, a few of them)."""
    data = bytes(data)
    text = _HEX.get(data)
    if text is None:
        if len(_HEX) >= _HEX_KEPT:
            _HEX.clear()
        text = _HEX[data] = binascii.hexlify(data).decode()
    return text


_HEX = {}
_HEX_KEPT = 16


def _unhex(text):
    return binascii.unhexlify(text)


def pending_credentials_alert(security, now):
    """The 0x00CB alert of a pending future-dated CS02b due at `now` (GeneralizedTime
    YYYYMMDDHHMMSSZ compares as text), or [] (GBCS 13.3.2.4; RTDS 6.15.1/6.23 8F66).
    Shared by the ESME and GSME ports."""
    when = security.pending_credentials_time()
    if when is None or when > generalized_time_text(now):
        return []
    try:
        recipient, alert_code, payload = security.execute_pending_credentials()
        return [security.alert(alert_code, payload, recipient,
                               message_code=codes.FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT)]
    except GbcsRefusal:
        return []
