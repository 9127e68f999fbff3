# The firmware GBZ codec on RTDS 4.5.0 payloads (commands, responses, encrypted components,
# from-date-time, multi-component, future-dated alert), malformed input, and encryption
# with a stand-in crypto. tests/emulator/test_gbz_codecs.py walks every RTDS GBZ payload.

from binascii import unhexlify

from firmware.gbcs import gbz
from firmware.zcl import frame as Z

try:
    from tests.firmware.test_gsme import CRYPTO
except ImportError:
    from test_gsme import CRYPTO

RTDS = {
    "GCS13a command": "010901010702000b0000000203010300030000",
    "GCS13a response": "01090103070200350000180001002e310000000091901c6bcfe6ceb6dce66f5ed7e4"
                       "3326950eada69ea8a4b33bf60ecf4b419fe4b34b5296381d9c7ce1",
    "GCS17 command": "010901010702000c010008000080a7341c006100",
    "GCS17 not found": "010901010702000508000b088b",
    "GCS32 command": "010901010702001501000b00000000804a371c00000000000000000001",
    "GCS39 response": "010901010702001009000c00000000804a371c0000000001",
    "CS01b command": "010901010705001901000400143733393530303637383837313035313738363035",
    "CS01b response": "010901010705000d09000300d012130000c0aa7f01",
    "GCS15d command": "010901110705000d1c0e6c0001000a00f9351c0a02",
    "GCS60a command": "0109020007020005000000000a01070500050001000100",
    "GCS01a alert": "0109018f66388188900e006b00000000000003ed07000906",
}


def raises(data):
    try:
        gbz.decode(data)
    except gbz.GbzError as e:
        return e
    assert False, "no GbzError"


def test_rtds_payloads_round_trip():
    for name in RTDS:
        data = unhexlify(RTDS[name])
        assert gbz.decode(data).encode() == data, name


def test_plain_component():
    payload = gbz.decode(unhexlify(RTDS["GCS13a command"]))
    assert not payload.is_alert and len(payload.components) == 1
    component = payload.components[0]
    assert component.cluster_id == 0x0702 and not component.encrypted
    frame = component.zcl_frame()
    assert frame.command_id == Z.READ_ATTRIBUTES
    assert Z.decode_read_attributes(frame.payload) == [0x0302, 0x0301, 0x0300, 0x0000]


def test_encrypted_component():
    component = gbz.decode(unhexlify(RTDS["GCS13a response"])).components[0]
    assert component.encrypted and component.additional_header == b"\x00\x00"
    assert component.frame == unhexlify("180001")
    assert component.encrypted_field[:5] == b"\x31\x00\x00\x00\x00"
    assert len(component.encrypted_field) == 46
    try:
        component.zcl_frame()
    except gbz.GbzError:
        return
    assert False, "an encrypted payload is not a ZCL frame"


def test_from_date_time_and_several_components():
    component = gbz.decode(unhexlify(RTDS["GCS15d command"])).components[0]
    assert component.from_date_time == 0x1C0E6C00
    assert component.zcl_frame().command_id == 0x0A
    payload = gbz.decode(unhexlify(RTDS["GCS60a command"]))
    assert [c.cluster_id for c in payload.components] == [0x0702, 0x0705]


def test_future_dated_alert():
    payload = gbz.decode(unhexlify(RTDS["GCS01a alert"]))
    assert payload.is_alert and payload.alert_code == 0x8F66
    assert payload.time_stamp == 0x38818890
    body = payload.future_dated
    assert (body.message_code, body.originator_counter, body.cluster_id, body.frame_control,
            body.command_id) == (0x006B, 0x3ED, 0x0700, 0x09, 0x06)


def test_alert_without_components():
    data = gbz.GbzPayload(alert_code=0x8F51, time_stamp=473385600).encode()
    assert data == unhexlify("0109008f511c374a80")
    payload = gbz.decode(data)
    assert payload.alert_code == 0x8F51 and payload.components == []


def test_last_flag_is_set_on_the_last_component_only():
    a = gbz.GbzComponent(0x0702, unhexlify("000000"))
    b = gbz.GbzComponent(0x0705, unhexlify("000001"))
    data = gbz.GbzPayload([a, b]).encode()
    assert data == unhexlify("010902000702000300000001070500030000" + "01")
    bad = bytearray(data)
    bad[3] = 0x01                     # first component claims to be the last
    assert raises(bytes(bad)).offset == 3


def test_malformed_payloads_raise_with_offsets():
    good = unhexlify(RTDS["GCS32 command"])
    assert raises(b"\x01").offset == 1
    assert raises(b"\x01\x0a\x01").offset == 0
    assert raises(good[:-1]).offset == 8                    # component runs short
    assert raises(good + b"\x00").offset == len(good)       # trailing byte
    assert raises(b"\x01\x09\x01\x41\x07\x02\x00\x00").offset == 3   # reserved control bit
    assert raises(b"\x01\x09\x02\x00\x07\x02\x00\x03\x01\x00\x0b").offset == 11  # count
    assert raises(b"\x01\x09\x01\x01\x07\x02\x00\x03\xe0\x00\x00").offset == 8  # ZCL fc
    enc = unhexlify(RTDS["GCS13a response"])
    short_length = bytearray(enc)
    short_length[14] -= 1            # ciphered length one short of the component
    assert raises(bytes(short_length)).offset == 13
    bad_header = bytearray(enc)
    bad_header[15] = 0x32            # not 31 00000000
    assert raises(bytes(bad_header)).offset == 15
    assert raises(unhexlify("0109018f66388188900d006b")).offset == 9    # alert body length


def test_encrypt_and_decrypt_component():
    key = b"k" * 16
    originator = unhexlify("00DB1234567890A1")
    frame = Z.ZclFrame(0x18, 4, Z.READ_ATTRIBUTES_RESPONSE, b"\x00\x00\x00\x25" + b"\x01" * 6)
    component = gbz.encrypt_component(CRYPTO, key, originator, 0x0702, frame.encode(), 2)
    assert component.frame == unhexlify("180401") and component.additional_header == b"\x00\x02"
    data = gbz.GbzPayload([component]).encode()
    again = gbz.decode(data).components[0]
    assert gbz.decrypt_component(CRYPTO, key, originator, again) == frame.encode()
    tampered = bytearray(data)
    tampered[-20] ^= 1
    try:
        gbz.decrypt_component(CRYPTO, key, originator, gbz.decode(bytes(tampered)).components[0])
    except gbz.GbzError:
        return
    assert False, "a tampered component decrypts"


def test_encode_refuses_out_of_range():
    for payload in (gbz.GbzPayload([gbz.GbzComponent(0x10000, b"\x00\x00\x00")]),
                    gbz.GbzPayload(alert_code=0x0F66),
                    gbz.GbzPayload([gbz.GbzComponent(1, b"\x00\x00\x00", from_date_time=-1)])):
        try:
            payload.encode()
        except gbz.GbzError:
            continue
        assert False, "built out of range"
