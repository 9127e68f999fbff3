"""CosemObject common behaviour (Blue Book 4.1): logical name, bounds, JSON state."""

import json

from firmware.cosem.base import (CosemObject, Context, DataAccessError, ActionError,
                                 value_to_json, value_from_json, expect_int)
from firmware.cosem.data import Data
from firmware.dlms import axdr
from firmware.dlms import results as R

LN = b"\x00\x00\x60\x01\x00\xff"
CTX = Context(1700000000, 16)


def _code(fn, *args):
    try:
        fn(*args)
    except (DataAccessError, ActionError) as e:
        return e.code
    return None


def test_logical_name_is_attribute_1_and_fixed():
    d = Data(LN, (axdr.UNSIGNED, 3))
    assert d.get(1, CTX) == (axdr.OCTET_STRING, LN)
    assert _code(d.set, 1, (axdr.OCTET_STRING, b"\x00" * 6), CTX) == R.READ_WRITE_DENIED
    assert d.logical_name == LN


def test_logical_name_must_be_six_bytes():
    for bad in (b"\x00" * 5, b"\x00" * 7, "0.0.96.1.0.255"):
        try:
            Data(bad)
            assert False, "accepted %r" % (bad,)
        except ValueError:
            pass


def test_unknown_attribute_and_method_are_object_undefined():
    d = Data(LN, (axdr.UNSIGNED, 3))
    assert _code(d.get, 0, CTX) == R.OBJECT_UNDEFINED
    assert _code(d.get, 3, CTX) == R.OBJECT_UNDEFINED
    assert _code(d.set, 3, (axdr.UNSIGNED, 1), CTX) == R.OBJECT_UNDEFINED
    assert _code(d.action, 1, (axdr.INTEGER, 0), CTX) == R.ACTION_OBJECT_UNDEFINED


def test_selective_access_not_offered_is_refused():
    d = Data(LN, (axdr.UNSIGNED, 3))
    assert d.selectors(2) == ()
    assert _code(d.get, 2, CTX, 1, (axdr.NULL_DATA, None)) == R.SCOPE_OF_ACCESS_VIOLATED


def test_set_needs_a_tagged_value():
    d = Data(LN, (axdr.UNSIGNED, 3))
    assert _code(d.set, 2, 7, CTX) == R.TYPE_UNMATCHED
    assert _code(d.set, 2, (axdr.LONG, 7), CTX) == R.TYPE_UNMATCHED
    d.set(2, (axdr.UNSIGNED, 9), CTX)
    assert d.get(2, CTX) == (axdr.UNSIGNED, 9)


def test_null_data_value_takes_any_type():
    d = Data(LN)
    d.set(2, (axdr.VISIBLE_STRING, b"ESME"), CTX)
    assert d.get(2, CTX) == (axdr.VISIBLE_STRING, b"ESME")


def test_expect_int_range_is_other_reason():
    assert expect_int((axdr.ENUM, 3), axdr.ENUM, 0, 6) == 3
    assert _code(expect_int, (axdr.ENUM, 7), axdr.ENUM, 0, 6) == R.OTHER_REASON
    assert _code(expect_int, (axdr.UNSIGNED, 3), axdr.ENUM, 0, 6) == R.TYPE_UNMATCHED


def test_values_round_trip_through_json():
    values = [
        (axdr.NULL_DATA, None), (axdr.BOOLEAN, True), (axdr.BIT_STRING, (12, b"\xab\xc0")),
        (axdr.DOUBLE_LONG, -5), (axdr.OCTET_STRING, b"\x00\xff"),
        (axdr.VISIBLE_STRING, b"abc"), (axdr.DATE_TIME, b"\x07\xea" + b"\x01" * 10),
        (axdr.FLOAT64, 1.5), (axdr.LONG64_UNSIGNED, 2 ** 63),
        (axdr.STRUCTURE, [(axdr.UNSIGNED, 1), (axdr.ARRAY, [(axdr.LONG, -2)])]),
        (axdr.COMPACT_ARRAY, ((axdr.STRUCTURE, [axdr.UNSIGNED, axdr.LONG]),
                              [(axdr.STRUCTURE, [(axdr.UNSIGNED, 1), (axdr.LONG, -1)])])),
    ]
    for v in values:
        back = value_from_json(json.loads(json.dumps(value_to_json(v))))
        assert axdr.encode(back) == axdr.encode(v), v


def test_data_state_restores_value():
    d = Data(LN, (axdr.DOUBLE_LONG_UNSIGNED, 1))
    d.set(2, (axdr.DOUBLE_LONG_UNSIGNED, 77), CTX)
    saved = json.loads(json.dumps(d.state()))
    e = Data(LN, (axdr.DOUBLE_LONG_UNSIGNED, 1))
    e.restore(saved)
    assert e.get(2, CTX) == (axdr.DOUBLE_LONG_UNSIGNED, 77)


def test_context_carries_time_and_client():
    c = Context(5, 1, session="s")
    assert (c.now, c.client_sap, c.session) == (5, 1, "s")
    assert CosemObject(LN).attribute_count == 1
