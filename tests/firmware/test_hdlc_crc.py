"""CRC-16/X.25 (IEC 62056-46 §6.4, ISO/IEC 13239): the HCS and FCS of every frame."""

from firmware.hdlc.crc import GOOD_RESIDUE, crc16, crc16_bytes, crc16_register


def _bitwise(data):
    """Reference: the reflected polynomial 0x8408, one bit at a time."""
    register = 0xFFFF
    for byte in data:
        register ^= byte
        for _ in range(8):
            register = (register >> 1) ^ 0x8408 if register & 1 else register >> 1
    return register ^ 0xFFFF


def test_catalogue_check_value():
    # CRC-16/X.25 (a.k.a. CRC-16/IBM-SDLC) check value for "123456789".
    assert crc16(b"123456789") == 0x906E


def test_empty_input_is_zero():
    assert crc16(b"") == 0x0000


def test_gurux_snrm_and_disc_frames():
    # The SNRM and DISC every Gurux client sends to server 1 from client 16:
    # 7E A0 07 03 21 93 0F 01 7E and 7E A0 07 03 21 53 03 C7 7E.
    assert crc16_bytes(bytes.fromhex("a007032193")) == bytes.fromhex("0f01")
    assert crc16_bytes(bytes.fromhex("a007032153")) == bytes.fromhex("03c7")


def test_fcs_is_sent_least_significant_byte_first():
    value = crc16(b"123456789")
    assert crc16_bytes(b"123456789") == bytes((value & 0xFF, value >> 8))


def test_residue_over_data_and_its_fcs():
    # RFC 1662 "good FCS": the register over a frame plus its own FCS is 0xF0B8.
    for data in (b"", b"\x00", b"hello world", bytes(range(256))):
        assert crc16_register(data + crc16_bytes(data)) == GOOD_RESIDUE


def test_table_matches_the_bitwise_reference():
    seed = 12345
    for length in range(0, 300, 7):
        data = bytearray(length)
        for i in range(length):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            data[i] = seed >> 16 & 0xFF
        assert crc16(data) == _bitwise(data)
    for byte in range(256):
        assert crc16(bytes((byte,))) == _bitwise(bytes((byte,)))


def test_range_arguments_cover_a_slice_without_copying():
    data = b"xx123456789yy"
    assert crc16(data, 2, 11) == 0x906E
    assert crc16(memoryview(data), 2, 11) == 0x906E


def test_single_bit_errors_are_detected():
    data = bytearray(b"\xa0\x07\x03\x21\x93")
    good = crc16(data)
    for i in range(len(data)):
        for bit in range(8):
            data[i] ^= 1 << bit
            assert crc16(data) != good
            data[i] ^= 1 << bit
