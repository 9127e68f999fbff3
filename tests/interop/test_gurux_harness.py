"""The Gurux reader proves itself against a server made of Gurux parts before it judges ours.

`gurux_reference_server` is gurux-dlms's own server engine with a clock, a register and a
half-hourly profile; nothing of smets-emu is in the loop. If the reader (or the way it
drives Gurux's client) were wrong, these reads would not match what the server holds.
"""

import datetime

import pytest

from tests.interop.gurux_peer import GuruxPeer, object_kinds
from tests.interop.gurux_reference_server import ReferenceMeter, ReferenceServer

pytestmark = pytest.mark.interop

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_reader_reads_what_a_gurux_server_holds_over_the_wrapper():
    meter = ReferenceMeter(NOW, energy_wh=987654, rows=96, scaler=0)
    start, end = NOW - datetime.timedelta(hours=3), NOW - datetime.timedelta(hours=1)
    with ReferenceServer(meter, "wrapper") as server:
        with GuruxPeer("127.0.0.1", server.port, framing="wrapper") as peer:
            reading = peer.read_meter(range_start=start, range_end=end,
                                      entry_first=3, entry_count=5)

    assert {(8, "0.0.1.0.0.255"), (3, "1.0.1.8.0.255"), (7, "1.0.99.1.0.255"),
            (15, "0.0.40.0.0.255")} <= object_kinds(reading.objects)
    assert reading.clock == NOW
    assert reading.register == {"value": 987654, "scaler": 0, "unit": 30}
    expected_range = [(t, v) for t, v in meter.rows if start <= t <= end]
    assert len(expected_range) == 5
    assert reading.rows_by_range == expected_range
    assert reading.rows_by_entry == meter.rows[2:7]


def test_reader_reassembles_a_reply_spread_over_tcp_reads():
    # the whole 96-row buffer is one ~2 KB wrapper APDU (this Gurux server sends it
    # without block transfer): the reader must collect it across several recv()s
    meter = ReferenceMeter(NOW, rows=96)
    with ReferenceServer(meter, "wrapper") as server:
        with GuruxPeer("127.0.0.1", server.port, framing="wrapper") as peer:
            peer.associate()
            pg = peer.profile()
            assert pg.capturePeriod == 1800
            rows = peer.read_rows_by_entry(pg, 1, 0)
            peer.release()
    assert rows == meter.rows
    assert sum(len(b) for d, b in peer.exchanges if d == "rx") > 2000
