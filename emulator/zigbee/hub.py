"""The comms hub as ZigBee SE HAN coordinator, on zigpy and bellows.

Two layers:

- `HubSeServer` is sans-IO: `handle(packet, now)` takes a received `zigpy.types.
  ZigbeePacket` and returns the packets to send (replies, and the TransferData commands
  the hub's routing produced meanwhile). It serves the hub's SE endpoint (profile 0x0109):
  Basic (PhysicalEnvironment 0x01), Time (TimeStatus 0x09: master + superseding, GBCS
  10.2.2 per DOMAIN.md), Metering (the ESME's readings), Price, Prepayment, Messaging and
  Tunneling; and the GPF's endpoint (Basic + Metering from the GPF's mirror of the GSME).
  The Tunneling server carries `CommsHub`'s GB-HRGP frames: the CHF keeps all the
  routing, this layer replaces the virtual HAN's transport (docs/GBCS_INTERFACES.md 6, 7).
  Every ZCL frame is built and parsed by zigpy (`emulator.zigbee.clusters`).
- `HubApplication` subclasses bellows' `ControllerApplication` and overrides
  `packet_received`: zigpy drops every frame whose profile is not HA/ZLL
  (`zigpy.device.Device._parse_packet_header`; zigpy#1709, #1810), so SE requests to our
  endpoints go to the `HubSeServer` and its packets go out through `send_packet` with
  profile 0x0109 (ZIGBEE.md "The profile 0x0109 trap"). The SE endpoints are registered
  through zigpy's `additional_endpoints` config (`hub_config`).

    server = HubSeServer(comms_hub, meter=EsmeMeter(esme), gas=GpfMeter(gpf))
    comms_hub.han_send = server.han_send        # the CHF's HAN is now ZigBee Tunneling
    app = HubApplication(hub_config("/dev/ttyUSB0"), server, clock=lab_clock)
    await app.startup(auto_form=True)
    answers = await app.exchange(gbcs_command)  # WAN in, what the hub sends up
"""

from __future__ import annotations

import asyncio
import logging
import time

import zigpy.profiles.zha as zha
import zigpy.types as t
from bellows.zigbee.application import ControllerApplication as BellowsApplication
from zigpy.zcl import foundation
from zigpy.zcl.clusters.general import Basic, Time
from zigpy.zdo import types as zdo_t

from emulator.zigbee import clusters as C
from emulator.zigbee.fragmentation import ApsFragmentation
from emulator.zigbee.tunnel import TunnelStream
from firmware.han import tunnel as T

LOGGER = logging.getLogger(__name__)

SE_PROFILE = C.SE_PROFILE
# zigpy registers endpoints 1 (HA), 2 (ZLL) and 242 (Green Power) itself
SE_ENDPOINT = 9                   # the hub's ESI endpoint
GPF_ENDPOINT = 10                 # the GPF's mirror of the GSME
HUB_NWK = 0x0000
ZIGBEE_EPOCH = 946684800          # 2000-01-01T00:00:00Z: ZCL UTCTime counts from here
TIME_STATUS_MASTER_SUPERSEDING = 0x09
PHYSICAL_ENVIRONMENT = 0x01       # GBCS 10.2.2: what a GB HAN device looks for on the hub
DEVICE_ID_ESI = 0x0500            # ZSE 1.4 5.7: Energy Service Interface
DEVICE_ID_METER = 0x0501          # ZSE 1.4 5.7: Metering device (the GPF's mirror)
# bellows runs its serial protocol in a thread of its own by default; in ours, its tasks
# and timing share the loop the hub's sends and the lab's requests run on
USE_THREAD = "use_thread"         # bellows.config.CONF_USE_THREAD
TX_OPTIONS = t.TransmitOptions.ACK | t.TransmitOptions.APS_Encryption
Status = foundation.Status
S2C = foundation.Direction.Server_to_Client
C2S = foundation.Direction.Client_to_Server
READ_RSP = foundation.GeneralCommand.Read_Attributes_rsp


def eui_of(ieee: t.EUI64) -> bytes:
    """GBCS EUI-64 (big-endian bytes) of a zigpy IEEE address (little-endian list)."""
    return bytes(reversed(ieee.serialize()))


def ieee_of(eui: bytes) -> t.EUI64:
    return t.EUI64(reversed(bytes(eui)))


def zigbee_time(seconds: int) -> int:
    return max(0, int(seconds) - ZIGBEE_EPOCH)


# -- what the endpoints serve ----------------------------------------------------------------

class EsmeMeter:
    """Metering attribute values from an `Esme`'s registers (Wh, W): kWh with divisor
    1000 (ZSE 1.4 D.3.2.2.4 formatting set)."""

    def __init__(self, esme):
        self.esme = esme

    def attributes(self, now) -> dict:
        esme = self.esme
        esme.advance(now)
        supply = {0: 0x00, 1: 0x02, 2: 0x01}.get(esme.supply_state, 0x00)
        return {
            "current_summ_delivered": esme.import_register.value[1],
            "instantaneous_demand": esme.power_register.value[1],
            "supply_status": supply,
            "unit_of_measure": 0x00,          # kWh
            "multiplier": 1,
            "divisor": 1000,
            "summation_formatting": 0x33,     # 6 digits left, 3 right of the point
            "demand_formatting": 0x33,
            "metering_device_type": 0x00,     # electric
            "status": 0x00,
        }


class GpfMeter:
    """Metering attribute values from the GPF's mirror of the GSME (`gpf.mirror`:
    summation in dm3, i.e. m3 with divisor 1000, as GCS13a reads them)."""

    def __init__(self, gpf):
        self.gpf = gpf

    def attributes(self, now) -> dict:
        mirror = self.gpf.mirror
        if mirror is None:
            return {}
        return {
            "current_summ_delivered": mirror["summation"],
            "supply_status": mirror.get("supply_status", 0x02),
            "remaining_battery_life_days": mirror.get("battery_days", 0),
            "unit_of_measure": 0x01,          # m3
            "multiplier": 1,
            "divisor": 1000,
            "summation_formatting": 0x33,
            "metering_device_type": 0x80,     # mirrored gas metering
        }


class Tariff:
    """The price the hub publishes (ZSE 1.4 D.4.2.4.1): `price` in units of the
    currency's 10**-trailing_digit per kWh (default 24.500 p/kWh = £0.24500), one tier."""

    def __init__(self, provider_id=0x0000_0001, issuer_event_id=1, price=24500,
                 trailing_digit=5, tier=1, label=b"GB single rate", standing_charge=60000,
                 start_time=0):
        self.provider_id = provider_id
        self.issuer_event_id = issuer_event_id
        self.price = price
        self.trailing_digit = trailing_digit
        self.tier = tier
        self.label = bytes(label)[:12]
        self.standing_charge = standing_charge
        self.start_time = start_time

    def attributes(self, now) -> dict:
        return {
            "tier1_price_label": t.LVBytes(self.label),
            "commodity_type": 0x00,           # electric metering
            "standing_charge": self.standing_charge,
            "no_tier_block1_price": self.price,
            "tier1_block1_price": self.price,
            "tariff_label": t.LVBytes(self.label),
            "number_of_price_tiers_in_use": 1,
            "number_of_block_thresholds_in_use": 0,
            "unit_of_measure": 0x00,
            "currency": C.GBP,
            "price_trailing_digit": self.trailing_digit << 4,
        }

    def publish_price(self, now):
        return {
            "provider_id": self.provider_id, "rate_label": t.LVBytes(self.label),
            "issuer_event_id": self.issuer_event_id, "current_time": zigbee_time(now),
            "unit_of_measure": 0x00, "currency": C.GBP,
            "price_trailing_digit_and_price_tier": (self.trailing_digit << 4) | self.tier,
            "number_of_price_tiers_and_register_tier": (1 << 4) | self.tier,
            "start_time": zigbee_time(self.start_time) if self.start_time else 0,
            "duration_in_minutes": 0xFFFF, "price": self.price,
        }


class EsmePrepayment:
    """Prepayment attributes and ConsumerTopUp from the ESME's GB objects: a top-up code
    is a UTRN entered at the ESME's Token Gateway, as a PPMID's keypad entry is."""

    def __init__(self, esme):
        self.esme = esme

    def attributes(self, now) -> dict:
        gb = getattr(self.esme, "gbcs_objects", None)
        if gb is None:
            return {}
        credits = gb.credits
        token = gb.token_gateway
        return {
            "payment_control_configuration": 0x0000,
            "credit_remaining": credits[0].amount,
            "emergency_credit_remaining": credits[1].amount if len(credits) > 1 else 0,
            "credit_status": 0x01 if credits[0].amount > 0 else 0x00,
            "credit_remaining_timestamp": zigbee_time(now),
            "top_up_amount_1": token.last_value_pence,
        }

    def top_up(self, code: bytes, now: int):
        """(result, value, credit remaining) for ZSE 1.4 ConsumerTopUpResponse."""
        from firmware.cosem import token_gateway as TG
        gb = self.esme.gbcs_objects
        try:
            text = bytes(code).decode("ascii")
            pence = gb.token_gateway.enter(text.encode(), now)
        except UnicodeDecodeError:
            return C.TopUpResult.Rejected_Invalid, 0, gb.credits[0].amount
        except TG.TokenRefused as refused:
            result = {TG.VALIDATION_FAILURE: C.TopUpResult.Rejected_Duplicate,
                      TG.EXECUTION_FAILURE: C.TopUpResult.Rejected_Max_Credit}.get(
                refused.status_code, C.TopUpResult.Rejected_Invalid)
            return result, 0, gb.credits[0].amount
        return C.TopUpResult.Accepted, pence, gb.credits[0].amount


class Message:
    """The message the hub displays (ZSE 1.4 D.5.2.3.1)."""

    def __init__(self, message_id, text, start, duration_minutes=0xFFFF, control=0x00):
        self.message_id = message_id
        self.text = text
        self.start = start
        self.duration_minutes = duration_minutes
        self.control = control

    def fields(self):
        return {"message_id": self.message_id, "message_control": self.control,
                "start_time": zigbee_time(self.start),
                "duration_in_minutes": self.duration_minutes, "message": self.text}


class Tunnel:
    __slots__ = ("tunnel_id", "ieee", "nwk", "endpoint", "peer_max", "to_peer", "from_peer",
                 "last")

    def __init__(self, tunnel_id, ieee, nwk, endpoint, peer_max, own_max, now):
        self.tunnel_id = tunnel_id
        self.ieee = ieee
        self.nwk = nwk
        self.endpoint = endpoint
        self.peer_max = peer_max
        # CHF frames are cut at 1500 (firmware.han.tunnel); the peer takes `peer_max`
        self.to_peer = TunnelStream(T.MAX_TRANSFER, peer_max)
        self.from_peer = TunnelStream(own_max, T.MAX_TRANSFER)
        self.last = now


class Reporting:
    """One Configure Reporting entry (ZCL r7 2.5.7): a client's report of one attribute."""

    __slots__ = ("nwk", "endpoint", "local_ep", "cluster", "attr", "min_interval",
                 "max_interval", "last_sent", "last_value")

    def __init__(self, nwk, endpoint, local_ep, cluster, attr, min_interval, max_interval):
        self.nwk = nwk
        self.endpoint = endpoint
        self.local_ep = local_ep
        self.cluster = cluster
        self.attr = attr
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.last_sent = None
        self.last_value = None


# -- the sans-IO SE server -----------------------------------------------------------------

class HubSeServer:
    def __init__(self, comms_hub=None, meter=None, gas=None, tariff=None, prepayment=None,
                 endpoint=SE_ENDPOINT, gpf_endpoint=GPF_ENDPOINT, max_incoming=T.MAX_TRANSFER,
                 close_tunnel_timeout=0xFFFF, manufacturer=b"smets-emu", model=b"CHF"):
        self.comms_hub = comms_hub
        self.meter = meter
        self.gas = gas
        self.tariff = tariff if tariff is not None else Tariff()
        self.prepayment = prepayment
        self.endpoint = endpoint
        self.gpf_endpoint = gpf_endpoint
        self.max_incoming = max_incoming
        self.close_tunnel_timeout = close_tunnel_timeout
        self.manufacturer = manufacturer
        self.model = model
        self.nodes: dict[int, t.EUI64] = {}          # NWK -> IEEE of joined nodes
        self.tunnels: dict[int, Tunnel] = {}
        self.message: Message | None = None
        self.confirmations: list = []                # (ieee, message id, confirmation time)
        self.reporting: dict = {}
        self.upstream: list[bytes] = []              # what the CHF sends up the WAN
        self.on_upstream = None                      # callable(list[bytes]) when set
        self.stats: dict[str, int] = {}
        self._outbox: list[t.ZigbeePacket] = []
        self._tsn = 0
        self._next_tunnel = 1
        self._now = 0

    @property
    def endpoints(self):
        return (self.endpoint, self.gpf_endpoint)

    def descriptors(self):
        """The SE endpoints as ZDO simple descriptors (for `additional_endpoints`)."""
        se = zdo_t.SimpleDescriptor(
            endpoint=self.endpoint, profile=SE_PROFILE, device_type=DEVICE_ID_ESI,
            device_version=0,
            input_clusters=[Basic.cluster_id, Time.cluster_id, C.Price.cluster_id,
                            C.Metering.cluster_id, C.Messaging.cluster_id,
                            C.Tunneling.cluster_id, C.Prepayment.cluster_id,
                            C.KeyEstablishment.cluster_id],
            output_clusters=[Time.cluster_id])
        gpf = zdo_t.SimpleDescriptor(
            endpoint=self.gpf_endpoint, profile=SE_PROFILE, device_type=DEVICE_ID_METER,
            device_version=0, input_clusters=[Basic.cluster_id, C.Metering.cluster_id],
            output_clusters=[])
        return [se, gpf]

    # -- the HAN's membership ------------------------------------------------------------
    def node_joined(self, nwk: int, ieee: t.EUI64):
        self.nodes[int(nwk)] = ieee
        for tunnel in self.tunnels.values():
            if tunnel.ieee == ieee:
                tunnel.nwk = int(nwk)             # rejoined with a new short address

    def node_left(self, ieee: t.EUI64):
        for nwk in [n for n, i in self.nodes.items() if i == ieee]:
            del self.nodes[nwk]
        for tid in [k for k, v in self.tunnels.items() if v.ieee == ieee]:
            del self.tunnels[tid]

    # -- CHF side ------------------------------------------------------------------------
    def han_send(self, eui: bytes, data: bytes):
        """`CommsHub.han_send`: a GB-HRGP piece for the device at `eui`, sent as
        TransferData (server to client) on that device's tunnel."""
        tunnel = self._tunnel_of(ieee_of(eui))
        if tunnel is None:
            self._count("no tunnel to the device")
            return
        for piece in tunnel.to_peer.feed(data, self._now):
            self._send_cluster(tunnel.nwk, tunnel.endpoint, self.endpoint, C.Tunneling,
                               "transfer_data", S2C, {"tunnel_id": tunnel.tunnel_id,
                                                     "data": t.Bytes(piece)})

    def receive_wan(self, data: bytes, now: int) -> list[bytes]:
        """A WAN message for the hub: what goes up now (the rest arrives as upstream)."""
        self._now = int(now)
        return list(self.comms_hub.receive_wan(data, int(now)))

    def take_outgoing(self) -> list[t.ZigbeePacket]:
        out, self._outbox = self._outbox, []
        return out

    # -- received packets ----------------------------------------------------------------
    def handle(self, packet: t.ZigbeePacket, now: int):
        """Serve one received packet; returns the packets to send, or None when it is
        not a request for one of our endpoints (a response: the caller passes it on)."""
        self._now = int(now)
        if packet.profile_id != SE_PROFILE or packet.dst_ep not in self.endpoints:
            return None
        try:
            hdr, payload = foundation.ZCLHeader.deserialize(packet.data.serialize())
        except (ValueError, KeyError):
            self._count("malformed ZCL header")
            return self.take_outgoing()
        if hdr.direction != C2S:
            return None
        nwk = packet.src.address
        if hdr.frame_control.is_manufacturer_specific:       # ZCL r7 2.6.3, Table 2-12
            general = hdr.frame_control.frame_type == foundation.FrameType.GLOBAL_COMMAND
            self._default_response(packet, hdr, Status.UNSUP_MANUF_GENERAL_COMMAND if general
                                   else Status.UNSUP_MANUF_CLUSTER_COMMAND)
            return self.take_outgoing()
        cluster = self._served(packet.dst_ep, packet.cluster_id)
        if cluster is None:
            self._default_response(packet, hdr, Status.UNSUPPORTED_CLUSTER)
            return self.take_outgoing()
        try:
            _, command = C.parse_frame(cluster, packet.data.serialize())
        except ValueError:
            command = None
        if command is None or isinstance(command, bytes):
            status = (Status.MALFORMED_COMMAND if command is None else
                      Status.UNSUP_CLUSTER_COMMAND
                      if hdr.frame_control.frame_type == foundation.FrameType.CLUSTER_COMMAND
                      else Status.UNSUP_GENERAL_COMMAND)
            self._default_response(packet, hdr, status)
            return self.take_outgoing()
        if hdr.frame_control.frame_type == foundation.FrameType.GLOBAL_COMMAND:
            self._general(packet, hdr, cluster, command, nwk)
        else:
            self._cluster_command(packet, hdr, cluster, command, nwk)
        return self.take_outgoing()

    def _served(self, endpoint, cluster_id):
        if endpoint == self.endpoint:
            table = {Basic.cluster_id: Basic, Time.cluster_id: Time,
                     C.Metering.cluster_id: C.Metering, C.Price.cluster_id: C.Price,
                     C.Prepayment.cluster_id: C.Prepayment,
                     C.Messaging.cluster_id: C.Messaging,
                     C.Tunneling.cluster_id: C.Tunneling,
                     C.KeyEstablishment.cluster_id: C.KeyEstablishment}
        else:
            table = {Basic.cluster_id: Basic, C.Metering.cluster_id: C.Metering}
        return table.get(cluster_id)

    # -- attribute values ----------------------------------------------------------------
    def attribute_values(self, endpoint, cluster, now) -> dict:
        """name -> value of what `cluster` on `endpoint` serves now."""
        cid = cluster.cluster_id
        if cid == Basic.cluster_id:
            return {"zcl_version": 0x01, "app_version": 1, "stack_version": 2,
                    "hw_version": 1, "manufacturer": self.manufacturer.decode(),
                    "model": (self.model if endpoint == self.endpoint else b"GPF").decode(),
                    "power_source": 0x01, "physical_env": PHYSICAL_ENVIRONMENT}
        if cid == Time.cluster_id:
            return {"time": zigbee_time(now), "time_status": TIME_STATUS_MASTER_SUPERSEDING,
                    "time_zone": 0, "local_time": zigbee_time(now),
                    "last_set_time": zigbee_time(now), "valid_until_time": 0xFFFFFFFF}
        if cid == C.Metering.cluster_id:
            source = self.meter if endpoint == self.endpoint else self.gas
            return source.attributes(now) if source is not None else {}
        if cid == C.Price.cluster_id:
            return self.tariff.attributes(now)
        if cid == C.Prepayment.cluster_id:
            return self.prepayment.attributes(now) if self.prepayment is not None else {}
        if cid == C.Tunneling.cluster_id:
            return {"close_tunnel_timeout": self.close_tunnel_timeout}
        if cid == C.KeyEstablishment.cluster_id:
            return {"key_establishment_suite": C.KeyEstablishmentSuite.Crypto_Suite_2}
        return {}

    def _record(self, cluster, attrid, values):
        """ReadAttributeRecord for one attribute id."""
        definition = cluster.attributes.get(attrid)
        if definition is None or definition.name not in values:
            return foundation.ReadAttributeRecord(attrid=attrid,
                                                  status=Status.UNSUPPORTED_ATTRIBUTE)
        value = definition.type(values[definition.name])
        return foundation.ReadAttributeRecord(
            attrid=attrid, status=Status.SUCCESS,
            value=foundation.TypeValue(type=definition.zcl_type, value=value))

    # -- general commands (ZCL r7 2.5) --------------------------------------------------
    def _general(self, packet, hdr, cluster, command, nwk):
        command_id = hdr.command_id
        if command_id == foundation.GeneralCommand.Read_Attributes:
            values = self.attribute_values(packet.dst_ep, cluster, self._now)
            records = [self._record(cluster, a, values) for a in command.attribute_ids]
            self._send_general(packet, hdr.tsn, READ_RSP, {"status_records": records})
        elif command_id == foundation.GeneralCommand.Configure_Reporting:
            self._configure_reporting(packet, hdr, cluster, command, nwk)
        elif command_id == foundation.GeneralCommand.Default_Response:
            pass
        else:
            self._default_response(packet, hdr, Status.UNSUP_GENERAL_COMMAND)

    def _configure_reporting(self, packet, hdr, cluster, command, nwk):
        if not command.config_records:           # ZCL r7 2.5.7.1: one or more records
            self._default_response(packet, hdr, Status.MALFORMED_COMMAND)
            return
        records = []
        for config in command.config_records:
            if config.direction != foundation.ReportingDirection.SendReports:
                records.append(foundation.ConfigureReportingResponseRecord(
                    status=Status.UNSUPPORTED_ATTRIBUTE, direction=config.direction,
                    attrid=config.attrid))
                continue
            if config.attrid not in cluster.attributes:
                records.append(foundation.ConfigureReportingResponseRecord(
                    status=Status.UNSUPPORTED_ATTRIBUTE, direction=config.direction,
                    attrid=config.attrid))
                continue
            key = (nwk, packet.src_ep, packet.dst_ep, cluster.cluster_id, config.attrid)
            if config.max_interval == 0xFFFF:
                self.reporting.pop(key, None)
            else:
                self.reporting[key] = Reporting(nwk, packet.src_ep, packet.dst_ep, cluster,
                                                config.attrid, config.min_interval,
                                                config.max_interval)
            records.append(foundation.ConfigureReportingResponseRecord(
                status=Status.SUCCESS))
        self._send_general(packet, hdr.tsn, foundation.GeneralCommand.Configure_Reporting_rsp,
                           {"status_records": records})

    def due_reports(self, now) -> list[t.ZigbeePacket]:
        """Report Attributes for every configured report that is due (its max interval
        passed, or its value changed and its min interval passed)."""
        self._now = int(now)
        for entry in self.reporting.values():
            values = self.attribute_values(entry.local_ep, entry.cluster, now)
            definition = entry.cluster.attributes[entry.attr]
            value = values.get(definition.name)
            if value is None:
                continue
            since = None if entry.last_sent is None else now - entry.last_sent
            due = since is None or (entry.max_interval and since >= entry.max_interval) or (
                value != entry.last_value and since >= entry.min_interval)
            if not due:
                continue
            entry.last_sent = now
            entry.last_value = value
            attribute = foundation.Attribute(
                attrid=entry.attr, value=foundation.TypeValue(
                    type=definition.zcl_type, value=definition.type(value)))
            self._send(entry.nwk, entry.endpoint, entry.local_ep, entry.cluster.cluster_id,
                       foundation.ZCLHeader.general(self._next_tsn(),
                                                    foundation.GeneralCommand.Report_Attributes,
                                                    direction=S2C),
                       foundation.GENERAL_COMMANDS[
                           foundation.GeneralCommand.Report_Attributes].schema(
                           attribute_reports=[attribute]))
        return self.take_outgoing()

    # -- cluster commands ------------------------------------------------------------------
    def _cluster_command(self, packet, hdr, cluster, command, nwk):
        name = command.command.name
        handler = getattr(self, "_on_%s" % name, None)
        if handler is None:
            self._default_response(packet, hdr, Status.UNSUP_CLUSTER_COMMAND)
            return
        status = handler(packet, hdr, command, nwk)
        if status is not None:
            self._default_response(packet, hdr, status)

    def _on_get_current_price(self, packet, hdr, command, nwk):
        self._reply(packet, hdr, C.Price, "publish_price", self.tariff.publish_price(self._now))

    def _on_price_acknowledgement(self, packet, hdr, command, nwk):
        return Status.SUCCESS

    def _on_get_last_message(self, packet, hdr, command, nwk):
        if self.message is None:
            return Status.NOT_FOUND
        self._reply(packet, hdr, C.Messaging, "display_message", self.message.fields())

    def _on_message_confirmation(self, packet, hdr, command, nwk):
        self.confirmations.append((self.nodes.get(nwk), command.message_id,
                                   command.confirmation_time))
        return Status.SUCCESS

    def _on_consumer_top_up(self, packet, hdr, command, nwk):
        if self.prepayment is None:
            return Status.UNSUP_CLUSTER_COMMAND
        result, value, credit = self.prepayment.top_up(command.topup_code, self._now)
        self._reply(packet, hdr, C.Prepayment, "consumer_top_up_response",
                    {"result_type": int(result), "top_up_value": value,
                     "source_of_top_up": int(command.originating_device),
                     "credit_remaining": credit})

    def _on_request_tunnel(self, packet, hdr, command, nwk):
        ieee = self.nodes.get(nwk)
        if ieee is None or self.comms_hub is None or not self.comms_hub.knows(eui_of(ieee)):
            return Status.NOT_AUTHORIZED          # not in the CHF device log
        if command.protocol_id != C.TunnelProtocol.GB_HRGP:
            status, tunnel_id = C.TunnelStatus.Protocol_Not_Supported, 0xFFFF
        elif command.flow_control_support:
            status, tunnel_id = C.TunnelStatus.Flow_Control_Not_Supported, 0xFFFF
        elif command.maximum_incoming_transfer_size < 2:
            status, tunnel_id = C.TunnelStatus.Busy, 0xFFFF
        else:
            for old in [k for k, v in self.tunnels.items() if v.ieee == ieee]:
                del self.tunnels[old]             # one GB-HRGP tunnel per device
            tunnel_id = self._next_tunnel_id()
            self.tunnels[tunnel_id] = Tunnel(tunnel_id, ieee, nwk, packet.src_ep,
                                             command.maximum_incoming_transfer_size,
                                             self.max_incoming, self._now)
            status = C.TunnelStatus.Success
        self._reply(packet, hdr, C.Tunneling, "request_tunnel_response",
                    {"tunnel_id": tunnel_id, "tunnel_status": status,
                     "maximum_incoming_transfer_size": self.max_incoming})

    def _on_close_tunnel(self, packet, hdr, command, nwk):
        tunnel = self.tunnels.get(command.tunnel_id)
        if tunnel is None or tunnel.ieee != self.nodes.get(nwk):
            return Status.NOT_FOUND
        del self.tunnels[command.tunnel_id]
        return Status.SUCCESS

    def _on_transfer_data(self, packet, hdr, command, nwk):
        tunnel = self.tunnels.get(command.tunnel_id)
        error = None
        if tunnel is None:
            error = C.TransferDataStatus.No_Such_Tunnel
        elif tunnel.ieee != self.nodes.get(nwk):
            error = C.TransferDataStatus.Wrong_Device
        elif len(command.data) > self.max_incoming:
            error = C.TransferDataStatus.Data_Overflow
        if error is not None:
            self._count("TransferData refused")
            self._reply(packet, hdr, C.Tunneling, "transfer_data_error",
                        {"tunnel_id": command.tunnel_id, "transfer_data_status": error})
            return None
        tunnel.nwk, tunnel.endpoint, tunnel.last = nwk, packet.src_ep, self._now
        eui = eui_of(tunnel.ieee)
        up = []
        for piece in tunnel.from_peer.feed(bytes(command.data), self._now):
            up.extend(self.comms_hub.receive_han(eui, piece, self._now))
        self._upstream(up)
        return None                               # TransferData has no response

    def _on_transfer_data_error(self, packet, hdr, command, nwk):
        self._count("TransferDataError from a node")
        return None

    def _on_get_supported_tunnel_protocols(self, packet, hdr, command, nwk):
        return Status.UNSUP_CLUSTER_COMMAND

    def _upstream(self, messages):
        if not messages:
            return
        self.upstream.extend(messages)
        if self.on_upstream is not None:
            self.on_upstream(list(messages))

    # -- messaging pushed by the hub ------------------------------------------------------
    def display_message(self, message: Message, destinations):
        """Send DisplayMessage to each (nwk, endpoint) and keep it for GetLastMessage."""
        self.message = message
        for nwk, endpoint in destinations:
            self._send_cluster(nwk, endpoint, self.endpoint, C.Messaging, "display_message",
                               S2C, message.fields())
        return self.take_outgoing()

    # -- building frames (zigpy) -----------------------------------------------------------
    def _next_tsn(self):
        self._tsn = (self._tsn + 1) & 0xFF
        return self._tsn

    def _next_tunnel_id(self):
        while self._next_tunnel in self.tunnels or self._next_tunnel == 0xFFFF:
            self._next_tunnel = (self._next_tunnel + 1) & 0xFFFF
        tunnel_id = self._next_tunnel
        self._next_tunnel = (self._next_tunnel + 1) & 0xFFFF
        return tunnel_id

    def _reply(self, packet, hdr, cluster, name, fields):
        definition = getattr(cluster.ClientCommandDefs, name)   # server to client
        self._send(packet.src.address, packet.src_ep, packet.dst_ep, cluster.cluster_id,
                   foundation.ZCLHeader.cluster(hdr.tsn, definition.id, direction=S2C),
                   definition.schema(**fields))

    def _send_cluster(self, nwk, endpoint, local_ep, cluster, name, direction, fields):
        definition = getattr(cluster.ClientCommandDefs, name)   # server to client
        self._send(nwk, endpoint, local_ep, cluster.cluster_id,
                   foundation.ZCLHeader.cluster(self._next_tsn(), definition.id,
                                                direction=direction),
                   definition.schema(**fields))

    def _send_general(self, packet, tsn, command_id, fields):
        schema = foundation.GENERAL_COMMANDS[command_id].schema
        self._send(packet.src.address, packet.src_ep, packet.dst_ep, packet.cluster_id,
                   foundation.ZCLHeader.general(tsn, command_id, direction=S2C),
                   schema(**fields))

    def _default_response(self, packet, hdr, status):
        if hdr.frame_control.disable_default_response and status == Status.SUCCESS:
            return
        if hdr.command_id == foundation.GeneralCommand.Default_Response and \
                hdr.frame_control.frame_type == foundation.FrameType.GLOBAL_COMMAND:
            return                                # never answer a default response
        self._send_general(packet, hdr.tsn, foundation.GeneralCommand.Default_Response,
                           {"command_id": hdr.command_id, "status": status})

    def _send(self, nwk, endpoint, local_ep, cluster_id, hdr, command):
        hdr.frame_control = hdr.frame_control.replace(disable_default_response=True)
        self._outbox.append(t.ZigbeePacket(
            src=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=HUB_NWK),
            src_ep=local_ep,
            dst=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=nwk),
            dst_ep=endpoint, tsn=hdr.tsn, profile_id=SE_PROFILE, cluster_id=cluster_id,
            data=t.SerializableBytes(hdr.serialize() + command.serialize()),
            tx_options=TX_OPTIONS, radius=0))

    def _tunnel_of(self, ieee):
        for tunnel in self.tunnels.values():
            if tunnel.ieee == ieee:
                return tunnel
        return None

    def _count(self, reason):
        self.stats[reason] = self.stats.get(reason, 0) + 1


class OrderedSender:
    """Sends packets one after another through an async `send` (TransferData pieces
    must keep their order); a failed send is counted, never raised."""

    def __init__(self, send):
        self.send = send
        self.failures = 0
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    def put(self, packets):
        if not packets:
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run())
        for packet in packets:
            self._queue.put_nowait(packet)

    async def _run(self):
        while True:
            packet = await self._queue.get()
            try:
                await self.send(packet)
            except Exception as e:        # a lost frame is the HAN's loss, not fatal
                self.failures += 1
                LOGGER.debug("packet not sent: %r", e)
            finally:
                self._queue.task_done()

    async def drain(self, timeout=5.0):
        """Wait until everything put so far was sent (or failed)."""
        if self._queue is not None:
            try:
                await asyncio.wait_for(self._queue.join(), timeout)
            except asyncio.TimeoutError:
                pass

    def close(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
            self._queue = None


# -- the bellows application -------------------------------------------------------------------

def hub_config(path, server: HubSeServer | None = None, channel=None, baudrate=115200,
               database=None, extra=None) -> dict:
    """A bellows config dict with the hub's SE endpoints as zigpy `additional_endpoints`."""
    import zigpy.config as conf
    server = server if server is not None else HubSeServer()
    config = {
        conf.CONF_DEVICE: {conf.CONF_DEVICE_PATH: path, conf.CONF_DEVICE_BAUDRATE: baudrate},
        conf.CONF_DATABASE: database,
        USE_THREAD: False,        # the serial protocol on our event loop, not bellows' thread
        conf.CONF_ADDITIONAL_ENDPOINTS: [
            {"endpoint": d.endpoint, "profile": d.profile, "device_type": d.device_type,
             "device_version": d.device_version, "input_clusters": list(d.input_clusters),
             "output_clusters": list(d.output_clusters)} for d in server.descriptors()],
        conf.CONF_OTA: {conf.CONF_OTA_ENABLED: False} if hasattr(conf, "CONF_OTA_ENABLED")
        else {},
    }
    if channel is not None:
        config[conf.CONF_NWK] = {conf.CONF_NWK_CHANNEL: channel}
    if extra:
        config.update(extra)
    return config


class HubApplication(ApsFragmentation, BellowsApplication):
    """bellows' ControllerApplication with the hub's SE endpoints served by a
    `HubSeServer` (the profile 0x0109 workaround), the CHF's WAN side, and APS
    fragmentation of what it sends (`emulator.zigbee.fragmentation`)."""

    def __init__(self, config: dict, server: HubSeServer, clock=None):
        super().__init__(config)
        self.se = server
        self.clock = clock if clock is not None else (lambda: int(time.time()))
        self._upstream_queue: asyncio.Queue | None = None
        self.sender = OrderedSender(lambda packet: self.send_packet(packet))
        server.on_upstream = self._on_upstream

    # zigpy's hook for every received frame
    def packet_received(self, packet: t.ZigbeePacket) -> None:
        if packet.profile_id == SE_PROFILE:
            out = self.se.handle(packet, self.clock())
            if out is not None:
                self._queue_packets(out)
                return
            # an SE response from a remote server: zigpy matches it as HA (same ZCL frame)
            packet = packet.replace(profile_id=zha.PROFILE_ID)
        super().packet_received(packet)

    def handle_join(self, nwk, ieee, parent_nwk, *args, **kwargs):
        self.se.node_joined(nwk, ieee)
        return super().handle_join(nwk, ieee, parent_nwk, *args, **kwargs)

    def handle_leave(self, nwk, ieee, *args, **kwargs):
        self.se.node_left(ieee)
        return super().handle_leave(nwk, ieee, *args, **kwargs)

    # -- the WAN side ------------------------------------------------------------------------
    async def exchange(self, data: bytes, timeout: float = 5.0, settle: float = 0.2):
        """One WAN message through the hub: what it answers now, plus what comes up from
        the HAN until `timeout` (or `settle` seconds after the first such answer)."""
        queue = self._queue()
        while not queue.empty():
            queue.get_nowait()
        up = self.se.receive_wan(data, self.clock())
        self._queue_packets(self.se.take_outgoing())
        if up:
            return up
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return up
            try:
                up.extend(await asyncio.wait_for(queue.get(), remaining))
            except asyncio.TimeoutError:
                return up
            deadline = min(deadline, loop.time() + settle)

    def _queue(self):
        if self._upstream_queue is None:
            self._upstream_queue = asyncio.Queue()
        return self._upstream_queue

    def _on_upstream(self, messages):
        self._queue().put_nowait(messages)

    def _queue_packets(self, packets):
        self.sender.put(packets)

    async def report_loop(self, period: float = 1.0):
        """Send due attribute reports every `period` seconds (run as a task)."""
        while True:
            self._queue_packets(self.se.due_reports(self.clock()))
            await asyncio.sleep(period)

    async def shutdown(self, *args, **kwargs):
        self.sender.close()
        return await super().shutdown(*args, **kwargs)
