"""The HDLC secondary station (IEC 62056-46) driven frame by frame.

A stand-in upper layer records each APDU and answers with a reply chosen per test.
"""

from firmware.hdlc.frame import (DISC, DM, FRMR, I, REJ, RNR, RR, SNRM, UA, UI, HdlcFrame,
                                 i_control, s_control, u_control)
from firmware.hdlc.parameters import LinkParameters, decode_parameters
from firmware.hdlc.reader import MAX_WATCHED, FrameReader
from firmware.hdlc.station import FRAME_REJECT, NDM, NRM, HdlcStation

CLIENT = (0x10, 1)
SERVER = (1 << 7 | 0x10, 2)
LLC_REQUEST = b"\xe6\xe6\x00"
LLC_RESPONSE = b"\xe6\xe7\x00"


class Upper:
    """Stand-in for the DLMS session: records calls, answers `reply(apdu)`."""

    def __init__(self, reply=None):
        self.apdus = []
        self.disconnects = 0
        self.reply = reply

    def on_apdu(self, apdu, client_sap):
        self.apdus.append((apdu, client_sap))
        if self.reply is None:
            return b"\xc4" + apdu
        return self.reply(apdu)

    def on_disconnect(self):
        self.disconnects += 1


def _flip(data):
    return bytes(b ^ 0x55 for b in data)


def _station(upper=None, **kwargs):
    upper = upper or Upper()
    station = HdlcStation(server_upper=1, server_lower=0x10, on_apdu=upper.on_apdu,
                          on_disconnect=upper.on_disconnect, **kwargs)
    return station, upper


def _frames(data):
    reader = FrameReader()
    reader.feed(data)
    out = []
    while True:
        frame = reader.next_frame()
        if frame is None:
            assert reader.buffered() <= 1      # nothing but a shared closing flag left
            return out
        out.append(frame)


def _send(station, control, info=b"", segmented=False, dst=SERVER, src=CLIENT):
    return _frames(station.receive(HdlcFrame(control, dst, src, info, segmented).encode()))


def _one(frames):
    assert len(frames) == 1, frames
    return frames[0]


def _connect(station, params=None, dst=SERVER):
    info = params.encode() if params else b""
    ua = _one(_send(station, u_control(SNRM, True), info, dst=dst))
    assert ua.kind == UA and ua.poll
    return decode_parameters(ua.info)


def _request(station, ns, nr, apdu):
    return _send(station, i_control(ns, nr, True), LLC_REQUEST + apdu)


def test_snrm_without_parameters_agrees_on_the_defaults():
    station, _ = _station()
    assert station.state == NDM
    agreed = _connect(station)
    assert agreed == LinkParameters(128, 128, 1, 1)
    assert station.state == NRM and station.client_address == 0x10


def test_ua_comes_from_the_server_address_to_the_client():
    station, _ = _station()
    ua = _one(_send(station, u_control(SNRM, True)))
    assert ua.destination == CLIENT and ua.source == SERVER


def test_negotiation_takes_the_smaller_of_each_value():
    station, _ = _station(max_info_length=512, window_size=1)
    agreed = _connect(station, LinkParameters(max_info_transmit=1024, max_info_receive=256,
                                              window_transmit=7, window_receive=3))
    # server transmit <= client receive, server receive <= client transmit
    assert agreed == LinkParameters(256, 512, 1, 1)
    assert station.parameters == agreed


def test_information_exchange_strips_and_adds_llc_and_counts_sequences():
    station, upper = _station()
    _connect(station)
    answer = _one(_request(station, 0, 0, b"\xc0\x01\xc1"))
    assert upper.apdus == [(b"\xc0\x01\xc1", 0x10)]
    assert answer.kind == I and answer.poll and not answer.segmented
    assert (answer.ns, answer.nr) == (0, 1)
    assert answer.info == LLC_RESPONSE + b"\xc4\xc0\x01\xc1"
    answer = _one(_request(station, 1, 1, b"\xc0\x02"))
    assert (answer.ns, answer.nr) == (1, 2)
    assert upper.apdus[-1] == (b"\xc0\x02", 0x10)


def test_sequence_numbers_wrap_modulo_eight():
    station, upper = _station()
    _connect(station)
    for n in range(20):
        answer = _one(_request(station, n & 7, n & 7, bytes((n,))))
        assert (answer.ns, answer.nr) == (n & 7, (n + 1) & 7)
    assert len(upper.apdus) == 20


def test_no_reply_from_the_upper_layer_answers_rr():
    station, upper = _station(Upper(reply=lambda apdu: None))
    _connect(station)
    rr = _one(_request(station, 0, 0, b"\xc0"))
    assert rr.kind == RR and rr.nr == 1 and rr.poll


def test_long_answer_goes_out_in_segments_one_per_rr():
    reply = bytes(range(256)) + bytes(range(100))
    station, _ = _station(Upper(reply=lambda apdu: reply))
    _connect(station)
    segment = _one(_request(station, 0, 0, b"\xc0"))
    received = bytearray()
    ns = 0
    while True:
        assert segment.kind == I and segment.ns == ns and segment.nr == 1 and segment.poll
        assert len(segment.info) <= 128
        received.extend(segment.info)
        ns += 1
        if not segment.segmented:
            break
        assert len(segment.info) == 128
        segment = _one(_send(station, s_control(RR, ns, True)))
    assert bytes(received) == LLC_RESPONSE + reply
    assert ns == 3     # 359 bytes in 128-byte pieces
    # after the last segment an RR gets an RR: nothing more to send
    rr = _one(_send(station, s_control(RR, ns, True)))
    assert rr.kind == RR and rr.nr == 1


def test_segmented_request_is_reassembled_with_rr_for_each_segment():
    station, upper = _station()
    _connect(station)
    message = LLC_REQUEST + bytes(range(200)) + bytes(range(100))
    pieces = [message[0:128], message[128:256], message[256:]]
    for k in range(2):
        rr = _one(_send(station, i_control(k, 0, True), pieces[k], segmented=True))
        assert rr.kind == RR and rr.nr == k + 1
        assert upper.apdus == []
    answer = _one(_send(station, i_control(2, 0, True), pieces[2]))
    assert upper.apdus == [(message[3:], 0x10)]
    assert answer.kind == I and answer.nr == 3 and answer.ns == 0


def test_segmentation_both_ways_in_one_exchange():
    station, upper = _station(Upper(reply=_flip))
    _connect(station)
    message = LLC_REQUEST + bytes(range(250))
    _one(_send(station, i_control(0, 0, True), message[:128], segmented=True))
    first = _one(_send(station, i_control(1, 0, True), message[128:]))
    assert first.segmented and first.nr == 2
    second = _one(_send(station, s_control(RR, 1, True)))
    assert not second.segmented
    assert first.info + second.info == LLC_RESPONSE + _flip(bytes(range(250)))


def test_rnr_holds_the_next_segment_until_rr():
    station, _ = _station(Upper(reply=lambda apdu: bytes(300)))
    _connect(station)
    first = _one(_request(station, 0, 0, b"\xc0"))
    assert first.segmented
    held = _one(_send(station, s_control(RNR, 1, True)))
    assert held.kind == RR and held.nr == 1
    second = _one(_send(station, s_control(RR, 1, True)))
    assert second.kind == I and second.ns == 1


def test_lost_segment_is_sent_again_when_the_client_polls_with_the_same_nr():
    station, _ = _station(Upper(reply=lambda apdu: bytes(range(200))))
    _connect(station)
    first = _one(_request(station, 0, 0, b"\xc0"))
    second = _one(_send(station, s_control(RR, 1, True)))
    again = _one(_send(station, s_control(RR, 1, True)))
    assert again == second and again.ns == 1
    assert first.info + again.info == LLC_RESPONSE + bytes(range(200))


def test_repeated_request_gets_the_same_answer_without_a_second_delivery():
    station, upper = _station()
    _connect(station)
    answer = _one(_request(station, 0, 0, b"\xc0\x01"))
    again = _one(_request(station, 0, 0, b"\xc0\x01"))      # our answer was "lost"
    assert again == answer
    assert len(upper.apdus) == 1
    nxt = _one(_request(station, 1, 1, b"\xc0\x02"))
    assert (nxt.ns, nxt.nr) == (1, 2) and len(upper.apdus) == 2


def test_repeated_segment_is_stored_once():
    station, upper = _station()
    _connect(station)
    message = LLC_REQUEST + bytes(range(200))
    _one(_send(station, i_control(0, 0, True), message[:128], segmented=True))
    rr = _one(_send(station, i_control(0, 0, True), message[:128], segmented=True))
    assert rr.kind == RR and rr.nr == 1
    _one(_send(station, i_control(1, 0, True), message[128:]))
    assert upper.apdus == [(message[3:], 0x10)]


def test_window_of_two_sends_two_segments_per_poll_final_on_the_last():
    station, _ = _station(Upper(reply=lambda apdu: bytes(300)), max_info_length=128,
                          window_size=2)
    _connect(station, LinkParameters(128, 128, 2, 2))
    batch = _request(station, 0, 0, b"\xc0")
    assert [(f.ns, f.poll, f.segmented) for f in batch] == [(0, False, True), (1, True, True)]
    batch = _send(station, s_control(RR, 2, True))
    assert [(f.ns, f.poll, f.segmented) for f in batch] == [(2, True, False)]


def test_windowed_request_is_answered_only_when_polled():
    station, upper = _station(Upper(reply=lambda apdu: b"\xc4"), window_size=2)
    _connect(station, LinkParameters(128, 128, 2, 2))
    message = LLC_REQUEST + bytes(200)
    assert _send(station, i_control(0, 0, False), message[:128], segmented=True) == []
    answer = _one(_send(station, i_control(1, 0, True), message[128:]))
    assert answer.kind == I and answer.nr == 2 and answer.info == LLC_RESPONSE + b"\xc4"
    assert upper.apdus == [(message[3:], 0x10)]


def test_disc_answers_ua_then_dm_and_tells_the_upper_layer():
    station, upper = _station()
    _connect(station)
    ua = _one(_send(station, u_control(DISC, True)))
    assert ua.kind == UA and station.state == NDM and upper.disconnects == 1
    dm = _one(_send(station, u_control(DISC, True)))
    assert dm.kind == DM and upper.disconnects == 1


def test_commands_while_disconnected_get_dm_when_polled():
    station, upper = _station()
    assert _one(_request(station, 0, 0, b"\xc0")).kind == DM
    assert _one(_send(station, s_control(RR, 0, True))).kind == DM
    assert _send(station, s_control(RR, 0, False)) == []
    assert upper.apdus == [] and station.state == NDM


def test_snrm_on_a_live_link_resets_it_and_ends_the_association():
    station, upper = _station()
    _connect(station)
    _one(_request(station, 0, 0, b"\xc0"))
    _connect(station)
    assert upper.disconnects == 1
    answer = _one(_request(station, 0, 0, b"\xc0"))
    assert (answer.ns, answer.nr) == (0, 1)


def _frmr(frames):
    frmr = _one(frames)
    assert frmr.kind == FRMR and frmr.poll and len(frmr.info) == 3
    return frmr.info


def test_frmr_for_an_unsupported_control_field_then_until_snrm():
    station, upper = _station()
    _connect(station)
    info = _frmr(_send(station, s_control(REJ, 0, True)))
    assert info[0] == s_control(REJ, 0, True) and info[2] == 0x01      # W
    assert station.state == FRAME_REJECT
    assert _frmr(_request(station, 0, 0, b"\xc0")) == info          # repeated, not acted on
    assert _frmr(_request(station, 5, 5, b"\xc0")) == info          # the first reason stays
    assert upper.apdus == []
    _connect(station)
    assert station.state == NRM
    assert _one(_request(station, 0, 0, b"\xc0")).kind == I


def test_frmr_for_information_longer_than_agreed():
    station, upper = _station()
    _connect(station)
    info = _frmr(_send(station, i_control(0, 0, True), LLC_REQUEST + bytes(126)))
    assert info[2] == 0x04 and upper.apdus == []                     # Y


def test_frmr_for_an_out_of_sequence_ns():
    station, _ = _station()
    _connect(station)
    info = _frmr(_request(station, 3, 0, b"\xc0"))
    assert info[0] == i_control(3, 0, True) and info[2] == 0x10      # V
    assert info[1] == 0                                              # V(R)=0, V(S)=0


def test_frmr_for_an_nr_acknowledging_nothing_sent():
    station, _ = _station()
    _connect(station)
    info = _frmr(_send(station, s_control(RR, 2, True)))
    assert info[2] == 0x08                                           # Z
    station, _ = _station()
    _connect(station)
    _one(_request(station, 0, 0, b"\xc0"))
    info = _frmr(_request(station, 1, 5, b"\xc0"))
    assert info[2] == 0x08 and info[1] == (1 << 5 | 1 << 1)          # V(R)=1, V(S)=1


def test_frmr_for_information_on_a_supervisory_frame():
    station, _ = _station()
    _connect(station)
    assert _frmr(_send(station, s_control(RR, 0, True), b"x"))[2] == 0x03   # W + X


def test_frmr_when_a_segmented_message_outgrows_the_buffer():
    station, upper = _station(max_apdu_size=200)
    _connect(station)
    for k in range(2):
        assert _one(_send(station, i_control(k, 0, True), bytes(100), segmented=True)).kind == RR
    assert _frmr(_send(station, i_control(2, 0, True), bytes(100), segmented=True))[2] == 0x04
    assert upper.apdus == []


def test_bad_snrm_parameters():
    station, _ = _station()
    bad = b"\x81\x80\x03\x07\x01\x00"          # window size 0
    assert _one(_send(station, u_control(SNRM, True), bad)).kind == DM
    assert station.state == NDM
    _connect(station)
    assert _frmr(_send(station, u_control(SNRM, True), bad))[2] == 0x03


def test_frames_with_bad_checksums_are_ignored():
    station, upper = _station()
    _connect(station)
    raw = HdlcFrame(i_control(0, 0, True), SERVER, CLIENT, LLC_REQUEST + b"\xc0").encode()
    bad_fcs = bytearray(raw)
    bad_fcs[-2] ^= 0xFF
    bad_hcs = bytearray(raw)
    bad_hcs[7] ^= 0x01
    bad_info = bytearray(raw)
    bad_info[10] ^= 0x40
    for bad in (bad_fcs, bad_hcs, bad_info):
        assert station.receive(bytes(bad)) == b""
    assert upper.apdus == [] and station.state == NRM
    assert _one(_frames(station.receive(bytes(raw)))).nr == 1


def test_frames_for_other_addresses_are_ignored():
    station, upper = _station()
    for dst in ((2, 1), (1 << 7 | 0x11, 2), (2 << 14 | 0x10, 4)):
        assert _send(station, u_control(SNRM, True), dst=dst) == []
    assert _send(station, u_control(SNRM, True), src=(0x10, 2)) == []   # not a client address
    assert _send(station, u_control(SNRM, True), src=(0x00, 1)) == []   # "no station"
    assert station.state == NDM


def test_another_client_gets_dm_while_a_link_is_up():
    station, upper = _station()
    _connect(station)
    other = (0x01, 1)
    dm = _one(_send(station, i_control(0, 0, True), LLC_REQUEST + b"\xc0", src=other))
    assert dm.kind == DM and dm.destination == other
    assert upper.apdus == [] and station.state == NRM and station.client_address == 0x10


def test_one_and_four_byte_server_addresses_are_answered_in_kind():
    for dst in ((1, 1), (1 << 14 | 0x10, 4)):
        station, upper = _station()
        _connect(station, dst=dst)
        answer = _one(_send(station, i_control(0, 0, True), LLC_REQUEST + b"\xc0", dst=dst))
        assert answer.source == dst and answer.destination == CLIENT
        assert upper.apdus == [(b"\xc0", 0x10)]


def test_four_byte_only_server_address():
    upper = Upper()
    station = HdlcStation(server_upper=0x1234, server_lower=0x0567, on_apdu=upper.on_apdu)
    dst = (0x1234 << 14 | 0x0567, 4)
    assert _send(station, u_control(SNRM, True), dst=(0x1234 >> 7, 2)) == []
    assert _one(_send(station, u_control(SNRM, True), dst=dst)).kind == UA


def test_input_in_any_chunking():
    frames = [HdlcFrame(u_control(SNRM, True), SERVER, CLIENT).encode(),
              HdlcFrame(i_control(0, 0, True), SERVER, CLIENT, LLC_REQUEST + b"\x7e\xc0").encode(),
              HdlcFrame(i_control(1, 1, True), SERVER, CLIENT, LLC_REQUEST + b"\xc1").encode()]
    stream = b"".join(frames)
    expected = None
    for size in (1, 2, 3, 5, 8, 13, len(stream)):
        station, upper = _station()
        out = bytearray()
        for start in range(0, len(stream), size):
            out.extend(station.receive(stream[start:start + size]))
        answers = _frames(bytes(out))
        assert [a.kind for a in answers] == [UA, I, I]
        assert [a for a, _ in upper.apdus] == [b"\x7e\xc0", b"\xc1"]
        if expected is None:
            expected = bytes(out)
        assert bytes(out) == expected


def test_frames_sharing_one_flag():
    snrm = HdlcFrame(u_control(SNRM, True), SERVER, CLIENT).encode()
    info = HdlcFrame(i_control(0, 0, True), SERVER, CLIENT, LLC_REQUEST + b"\xc0").encode()
    station, upper = _station()
    answers = _frames(station.receive(snrm + info[1:]))
    assert [a.kind for a in answers] == [UA, I]


def test_noise_between_frames_is_skipped():
    snrm = HdlcFrame(u_control(SNRM, True), SERVER, CLIENT).encode()
    info = HdlcFrame(i_control(0, 0, True), SERVER, CLIENT, LLC_REQUEST + b"\xc0").encode()
    station, upper = _station()
    noise = b"\x00\xff\x7e\x7e\x12\x7e\xa0\x03\x7e" + snrm[:6]
    answers = _frames(station.receive(noise + snrm + b"garbage" + info))
    assert [a.kind for a in answers] == [UA, I]


def test_a_fake_long_header_does_not_hold_up_the_next_frame():
    snrm = HdlcFrame(u_control(SNRM, True), SERVER, CLIENT).encode()
    station, _ = _station()
    assert station.receive(b"\x7e\xa7\xff\x01\x02") == b""     # claims 2047 bytes
    assert _one(_frames(station.receive(snrm))).kind == UA


def test_buffer_stays_bounded_under_noise():
    station, _ = _station()
    seed = 7
    for _ in range(40):
        chunk = bytearray(500)
        for i in range(len(chunk)):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            chunk[i] = 0x7E if seed & 0x700 == 0 else seed >> 16 & 0xFF
        station.receive(bytes(chunk))
        assert station._reader.buffered() <= 2049
    station.receive(b"\x7e\xa7\xff" + bytes(3000))
    assert station._reader.buffered() <= 2049
    assert station.internal_error is None


def test_an_upper_layer_failure_does_not_break_the_link():
    def fail(apdu):
        raise ValueError("boom")
    station, upper = _station(Upper(reply=fail))
    _connect(station)
    rr = _one(_request(station, 0, 0, b"\xc0"))
    assert rr.kind == RR and rr.nr == 1
    assert isinstance(station.upper_error, ValueError)
    upper.reply = None
    assert _one(_request(station, 1, 0, b"\xc0")).kind == I


def test_message_without_the_dlms_llc_header_is_not_passed_up():
    station, upper = _station()
    _connect(station)
    rr = _one(_send(station, i_control(0, 0, True), b"\xe6\xe7\x00\xc0"))
    assert rr.kind == RR and upper.apdus == []


def test_ui_is_delivered_without_an_answer():
    station, upper = _station()
    assert _send(station, u_control(UI, False), LLC_REQUEST + b"\xc1") == []
    assert upper.apdus == [(b"\xc1", 0x10)]
    _connect(station)
    rr = _one(_send(station, u_control(UI, True), LLC_REQUEST + b"\xc2"))
    assert rr.kind == RR and upper.apdus[-1] == (b"\xc2", 0x10)


class CountingReader(FrameReader):
    def __init__(self):
        FrameReader.__init__(self)
        self.looks = 0

    def _candidate(self, start):
        self.looks += 1
        return FrameReader._candidate(self, start)


def _byte_by_byte(reader, data):
    frames = []
    for i in range(len(data)):
        reader.feed(data[i:i + 1])
        while True:
            frame = reader.next_frame()
            if frame is None:
                break
            frames.append(frame)
    return frames


def test_reader_work_stays_linear_for_flags_and_fake_headers_in_the_info():
    for filler in (b"\x7e", b"\x7e\xa7\xff"):
        info = LLC_REQUEST + filler * (1800 // len(filler))
        raw = HdlcFrame(i_control(0, 0, True), SERVER, CLIENT, info).encode()
        reader = CountingReader()
        frames = _byte_by_byte(reader, raw)
        assert len(frames) == 1 and frames[0].info == info
        assert reader.looks < 12 * len(raw)


def test_reader_finds_a_frame_behind_fake_headers():
    snrm = HdlcFrame(u_control(SNRM, True), SERVER, CLIENT).encode()
    for fakes in (1, MAX_WATCHED - 1, MAX_WATCHED + 3):
        reader = FrameReader()
        reader.feed(b"\x7e\xa7\xff" * fakes + snrm)
        frame = reader.next_frame()
        if fakes < MAX_WATCHED:
            assert frame is not None and frame.kind == SNRM      # found at once
        else:
            # beyond the watch list: found once the first fake header is settled
            fed = 0
            while frame is None and fed < 4096:
                reader.feed(bytes(64))
                fed += 64
                frame = reader.next_frame()
                assert reader.buffered() <= 2049 + 64 + len(snrm)
            assert frame is not None and frame.kind == SNRM
            assert 2049 - 3 * fakes <= fed <= 2049 + 64
