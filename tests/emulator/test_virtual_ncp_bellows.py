"""Unmodified bellows against virtual NCPs on ptys: start, form, permit, join, APS frames.

The hub is bellows' own ``ControllerApplication``; the joining node is driven through
bellows' ``EZSP`` object (``joinNetwork`` and the version's ``send_unicast``), both over
a pty served by ``NcpHost``. Three EZSP versions: v8 (old), v13 (middle), v18 (current).
"""

import asyncio
import struct

import bellows.ezsp
import bellows.types as t
import bellows.zigbee.application as bellows_app
import pytest
import zigpy.config as zc
import zigpy.exceptions
import zigpy.types as zt

from emulator.ncp.medium import VirtualMedium
from emulator.ncp.ncp import VirtualNcp
from emulator.ncp.pty_host import NcpHost

VERSIONS = [8, 13, 18]
CHANNEL = 15
PAN_ID = 0x5E11
EXT_PAN = "00:0d:6f:00:0b:0c:0d:0e"
HUB_EUI = "00:12:4b:00:01:00:00:01"
IHD_EUI = "00:12:4b:00:01:00:00:02"
BASIC = {0x0004: b"smets-emu", 0x0005: b"virtual-ihd"}


def hub_config(path):
    return {
        zc.CONF_DEVICE: {zc.CONF_DEVICE_PATH: path},
        zc.CONF_DATABASE: None,
        "use_thread": False,
        zc.CONF_NWK: {zc.CONF_NWK_CHANNEL: CHANNEL, zc.CONF_NWK_PAN_ID: PAN_ID,
                      zc.CONF_NWK_EXTENDED_PAN_ID: EXT_PAN},
    }


async def start_hub(path):
    return await bellows_app.ControllerApplication.new(hub_config(path), auto_form=True,
                                                       start_radio=True)


def run(coro, timeout=45):
    asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def host():
    medium = VirtualMedium(seed=3)
    with NcpHost(medium) as h:
        yield h
    assert h.errors == []


@pytest.mark.parametrize("version", VERSIONS)
def test_bellows_starts_and_forms_a_network(host, version):
    ncp = VirtualNcp(HUB_EUI, host.medium, ezsp_version=version, seed=1)
    path = host.add(ncp)

    async def scenario():
        app = await start_hub(path)
        try:
            assert app._ezsp.ezsp_version == version
            info = app.state.network_info
            assert (info.channel, info.pan_id) == (CHANNEL, PAN_ID)
            assert str(info.extended_pan_id) == EXT_PAN
            assert app.state.node_info.nwk == 0x0000
            assert app.state.node_info.ieee == zt.EUI64.convert(HUB_EUI)
            with host.lock:
                assert ncp.up and ncp.network.node_type == t.EmberNodeType.COORDINATOR
                assert ncp.network.params.panId == PAN_ID
                assert ncp.network.network_key == info.network_key.key
            coordinator = app.get_device(nwk=0x0000)
            assert coordinator.is_initialized                 # self-interview via sendUnicast
            await app.permit(30)
            with host.lock:
                assert ncp.permitting
        finally:
            await app.shutdown()

    run(scenario())


@pytest.mark.parametrize("version", VERSIONS)
def test_network_survives_restart_of_bellows(host, version):
    ncp = VirtualNcp(HUB_EUI, host.medium, ezsp_version=version, seed=1)
    path = host.add(ncp)

    async def scenario():
        app = await start_hub(path)
        key = app.state.network_info.network_key.key
        await app.shutdown()
        app = await start_hub(path)                          # networkInit from NVM
        try:
            assert app.state.network_info.network_key.key == key
            assert app.state.network_info.pan_id == PAN_ID
        finally:
            await app.shutdown()

    run(scenario())


async def join_ihd(app, ihd_path, version):
    """The IHD's NCP joins through bellows' EZSP object; its application answers Basic
    Read Attributes (and counts what it executed). Returns (ezsp, device, executed, task)."""
    joined = asyncio.get_running_loop().create_future()

    class Listener:
        def device_initialized(self, device):
            if device.ieee == zt.EUI64.convert(IHD_EUI) and not joined.done():
                joined.set_result(device)

    app.add_listener(Listener())
    ezsp = bellows.ezsp.EZSP({zc.CONF_DEVICE_PATH: ihd_path, "baudrate": 115200,
                              "flow_control": None})
    await ezsp.connect(use_thread=False)
    assert ezsp.ezsp_version == version
    (status,) = await ezsp.addEndpoint(
        endpoint=1, profileId=0x0104, deviceId=0x0051, deviceVersion=0,
        inputClusterCount=1, outputClusterCount=0, inputClusterList=[0x0000],
        outputClusterList=[])
    assert status == 0
    requests = asyncio.Queue()
    executed = []

    def on_callback(name, args):
        if name == "incomingMessageHandler":
            aps_frame = next(a for a in args if isinstance(a, t.EmberApsFrame))
            if aps_frame.clusterId == 0x0000 and aps_frame.profileId == 0x0104:
                requests.put_nowait((aps_frame, bytes(args[-1])))

    ezsp.add_callback(on_callback)

    async def basic_server():
        while True:
            aps_frame, zcl = await requests.get()
            assert zcl[0] & 0x03 == 0 and zcl[2] == 0x00          # Read Attributes
            executed.append((aps_frame.sequence, zcl))
            records = b""
            for (attr,) in struct.iter_unpack("<H", zcl[3:]):
                value = BASIC.get(attr)
                if value is None:
                    records += struct.pack("<HB", attr, 0x86)     # unsupported attribute
                else:
                    records += struct.pack("<HBB", attr, 0, 0x42) + bytes([len(value)]) + value
            frame = t.EmberApsFrame(
                profileId=0x0104, clusterId=0x0000, sourceEndpoint=1,
                destinationEndpoint=aps_frame.sourceEndpoint,
                options=t.EmberApsOption.APS_OPTION_RETRY, groupId=0, sequence=0)
            reply = bytes([0x18, zcl[1], 0x01]) + records
            await ezsp._protocol.send_unicast(0x0000, frame, 1, reply)

    server = asyncio.ensure_future(basic_server())
    await app.permit(60)
    params = t.EmberNetworkParameters(
        extendedPanId=t.ExtendedPanId.convert(EXT_PAN), panId=PAN_ID, radioTxPower=8,
        radioChannel=CHANNEL, joinMethod=t.EmberJoinMethod.USE_MAC_ASSOCIATION,
        nwkManagerId=0, nwkUpdateId=0, channels=t.Channels.ALL_CHANNELS)
    with ezsp.wait_for_stack_status(t.sl_Status.NETWORK_UP) as up:
        (status,) = await ezsp.joinNetwork(nodeType=t.EmberNodeType.ROUTER, parameters=params)
        assert t.sl_Status.from_ember_status(status) == t.sl_Status.OK
        await asyncio.wait_for(up, 5)
    device = await asyncio.wait_for(joined, 15)              # trustCenterJoinHandler + ZDO
    return ezsp, device, executed, server


@pytest.mark.parametrize("version", VERSIONS)
def test_two_ncps_join_and_exchange_aps_frames(host, version):
    hub_path = host.add(VirtualNcp(HUB_EUI, host.medium, ezsp_version=version, seed=1))
    ihd_path = host.add(VirtualNcp(IHD_EUI, host.medium, ezsp_version=version, seed=2))

    async def scenario():
        app = await start_hub(hub_path)
        ezsp = server = None
        try:
            ezsp, device, executed, server = await join_ihd(app, ihd_path, version)
            assert device.nwk == (await ezsp.getNodeId())[0]
            assert 1 in device.endpoints and device.endpoints[1].profile_id == 0x0104
            assert device.manufacturer == "smets-emu"         # read during the interview
            basic = device.endpoints[1].in_clusters[0x0000]
            success, failure = await asyncio.wait_for(
                basic.read_attributes(["manufacturer", "model"], allow_cache=False), 10)
            assert success == {"manufacturer": "smets-emu", "model": "virtual-ihd"}
            assert failure == {} and executed
            with host.lock:
                assert any(r.band == "2.4" and r.channel == CHANNEL and r.fate == "delivered"
                           for r in host.medium.records)
        finally:
            if server is not None:
                server.cancel()
            if ezsp is not None:
                await ezsp.disconnect()
            await app.shutdown()

    run(scenario())


def test_reads_under_30_percent_loss_complete_or_fail_cleanly_never_twice(host):
    hub_path = host.add(VirtualNcp(HUB_EUI, host.medium, ezsp_version=13, seed=1))
    ihd_path = host.add(VirtualNcp(IHD_EUI, host.medium, ezsp_version=13, seed=2))

    async def scenario():
        app = await start_hub(hub_path)
        ezsp = server = None
        try:
            ezsp, device, executed, server = await join_ihd(app, ihd_path, 13)
            with host.lock:
                host.medium.configure("2.4", loss=0.3)
            executed.clear()
            basic = device.endpoints[1].in_clusters[0x0000]
            outcomes = []
            for _ in range(6):
                try:
                    success, _failure = await asyncio.wait_for(
                        basic.read_attributes(["model"], allow_cache=False), 8)
                    outcomes.append(success.get("model"))
                except (zigpy.exceptions.DeliveryError, asyncio.TimeoutError) as exc:
                    outcomes.append(type(exc).__name__)
            # A read can time out although its reply reached the hub: when every MAC ack
            # of the request is lost (the data got through), the reply can arrive before
            # messageSentHandler(DELIVERY_FAILED); zigpy then retries, and drops the
            # retry's byte-identical reply as a duplicate packet. EmberZNet does the same.
            assert outcomes.count("virtual-ihd") >= 4              # MAC + APS retries
            assert set(outcomes) <= {"virtual-ihd", "DeliveryError", "TimeoutError"}
            # The NCP delivers no APS frame twice (its retries reuse the APS counter and
            # the receiver drops duplicates). zigpy's own retries after a reply timeout are
            # new APS frames carrying the same ZCL sequence number: the receiving
            # application has to drop those itself.
            aps_counters = [counter for counter, _zcl in executed]
            assert len(aps_counters) == len(set(aps_counters))
            with host.lock:
                assert any(r.fate == "lost" for r in host.medium.records)
        finally:
            if server is not None:
                server.cancel()
            if ezsp is not None:
                await ezsp.disconnect()
            await app.shutdown()

    run(scenario(), timeout=55)


# --- the EZSP layer in simulated time (bellows' framing, no pty) -------------------------
from emulator.ncp.sim import Simulation  # noqa: E402


def sim_host(version=13):
    sim = Simulation(VirtualMedium(seed=1))
    return sim, sim.host(VirtualNcp(HUB_EUI, sim.medium, ezsp_version=version))


@pytest.mark.parametrize("version", VERSIONS)
def test_version_handshake_uses_the_legacy_header_first(version):
    sim, h = sim_host(version)
    h.start()
    legacy, current = h.replies[-2:]
    assert legacy[0] == current[0] == "version"
    assert legacy[1]["protocol_version"] == current[1]["protocol_version"] == version


def test_commands_before_version_are_refused():
    sim, h = sim_host()
    h.write(b"\x1a" + b"\xc0\x38\xbc\x7e")           # RST
    sim.step()
    h.send_ezsp(h.encode("networkState"))
    sim.run_for(0.1)
    name, values = h.replies[-1]
    assert name == "invalidCommand" and values["status"] == t.EzspStatus.ERROR_VERSION_NOT_SET


def test_unknown_and_malformed_commands_get_invalid_command():
    sim, h = sim_host()
    h.start()
    h.send_ezsp(bytes([0x40, 0x00, 0x01, 0xEE, 0x0E]))      # no command 0x0EEE in v13
    sim.run_for(0.1)
    assert h.replies[-1] == ("invalidCommand",
                             {"status": t.EzspStatus.ERROR_INVALID_FRAME_ID})
    h.send_ezsp(h.encode("setConfigurationValue", config_id=t.EzspConfigId(5), value=8)[:-1])
    sim.run_for(0.1)
    assert h.replies[-1][0] == "invalidCommand"
    assert h.replies[-1][1]["status"] == t.EzspStatus.ERROR_TRUNCATED


def test_unacknowledged_reply_is_retransmitted_and_delivered_once():
    sim, h = sim_host()
    h.start()
    h.drop_next_acks = 1                             # the host misses the NCP's DATA frame
    before = len(h.replies)
    h.send_ezsp(h.encode("getEui64"))
    sim.run_for(5.0)
    data = [f for f in h.ash_frames if type(f).__name__ == "DataFrame"]
    assert data[-1].re_tx and data[-1].frm_num == data[-2].frm_num
    assert len(h.replies) == before + 1
    assert h.replies[-1] == ("getEui64", {"eui64": zt.EUI64.convert(HUB_EUI)})


def test_sub_ghz_refused_by_a_2_4_only_ncp_through_bellows(host):
    ncp = VirtualNcp(HUB_EUI, host.medium, band_support=("2.4",), ezsp_version=13, seed=1)
    path = host.add(ncp)

    async def scenario():
        app = await start_hub(path)
        try:
            (status,) = await app._ezsp.multiPhyStart(phyIndex=1, page=28, channel=5,
                                                      power=8, bitmask=0)
            assert status == t.EmberStatus.INVALID_CALL
        finally:
            await app.shutdown()

    run(scenario())
