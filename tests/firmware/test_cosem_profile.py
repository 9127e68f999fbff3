"""Profile generic (7): capture, ring storage, sort, selective access (Blue Book 4.3.6)."""

import json
import sys
import time

from firmware.cosem.base import Context, DataAccessError, ActionError
from firmware.cosem.clock import Clock
from firmware.cosem.data import Data
from firmware.cosem.profile import ProfileGeneric, FIFO, LIFO
from firmware.cosem.register import Register
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms.cosem_datetime import datetime_bytes, UNSPECIFIED_DATETIME
from firmware.dlms.obis import CLOCK, HH_PROFILE, IMPORT_ACTIVE_ENERGY

T0 = 1767225600      # 2026-01-01 00:00 UTC
HH = 1800


def _code(fn, *args):
    try:
        fn(*args)
    except (DataAccessError, ActionError) as e:
        return e.code
    return None


def _hh_profile(entries=10, sort=FIFO, max_entries=1000):
    clock = Clock()
    reg = Register(IMPORT_ACTIVE_ENERGY, (axdr.DOUBLE_LONG_UNSIGNED, 0), 0, 30)
    pg = ProfileGeneric(HH_PROFILE, [(clock, 2), (reg, 2)], HH, profile_entries=entries,
                        sort_method=sort, max_entries=max_entries)
    return clock, reg, pg


def _fill(pg, n, start=T0):
    for i in range(n):
        t = start + i * HH
        pg.store_entry(t, [(axdr.OCTET_STRING, datetime_bytes(t)),
                           (axdr.DOUBLE_LONG_UNSIGNED, i)])


def _rows(value):
    assert value[0] == axdr.RAW
    tag, rows = axdr.decode_all(value[1])
    assert tag == axdr.ARRAY
    return rows


def _counters(value):
    return [row[1][1][1] for row in _rows(value)]


def _clock_column():
    return (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 8), (axdr.OCTET_STRING, CLOCK),
                             (axdr.INTEGER, 2), (axdr.LONG_UNSIGNED, 0)])


def _register_column():
    return (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 3), (axdr.OCTET_STRING, IMPORT_ACTIVE_ENERGY),
                             (axdr.INTEGER, 2), (axdr.LONG_UNSIGNED, 0)])


def _dt(t):
    return (axdr.OCTET_STRING, datetime_bytes(t))


def _range(low, high, columns=()):
    return (axdr.STRUCTURE, [_clock_column(), low, high, (axdr.ARRAY, list(columns))])


def _entries(first, last, col_first=1, col_last=0):
    return (axdr.STRUCTURE, [(axdr.DOUBLE_LONG_UNSIGNED, first), (axdr.DOUBLE_LONG_UNSIGNED, last),
                             (axdr.LONG_UNSIGNED, col_first), (axdr.LONG_UNSIGNED, col_last)])


CTX = Context(T0, 16)


def test_capture_method_snapshots_capture_objects():
    clock, reg, pg = _hh_profile()
    reg.value = (axdr.DOUBLE_LONG_UNSIGNED, 42)
    assert pg.action(2, (axdr.INTEGER, 0), Context(T0 + HH, 1)) is None
    reg.value = (axdr.DOUBLE_LONG_UNSIGNED, 43)
    pg.action(2, (axdr.INTEGER, 0), Context(T0 + 2 * HH, 1))
    rows = _rows(pg.get(2, CTX))
    assert rows == [
        (axdr.STRUCTURE, [(axdr.OCTET_STRING, datetime_bytes(T0 + HH)), (axdr.DOUBLE_LONG_UNSIGNED, 42)]),
        (axdr.STRUCTURE, [(axdr.OCTET_STRING, datetime_bytes(T0 + 2 * HH)), (axdr.DOUBLE_LONG_UNSIGNED, 43)]),
    ]
    assert pg.get(7, CTX) == (axdr.DOUBLE_LONG_UNSIGNED, 2)


def test_buffer_bytes_are_the_concatenated_entries():
    _, _, pg = _hh_profile()
    _fill(pg, 2)
    expected = b"\x01\x02" + b"".join(
        axdr.encode((axdr.STRUCTURE, [(axdr.OCTET_STRING, datetime_bytes(T0 + i * HH)),
                                      (axdr.DOUBLE_LONG_UNSIGNED, i)])) for i in range(2))
    assert pg.get(2, CTX) == (axdr.RAW, expected)
    assert axdr.encode(pg.get(2, CTX)) == expected


def test_empty_buffer_is_an_empty_array():
    _, _, pg = _hh_profile()
    assert pg.get(2, CTX) == (axdr.RAW, b"\x01\x00")
    assert _rows(pg.get(2, CTX, 2, _entries(1, 0))) == []
    assert _rows(pg.get(2, CTX, 1, _range(_dt(T0), _dt(T0 + 10 * HH)))) == []


def test_static_attributes():
    _, _, pg = _hh_profile(entries=48)
    assert pg.get(3, CTX) == (axdr.ARRAY, [_clock_column(), _register_column()])
    assert pg.get(4, CTX) == (axdr.DOUBLE_LONG_UNSIGNED, HH)
    assert pg.get(5, CTX) == (axdr.ENUM, FIFO)
    assert pg.get(6, CTX) == (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 0),
                                               (axdr.OCTET_STRING, b"\x00" * 6),
                                               (axdr.INTEGER, 0), (axdr.LONG_UNSIGNED, 0)])
    assert pg.get(7, CTX) == (axdr.DOUBLE_LONG_UNSIGNED, 0)
    assert pg.get(8, CTX) == (axdr.DOUBLE_LONG_UNSIGNED, 48)
    assert pg.selectors(2) == (1, 2)
    assert pg.selectors(3) == ()


def test_ring_wraps_dropping_the_oldest():
    _, _, pg = _hh_profile(entries=3)
    _fill(pg, 7)
    assert _counters(pg.get(2, CTX)) == [4, 5, 6]
    assert pg.entries_in_use == 3 and pg.profile_entries == 3
    assert _counters(pg.get(2, CTX, 2, _entries(1, 1))) == [4]
    assert _counters(pg.get(2, CTX, 1, _range(_dt(T0), _dt(T0 + 5 * HH)))) == [4, 5]


def test_lifo_presents_newest_first_and_drops_oldest():
    _, _, pg = _hh_profile(entries=3, sort=LIFO)
    _fill(pg, 5)
    assert _counters(pg.get(2, CTX)) == [4, 3, 2]
    assert _counters(pg.get(2, CTX, 2, _entries(1, 2))) == [4, 3]
    assert _counters(pg.get(2, CTX, 1, _range(_dt(T0 + 2 * HH), _dt(T0 + 3 * HH)))) == [3, 2]


def test_range_is_inclusive_on_both_bounds():
    _, _, pg = _hh_profile(entries=100)
    _fill(pg, 10)
    got = _counters(pg.get(2, CTX, 1, _range(_dt(T0 + 2 * HH), _dt(T0 + 5 * HH))))
    assert got == [2, 3, 4, 5]
    got = _counters(pg.get(2, CTX, 1, _range(_dt(T0 + 2 * HH + 1), _dt(T0 + 5 * HH - 1))))
    assert got == [3, 4]


def test_range_outside_the_buffer_is_empty():
    _, _, pg = _hh_profile(entries=100)
    _fill(pg, 10)
    assert _rows(pg.get(2, CTX, 1, _range(_dt(T0 - 10 * HH), _dt(T0 - 1)))) == []
    assert _rows(pg.get(2, CTX, 1, _range(_dt(T0 + 10 * HH), _dt(T0 + 20 * HH)))) == []
    assert _rows(pg.get(2, CTX, 1, _range(_dt(T0 + 5 * HH), _dt(T0 + 2 * HH)))) == []


def test_range_with_unspecified_bounds_is_open():
    _, _, pg = _hh_profile(entries=100)
    _fill(pg, 5)
    anything = (axdr.OCTET_STRING, UNSPECIFIED_DATETIME)
    assert _counters(pg.get(2, CTX, 1, _range(anything, anything))) == [0, 1, 2, 3, 4]
    assert _counters(pg.get(2, CTX, 1, _range(_dt(T0 + 3 * HH), anything))) == [3, 4]


def test_range_accepts_date_time_tag_and_unix_seconds():
    _, _, pg = _hh_profile(entries=100)
    _fill(pg, 5)
    low = (axdr.DATE_TIME, datetime_bytes(T0 + HH))
    high = (axdr.DOUBLE_LONG_UNSIGNED, T0 + 2 * HH)
    assert _counters(pg.get(2, CTX, 1, _range(low, high))) == [1, 2]


def test_range_bounds_honour_deviation():
    _, _, pg = _hh_profile(entries=100)
    _fill(pg, 5)
    # 02:00 local at UTC+60 is 01:00 UTC = T0 + 2 HH
    local = (axdr.OCTET_STRING, datetime_bytes(T0 + 2 * HH, 60))
    assert _counters(pg.get(2, CTX, 1, _range(local, local))) == [2]


def test_range_column_selection():
    _, _, pg = _hh_profile(entries=100)
    _fill(pg, 4)
    rows = _rows(pg.get(2, CTX, 1, _range(_dt(T0 + HH), _dt(T0 + 2 * HH), [_register_column()])))
    assert rows == [(axdr.STRUCTURE, [(axdr.DOUBLE_LONG_UNSIGNED, 1)]),
                    (axdr.STRUCTURE, [(axdr.DOUBLE_LONG_UNSIGNED, 2)])]
    rows = _rows(pg.get(2, CTX, 1, _range(_dt(T0), _dt(T0),
                                          [_register_column(), _clock_column()])))
    assert rows == [(axdr.STRUCTURE, [(axdr.DOUBLE_LONG_UNSIGNED, 0),
                                      (axdr.OCTET_STRING, datetime_bytes(T0))])]


def test_range_on_a_value_column():
    _, _, pg = _hh_profile(entries=100)
    _fill(pg, 10)
    params = (axdr.STRUCTURE, [_register_column(), (axdr.DOUBLE_LONG_UNSIGNED, 3),
                               (axdr.DOUBLE_LONG_UNSIGNED, 5), (axdr.ARRAY, [])])
    assert _counters(pg.get(2, CTX, 1, params)) == [3, 4, 5]
    bad = (axdr.STRUCTURE, [_register_column(), (axdr.VISIBLE_STRING, b"x"),
                            (axdr.DOUBLE_LONG_UNSIGNED, 5), (axdr.ARRAY, [])])
    assert _code(pg.get, 2, CTX, 1, bad) == R.SCOPE_OF_ACCESS_VIOLATED


def test_range_after_the_clock_went_back():
    _, _, pg = _hh_profile(entries=100)
    _fill(pg, 4)                          # T0 .. T0+3HH, counters 0..3
    _fill(pg, 1, start=T0 + HH)           # clock set back: counter 0 again at T0+HH
    got = _counters(pg.get(2, CTX, 1, _range(_dt(T0 + HH), _dt(T0 + HH))))
    assert got == [1, 0]


def test_range_refuses_bad_restricting_object_and_columns():
    _, _, pg = _hh_profile(entries=10)
    _fill(pg, 2)
    other = (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 8), (axdr.OCTET_STRING, CLOCK),
                              (axdr.INTEGER, 3), (axdr.LONG_UNSIGNED, 0)])
    params = (axdr.STRUCTURE, [other, _dt(T0), _dt(T0), (axdr.ARRAY, [])])
    assert _code(pg.get, 2, CTX, 1, params) == R.SCOPE_OF_ACCESS_VIOLATED
    assert _code(pg.get, 2, CTX, 1, _range(_dt(T0), _dt(T0), [other])) == R.SCOPE_OF_ACCESS_VIOLATED
    assert _code(pg.get, 2, CTX, 1, (axdr.STRUCTURE, [])) == R.SCOPE_OF_ACCESS_VIOLATED
    assert _code(pg.get, 2, CTX, 1, None) == R.SCOPE_OF_ACCESS_VIOLATED
    assert _code(pg.get, 2, CTX, 1, _range((axdr.BOOLEAN, True), _dt(T0))) == R.SCOPE_OF_ACCESS_VIOLATED
    assert _code(pg.get, 2, CTX, 3, _entries(1, 0)) == R.SCOPE_OF_ACCESS_VIOLATED
    assert _code(pg.get, 3, CTX, 1, _range(_dt(T0), _dt(T0))) == R.SCOPE_OF_ACCESS_VIOLATED


def test_entry_descriptor_paths():
    _, _, pg = _hh_profile(entries=100)
    _fill(pg, 6)
    assert _counters(pg.get(2, CTX, 2, _entries(2, 4))) == [1, 2, 3]
    assert _counters(pg.get(2, CTX, 2, _entries(5, 0))) == [4, 5]          # 0 = last
    assert _counters(pg.get(2, CTX, 2, _entries(0, 1))) == [0]             # 0 read as 1
    assert _counters(pg.get(2, CTX, 2, _entries(4, 99))) == [3, 4, 5]      # clipped
    assert _rows(pg.get(2, CTX, 2, _entries(7, 0))) == []                  # past the end
    assert _rows(pg.get(2, CTX, 2, _entries(7, 9))) == []
    assert _rows(pg.get(2, CTX, 2, _entries(4, 2))) == []                  # to below from


def test_entry_descriptor_columns():
    _, _, pg = _hh_profile(entries=100)
    _fill(pg, 3)
    rows = _rows(pg.get(2, CTX, 2, _entries(1, 2, 2, 0)))
    assert rows == [(axdr.STRUCTURE, [(axdr.DOUBLE_LONG_UNSIGNED, 0)]),
                    (axdr.STRUCTURE, [(axdr.DOUBLE_LONG_UNSIGNED, 1)])]
    rows = _rows(pg.get(2, CTX, 2, _entries(3, 3, 1, 1)))
    assert rows == [(axdr.STRUCTURE, [(axdr.OCTET_STRING, datetime_bytes(T0 + 2 * HH))])]
    rows = _rows(pg.get(2, CTX, 2, _entries(3, 3, 1, 9)))
    assert len(rows[0][1]) == 2
    assert _code(pg.get, 2, CTX, 2, _entries(1, 0, 3, 0)) == R.SCOPE_OF_ACCESS_VIOLATED
    assert _code(pg.get, 2, CTX, 2, _entries(1, 0, 2, 1)) == R.SCOPE_OF_ACCESS_VIOLATED
    bad = (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 1), (axdr.DOUBLE_LONG_UNSIGNED, 0),
                            (axdr.LONG_UNSIGNED, 1), (axdr.LONG_UNSIGNED, 0)])
    assert _code(pg.get, 2, CTX, 2, bad) == R.SCOPE_OF_ACCESS_VIOLATED


def test_set_sort_method_fifo_lifo_only():
    _, _, pg = _hh_profile(entries=5)
    _fill(pg, 3)
    pg.set(5, (axdr.ENUM, LIFO), CTX)
    assert _counters(pg.get(2, CTX)) == [2, 1, 0]
    for m in (3, 4, 5, 6, 0, 7):
        assert _code(pg.set, 5, (axdr.ENUM, m), CTX) == R.OTHER_REASON
    assert _code(pg.set, 5, (axdr.UNSIGNED, 1), CTX) == R.TYPE_UNMATCHED
    assert pg.sort_method == LIFO


def test_set_sort_object_must_be_a_column():
    _, _, pg = _hh_profile()
    pg.set(6, _clock_column(), CTX)
    assert pg.get(6, CTX) == _clock_column()
    other = (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 1), (axdr.OCTET_STRING, b"\x00" * 5 + b"\x01"),
                              (axdr.INTEGER, 2), (axdr.LONG_UNSIGNED, 0)])
    assert _code(pg.set, 6, other, CTX) == R.OTHER_REASON


def test_set_profile_entries_clears_and_bounds():
    _, _, pg = _hh_profile(entries=5)
    _fill(pg, 4)
    pg.set(8, (axdr.DOUBLE_LONG_UNSIGNED, 2), CTX)
    assert pg.get(7, CTX) == (axdr.DOUBLE_LONG_UNSIGNED, 0)
    _fill(pg, 3)
    assert _counters(pg.get(2, CTX)) == [1, 2]
    assert _code(pg.set, 8, (axdr.DOUBLE_LONG_UNSIGNED, 0), CTX) == R.OTHER_REASON
    assert _code(pg.set, 8, (axdr.DOUBLE_LONG_UNSIGNED, 1001), CTX) == R.OTHER_REASON
    assert _code(pg.set, 7, (axdr.DOUBLE_LONG_UNSIGNED, 1), CTX) == R.READ_WRITE_DENIED
    assert _code(pg.set, 2, (axdr.ARRAY, []), CTX) == R.READ_WRITE_DENIED


def test_set_capture_period():
    _, _, pg = _hh_profile()
    pg.set(4, (axdr.DOUBLE_LONG_UNSIGNED, 900), CTX)
    assert pg.capture_period == 900
    assert _code(pg.set, 4, (axdr.LONG_UNSIGNED, 900), CTX) == R.TYPE_UNMATCHED


def test_set_capture_objects_needs_a_resolver_and_empties_the_buffer():
    clock, reg, pg = _hh_profile()
    _fill(pg, 2)
    new = (axdr.ARRAY, [_register_column()])
    assert _code(pg.set, 3, new, CTX) == R.READ_WRITE_DENIED
    objects = {(8, CLOCK): clock, (3, IMPORT_ACTIVE_ENERGY): reg}
    pg.resolve = lambda class_id, ln: objects.get((class_id, ln))
    missing = (axdr.ARRAY, [(axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 3), (axdr.OCTET_STRING, b"\x01" * 6),
                                              (axdr.INTEGER, 2), (axdr.LONG_UNSIGNED, 0)])])
    assert _code(pg.set, 3, missing, CTX) == R.OTHER_REASON
    pg.set(3, new, CTX)
    assert pg.get(3, CTX) == new
    assert pg.entries_in_use == 0
    reg.value = (axdr.DOUBLE_LONG_UNSIGNED, 5)
    pg.capture(CTX)
    assert _rows(pg.get(2, CTX)) == [(axdr.STRUCTURE, [(axdr.DOUBLE_LONG_UNSIGNED, 5)])]


def test_reset_method_empties_the_buffer():
    _, _, pg = _hh_profile()
    _fill(pg, 3)
    pg.action(1, (axdr.INTEGER, 0), CTX)
    assert pg.get(2, CTX) == (axdr.RAW, b"\x01\x00")
    assert _code(pg.action, 3, (axdr.INTEGER, 0), CTX) == R.ACTION_OBJECT_UNDEFINED


def test_store_entry_checks_its_arguments():
    _, _, pg = _hh_profile()
    for args in ((T0, [(axdr.UNSIGNED, 1)]), (-1, [_dt(T0), (axdr.UNSIGNED, 1)]),
                 (2 ** 32, [_dt(T0), (axdr.UNSIGNED, 1)])):
        try:
            pg.store_entry(args[0], args[1])
            assert False, "accepted %r" % (args,)
        except ValueError:
            pass


def test_data_index_selects_one_element():
    d = Data(b"\x00\x00\x60\x01\x00\xff",
             (axdr.STRUCTURE, [(axdr.UNSIGNED, 7), (axdr.LONG, -3)]))
    pg = ProfileGeneric(b"\x00\x00\x63\x01\x00\xff", [(d, 2, 2), (d, 2, 9)], 0, profile_entries=2)
    pg.capture(CTX)
    assert _rows(pg.get(2, CTX)) == [(axdr.STRUCTURE, [(axdr.LONG, -3), (axdr.NULL_DATA, None)])]


def test_longer_entries_grow_the_slots_without_losing_entries():
    d = Data(b"\x00\x00\x60\x01\x00\xff", (axdr.OCTET_STRING, b""))
    pg = ProfileGeneric(b"\x00\x00\x63\x01\x00\xff", [(d, 2)], 0, profile_entries=3)
    for n in (1, 0, 40, 3, 200):
        d.value = (axdr.OCTET_STRING, b"x" * n)
        pg.capture(Context(T0 + n, 1))
    rows = _rows(pg.get(2, CTX))
    assert [len(r[1][0][1]) for r in rows] == [40, 3, 200]


def test_state_round_trip_after_wrap():
    clock, reg, pg = _hh_profile(entries=4)
    _fill(pg, 6)
    pg.set(5, (axdr.ENUM, LIFO), CTX)
    saved = json.loads(json.dumps(pg.state()))
    _, _, copy = _hh_profile(entries=10)
    copy.restore(saved)
    assert copy.get(2, CTX) == pg.get(2, CTX)
    assert copy.profile_entries == 4 and copy.sort_method == LIFO
    assert copy.get(2, CTX, 1, _range(_dt(T0 + 3 * HH), _dt(T0 + 4 * HH))) == \
        pg.get(2, CTX, 1, _range(_dt(T0 + 3 * HH), _dt(T0 + 4 * HH)))
    _fill(copy, 1, start=T0 + 6 * HH)
    assert _counters(copy.get(2, CTX)) == [0, 5, 4, 3]


def test_a_year_of_captures_is_fast():
    clock, reg, hh = _hh_profile(entries=17520, max_entries=17520)
    daily = ProfileGeneric(b"\x01\x00\x62\x01\x00\xff", [(clock, 2), (reg, 2)], 86400,
                           profile_entries=400)
    start = time.ticks_ms() if hasattr(time, "ticks_ms") else None
    t0 = time.perf_counter() if hasattr(time, "perf_counter") else 0
    t = T0
    for i in range(17520):
        t += HH
        reg.value = (axdr.DOUBLE_LONG_UNSIGNED, i)
        hh.capture(Context(t, 0))
        if i % 48 == 47:
            daily.capture(Context(t, 0))
    assert hh.entries_in_use == 17520 and daily.entries_in_use == 365
    assert _counters(hh.get(2, CTX, 2, _entries(17520, 0))) == [17519]
    if sys.implementation.name == "cpython":
        elapsed = time.perf_counter() - t0
        assert elapsed < 1.0
        assert elapsed / (17520 + 365) < 50e-6      # per capture
    elif start is not None:
        assert time.ticks_diff(time.ticks_ms(), start) < 60000


def test_entries_iterates_in_presentation_order():
    _, _, pg = _hh_profile(entries=3, sort=LIFO)
    _fill(pg, 4)
    got = [axdr.decode_all(e)[1][1][1] for e in pg.entries()]
    assert got == [3, 2, 1]


def test_capture_of_an_unreadable_column_is_an_action_error():
    from firmware.cosem.association import AssociationLN
    secret_holder = AssociationLN()
    pg = ProfileGeneric(b"\x00\x00\x63\x01\x00\xff", [(secret_holder, 7)], 0, profile_entries=2)
    assert _code(pg.action, 2, (axdr.INTEGER, 0), CTX) == R.READ_WRITE_DENIED
    assert pg.entries_in_use == 0
