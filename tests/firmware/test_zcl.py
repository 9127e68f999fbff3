# The firmware ZCL codec: types, header, general commands and the Smart Energy commands the
# GSME serves, on frames taken from RTDS 4.5.0 (decrypted where RTDS encrypts them).

from binascii import unhexlify

from firmware.zcl import frame as Z
from firmware.zcl import se
from firmware.zcl import types as T


def raises(fn, *args):
    try:
        fn(*args)
    except T.ZclError as e:
        return e
    assert False, "no ZclError"


def test_integers_are_little_endian_and_range_checked():
    assert T.write(T.UINT24, 1000) == b"\xe8\x03\x00"
    assert T.read(T.UINT48, b"\x39\x30\x00\x00\x00\x00", 0) == (12345, 6)
    assert T.write(T.INT32, -1) == b"\xff\xff\xff\xff"
    assert T.read(T.INT32, b"\xff\xff\xff\xff", 0) == (-1, 4)
    assert T.read(T.INT32, b"\x00\x00\x00\x80", 0) == (-0x80000000, 4)
    assert raises(T.write, T.UINT8, 256).offset is None
    raises(T.write, T.INT32, 0x80000000)
    raises(T.write, T.UINT16, -1)
    assert raises(T.read, T.UINT32, b"\x01\x02", 0).offset == 0


def test_strings():
    assert T.write(T.OCTET_STRING, b"abc") == b"\x03abc"
    assert T.read(T.OCTET_STRING, b"\x03abcd", 0) == (b"abc", 4)
    assert T.read(T.OCTET_STRING, b"\xff", 0) == (None, 1)
    assert raises(T.read, T.OCTET_STRING, b"\x05ab", 0).offset == 0
    raises(T.write, T.OCTET_STRING, b"x" * 255)


def test_unknown_type_refused():
    assert raises(T.read, 0x38, b"\x00\x00", 0).offset == 0   # semi-precision float


def test_header():
    frame = Z.decode(unhexlify("180001aabb"))
    assert (frame.frame_control, frame.tsn, frame.command_id, frame.payload) == \
        (0x18, 0, 1, b"\xaa\xbb")
    assert frame.server_to_client and not frame.cluster_specific
    assert frame.encode() == unhexlify("180001aabb")
    maker = Z.ZclFrame(0x05, 9, 0x42, b"", manufacturer_code=0x1234)
    assert maker.encode() == unhexlify("0534120942")
    assert Z.decode(maker.encode()).manufacturer_code == 0x1234
    assert raises(Z.decode, b"\x20\x00\x00").offset == 0          # reserved bit
    assert raises(Z.decode, b"\x03\x00\x00").offset == 0          # reserved frame type
    assert raises(Z.decode, b"\x01\x00").offset == 1
    raises(Z.encode_header, 0x04, 0, 0, None)                     # code missing


def test_read_attributes_rtds():
    payload = unhexlify("0203010300030000")                      # GCS13a command
    assert Z.decode_read_attributes(payload) == [0x0302, 0x0301, 0x0300, 0x0000]
    assert Z.encode_read_attributes([0x0302, 0x0301, 0x0300, 0x0000]) == payload
    assert raises(Z.decode_read_attributes, b"\x02\x03\x01").offset == 2


def test_read_attributes_response_rtds():
    # GCS13a SUCCESS plaintext and the ERROR one (0x0302 fails with 0xC0)
    ok = unhexlify("02030022e8030001030022010000000300300100000025393000000000")
    records = Z.decode_read_attributes_response(ok)
    assert records == [(0x0302, 0, 0x22, 1000), (0x0301, 0, 0x22, 1), (0x0300, 0, 0x30, 1),
                       (0x0000, 0, 0x25, 12345)]
    assert Z.encode_read_attributes_response(records) == ok
    error = unhexlify("0203c001030022010000000300300100000025393000000000")
    records = Z.decode_read_attributes_response(error)
    assert records[0] == (0x0302, 0xC0, None, None)
    assert Z.encode_read_attributes_response(records) == error
    assert raises(Z.decode_read_attributes_response, ok[:-1]).offset == 23
    assert raises(Z.decode_read_attributes_response, unhexlify("00000038")).offset == 3


def test_default_response():
    assert Z.decode_default_response(unhexlify("088b")) == (8, 0x8B)     # GCS17 NOT_FOUND
    assert Z.encode_default_response(0x0B, 0xC0) == unhexlify("0bc0")
    raises(Z.decode_default_response, b"\x08")


def test_metering_commands_rtds():
    change = unhexlify("00000000804a371c00000000000000000001")      # GCS32
    fields = se.decode(se.METERING, False, se.CHANGE_SUPPLY, change)
    assert fields == {"provider_id": 0, "issuer_event_id": 473385600, "request_date_time": 0,
                      "implementation_date_time": 0, "proposed_supply_status": 0,
                      "supply_control_bits": 1}
    assert se.encode(se.METERING, False, se.CHANGE_SUPPLY, fields) == change
    status = unhexlify("00000000804a371c0000000001")                # GCS39 response
    assert se.decode(se.METERING, True, se.SUPPLY_STATUS_RESPONSE, status)["supply_status"] == 1
    request = unhexlify("000080a7341c006100")                       # GCS17
    fields = se.decode(se.METERING, False, se.GET_SAMPLED_DATA, request)
    assert fields["earliest_sample_time"] == 473212800 and fields["number_of_samples"] == 97
    assert se.encode(se.METERING, False, se.GET_SAMPLED_DATA, fields) == request


def test_sampled_data_response():
    fields = {"sample_id": 0, "sample_start_time": 473212800, "sample_type": 0,
              "sample_request_interval": 1800, "number_of_samples": 3,
              "samples": [1, 0x123456, 0xFFFFFF]}
    data = se.encode(se.METERING, True, se.GET_SAMPLED_DATA_RESPONSE, fields)
    assert data[:11] == unhexlify("000080a7341c0008070300")
    assert data[11:] == unhexlify("010000563412ffffff")
    assert se.decode(se.METERING, True, se.GET_SAMPLED_DATA_RESPONSE, data) == fields
    assert raises(se.decode, se.METERING, True, se.GET_SAMPLED_DATA_RESPONSE, data[:-1]).offset == 17
    fields["number_of_samples"] = 4
    raises(se.encode, se.METERING, True, se.GET_SAMPLED_DATA_RESPONSE, fields)


def test_prepayment_commands_rtds():
    top_up = unhexlify("00143733393530303637383837313035313738363035")     # CS01b
    fields = se.decode(se.PREPAYMENT, False, se.CONSUMER_TOP_UP, top_up)
    assert fields == {"originating_device": 0, "topup_code": b"73950067887105178605"}
    assert se.encode(se.PREPAYMENT, False, se.CONSUMER_TOP_UP, fields) == top_up
    ok = unhexlify("00d012130000c0aa7f01")
    fields = se.decode(se.PREPAYMENT, True, se.CONSUMER_TOP_UP_RESPONSE, ok)
    assert fields["top_up_value"] == 1250000 and fields["credit_remaining"] == 25144000
    refused = unhexlify("01ffffffff00ffffffff")
    fields = se.decode(se.PREPAYMENT, True, se.CONSUMER_TOP_UP_RESPONSE, refused)
    assert (fields["result_type"], fields["top_up_value"]) == (1, -1)
    assert se.encode(se.PREPAYMENT, True, se.CONSUMER_TOP_UP_RESPONSE, fields) == refused


def test_se_refusals():
    raises(se.decode, se.METERING, False, 0x99, b"")               # unknown command
    assert raises(se.decode, se.METERING, False, se.CHANGE_SUPPLY,
                  unhexlify("00000000804a371c000000000000000000010a")).offset == 18
    raises(se.encode, se.METERING, False, se.CHANGE_SUPPLY, {"provider_id": 0})
