"""The virtual 802.15.4 medium: airtime, seeded impairments, band isolation; and virtual
NCPs on it (sub-GHz via multi-PHY, APS under 30 % loss) in simulated time."""

import bellows.types as t
import pytest

from emulator.ncp import frames
from emulator.ncp.medium import CORRUPTED, DELIVERED, LOST, VirtualMedium
from emulator.ncp.ncp import VirtualNcp
from emulator.ncp.sim import Simulation


class Radio:
    """A listener that takes every frame addressed to ``addr`` (and acks it)."""

    def __init__(self, medium, key, addr=0x0001):
        self.key = key
        self.addr = addr
        self.heard = []
        self.done = []
        medium.attach(self)

    def listening(self):
        return [self.key]

    def on_air(self, psdu, band, now):
        self.heard.append((now, psdu))
        return frames.parse_mac(psdu).dst == self.addr

    def on_tx_done(self, token, acked, now):
        self.done.append((token, acked, now))


def data(seq, dst=0x0001, payload=b"\x00" * 20, ack=True):
    return frames.mac_data(seq, 0x1234, dst, 0x0002, payload, ack)


def test_airtime_from_phy_bit_rate_and_length():
    medium = VirtualMedium()
    # 2.4 GHz O-QPSK 250 kbit/s: (4 preamble + 1 SFD + 1 PHR + 127) octets * 8 / 250e3
    assert medium.airtime("2.4", 127) == pytest.approx(4.256e-3)
    # GB sub-GHz SUN FSK 100 kbit/s: (8 preamble + 2 SFD + 2 PHR + 127) * 8 / 100e3
    assert medium.airtime("868", 127) == pytest.approx(11.12e-3)
    assert medium.airtime("2.4", 5) == pytest.approx(11 * 32e-6)


def test_delivery_time_is_airtime_plus_configured_delay():
    medium = VirtualMedium(seed=1)
    medium.configure("2.4", delay=0.005)
    rx = Radio(medium, ("2.4", 0, 15))
    tx = Radio(medium, ("2.4", 0, 15), addr=0x0002)
    psdu = data(1)
    medium.transmit(tx, psdu, "2.4", 0, 15, 10.0, token="t")
    medium.poll(11.0)
    assert rx.heard[0][0] == pytest.approx(10.0 + medium.airtime("2.4", len(psdu)) + 0.005)
    (token, acked, when), = tx.done
    assert token == "t" and acked and when > rx.heard[0][0]
    assert [r.fate for r in medium.records] == [DELIVERED, DELIVERED]   # data + MAC ack
    assert frames.parse_mac(medium.records[1].psdu).kind == frames.MAC_ACK


def test_channel_is_shared_frames_wait_for_the_air():
    medium = VirtualMedium()
    tx = Radio(medium, ("2.4", 0, 15), addr=0x0002)
    Radio(medium, ("2.4", 0, 15))
    medium.transmit(tx, data(1, ack=False), "2.4", 0, 15, 0.0)
    medium.transmit(tx, data(2, ack=False), "2.4", 0, 15, 0.0)
    first, second = medium.records
    assert second.time == pytest.approx(first.time + medium.airtime("2.4", len(first.psdu)))


def run_lossy(seed, n=400, loss=0.3):
    medium = VirtualMedium(seed=seed)
    medium.configure("2.4", loss=loss)
    rx = Radio(medium, ("2.4", 0, 15))
    tx = Radio(medium, ("2.4", 0, 15), addr=0x0002)
    for i in range(n):
        medium.transmit(tx, data(i & 0xFF, ack=False), "2.4", 0, 15, i * 0.01)
    medium.poll(n * 0.01 + 1)
    return [r.fate for r in medium.records], rx


def test_loss_is_seeded_and_deterministic():
    fates_a, rx_a = run_lossy(7)
    fates_b, _ = run_lossy(7)
    fates_c, _ = run_lossy(8)
    assert fates_a == fates_b
    assert fates_a != fates_c
    lost = fates_a.count(LOST)
    assert 0.22 * 400 < lost < 0.38 * 400
    assert len(rx_a.heard) == fates_a.count(DELIVERED)


def test_corrupted_frames_fail_the_fcs_and_are_not_delivered():
    medium = VirtualMedium(seed=3)
    medium.configure("2.4", corruption=1.0)
    rx = Radio(medium, ("2.4", 0, 15))
    tx = Radio(medium, ("2.4", 0, 15), addr=0x0002)
    medium.transmit(tx, data(1), "2.4", 0, 15, 0.0, token="x")
    medium.poll(1.0)
    (record,) = medium.records
    assert record.fate == CORRUPTED and record.received != record.psdu
    assert frames.fcs_ok(record.psdu) and not frames.fcs_ok(record.received)
    assert rx.heard == [] and tx.done == [("x", False, pytest.approx(tx.done[0][2]))]


def test_bands_and_channels_are_isolated():
    medium = VirtualMedium()
    on_24 = Radio(medium, ("2.4", 0, 15))
    on_868 = Radio(medium, ("868", 28, 15))
    other_channel = Radio(medium, ("2.4", 0, 16))
    tx = Radio(medium, ("2.4", 0, 15), addr=0x0002)
    medium.transmit(tx, data(1), "2.4", 0, 15, 0.0)
    medium.transmit(tx, data(2), "868", 28, 15, 0.1)
    medium.poll(1.0)
    assert [frames.parse_mac(p).seq for _t, p in on_24.heard] == [1]
    assert [frames.parse_mac(p).seq for _t, p in on_868.heard] == [2]
    assert other_channel.heard == []


def test_impairments_are_per_band():
    medium = VirtualMedium(seed=2)
    medium.configure("868", loss=1.0)
    rx24 = Radio(medium, ("2.4", 0, 15))
    rx868 = Radio(medium, ("868", 28, 3))
    tx = Radio(medium, ("2.4", 0, 15), addr=0x0002)
    for i in range(10):
        medium.transmit(tx, data(i), "2.4", 0, 15, i * 0.01)
        medium.transmit(tx, data(i), "868", 28, 3, i * 0.01)
    medium.poll(1.0)
    assert len(rx24.heard) == 10 and rx868.heard == []
    with pytest.raises(ValueError):
        medium.configure("2.4", loss=1.5)


# --- virtual NCPs on the medium -----------------------------------------------------------
NETWORK = dict(extendedPanId=t.ExtendedPanId.convert("00:0d:6f:00:aa:bb:cc:dd"),
               panId=0x1A2B, radioTxPower=8, joinMethod=0, nwkManagerId=0, nwkUpdateId=0,
               channels=t.Channels.ALL_CHANNELS)


def params(channel):
    return t.EmberNetworkParameters(radioChannel=channel, **NETWORK)


def han(version=13, seed=11, hub_bands=("2.4", "868"), ihd_bands=("2.4", "868")):
    medium = VirtualMedium(seed=seed)
    sim = Simulation(medium)
    hub = sim.host(VirtualNcp(bytes.fromhex("00124b0000000001"), medium, hub_bands,
                              ezsp_version=version, seed=1))
    ihd = sim.host(VirtualNcp(bytes.fromhex("00124b0000000002"), medium, ihd_bands,
                              ezsp_version=version, seed=2))
    for host in (hub, ihd):
        host.start()
    return medium, sim, hub, ihd


@pytest.mark.parametrize("version", [8, 13, 18])
def test_868_band_through_multi_phy(version):
    medium, sim, hub, ihd = han(version)
    assert hub.command("formNetwork", parameters=params(15))["status"] == 0
    # PHY 1 on page 28 channel 5 (EmberZNet multi-PHY, UG305 sub-GHz)
    assert hub.command("multiPhyStart", phy_index=1, page=28, channel=5, power=8,
                       bitmask=0)["status"] == 0
    assert hub.command("permitJoining", duration=60)["status"] == 0
    # a sub-GHz device joins on page 28 channel 5: EmberZNet channel (28 - 24) << 5 | 5
    assert ihd.command("joinNetwork", node_type=t.EmberNodeType.ROUTER,
                       parameters=params(0x85))["status"] == 0
    assert sim.run_until(lambda: hub.callbacks_named("trustCenterJoinHandler"), 5)
    assert ihd.callbacks_named("stackStatusHandler")[-1]["status"] in (0x90, 0x15)
    bands = {(r.band, r.page, r.channel) for r in medium.records}
    assert bands == {("868", 28, 5)}                 # the whole join went over sub-GHz
    radio = hub.command("getRadioParameters", phy_index=1)
    assert (radio["parameters"].radioPage, radio["parameters"].radioChannel) == (28, 5)


@pytest.mark.parametrize("version, expected", [(13, t.EmberStatus.INVALID_CALL),
                                               (18, t.sl_Status.NOT_SUPPORTED)])
def test_ncp_without_sub_ghz_refuses_868_clearly(version, expected):
    _medium, _sim, hub, ihd = han(version, hub_bands=("2.4",), ihd_bands=("2.4",))
    assert hub.command("formNetwork", parameters=params(15))["status"] == 0
    status = hub.command("multiPhyStart", phy_index=1, page=28, channel=5, power=8,
                         bitmask=0)["status"]
    assert status == expected
    assert hub.command("multiPhySetRadioChannel", phy_index=1, page=28,
                       channel=5)["status"] == expected
    assert ihd.command("joinNetwork", node_type=t.EmberNodeType.ROUTER,
                       parameters=params(0x85))["status"] == expected
    assert hub.command("formNetwork", parameters=params(0x85))["status"] != 0


def test_aps_under_30_percent_loss_completes_or_fails_cleanly_never_twice():
    medium, sim, hub, ihd = han(13, seed=4)
    assert hub.command("formNetwork", parameters=params(20))["status"] == 0
    assert hub.command("permitJoining", duration=255)["status"] == 0
    assert ihd.command("joinNetwork", node_type=t.EmberNodeType.ROUTER,
                       parameters=params(20))["status"] == 0
    assert sim.run_until(lambda: hub.callbacks_named("trustCenterJoinHandler"), 5)
    node = hub.callbacks_named("trustCenterJoinHandler")[0]["new_node_id"]
    medium.configure("2.4", loss=0.3)
    sent = 40
    for i in range(sent):
        frame = t.EmberApsFrame(profileId=0x0109, clusterId=0x0702, sourceEndpoint=1,
                                destinationEndpoint=1,
                                options=t.EmberApsOption.APS_OPTION_RETRY, groupId=0,
                                sequence=0)
        reply = hub.command("sendUnicast", timeout=20, message_type=0, nwk=node,
                            aps_frame=frame, message_tag=i, message=bytes([0x00, i, 0x00]))
        assert reply["status"] == 0
    sim.run_for(30)
    outcomes = {c["message_tag"]: c["status"] for c in hub.callbacks_named("messageSentHandler")}
    assert sorted(outcomes) == list(range(sent))                  # each one reported once
    assert len(hub.callbacks_named("messageSentHandler")) == sent
    received = [bytes(c["message"])[1] for c in ihd.callbacks_named("incomingMessageHandler")
                if c["aps_frame"].clusterId == 0x0702]
    assert len(received) == len(set(received))                    # no frame executed twice
    delivered = {tag for tag, status in outcomes.items() if status == 0}
    assert delivered <= set(received)                             # success means it arrived
    assert len(delivered) > sent * 0.8                            # MAC + APS retries work
    assert any(r.fate == LOST for r in medium.records)


def test_network_formed_directly_on_sub_ghz_and_match_desc_answered_there():
    medium, sim, hub, ihd = han(18)
    assert hub.command("formNetwork", parameters=params(0x80 | 11))["status"] == 0
    radio = hub.command("getRadioParameters", phy_index=0)["parameters"]
    assert (radio.radioPage, radio.radioChannel) == (28, 11)
    reply = hub.command("addEndpoint", endpoint=1, profile_id=0x0109, device_id=0x0500,
                        device_version=0, input_cluster_count=2, output_cluster_count=0,
                        input_cluster_list=[0x0702, 0x0700], output_cluster_list=[])
    assert reply["status"] == 0
    assert hub.command("permitJoining", duration=60)["status"] == 0
    assert ihd.command("joinNetwork", node_type=t.EmberNodeType.ROUTER,
                       parameters=params(0x80 | 11))["status"] == 0
    assert sim.run_until(lambda: ihd.callbacks_named("stackStatusHandler"), 5)
    # Match_Desc_req (ZDO 0x0006) for a Metering server, answered by the hub's stack
    frame = t.EmberApsFrame(profileId=0, clusterId=0x0006, sourceEndpoint=0,
                            destinationEndpoint=0, options=0, groupId=0, sequence=0)
    request = bytes([0x21, 0x00, 0x00]) + bytes.fromhex("0901") + b"\x01\x02\x07\x00"
    assert ihd.command("sendUnicast", message_type=0, nwk=0x0000, aps_frame=frame,
                       message_tag=1, message=request)["status"] == 0
    assert sim.run_until(lambda: [c for c in ihd.callbacks_named("incomingMessageHandler")
                                  if c["aps_frame"].clusterId == 0x8006], 5)
    (rsp,) = [c for c in ihd.callbacks_named("incomingMessageHandler")
              if c["aps_frame"].clusterId == 0x8006]
    assert bytes(rsp["message"]) == bytes([0x21, 0x00, 0x00, 0x00, 0x01, 0x01])
    assert {r.band for r in medium.records} == {"868"}
