"""The Gurux reader proves itself against a server made of Gurux parts before it judges ours.

Over the TCP wrapper, `gurux_reference_server` is gurux-dlms's own server engine with a
clock, a register and a half-hourly profile; nothing of smets-emu is in the loop. If the
reader (or the way it drives Gurux's client) were wrong, these reads would not match what
the server holds. Over HDLC, where that engine cannot serve, the peer is a script of
hand-checked frames (below).
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
    with ReferenceServer(meter) as server:
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
    with ReferenceServer(meter) as server:
        with GuruxPeer("127.0.0.1", server.port, framing="wrapper") as peer:
            peer.associate()
            pg = peer.profile()
            assert pg.capturePeriod == 1800
            rows = peer.read_rows_by_entry(pg, 1, 0)
            peer.release()
    assert rows == meter.rows
    assert sum(len(b) for d, b in peer.exchanges if d == "rx") > 2000


# -- HDLC: hand-checked frames ------------------------------------------------------------
#
# gurux-dlms 1.0.203's Python server cannot serve HDLC (its SNRM handler dereferences a
# settings object it never creates, then calls a method GXHdlcSettings lacks), so the
# reader's HDLC path is proven against a scripted peer whose every byte is written out
# here from IEC 62056-46 and the Green Book, with an FCS computed by a CRC-16/X.25 that
# is itself checked against the standard check value. Nothing of smets-emu is used.

def crc16_x25(data):
    """CRC-16/X.25 (IEC 62056-46 §6.4.3.6 HCS/FCS): reflected 0x1021, init/xorout 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def hdlc_frame(control, info=b""):
    """Server (upper 1, lower 0x10) -> public client (16): 7E A0 len 21 02 21 ctrl ... 7E."""
    body = bytes([0x21, 0x02, 0x21, control])   # destination client 16, source server
    length = 2 + len(body) + 2 + (len(info) + 2 if info else 0)
    head = bytes([0xA0, length]) + body
    if info:
        hcs = crc16_x25(head)
        head += bytes([hcs & 0xFF, hcs >> 8]) + info
    fcs = crc16_x25(head)
    return b"\x7e" + head + bytes([fcs & 0xFF, fcs >> 8]) + b"\x7e"


LLC = bytes.fromhex("e6e700")
UA_PARAMETERS = bytes.fromhex("818012"     # format 0x81, group 0x80, group length 18
                              "05020080"   # max info field length transmit 128
                              "06020080"   # max info field length receive 128
                              "070400000001"   # window size transmit 1
                              "080400000001")  # window size receive 1
# AARE (Green Book 9.4): LN context, result accepted, diagnostic null, InitiateResponse
# with DLMS version 6, conformance get/set/selective-access/action/block-transfer-get
# (0x00101D), max PDU 0x0400, VAA name 0x0007
AARE = bytes.fromhex("6129a109060760857405080101a203020100a305a103020100be10040e0800065f1f"
                     "040000101d04000007")
CLOCK_2026_01_01_1200 = bytes.fromhex("07ea01010" "40c0000000000" "00")  # Thu, UTC, OK
GET_CLOCK_RESPONSE = bytes.fromhex("c401c100090c") + CLOCK_2026_01_01_1200
RLRE = bytes.fromhex("6303800100")

# what Gurux must send (checked byte for byte) and what the peer answers
HDLC_SCRIPT = [
    ("7ea0080221219305d17e", hdlc_frame(0x73, UA_PARAMETERS)),                   # SNRM/UA
    ("7ea02c02212110172ae6e600601da109060760857405080101be10040e01000000065f1f04"
     "00401e5dffff91237e", hdlc_frame(0x30, LLC + AARE)),                        # I(0,0)
    (None, hdlc_frame(0x52, LLC + GET_CLOCK_RESPONSE)),                           # I(1,1)
    (None, hdlc_frame(0x74, LLC + RLRE)),                                         # I(2,2)
    (None, hdlc_frame(0x73)),                                                     # DISC/UA
]
EXPECTED_CONTROLS = [0x93, 0x10, 0x32, 0x54, 0x53]   # SNRM, I(0,0), I(1,1), I(2,2), DISC


def test_crc16_x25_is_the_standard_one():
    assert crc16_x25(b"123456789") == 0x906E          # the catalogue check value


class ScriptedHdlcPeer:
    """Answers each complete HDLC frame with the next scripted reply; keeps what came."""

    def __init__(self, script):
        import socket
        import threading
        self.script = list(script)
        self.received = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        conn, _ = self._listener.accept()
        with conn:
            pending = b""
            for _expected, reply in self.script:
                while not _complete(pending):
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    pending += chunk
                length = ((pending[1] & 0x07) << 8 | pending[2]) + 2
                self.received.append(pending[:length])
                pending = pending[length:]
                conn.sendall(reply)

    def close(self):
        self._listener.close()
        self._thread.join(5)


def _complete(data):
    return len(data) >= 3 and len(data) >= ((data[1] & 0x07) << 8 | data[2]) + 2


def test_reader_speaks_hdlc_as_iec_62056_46_writes_it():
    peer_side = ScriptedHdlcPeer(HDLC_SCRIPT)
    try:
        with GuruxPeer("127.0.0.1", peer_side.port, framing="hdlc", server_address=1,
                       server_physical=0x10) as peer:
            peer.associate()
            clock = peer.read_clock()
            peer.release()
    finally:
        peer_side.close()

    assert clock == datetime.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    sent = peer_side.received
    assert len(sent) == len(HDLC_SCRIPT)
    for frame, (expected, _reply) in zip(sent, HDLC_SCRIPT):
        if expected is not None:
            assert frame.hex() == expected
    for frame, control in zip(sent, EXPECTED_CONTROLS):
        assert frame[3:6] == b"\x02\x21\x21" and frame[6] == control, frame.hex()
        assert crc16_x25(frame[1:-3]) == frame[-3] | frame[-2] << 8     # the reader's FCS
    # the GET asked for the clock's time: class 8, 0.0.1.0.0.255, attribute 2
    assert bytes.fromhex("e6e600c001c100080000010000ff0200") in sent[2]
