"""Payment metering: Account (class 111), Credit (class 112), Charge (class 113), version 0
(DLMS UA 1000-1 Blue Book 4.6.2-4.6.4), kept to what the GB use cases touch.

Amounts are integers in the account's currency unit (GB: pence; the currency attribute's
scaler is -2 on pounds, so 1 = 1p).

Credit (112): current_credit_amount (2), credit_type (3), priority (4),
warning_threshold (5), limit (6), credit_configuration (7), credit_status (8),
preset_credit_amount (9), credit_available_threshold (10), period (11). Methods:
update_amount (1, double-long added to the amount), set_amount_to_value (2, double-long:
GBCS ECS04b resets the meter balance with this), invoke_credit (3, enum credit_status).

Account (111): account_mode_and_status (2), current_credit_in_use (3),
current_credit_status (4), available_credit (5: the sum of the referenced credits),
amount_to_clear (6), clearance_threshold (7), aggregated_debt (8: the sum of the
referenced charges' total_amount_remaining), credit_reference_list (9),
charge_reference_list (10), credit_charge_configuration (11),
token_gateway_configuration (12), account_activation_time (13), account_closure_time
(14), currency (15), low_credit_threshold (16), next_credit_available_threshold (17),
max_provision (18), max_provision_period (19). Methods activate_account (1),
close_account (2), reset_account (3).

Charge (113): total_amount_paid (2), charge_type (3), priority (4),
unit_charge_active (5), unit_charge_passive (6), unit_charge_activation_time (7),
period (8), charge_configuration (9), last_collection_time (10),
last_collection_amount (11), total_amount_remaining (12), proportion (13). Methods:
update_unit_charge (1), activate_passive_unit_charge (2), collect (3),
update_total_amount_remaining (4), set_total_amount_remaining (5).

Attributes not listed as writable answer read-write-denied to SET; every value is
range-checked before anything changes.
"""

from firmware.cosem.base import (CosemObject, ActionError, DataAccessError, action_error,
                                 expect, expect_int, expect_structure, hex_bytes, bytes_hex)
from firmware.dlms import axdr
from firmware.dlms import results as R

INT32_MIN = -0x80000000
INT32_MAX = 0x7FFFFFFF

# Credit credit_type (Blue Book 4.6.3)
CREDIT_TOKEN = 0
CREDIT_RESERVED = 1
CREDIT_EMERGENCY = 2
CREDIT_TIME_BASED = 3
CREDIT_CONSUMPTION_BASED = 4
# Credit credit_status
STATUS_ENABLED = 0
STATUS_SELECTABLE = 1
STATUS_SELECTED = 2
STATUS_IN_USE = 3
STATUS_EXHAUSTED = 4
# Account payment_mode / account_status
PAYMENT_MODE_CREDIT = 1
PAYMENT_MODE_PREPAYMENT = 2
ACCOUNT_NEW = 1
ACCOUNT_ACTIVE = 2
ACCOUNT_CLOSED = 3
UNSPECIFIED_DATE_TIME = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x80\x00\xff"


def _i32(value):
    return expect_int(value, axdr.DOUBLE_LONG, INT32_MIN, INT32_MAX)


def _date_time(value):
    payload = expect(value, axdr.OCTET_STRING)
    if len(payload) != 12:
        raise DataAccessError(R.TYPE_UNMATCHED, "date-time is 12 octets")
    return bytes(payload)


def _checked_amount(amount):
    if amount < INT32_MIN or amount > INT32_MAX:
        raise ActionError(R.ACTION_OTHER_REASON, "amount leaves the double-long range")
    return amount


class Credit(CosemObject):
    class_id = 112
    version = 0
    attribute_count = 11
    method_count = 3
    WRITABLE = (4, 5, 6, 7, 9, 10, 11)

    def __init__(self, logical_name, credit_type=CREDIT_TOKEN, priority=1, amount=0,
                 warning_threshold=0, limit=0, status=STATUS_IN_USE, preset_amount=0,
                 on_change=None):
        CosemObject.__init__(self, logical_name)
        self.amount = amount
        self.credit_type = credit_type
        self.priority = priority
        self.warning_threshold = warning_threshold
        self.limit = limit
        self.configuration = (5, b"\x00")
        self.status = status
        self.preset_amount = preset_amount
        self.available_threshold = 0
        self.period = UNSPECIFIED_DATE_TIME
        self.on_change = on_change          # on_change(credit, old_amount): log, persist

    def update_amount(self, delta):
        """Add `delta` (a top-up, or a negative adjustment); ActionError leaves it as is."""
        self.set_amount(_checked_amount(self.amount + delta))

    def set_amount(self, amount):
        old = self.amount
        self.amount = _checked_amount(amount)
        if self.on_change is not None and old != self.amount:
            self.on_change(self, old)

    def get_attribute(self, attribute, ctx, selector, parameters):
        if attribute == 2:
            return (axdr.DOUBLE_LONG, self.amount)
        if attribute == 3:
            return (axdr.ENUM, self.credit_type)
        if attribute == 4:
            return (axdr.UNSIGNED, self.priority)
        if attribute == 5:
            return (axdr.DOUBLE_LONG, self.warning_threshold)
        if attribute == 6:
            return (axdr.DOUBLE_LONG, self.limit)
        if attribute == 7:
            return (axdr.BIT_STRING, self.configuration)
        if attribute == 8:
            return (axdr.ENUM, self.status)
        if attribute == 9:
            return (axdr.DOUBLE_LONG, self.preset_amount)
        if attribute == 10:
            return (axdr.DOUBLE_LONG, self.available_threshold)
        return (axdr.OCTET_STRING, self.period)

    def set_attribute(self, attribute, value, ctx):
        if attribute not in self.WRITABLE:
            raise DataAccessError(R.READ_WRITE_DENIED, "changed only by methods")
        if attribute == 4:
            self.priority = expect_int(value, axdr.UNSIGNED, 1, 255)
        elif attribute == 5:
            self.warning_threshold = _i32(value)
        elif attribute == 6:
            self.limit = _i32(value)
        elif attribute == 7:
            self.configuration = expect(value, axdr.BIT_STRING)
        elif attribute == 9:
            self.preset_amount = _i32(value)
        elif attribute == 10:
            self.available_threshold = _i32(value)
        else:
            self.period = _date_time(value)

    def run_method(self, method, parameters, ctx):
        try:
            if method == 3:
                self.status = expect_int(parameters, axdr.ENUM, STATUS_ENABLED, STATUS_EXHAUSTED)
                return None
            amount = expect_int(parameters, axdr.DOUBLE_LONG, INT32_MIN, INT32_MAX)
        except DataAccessError as e:
            raise action_error(e)
        if method == 1:
            self.update_amount(amount)
        else:
            self.set_amount(amount)
        return None

    def state(self):
        return {"amount": self.amount, "status": self.status, "priority": self.priority,
                "warning_threshold": self.warning_threshold, "limit": self.limit,
                "preset_amount": self.preset_amount,
                "available_threshold": self.available_threshold,
                "configuration": [self.configuration[0], hex_bytes(self.configuration[1])],
                "period": hex_bytes(self.period)}

    def restore(self, state):
        self.amount = state["amount"]
        self.status = state["status"]
        self.priority = state["priority"]
        self.warning_threshold = state["warning_threshold"]
        self.limit = state["limit"]
        self.preset_amount = state["preset_amount"]
        self.available_threshold = state["available_threshold"]
        self.configuration = (state["configuration"][0], bytes_hex(state["configuration"][1]))
        self.period = bytes_hex(state["period"])


class Charge(CosemObject):
    class_id = 113
    version = 0
    attribute_count = 13
    method_count = 5
    WRITABLE = (3, 4, 6, 7, 8, 9, 13)

    def __init__(self, logical_name, charge_type=0, priority=1, total_amount_remaining=0):
        CosemObject.__init__(self, logical_name)
        self.total_amount_paid = 0
        self.charge_type = charge_type
        self.priority = priority
        self.unit_charge_active = _unit_charge(0, 0)
        self.unit_charge_passive = _unit_charge(0, 0)
        self.activation_time = UNSPECIFIED_DATE_TIME
        self.period = 0
        self.configuration = (2, b"\x00")
        self.last_collection_time = UNSPECIFIED_DATE_TIME
        self.last_collection_amount = 0
        self.total_amount_remaining = total_amount_remaining
        self.proportion = 0

    def get_attribute(self, attribute, ctx, selector, parameters):
        values = {
            2: (axdr.DOUBLE_LONG, self.total_amount_paid),
            3: (axdr.ENUM, self.charge_type),
            4: (axdr.UNSIGNED, self.priority),
            5: self.unit_charge_active,
            6: self.unit_charge_passive,
            7: (axdr.OCTET_STRING, self.activation_time),
            8: (axdr.DOUBLE_LONG_UNSIGNED, self.period),
            9: (axdr.BIT_STRING, self.configuration),
            10: (axdr.OCTET_STRING, self.last_collection_time),
            11: (axdr.DOUBLE_LONG, self.last_collection_amount),
            12: (axdr.DOUBLE_LONG, self.total_amount_remaining),
            13: (axdr.LONG_UNSIGNED, self.proportion),
        }
        return values[attribute]

    def set_attribute(self, attribute, value, ctx):
        if attribute not in self.WRITABLE:
            raise DataAccessError(R.READ_WRITE_DENIED, "changed only by methods")
        if attribute == 3:
            self.charge_type = expect_int(value, axdr.ENUM, 0, 2)
        elif attribute == 4:
            self.priority = expect_int(value, axdr.UNSIGNED, 1, 255)
        elif attribute == 6:
            self.unit_charge_passive = _parse_unit_charge(value)
        elif attribute == 7:
            self.activation_time = _date_time(value)
        elif attribute == 8:
            self.period = expect_int(value, axdr.DOUBLE_LONG_UNSIGNED, 0, 0xFFFFFFFF)
        elif attribute == 9:
            self.configuration = expect(value, axdr.BIT_STRING)
        else:
            self.proportion = expect_int(value, axdr.LONG_UNSIGNED, 0, 10000)

    def collect(self, amount, now_bytes):
        """Take `amount` towards the debt: paid rises, remaining falls (not below 0)."""
        amount = min(amount, self.total_amount_remaining)
        self.total_amount_remaining -= amount
        self.total_amount_paid = _checked_amount(self.total_amount_paid + amount)
        self.last_collection_amount = amount
        self.last_collection_time = now_bytes
        return amount

    def run_method(self, method, parameters, ctx):
        try:
            if method == 1:
                self.unit_charge_passive = _parse_unit_charge(parameters)
            elif method == 2:
                self.unit_charge_active = self.unit_charge_passive
            elif method == 3:
                raise ActionError(R.ACTION_OBJECT_UNAVAILABLE,
                                  "collection runs with the meter's consumption")
            else:
                amount = _i32(parameters)
                if method == 4:
                    amount = _checked_amount(self.total_amount_remaining + amount)
                self.total_amount_remaining = amount
        except DataAccessError as e:
            raise action_error(e)
        return None

    def state(self):
        return {"paid": self.total_amount_paid, "remaining": self.total_amount_remaining,
                "last_amount": self.last_collection_amount,
                "last_time": hex_bytes(self.last_collection_time),
                "active": _unit_charge_json(self.unit_charge_active),
                "passive": _unit_charge_json(self.unit_charge_passive),
                "priority": self.priority, "proportion": self.proportion}

    def restore(self, state):
        self.total_amount_paid = state["paid"]
        self.total_amount_remaining = state["remaining"]
        self.last_collection_amount = state["last_amount"]
        self.last_collection_time = bytes_hex(state["last_time"])
        self.unit_charge_active = _unit_charge(*state["active"])
        self.unit_charge_passive = _unit_charge(*state["passive"])
        self.priority = state["priority"]
        self.proportion = state["proportion"]


def _unit_charge(scaler, price):
    """unit_charge ::= structure {charge_per_unit_scaling structure {commodity_scale
    integer, price_scale integer}, commodity reference, charge_table array} reduced to the
    scale and one flat price (an index of 0 with the price)."""
    return (axdr.STRUCTURE, [
        (axdr.STRUCTURE, [(axdr.INTEGER, 0), (axdr.INTEGER, scaler)]),
        (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 0), (axdr.OCTET_STRING, b"\x00" * 6),
                          (axdr.INTEGER, 0)]),
        (axdr.ARRAY, [(axdr.STRUCTURE, [(axdr.OCTET_STRING, b"\x00"),
                                        (axdr.LONG, price)])]),
    ])


def _parse_unit_charge(value):
    items = expect_structure(value, 3)
    scaling = expect_structure(items[0], 2)
    scaler = expect_int(scaling[1], axdr.INTEGER, -128, 127)
    table = expect(items[2], axdr.ARRAY)
    if len(table) != 1:
        raise DataAccessError(R.OTHER_REASON, "one flat unit charge supported")
    entry = expect_structure(table[0], 2)
    return _unit_charge(scaler, expect_int(entry[1], axdr.LONG, -0x8000, 0x7FFF))


def _unit_charge_json(value):
    items = value[1]
    return [items[0][1][1][1], items[2][1][0][1][1][1]]


class Account(CosemObject):
    class_id = 111
    version = 0
    attribute_count = 19
    method_count = 3
    WRITABLE = (7, 11, 12, 13, 14, 15, 16, 17, 18, 19)

    def __init__(self, logical_name, credits=(), charges=(), payment_mode=PAYMENT_MODE_CREDIT,
                 currency_name=b"GBP", currency_scale=-2):
        CosemObject.__init__(self, logical_name)
        self.credits = list(credits)
        self.charges = list(charges)
        self.payment_mode = payment_mode
        self.account_status = ACCOUNT_ACTIVE
        self.clearance_threshold = 0
        self.activation_time = UNSPECIFIED_DATE_TIME
        self.closure_time = UNSPECIFIED_DATE_TIME
        self.currency = (axdr.STRUCTURE, [(axdr.UTF8_STRING, currency_name),
                                          (axdr.INTEGER, currency_scale), (axdr.ENUM, 0)])
        self.low_credit_threshold = 0
        self.next_credit_available_threshold = 0
        self.max_provision = 0
        self.max_provision_period = 0
        self.credit_charge_configuration = (axdr.ARRAY, [])
        self.token_gateway_configuration = (axdr.ARRAY, [])

    # -- the values the GB use cases read ------------------------------------------------

    def available_credit(self):
        total = 0
        for credit in self.credits:
            total += credit.amount
        return total

    def aggregated_debt(self):
        total = 0
        for charge in self.charges:
            total += charge.total_amount_remaining
        return total

    def credit_in_use(self):
        """Index (1-based) of the first credit in use, 0 when none."""
        for i in range(len(self.credits)):
            if self.credits[i].status == STATUS_IN_USE:
                return i + 1
        return 0

    def get_attribute(self, attribute, ctx, selector, parameters):
        if attribute == 2:
            return (axdr.STRUCTURE, [(axdr.ENUM, self.payment_mode),
                                     (axdr.ENUM, self.account_status)])
        if attribute == 3:
            return (axdr.UNSIGNED, self.credit_in_use())
        if attribute == 4:
            exhausted = 0
            for credit in self.credits:
                if credit.amount <= 0:
                    exhausted = 0x80
            return (axdr.BIT_STRING, (8, bytes((exhausted,))))
        if attribute == 5:
            return (axdr.DOUBLE_LONG, _clamp(self.available_credit()))
        if attribute == 6:
            return (axdr.DOUBLE_LONG, _clamp(self.aggregated_debt() - self.available_credit()))
        if attribute == 7:
            return (axdr.DOUBLE_LONG, self.clearance_threshold)
        if attribute == 8:
            return (axdr.DOUBLE_LONG, _clamp(self.aggregated_debt()))
        if attribute == 9:
            return (axdr.ARRAY, [(axdr.OCTET_STRING, c.logical_name) for c in self.credits])
        if attribute == 10:
            return (axdr.ARRAY, [(axdr.OCTET_STRING, c.logical_name) for c in self.charges])
        if attribute == 11:
            return self.credit_charge_configuration
        if attribute == 12:
            return self.token_gateway_configuration
        if attribute == 13:
            return (axdr.OCTET_STRING, self.activation_time)
        if attribute == 14:
            return (axdr.OCTET_STRING, self.closure_time)
        if attribute == 15:
            return self.currency
        thresholds = {16: self.low_credit_threshold, 17: self.next_credit_available_threshold}
        if attribute in thresholds:
            return (axdr.DOUBLE_LONG, thresholds[attribute])
        if attribute == 18:
            return (axdr.LONG_UNSIGNED, self.max_provision)
        return (axdr.DOUBLE_LONG, self.max_provision_period)

    def set_attribute(self, attribute, value, ctx):
        if attribute not in self.WRITABLE:
            raise DataAccessError(R.READ_WRITE_DENIED, "computed or changed only by methods")
        if attribute == 7:
            self.clearance_threshold = _i32(value)
        elif attribute == 11:
            expect(value, axdr.ARRAY)
            self.credit_charge_configuration = value
        elif attribute == 12:
            expect(value, axdr.ARRAY)
            self.token_gateway_configuration = value
        elif attribute == 13:
            self.activation_time = _date_time(value)
        elif attribute == 14:
            self.closure_time = _date_time(value)
        elif attribute == 15:
            items = expect_structure(value, 3)
            expect(items[0], axdr.UTF8_STRING)
            expect_int(items[1], axdr.INTEGER, -128, 127)
            expect_int(items[2], axdr.ENUM, 0, 255)
            self.currency = value
        elif attribute == 16:
            self.low_credit_threshold = _i32(value)
        elif attribute == 17:
            self.next_credit_available_threshold = _i32(value)
        elif attribute == 18:
            self.max_provision = expect_int(value, axdr.LONG_UNSIGNED, 0, 0xFFFF)
        else:
            self.max_provision_period = _i32(value)

    def run_method(self, method, parameters, ctx):
        try:
            expect_int(parameters, axdr.INTEGER, 0, 0)      # data ::= integer(0)
        except DataAccessError as e:
            raise action_error(e)
        if method == 1:
            self.account_status = ACCOUNT_ACTIVE
        elif method == 2:
            self.account_status = ACCOUNT_CLOSED
        else:
            for credit in self.credits:
                credit.set_amount(0)
            for charge in self.charges:
                charge.total_amount_remaining = 0
            self.account_status = ACCOUNT_NEW
        return None

    def state(self):
        return {"payment_mode": self.payment_mode, "status": self.account_status,
                "clearance_threshold": self.clearance_threshold,
                "low_credit_threshold": self.low_credit_threshold}

    def restore(self, state):
        self.payment_mode = state["payment_mode"]
        self.account_status = state["status"]
        self.clearance_threshold = state["clearance_threshold"]
        self.low_credit_threshold = state["low_credit_threshold"]


def _clamp(n):
    if n < INT32_MIN:
        return INT32_MIN
    if n > INT32_MAX:
        return INT32_MAX
    return n
