"""Gurux's client (gurux-dlms) reads our ESME: the independent peer of issue 2's Done-when.

Every combination of runtime (the device core in this CPython, or inside the `micropython`
binary) and framing (TCP wrapper, HDLC over TCP) is served by the project's own TCP
transport on 127.0.0.1:0 and read by `gurux_peer.GuruxPeer` as the public client (SAP 16,
no security): object list, clock, import register with scaler and unit, the half-hourly
profile by range and by entry, then release. The expected values come from a CPython
reference core run to the same time with the same seed, not from the bytes read.
"""

import datetime

import pytest

from emulator import profiles
from firmware.dlms import axdr
from firmware.dlms import obis as O
from tests.interop.gurux_peer import GuruxPeer, object_kinds
from tests.interop.served import ReferenceCore, ServedEsme

pytestmark = pytest.mark.interop

UTC = datetime.timezone.utc
HALF_HOUR = 1800
HISTORY = 2 * 86400 + 600          # two days of HH entries behind the read, 10 min past

RUNTIMES = ["cpython", pytest.param("micropython", marks=pytest.mark.micropython)]
FRAMINGS = ["wrapper", "hdlc"]

GET_REQUEST_NEXT = bytes([0xC0, 0x02])   # Green Book 9.3.6: Get-Request-Next


def _setting(name):
    profile = profiles.load_profile(profiles.profile_path(name))
    start = int(datetime.datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    return profile, start, start + HISTORY


def _when(seconds):
    return datetime.datetime.fromtimestamp(seconds, UTC)


def _peer(esme, profile, framing):
    hdlc = profile.get("hdlc") or {}
    wrapper = profile.get("wrapper") or {}
    if framing == "hdlc":
        return GuruxPeer("127.0.0.1", esme.port, framing="hdlc",
                         server_address=hdlc.get("server_upper", 1),
                         server_physical=hdlc.get("server_lower", 0x10))
    return GuruxPeer("127.0.0.1", esme.port, framing="wrapper",
                     server_address=wrapper.get("wport", 1))


def _check_first_read(reading, reference, now, range_start, range_end):
    expected_objects = {(1, "0.0.42.0.0.255"), (8, "0.0.1.0.0.255"), (3, "1.0.1.8.0.255"),
                        (7, "1.0.99.1.0.255"), (15, "0.0.40.0.0.255")}
    assert expected_objects <= object_kinds(reading.objects)
    held = {(obj.class_id, O.obis_text(obj.logical_name))
            for obj in reference.device.objects()}
    assert object_kinds(reading.objects) <= held | {(15, "0.0.40.0.0.255")}

    assert reading.clock == _when(now)

    value = reference.get(3, O.IMPORT_ACTIVE_ENERGY, 2)
    (_, scaler), (_, unit) = reference.get(3, O.IMPORT_ACTIVE_ENERGY, 3)[1]
    assert reading.register == {"value": value[1], "scaler": scaler, "unit": unit}
    assert unit == 30                                   # Wh (Blue Book 4.3.2)

    held_rows = reference.hh_rows()
    wanted = [(_when(t), v) for t, v in held_rows if range_start <= t <= range_end]
    assert len(wanted) >= 4
    assert reading.rows_by_range == wanted
    stamps = [t for t, _ in reading.rows_by_range]
    assert all((b - a).total_seconds() == HALF_HOUR for a, b in zip(stamps, stamps[1:]))
    assert all(_when(range_start) <= t <= _when(range_end) for t in stamps)


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_gurux_first_read_of_our_esme(runtime, framing):
    profile, start, now = _setting("esme-single-phase")
    reference = ReferenceCore(profile, start, now)
    range_start, range_end = now - 5 * 3600 - 900, now - 3600   # not on HH boundaries
    first, count = 10, 6

    with ServedEsme(profile, start, now, runtime=runtime, framing=framing) as esme:
        with _peer(esme, profile, framing) as peer:
            reading = peer.read_meter(range_start=_when(range_start),
                                      range_end=_when(range_end),
                                      entry_first=first, entry_count=count)

    _check_first_read(reading, reference, now, range_start, range_end)
    held_rows = reference.hh_rows()
    assert reading.rows_by_entry == [(_when(t), v)
                                     for t, v in held_rows[first - 1:first - 1 + count]]
    assert peer.exchanges[-1][0] == "rx"                # the release was answered


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_gurux_reads_the_whole_hh_profile_through_block_transfer(runtime, framing):
    profile, start, now = _setting("esme-single-phase")
    reference = ReferenceCore(profile, start, now)
    held_rows = [(_when(t), v) for t, v in reference.hh_rows()]
    assert len(held_rows) * 20 > 1024, "the buffer must not fit one 1024-byte PDU"

    with ServedEsme(profile, start, now, runtime=runtime, framing=framing) as esme:
        with _peer(esme, profile, framing) as peer:
            peer.associate()
            pg = peer.profile()
            assert pg.capturePeriod == HALF_HOUR
            whole = peer.read_rows_by_entry(pg, 1, 0)    # to_entry 0: up to the newest
            pg.buffer = []
            peer.read(pg, 2)                             # attribute 2 without selection
            plain = [(row[0].value.astimezone(UTC), row[1]) for row in pg.buffer]
            peer.release()

    assert whole == held_rows
    assert plain == held_rows
    sent = [b for direction, b in peer.exchanges if direction == "tx"]
    assert sum(GET_REQUEST_NEXT in b for b in sent) >= 2


@pytest.mark.parametrize("name", ["esme-polyphase", "esme-twin-element"])
def test_gurux_first_read_of_the_other_esme_profiles(name):
    profile, start, now = _setting(name)
    reference = ReferenceCore(profile, start, now)
    range_start, range_end = now - 3 * 3600, now
    with ServedEsme(profile, start, now, runtime="cpython", framing="hdlc") as esme:
        with _peer(esme, profile, "hdlc") as peer:
            reading = peer.read_meter(range_start=_when(range_start),
                                      range_end=_when(range_end))
    _check_first_read(reading, reference, now, range_start, range_end)


def test_reference_rows_are_what_the_profile_encodes():
    # the oracle above decodes the ESME's stored entries itself: check it reads a
    # known entry layout {date-time octet-string, double-long-unsigned}
    profile, start, now = _setting("esme-single-phase")
    reference = ReferenceCore(profile, start, now)
    rows = reference.hh_rows()
    assert len(rows) == HISTORY // HALF_HOUR
    assert rows[0][0] == start + HALF_HOUR and rows[-1][0] == now - now % HALF_HOUR
    first = next(iter(reference.core.esme.hh_profile.entries()))
    tag, columns = axdr.decode_all(bytes(first))
    assert tag == axdr.STRUCTURE and [c[0] for c in columns] == [axdr.OCTET_STRING,
                                                                 axdr.DOUBLE_LONG_UNSIGNED]
