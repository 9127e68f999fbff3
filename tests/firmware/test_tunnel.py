"""GB-HRGP tunnel (firmware/han/tunnel.py): frames, segmentation, bounded reassembly."""

from firmware.gbcs import envelope
from firmware.han import tunnel as T

ORIG = b"\x90\xb3\xd5\x1f\x30\x01\x00\x00"
ESME = b"\x00\xdb\x12\x34\x56\x78\x90\xa0"


def _raises(fn, *args):
    try:
        fn(*args)
    except T.TunnelError as e:
        return e
    raise AssertionError("no TunnelError")


def message(payload_len, mac=True, signed=False, counter=7, date_time=None, other_tail=b""):
    payload = bytes((i * 7) & 0xFF for i in range(payload_len))
    m = envelope.GbcsMessage(envelope.CRA_COMMAND, counter, ORIG, ESME, 0x0027, payload,
                             date_time=date_time, other_info_tail=other_tail)
    if signed:
        m.signature = bytes(range(64))
    if mac:
        m.mac_protected = True
        m.mac = b"\xaa" * 12
    return m.encode()


def test_frames_encode_as_wireshark_reads_them():
    assert T.get() == b"\x01"
    assert T.get_response(3, b"\xdf\x01") == b"\x02\x03\xdf\x01"
    assert T.get_response(0) == b"\x02\x00"
    assert T.put(b"\xdd\x00") == b"\x03\xdd\x00"


def test_decode_each_kind():
    assert T.decode(b"\x01") == (T.GET, None, b"")
    assert T.decode(b"\x02\x05\xdf\x09") == (T.GET_RESPONSE, 5, b"\xdf\x09")
    assert T.decode(b"\x02\x00") == (T.GET_RESPONSE, 0, b"")
    assert T.decode(bytearray(b"\x03\xdd")) == (T.PUT, None, b"\xdd")
    assert T.decode(memoryview(b"\x03\xdd\x00")) == (T.PUT, None, b"\xdd\x00")


def test_decode_errors_carry_offset_and_reason():
    assert _raises(T.decode, b"").offset == 0
    e = _raises(T.decode, b"\x01\x00")
    assert e.offset == 1 and "GET" in e.reason
    assert _raises(T.decode, b"\x02").offset == 1
    assert _raises(T.decode, b"\x03").offset == 1
    e = _raises(T.decode, b"\x04\xdf")
    assert e.offset == 0 and "0x04" in e.reason


def test_builders_range_check():
    for bad in (-1, 256):
        try:
            T.get_response(bad, b"")
        except ValueError:
            continue
        raise AssertionError("remaining %d accepted" % bad)
    try:
        T.put(b"")
    except ValueError:
        return
    raise AssertionError("empty PUT accepted")


def test_message_length_reads_every_form():
    for m in (message(10), message(300, mac=False, signed=True), message(0, mac=False),
              message(200, date_time=b"\x07\xea" + b"\x00" * 10),
              message(5000), message(70, other_tail=b"\x30" + b"\x01" * 200)):
        assert T.message_length(m) == len(m)
        for cut in (0, 1, 5, 8, 20, len(m) - 1):
            got = T.message_length(m[:cut])
            assert got is None or got == len(m)
        assert T.message_length(m + b"\x00\x00") == len(m)


def test_message_length_refuses_what_cannot_start_a_message():
    assert _raises(T.message_length, b"\x0f\x00").offset == 0
    assert _raises(T.message_length, b"\xdd\x00\x01").offset == 2
    assert _raises(T.message_length, b"\xdf\x08").offset == 1
    bad_sig = bytearray(message(4, mac=False))
    bad_sig[-1] = 0x41
    assert _raises(T.message_length, bytes(bad_sig)).offset == len(bad_sig) - 1
    assert _raises(T.message_length, b"\xdd\x00\x00\x00\x00\x00\x00\x85").offset == 7


def test_short_frame_is_one_segment():
    frame = T.put(message(100))
    assert T.segments(frame) == [frame]
    r = T.Reassembler()
    assert r.feed(frame, 0) == (T.PUT, None, frame[1:])
    assert not r.pending


def test_long_frame_segments_and_reassembles_in_order():
    for size in (1500, 1499, 2998, 2999, 4096, 9000):
        m = message(size)
        frame = T.get_response(2, m)
        parts = T.segments(frame)
        assert b"".join(parts) == frame
        for p in parts[:-1]:
            assert len(p) == T.MAX_TRANSFER
        assert 0 < len(parts[-1]) <= T.MAX_TRANSFER
        r = T.Reassembler()
        got = [r.feed(p, 10) for p in parts]
        assert got[:-1] == [None] * (len(parts) - 1)
        assert got[-1] == (T.GET_RESPONSE, 2, m)
        assert not r.pending


def test_signed_message_whose_signature_byte_starts_the_next_segment():
    # the payload ends exactly at a segment boundary: the length is only known once
    # the signature length byte arrives
    payload_len = 1300
    while len(T.put(message(payload_len, mac=False, signed=True))) - 65 < T.MAX_TRANSFER:
        payload_len += 1
    m = message(payload_len, mac=False, signed=True)
    frame = T.put(m)
    parts = T.segments(frame)
    assert len(parts) == 2 and len(parts[1]) == 65
    r = T.Reassembler()
    assert r.feed(parts[0], 0) is None
    assert r.feed(parts[1], 0) == (T.PUT, None, m)


def test_lost_middle_segment_costs_one_message_only():
    m = message(4000)
    parts = T.segments(T.put(m))
    assert len(parts) == 3
    r = T.Reassembler()
    assert r.feed(parts[0], 0) is None
    e = _raises(r.feed, parts[2], 1)     # short segment before the end
    assert "short segment" in e.reason
    assert not r.pending
    small = T.put(message(20))
    assert r.feed(small, 2) == (T.PUT, None, small[1:])


def test_stale_partial_is_dropped_after_the_timeout():
    parts = T.segments(T.put(message(3000)))
    r = T.Reassembler(timeout=30)
    assert r.feed(parts[0], 0) is None
    small = T.put(message(30))
    assert r.feed(small, 31) == (T.PUT, None, small[1:])


def test_reassembly_is_bounded():
    r = T.Reassembler(max_message=2000)
    big = T.put(message(5000))
    e = _raises(r.feed, T.segments(big)[0], 0)
    assert "bound" in e.reason
    assert not r.pending
    over = _raises(T.Reassembler().feed, b"\x03" + b"\xdd" + b"\x00" * 1500, 0)
    assert over.offset == T.MAX_TRANSFER


def test_trailing_bytes_and_early_end_are_refused():
    m = message(40)
    e = _raises(T.Reassembler().feed, T.put(m) + b"\x00", 0)
    assert e.offset == 1 + len(m)
    e = _raises(T.Reassembler().feed, T.put(m[:-3]), 0)
    assert "ends early" in e.reason
    parts = T.segments(T.put(message(2000)))
    r = T.Reassembler()
    r.feed(parts[0], 0)
    e = _raises(r.feed, parts[1] + b"\x01\x02", 0)
    assert "past" in e.reason and not r.pending


def test_get_and_empty_get_response_need_no_reassembly():
    r = T.Reassembler()
    assert r.feed(T.get(), 0) == (T.GET, None, b"")
    assert r.feed(T.get_response(0), 0) == (T.GET_RESPONSE, 0, b"")


def test_small_max_transfer():
    m = message(50)
    frame = T.put(m)
    parts = T.segments(frame, 16)
    r = T.Reassembler(max_transfer=16)
    out = [r.feed(p, 0) for p in parts]
    assert out[-1] == (T.PUT, None, m) and out.count(None) == len(parts) - 1


def test_lost_last_segment_does_not_cost_the_next_message():
    parts = T.segments(T.put(message(2000)))
    r = T.Reassembler()
    assert r.feed(parts[0], 0) is None
    small = T.put(message(12))                 # the last segment of the first was lost
    assert r.feed(small, 1) == (T.PUT, None, small[1:])
    assert not r.pending


def test_reassembler_takes_memoryviews_and_bytearrays():
    m = message(2500)
    parts = T.segments(T.put(m))
    r = T.Reassembler()
    assert r.feed(memoryview(parts[0]), 0) is None
    assert r.feed(bytearray(parts[1]), 0) == (T.PUT, None, m)
