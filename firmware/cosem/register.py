"""Register (3), Extended register (4) and Demand register (5), Blue Book 4.3.2-4.3.4.

A register's value is a tagged A-XDR value the application updates (`value` field);
its scaler_unit is structure {scaler integer, unit enum} (Blue Book 4.3.2, units table).
Dates (capture_time, start_time_current) are kept as integer seconds and encoded as
octet-string(12) date-time on read; None reads as the "not specified" date-time.
"""

from firmware.cosem.base import (CosemObject, DataAccessError, INTEGER_TAGS, expect_int,
                                 expect_structure, value_to_json,
                                 value_from_json)
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms import cosem_datetime

# Blue Book 4.1.6.1: every field not specified, deviation 0x8000, status not specified.
UNSPECIFIED_DATE_TIME = cosem_datetime.UNSPECIFIED_DATETIME


def date_time_value(seconds):
    if seconds is None:
        return (axdr.OCTET_STRING, UNSPECIFIED_DATE_TIME)
    return (axdr.OCTET_STRING, cosem_datetime.datetime_bytes(seconds))


def zero_of(value):
    """The reset value of a register of this type (Blue Book: "the default value")."""
    tag = value[0]
    if tag in INTEGER_TAGS:
        return (tag, 0)
    if tag == axdr.FLOAT32 or tag == axdr.FLOAT64:
        return (tag, 0.0)
    return (axdr.NULL_DATA, None)


def check_same_type(old, new):
    if old[0] != axdr.NULL_DATA and new[0] != old[0]:
        raise DataAccessError(R.TYPE_UNMATCHED, "value keeps its type")


def scaler_unit_value(scaler, unit):
    return (axdr.STRUCTURE, [(axdr.INTEGER, scaler), (axdr.ENUM, unit)])


def parse_scaler_unit(value):
    items = expect_structure(value, 2)
    return (expect_int(items[0], axdr.INTEGER, -128, 127),
            expect_int(items[1], axdr.ENUM, 0, 255))


class Register(CosemObject):
    class_id = 3
    version = 0
    attribute_count = 3
    method_count = 1

    def __init__(self, logical_name, value=(axdr.DOUBLE_LONG_UNSIGNED, 0), scaler=0, unit=255):
        CosemObject.__init__(self, logical_name)
        self.value = value
        self.scaler = scaler
        self.unit = unit        # 255 = count / unitless (Blue Book units table)

    def get_attribute(self, attribute, ctx, selector, parameters):
        if attribute == 2:
            return self.value
        return scaler_unit_value(self.scaler, self.unit)

    def set_attribute(self, attribute, value, ctx):
        if attribute == 2:
            check_same_type(self.value, value)
            self.value = value
        else:
            self.scaler, self.unit = parse_scaler_unit(value)

    def run_method(self, method, parameters, ctx):
        # reset (data) with data ::= integer(0), Blue Book 4.3.2
        self.reset(ctx.now)

    def reset(self, now):
        self.value = zero_of(self.value)

    def state(self):
        return {"value": value_to_json(self.value)}

    def restore(self, state):
        self.value = value_from_json(state["value"])


class ExtendedRegister(Register):
    class_id = 4
    version = 0
    attribute_count = 5
    method_count = 1

    def __init__(self, logical_name, value=(axdr.DOUBLE_LONG_UNSIGNED, 0), scaler=0, unit=255,
                 status=(axdr.UNSIGNED, 0)):
        Register.__init__(self, logical_name, value, scaler, unit)
        self.status = status
        self.capture_time = None

    def update(self, value, now, status=None):
        """The application stores a new value: capture_time follows (Blue Book 4.3.3)."""
        self.value = value
        if status is not None:
            self.status = status
        self.capture_time = now

    def get_attribute(self, attribute, ctx, selector, parameters):
        if attribute == 4:
            return self.status
        if attribute == 5:
            return date_time_value(self.capture_time)
        return Register.get_attribute(self, attribute, ctx, selector, parameters)

    def set_attribute(self, attribute, value, ctx):
        if attribute == 4:
            check_same_type(self.status, value)
            self.status = value
        elif attribute == 5:
            raise DataAccessError(R.READ_WRITE_DENIED, "capture_time is set by captures")
        else:
            Register.set_attribute(self, attribute, value, ctx)

    def reset(self, now):
        self.value = zero_of(self.value)
        self.status = zero_of(self.status)
        self.capture_time = now

    def state(self):
        return {"value": value_to_json(self.value), "status": value_to_json(self.status),
                "capture_time": self.capture_time}

    def restore(self, state):
        self.value = value_from_json(state["value"])
        self.status = value_from_json(state["status"])
        self.capture_time = state["capture_time"]


class DemandRegister(CosemObject):
    """Block or sliding demand over `number_of_periods` sub-periods of `period` seconds.

    The application feeds instantaneous samples with `sample(value, now)`; the integral
    of each sub-period is kept in integer value-seconds, so averages are exact integer
    divisions (no float on boards with 32-bit floats). `advance(now)` closes every
    sub-period boundary passed (Blue Book 4.3.4: last_average_value is the average
    over number_of_periods * period when a period ends).
    """
    class_id = 5
    version = 0
    attribute_count = 9
    method_count = 2

    def __init__(self, logical_name, period=1800, number_of_periods=1, scaler=0, unit=255,
                 value_tag=axdr.DOUBLE_LONG_UNSIGNED, start=0):
        CosemObject.__init__(self, logical_name)
        if period < 1 or number_of_periods < 1:
            raise ValueError("period and number_of_periods must be positive")
        self.period = period
        self.number_of_periods = number_of_periods
        self.scaler = scaler
        self.unit = unit
        self.value_tag = value_tag
        self.status = (axdr.UNSIGNED, 0)
        self.last_average = 0
        self.capture_time = None
        self.start_time_current = start
        self._integrals = []        # closed sub-periods, oldest first, at most n - 1 kept
        self._current = 0           # integral of the current sub-period
        self._last_sample = None    # (value, time) of the latest sample

    # -- the application's side -------------------------------------------------

    def sample(self, value, now):
        self.advance(now)
        self._integrate_to(now)
        self._last_sample = (value, now)

    def advance(self, now):
        while now >= self.start_time_current + self.period:
            self._close_period(self.start_time_current + self.period)

    def current_average(self, now):
        self._integrate_to(now)
        total = self._current
        for x in self._integrals:
            total += x
        return total // (self.period * self.number_of_periods)

    # -- COSEM services -----------------------------------------------------------

    def get_attribute(self, attribute, ctx, selector, parameters):
        self.advance(ctx.now)       # periods that ended since the last sample close now
        if attribute == 2:
            return (self.value_tag, self.current_average(ctx.now))
        if attribute == 3:
            return (self.value_tag, self.last_average)
        if attribute == 4:
            return scaler_unit_value(self.scaler, self.unit)
        if attribute == 5:
            return self.status
        if attribute == 6:
            return date_time_value(self.capture_time)
        if attribute == 7:
            return date_time_value(self.start_time_current)
        if attribute == 8:
            return (axdr.DOUBLE_LONG_UNSIGNED, self.period)
        return (axdr.LONG_UNSIGNED, self.number_of_periods)

    def set_attribute(self, attribute, value, ctx):
        if attribute == 4:
            self.scaler, self.unit = parse_scaler_unit(value)
        elif attribute == 5:
            check_same_type(self.status, value)
            self.status = value
        elif attribute == 8:
            self.period = expect_int(value, axdr.DOUBLE_LONG_UNSIGNED, 1, 0xFFFFFFFF)
            self._restart(ctx.now)
        elif attribute == 9:
            self.number_of_periods = expect_int(value, axdr.LONG_UNSIGNED, 1, 0xFFFF)
            self._restart(ctx.now)
        else:
            raise DataAccessError(R.READ_WRITE_DENIED, "computed attribute")

    def run_method(self, method, parameters, ctx):
        if method == 1:
            # reset: averages, status and capture_time to defaults, a new period starts
            self.last_average = 0
            self.status = zero_of(self.status)
            self.capture_time = None
            self._restart(ctx.now)
        else:
            # next_period: close the current period now (Blue Book 4.3.4 method 2)
            self.advance(ctx.now)
            self._close_period(ctx.now)
        return None

    # -- internals ------------------------------------------------------------------

    def _integrate_to(self, t):
        if self._last_sample is None:
            return
        value, since = self._last_sample
        if t > since:
            self._current += value * (t - since)
            self._last_sample = (value, t)

    def _close_period(self, end):
        self._integrate_to(end)
        self._integrals.append(self._current)
        window = self._integrals
        total = 0
        for x in window:
            total += x
        self.last_average = total // (self.period * self.number_of_periods)
        self.capture_time = end
        self.start_time_current = end
        self._current = 0
        keep = self.number_of_periods - 1
        if len(window) > keep:
            self._integrals = window[len(window) - keep:] if keep else []

    def _restart(self, now):
        self._integrals = []
        self._current = 0
        self.start_time_current = now
        if self._last_sample is not None:
            self._last_sample = (self._last_sample[0], now)

    def state(self):
        return {"last_average": self.last_average, "capture_time": self.capture_time,
                "start_time_current": self.start_time_current, "period": self.period,
                "number_of_periods": self.number_of_periods,
                "status": value_to_json(self.status), "integrals": list(self._integrals),
                "current": self._current,
                "last_sample": None if self._last_sample is None else list(self._last_sample)}

    def restore(self, state):
        self.last_average = state["last_average"]
        self.capture_time = state["capture_time"]
        self.start_time_current = state["start_time_current"]
        self.period = state["period"]
        self.number_of_periods = state["number_of_periods"]
        self.status = value_from_json(state["status"])
        self._integrals = list(state["integrals"])
        self._current = state["current"]
        ls = state["last_sample"]
        self._last_sample = None if ls is None else (ls[0], ls[1])
