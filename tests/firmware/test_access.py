# DLMS ACCESS service codec (Green Book 9.3, D9/DA) on known answers from RTDS 4.5.0 and on
# malformed input. Plain asserts: runs under MicroPython too (tests/firmware/mp_runner.py).
# The construct twin and the walk over every RTDS payload are in
# tests/emulator/test_access_codecs.py.

from binascii import unhexlify

from firmware.dlms import access as A
from firmware.dlms import axdr
from firmware.dlms.apdu import AttributeDescriptor, MethodDescriptor, SelectiveAccess

# RTDS ECS42_7.1_SUCCESS command and response payloads (counter 0x3E8)
ECS42_COMMAND = unhexlify("d9200003e8000103000900000a006aff0101120033")
ECS42_RESPONSE = unhexlify("da200003e800000100010300")
# RTDS ECS70_6.11_SUCCESS: set, two actions, two gets
ECS70_COMMAND = unhexlify(
    "d9200003e800050200080000010000ff090300080000010000ff050300080000010000ff0401000800"
    "00010000ff020100080000010000ff040516050203090cffffffffffffffffff8000ff090c07de0c1fff"
    "173b0a008000ff090c07df0101ff00000a008000ff0f000000")
ECS70_RESPONSE = unhexlify(
    "da200003e8000005000000090c07df0101ff000000008000ff11000502000300030001000100")
# RTDS ECS04b_1.5_ERROR response: success, hardware-fault, then other-reason (break-on-error)
ECS04B_ERROR_RESPONSE = unhexlify("da200003e9000003000000030300030103fa")
# RTDS CS01a top-up: counter 0x300000000, long-invoke-id 0x20000000
CS01A_COMMAND = unhexlify("d92000000000010300730000132800ff01010914"
                          "3733393436313434333332303430323137333135")
CLOCK = unhexlify("0000010000ff")


def _raises_access_error(buf):
    try:
        A.decode(buf)
    except A.AccessError as e:
        assert isinstance(e.offset, int) and 0 <= e.offset <= len(buf), (e.offset, len(buf))
        assert e.reason
        return e
    raise AssertionError("decoded %r" % (buf,))


def test_gbcs_long_invoke_id_is_0x20_and_the_counter_low_24_bits():
    assert A.gbcs_long_invoke_id(0x3E8) == 0x200003E8
    assert A.gbcs_long_invoke_id(0x300000000) == 0x20000000
    assert A.gbcs_long_invoke_id(0x1234567890) == 0x20567890


def test_ecs42_command_fields():
    request = A.decode(ECS42_COMMAND)
    assert isinstance(request, A.AccessRequest)
    assert request.long_invoke_id_and_priority == 0x200003E8
    assert request.date_time == b""
    assert request.specifications == [A.RequestSpec.action(9, unhexlify("00000a006aff"), 1)]
    assert request.data == [(axdr.LONG_UNSIGNED, 0x33)]
    assert request.encode() == ECS42_COMMAND


def test_ecs42_response_fields():
    response = A.decode(ECS42_RESPONSE)
    assert isinstance(response, A.AccessResponse)
    assert response.request_specifications is None
    assert response.data == [(axdr.NULL_DATA, None)]
    assert response.results == [A.ResponseSpec(A.ACTION, 0)]
    assert response.encode() == ECS42_RESPONSE


def test_ecs70_mixes_every_kind_in_order():
    request = A.decode(ECS70_COMMAND)
    kinds = [s.kind for s in request.specifications]
    assert kinds == [A.SET, A.ACTION, A.ACTION, A.GET, A.GET]
    assert request.specifications[0].descriptor == AttributeDescriptor(8, CLOCK, 9)
    assert request.specifications[1].descriptor == MethodDescriptor(8, CLOCK, 5)
    assert request.data[0] == (axdr.ENUM, 5)
    assert request.data[2] == (axdr.INTEGER, 0)
    assert request.data[3] == (axdr.NULL_DATA, None)
    response = A.decode(ECS70_RESPONSE)
    assert [r.kind for r in response.results] == [A.SET, A.ACTION, A.ACTION, A.GET, A.GET]
    assert response.data[:3] == [(axdr.NULL_DATA, None)] * 3
    assert response.data[3] == (axdr.OCTET_STRING, unhexlify("07df0101ff000000008000ff"))
    assert response.data[4] == (axdr.UNSIGNED, 0)
    assert request.encode() == ECS70_COMMAND and response.encode() == ECS70_RESPONSE


def test_error_response_results_and_the_top_up_token():
    response = A.decode(ECS04B_ERROR_RESPONSE)
    assert [r.result for r in response.results] == [0, 1, 250]
    request = A.decode(CS01A_COMMAND)
    assert request.long_invoke_id_and_priority == 0x20000000
    assert request.data == [(axdr.OCTET_STRING, b"73946144332040217315")]


def test_built_request_matches_the_rtds_bytes():
    spec = A.RequestSpec.action(9, unhexlify("00000a006aff"), 1)
    built = A.AccessRequest(A.gbcs_long_invoke_id(0x3E8), b"", [spec],
                            [(axdr.LONG_UNSIGNED, 0x33)]).encode()
    assert built == ECS42_COMMAND
    response = A.AccessResponse(0x200003E8, b"", [(axdr.NULL_DATA, None)],
                                [A.ResponseSpec(A.ACTION, 0)])
    assert response.encode() == ECS42_RESPONSE


def test_with_selection_kinds_date_time_and_echoed_specifications_round_trip():
    selection = SelectiveAccess(1, (axdr.STRUCTURE, [(axdr.UNSIGNED, 1)]))
    specs = [A.RequestSpec.get(7, unhexlify("0100630100ff"), 2, selection),
             A.RequestSpec.set(7, unhexlify("0100630100ff"), 4, selection),
             A.RequestSpec.get(3, unhexlify("0100010800ff"), 2)]
    date_time = unhexlify("07ea010104000000000000ff")
    request = A.AccessRequest(0x80FFFFFF, date_time, specs,
                              [(axdr.NULL_DATA, None), (axdr.DOUBLE_LONG_UNSIGNED, 9),
                               (axdr.NULL_DATA, None)])
    encoded = request.encode()
    assert encoded[5] == 12 and encoded[6:18] == date_time
    assert A.decode(encoded) == request
    assert [s.kind for s in A.decode(encoded).specifications] == [
        A.GET_WITH_SELECTION, A.SET_WITH_SELECTION, A.GET]
    response = A.AccessResponse(1, b"", [(axdr.BOOLEAN, True)], [A.ResponseSpec(A.GET, 0)],
                                request_specifications=specs)
    again = A.decode(response.encode())
    assert again == response and again.request_specifications == specs


def test_unchanged_values_keep_their_bytes_changed_ones_are_re_encoded():
    # BOOLEAN TRUE as FF (RTDS writes it so); A-XDR reads it as True
    raw = unhexlify("d920000001" "00" "01" "01" "0001" "000000000000" "01" "01" "0101" "03ff")
    request = A.decode(raw)
    assert request.data == [(axdr.ARRAY, [(axdr.BOOLEAN, True)])]
    assert request.encode() == raw
    request.data[0] = (axdr.ARRAY, [(axdr.BOOLEAN, False)])
    assert request.encode() == raw[:-1] + b"\x00"
    request.data[0] = (axdr.ARRAY, [(axdr.BOOLEAN, True)])
    assert request.encode() == raw           # equal again: its own bytes again


def test_fields_are_plain():
    fields = A.decode(ECS42_COMMAND).fields()
    assert fields["specifications"] == [{"kind": 3, "descriptor": {
        "class_id": 9, "instance_id": unhexlify("00000a006aff"), "method_id": 1},
        "access_selection": None}]
    assert fields["data"] == [(axdr.LONG_UNSIGNED, 0x33)]


def test_truncations_fail_with_an_offset_inside_the_apdu():
    for payload in (ECS42_COMMAND, ECS42_RESPONSE, ECS70_COMMAND, ECS70_RESPONSE):
        for cut in range(len(payload)):
            _raises_access_error(payload[:cut])


def test_bad_tags_and_choices_name_the_offset():
    e = _raises_access_error(b"\xc0" + ECS42_COMMAND[1:])
    assert e.offset == 0
    bad_spec = bytearray(ECS42_COMMAND)
    bad_spec[7] = 6                 # Access-Request-Specification choice 6 does not exist
    assert _raises_access_error(bytes(bad_spec)).offset == 7
    bad_result = bytearray(ECS42_RESPONSE)
    bad_result[10] = 4              # Access-Response-Specification choice 4 does not exist
    assert _raises_access_error(bytes(bad_result)).offset == 10
    bad_flag = bytearray(ECS42_RESPONSE)
    bad_flag[6] = 2                 # the OPTIONAL presence octet is 0 or 1
    assert _raises_access_error(bytes(bad_flag)).offset == 6
    assert _raises_access_error(ECS42_COMMAND + b"\x00").offset == len(ECS42_COMMAND)
    assert _raises_access_error(b"").offset == 0


def test_absurd_counts_are_refused_before_allocating():
    # 0x84 7FFFFFFF specifications in a 20-byte APDU
    absurd = unhexlify("d9200003e800847fffffff03000900000a006aff01")
    assert _raises_access_error(absurd).offset == 6
    absurd_data = unhexlify("d9200003e8000103000900000a006aff0183ffffff12")
    assert _raises_access_error(absurd_data).offset == 17
    bad_data = unhexlify("d9200003e8000103000900000a006aff0101ee")   # Data tag 0xEE
    assert _raises_access_error(bad_data).offset == 18


def test_encoding_checks_its_fields():
    spec = A.RequestSpec.action(9, unhexlify("00000a006aff"), 1)
    for bad in (A.AccessRequest(-1, b"", [spec], [(axdr.NULL_DATA, None)]),
                A.AccessRequest(1 << 32, b"", [spec], [(axdr.NULL_DATA, None)]),
                A.AccessRequest(1, b"", [A.RequestSpec(A.GET, spec.descriptor)],
                                [(axdr.NULL_DATA, None)]),
                A.AccessRequest(1, b"", [A.RequestSpec(9, spec.descriptor)], [])):
        try:
            bad.encode()
        except ValueError:
            continue
        raise AssertionError("encoded %r" % (bad,))
    try:
        A.AccessResponse(1, b"", [], [A.ResponseSpec(A.GET, 300)]).encode()
    except ValueError:
        pass
    else:
        raise AssertionError("result 300 encoded")
