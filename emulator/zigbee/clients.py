"""HAN devices that talk to the hub's SE endpoint: IHD, CAD, PPMID, and the ESME/GSME
nodes at the far end of the GB-HRGP tunnel.

Each is an `SeClient`: it builds its requests with zigpy (`emulator.zigbee.clusters`),
hands `ZigbeePacket`s to an async `send` and is fed what arrives through
`packet_received(packet)`; replies are matched by cluster and ZCL sequence number. Where
it runs is the caller's: `NodeApplication` hosts one on bellows (a zigpy
`ControllerApplication` on its own NCP, the same profile 0x0109 workaround as the hub);
`Loopback` wires them to a `HubApplication` in process.

    ihd = Ihd(send, ieee)
    summation = (await ihd.read(Metering, ["current_summ_delivered"]))["current_summ_delivered"]
    price = await ihd.current_price()          # PublishPrice fields
    await ihd.subscribe(min_interval=0, max_interval=30)   # Configure Reporting
    node = TunnelNode(send, esme_ieee, EsmeNode(esme_gbcs), clock)
    await node.open()                          # RequestTunnel (GB-HRGP, 1500)
"""

from __future__ import annotations

import asyncio
import logging

import zigpy.types as t
import zigpy.zdo.types
from zigpy.zcl import foundation

from emulator.zigbee import clusters as C
from emulator.zigbee.fragmentation import ApsFragmentation
from emulator.zigbee.hub import (HUB_NWK, S2C, SE_ENDPOINT, SE_PROFILE, BellowsApplication,
                                 OrderedSender, USE_THREAD)
from emulator.zigbee.tunnel import TunnelStream
from firmware.han import tunnel as T

LOGGER = logging.getLogger(__name__)

CLIENT_ENDPOINT = 11         # not 1, 2 or 242: zigpy registers those itself
C2S = foundation.Direction.Client_to_Server
Status = foundation.Status
DEVICE_ID_IHD = 0x0504       # ZSE 1.4 5.7: In-Premises Display
DEVICE_ID_PPMID = 0x0504     # a PPMID is an IPD with the Prepayment client
DEVICE_ID_CAD = 0x0507       # ZSE 1.4 5.7: Physical device / CAD (consumer access device)
DEVICE_ID_METER = 0x0501


class ZclFailure(Exception):
    """A request answered with a failure status (Default Response or record status)."""

    def __init__(self, cluster_id, command, status):
        super().__init__("cluster 0x%04X %s: %r" % (cluster_id, command, status))
        self.cluster_id = cluster_id
        self.command = command
        self.status = status


class SeClient:
    """The client side of the hub's SE clusters, sans transport."""

    device_type = DEVICE_ID_IHD
    input_clusters = ()
    output_clusters = (C.Metering.cluster_id, C.Price.cluster_id)

    def __init__(self, send, ieee, endpoint=CLIENT_ENDPOINT, hub_nwk=HUB_NWK,
                 hub_endpoint=SE_ENDPOINT, timeout=5.0):
        self.sender = OrderedSender(send)
        self.ieee = ieee
        self.endpoint = endpoint
        self.hub_nwk = hub_nwk
        self.hub_endpoint = hub_endpoint
        self.timeout = timeout
        self.reports: list = []               # (cluster id, attribute name, value)
        self.messages: list = []              # DisplayMessage commands received
        self.on_report = None
        self._pending: dict = {}
        self._tsn = 0

    # -- requests --------------------------------------------------------------------------
    async def read(self, cluster, names, endpoint=None) -> dict:
        """Read Attributes: name -> value for each SUCCESS record; ZclFailure when none."""
        ids = [cluster.attributes_by_name[n].id for n in names]
        rsp = await self._general(cluster, foundation.GeneralCommand.Read_Attributes,
                                  {"attribute_ids": ids}, endpoint)
        out = {}
        for record in rsp.status_records:
            if record.status == Status.SUCCESS:
                out[cluster.attributes[record.attrid].name] = record.value.value
        if not out and ids:
            raise ZclFailure(cluster.cluster_id, "read", rsp.status_records[0].status)
        return out

    async def configure_reporting(self, cluster, name, min_interval, max_interval,
                                  reportable_change=0, endpoint=None):
        definition = cluster.attributes_by_name[name]
        record = foundation.AttributeReportingConfig()
        record.direction = foundation.ReportingDirection.SendReports
        record.attrid = definition.id
        record.datatype = definition.zcl_type
        record.min_interval = min_interval
        record.max_interval = max_interval
        if foundation.DataType.from_type_id(definition.zcl_type).type_class == \
                foundation.DataClass.Analog:
            record.reportable_change = reportable_change
        rsp = await self._general(cluster, foundation.GeneralCommand.Configure_Reporting,
                                  {"config_records": [record]}, endpoint)
        for status in rsp.status_records:
            if status.status != Status.SUCCESS:
                raise ZclFailure(cluster.cluster_id, "configure reporting", status.status)
        return rsp

    async def command(self, cluster, name, fields, endpoint=None):
        """A cluster command to the hub; its specific response (or Default Response)."""
        definition = getattr(cluster.ServerCommandDefs, name)   # client to server
        tsn = self._next_tsn()
        hdr = foundation.ZCLHeader.cluster(tsn, definition.id, direction=C2S)
        return await self._request(cluster.cluster_id, tsn, hdr, definition.schema(**fields),
                                   endpoint, name)

    def notify(self, cluster, name, fields, endpoint=None, nwk=None):
        """A cluster command that expects no answer (TransferData), queued in order."""
        definition = getattr(cluster.ServerCommandDefs, name)   # client to server
        hdr = foundation.ZCLHeader.cluster(self._next_tsn(), definition.id, direction=C2S)
        hdr.frame_control = hdr.frame_control.replace(disable_default_response=True)
        self.sender.put([self._packet(cluster.cluster_id, hdr, definition.schema(**fields),
                                      endpoint, nwk)])

    async def _general(self, cluster, command_id, fields, endpoint):
        tsn = self._next_tsn()
        hdr = foundation.ZCLHeader.general(tsn, command_id, direction=C2S)
        schema = foundation.GENERAL_COMMANDS[command_id].schema
        return await self._request(cluster.cluster_id, tsn, hdr, schema(**fields), endpoint,
                                   str(command_id))

    async def _request(self, cluster_id, tsn, hdr, command, endpoint, what):
        future = asyncio.get_running_loop().create_future()
        key = (cluster_id, tsn)
        self._pending[key] = future
        try:
            self.sender.put([self._packet(cluster_id, hdr, command, endpoint)])
            rsp = await asyncio.wait_for(future, self.timeout)
        finally:
            self._pending.pop(key, None)
        if isinstance(rsp, foundation.GENERAL_COMMANDS[
                foundation.GeneralCommand.Default_Response].schema) and \
                rsp.command_id == hdr.command_id and rsp.status != Status.SUCCESS:
            raise ZclFailure(cluster_id, what, rsp.status)
        return rsp

    def _packet(self, cluster_id, hdr, command, endpoint=None, nwk=None):
        return t.ZigbeePacket(
            src_ep=self.endpoint,
            dst=t.AddrModeAddress(addr_mode=t.AddrMode.NWK,
                                  address=self.hub_nwk if nwk is None else nwk),
            dst_ep=self.hub_endpoint if endpoint is None else endpoint,
            tsn=hdr.tsn, profile_id=SE_PROFILE, cluster_id=cluster_id,
            data=t.SerializableBytes(hdr.serialize() + command.serialize()),
            tx_options=t.TransmitOptions.ACK | t.TransmitOptions.APS_Encryption)

    def _next_tsn(self):
        self._tsn = (self._tsn + 1) & 0xFF
        return self._tsn

    # -- what arrives --------------------------------------------------------------------
    def packet_received(self, packet) -> bool:
        """Take one received packet; False when it is not for this client."""
        if packet.profile_id != SE_PROFILE or packet.dst_ep != self.endpoint:
            return False
        from zigpy.zcl import Cluster
        cluster = Cluster._registry.get(packet.cluster_id)
        if cluster is None:
            return True
        try:
            hdr, command = C.parse_frame(cluster, packet.data.serialize())
        except ValueError:
            return True
        future = self._pending.get((packet.cluster_id, hdr.tsn))
        is_report = hdr.frame_control.frame_type == foundation.FrameType.GLOBAL_COMMAND and \
            hdr.command_id == foundation.GeneralCommand.Report_Attributes
        if is_report:
            self._report(cluster, command)
        elif hdr.direction == S2C and future is not None and not future.done():
            future.set_result(command)
        elif hdr.frame_control.frame_type == foundation.FrameType.CLUSTER_COMMAND:
            self.unsolicited(packet, hdr, cluster, command)
        return True

    def _report(self, cluster, command):
        for report in command.attribute_reports:
            definition = cluster.attributes.get(report.attrid)
            name = definition.name if definition is not None else report.attrid
            self.reports.append((cluster.cluster_id, name, report.value.value))
            if self.on_report is not None:
                self.on_report(cluster.cluster_id, name, report.value.value)

    def unsolicited(self, packet, hdr, cluster, command):
        """A server command nobody asked for (DisplayMessage, TransferData...)."""
        if isinstance(command, bytes):
            return
        if command.command.name in ("display_message", "display_protected_message"):
            self.messages.append(command)
            if command.message_control & C.MessageControl.Confirmation_Required:
                self.notify(C.Messaging, "message_confirmation",
                            {"message_id": command.message_id,
                             "confirmation_time": command.start_time}, nwk=packet.src.address,
                            endpoint=packet.src_ep)

    def close(self):
        self.sender.close()


class Ihd(SeClient):
    """In-home display: shows energy (Metering), price, credit; receives messages."""

    output_clusters = (C.Metering.cluster_id, C.Price.cluster_id, C.Prepayment.cluster_id,
                       C.Messaging.cluster_id, 0x000A)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.display: dict = {}

    async def current_price(self):
        """GetCurrentPrice -> PublishPrice (ZSE 1.4 D.4.2.3.1, D.4.2.4.1)."""
        publish = await self.command(C.Price, "get_current_price", {"command_options": 0})
        self.display["price"] = publish.price
        self.display["price_trailing_digit"] = int(publish.price_trailing_digit_and_price_tier) >> 4
        return publish

    async def refresh(self):
        """Read what the display shows: summation, demand, price, credit."""
        metering = await self.read(C.Metering, ["current_summ_delivered",
                                                "instantaneous_demand", "divisor",
                                                "unit_of_measure"])
        self.display.update(metering)
        await self.current_price()
        try:
            self.display.update(await self.read(C.Prepayment, ["credit_remaining"]))
        except ZclFailure:
            pass
        return dict(self.display)

    async def subscribe(self, min_interval=0, max_interval=60):
        for name in ("current_summ_delivered", "instantaneous_demand"):
            await self.configure_reporting(C.Metering, name, min_interval, max_interval)

    async def last_message(self):
        return await self.command(C.Messaging, "get_last_message", {})


class Cad(Ihd):
    """Consumer access device: the IHD's reads, for a third-party app (no messages)."""

    device_type = DEVICE_ID_CAD
    output_clusters = (C.Metering.cluster_id, C.Price.cluster_id, 0x000A)


class Ppmid(Ihd):
    """Prepayment meter interface device: credit display and keypad top-up."""

    device_type = DEVICE_ID_PPMID

    async def top_up(self, code: bytes):
        """ConsumerTopUp (ZSE 1.4 D.7.2.3.5) -> ConsumerTopUpResponse fields."""
        return await self.command(C.Prepayment, "consumer_top_up", {
            "originating_device": int(C.OriginatingDevice.In_Home_Display),
            "topup_code": t.LVBytes(code)})


class TunnelNode(SeClient):
    """An ESME or GSME at the far end of the GB-HRGP tunnel: RequestTunnel to the hub,
    then TransferData both ways. `device` is a HAN node (`receive_tunnel(data, now)`, and
    `poll(now)` for a sleepy GSME: docs/GBCS_INTERFACES.md 6)."""

    device_type = DEVICE_ID_METER
    input_clusters = (C.Metering.cluster_id,)
    output_clusters = (C.Tunneling.cluster_id,)

    def __init__(self, send, ieee, device, clock, max_incoming=T.MAX_TRANSFER, **kwargs):
        super().__init__(send, ieee, **kwargs)
        self.device = device
        self.clock = clock
        self.max_incoming = max_incoming
        self.tunnel_id = None
        self.hub_max = None
        self._from_hub = None
        self._to_hub = None

    async def open(self):
        rsp = await self.command(C.Tunneling, "request_tunnel", {
            "protocol_id": C.TunnelProtocol.GB_HRGP, "manufacturer_code": 0xFFFF,
            "flow_control_support": t.Bool.false,
            "maximum_incoming_transfer_size": self.max_incoming})
        if rsp.tunnel_status != C.TunnelStatus.Success:
            raise ZclFailure(C.Tunneling.cluster_id, "request_tunnel", rsp.tunnel_status)
        self.tunnel_id = rsp.tunnel_id
        self.hub_max = rsp.maximum_incoming_transfer_size
        self._from_hub = TunnelStream(self.max_incoming, T.MAX_TRANSFER)
        self._to_hub = TunnelStream(T.MAX_TRANSFER, self.hub_max)
        return rsp

    async def close_tunnel(self):
        if self.tunnel_id is not None:
            tunnel_id, self.tunnel_id = self.tunnel_id, None
            await self.command(C.Tunneling, "close_tunnel", {"tunnel_id": tunnel_id})

    def unsolicited(self, packet, hdr, cluster, command):
        if isinstance(command, bytes) or cluster.cluster_id != C.Tunneling.cluster_id:
            return super().unsolicited(packet, hdr, cluster, command)
        name = command.command.name
        if name == "transfer_data" and command.tunnel_id == self.tunnel_id:
            now = int(self.clock())
            for frame in self._from_hub.feed(bytes(command.data), now):
                self.send_to_hub(self.device.receive_tunnel(frame, now) or ())
        elif name == "transfer_data_error":
            LOGGER.debug("hub refused TransferData: %r", command)
        elif name == "tunnel_closure_notification" and command.tunnel_id == self.tunnel_id:
            self.tunnel_id = None

    def send_to_hub(self, frames):
        now = int(self.clock())
        for frame in frames:
            for piece in self._to_hub.feed(frame, now):
                self.notify(C.Tunneling, "transfer_data",
                            {"tunnel_id": self.tunnel_id, "data": t.Bytes(piece)})

    def poll(self):
        """A sleepy device's own frames (a GSME's wake: GET), sent when due."""
        if self.tunnel_id is None or not hasattr(self.device, "poll"):
            return
        self.send_to_hub(self.device.poll(int(self.clock())) or ())


# -- where they run ----------------------------------------------------------------------------

class NodeApplication(ApsFragmentation, BellowsApplication):
    """bellows' ControllerApplication hosting one `SeClient` on its own NCP: SE frames for
    the client's endpoint go to it (zigpy would drop profile 0x0109), its packets go out
    through `send_packet` (APS-fragmented when longer than one frame). The client's
    endpoint is registered via `additional_endpoints` (`node_config`)."""

    def __init__(self, config: dict, client_factory):
        super().__init__(config)
        self.client = client_factory(lambda packet: self.send_packet(packet))

    def packet_received(self, packet: t.ZigbeePacket) -> None:
        """SE frames go to the client; the rest is dropped. zigpy here is only the host
        side of a radio, not a coordinator with a device database: it knows neither the
        hub nor its siblings, and would chase each sender as an unknown device (the
        NCP's own stack answers the ZDO requests a joined router must answer)."""
        if not self.client.packet_received(packet):
            LOGGER.debug("not an SE frame for this device, dropped: %r", packet)

    async def join(self, pan_id, extended_pan_id, channel, page=0, timeout=15.0,
                   node_type=None):
        """Join the hub's network as a router (a mains-powered HAN device) with the raw
        EZSP `joinNetwork`: bellows only forms networks (its `load_network_info` wants a
        coordinator), so the host side is brought up here by hand: callbacks in, the
        controller marked running, node info read back. A sub-GHz page is encoded in the
        channel's top three bits as EmberZNet does ((page - 24) << 5 | channel)."""
        import bellows.types as bt
        import zigpy.state
        await self.connect()
        radio_channel = channel if page == 0 else ((page - 24) << 5) | channel
        params = bt.EmberNetworkParameters(
            extendedPanId=extended_pan_id, panId=pan_id, radioTxPower=8,
            radioChannel=radio_channel, joinMethod=bt.EmberJoinMethod.USE_MAC_ASSOCIATION,
            nwkManagerId=0x0000, nwkUpdateId=0, channels=bt.Channels.ALL_CHANNELS)
        ezsp = self._ezsp
        with ezsp.wait_for_stack_status(bt.sl_Status.NETWORK_UP) as network_up:
            (status,) = await ezsp.joinNetwork(
                node_type if node_type is not None else bt.EmberNodeType.ROUTER, params)
            if bt.sl_Status.from_ember_status(status) != bt.sl_Status.OK:
                raise JoinFailed("joinNetwork refused: %r" % (status,))
            try:
                await asyncio.wait_for(network_up, timeout)
            except asyncio.TimeoutError:
                raise JoinFailed("no NETWORK_UP within %.0f s (the hub not permitting "
                                 "joins, or out of range)" % timeout) from None
        ezsp.add_callback(self.ezsp_callback_handler)
        (nwk,) = await ezsp.getNodeId()
        (ieee,) = await ezsp.getEui64()
        self.state.node_info = zigpy.state.NodeInfo(
            nwk=t.NWK(nwk), ieee=t.EUI64(ieee), logical_type=zigpy.zdo.types.LogicalType.Router)
        self.controller_event.set()
        return int(nwk)


class JoinFailed(Exception):
    """A HAN device could not join the hub's network."""


def node_config(path, client_class, endpoint=CLIENT_ENDPOINT, baudrate=115200) -> dict:
    import zigpy.config as conf
    return {
        conf.CONF_DEVICE: {conf.CONF_DEVICE_PATH: path, conf.CONF_DEVICE_BAUDRATE: baudrate},
        conf.CONF_DATABASE: None,
        USE_THREAD: False,
        conf.CONF_ADDITIONAL_ENDPOINTS: [{
            "endpoint": endpoint, "profile": SE_PROFILE,
            "device_type": client_class.device_type, "device_version": 0,
            "input_clusters": list(client_class.input_clusters),
            "output_clusters": list(client_class.output_clusters)}],
    }


class Loopback:
    """The hub application and clients in one process, with no radio: the hub's
    `send_packet` and each client's `send` hand the packet to the other side as the
    NCP would deliver it (source address filled in). Loss, if asked for, drops packets
    from a seeded generator. The hub's `packet_received` override is the code under test."""

    def __init__(self, hub_app, loss=0.0, seed=0):
        import random
        self.hub_app = hub_app
        self.clients: dict[int, SeClient] = {}
        self.random = random.Random(seed)
        self.loss = loss
        self.sent: list = []                  # (from nwk, to nwk, packet), in order
        self.lost = 0
        hub_app.send_packet = self._from_hub

    def attach(self, nwk, client):
        self.clients[nwk] = client
        client.sender.send = lambda packet, nwk=nwk: self._from_client(nwk, packet)
        self.hub_app.se.node_joined(nwk, client.ieee)

    def _dropped(self):
        if self.loss and self.random.random() < self.loss:
            self.lost += 1
            return True
        return False

    async def _from_hub(self, packet):
        self.sent.append((HUB_NWK, packet.dst.address, packet))
        client = self.clients.get(packet.dst.address)
        if client is None or self._dropped():
            return
        await asyncio.sleep(0)
        client.packet_received(packet.replace(
            src=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=HUB_NWK), dst=None))

    async def _from_client(self, nwk, packet):
        self.sent.append((nwk, HUB_NWK, packet))
        if self._dropped():
            return
        await asyncio.sleep(0)
        self.hub_app.packet_received(packet.replace(
            src=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=nwk),
            dst=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=HUB_NWK)))
