"""Data (1), Blue Book 4.3.1."""

import json

from firmware.cosem.base import Context, DataAccessError
from firmware.cosem.data import Data
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms.obis import LOGICAL_DEVICE_NAME

CTX = Context(1767225600, 16)


def test_value_attribute_round_trips_through_a_set():
    d = Data(LOGICAL_DEVICE_NAME, (axdr.OCTET_STRING, b"ABC0123456789012"))
    assert d.class_id == 1 and d.version == 0 and d.attribute_count == 2
    assert d.get(2, CTX) == (axdr.OCTET_STRING, b"ABC0123456789012")
    d.set(2, (axdr.OCTET_STRING, b"X"), CTX)
    assert axdr.encode(d.get(2, CTX)) == b"\x09\x01X"


def test_type_is_kept_unless_free():
    d = Data(LOGICAL_DEVICE_NAME, (axdr.LONG_UNSIGNED, 1))
    try:
        d.set(2, (axdr.UNSIGNED, 1), CTX)
        assert False
    except DataAccessError as e:
        assert e.code == R.TYPE_UNMATCHED
    free = Data(LOGICAL_DEVICE_NAME, (axdr.LONG_UNSIGNED, 1), fixed_type=False)
    free.set(2, (axdr.STRUCTURE, [(axdr.BOOLEAN, False)]), CTX)
    assert free.get(2, CTX) == (axdr.STRUCTURE, [(axdr.BOOLEAN, False)])


def test_no_methods():
    d = Data(LOGICAL_DEVICE_NAME)
    assert d.method_count == 0
    assert d.get(2, CTX) == (axdr.NULL_DATA, None)


def test_state_round_trip_of_a_structure():
    d = Data(LOGICAL_DEVICE_NAME, (axdr.STRUCTURE, [(axdr.OCTET_STRING, b"\x01"), (axdr.ENUM, 3)]))
    e = Data(LOGICAL_DEVICE_NAME)
    e.restore(json.loads(json.dumps(d.state())))
    assert e.value == d.value
