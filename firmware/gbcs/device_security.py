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
(codes.SENDER_ROLES); its counter is strictly greater than the last accepted from it; the
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
from firmware.gbcs import security
from firmware.gbcs.anchors import DS, KA, TrustAnchors
from firmware.gbcs.envelope import CRA_ALERT, CRA_COMMAND, CRA_RESPONSE, GbcsMessage

# refusal reasons (stable strings: tests and logs compare them)
NOT_FOR_ME = "recipient is not this device"
NOT_A_COMMAND = "not a command (CRA flag)"
WRONG_USE_CASE = "message code does not match the use case"
UNKNOWN_USE_CASE = "unknown use case"
UNKNOWN_ORIGINATOR = "originator is not a known remote party"
ROLE_NOT_ELIGIBLE = "originator's role may not send this use case"
STALE_COUNTER = "originator counter not greater than the last accepted"
NO_SIGNATURE = "critical command carries no signature"
BAD_SIGNATURE = "signature does not verify against the trust anchor"
NO_MAC = "command carries no MAC"
NO_ACB_ANCHOR = "no ACB key-agreement anchor"
BAD_MAC = "MAC does not verify"
NO_RECIPIENT_ANCHOR = "no key-agreement anchor for the recipient"
ALERT_COUNTER = "alert counter must rise"
MALFORMED = "malformed"


class GbcsRefusal(Exception):
    """A command the device will not obey. `alert_code` is the alert to raise, or None."""

    def __init__(self, reason, alert_code=None):
        super().__init__(reason)
        self.reason = reason
        self.alert_code = alert_code


class DeviceSecurity:
    def __init__(self, own_eui, own_ds_private, own_ka_private, crypto, anchors,
                 counters=None, alert_counter=0):
        self.own_eui = bytes(own_eui)
        self.own_ds_private = own_ds_private
        self.own_ka_private = own_ka_private
        self.crypto = crypto
        self.anchors = anchors if anchors is not None else TrustAnchors()
        self.counters = {}
        if counters:
            for eui_hex in counters:
                self.counters[eui_hex.lower()] = int(counters[eui_hex])
        self.alert_counter = int(alert_counter)

    # -- commands ------------------------------------------------------------------------
    def accept_command(self, message, use_case=None):
        """The originator's AnchorCell when the command may be obeyed; else GbcsRefusal."""
        try:
            party = self._check(message, use_case)
        except GbcsRefusal:
            raise
        except Exception as exc:         # never let a bad input escape as anything else
            raise GbcsRefusal("%s: %s" % (MALFORMED, exc), codes.ALERT_INTEGRITY_CHECK_FAILED)
        self.counters[_hex(message.originator)] = message.originator_counter
        return party

    def _check(self, message, use_case):
        if bytes(message.recipient) != self.own_eui:
            raise GbcsRefusal(NOT_FOR_ME, None)
        if message.cra_flag != CRA_COMMAND:
            raise GbcsRefusal(NOT_A_COMMAND, codes.ALERT_INTEGRITY_CHECK_FAILED)
        critical = _critical_for(message.message_code, use_case)
        party = self._eligible_party(message)
        if message.originator_counter <= self.last_counter(message.originator):
            raise GbcsRefusal(STALE_COUNTER, codes.ALERT_FAILED_AUTHENTICATION_OTHER)
        if critical and message.message_code not in codes.MAC_AUTHORISED_CRITICAL:
            self._check_signature(message, party)
        self._check_mac(message)
        return party

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
        shared = self.crypto.ecdh(self.own_ka_private, acb.ka_public)
        if not security.verify_mac(self.crypto, shared, message):
            raise GbcsRefusal(BAD_MAC, codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE)

    def last_counter(self, originator):
        """The last counter accepted from `originator` (-1 when none yet)."""
        return self.counters.get(_hex(originator), -1)

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
        shared = self.crypto.ecdh(self.own_ka_private, recipient_ka)
        security.protect_mac(self.crypto, shared, message)
        return message.encode()

    def _ka_anchor(self, eui):
        eui = bytes(eui)
        for cell in self.anchors.find(eui):
            key = cell.key(KA)
            if cell.cell == codes.CELL_MANAGEMENT and key is not None and key.eui == eui:
                return key.public
        return None

    # -- persistence ---------------------------------------------------------------------
    def state(self):
        counters = {}
        for eui_hex in self.counters:
            counters[eui_hex] = self.counters[eui_hex]
        return {"eui": _hex(self.own_eui), "counters": counters,
                "alert_counter": self.alert_counter, "anchors": self.anchors.state()}

    def load_state(self, state):
        """Replace counters and anchors with a saved state (keys and crypto stay)."""
        restored = DeviceSecurity(self.own_eui, None, None, None,
                                  TrustAnchors.restore(state.get("anchors", {})),
                                  state.get("counters"), state.get("alert_counter", 0))
        self.anchors = restored.anchors
        self.counters = restored.counters
        self.alert_counter = restored.alert_counter

    @classmethod
    def restore(cls, state, own_eui=None, own_ds_private=None, own_ka_private=None,
                crypto=None):
        """A DeviceSecurity from `state()`; keys and crypto are handles, never persisted."""
        if own_eui is None:
            own_eui = _unhex(state["eui"])
        sec = cls(own_eui, own_ds_private, own_ka_private, crypto, None)
        sec.load_state(state)
        return sec


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


def _hex(data):
    return binascii.hexlify(bytes(data)).decode()


def _unhex(text):
    return binascii.unhexlify(text)
