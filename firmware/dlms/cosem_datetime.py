"""COSEM date-time, date and time octet strings (DLMS UA 1000-1 Blue Book 4.1.6.1).

date-time (12 bytes): year-hi year-lo month day-of-month day-of-week hour minute
second hundredths deviation-hi deviation-lo clock-status.
date (5 bytes): year-hi year-lo month day-of-month day-of-week.
time (4 bytes): hour minute second hundredths.

Seconds are the device's own integer seconds since 1970-01-01 00:00 UTC, never a
board epoch (ESP32 counts from 2000), so the civil calendar is computed here.
Deviation is minutes of local time to UTC, local = UTC + deviation (the sign of
Blue Book ed. 12 onwards); 0x8000 means not specified. GB meters keep UTC.
"""

from struct import pack, unpack_from

NOT_SPECIFIED = 0xFF            # wildcard for one-byte fields
YEAR_NOT_SPECIFIED = 0xFFFF
DEVIATION_NOT_SPECIFIED = -0x8000  # 0x8000 as int16
HUNDREDTHS_NOT_SPECIFIED = 0xFF
MONTH_DST_END = 0xFD
MONTH_DST_BEGIN = 0xFE
DAY_SECOND_LAST = 0xFD
DAY_LAST = 0xFE

# clock status bits (Blue Book 4.1.6.1)
STATUS_INVALID_VALUE = 0x01
STATUS_DOUBTFUL_VALUE = 0x02
STATUS_DIFFERENT_CLOCK_BASE = 0x04
STATUS_INVALID_CLOCK_STATUS = 0x08
STATUS_DAYLIGHT_SAVING_ACTIVE = 0x80
STATUS_NOT_SPECIFIED = 0xFF

UNSPECIFIED_DATETIME = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x80\x00\xff"

_SECONDS_PER_DAY = 86400


def days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years)."""
    if month <= 2:
        year -= 1
    era = year // 400
    year_of_era = year - era * 400
    shifted_month = month + 9 if month <= 2 else month - 3
    day_of_year = (153 * shifted_month + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def civil_from_days(days):
    """-> (year, month, day) of a day number since 1970-01-01."""
    days += 719468
    era = days // 146097
    day_of_era = days - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524
                   - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 if shifted_month < 10 else shifted_month - 9
    year = year_of_era + era * 400
    if month <= 2:
        year += 1
    return year, month, day


def weekday_from_days(days):
    """1 = Monday ... 7 = Sunday (1970-01-01 was a Thursday)."""
    return (days + 3) % 7 + 1


def is_leap_year(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year, month):
    if month == 2:
        return 29 if is_leap_year(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


# the day last turned into a date: a device stamps many events, responses and alerts in one
# day, so the calendar arithmetic runs once a day (days, (year, month, day))
_last_civil_day = [None, None]


def civil_from_seconds(seconds):
    """-> (year, month, day, hour, minute, second, weekday)."""
    days = seconds // _SECONDS_PER_DAY
    rest = seconds - days * _SECONDS_PER_DAY
    last = _last_civil_day
    if last[0] == days:
        year, month, day = last[1]
    else:
        year, month, day = date = civil_from_days(days)
        last[0], last[1] = days, date
    return (year, month, day, rest // 3600, (rest // 60) % 60, rest % 60,
            weekday_from_days(days))


def seconds_from_civil(year, month, day, hour=0, minute=0, second=0):
    if not 1 <= month <= 12 or not 1 <= day <= days_in_month(year, month):
        raise ValueError("no such date %d-%d-%d" % (year, month, day))
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
        raise ValueError("no such time %d:%d:%d" % (hour, minute, second))
    return (days_from_civil(year, month, day) * _SECONDS_PER_DAY
            + hour * 3600 + minute * 60 + second)


# the last UTC date-time written, (seconds, bytes): a command's response, the event it
# logs and the registers it publishes are stamped with the same second
_last_utc_stamp = [None, None]


def datetime_bytes(seconds, deviation=0, status=0):
    """12-byte date-time of `seconds` (UTC). `deviation` None -> not specified."""
    if deviation == 0 and status == 0:
        last = _last_utc_stamp
        if last[0] == seconds:
            return last[1]
        stamp = _datetime_bytes(seconds, 0, 0)
        last[0], last[1] = seconds, stamp
        return stamp
    return _datetime_bytes(seconds, deviation, status)


def _datetime_bytes(seconds, deviation, status):
    if deviation is None:
        deviation = DEVIATION_NOT_SPECIFIED
        local = seconds
    elif -720 <= deviation <= 720:
        local = seconds + deviation * 60
    else:
        raise ValueError("deviation %r outside -720..720 minutes" % (deviation,))
    if not 0 <= status <= 0xFF:
        raise ValueError("clock status %r is not a byte" % (status,))
    year, month, day, hour, minute, second, weekday = civil_from_seconds(local)
    if not 0 <= year < YEAR_NOT_SPECIFIED:
        raise ValueError("year %d cannot be encoded" % year)
    return pack(">HBBBBBBBhB", year, month, day, weekday, hour, minute, second, 0,
                deviation, status)


def date_bytes(seconds):
    """5-byte date of the UTC day holding `seconds`."""
    year, month, day, _, _, _, weekday = civil_from_seconds(seconds)
    if not 0 <= year < YEAR_NOT_SPECIFIED:
        raise ValueError("year %d cannot be encoded" % year)
    return pack(">HBBB", year, month, day, weekday)


def time_bytes(seconds):
    """4-byte time of day of `seconds` (UTC), hundredths 0."""
    _, _, _, hour, minute, second, _ = civil_from_seconds(seconds)
    return bytes((hour, minute, second, 0))


def datetime_fields(b12):
    """-> (year, month, day, weekday, hour, minute, second, hundredths, deviation, status)
    exactly as encoded (wildcards kept)."""
    if len(b12) != 12:
        raise ValueError("date-time must be 12 bytes, got %d" % len(b12))
    return unpack_from(">HBBBBBBBhB", b12, 0)


def datetime_seconds(b12):
    """UTC seconds of a 12-byte date-time. Hundredths are dropped; an unspecified
    hundredths, weekday or deviation is ignored (deviation taken as 0); any other
    wildcard or out-of-range field raises ValueError."""
    (year, month, day, weekday, hour, minute, second, hundredths, deviation,
     _status) = datetime_fields(b12)
    if year == YEAR_NOT_SPECIFIED:
        raise ValueError("date-time year not specified")
    if month > 12 or day > 31 or hour == NOT_SPECIFIED or minute == NOT_SPECIFIED \
            or second == NOT_SPECIFIED:
        raise ValueError("date-time has wildcards: %s" % _hex(b12))
    if hundredths != HUNDREDTHS_NOT_SPECIFIED and hundredths > 99:
        raise ValueError("hundredths %d > 99" % hundredths)
    if weekday != NOT_SPECIFIED and not 1 <= weekday <= 7:
        raise ValueError("day of week %d outside 1..7" % weekday)
    local = seconds_from_civil(year, month, day, hour, minute, second)
    if deviation == DEVIATION_NOT_SPECIFIED:
        return local
    if not -720 <= deviation <= 720:
        raise ValueError("deviation %d outside -720..720 minutes" % deviation)
    return local - deviation * 60


def date_seconds(b5):
    """UTC seconds of 00:00 on a fully specified 5-byte date."""
    if len(b5) != 5:
        raise ValueError("date must be 5 bytes, got %d" % len(b5))
    year, month, day, weekday = unpack_from(">HBBB", b5, 0)
    if year == YEAR_NOT_SPECIFIED or month > 12 or day > 31:
        raise ValueError("date has wildcards: %s" % _hex(b5))
    if weekday != NOT_SPECIFIED and not 1 <= weekday <= 7:
        raise ValueError("day of week %d outside 1..7" % weekday)
    return seconds_from_civil(year, month, day)


def time_seconds(b4):
    """Seconds since midnight of a 4-byte time (hundredths dropped)."""
    if len(b4) != 4:
        raise ValueError("time must be 4 bytes, got %d" % len(b4))
    hour, minute, second, hundredths = b4[0], b4[1], b4[2], b4[3]
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError("time has wildcards or bad fields: %s" % _hex(b4))
    if hundredths != HUNDREDTHS_NOT_SPECIFIED and hundredths > 99:
        raise ValueError("hundredths %d > 99" % hundredths)
    return hour * 3600 + minute * 60 + second


def _hex(b):
    return "".join(["%02x" % x for x in b])
