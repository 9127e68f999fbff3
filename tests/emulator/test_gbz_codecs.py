"""The two GBZ codecs: firmware (`firmware/gbcs/gbz.py` + `firmware/zcl/`) and host
(`emulator/codec/gbz.py`: construct + zigpy) on every RTDS 4.5.0 GBZ payload, on
generated payloads (each is the other's oracle), and on malformed input.
"""

import pathlib

import pytest
from hypothesis import given, settings, strategies as st

import zigpy.types as t

from emulator.codec import gbz as H
from emulator.codec.errors import CodecError
from firmware.gbcs import envelope
from firmware.gbcs import gbz as F
from firmware.zcl import frame as Z
from firmware.zcl import se

RTDS = pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs" / "rtds-4.5.0"


def _gbz_payloads():
    out = []
    for path in sorted(RTDS.glob("*/*.HEX")):
        message = envelope.parse(bytes.fromhex(path.read_text().strip()))
        if message.payload[:2] == b"\x01\x09":
            out.append(pytest.param(message.payload, id=path.stem))
    return out


PAYLOADS = _gbz_payloads()


def test_rtds_holds_gbz_payloads():
    assert len(PAYLOADS) == 172


def _firmware_view(payload):
    """What the firmware decoder says, in plain values the host view is compared with."""
    value = F.decode(payload)
    out = {"count": value.count, "alert": None, "future_dated": None, "components": []}
    if value.is_alert:
        out["alert"] = (value.alert_code, value.time_stamp)
    if value.future_dated is not None:
        d = value.future_dated
        out["future_dated"] = (d.message_code, d.originator_counter, d.cluster_id,
                               d.frame_control, d.command_id)
    for c in value.components:
        fc, manufacturer, tsn, command_id, at = Z.decode_header(c.frame)
        entry = {"cluster": c.cluster_id, "from": c.from_date_time, "encrypted": c.encrypted,
                 "header": (fc, manufacturer, tsn, command_id), "payload": c.frame[at:]}
        if c.encrypted:
            entry["additional"] = bytes(c.additional_header)
            entry["payload"] = bytes(c.encrypted_field)
        out["components"].append(entry)
    return out


def _host_view(value):
    """`H.plain_fields` with each component's payload as the firmware view gives it."""
    out = H.plain_fields(value)
    for c, entry in zip(value.components or [], out["components"]):
        content = c.body.content
        if H.is_encrypted(c):
            entry["additional"] = bytes((content.additional_header_control,
                                         content.frame_counter))
            entry["payload"] = H.ENCRYPTED_FIELD_HEADER + content.field.sealed
        else:
            command = content.command
            entry["payload"] = (bytes(command) if isinstance(command, (bytes, bytearray))
                                else command.serialize())
    return out


@pytest.mark.parametrize("payload", PAYLOADS)
def test_rtds_both_codecs_round_trip_and_agree(payload):
    host = H.decode(payload)
    assert H.encode(host) == payload
    assert F.decode(payload).encode() == payload
    assert _host_view(host) == _firmware_view(payload)


def _zigpy_fields(command):
    out = {}
    for field in command.fields:
        value = getattr(command, field.name)
        out[field.name] = list(value) if isinstance(value, list) else value
    return out


@pytest.mark.parametrize("payload", PAYLOADS)
def test_rtds_zcl_commands_agree(payload):
    """Where both sides know the command, the firmware's fields are zigpy's."""
    host = H.decode(payload)
    for component in host.components or []:
        content = component.body.content
        if H.is_encrypted(component) or content.name is None:
            continue
        fc = content.header.frame_control
        if fc.frame_type == 1:
            key = (component.cluster_id, bool(fc.direction), content.header.command_id)
            fields = se.decode(key[0], key[1], key[2], content.command.serialize())
            assert fields == _zigpy_fields(content.command)
        elif content.name == "Read_Attributes":
            assert Z.decode_read_attributes(content.command.serialize()) == \
                list(content.command.attribute_ids)
        elif content.name == "Read_Attributes_rsp":
            records = Z.decode_read_attributes_response(content.command.serialize())
            assert [(r[0], r[1]) for r in records] == [
                (r.attrid, r.status) for r in content.command.status_records]
        elif content.name == "Default_Response":
            assert Z.decode_default_response(content.command.serialize()) == (
                content.command.command_id, content.command.status)


def test_rtds_commands_decode_to_zigpy_objects():
    by_stem = {p.id: p.values[0] for p in PAYLOADS}
    read = H.decode(by_stem["GCS13a_4.1.1_SUCCESS_UNRELIABLE_COMMAND_GBCS"])
    assert list(read.components[0].body.content.command.attribute_ids) == [0x0302, 0x0301,
                                                                          0x0300, 0x0000]
    top_up = H.decode(by_stem["CS01b_2.2_SUCCESS_COMMAND_GBCS"]).components[0].body.content
    assert top_up.name == "consumer_top_up"
    assert top_up.command.topup_code == b"73950067887105178605"
    valve = H.decode(by_stem["GCS39_7.3_SUCCESS_COMMAND_GBCS"]).components[0].body.content
    assert valve.name == "change_supply" and valve.command.proposed_supply_status == 1


# -- generated payloads: firmware encodes, host decodes and re-encodes, and back ------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
i32 = st.integers(-0x80000000, 0x7FFFFFFF)


def _frame(fc, tsn, command_id, payload):
    return Z.ZclFrame(fc, tsn, command_id, payload).encode()


@st.composite
def zcl_frames(draw):
    """(cluster, ZCL frame bytes) of the commands both codecs decode, or any other."""
    tsn = draw(u8)
    kind = draw(st.sampled_from(["read", "read_rsp", "default", "sampled", "sampled_rsp",
                                 "change", "status", "top_up", "top_up_rsp", "opaque"]))
    cluster = draw(st.sampled_from([se.METERING, se.PREPAYMENT, 0x0700, 0x0707]))
    if kind == "read":
        ids = draw(st.lists(u16, max_size=6))
        return cluster, _frame(0x00, tsn, 0x00, Z.encode_read_attributes(ids))
    if kind == "read_rsp":
        records = draw(st.lists(st.one_of(
            st.tuples(u16, st.just(0), st.just(0x22), st.integers(0, 0xFFFFFF)),
            st.tuples(u16, st.just(0), st.just(0x25), st.integers(0, (1 << 48) - 1)),
            st.tuples(u16, st.just(0), st.just(0x2B), i32),
            st.tuples(u16, st.just(0), st.just(0x30), u8),
            st.tuples(u16, st.sampled_from([0x86, 0x8B, 0xC0]), st.none(), st.none())),
            max_size=5))
        return cluster, _frame(0x18, tsn, 0x01, Z.encode_read_attributes_response(records))
    if kind == "default":
        return cluster, _frame(0x08, tsn, 0x0B, Z.encode_default_response(draw(u8),
                                                                           draw(u8)))
    if kind == "opaque":
        fc = draw(st.sampled_from([0x01, 0x09, 0x19]))
        return 0x0700, _frame(fc, tsn, draw(st.integers(0x0C, 0xFF)),
                              draw(st.binary(max_size=40)))
    cases = {
        "sampled": (se.METERING, False, se.GET_SAMPLED_DATA, 0x01, {
            "sample_id": draw(u16), "earliest_sample_time": draw(u32),
            "sample_type": draw(u8), "number_of_samples": draw(u16)}),
        "change": (se.METERING, False, se.CHANGE_SUPPLY, 0x01, {
            "provider_id": draw(u32), "issuer_event_id": draw(u32),
            "request_date_time": draw(u32), "implementation_date_time": draw(u32),
            "proposed_supply_status": draw(u8), "supply_control_bits": draw(u8)}),
        "status": (se.METERING, True, se.SUPPLY_STATUS_RESPONSE, 0x09, {
            "provider_id": draw(u32), "issuer_event_id": draw(u32),
            "implementation_date_time": draw(u32), "supply_status": draw(u8)}),
        "top_up": (se.PREPAYMENT, False, se.CONSUMER_TOP_UP, 0x01, {
            "originating_device": draw(u8), "topup_code": draw(st.binary(max_size=30))}),
        "top_up_rsp": (se.PREPAYMENT, True, se.CONSUMER_TOP_UP_RESPONSE, 0x09, {
            "result_type": draw(u8), "top_up_value": draw(i32),
            "source_of_top_up": draw(u8), "credit_remaining": draw(i32)}),
    }
    if kind == "sampled_rsp":
        samples = draw(st.lists(st.integers(0, 0xFFFFFF), max_size=20))
        cases[kind] = (se.METERING, True, se.GET_SAMPLED_DATA_RESPONSE, 0x19, {
            "sample_id": draw(u16), "sample_start_time": draw(u32), "sample_type": draw(u8),
            "sample_request_interval": draw(u16), "number_of_samples": len(samples),
            "samples": samples})
    cluster, s2c, command_id, fc, fields = cases[kind]
    return cluster, _frame(fc, tsn, command_id, se.encode(cluster, s2c, command_id, fields))


@st.composite
def components(draw):
    cluster, frame = draw(zcl_frames())
    if draw(st.booleans()):
        split = Z.header_length(frame)
        sealed = draw(st.binary(min_size=12, max_size=60))
        return F.GbzComponent(cluster, frame[:split], None, bytes((draw(u8), draw(u8))),
                              F.ENCRYPTED_FIELD_HEADER + sealed)
    return F.GbzComponent(cluster, frame, draw(st.none() | u32))


@st.composite
def gbz_payloads(draw):
    if draw(st.integers(0, 9)) == 0:
        code = draw(st.integers(0x8000, 0xFFFF))
        if code in F.FUTURE_DATED_ALERTS:
            body = F.FutureDatedAlert(draw(u16), draw(st.integers(0, (1 << 64) - 1)),
                                      draw(u16), draw(u8), draw(u8))
            return F.GbzPayload(alert_code=code, time_stamp=draw(u32), future_dated=body)
        return F.GbzPayload(draw(st.lists(components(), max_size=2)), alert_code=code,
                            time_stamp=draw(u32))
    return F.GbzPayload(draw(st.lists(components(), min_size=1, max_size=4)))


@settings(max_examples=300, deadline=None)
@given(gbz_payloads())
def test_generated_payloads_agree(value):
    data = value.encode()
    host = H.decode(data)
    assert H.encode(host) == data
    assert F.decode(data).encode() == data
    assert _host_view(host) == _firmware_view(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(components(), min_size=1, max_size=3))
def test_host_built_payloads_decode_in_firmware(firmware_components):
    """The host builds from zigpy values; the firmware reads the same bytes back."""
    built = []
    for c in firmware_components:
        if c.encrypted:
            fc, _, tsn, command_id, _ = Z.decode_header(c.frame)
            built.append(H.encrypted_component(c.cluster_id, H.zcl_header(fc, tsn, command_id),
                                               c.encrypted_field[5:], c.additional_header[1],
                                               c.additional_header[0]))
        else:
            content = H.parse_zcl(c.cluster_id, c.frame)
            built.append(H.plain_component(c.cluster_id, content.header, content.command,
                                           c.from_date_time))
    data = H.encode(H.payload(built))
    assert data == F.GbzPayload(firmware_components).encode()


def test_host_builds_the_rtds_top_up_from_zigpy_values():
    command = H.CONSUMER_TOP_UP.schema(originating_device=0,
                                       topup_code=t.LVBytes(b"73950067887105178605"))
    data = H.encode(H.payload([H.plain_component(se.PREPAYMENT, H.zcl_header(0x01, 0, 0x04),
                                                 command)]))
    assert data.hex() == "010901010705001901000400143733393530303637383837313035313738363035"


# -- malformed input: each layer's error with an offset -------------------------------------

MALFORMED = [
    (b"\x01", 1, "header"),
    (b"\x01\x0a\x01", 0, "profile"),
    (bytes.fromhex("010901010702001501000b00000000804a371c000000000000000000"), 8, "short"),
    (bytes.fromhex("010901010702000b000000020301030003000000"), 19, "trailing"),
    (bytes.fromhex("010901410702000300000b"), 3, "control"),
    (bytes.fromhex("0109020007020003" "000000"), 11, "count"),
    (bytes.fromhex("0109020107020003" "000000" "0107020003" "000000"), 3, "last flag"),
    (bytes.fromhex("0109010107020003e0000b"), 8, "ZCL frame control"),
    (bytes.fromhex("0109018f66388188900d006b"), 9, "future-dated length"),
]


@pytest.mark.parametrize("data,offset,what", MALFORMED, ids=[m[2] for m in MALFORMED])
def test_malformed_raises_each_layers_error(data, offset, what):
    with pytest.raises(F.GbzError) as firmware:
        F.decode(data)
    with pytest.raises(H.GbzCodecError) as host:
        H.decode(data)
    assert isinstance(host.value, CodecError) and host.value.layer == "gbz"
    assert firmware.value.offset == offset
    # construct reports where its stream stopped: at or after the faulty byte
    assert offset <= host.value.offset <= len(data)


def test_malformed_zcl_command_inside_gbz():
    # a ChangeSupply one byte short: the GBZ layer parses, the ZCL command does not
    data = bytes.fromhex("010901010702001401000b" "00000000804a371c000000000000000000")
    component = F.decode(data).components[0]
    frame = component.zcl_frame()
    with pytest.raises(Z.ZclError):
        se.decode(se.METERING, False, frame.command_id, frame.payload)
    with pytest.raises(H.GbzCodecError) as host:
        H.decode(data)
    assert "ZCL" in host.value.reason


def test_encrypted_field_checks():
    good = PAYLOADS[0].values[0]
    enc = next(p.values[0] for p in PAYLOADS if p.id.startswith("GCS13a_4.1.1_SUCCESS_UNREL")
               and "RESPONSE" in p.id)
    bad = bytearray(enc)
    bad[15] = 0x32
    with pytest.raises(F.GbzError) as firmware:
        F.decode(bytes(bad))
    with pytest.raises(H.GbzCodecError):
        H.decode(bytes(bad))
    assert firmware.value.offset == 15
    assert F.decode(good).encode() == good
