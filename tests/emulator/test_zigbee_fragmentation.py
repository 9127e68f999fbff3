"""APS fragmentation on the HAN (ZigBee R22 2.2.8.4.5; EmberZNet host fragmentation):
the extended APS header, the virtual NCP's side of it (blocks on the air, acks through
the receiving host's sendReply, retried blocks acked again), and unmodified bellows
hosts sending and reassembling messages longer than one frame, both ways, on an old and
a current EZSP version."""

import asyncio

import bellows.types as t
import pytest
import zigpy.exceptions
import zigpy.types as zt

from emulator.ncp import frames as F
from emulator.ncp.medium import VirtualMedium
from emulator.ncp.ncp import MAX_APS_PAYLOAD, MAX_FRAGMENT_PAYLOAD, VirtualNcp
from emulator.ncp.sim import Simulation
from emulator.zigbee.fragmentation import APS_SECURITY, EXTENDED_HEADER, MAX_BLOCKS, blocks

SE, TUNNELING = 0x0109, 0x0704
FRAGMENT = t.EmberApsOption.APS_OPTION_FRAGMENT | t.EmberApsOption.APS_OPTION_RETRY
NETWORK = dict(extendedPanId=t.ExtendedPanId.convert("00:0d:6f:00:aa:bb:cc:dd"),
               panId=0x1A2B, radioTxPower=8, radioChannel=15, joinMethod=0, nwkManagerId=0,
               nwkUpdateId=0, channels=t.Channels.ALL_CHANNELS)


# --- the extended APS header ----------------------------------------------------------------
def test_blocks_carry_their_place_in_the_extended_header():
    first = F.aps_data(1, TUNNELING, SE, 2, 7, b"abc", ack_request=True,
                       fragment=F.Fragment(0, count=3))
    later = F.aps_data(1, TUNNELING, SE, 2, 7, b"def", ack_request=True,
                       fragment=F.Fragment(2, count=3))
    assert first[0] == 0xC0 and first[8:10] == bytes((0x01, 3))      # first: the count
    assert later[8:10] == bytes((0x02, 2))                          # later: the block
    *head, payload, fragment = F.parse_aps_fragment(later)
    assert payload == b"def" and (fragment.block, fragment.count) == (2, None)
    ack = F.aps_ack(2, TUNNELING, SE, 1, 7, F.Fragment(2, ack_bits=0x01))
    assert ack[0] == 0x82 and ack[8:] == bytes((0x02, 2, 0x01))
    fragment = F.parse_aps_fragment(ack)[-1]
    assert (fragment.block, fragment.ack_bits) == (2, 0x01)
    plain = F.aps_data(1, TUNNELING, SE, 2, 7, b"x")
    assert F.parse_aps_fragment(plain)[-1] is None and F.parse_aps(plain)[-1] == b"x"


@pytest.mark.parametrize("bad", [
    bytes.fromhex("80 01 0407 0901 02 07 03 00"),      # reserved fragmentation value
    bytes.fromhex("80 01 0407 0901 02 07 01 00 61"),   # a first block announcing 0 blocks
])
def test_bad_extended_headers_are_refused(bad):
    with pytest.raises(ValueError):
        F.parse_aps_fragment(bad)


def test_truncated_extended_header_raises_a_decoding_error():
    with pytest.raises(IndexError):
        F.parse_aps_fragment(bytes.fromhex("c0 01 0407 0901 02 07 02"))


def test_host_cuts_messages_into_blocks_and_refuses_more_than_255():
    assert blocks(bytes(range(10)), 4) == [bytes(range(4)), bytes(range(4, 8)), bytes((8, 9))]
    assert len(blocks(bytes(MAX_BLOCKS * 3), 3)) == MAX_BLOCKS
    with pytest.raises(ValueError):
        blocks(bytes(MAX_BLOCKS * 3 + 1), 3)


# --- the virtual NCP's side, in simulated time --------------------------------------------
def joined(version=13):
    medium = VirtualMedium(seed=5)
    sim = Simulation(medium)
    hub = sim.host(VirtualNcp(bytes.fromhex("00124b0000000001"), medium, ezsp_version=version,
                              seed=1))
    node = sim.host(VirtualNcp(bytes.fromhex("00124b0000000002"), medium,
                               ezsp_version=version, seed=2))
    for host in (hub, node):
        host.start()
    params = t.EmberNetworkParameters(**NETWORK)
    assert hub.command("formNetwork", parameters=params)["status"] == 0
    assert hub.command("permitJoining", duration=60)["status"] == 0
    assert node.command("joinNetwork", node_type=t.EmberNodeType.ROUTER,
                        parameters=params)["status"] == 0
    assert sim.run_until(lambda: hub.callbacks_named("trustCenterJoinHandler"), 5)
    nwk = hub.callbacks_named("trustCenterJoinHandler")[-1]["new_node_id"]
    return medium, sim, hub, node, nwk


def send_block(hub, nwk, block, count, data, sequence=0):
    frame = t.EmberApsFrame(profileId=SE, clusterId=TUNNELING, sourceEndpoint=9,
                            destinationEndpoint=11, options=FRAGMENT,
                            groupId=count << 8 | block, sequence=sequence)
    return hub.command("sendUnicast", message_type=t.EmberOutgoingMessageType.OUTGOING_DIRECT,
                       nwk=nwk, aps_frame=frame, message_tag=block, message=data)


def ack_block(node, received):
    frame = received["aps_frame"]
    ack = t.EmberApsFrame(profileId=frame.profileId, clusterId=frame.clusterId,
                          sourceEndpoint=frame.destinationEndpoint,
                          destinationEndpoint=frame.sourceEndpoint, options=frame.options,
                          groupId=0xFF00 | (frame.groupId & 0xFF), sequence=frame.sequence)
    return node.command("sendReply", nwk=received["nwk"], aps_frame=ack, message=b"")


def test_blocks_go_one_at_a_time_and_count_as_sent_once_the_receiver_acks():
    medium, sim, hub, node, nwk = joined()
    first = send_block(hub, nwk, 0, 2, b"A" * MAX_FRAGMENT_PAYLOAD)
    assert first["status"] == 0
    assert sim.run_until(lambda: node.callbacks_named("incomingMessageHandler"), 2)
    (got,) = node.callbacks_named("incomingMessageHandler")
    assert got["aps_frame"].options & t.EmberApsOption.APS_OPTION_FRAGMENT
    assert got["aps_frame"].groupId == 0x0200 and got["message"] == b"A" * MAX_FRAGMENT_PAYLOAD
    sim.run_for(0.2)
    assert not hub.callbacks_named("messageSentHandler")       # the stack does not ack it
    assert ack_block(node, got)["status"] == 0
    assert sim.run_until(lambda: hub.callbacks_named("messageSentHandler"), 2)
    assert hub.callbacks_named("messageSentHandler")[-1]["status"] == 0
    # the later block carries the first one's APS counter, handed back by the host
    assert send_block(hub, nwk, 1, 2, b"B", sequence=first["sequence"])["status"] == 0
    assert sim.run_until(lambda: len(node.callbacks_named("incomingMessageHandler")) == 2, 2)
    second = node.callbacks_named("incomingMessageHandler")[-1]
    assert second["aps_frame"].groupId == 0x0201
    assert second["aps_frame"].sequence == got["aps_frame"].sequence == first["sequence"]
    ack_block(node, second)
    assert sim.run_until(lambda: len(hub.callbacks_named("messageSentHandler")) == 2, 2)
    on_air = [F.parse_aps_fragment(F.parse_nwk(F.parse_mac(r.psdu).payload)[4])
              for r in medium.records if r.psdu[0] & 7 == F.MAC_DATA]
    assert [(a[0], a[-1].block) for a in on_air if a[-1] is not None] == [
        (F.APS_DATA, 0), (F.APS_ACK, 0), (F.APS_DATA, 1), (F.APS_ACK, 1)]


def test_a_retried_block_reaches_the_host_once_and_is_acked_again_by_the_stack():
    medium, sim, hub, node, nwk = joined()
    send_block(hub, nwk, 0, 2, b"A" * 40)
    assert sim.run_until(lambda: node.callbacks_named("incomingMessageHandler"), 2)
    medium.configure("2.4", loss=1.0)              # the host's ack never reaches the hub
    ack_block(node, node.callbacks_named("incomingMessageHandler")[0])
    sim.run_for(0.1)
    medium.configure("2.4", loss=0.0)
    # the hub's APS retry of block 0 is a duplicate: acked by the node's stack, not passed up
    assert sim.run_until(lambda: hub.callbacks_named("messageSentHandler"), 3)
    assert hub.callbacks_named("messageSentHandler")[-1]["status"] == 0
    assert len(node.callbacks_named("incomingMessageHandler")) == 1
    assert any(r.fate == "lost" for r in medium.records)


def test_bad_blocks_and_stray_acks_are_refused():
    _medium, _sim, hub, node, nwk = joined(18)
    assert send_block(hub, nwk, 2, 2, b"x")["status"] == t.sl_Status.INVALID_PARAMETER
    assert send_block(hub, nwk, 0, 2, bytes(MAX_FRAGMENT_PAYLOAD + 1))["status"] == \
        t.sl_Status.MESSAGE_TOO_LONG
    stray = {"nwk": 0x0000, "aps_frame": t.EmberApsFrame(
        profileId=SE, clusterId=TUNNELING, sourceEndpoint=11, destinationEndpoint=9,
        options=FRAGMENT, groupId=0x0200, sequence=0)}
    assert ack_block(node, stray)["status"] == t.sl_Status.INVALID_STATE
    assert hub.command("maximumPayloadLength")["aps_length"] == MAX_APS_PAYLOAD


# --- unmodified bellows on both ends, over ptys -------------------------------------------
def _run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def _packet(src_ep, dst_nwk, dst_ep, data):
    return zt.ZigbeePacket(
        src_ep=src_ep, dst=zt.AddrModeAddress(addr_mode=zt.AddrMode.NWK, address=dst_nwk),
        dst_ep=dst_ep, tsn=1, profile_id=SE, cluster_id=TUNNELING,
        data=zt.SerializableBytes(data),
        tx_options=zt.TransmitOptions.ACK | zt.TransmitOptions.APS_Encryption)


def _tunneling(packets):
    return [bytes(p.data.serialize()) for p in packets
            if p.profile_id == SE and p.cluster_id == TUNNELING]


async def _rig_with_ihd(version, radios):
    import emulator.lab as L
    from emulator.zigbee.rig import HanRig
    rig = HanRig(L.Lab(seed=0, wan="direct"), radios.paths["hub"])
    await rig.start()
    node = await rig.add_node("ihd", radios.paths["ihd"])
    return rig, node


@pytest.mark.parametrize("version", [8, 19])
def test_bellows_hosts_send_and_reassemble_long_messages_both_ways(version):
    import emulator.lab as L
    from emulator.zigbee.rig import VirtualRadios

    async def main():
        with VirtualRadios(L, ["ihd"], ezsp_version=version) as radios:
            rig, node = await _rig_with_ihd(version, radios)
            at_node, at_hub = [], []
            node.client.packet_received = lambda p: at_node.append(p) or True
            hub_received = rig.app.packet_received
            rig.app.packet_received = lambda p: (at_hub.append(p), hub_received(p))
            try:
                down = bytes((0x19, 1, 0x01)) + bytes(range(256)) * 3      # 771 octets
                up = bytes((0x11, 2, 0x02)) + bytes(range(255, -1, -1)) * 2
                await rig.app.send_packet(_packet(9, node.state.node_info.nwk, 11, down))
                await node.send_packet(_packet(11, 0x0000, 9, up))
                await asyncio.sleep(0.3)
                # each once (the node also gets the hub's TransferDataError: no such tunnel)
                assert _tunneling(at_node)[0] == down and _tunneling(at_node).count(down) == 1
                assert _tunneling(at_hub) == [up]
                blocks_on_air = [r for r in radios.medium.records
                                 if len(r.psdu) > 26 and r.psdu[17] & F.APS_EXTENDED_HEADER
                                 and r.psdu[17] & 3 == F.APS_DATA]
                # encrypted frames: blocks of the NCP's payload less extended header and
                # APS security (on real silicon; the virtual medium sends them clear)
                size = MAX_APS_PAYLOAD - EXTENDED_HEADER - APS_SECURITY
                assert len(blocks_on_air) >= len(blocks(down, size)) + len(blocks(up, size))
                assert all(len(r.psdu) <= 127 for r in radios.medium.records)
            finally:
                await rig.stop()
    _run(main())


def test_a_block_nobody_acks_fails_the_whole_message_cleanly():
    import emulator.lab as L
    from emulator.zigbee.rig import VirtualRadios

    async def main():
        with VirtualRadios(L, ["ihd"], ezsp_version=13) as radios:
            rig, node = await _rig_with_ihd(13, radios)
            at_node = []
            node.client.packet_received = lambda p: at_node.append(p) or True
            try:
                radios.medium.configure("2.4", loss=1.0)
                with pytest.raises(zigpy.exceptions.DeliveryError):
                    await asyncio.wait_for(rig.app.send_packet(
                        _packet(9, node.state.node_info.nwk, 11, bytes(500))), 10)
                assert _tunneling(at_node) == []
            finally:
                radios.medium.configure("2.4", loss=0.0)
                await rig.stop()
    _run(main())
