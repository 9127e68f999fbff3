"""The firmware GBCS envelope and the construct codec must agree (ARCHITECTURE.md principle 3)."""

import pathlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from emulator.codec import gbcs as construct_gbcs
from firmware.gbcs import envelope

RTDS = sorted((pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs"
               / "rtds-4.5.0").glob("*/*.HEX"))


def _construct_input(f):
    supplementary = None
    if f["supplementary_remote_party"] is not None:
        supplementary = {"remote_party": f["supplementary_remote_party"],
                         "remote_counter": f["supplementary_remote_counter"]}
    signature = None
    if f["signature_field"]:
        signature = f["signature"] if f["signature"] is not None else b""
    return {
        "cra_flag": f["cra_flag"], "originator_counter": f["originator_counter"],
        "originator": f["originator"], "recipient": f["recipient"],
        "date_time": f["date_time"] if f["date_time"] is not None else None,
        "other_information": {"message_code": f["message_code"], "supplementary": supplementary,
                              "tail": f["other_info_tail"]},
        "payload": f["payload"], "signature": signature,
    }


def test_both_codecs_read_every_rtds_message_alike():
    assert len(RTDS) == 621
    for path in RTDS:
        raw = bytes.fromhex(path.read_text().strip())
        by_firmware = envelope.parse(raw).fields()
        by_construct = construct_gbcs.plain_fields(construct_gbcs.decode(raw))
        assert by_firmware == by_construct, path.name
        assert construct_gbcs.encode(construct_gbcs.decode(raw), by_construct["mac"]) == raw


eui = st.binary(min_size=8, max_size=8)
messages = st.fixed_dictionaries({
    "cra_flag": st.sampled_from([1, 2, 3]),
    "originator_counter": st.integers(0, 2**64 - 1),
    "originator": eui, "recipient": eui,
    "message_code": st.integers(0, 0xFFFF),
    "payload": st.binary(max_size=600),
    "date_time": st.one_of(st.none(), st.binary(min_size=12, max_size=12)),
    "supplementary_remote_party": st.one_of(st.none(), eui),
    "supplementary_remote_counter": st.integers(0, 2**64 - 1),
    "other_info_tail": st.sampled_from([b"", bytes(8)]),
    "signature": st.one_of(st.none(), st.binary(min_size=64, max_size=64)),
    "signature_field": st.booleans(),
    "mac": st.one_of(st.none(), st.binary(min_size=12, max_size=12)),
})


def _normalise(f):
    f = dict(f)
    if f["supplementary_remote_party"] is None:
        f["supplementary_remote_counter"] = None
        f["other_info_tail"] = b""
    if not f["signature_field"]:
        f["signature"] = None
    return f


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_same_fields_same_bytes_and_each_reads_the_other(fields):
    fields = _normalise(fields)
    firmware_message = envelope.GbcsMessage(
        fields["cra_flag"], fields["originator_counter"], fields["originator"],
        fields["recipient"], fields["message_code"], fields["payload"],
        date_time=fields["date_time"],
        supplementary_remote_party=fields["supplementary_remote_party"],
        supplementary_remote_counter=fields["supplementary_remote_counter"],
        other_info_tail=fields["other_info_tail"], signature=fields["signature"],
        signature_field=fields["signature_field"], mac=fields["mac"],
        mac_protected=fields["mac"] is not None)
    by_firmware = firmware_message.encode()
    by_construct = construct_gbcs.encode(_construct_input(fields), fields["mac"])
    assert by_firmware == by_construct
    assert construct_gbcs.plain_fields(construct_gbcs.decode(by_firmware)) == fields
    assert envelope.parse(by_construct).fields() == fields


@settings(max_examples=500)
@given(st.sampled_from(RTDS[::7]), st.data())
def test_mutated_messages_raise_only_the_layer_error(path, data):
    raw = bytearray(bytes.fromhex(path.read_text().strip()))
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend"]))
    if kind == "flip":
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        del raw[data.draw(st.integers(0, len(raw) - 1)):]
    else:
        raw += data.draw(st.binary(min_size=1, max_size=20))
    firmware_result = construct_result = "ok"
    try:
        envelope.parse(bytes(raw))
    except envelope.GbcsError as exc:
        assert exc.offset is not None and 0 <= exc.offset <= len(raw)
        firmware_result = "error"
    try:
        construct_gbcs.decode(bytes(raw))
    except construct_gbcs.GbcsCodecError as exc:
        assert exc.offset is not None and 0 <= exc.offset <= len(raw)
        construct_result = "error"
    assert firmware_result == construct_result, (kind, bytes(raw).hex())


@pytest.mark.parametrize("data", [b"", b"\xdd", b"\xdf\x09", b"\xdd\x00\x00\x00\x00\x00\x00\x84\xff\xff\xff\xff"])
def test_short_garbage(data):
    with pytest.raises(construct_gbcs.GbcsCodecError):
        construct_gbcs.decode(data)
    with pytest.raises(envelope.GbcsError):
        envelope.parse(data)
