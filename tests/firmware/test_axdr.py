"""firmware/dlms/axdr.py: known-answer vectors (Green Book 9.5 "Data", Blue Book
4.1.5/4.1.6 examples of scaler_unit and capture objects), limits, errors with offsets.
Plain functions and asserts: also run under MicroPython by mp_runner.py."""

from firmware.dlms import axdr as A
from firmware.dlms.axdr import AxdrError


def _h(text):
    return bytes([int(text[i:i + 2], 16) for i in range(0, len(text), 2)])


def _decode_error(data):
    try:
        A.decode_all(data)
    except AxdrError as e:
        return e
    raise AssertionError("decoded without error: %r" % (data,))


def _encode_error(value):
    try:
        A.encode(value)
    except AxdrError as e:
        return e
    raise AssertionError("encoded without error: %r" % (value,))


def _both_ways(value, hex_text):
    encoded = _h(hex_text)
    assert A.encode(value) == encoded, (value, A.encode(value))
    assert A.decode_all(encoded) == value
    assert A.decode_all(memoryview(encoded)) == value


def test_simple_types_known_answers():
    _both_ways(A.null_data(), "00")
    _both_ways(A.boolean(True), "0301")
    _both_ways(A.boolean(False), "0300")
    _both_ways(A.integer(-1), "0fff")
    _both_ways(A.long(-2), "10fffe")
    _both_ways(A.unsigned(255), "11ff")
    _both_ways(A.long_unsigned(0x1234), "121234")
    _both_ways(A.double_long(-1), "05ffffffff")
    _both_ways(A.double_long_unsigned(5), "0600000005")
    _both_ways(A.long64(-5), "14fffffffffffffffb")
    _both_ways(A.long64_unsigned(2 ** 64 - 1), "15ffffffffffffffff")
    _both_ways(A.enum(30), "161e")
    _both_ways(A.bcd(0x99), "0d99")
    _both_ways(A.float32(1.5), "173fc00000")
    _both_ways(A.float64(-2.25), "18c002000000000000")
    _both_ways(A.dont_care(), "ff")


def test_strings_and_octets_known_answers():
    _both_ways(A.octet_string(_h("0100010800ff")), "09060100010800ff")
    _both_ways(A.visible_string(b"ABC"), "0a03414243")
    _both_ways(A.utf8_string(b"\xc3\xa9"), "0c02c3a9")
    _both_ways(A.octet_string(b""), "0900")
    _both_ways(A.bit_string(10, b"\xff\xc0"), "040affc0")
    _both_ways(A.bit_string(0, b""), "0400")
    _both_ways(A.date_time(_h("07e70b0e02160d1400000000")), "1907e70b0e02160d1400000000")
    _both_ways(A.date(_h("07e70b0e02")), "1a07e70b0e02")
    _both_ways(A.time(_h("160d1400")), "1b160d1400")


def test_long_octet_string_uses_long_form_length():
    body = bytes(range(200))
    encoded = A.encode(A.octet_string(body))
    assert encoded[:3] == _h("0981c8")
    assert A.decode_all(encoded) == (A.OCTET_STRING, body)
    big = b"\x55" * 300
    assert A.encode(A.octet_string(big))[:4] == _h("0982012c")


def test_blue_book_scaler_unit_and_capture_object():
    # Register scaler_unit {scaler -3, unit 30 = Wh} (Blue Book 4.3.2)
    _both_ways(A.structure([A.integer(-3), A.enum(30)]), "02020ffd161e")
    # Profile Generic capture object {class 8, clock LN, attribute 2, data index 0}
    _both_ways(A.structure([A.long_unsigned(8), A.octet_string(_h("0000010000ff")),
                            A.integer(2), A.long_unsigned(0)]),
               "0204120008090600000100" + "00ff0f02120000")


def test_array_and_nested_structure():
    _both_ways(A.array([A.unsigned(1), A.unsigned(2)]), "01021101" + "1102")
    _both_ways(A.array([]), "0100")
    _both_ways(A.structure([A.array([A.structure([])])]), "0201010102" + "00")


def test_compact_array_of_simple_type():
    value = A.compact_array(A.LONG_UNSIGNED, [A.long_unsigned(1), A.long_unsigned(2),
                                              A.long_unsigned(3)])
    _both_ways(value, "131206000100020003")


def test_compact_array_gb_half_hourly_layout():
    # GBCS ECS22b: compact-array of {uint32 timestamp, uint32 value}
    desc = (A.STRUCTURE, [A.DOUBLE_LONG_UNSIGNED, A.DOUBLE_LONG_UNSIGNED])
    rows = [A.structure([A.double_long_unsigned(0x5F5E1000 + 1800 * i),
                         A.double_long_unsigned(i)]) for i in range(2)]
    _both_ways(A.compact_array(desc, rows),
               "1302020606" + "10" + "5f5e100000000000" + "5f5e170800000001")
    # a partial last row, and a member out of range, are errors with offsets
    assert _decode_error(_h("1302020606" + "0c" + "5f5e100000000000" + "5f5e1708")).offset == 18
    bad = rows + [A.structure([A.double_long_unsigned(1), A.double_long_unsigned(-1)])]
    assert _encode_error(A.compact_array(desc, bad)).offset == 5 + 16 + 4
    mismatched = rows + [A.structure([A.double_long_unsigned(1), A.long_unsigned(1)])]
    _encode_error(A.compact_array(desc, mismatched))


def test_compact_array_with_array_description_and_strings():
    desc = (A.ARRAY, 2, A.UNSIGNED)
    value = A.compact_array(desc, [A.array([A.unsigned(1), A.unsigned(2)]),
                                   A.array([A.unsigned(3), A.unsigned(4)])])
    _both_ways(value, "1301000211" + "04" + "01020304")
    strings = A.compact_array(A.OCTET_STRING, [A.octet_string(b"a"), A.octet_string(b"")])
    _both_ways(strings, "1309" + "03" + "016100")
    empty = A.compact_array(A.NULL_DATA, [])
    _both_ways(empty, "130000")


def test_raw_is_copied_through():
    row = A.encode(A.structure([A.unsigned(7)]))
    assert A.encode(A.array([A.raw(row), A.raw(row)])) == _h("0102") + row + row


def test_length_codec():
    cases = ((0, "00"), (127, "7f"), (128, "8180"), (255, "81ff"), (256, "820100"),
             (65535, "82ffff"), (65536, "83010000"), (2 ** 24, "8401000000"),
             (2 ** 32 - 1, "84ffffffff"))
    for n, text in cases:
        assert A.encode_length(n) == _h(text), n
        assert A.decode_length(_h(text) + b"\xee", 0) == (n, len(text) // 2)
    assert A.decode_length(_h("998105"), 1) == (5, 3)  # non-minimal form accepted


def test_length_errors_have_offsets():
    for data, offset in ((b"", 0), (b"\x80", 0), (b"\x85\x00", 0), (b"\x82\x01", 0)):
        try:
            A.decode_length(data, 0)
        except AxdrError as e:
            assert e.offset == offset, (data, e.offset)
        else:
            raise AssertionError("accepted %r" % (data,))
    for bad in (-1, 2 ** 32):
        try:
            A.encode_length(bad)
        except AxdrError:
            pass
        else:
            raise AssertionError("encoded length %d" % bad)


def test_boolean_any_non_zero_is_true():
    assert A.decode_all(b"\x03\xff") == (A.BOOLEAN, True)
    assert A.decode_all(b"\x03\x02") == (A.BOOLEAN, True)


def test_bit_string_unused_bits_cleared_on_decode():
    assert A.decode_all(_h("0403ff")) == (A.BIT_STRING, (3, b"\xe0"))


def test_decode_at_offset_returns_next_offset():
    data = b"\xaa\xbb" + _h("0600000005") + b"\xcc"
    assert A.decode(data, 2) == ((A.DOUBLE_LONG_UNSIGNED, 5), 7)


def test_encode_into_appends():
    out = bytearray(b"\xc4\x01")
    A.encode_into(out, A.unsigned(9))
    assert bytes(out) == _h("c4011109")


def test_decode_errors_carry_offsets():
    cases = (
        (b"", 0),                       # no tag
        (b"\x07", 0),                   # tag 7 is not in the Data CHOICE
        (_h("060000"), 1),              # truncated double-long-unsigned
        (_h("0202110111"), 5),          # second element's value missing
        (_h("02021101"), 4),            # second element missing
        (_h("09056162"), 2),            # octet-string shorter than its length
        (_h("110100"), 2),              # trailing byte
        (_h("01051101"), 2),            # 5 elements cannot fit in 2 bytes
        (_h("1313"), 1),                # compact-array cannot describe compact-array
        (_h("1300" + "0100"), 3),       # zero-size elements cannot be counted
        (_h("1312" + "03000100"), 5),   # partial long-unsigned in the contents
        (_h("1301000300" + "00"), 1),   # array of 3 zero-size elements described
        (_h("0985"), 1),                # bad length prefix
    )
    for data, offset in cases:
        e = _decode_error(data)
        assert e.offset == offset, (data, e.offset, e.reason)
        assert str(e).startswith("axdr: offset %d: " % offset), str(e)


def test_nesting_is_bounded():
    deepest = A.null_data()
    for _ in range(A.MAX_DEPTH):
        deepest = A.array([deepest])
    encoded = A.encode(deepest)
    assert A.decode_all(encoded) == deepest
    assert "nesting" in _decode_error(b"\x01\x01" + encoded).reason
    assert "nesting" in _encode_error(A.array([deepest])).reason
    hostile = b"\x01\x01" * 1000 + b"\x00"
    assert _decode_error(hostile).offset == 2 * A.MAX_DEPTH


def test_integer_ranges_checked_on_encode():
    # MicroPython's struct would wrap these silently: the codec must refuse them.
    ranges = ((A.INTEGER, -128, 127), (A.LONG, -32768, 32767), (A.UNSIGNED, 0, 255),
              (A.LONG_UNSIGNED, 0, 65535), (A.DOUBLE_LONG, -2 ** 31, 2 ** 31 - 1),
              (A.DOUBLE_LONG_UNSIGNED, 0, 2 ** 32 - 1), (A.LONG64, -2 ** 63, 2 ** 63 - 1),
              (A.LONG64_UNSIGNED, 0, 2 ** 64 - 1), (A.ENUM, 0, 255), (A.BCD, 0, 255))
    for tag, lo, hi in ranges:
        assert A.decode_all(A.encode((tag, lo))) == (tag, lo)
        assert A.decode_all(A.encode((tag, hi))) == (tag, hi)
        assert _encode_error((tag, lo - 1)).offset == 0
        assert _encode_error((tag, hi + 1)).offset == 0
        _encode_error((tag, True))
        _encode_error((tag, 1.0))
        _encode_error((tag, None))


def test_encode_errors():
    bad_values = (
        (A.BOOLEAN, 1), (A.OCTET_STRING, "text"), (A.DATE_TIME, b"\x00" * 11),
        (A.DATE, b"\x00" * 6), (A.TIME, b""), (A.BIT_STRING, (3, b"\xff")),
        (A.BIT_STRING, (9, b"\x00")), (A.NULL_DATA, 0), (7, None), ("x", None),
        None, (1, 2, 3), (A.FLOAT32, 1e39), (A.FLOAT64, "1"), (A.ARRAY, None),
        (A.COMPACT_ARRAY, (A.UNSIGNED, [A.long(1)])),
        (A.COMPACT_ARRAY, (A.NULL_DATA, [A.null_data()])),
        (A.COMPACT_ARRAY, ((A.ARRAY, 2, A.UNSIGNED), [A.array([A.unsigned(1)])])),
        (A.COMPACT_ARRAY, (A.COMPACT_ARRAY, [])),
        (A.RAW, b""),
    )
    for value in bad_values:
        _encode_error(value)
    nested = _encode_error(A.structure([A.unsigned(1), A.long(40000)]))
    assert nested.offset == 4, nested.offset


def test_float32_special_values():
    inf = float("inf")
    assert A.encode(A.float32(inf)) == _h("177f800000")
    assert A.decode_all(_h("17ff800000")) == (A.FLOAT32, -inf)
    nan = A.decode_all(_h("177fc00000"))[1]
    assert nan != nan
    assert A.encode(A.float32(3.4028234663852886e38)) == _h("177f7fffff")


def test_type_names_cover_every_tag():
    for tag in (0, 1, 2, 3, 4, 5, 6, 9, 10, 12, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                24, 25, 26, 27, 255):
        assert tag in A.TYPE_NAMES


def test_profile_rows_that_change_layout_decode_exactly():
    # The decoder reuses the first row's layout while tag/length bytes repeat; rows
    # that differ, and a truncated last row, must still decode (or fail) exactly.
    stamp = _h("07e70b0e02160d1400000000")
    rows = [
        A.structure([A.octet_string(stamp), A.double_long_unsigned(1), A.unsigned(0)]),
        A.structure([A.octet_string(stamp), A.double_long_unsigned(2), A.unsigned(1)]),
        A.structure([A.octet_string(b"abc"), A.double_long_unsigned(3), A.unsigned(2)]),
        A.structure([A.octet_string(stamp), A.double_long(-4), A.unsigned(3)]),
        A.structure([A.octet_string(stamp), A.double_long_unsigned(5)]),
        A.structure([A.octet_string(stamp), A.double_long_unsigned(6), A.boolean(True)]),
        A.structure([A.octet_string(stamp), A.double_long_unsigned(7), A.unsigned(4)]),
    ]
    encoded = A.encode(A.array(rows))
    assert A.decode_all(encoded) == A.array(rows)
    e = _decode_error(encoded[:-1])
    assert e.offset == len(encoded) - 1, e.offset
    # a later row with a non-minimal string length (0x81 0x0c) is the same value
    first = A.encode(rows[0])
    second = _h("0203" + "09810c") + stamp + _h("0600000001" + "1100")
    assert A.decode_all(_h("0102") + first + second) == A.array([rows[0], rows[0]])
