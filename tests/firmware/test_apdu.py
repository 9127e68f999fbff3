"""firmware/dlms/apdu.py: known-answer vectors, round trips, strict errors with offsets.

Plain functions and bare asserts so tests/firmware/mp_runner.py runs them on MicroPython.
Vectors marked [dlms-cosem] come from pwitab/dlms-cosem tests/test_xdlms/*.py (u9n
mirror, captured from real meters); [GB] from the DLMS UA 1000-2 Green Book examples.
"""

from firmware.dlms import apdu, axdr
from firmware.dlms.apdu import (
    ActionRequestNormal, ActionResponseNormal, ApduError, AttributeDescriptor,
    DataNotification, DescriptorWithSelection, ExceptionResponse, GetDataResult,
    GetRequestNext, GetRequestNormal, GetRequestWithList, GetResponseNormal,
    GetResponseWithDatablock, GetResponseWithList, MethodDescriptor, SelectiveAccess,
    SetRequestNormal, SetRequestWithDatablock, SetRequestWithFirstDatablock,
    SetRequestWithList, SetRequestWithListAndFirstDatablock, SetResponseDatablock,
    SetResponseLastDatablock, SetResponseLastDatablockWithList, SetResponseNormal,
    SetResponseWithList, decode_apdu,
)

CLOCK = b"\x00\x00\x01\x00\x00\xff"
IMPORT_ENERGY = b"\x01\x00\x01\x08\x00\xff"


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


def _error(buf):
    try:
        decode_apdu(buf)
    except ApduError as e:
        return e
    raise AssertionError("no ApduError for %s" % buf.hex())


def _check_known(hexstr, expected):
    raw = h(hexstr)
    assert decode_apdu(raw) == expected
    assert expected.encode() == raw


# --- invoke-id-and-priority

def test_invoke_id_and_priority_bits():
    b = apdu.invoke_id_and_priority(1, confirmed=True, high_priority=True)
    assert b == 0xC1
    assert apdu.invoke_id(b) == 1 and apdu.is_confirmed(b) and apdu.is_high_priority(b)
    b = apdu.invoke_id_and_priority(15, confirmed=False, high_priority=False)
    assert b == 0x0F and not apdu.is_confirmed(b) and not apdu.is_high_priority(b)
    assert apdu.invoke_id_and_priority(0, confirmed=True) == 0x40


def test_invoke_id_out_of_range():
    try:
        apdu.invoke_id_and_priority(16)
    except ValueError:
        return
    raise AssertionError("invoke-id 16 accepted")


def test_long_invoke_id_and_priority_bits():
    v = apdu.long_invoke_id_and_priority(0x0001DB, confirmed=True, high_priority=True,
                                         self_descriptive=True, break_on_error=True)
    assert v == 0xF00001DB
    assert apdu.long_invoke_id_and_priority(5) == 5


# --- known answers

def test_get_request_normal_known_answer():
    # [dlms-cosem] test_get.py: Data 0.0.43.1.0.255 attribute 2, invoke 1, confirmed, high
    _check_known("C0 01 C1 0001 00002B0100FF 02 00",
                 GetRequestNormal(0xC1, AttributeDescriptor(1, h("00002B0100FF"), 2)))


def test_get_request_next_known_answer():
    _check_known("C0 02 C1 00000001", GetRequestNext(0xC1, 1))  # [dlms-cosem]


def test_get_request_with_list_known_answer():
    # [dlms-cosem] test_get.py: 0.0.42.0.0.255/2 (Data) and the clock 0.0.1.0.0.255/2
    _check_known(
        "C0 03 C1 02 0001 00002A0000FF 02 00 0008 0000010000FF 02 00",
        GetRequestWithList(0xC1, [
            DescriptorWithSelection(AttributeDescriptor(1, h("00002A0000FF"), 2)),
            DescriptorWithSelection(AttributeDescriptor(8, CLOCK, 2)),
        ]))


def test_get_response_normal_known_answer():
    # [dlms-cosem] double-long-unsigned 5009
    _check_known("C4 01 C1 00 06 00001391",
                 GetResponseNormal(0xC1, GetDataResult.of_data((axdr.DOUBLE_LONG_UNSIGNED, 5009))))


def test_get_response_normal_error_known_answer():
    _check_known("C4 01 C1 01 01", GetResponseNormal(0xC1, GetDataResult.of_error(1)))


def test_set_request_normal_known_answer():
    # [dlms-cosem] test_set.py: set the clock time (octet-string of 12 bytes)
    _check_known(
        "C1 01 C1 0008 0000010000FF 02 00 09 0C 07E50118FF0E303950FFC400",
        SetRequestNormal(0xC1, AttributeDescriptor(8, CLOCK, 2),
                         (axdr.OCTET_STRING, h("07E50118FF0E303950FFC400"))))


def test_set_request_with_first_datablock_known_answer():
    # [GB] Table 137 "Writing the value of a single attribute with block transfer"
    # (as used in dlms-cosem test_set.py): first block of 21 raw bytes, not last
    _check_known(
        "C1 02 C1 0001 0000800000FF 02 00 00 00000001 15"
        "093201020304050607080910111213141516171819",
        SetRequestWithFirstDatablock(
            0xC1, AttributeDescriptor(1, h("0000800000FF"), 2), False, 1,
            h("093201020304050607080910111213141516171819")))


def test_set_responses_known_answers():
    _check_known("C5 01 C1 00", SetResponseNormal(0xC1, 0))  # [dlms-cosem]
    _check_known("C5 02 C1 00000001", SetResponseDatablock(0xC1, 1))  # [dlms-cosem]
    _check_known("C5 03 C1 00 00000002", SetResponseLastDatablock(0xC1, 0, 2))  # [dlms-cosem]


def test_action_request_normal_known_answer():
    # [dlms-cosem] test_action.py: Association LN reply_to_HLS_authentication with a
    # 17-byte octet-string parameter
    params = (axdr.OCTET_STRING, h("1000001A90E6D2221FA2FD85EED61ACC22"))
    _check_known("C3 01 C0 000F 0000280000FF 01 01 09 11 1000001A90E6D2221FA2FD85EED61ACC22",
                 ActionRequestNormal(0xC0, MethodDescriptor(15, h("0000280000FF"), 1), params))
    _check_known("C3 01 C0 000F 0000280000FF 01 00",
                 ActionRequestNormal(0xC0, MethodDescriptor(15, h("0000280000FF"), 1)))


def test_action_response_normal_known_answers():
    # [dlms-cosem] test_action.py: plain success, success with data, success with error
    _check_known("C7 01 C0 00 00", ActionResponseNormal(0xC0, 0))
    _check_known("C7 01 C0 00 01 00 09 11 1000001AFDE8857B728A3499106AA665D1",
                 ActionResponseNormal(0xC0, 0, GetDataResult.of_data(
                     (axdr.OCTET_STRING, h("1000001AFDE8857B728A3499106AA665D1")))))
    _check_known("C7 01 C0 00 01 01 FA",
                 ActionResponseNormal(0xC0, 0, GetDataResult.of_error(250)))


def test_data_notification_known_answer():
    # [dlms-cosem] test_data_notification.py: no date-time, body an octet-string
    raw = h("0F 000001DB 00 0922125A8591360000000049000000110000000A5A8513D014800000000D0000000A0100")
    dn = decode_apdu(raw)
    assert dn.long_invoke_id_and_priority == 0x1DB
    assert dn.date_time == b""
    assert dn.notification_body[0] == axdr.OCTET_STRING and len(dn.notification_body[1]) == 34
    assert dn.encode() == raw


def test_data_notification_with_date_time():
    dt = h("07E4060A030C1E00FF800000")
    n = DataNotification(apdu.long_invoke_id_and_priority(7), dt, (axdr.STRUCTURE, [(axdr.UNSIGNED, 1)]))
    raw = n.encode()
    assert raw == h("0F 00000007 0C") + dt + h("02 01 11 01")
    assert decode_apdu(raw) == n


def test_exception_response_known_answers():
    # [GB] ExceptionResponse: D8 state-error service-error
    _check_known("D8 01 02", ExceptionResponse(1, 2))
    _check_known("D8 02 01", ExceptionResponse(2, 1))
    _check_known("D8 01 06 00000010", ExceptionResponse(1, 6, 16))


def test_get_response_with_datablock_known_answer():
    # [dlms-cosem] test_get.py shape: block 1, not last, raw-data with a 2-byte length
    raw_data = bytes(range(256)) + bytes(range(14))
    raw = h("C4 02 C1 00 00000001 00 82010E") + raw_data
    _check_known(raw.hex(), GetResponseWithDatablock(0xC1, False, 1, raw_data=raw_data))
    _check_known("C4 02 C1 01 00000003 01 0E",
                 GetResponseWithDatablock(0xC1, True, 3, data_access_result=14))


# --- round trips of the variants without a published vector

def test_round_trips():
    sel = SelectiveAccess(2, (axdr.STRUCTURE, [(axdr.DOUBLE_LONG_UNSIGNED, 1),
                                               (axdr.DOUBLE_LONG_UNSIGNED, 48),
                                               (axdr.LONG_UNSIGNED, 1),
                                               (axdr.LONG_UNSIGNED, 0)]))
    desc = AttributeDescriptor(7, h("0100630100FF"), 2)
    samples = [
        GetRequestNormal(0x81, desc, sel),
        GetRequestWithList(0x42, [DescriptorWithSelection(desc, sel),
                                  DescriptorWithSelection(AttributeDescriptor(3, IMPORT_ENERGY, -128))]),
        GetResponseWithList(0xC1, [GetDataResult.of_data((axdr.NULL_DATA, None)),
                                   GetDataResult.of_error(4)]),
        SetRequestNormal(0xC1, desc, (axdr.BOOLEAN, True), sel),
        SetRequestWithFirstDatablock(0xC1, desc, True, 1, b"", sel),
        SetRequestWithDatablock(0xC2, True, 0xFFFFFFFF, b"\x01\x02"),
        SetRequestWithList(0xC3, [DescriptorWithSelection(desc)],
                           [(axdr.LONG, -5), (axdr.FLOAT64, 1.5)]),
        SetRequestWithListAndFirstDatablock(0xC4, [DescriptorWithSelection(desc, sel)],
                                            False, 1, b"\x00" * 200),
        SetResponseLastDatablockWithList(0xC1, [0, 3, 250], 9),
        SetResponseWithList(0xC1, []),
        ActionResponseNormal(0xC1, 11, GetDataResult.of_data((axdr.ARRAY, []))),
    ]
    for s in samples:
        raw = s.encode()
        back = decode_apdu(raw)
        assert back == s, (s, back)
        assert back.encode() == raw


def test_get_request_normal_with_selective_access_bytes():
    # Profile generic by entry (selector 2): entries 1..48, all columns
    sel = SelectiveAccess(2, (axdr.STRUCTURE, [(axdr.DOUBLE_LONG_UNSIGNED, 1),
                                               (axdr.DOUBLE_LONG_UNSIGNED, 48),
                                               (axdr.LONG_UNSIGNED, 1),
                                               (axdr.LONG_UNSIGNED, 0)]))
    req = GetRequestNormal(0xC1, AttributeDescriptor(7, h("0100630100FF"), 2), sel)
    assert req.encode() == h("C0 01 C1 0007 0100630100FF 02 01 02"
                             "02 04 06 00000001 06 00000030 12 0001 12 0000")


def test_fields_are_plain():
    req = GetRequestNormal(0xC1, AttributeDescriptor(8, CLOCK, 2))
    assert req.fields() == {
        "invoke_id_and_priority": 0xC1,
        "cosem_attribute_descriptor": {"class_id": 8, "instance_id": CLOCK, "attribute_id": 2},
        "access_selection": None,
    }


# --- strict decoding: every error is an ApduError with the offset

def test_empty_and_unknown_tag():
    assert _error(b"").offset == 0
    e = _error(b"\xc2\x01")
    assert e.offset == 0 and "tag" in e.reason


def test_unknown_choice():
    e = _error(h("C0 04 C1 00000001"))
    assert e.offset == 1
    e = _error(h("C3 02 C1"))  # action-request-next-pblock: not supported
    assert e.offset == 1


def test_truncated_descriptor():
    e = _error(h("C0 01 C1 0008 000001"))
    assert e.offset == 5 and "instance-id" in e.reason


def test_trailing_bytes():
    e = _error(h("C0 02 C1 00000001 00"))
    assert e.offset == 7 and "trailing" in e.reason


def test_bad_optional_flag():
    e = _error(h("C0 01 C1 0008 0000010000FF 02 02"))
    assert e.offset == 12


def test_unknown_get_data_result_choice():
    e = _error(h("C4 01 C1 02 00"))
    assert e.offset == 3


def test_bad_embedded_data_offset_is_absolute():
    # tag 0x07 is not a Data type: the A-XDR error offset points into the APDU
    e = _error(h("C4 01 C1 00 07 00"))
    assert e.offset == 4


def test_list_count_bounded_by_buffer():
    e = _error(h("C0 03 C1 82FFFF 0008"))
    assert e.offset == 3 and "count" in e.reason


def test_raw_data_length_bounded_by_buffer():
    e = _error(h("C4 02 C1 00 00000001 00 81 80 0102"))
    assert e.offset == 9


def test_boolean_must_be_0_or_1():
    e = _error(h("C4 02 C1 02 00000001 00 00"))
    assert e.offset == 3


def test_exception_response_bad_values():
    assert _error(h("D8 03 01")).offset == 1
    assert _error(h("D8 01 07")).offset == 2
    assert _error(h("D8 01 06 0000")).offset == 3


def test_data_notification_bad_date_time_length():
    e = _error(h("0F 00000001 05 0102030405 00"))
    assert e.offset == 5


def test_every_truncation_of_valid_apdus_raises_apdu_error():
    sel = SelectiveAccess(1, (axdr.STRUCTURE, [(axdr.OCTET_STRING, b"\x01" * 3)]))
    desc = AttributeDescriptor(7, h("0100630100FF"), 2)
    for s in (GetRequestNormal(0xC1, desc, sel),
              SetRequestWithList(0xC1, [DescriptorWithSelection(desc, sel)], [(axdr.UNSIGNED, 3)]),
              GetResponseWithList(0xC1, [GetDataResult.of_data((axdr.LONG, 1))]),
              DataNotification(1, b"\x00" * 12, (axdr.NULL_DATA, None)),
              ActionResponseNormal(0xC1, 0, GetDataResult.of_error(3))):
        raw = s.encode()
        for n in range(len(raw)):
            e = _error(raw[:n])
            assert 0 <= e.offset <= n, (raw[:n], e.offset)


def test_garbage_never_raises_anything_but_apdu_error():
    # deterministic pseudo-random bytes behind every known tag/choice
    seed = 12345
    prefixes = [b"\xc0\x01", b"\xc0\x02", b"\xc0\x03", b"\xc4\x01", b"\xc4\x02", b"\xc4\x03",
                b"\xc1\x01", b"\xc1\x02", b"\xc1\x03", b"\xc1\x04", b"\xc1\x05", b"\xc5\x01",
                b"\xc5\x04", b"\xc5\x05", b"\xc3\x01", b"\xc7\x01", b"\xd8", b"\x0f"]
    for i in range(600):
        body = bytearray()
        for _ in range(i % 40):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            body.append((seed >> 16) & 0xFF)
        buf = prefixes[i % len(prefixes)] + bytes(body)
        try:
            decode_apdu(buf)
        except ApduError as e:
            assert 0 <= e.offset <= len(buf)


# --- encoding range checks

def test_encode_range_checks():
    bad = [
        GetRequestNormal(256, AttributeDescriptor(8, CLOCK, 2)),
        GetRequestNormal(0xC1, AttributeDescriptor(0x10000, CLOCK, 2)),
        GetRequestNormal(0xC1, AttributeDescriptor(8, CLOCK, 128)),
        GetRequestNormal(0xC1, AttributeDescriptor(8, b"\x00", 2)),
        GetRequestNext(0xC1, 0x100000000),
        GetResponseWithDatablock(0xC1, True, 1),
        GetResponseNormal(0xC1, GetDataResult()),
        DataNotification(1, b"\x00" * 5, (axdr.NULL_DATA, None)),
        ExceptionResponse(1, 2, 5),
    ]
    for apdu_obj in bad:
        try:
            apdu_obj.encode()
        except ValueError:
            continue
        raise AssertionError("encoded out-of-range %r" % apdu_obj)


def test_encode_into_appends_behind_a_header():
    out = bytearray(b"\xe6\xe7\x00")  # an LLC header already in the frame buffer
    resp = SetResponseNormal(0xC1, 0)
    resp.encode_into(out)
    assert bytes(out) == b"\xe6\xe7\x00" + resp.encode()


def test_decode_accepts_bytearray_and_memoryview():
    raw = GetRequestNext(0xC1, 7).encode()
    assert decode_apdu(bytearray(raw)) == GetRequestNext(0xC1, 7)
    assert decode_apdu(memoryview(raw)) == GetRequestNext(0xC1, 7)
