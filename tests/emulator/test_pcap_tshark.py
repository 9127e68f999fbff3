"""A capture of a virtual-medium run, read back by tshark (Debian package) down to ZCL SE.

Two virtual NCPs driven by bellows' own framing in simulated time: the IHD joins the
hub, reads Metering CurrentSummationDelivered and InstantaneousDemand from the hub's SE
endpoint (profile 0x0109), and an ESME-side node opens a GB-HRGP tunnel (Tunneling
cluster 0x0704, protocol 6) and sends a real GBCS message (RTDS ECS52 response) through
it. tshark must dissect every layer and report no malformed packet.
"""

import shutil
import struct
import subprocess
from pathlib import Path

import bellows.types as t
import pytest

from emulator.ncp.medium import VirtualMedium
from emulator.ncp.ncp import VirtualNcp
from emulator.ncp.sim import Simulation
from emulator.pcap import LINKTYPE_IEEE802_15_4_WITHFCS, PcapWriter, write_pcap

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "gbcs" / "rtds-4.5.0"
ECS52_RESPONSE = VECTORS / "11.2_ECS52" / "ECS52_11.2_ERROR_RESPONSE_GBCS.HEX"

SE_PROFILE = 0x0109
METERING = 0x0702
TUNNELING = 0x0704
SE_EP = 1

NETWORK = t.EmberNetworkParameters(
    extendedPanId=t.ExtendedPanId.convert("00:0d:6f:00:11:22:33:44"), panId=0x2B1C,
    radioTxPower=8, radioChannel=20, joinMethod=t.EmberJoinMethod.USE_MAC_ASSOCIATION,
    nwkManagerId=0, nwkUpdateId=0, channels=t.Channels.ALL_CHANNELS)


def aps(cluster, sequence=0):
    return t.EmberApsFrame(profileId=SE_PROFILE, clusterId=cluster, sourceEndpoint=SE_EP,
                           destinationEndpoint=SE_EP,
                           options=t.EmberApsOption.APS_OPTION_RETRY, groupId=0,
                           sequence=sequence)


def add_se_endpoint(host, inputs, outputs):
    reply = host.command("addEndpoint", endpoint=SE_EP, profile_id=SE_PROFILE,
                         device_id=0x0500, device_version=0,
                         input_cluster_count=len(inputs), output_cluster_count=len(outputs),
                         input_cluster_list=inputs, output_cluster_list=outputs)
    assert reply["status"] == 0


def unicast(sim, host, nwk, cluster, zcl):
    sent_before = len(host.callbacks_named("messageSentHandler"))
    reply = host.command("sendUnicast", message_type=t.EmberOutgoingMessageType.OUTGOING_DIRECT,
                         nwk=nwk, aps_frame=aps(cluster), message_tag=0x42, message=zcl)
    assert reply["status"] == 0
    assert sim.run_until(
        lambda: len(host.callbacks_named("messageSentHandler")) > sent_before, 10)
    assert host.callbacks_named("messageSentHandler")[-1]["status"] == 0


def se_run(seed=5, sink=None):
    medium = VirtualMedium(seed=seed, sink=sink)
    sim = Simulation(medium)
    hub = sim.host(VirtualNcp(bytes.fromhex("00124b0001020304"), medium, ezsp_version=13,
                              seed=1))
    ihd = sim.host(VirtualNcp(bytes.fromhex("00124b00a1a2a3a4"), medium, ezsp_version=13,
                              seed=2))
    for host in (hub, ihd):
        host.start()
    add_se_endpoint(hub, [0x0000, METERING, TUNNELING], [])
    add_se_endpoint(ihd, [0x0000], [METERING, TUNNELING])
    assert hub.command("formNetwork", parameters=NETWORK)["status"] == 0
    assert hub.command("permitJoining", duration=60)["status"] == 0
    assert ihd.command("joinNetwork", node_type=t.EmberNodeType.ROUTER,
                       parameters=NETWORK)["status"] == 0
    assert sim.run_until(lambda: hub.callbacks_named("trustCenterJoinHandler"), 5)
    ihd_nwk = hub.callbacks_named("trustCenterJoinHandler")[0]["new_node_id"]

    # Metering: Read Attributes 0x0000 CurrentSummationDelivered, 0x0400 InstantaneousDemand
    unicast(sim, ihd, 0x0000, METERING, bytes([0x00, 0x10, 0x00]) + struct.pack("<HH", 0x0000, 0x0400))
    response = (bytes([0x18, 0x10, 0x01])
                + struct.pack("<HBB", 0x0000, 0x00, 0x25) + (123456789).to_bytes(6, "little")
                + struct.pack("<HBB", 0x0400, 0x00, 0x2A) + (1500).to_bytes(3, "little"))
    unicast(sim, hub, ihd_nwk, METERING, response)

    # GB-HRGP tunnel: Request Tunnel (protocol 6), its response, Transfer Data (PUT)
    unicast(sim, ihd, 0x0000, TUNNELING,
            bytes([0x01, 0x11, 0x00, 0x06]) + struct.pack("<HBH", 0xFFFF, 0x00, 1500))
    unicast(sim, hub, ihd_nwk, TUNNELING,
            bytes([0x19, 0x11, 0x00]) + struct.pack("<HBH", 0x0001, 0x00, 1500))
    gbcs = bytes.fromhex(ECS52_RESPONSE.read_text().split()[0])
    unicast(sim, ihd, 0x0000, TUNNELING,
            bytes([0x11, 0x12, 0x02]) + struct.pack("<H", 0x0001) + b"\x03" + gbcs)
    incoming = [c for c in hub.callbacks_named("incomingMessageHandler")
                if c["aps_frame"].clusterId in (METERING, TUNNELING)]
    assert [bytes(c["message"])[2] for c in incoming] == [0x00, 0x00, 0x02]
    return medium


def test_capture_is_pcap_with_fcs_link_type(tmp_path):
    medium = se_run()
    path = tmp_path / "han.pcap"
    count = write_pcap(path, medium.records, epoch=1_700_000_000.0)
    data = path.read_bytes()
    magic, major, minor, _zone, _sig, _snap, link = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, link) == (0xA1B2C3D4, 2, 4, LINKTYPE_IEEE802_15_4_WITHFCS)
    assert count == len(medium.records) > 10
    first_len = struct.unpack_from("<IIII", data, 24)[2]
    first = min(medium.records, key=lambda r: r.time)
    assert data[40:40 + first_len] == first.psdu


@pytest.mark.skipif(shutil.which("tshark") is None,
                    reason="tshark is not installed (Debian package tshark; .ci/run installs it)")
def test_tshark_dissects_se_metering_and_gbcs_tunnel(tmp_path):
    medium = se_run()
    path = tmp_path / "han.pcap"
    write_pcap(path, medium.records, epoch=1_700_000_000.0)
    run = subprocess.run(["tshark", "-n", "-r", str(path), "-V"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "Malformed" not in out
    packets = len(medium.records)
    assert out.count("FCS: ") == packets and out.count("(Correct)") == packets
    assert "Profile: Smart Energy (0x0109)" in out
    assert "Cluster: Simple Metering (0x0702)" in out
    assert "Attribute: Current Summation Delivered (0x0000)" in out
    assert "Attribute: Instantaneous Demand (0x0400)" in out
    assert "Uint48: 123456789" in out and "Int24: 1500" in out     # the values read back
    assert "Cluster: Tunneling (0x0704)" in out
    assert "Protocol ID: GB-HRGP (0x06)" in out
    assert "Message Code: ECS52 Read ESME/Comms Hub Firmware Version (0x0059)" in out


def test_live_sink_writes_every_frame_as_it_goes_on_air(tmp_path):
    path = tmp_path / "live.pcap"
    with PcapWriter.open(path, epoch=1_700_000_000.0) as sink:
        medium = se_run(sink=sink)
        assert sink.count == len(medium.records)
    data = path.read_bytes()
    offset, sizes = 24, []
    while offset < len(data):
        length = struct.unpack_from("<IIII", data, offset)[2]
        sizes.append(length)
        offset += 16 + length
    assert sizes == [len(r.psdu) for r in medium.records]
