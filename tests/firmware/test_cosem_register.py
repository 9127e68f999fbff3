"""Register (3), Extended register (4), Demand register (5): Blue Book 4.3.2-4.3.4."""

import json

from firmware.cosem.base import Context, DataAccessError, ActionError
from firmware.cosem.register import Register, ExtendedRegister, DemandRegister
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms.cosem_datetime import datetime_bytes, UNSPECIFIED_DATETIME

LN = b"\x01\x00\x01\x08\x00\xff"
T0 = 1767225600      # 2026-01-01 00:00 UTC


def _code(fn, *args):
    try:
        fn(*args)
    except (DataAccessError, ActionError) as e:
        return e.code
    return None


def test_register_value_and_scaler_unit():
    r = Register(LN, (axdr.DOUBLE_LONG_UNSIGNED, 12345), scaler=-3, unit=30)
    ctx = Context(T0, 16)
    assert r.get(2, ctx) == (axdr.DOUBLE_LONG_UNSIGNED, 12345)
    assert r.get(3, ctx) == (axdr.STRUCTURE, [(axdr.INTEGER, -3), (axdr.ENUM, 30)])
    assert axdr.encode(r.get(3, ctx)) == b"\x02\x02\x0f\xfd\x16\x1e"


def test_register_set_checks_type_and_range():
    r = Register(LN, (axdr.DOUBLE_LONG_UNSIGNED, 1))
    ctx = Context(T0, 1)
    assert _code(r.set, 2, (axdr.LONG, 1), ctx) == R.TYPE_UNMATCHED
    assert _code(r.set, 3, (axdr.STRUCTURE, [(axdr.INTEGER, 0)]), ctx) == R.TYPE_UNMATCHED
    assert _code(r.set, 3, (axdr.STRUCTURE, [(axdr.UNSIGNED, 0), (axdr.ENUM, 30)]),
                 ctx) == R.TYPE_UNMATCHED
    r.set(3, (axdr.STRUCTURE, [(axdr.INTEGER, 2), (axdr.ENUM, 32)]), ctx)
    assert (r.scaler, r.unit) == (2, 32)
    r.set(2, (axdr.DOUBLE_LONG_UNSIGNED, 9), ctx)
    assert r.value == (axdr.DOUBLE_LONG_UNSIGNED, 9)


def test_register_reset_method_zeroes_value_keeping_type():
    r = Register(LN, (axdr.LONG64, -40))
    assert r.action(1, (axdr.INTEGER, 0), Context(T0, 1)) is None
    assert r.value == (axdr.LONG64, 0)
    assert _code(r.action, 2, (axdr.INTEGER, 0), Context(T0, 1)) == R.ACTION_OBJECT_UNDEFINED


def test_register_state_round_trip():
    r = Register(LN, (axdr.DOUBLE_LONG_UNSIGNED, 5))
    r.value = (axdr.DOUBLE_LONG_UNSIGNED, 99)
    s = json.loads(json.dumps(r.state()))
    q = Register(LN, (axdr.DOUBLE_LONG_UNSIGNED, 0))
    q.restore(s)
    assert q.value == (axdr.DOUBLE_LONG_UNSIGNED, 99)


def test_extended_register_status_and_capture_time():
    x = ExtendedRegister(LN, (axdr.DOUBLE_LONG_UNSIGNED, 0), 0, 30)
    ctx = Context(T0 + 60, 16)
    assert x.get(5, ctx) == (axdr.OCTET_STRING, UNSPECIFIED_DATETIME)
    x.update((axdr.DOUBLE_LONG_UNSIGNED, 500), T0, (axdr.UNSIGNED, 4))
    assert x.get(2, ctx) == (axdr.DOUBLE_LONG_UNSIGNED, 500)
    assert x.get(4, ctx) == (axdr.UNSIGNED, 4)
    assert x.get(5, ctx) == (axdr.OCTET_STRING, datetime_bytes(T0))
    assert _code(x.set, 5, (axdr.OCTET_STRING, datetime_bytes(T0)), ctx) == R.READ_WRITE_DENIED
    assert _code(x.get, 6, ctx) == R.OBJECT_UNDEFINED
    x.action(1, (axdr.INTEGER, 0), ctx)
    assert x.value == (axdr.DOUBLE_LONG_UNSIGNED, 0)
    assert x.status == (axdr.UNSIGNED, 0)
    assert x.capture_time == T0 + 60
    s = json.loads(json.dumps(x.state()))
    y = ExtendedRegister(LN)
    y.restore(s)
    assert y.state() == x.state()


def test_demand_register_block_demand():
    d = DemandRegister(LN, period=900, number_of_periods=1, scaler=0, unit=27, start=T0)
    d.sample(1000, T0)
    d.sample(3000, T0 + 450)             # 1000 W for 450 s, then 3000 W
    ctx = Context(T0 + 900, 16)
    assert d.get(3, ctx) == (axdr.DOUBLE_LONG_UNSIGNED, 2000)   # closed at T0+900
    assert d.get(6, ctx) == (axdr.OCTET_STRING, datetime_bytes(T0 + 900))
    assert d.get(7, ctx) == (axdr.OCTET_STRING, datetime_bytes(T0 + 900))
    # running demand: energy so far divided by the whole period (Blue Book 4.3.4)
    assert d.get(2, Context(T0 + 1350, 16)) == (axdr.DOUBLE_LONG_UNSIGNED, 1500)
    assert d.get(3, Context(T0 + 1800, 16)) == (axdr.DOUBLE_LONG_UNSIGNED, 3000)
    assert d.get(8, ctx) == (axdr.DOUBLE_LONG_UNSIGNED, 900)
    assert d.get(9, ctx) == (axdr.LONG_UNSIGNED, 1)
    assert d.get(4, ctx) == (axdr.STRUCTURE, [(axdr.INTEGER, 0), (axdr.ENUM, 27)])


def test_demand_register_sliding_window():
    d = DemandRegister(LN, period=60, number_of_periods=3, start=T0)
    d.sample(600, T0)
    d.advance(T0 + 60)
    assert d.last_average == 200                     # 600*60 / (3*60)
    d.sample(0, T0 + 60)
    d.advance(T0 + 180)
    assert d.last_average == 200                     # window still holds the 600 W minute
    d.advance(T0 + 240)
    assert d.last_average == 0


def test_demand_register_methods_reset_and_next_period():
    d = DemandRegister(LN, period=900, start=T0)
    d.sample(900, T0)
    ctx = Context(T0 + 300, 1)
    d.action(2, (axdr.INTEGER, 0), ctx)             # next_period closes early
    assert d.last_average == 300                     # 900*300 / 900
    assert d.start_time_current == T0 + 300
    d.action(1, (axdr.INTEGER, 0), Context(T0 + 400, 1))
    assert d.last_average == 0 and d.capture_time is None
    assert d.start_time_current == T0 + 400
    assert d.get(2, Context(T0 + 400, 1)) == (axdr.DOUBLE_LONG_UNSIGNED, 0)


def test_demand_register_set_period_range_and_state():
    d = DemandRegister(LN, period=900, start=T0)
    ctx = Context(T0, 1)
    assert _code(d.set, 8, (axdr.DOUBLE_LONG_UNSIGNED, 0), ctx) == R.OTHER_REASON
    assert _code(d.set, 9, (axdr.UNSIGNED, 2), ctx) == R.TYPE_UNMATCHED
    assert _code(d.set, 2, (axdr.DOUBLE_LONG_UNSIGNED, 0), ctx) == R.READ_WRITE_DENIED
    d.set(8, (axdr.DOUBLE_LONG_UNSIGNED, 1800), ctx)
    d.sample(100, T0)
    d.advance(T0 + 2000)
    s = json.loads(json.dumps(d.state()))
    e = DemandRegister(LN)
    e.restore(s)
    assert e.state() == d.state()
    assert e.get(3, ctx) == d.get(3, ctx)
