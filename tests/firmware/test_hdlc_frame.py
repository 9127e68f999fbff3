"""HDLC frame format type 3 (IEC 62056-46 §6.4): build, parse, reject."""

from firmware.hdlc.crc import crc16_bytes
from firmware.hdlc.frame import (DISC, DM, FRMR, I, REJ, RNR, RR, SNRM, SREJ, UA, UI,
                                 HdlcError, HdlcFrame, control_kind, decode_address,
                                 encode_address, i_control, parse_frame, s_control,
                                 server_address, split_server_address, u_control)
from firmware.hdlc.parameters import LinkParameters, decode_parameters

CLIENT = (0x10, 1)
SERVER = (1 << 7 | 0x10, 2)


def _error(fn, *args):
    try:
        fn(*args)
    except HdlcError as err:
        return err
    raise AssertionError("no HdlcError")


def test_gurux_snrm_bytes():
    frame = HdlcFrame(u_control(SNRM, True), (1, 1), CLIENT)
    assert frame.encode() == bytes.fromhex("7ea0070321930f017e")
    assert parse_frame(frame.encode()) == frame


def test_control_bytes_of_every_kind():
    assert i_control(0, 0, True) == 0x10
    assert i_control(1, 2, True) == 0x52
    assert i_control(7, 7, False) == 0xEE
    assert s_control(RR, 1, True) == 0x31
    assert s_control(RNR, 3, False) == 0x65
    assert u_control(SNRM, True) == 0x93
    assert u_control(DISC, True) == 0x53
    assert u_control(UA, True) == 0x73
    assert u_control(DM, True) == 0x1F
    assert u_control(FRMR, True) == 0x97
    assert u_control(UI, False) == 0x03
    for control, kind in ((0x52, I), (0x31, RR), (0x65, RNR), (0x19, REJ), (0x1D, SREJ),
                          (0x93, SNRM), (0x53, DISC), (0x73, UA), (0x1F, DM), (0x97, FRMR),
                          (0x13, UI)):
        assert control_kind(control) == kind


def test_sequence_numbers_and_poll_bit():
    frame = HdlcFrame(i_control(5, 3, True), SERVER, CLIENT, b"x")
    assert (frame.kind, frame.ns, frame.nr, frame.poll) == (I, 5, 3, True)
    frame = HdlcFrame(s_control(RR, 6, False), SERVER, CLIENT)
    assert (frame.kind, frame.nr, frame.poll) == (RR, 6, False)


def test_information_frame_layout_has_hcs_then_info_then_fcs():
    info = b"\xe6\xe6\x00\xc0\x01\xc1"
    raw = HdlcFrame(0x10, SERVER, CLIENT, info).encode()
    # 7E | A0 len | 02 21 | 21 | 10 | HCS | info | FCS | 7E
    assert raw[0] == 0x7E and raw[-1] == 0x7E
    assert raw[1] == 0xA0 and raw[2] == len(raw) - 2
    assert raw[3:5] == b"\x02\x21" and raw[5] == 0x21 and raw[6] == 0x10
    assert raw[7:9] == crc16_bytes(raw, 1, 7)
    assert raw[9:9 + len(info)] == info
    assert raw[-3:-1] == crc16_bytes(raw, 1, len(raw) - 3)


def test_frame_without_info_has_only_fcs():
    raw = HdlcFrame(0x31, SERVER, CLIENT).encode()
    assert len(raw) == 2 + 2 + 2 + 1 + 1 + 2
    assert parse_frame(raw).info == b""


def test_segmentation_bit_and_eleven_bit_length():
    info = bytes(range(256)) * 4
    raw = HdlcFrame(0x10, SERVER, CLIENT, info, segmented=True).encode()
    length = (raw[1] & 0x07) << 8 | raw[2]
    assert raw[1] & 0xF8 == 0xA8
    assert length == len(raw) - 2 == 1024 + 10
    frame = parse_frame(raw)
    assert frame.segmented and frame.info == info


def test_round_trip_every_address_size():
    for dst in ((1, 1), (0x7F, 1), SERVER, (0x3FFF, 2), (1 << 14 | 0x3FFF, 4), (0, 4)):
        for src in ((0x10, 1), (0x01, 1), (0x7F, 1)):
            for info in (b"", b"\x7e", b"abc" * 50):
                frame = HdlcFrame(0x10, dst, src, info)
                assert parse_frame(frame.encode()) == frame


def test_address_encoding_uses_the_extension_bit():
    assert encode_address(0x10, 1) == b"\x21"
    assert encode_address(1 << 7 | 0x10, 2) == b"\x02\x21"
    assert encode_address(0x1234 << 14 | 0x0567, 4) == bytes((
        (0x1234 >> 7) << 1, (0x1234 & 0x7F) << 1, (0x0567 >> 7) << 1, (0x0567 & 0x7F) << 1 | 1))
    assert decode_address(b"\x02\x21\x21", 0, 3) == (0x90, 2, 2)
    assert _error(encode_address, 0x80, 1).offset == 0
    assert _error(encode_address, 1, 3).offset == 0


def test_server_address_helpers():
    assert server_address(1, 0x10, 1) == (1, 1)
    assert server_address(1, 0x10, 2) == (0x90, 2)
    assert server_address(0x100, 0x2000, 4) == (0x100 << 14 | 0x2000, 4)
    assert split_server_address((0x90, 2)) == (1, 0x10)
    assert split_server_address((1, 1)) == (1, None)
    assert split_server_address((0x100 << 14 | 0x2000, 4)) == (0x100, 0x2000)
    assert _error(server_address, 0x80, 1, 2).reason


def _valid():
    return bytearray(HdlcFrame(0x10, SERVER, CLIENT, b"\xe6\xe6\x00abc").encode())


def test_rejects_missing_flags_with_offsets():
    raw = _valid()
    raw[0] = 0x00
    assert _error(parse_frame, raw).offset == 0
    raw = _valid()
    raw[-1] = 0x00
    assert _error(parse_frame, raw).offset == len(raw) - 1


def test_rejects_other_format_types_and_length_mismatch():
    raw = _valid()
    raw[1] = 0x90 | (raw[1] & 0x0F)
    assert _error(parse_frame, raw).offset == 1
    raw = _valid()
    raw[2] += 1
    assert _error(parse_frame, raw).offset == 1
    assert _error(parse_frame, bytes(raw[:-1])).offset == 1


def test_rejects_bad_hcs_and_fcs():
    raw = _valid()
    raw[7] ^= 0xFF
    err = _error(parse_frame, raw)
    assert err.offset == 7 and "HCS" in err.reason
    raw = _valid()
    raw[10] ^= 0x01          # an info byte: the HCS still holds, the FCS does not
    err = _error(parse_frame, raw)
    assert err.offset == len(raw) - 3 and "FCS" in err.reason


def test_rejects_three_and_five_byte_addresses():
    body = bytearray(b"\xa0\x00\x02\x04\x21\x21\x10")   # 3-byte destination
    body[1] = len(body) + 2
    raw = b"\x7e" + body + crc16_bytes(body) + b"\x7e"
    err = _error(parse_frame, raw)
    assert err.offset == 3 and "3-byte" in err.reason
    body = bytearray(b"\xa0\x00\x02\x04\x06\x08\x0a\x21\x21\x10")   # 5-byte destination
    body[1] = len(body) + 2
    raw = b"\x7e" + body + crc16_bytes(body) + b"\x7e"
    assert _error(parse_frame, raw).offset == 3


def test_rejects_truncated_and_half_present_info():
    assert _error(parse_frame, b"\x7e\xa0\x05\x7e").offset == 4
    # header followed by 3 or 4 bytes: too long for FCS alone, too short for HCS+info+FCS
    for extra in (1, 2):
        body = bytearray(b"\xa0\x00\x02\x21\x21\x10") + bytes(extra)
        body[1] = len(body) + 2
        raw = b"\x7e" + body + crc16_bytes(body) + b"\x7e"
        assert _error(parse_frame, raw).offset == 7


def test_parse_a_slice_of_a_larger_buffer():
    raw = _valid()
    buf = b"noise" + raw + b"more"
    frame = parse_frame(buf, 5, 5 + len(raw))
    assert frame.info == b"\xe6\xe6\x00abc"
    bad = bytearray(buf)
    bad[5 + 7] ^= 1
    assert _error(parse_frame, bad, 5, 5 + len(raw)).offset == 7


def test_encode_refuses_what_the_format_cannot_carry():
    assert _error(HdlcFrame(0x10, SERVER, CLIENT, bytes(2040)).encode).offset == 1
    assert _error(HdlcFrame(0x100, SERVER, CLIENT).encode).reason
    assert _error(HdlcFrame(0x10, (0x80, 1), CLIENT).encode).reason


def test_green_book_negotiation_field():
    field = bytes.fromhex("8180140502008006020080070400000001080400000001")
    assert decode_parameters(field) == LinkParameters(128, 128, 1, 1)
    assert decode_parameters(b"") == LinkParameters()


def test_negotiation_field_round_trip_and_answer():
    proposed = LinkParameters(1024, 300, 7, 3)
    assert decode_parameters(proposed.encode()) == proposed
    assert proposed.encode()[3:6] == b"\x05\x02\x04"     # 1024 in two bytes
    assert LinkParameters(100, 100, 1, 1).encode()[3:6] == b"\x05\x01\x64"
    ours = LinkParameters(512, 512, 1, 1)
    # our transmit is bounded by their receive, and the other way round
    assert ours.answer(proposed) == LinkParameters(300, 512, 1, 1)


def test_negotiation_field_errors():
    assert _error(decode_parameters, b"\x82\x80\x00").offset == 0
    assert _error(decode_parameters, b"\x81\x81\x00").offset == 1
    assert _error(decode_parameters, b"\x81\x80\x05\x05\x01\x80").offset == 2
    assert _error(decode_parameters, b"\x81\x80\x03\x05\x05\x80").offset == 4
    assert _error(decode_parameters, b"\x81\x80\x03\x05\x01\x00").reason
    assert _error(decode_parameters, b"\x81\x80\x03\x07\x01\x08").reason   # window 8
    # unknown parameters are skipped
    assert decode_parameters(b"\x81\x80\x06\x09\x01\x05\x05\x01\x40") == LinkParameters(64)
