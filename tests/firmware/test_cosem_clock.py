"""Clock (8): time with deviation and DST, set through the injected callback, methods."""

import json
import struct

from firmware.cosem.base import Context, DataAccessError, ActionError
from firmware.cosem.clock import Clock, rule_seconds
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms.cosem_datetime import (datetime_bytes, seconds_from_civil,
                                          UNSPECIFIED_DATETIME)

WINTER = seconds_from_civil(2026, 1, 15, 12, 0, 0)
SUMMER = seconds_from_civil(2026, 7, 1, 12, 0, 0)


def _rule(month, day, weekday, hour):
    # year, month, day, weekday, hour, minute, second, hundredths, deviation, status
    return struct.pack(">HBBBBBBBhB", 0xFFFF, month, day, weekday, hour, 0, 0, 0xFF,
                       -0x8000, 0xFF)


GB_BEGIN = _rule(3, 0xFE, 7, 1)      # last Sunday of March, 01:00 GMT
GB_END = _rule(10, 0xFE, 7, 1)       # last Sunday of October, 01:00 GMT


def _gb_clock(moves=None):
    setter = None if moves is None else moves.append
    return Clock(time_zone=0, dst_begin=GB_BEGIN, dst_end=GB_END, dst_deviation=60,
                 dst_enabled=True, set_time=setter)


def _code(fn, *args):
    try:
        fn(*args)
    except (DataAccessError, ActionError) as e:
        return e.code
    return None


def test_time_is_octet_string_date_time_of_now():
    c = Clock()
    assert c.get(2, Context(WINTER, 16)) == (axdr.OCTET_STRING, datetime_bytes(WINTER))
    raw = c.get(2, Context(WINTER, 16))[1]
    assert raw[0:2] == b"\x07\xea" and raw[2] == 1 and raw[3] == 15 and raw[5] == 12


def test_gb_dst_rules_resolve_to_the_last_sundays():
    assert rule_seconds(GB_BEGIN, 2026, 0) == seconds_from_civil(2026, 3, 29, 1, 0, 0)
    assert rule_seconds(GB_END, 2026, 0) == seconds_from_civil(2026, 10, 25, 1, 0, 0)
    assert rule_seconds(GB_BEGIN, 2027, 0) == seconds_from_civil(2027, 3, 28, 1, 0, 0)
    # "first Sunday on or after the 25th" is the same day
    assert rule_seconds(_rule(3, 25, 7, 1), 2026, 0) == seconds_from_civil(2026, 3, 29, 1, 0, 0)
    # second-last day anchor, no weekday
    assert rule_seconds(_rule(2, 0xFD, 0xFF, 0), 2028, 0) == seconds_from_civil(2028, 2, 28)
    # a rule in local standard time one hour ahead of UTC
    assert rule_seconds(GB_BEGIN, 2026, 60) == seconds_from_civil(2026, 3, 29, 0, 0, 0)
    assert rule_seconds(UNSPECIFIED_DATETIME, 2026, 0) is None


def test_dst_changes_deviation_and_status():
    c = _gb_clock()
    assert c.get(2, Context(WINTER, 16))[1] == datetime_bytes(WINTER, 0, 0)
    assert c.get(2, Context(SUMMER, 16))[1] == datetime_bytes(SUMMER, 60, 0x80)
    assert c.get(2, Context(SUMMER, 16))[1][5] == 13          # 13:00 BST
    assert c.get(4, Context(SUMMER, 16)) == (axdr.UNSIGNED, 0x80)
    assert c.get(4, Context(WINTER, 16)) == (axdr.UNSIGNED, 0)
    start = seconds_from_civil(2026, 3, 29, 1, 0, 0)
    end = seconds_from_civil(2026, 10, 25, 1, 0, 0)
    assert not c.dst_active(start - 1) and c.dst_active(start)
    assert c.dst_active(end - 1) and not c.dst_active(end)
    c.dst_enabled = False
    assert not c.dst_active(SUMMER)


def test_southern_hemisphere_rules_span_new_year():
    c = Clock(dst_begin=_rule(10, 1, 7, 2), dst_end=_rule(4, 1, 7, 3), dst_enabled=True)
    assert c.dst_active(WINTER)
    assert not c.dst_active(SUMMER)


def test_static_attributes():
    c = _gb_clock()
    ctx = Context(WINTER, 16)
    assert c.get(3, ctx) == (axdr.LONG, 0)
    assert c.get(5, ctx) == (axdr.OCTET_STRING, GB_BEGIN)
    assert c.get(6, ctx) == (axdr.OCTET_STRING, GB_END)
    assert c.get(7, ctx) == (axdr.INTEGER, 60)
    assert c.get(8, ctx) == (axdr.BOOLEAN, True)
    assert c.get(9, ctx) == (axdr.ENUM, 1)
    assert _code(c.get, 10, ctx) == R.OBJECT_UNDEFINED


def test_set_time_moves_the_device_clock():
    moves = []
    c = _gb_clock(moves)
    target = seconds_from_civil(2026, 2, 1, 8, 30, 0)
    c.set(2, (axdr.OCTET_STRING, datetime_bytes(target)), Context(WINTER, 1))
    c.set(2, (axdr.DATE_TIME, datetime_bytes(target, 60)), Context(WINTER, 1))
    assert moves == [target, target]


def test_set_time_refusals():
    c = Clock()
    ctx = Context(WINTER, 1)
    assert _code(c.set, 2, (axdr.OCTET_STRING, datetime_bytes(WINTER)), ctx) == R.READ_WRITE_DENIED
    c = _gb_clock([])
    assert _code(c.set, 2, (axdr.OCTET_STRING, UNSPECIFIED_DATETIME), ctx) == R.OTHER_REASON
    assert _code(c.set, 2, (axdr.OCTET_STRING, b"\x07\xea"), ctx) == R.TYPE_UNMATCHED
    assert _code(c.set, 2, (axdr.DOUBLE_LONG_UNSIGNED, WINTER), ctx) == R.TYPE_UNMATCHED


def test_set_configuration_attributes_with_range_checks():
    c = _gb_clock()
    ctx = Context(WINTER, 1)
    c.set(3, (axdr.LONG, -300), ctx)
    assert c.time_zone == -300
    assert _code(c.set, 3, (axdr.LONG, 721), ctx) == R.OTHER_REASON
    assert _code(c.set, 3, (axdr.INTEGER, 0), ctx) == R.TYPE_UNMATCHED
    assert _code(c.set, 4, (axdr.UNSIGNED, 0), ctx) == R.READ_WRITE_DENIED
    c.set(5, (axdr.OCTET_STRING, GB_END), ctx)
    assert c.dst_begin == GB_END
    c.set(7, (axdr.INTEGER, -60), ctx)
    assert _code(c.set, 7, (axdr.INTEGER, 121), ctx) == R.OTHER_REASON
    c.set(8, (axdr.BOOLEAN, False), ctx)
    assert not c.dst_enabled
    assert _code(c.set, 9, (axdr.ENUM, 6), ctx) == R.OTHER_REASON


def test_adjust_methods():
    moves = []
    c = _gb_clock(moves)
    t = seconds_from_civil(2026, 1, 15, 12, 7, 31)
    c.action(3, (axdr.INTEGER, 0), Context(t, 1))                       # adjust_to_minute
    c.action(1, (axdr.INTEGER, 0), Context(t, 1))                       # adjust_to_quarter
    c.action(6, (axdr.LONG, -900), Context(t, 1))                       # shift_time
    c.action(6, (axdr.LONG, 30), Context(t, 1))
    assert moves == [seconds_from_civil(2026, 1, 15, 12, 8, 0),
                     seconds_from_civil(2026, 1, 15, 12, 15, 0), t - 900, t + 30]
    assert _code(c.action, 6, (axdr.LONG, 901), Context(t, 1)) == R.ACTION_OTHER_REASON
    assert _code(c.action, 6, (axdr.INTEGER, 1), Context(t, 1)) == R.ACTION_TYPE_UNMATCHED
    assert _code(c.action, 2, (axdr.INTEGER, 0), Context(t, 1)) == R.ACTION_OBJECT_UNAVAILABLE
    c.measuring_period = 600
    c.action(2, (axdr.INTEGER, 0), Context(t, 1))
    assert moves[-1] == seconds_from_civil(2026, 1, 15, 12, 10, 0)
    assert _code(c.action, 7, (axdr.INTEGER, 0), Context(t, 1)) == R.ACTION_OBJECT_UNDEFINED


def test_preset_adjusting_time():
    moves = []
    c = _gb_clock(moves)
    preset = seconds_from_civil(2026, 1, 15, 13, 0, 0)
    params = (axdr.STRUCTURE, [(axdr.OCTET_STRING, datetime_bytes(preset)),
                               (axdr.OCTET_STRING, datetime_bytes(WINTER - 60)),
                               (axdr.OCTET_STRING, datetime_bytes(WINTER + 60))])
    assert _code(c.action, 4, (axdr.INTEGER, 0), Context(WINTER, 1)) == R.ACTION_OTHER_REASON
    c.action(5, params, Context(WINTER, 1))
    assert _code(c.action, 4, (axdr.INTEGER, 0), Context(WINTER + 61, 1)) == R.ACTION_OTHER_REASON
    c.action(4, (axdr.INTEGER, 0), Context(WINTER, 1))
    assert moves == [preset]
    assert _code(c.action, 5, (axdr.STRUCTURE, []), Context(WINTER, 1)) == R.ACTION_TYPE_UNMATCHED


def test_methods_without_a_settable_clock_are_refused():
    c = Clock()
    assert _code(c.action, 3, (axdr.INTEGER, 0), Context(WINTER, 1)) == R.ACTION_OBJECT_UNAVAILABLE


def test_state_round_trip():
    c = _gb_clock()
    c.set(3, (axdr.LONG, 60), Context(WINTER, 1))
    c.status = 0x02
    saved = json.loads(json.dumps(c.state()))
    d = Clock()
    d.restore(saved)
    assert d.state() == c.state()
    assert d.get(2, Context(SUMMER, 1)) == c.get(2, Context(SUMMER, 1))
