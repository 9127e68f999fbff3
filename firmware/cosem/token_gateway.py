"""Token gateway, class_id 115, version 0 (DLMS UA 1000-1 Blue Book 4.6.5), for GB UTRNs.

Attributes: token (2, octet-string: the last token entered), token_time (3, date-time),
token_description (4, array of octet-string), token_delivery_method (5, enum: 0 remote,
1 local, 2 manual), token_status (6, structure {token_status_code enum, data
bit-string}). Method enter (1, data ::= octet-string token).

GB (GBCS CS01a, clause 14): the token is a 20-digit UTRN. It is checked in three stages,
and the status code says which one failed (Blue Book token_status_code):
  4 token format failure        not 20 digits, or the check digit does not match;
  6 validation result failure   its counter is already used or older than the record;
  5 authentication failure      the PTUT tag does not verify (wrong supplier or device);
  3 token execution result OK   credit applied.
The anti-replay record is the gateway's own (`UtrnAntiReplay`, apart from the GBCS
originator counters), and it and the credit change together or not at all: the UTRN is
verified against a copy of the record, the credit is applied, then the copy is kept.
`verify(utrn, record)` is injected (the ESME binds it to `firmware.gbcs.utrn.verify` with
its crypto and the supplier's prepayment key agreement); the value goes to `credit`
(a Credit, class 112) in pence (a pounds-class UTRN counts 100 p a unit). An optional
`floor()` gives the counter a UTRN must exceed (the prepayment top-up floor a CS02b
credentials update sets for a new supplier, GBCS 13.3.2); at or below it the UTRN fails
validation.
"""

from firmware.cosem.base import ActionError, CosemObject, DataAccessError, expect_int
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms.cosem_datetime import datetime_bytes
from firmware.gbcs import utrn as U

DELIVERY_REMOTE = 0
DELIVERY_LOCAL = 1
DELIVERY_MANUAL = 2

FORMAT_OK = 0
AUTHENTICATION_OK = 1
VALIDATION_OK = 2
EXECUTION_OK = 3
FORMAT_FAILURE = 4
AUTHENTICATION_FAILURE = 5
VALIDATION_FAILURE = 6
EXECUTION_FAILURE = 7
NOT_YET_PROCESSED = 8


class TokenRefused(ActionError):
    """An ACTION enter that failed; `status_code` is the token_status_code it left."""

    def __init__(self, status_code, reason):
        super().__init__(R.ACTION_OTHER_REASON, reason)
        self.status_code = status_code


class TokenGateway(CosemObject):
    class_id = 115
    version = 0
    attribute_count = 6
    method_count = 1

    def __init__(self, logical_name, verify, credit, record=None,
                 delivery_method=DELIVERY_REMOTE, floor=None):
        CosemObject.__init__(self, logical_name)
        self.verify = verify            # verify(utrn_text, record) -> (counter, class, value)
        self.floor = floor              # floor() -> counter a UTRN must exceed, or None
        self.credit = credit
        self.record = record if record is not None else U.UtrnAntiReplay()
        self.delivery_method = delivery_method
        self.token = b""
        self.token_time = b"\xff" * 9 + b"\x80\x00\xff"
        self.status_code = NOT_YET_PROCESSED
        self.last_value_pence = 0

    def enter(self, token, now):
        """Check and apply one UTRN; returns the pence credited or raises TokenRefused."""
        copy = U.UtrnAntiReplay(self.record.size, self.record.accepted)
        try:
            low_bits = U.parse(token)[0]
        except (U.UtrnError, ValueError) as e:
            self._refused(FORMAT_FAILURE, token, now, e)
        try:
            counter = copy.full_counter(low_bits)
            copy.check(counter)
            floor = None if self.floor is None else self.floor()
            if floor is not None and counter <= floor:
                raise U.UtrnError("UTRN counter not above the top-up floor")
        except U.UtrnError as e:
            self._refused(VALIDATION_FAILURE, token, now, e)
        try:
            counter, value_class, value = self.verify(token, copy)
        except U.UtrnError as e:
            self._refused(AUTHENTICATION_FAILURE, token, now, e)
        pence = value * 100 if value_class == U.CLASS_POUNDS else value
        try:
            self.credit.update_amount(pence)
        except ActionError as e:
            self._refused(EXECUTION_FAILURE, token, now, e)
        self.record = copy
        self.last_value_pence = pence
        self._record_status(EXECUTION_OK, token, now)
        return pence

    def _refused(self, code, token, now, error):
        self._record_status(code, token, now)
        raise TokenRefused(code, getattr(error, "reason", str(error)))

    def _record_status(self, code, token, now):
        self.status_code = code
        self.token = bytes(token)
        self.token_time = datetime_bytes(now)

    # -- COSEM services -----------------------------------------------------------------

    def get_attribute(self, attribute, ctx, selector, parameters):
        if attribute == 2:
            return (axdr.OCTET_STRING, self.token)
        if attribute == 3:
            return (axdr.OCTET_STRING, self.token_time)
        if attribute == 4:
            return (axdr.ARRAY, [(axdr.OCTET_STRING, b"UTRN")])
        if attribute == 5:
            return (axdr.ENUM, self.delivery_method)
        return (axdr.STRUCTURE, [(axdr.ENUM, self.status_code), (axdr.BIT_STRING, (8, b"\x00"))])

    def set_attribute(self, attribute, value, ctx):
        if attribute != 5:
            raise DataAccessError(R.READ_WRITE_DENIED, "written only by enter")
        self.delivery_method = expect_int(value, axdr.ENUM, DELIVERY_REMOTE, DELIVERY_MANUAL)

    def run_method(self, method, parameters, ctx):
        if parameters is None or parameters[0] != axdr.OCTET_STRING:
            raise ActionError(R.ACTION_TYPE_UNMATCHED, "the token is an octet-string")
        self.enter(bytes(parameters[1]), ctx.now)
        return None

    def state(self):
        return {"record": self.record.state(), "status": self.status_code,
                "token": self.token.decode() if _printable(self.token) else "",
                "last_value_pence": self.last_value_pence}

    def restore(self, state):
        record = state["record"]
        self.record = U.UtrnAntiReplay(record["size"], record["accepted"])
        self.status_code = state["status"]
        self.token = state["token"].encode()
        self.last_value_pence = state["last_value_pence"]


def _printable(token):
    for b in token:
        if b < 0x20 or b > 0x7E:
            return False
    return True
