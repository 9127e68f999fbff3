"""Clock, class_id 8, version 0 (Blue Book 4.5.1).

The device's time is not kept here: it is `ctx.now` (integer UTC seconds from the
injected device clock). A SET of `time` or a clock method moves the device clock
through the `set_time(seconds)` callback the application injects; without it they
are refused.

time (2) is an octet-string(12) date-time (Blue Book 4.1.6.1) with
deviation = time_zone (+ daylight_savings_deviation while DST is active), local =
UTC + deviation (the convention of firmware/dlms/cosem_datetime.py), and clock status
bit 0x80 while DST is active.

Daylight-saving rules (attributes 5 and 6) are date-times with wildcards. Resolved
per year: year 0xFFFF = every year; day_of_month 0xFE = last day, 0xFD = second
last; with a day_of_week the day is the first such weekday on or after an explicit
day, or the last one on or before 0xFE/0xFD (GB: month 3/10, day 0xFE, Sunday,
01:00). Hour/minute/second wildcards read as 0. A rule without deviation is in local
standard time (time_zone).
"""

from firmware.cosem.base import (CosemObject, DataAccessError, ActionError, expect,
                                 expect_int, expect_structure, action_error, hex_bytes,
                                 bytes_hex)
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms import cosem_datetime as cdt
from firmware.dlms.obis import CLOCK

CLOCK_BASE_INTERNAL_CRYSTAL = 1
UNSPECIFIED = cdt.UNSPECIFIED_DATETIME


def _date_time_payload(value):
    if value[0] != axdr.OCTET_STRING and value[0] != axdr.DATE_TIME:
        raise DataAccessError(R.TYPE_UNMATCHED, "date-time expected")
    if len(value[1]) != 12:
        raise DataAccessError(R.TYPE_UNMATCHED, "date-time is 12 octets")
    return bytes(value[1])


def rule_seconds(rule, year, time_zone):
    """UTC seconds at which a wildcarded DST rule date-time falls in `year`, or None."""
    (ry, month, day, weekday, hour, minute, second, _h, deviation,
     _s) = cdt.datetime_fields(rule)
    if ry != cdt.YEAR_NOT_SPECIFIED:
        if ry != year:
            return None
        year = ry
    if month < 1 or month > 12:
        return None
    last = cdt.days_in_month(year, month)
    if day == cdt.DAY_LAST:
        anchor, backwards = last, True
    elif day == cdt.DAY_SECOND_LAST:
        anchor, backwards = last - 1, True
    elif 1 <= day <= last:
        anchor, backwards = day, False
    else:
        return None
    days = cdt.days_from_civil(year, month, anchor)
    if 1 <= weekday <= 7:
        shift = (weekday - cdt.weekday_from_days(days)) % 7
        days = days - (7 - shift) % 7 if backwards else days + shift
    t = days * 86400
    for part, scale in ((hour, 3600), (minute, 60), (second, 1)):
        if part != cdt.NOT_SPECIFIED:
            t += part * scale
    offset = time_zone if deviation == cdt.DEVIATION_NOT_SPECIFIED else deviation
    return t - offset * 60


class Clock(CosemObject):
    class_id = 8
    version = 0
    attribute_count = 9
    method_count = 6

    def __init__(self, logical_name=CLOCK, time_zone=0, dst_begin=UNSPECIFIED,
                 dst_end=UNSPECIFIED, dst_deviation=60, dst_enabled=False,
                 clock_base=CLOCK_BASE_INTERNAL_CRYSTAL, set_time=None, measuring_period=0):
        CosemObject.__init__(self, logical_name)
        self.time_zone = time_zone
        self.status = 0
        self.dst_begin = dst_begin
        self.dst_end = dst_end
        self.dst_deviation = dst_deviation
        self.dst_enabled = dst_enabled
        self.clock_base = clock_base
        self.set_time = set_time            # callback(seconds): moves the device clock
        self.measuring_period = measuring_period
        self.preset = None                  # (preset, validity_start, validity_end) seconds

    # -- time as the device shows it ------------------------------------------------

    def dst_active(self, now):
        if not self.dst_enabled:
            return False
        year = cdt.civil_from_seconds(now)[0]
        begin = rule_seconds(self.dst_begin, year, self.time_zone)
        end = rule_seconds(self.dst_end, year, self.time_zone)
        if begin is None or end is None:
            return False
        if begin < end:
            return begin <= now < end
        return now >= begin or now < end    # southern hemisphere: DST spans new year

    def deviation(self, now):
        return self.time_zone + (self.dst_deviation if self.dst_active(now) else 0)

    def time_bytes(self, now):
        status = self.status
        dev = self.time_zone
        if self.dst_active(now):
            status |= cdt.STATUS_DAYLIGHT_SAVING_ACTIVE
            dev += self.dst_deviation
        return cdt.datetime_bytes(now, dev, status)

    # -- COSEM services ---------------------------------------------------------------

    def get_attribute(self, attribute, ctx, selector, parameters):
        if attribute == 2:
            return (axdr.OCTET_STRING, self.time_bytes(ctx.now))
        if attribute == 3:
            return (axdr.LONG, self.time_zone)
        if attribute == 4:
            status = self.status
            if self.dst_active(ctx.now):
                status |= cdt.STATUS_DAYLIGHT_SAVING_ACTIVE
            return (axdr.UNSIGNED, status)
        if attribute == 5:
            return (axdr.OCTET_STRING, self.dst_begin)
        if attribute == 6:
            return (axdr.OCTET_STRING, self.dst_end)
        if attribute == 7:
            return (axdr.INTEGER, self.dst_deviation)
        if attribute == 8:
            return (axdr.BOOLEAN, self.dst_enabled)
        return (axdr.ENUM, self.clock_base)

    def set_attribute(self, attribute, value, ctx):
        if attribute == 2:
            b = _date_time_payload(value)
            try:
                seconds = cdt.datetime_seconds(b)
            except ValueError:
                raise DataAccessError(R.OTHER_REASON, "time must be fully specified")
            self._move_to(seconds, DataAccessError, R.READ_WRITE_DENIED)
        elif attribute == 3:
            self.time_zone = expect_int(value, axdr.LONG, -720, 720)
        elif attribute == 4:
            raise DataAccessError(R.READ_WRITE_DENIED, "status is the device's own")
        elif attribute == 5:
            self.dst_begin = _date_time_payload(value)
        elif attribute == 6:
            self.dst_end = _date_time_payload(value)
        elif attribute == 7:
            self.dst_deviation = expect_int(value, axdr.INTEGER, -120, 120)
        elif attribute == 8:
            self.dst_enabled = bool(expect(value, axdr.BOOLEAN))
        else:
            self.clock_base = expect_int(value, axdr.ENUM, 0, 5)

    def run_method(self, method, parameters, ctx):
        now = ctx.now
        if method == 1:         # adjust_to_quarter: nearest quarter hour
            self._adjust(_nearest(now, 900))
        elif method == 2:       # adjust_to_measuring_period
            if self.measuring_period <= 0:
                raise ActionError(R.ACTION_OBJECT_UNAVAILABLE, "no measuring period")
            self._adjust(_nearest(now, self.measuring_period))
        elif method == 3:       # adjust_to_minute: nearest minute
            self._adjust(_nearest(now, 60))
        elif method == 4:       # adjust_to_preset_time, inside the validity interval
            p = self.preset
            if p is None or not p[1] <= now <= p[2]:
                raise ActionError(R.ACTION_OTHER_REASON, "no valid preset time")
            self._adjust(p[0])
            self.preset = None
        elif method == 5:       # preset_adjusting_time(structure of three date-times)
            try:
                items = expect_structure(parameters, 3)
                times = [cdt.datetime_seconds(_date_time_payload(v)) for v in items]
            except DataAccessError as e:
                raise action_error(e)
            except ValueError:
                raise ActionError(R.ACTION_OTHER_REASON, "preset must be fully specified")
            self.preset = (times[0], times[1], times[2])
        else:                   # shift_time(long -900..900 seconds)
            try:
                shift = expect_int(parameters, axdr.LONG, -900, 900)
            except DataAccessError as e:
                raise action_error(e)
            self._adjust(now + shift)
        return None

    def _adjust(self, seconds):
        self._move_to(seconds, ActionError, R.ACTION_OBJECT_UNAVAILABLE)

    def _move_to(self, seconds, error, code):
        if self.set_time is None:
            raise error(code, "the device clock cannot be set")
        self.set_time(seconds)
        # a clock just set from an authorised source is valid again (Blue Book 4.1.6.1)
        self.status &= ~(cdt.STATUS_INVALID_VALUE | cdt.STATUS_DOUBTFUL_VALUE) & 0xFF

    # -- persistence ------------------------------------------------------------------

    def state(self):
        return {"time_zone": self.time_zone, "status": self.status,
                "dst_begin": hex_bytes(self.dst_begin), "dst_end": hex_bytes(self.dst_end),
                "dst_deviation": self.dst_deviation, "dst_enabled": self.dst_enabled,
                "clock_base": self.clock_base,
                "preset": None if self.preset is None else list(self.preset)}

    def restore(self, state):
        self.time_zone = state["time_zone"]
        self.status = state["status"]
        self.dst_begin = bytes_hex(state["dst_begin"])
        self.dst_end = bytes_hex(state["dst_end"])
        self.dst_deviation = state["dst_deviation"]
        self.dst_enabled = state["dst_enabled"]
        self.clock_base = state["clock_base"]
        p = state["preset"]
        self.preset = None if p is None else (p[0], p[1], p[2])


def _nearest(seconds, step):
    return ((seconds + step // 2) // step) * step
