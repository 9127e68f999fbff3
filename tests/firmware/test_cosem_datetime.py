"""firmware/dlms/cosem_datetime.py: COSEM date-time/date/time (Blue Book 4.1.6.1) and
the civil calendar. Known answers were computed with CPython's datetime module."""

from firmware.dlms import cosem_datetime as D


def _h(text):
    return bytes([int(text[i:i + 2], 16) for i in range(0, len(text), 2)])


def _value_error(fn, *args):
    try:
        fn(*args)
    except ValueError:
        return
    raise AssertionError("no ValueError from %r%r" % (fn, args))


# seconds, ISO date-time, ISO weekday (datetime.fromtimestamp(s, timezone.utc))
KNOWN = (
    (0, (1970, 1, 1, 0, 0, 0), 4),
    (951782399, (2000, 2, 28, 23, 59, 59), 1),
    (951782400, (2000, 2, 29, 0, 0, 0), 2),
    (1700000000, (2023, 11, 14, 22, 13, 20), 2),
    (1709208000, (2024, 2, 29, 12, 0, 0), 4),
    (4102444800, (2100, 1, 1, 0, 0, 0), 5),
    (4107542400, (2100, 3, 1, 0, 0, 0), 1),
    (253402300799, (9999, 12, 31, 23, 59, 59), 5),
    (-86400, (1969, 12, 31, 0, 0, 0), 3),
)


def test_civil_known_answers():
    for seconds, civil, weekday in KNOWN:
        assert D.civil_from_seconds(seconds) == civil + (weekday,), seconds
        assert D.seconds_from_civil(*civil) == seconds, civil


def test_datetime_bytes_known_answers():
    assert D.datetime_bytes(0) == _h("07b2010104000000" + "00000000")
    assert D.datetime_bytes(1700000000) == _h("07e70b0e02160d14" + "00000000")
    assert D.datetime_bytes(1700000000, status=0x80) == _h("07e70b0e02160d14" + "00000080")
    assert D.date_bytes(951782400) == _h("07d0021d02")
    assert D.time_bytes(1700000000) == _h("160d1400")


def test_round_trip_over_centuries():
    for seconds in range(-10 ** 9, 5 * 10 ** 9, 7777777):
        assert D.datetime_seconds(D.datetime_bytes(seconds)) == seconds
        civil = D.civil_from_seconds(seconds)
        assert D.seconds_from_civil(*civil[:6]) == seconds


def test_consecutive_days_follow_the_calendar():
    # Every day of 1999..2001 (2000 is a leap year) is the successor of the previous.
    start = D.days_from_civil(1999, 1, 1)
    year, month, day = D.civil_from_days(start)
    weekday = D.weekday_from_days(start)
    assert (year, month, day, weekday) == (1999, 1, 1, 5)
    for days in range(start + 1, start + 3 * 366):
        if day < D.days_in_month(year, month):
            day += 1
        elif month < 12:
            month, day = month + 1, 1
        else:
            year, month, day = year + 1, 1, 1
        weekday = weekday % 7 + 1
        assert D.civil_from_days(days) == (year, month, day), days
        assert D.weekday_from_days(days) == weekday
    assert D.days_in_month(2000, 2) == 29 and D.days_in_month(1900, 2) == 28
    assert D.is_leap_year(2000) and not D.is_leap_year(2100) and D.is_leap_year(2024)


def test_deviation_is_local_minus_utc():
    b = D.datetime_bytes(0, deviation=60)
    assert b == _h("07b2010104010000" + "00003c00")
    assert D.datetime_seconds(b) == 0
    b = D.datetime_bytes(0, deviation=-300)
    assert b[:8] == _h("07b10c1f03130000") and b[9:11] == _h("fed4")
    assert D.datetime_seconds(b) == 0
    unspecified = D.datetime_bytes(1700000000, deviation=None)
    assert unspecified[9:11] == b"\x80\x00"
    assert D.datetime_seconds(unspecified) == 1700000000
    _value_error(D.datetime_bytes, 0, 721)
    _value_error(D.datetime_bytes, 0, 0, 256)


def test_fields_as_encoded():
    assert D.datetime_fields(D.UNSPECIFIED_DATETIME) == (
        0xFFFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, -0x8000, 0xFF)
    assert D.datetime_fields(D.datetime_bytes(1700000000, deviation=-60)) == (
        2023, 11, 14, 2, 21, 13, 20, 0, -60, 0)


def test_unresolvable_wildcards_raise():
    _value_error(D.datetime_seconds, D.UNSPECIFIED_DATETIME)
    base = bytearray(D.datetime_bytes(1700000000))
    for index, wildcard in ((0, 0xFF), (2, 0xFF), (2, D.MONTH_DST_BEGIN), (3, D.DAY_LAST),
                            (5, 0xFF), (6, 0xFF), (7, 0xFF)):
        b = bytearray(base)
        b[index] = wildcard
        if index == 0:
            b[1] = 0xFF
        _value_error(D.datetime_seconds, bytes(b))


def test_ignorable_wildcards_resolve():
    b = bytearray(D.datetime_bytes(1700000000))
    b[4] = 0xFF      # day of week not specified
    b[8] = 0xFF      # hundredths not specified
    b[11] = 0xFF     # clock status not specified
    assert D.datetime_seconds(bytes(b)) == 1700000000
    b[8] = 42        # hundredths are dropped
    assert D.datetime_seconds(bytes(b)) == 1700000000


def test_invalid_fields_raise():
    base = D.datetime_bytes(1700000000)
    for index, value in ((2, 13), (2, 0), (3, 0), (4, 8), (4, 0), (5, 24), (6, 60), (7, 60),
                         (8, 100)):
        b = bytearray(base)
        b[index] = value
        _value_error(D.datetime_seconds, bytes(b))
    _value_error(D.datetime_seconds, _h("07e7021e02000000" + "00000000"))  # 30 February
    _value_error(D.datetime_seconds, _h("07e7021d02000000" + "00000000"))  # 2023-02-29
    _value_error(D.datetime_seconds, _h("07e7010102000000" + "02d100"))    # 11 bytes
    _value_error(D.datetime_seconds, _h("07e7010102000000" + "02d100" + "00"))  # dev 721
    _value_error(D.seconds_from_civil, 2100, 2, 29)
    _value_error(D.seconds_from_civil, 2023, 1, 1, 24)


def test_date_and_time_octets():
    assert D.date_seconds(D.date_bytes(1700000000)) == 1699920000
    assert D.time_seconds(D.time_bytes(1700000000)) == 22 * 3600 + 13 * 60 + 20
    assert D.time_seconds(_h("000000ff")) == 0
    _value_error(D.date_seconds, _h("ffff0b0e02"))
    _value_error(D.date_seconds, _h("07e7ff0e02"))
    _value_error(D.date_seconds, _h("07e70b0e"))
    _value_error(D.time_seconds, _h("ff000000"))
    _value_error(D.time_seconds, _h("00000064"))
    _value_error(D.time_seconds, _h("000000"))
