"""The SE cluster definitions (emulator/zigbee/clusters.py) through zigpy: they replace
zigpy's stubs in its registry, every command round-trips through zigpy's types, and the
bytes are the ZSE 1.4 layouts (checked by hand against the tables cited in the module)."""

import enum

import pytest
import zigpy.types as t
from hypothesis import given, settings
from hypothesis import strategies as st
from zigpy.zcl import Cluster, foundation
from zigpy.zcl.clusters import smartenergy as zse

from emulator.codec import gbz
from emulator.zigbee import clusters as C

S2C = foundation.Direction.Server_to_Client
C2S = foundation.Direction.Client_to_Server


def test_our_clusters_replace_zigpys_stubs_in_its_registry():
    for cluster in C.SE_CLUSTERS:
        assert Cluster._registry[cluster.cluster_id] is cluster
        assert issubclass(cluster, getattr(zse, cluster.__mro__[1].__name__))
    assert [c.cluster_id for c in C.SE_CLUSTERS] == [0x0700, 0x0702, 0x0703, 0x0704, 0x0705,
                                                     0x0800]


def test_metering_keeps_zigpys_attributes_and_adds_the_gb_block_set():
    for name, attr in zse.Metering.attributes_by_name.items():
        assert C.Metering.attributes_by_name[name].id == attr.id
    assert C.Metering.attributes_by_name["current_summ_delivered"].id == 0x0000
    assert C.Metering.attributes_by_name["instantaneous_demand"].id == 0x0400
    assert C.Metering.attributes_by_name["current_no_tier_block1_summ_delivered"].id == 0x0700
    assert C.Metering.attributes_by_name["current_tier1_block1_summ_delivered"].id == 0x0710
    assert C.Metering.attributes_by_name["current_tier7_block4_summ_delivered"].id == 0x0773
    assert C.Metering.attributes_by_name["current_week_consumption_delivered"].id == 0x0430
    assert C.Metering.attributes_by_name["previous_month_consumption_delivered"].id == 0x0442
    # no id defined twice
    ids = [a.id for a in C.Metering.AttributeDefs]
    assert len(ids) == len(set(ids))
    assert C.Metering.server_commands == zse.Metering.server_commands


def _sample(field_type, draw):
    """A value of a zigpy field type drawn from hypothesis."""
    if issubclass(field_type, (t.LVBytes,)):
        return field_type(draw(st.binary(max_size=24)))
    if issubclass(field_type, t.Bytes):
        return field_type(draw(st.binary(max_size=64)))
    if issubclass(field_type, t.CharacterString):
        return field_type(draw(st.text(alphabet="abcdefghij klmnop", max_size=30)))
    if issubclass(field_type, t.FixedList):
        return field_type([draw(st.integers(0, 255)) for _ in range(field_type._length)])
    if issubclass(field_type, enum.Enum) and list(field_type):
        return draw(st.sampled_from(list(field_type)))     # a named member
    if hasattr(field_type, "_bits"):                        # ints, bitmaps, bare enums
        bits, signed = field_type._bits, field_type._signed
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        return field_type(draw(st.integers(lo, hi)))
    raise AssertionError("no sample for %r" % field_type)


def _commands():
    out = []
    for cluster in (C.Price, C.Messaging, C.Tunneling, C.Prepayment, C.KeyEstablishment):
        for definition in cluster.ServerCommandDefs:
            out.append((cluster, definition, C2S))
        for definition in cluster.ClientCommandDefs:
            out.append((cluster, definition, S2C))
    return out


@pytest.mark.parametrize("cluster,definition,direction", _commands(),
                         ids=lambda x: getattr(x, "name", getattr(x, "__name__", str(x))))
@settings(max_examples=40, deadline=None)
@given(data=st.data(), tsn=st.integers(0, 255))
def test_every_command_round_trips_through_zigpy(cluster, definition, direction, data, tsn):
    fields = {}
    for field in definition.schema.fields:
        if field.optional and data.draw(st.booleans()):
            break                        # optional fields end the frame together
        fields[field.name] = _sample(field.type, data.draw)
    command = definition.schema(**fields)
    hdr = foundation.ZCLHeader.cluster(tsn, definition.id, direction=direction)
    frame = hdr.serialize() + command.serialize()
    got_hdr, got = C.parse_frame(cluster, frame)
    assert got_hdr.command_id == definition.id and got_hdr.tsn == tsn
    assert type(got).command.name == definition.name
    for name, value in fields.items():
        assert getattr(got, name) == value, name
    assert got.serialize() == command.serialize()


def test_tunneling_frames_are_the_zse_layouts():
    # D.6.2.4.1 RequestTunnel: protocol 6, manufacturer 0xFFFF, no flow control, 1500
    request = C.Tunneling.ServerCommandDefs.request_tunnel.schema(
        protocol_id=C.TunnelProtocol.GB_HRGP, manufacturer_code=0xFFFF,
        flow_control_support=t.Bool.false, maximum_incoming_transfer_size=1500)
    assert request.serialize() == bytes.fromhex("06ffff00dc05")
    assert C.Tunneling.ServerCommandDefs.request_tunnel.id == 0x00
    # D.6.2.4.3 / D.6.2.5.2 TransferData: tunnel id LE, then the data to the frame's end
    up = C.Tunneling.ServerCommandDefs.transfer_data
    down = C.Tunneling.ClientCommandDefs.transfer_data
    assert (up.id, down.id) == (0x02, 0x01)
    assert up.schema(tunnel_id=0x0102, data=t.Bytes(b"\x03\xdd")).serialize() == \
        bytes.fromhex("020103dd")
    hdr = foundation.ZCLHeader.cluster(7, down.id, direction=S2C)
    frame = hdr.serialize() + down.schema(tunnel_id=1, data=t.Bytes(b"\x01")).serialize()
    # frame control 0x19: cluster command, server to client, no default response
    assert frame == bytes.fromhex("19070101" "00" "01")
    _, got = C.parse_frame(C.Tunneling, frame)
    assert got.data == b"\x01" and got.tunnel_id == 1
    rsp = C.Tunneling.ClientCommandDefs.request_tunnel_response.schema(
        tunnel_id=1, tunnel_status=C.TunnelStatus.Success, maximum_incoming_transfer_size=1500)
    assert rsp.serialize() == bytes.fromhex("010000dc05")


def test_publish_price_without_optional_fields_is_28_octets_with_an_empty_label():
    publish = C.Price.ClientCommandDefs.publish_price.schema(
        provider_id=1, rate_label=t.LVBytes(b""), issuer_event_id=2, current_time=3,
        unit_of_measure=0, currency=C.GBP, price_trailing_digit_and_price_tier=0x51,
        number_of_price_tiers_and_register_tier=0x11, start_time=0,
        duration_in_minutes=0xFFFF, price=24500)
    data = publish.serialize()
    assert len(data) == 28           # ZSE 1.4 D.4.2.4.1: mandatory fields only
    assert data[-4:] == (24500).to_bytes(4, "little")
    got, rest = C.Price.ClientCommandDefs.publish_price.schema.deserialize(data)
    assert rest == b"" and got.price == 24500 and got.price_ratio is None


def test_consumer_top_up_matches_the_gbz_codec_and_firmware_ids():
    ours = C.Prepayment.ServerCommandDefs.consumer_top_up
    theirs = gbz.CONSUMER_TOP_UP
    assert ours.id == theirs.id == 0x04
    fields = {"originating_device": 2, "topup_code": t.LVBytes(b"12345678901234567890")}
    assert ours.schema(**fields).serialize() == theirs.schema(**fields).serialize()
    rsp = {"result_type": 0, "top_up_value": 500, "source_of_top_up": 2,
           "credit_remaining": -20}
    assert C.Prepayment.ClientCommandDefs.consumer_top_up_response.schema(**rsp).serialize() \
        == gbz.CONSUMER_TOP_UP_RESPONSE.schema(**rsp).serialize()


def test_read_attributes_response_of_se_attributes_round_trips():
    records = []
    for cluster, name, value in ((C.Price, "no_tier_block1_price", 24500),
                                 (C.Price, "tariff_label", t.LVBytes(b"GB")),
                                 (C.Prepayment, "credit_remaining", -1234),
                                 (C.Metering, "current_tier2_block3_summ_delivered", 2 ** 40)):
        definition = cluster.attributes_by_name[name]
        records.append(foundation.ReadAttributeRecord(
            attrid=definition.id, status=foundation.Status.SUCCESS,
            value=foundation.TypeValue(type=definition.zcl_type, value=definition.type(value))))
    schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes_rsp].schema
    hdr = foundation.ZCLHeader.general(9, foundation.GeneralCommand.Read_Attributes_rsp,
                                       direction=S2C)
    frame = hdr.serialize() + schema(status_records=records).serialize()
    _, got = C.parse_frame(C.Price, frame)
    assert [r.value.value for r in got.status_records] == [24500, b"GB", -1234, 2 ** 40]


def test_malformed_payloads_raise_value_error_and_unknown_commands_stay_bytes():
    hdr = foundation.ZCLHeader.cluster(1, 0x00, direction=C2S)
    with pytest.raises(ValueError):
        C.parse_frame(C.Tunneling, hdr.serialize() + b"\x06\xff")     # RequestTunnel cut
    unknown = foundation.ZCLHeader.cluster(1, 0x3F, direction=C2S)
    got_hdr, got = C.parse_frame(C.Tunneling, unknown.serialize() + b"\x01\x02")
    assert got == b"\x01\x02" and got_hdr.command_id == 0x3F
