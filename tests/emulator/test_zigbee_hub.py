"""The hub's SE endpoint (emulator/zigbee/hub.py) fed ZigbeePackets directly, and the hub
application with its clients in process (`Loopback`): the override of bellows'
`packet_received` is the code under test; replies leave through `send_packet`."""

import asyncio

import pytest
import zigpy.profiles.zha as zha
import zigpy.types as t
from zigpy.zcl import foundation
from zigpy.zcl.clusters.general import Basic, Time

from emulator.lab import ESME_EUI, GSME_EUI, HUB_EUI, Lab
from emulator.zigbee import clusters as C
from emulator.zigbee.clients import Loopback, ZclFailure
from emulator.zigbee.hub import (
    GPF_ENDPOINT,
    SE_ENDPOINT,
    SE_PROFILE,
    ZIGBEE_EPOCH,
    HubApplication,
    HubSeServer,
    Message,
    eui_of,
    hub_config,
    ieee_of,
)
from emulator.zigbee.lab import ZigbeePremise
from firmware.gbcs import envelope, utrn

C2S = foundation.Direction.Client_to_Server
S2C = foundation.Direction.Server_to_Client
Status = foundation.Status
NOW = 1_700_000_000
NODE_NWK = 0x1234
OTHER_NWK = 0x4321


def _packet(cluster_id, hdr, command, src=NODE_NWK, dst_ep=SE_ENDPOINT, profile=SE_PROFILE):
    return t.ZigbeePacket(
        src=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=src), src_ep=11,
        dst=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=0), dst_ep=dst_ep,
        tsn=hdr.tsn, profile_id=profile, cluster_id=cluster_id,
        data=t.SerializableBytes(hdr.serialize() + command.serialize()))


def _read(cluster, ids, **kw):
    hdr = foundation.ZCLHeader.general(5, foundation.GeneralCommand.Read_Attributes,
                                       direction=C2S)
    schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes].schema
    return _packet(cluster.cluster_id, hdr, schema(attribute_ids=ids), **kw)


def _cluster_command(cluster, name, fields, **kw):
    definition = getattr(cluster.ServerCommandDefs, name)
    hdr = foundation.ZCLHeader.cluster(6, definition.id, direction=C2S)
    return _packet(cluster.cluster_id, hdr, definition.schema(**fields), **kw)


def _parse(cluster, packet):
    assert packet.profile_id == SE_PROFILE
    assert packet.src_ep in (SE_ENDPOINT, GPF_ENDPOINT)
    return C.parse_frame(cluster, packet.data.serialize())


class FakeHub:
    """What HubSeServer needs of a CommsHub: the device log and receive_han."""

    def __init__(self, known):
        self.known = set(known)
        self.frames = []

    def knows(self, eui):
        return bytes(eui) in self.known

    def receive_han(self, eui, frame, now):
        self.frames.append((bytes(eui), bytes(frame)))
        return []


def _server(known=(ESME_EUI,)):
    hub = FakeHub(known)
    server = HubSeServer(hub)
    server.node_joined(NODE_NWK, ieee_of(ESME_EUI))
    server.node_joined(OTHER_NWK, ieee_of(GSME_EUI))
    return server, hub


def test_eui_conversion_is_big_endian_gbcs_order():
    ieee = ieee_of(ESME_EUI)
    assert str(ieee) == "00:db:12:34:56:78:90:a0"
    assert eui_of(ieee) == ESME_EUI


def test_basic_physical_environment_and_time_status_for_gb_devices():
    server, _ = _server()
    basic = Basic.attributes_by_name
    [reply] = server.handle(_read(Basic, [basic["physical_env"].id, basic["power_source"].id,
                                          0x4000]), NOW)
    hdr, rsp = _parse(Basic, reply)
    assert hdr.direction == S2C and hdr.tsn == 5
    assert hdr.command_id == foundation.GeneralCommand.Read_Attributes_rsp
    assert rsp.status_records[0].value.value == 0x01
    assert rsp.status_records[2].status == Status.UNSUPPORTED_ATTRIBUTE
    [reply] = server.handle(_read(Time, [0x0000, 0x0001]), NOW)
    _, rsp = _parse(Time, reply)
    assert rsp.status_records[0].value.value == NOW - ZIGBEE_EPOCH
    assert rsp.status_records[1].value.value == 0x09          # master + superseding


def test_what_is_not_a_request_for_our_endpoints_is_left_to_zigpy():
    server, _ = _server()
    assert server.handle(_read(Basic, [0], profile=zha.PROFILE_ID), NOW) is None
    assert server.handle(_read(Basic, [0], dst_ep=1), NOW) is None
    hdr = foundation.ZCLHeader.general(5, foundation.GeneralCommand.Read_Attributes_rsp,
                                       direction=S2C)
    schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes_rsp].schema
    assert server.handle(_packet(0, hdr, schema(status_records=[])), NOW) is None


def test_unsupported_cluster_command_and_malformed_frames_get_default_responses():
    server, _ = _server()
    [reply] = server.handle(_read(C.Price, [0], dst_ep=GPF_ENDPOINT), NOW)   # no Price there
    _, rsp = _parse(Basic, reply)
    assert rsp.status == Status.UNSUPPORTED_CLUSTER
    hdr = foundation.ZCLHeader.cluster(6, 0x3F, direction=C2S)
    [reply] = server.handle(_packet(C.Price.cluster_id, hdr, t.Bytes(b"")), NOW)
    _, rsp = _parse(C.Price, reply)
    assert rsp.status == Status.UNSUP_CLUSTER_COMMAND and rsp.command_id == 0x3F
    cut = _cluster_command(C.Tunneling, "request_tunnel", {
        "protocol_id": 6, "manufacturer_code": 0xFFFF, "flow_control_support": t.Bool.false,
        "maximum_incoming_transfer_size": 1500})
    cut = cut.replace(data=t.SerializableBytes(cut.data.serialize()[:-3]))
    [reply] = server.handle(cut, NOW)
    _, rsp = _parse(C.Tunneling, reply)
    assert rsp.status == Status.MALFORMED_COMMAND
    garbage = cut.replace(data=t.SerializableBytes(b"\x01"))
    assert server.handle(garbage, NOW) == []
    assert server.stats == {"malformed ZCL header": 1}
    assert server.tunnels == {}


def _request_tunnel(protocol=6, flow=False, src=NODE_NWK, size=1500):
    return _cluster_command(C.Tunneling, "request_tunnel", {
        "protocol_id": protocol, "manufacturer_code": 0xFFFF,
        "flow_control_support": t.Bool(flow), "maximum_incoming_transfer_size": size},
        src=src)


def test_request_tunnel_only_gb_hrgp_without_flow_control_and_only_for_logged_devices():
    server, _ = _server()
    [reply] = server.handle(_request_tunnel(src=OTHER_NWK), NOW)       # GSME not in the log
    _, rsp = _parse(C.Tunneling, reply)
    assert rsp.status == Status.NOT_AUTHORIZED
    [reply] = server.handle(_request_tunnel(protocol=0), NOW)
    _, rsp = _parse(C.Tunneling, reply)
    assert rsp.tunnel_status == C.TunnelStatus.Protocol_Not_Supported
    [reply] = server.handle(_request_tunnel(flow=True), NOW)
    _, rsp = _parse(C.Tunneling, reply)
    assert rsp.tunnel_status == C.TunnelStatus.Flow_Control_Not_Supported
    assert server.tunnels == {}
    [reply] = server.handle(_request_tunnel(), NOW)
    _, rsp = _parse(C.Tunneling, reply)
    assert rsp.tunnel_status == C.TunnelStatus.Success
    assert rsp.maximum_incoming_transfer_size == 1500
    assert list(server.tunnels) == [rsp.tunnel_id]
    [reply] = server.handle(_request_tunnel(), NOW)                     # a new one replaces it
    _, again = _parse(C.Tunneling, reply)
    assert list(server.tunnels) == [again.tunnel_id] and again.tunnel_id != rsp.tunnel_id


def _transfer(tunnel_id, data, src=NODE_NWK):
    return _cluster_command(C.Tunneling, "transfer_data",
                            {"tunnel_id": tunnel_id, "data": t.Bytes(data)}, src=src)


def test_transfer_data_errors_and_nothing_reaches_the_hub():
    server, hub = _server(known=(ESME_EUI, GSME_EUI))
    [reply] = server.handle(_request_tunnel(), NOW)
    tunnel_id = _parse(C.Tunneling, reply)[1].tunnel_id
    put = b"\x03\xdd" + bytes(6) + b"\x02\xab\xcd"
    for packet, status in ((_transfer(tunnel_id + 1, put), C.TransferDataStatus.No_Such_Tunnel),
                           (_transfer(tunnel_id, put, src=OTHER_NWK),
                            C.TransferDataStatus.Wrong_Device),
                           (_transfer(tunnel_id, b"\x03" + bytes(1500)),
                            C.TransferDataStatus.Data_Overflow)):
        [reply] = server.handle(packet, NOW)
        hdr, rsp = _parse(C.Tunneling, reply)
        assert hdr.command_id == C.Tunneling.ClientCommandDefs.transfer_data_error.id
        assert rsp.transfer_data_status == status
    assert hub.frames == []
    assert server.handle(_transfer(tunnel_id, put), NOW) == []          # no response
    assert hub.frames == [(ESME_EUI, put)]


def test_han_send_cuts_the_chf_frames_at_the_nodes_maximum_incoming_size():
    server, _ = _server()
    [reply] = server.handle(_request_tunnel(size=40), NOW)
    tunnel_id = _parse(C.Tunneling, reply)[1].tunnel_id
    message = b"\xdd" + bytes(6) + b"\x81\x90" + bytes(range(144))     # MAC header, BER 144
    frame = b"\x03" + message
    server.han_send(ESME_EUI, frame)
    out = server.take_outgoing()
    pieces = []
    for packet in out:
        hdr, command = _parse(C.Tunneling, packet)
        assert hdr.command_id == C.Tunneling.ClientCommandDefs.transfer_data.id
        assert command.tunnel_id == tunnel_id and packet.dst.address == NODE_NWK
        pieces.append(bytes(command.data))
    assert [len(p) for p in pieces] == [40, 40, 40, 34]                # 154 octets
    assert b"".join(pieces) == frame
    server.han_send(GSME_EUI, frame)                                  # no tunnel there
    assert server.take_outgoing() == [] and server.stats["no tunnel to the device"] == 1


# -- in process: the bellows application, its override, and the clients ------------------------

def _run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def _premise(lab, max_incoming=1500, loss=0.0, seed=0):
    holder = {}

    def factory(server):
        app = HubApplication(hub_config("/dev/null", server), server, clock=lambda: lab.now)
        holder["loopback"] = Loopback(app, loss=loss, seed=seed)
        return app

    premise = ZigbeePremise(lab, factory, max_incoming=max_incoming, wan_timeout=2.0)
    return premise, holder["loopback"]


def test_the_override_serves_se_requests_and_hands_responses_to_zigpy_as_ha(monkeypatch):
    import zigpy.application

    async def main():
        server, _ = _server()
        app = HubApplication(hub_config("/dev/null", server), server, clock=lambda: NOW)
        sent = []

        async def send_packet(packet):
            sent.append(packet)
        app.send_packet = send_packet
        passed = []
        monkeypatch.setattr(zigpy.application.ControllerApplication, "packet_received",
                            lambda self, packet: passed.append(packet))
        app.packet_received(_read(Time, [1]))
        await asyncio.sleep(0.01)
        assert len(sent) == 1 and sent[0].profile_id == SE_PROFILE and passed == []
        assert sent[0].tx_options & t.TransmitOptions.APS_Encryption
        hdr = foundation.ZCLHeader.general(5, foundation.GeneralCommand.Read_Attributes_rsp,
                                           direction=S2C)
        schema = foundation.GENERAL_COMMANDS[
            foundation.GeneralCommand.Read_Attributes_rsp].schema
        app.packet_received(_packet(0x0702, hdr, schema(status_records=[])))
        assert len(passed) == 1 and passed[0].profile_id == zha.PROFILE_ID
        app.sender.close()
    _run(main())


def test_ihd_reads_summation_demand_and_price_and_receives_reports():
    async def main():
        lab = Lab(seed=0, wan="direct")
        premise, loop = _premise(lab)
        ihd = premise.ihd(None)
        loop.attach(0x1111, ihd)
        shown = await ihd.refresh()
        assert shown["current_summ_delivered"] == lab.esme.import_register.value[1]
        assert shown["instantaneous_demand"] == lab.esme.power_register.value[1]
        assert shown["divisor"] == 1000
        assert shown["price"] == premise.server.tariff.price
        publish = await ihd.current_price()
        assert publish.currency == C.GBP and publish.provider_id == 1
        price = await ihd.read(C.Price, ["no_tier_block1_price", "currency"])
        assert price == {"no_tier_block1_price": 24500, "currency": C.GBP}
        await ihd.subscribe(min_interval=30, max_interval=600)
        premise.app.sender.put(premise.server.due_reports(lab.now))
        await asyncio.sleep(0.05)
        got = {name: value for _, name, value in ihd.reports}
        assert got["current_summ_delivered"] == lab.esme.import_register.value[1]
        assert premise.server.due_reports(lab.now + 10) == []     # within the min interval
        count = len(ihd.reports)
        lab.now += 3600
        premise.app.sender.put(premise.server.due_reports(lab.now))
        await asyncio.sleep(0.05)
        assert len(ihd.reports) == count + 2
        latest = {name: value for _, name, value in ihd.reports[count:]}
        assert latest["current_summ_delivered"] == lab.esme.import_register.value[1]
        assert latest["current_summ_delivered"] > got["current_summ_delivered"]
        with pytest.raises(ZclFailure):                                  # nothing displayed
            await ihd.last_message()
        ihd.close()
        premise.app.sender.close()
    _run(main())


def test_messages_reach_the_ihd_and_confirmations_the_hub():
    async def main():
        lab = Lab(seed=0, wan="direct")
        premise, loop = _premise(lab)
        ihd = premise.ihd(None)
        loop.attach(0x1111, ihd)
        message = Message(7, "Your tariff changes tomorrow", lab.now, 60,
                          control=C.MessageControl.Confirmation_Required)
        premise.app.sender.put(premise.server.display_message(message, [(0x1111, 11)]))
        await asyncio.sleep(0.05)
        assert [m.message for m in ihd.messages] == ["Your tariff changes tomorrow"]
        assert [c[1] for c in premise.server.confirmations] == [7]
        again = await ihd.last_message()
        assert again.message_id == 7
        ihd.close()
        premise.app.sender.close()
    _run(main())


def _utrn(lab, pence):
    head_end = lab.headends["A"]
    keys = head_end._device(ESME_EUI)
    counter = head_end.next_top_up_counter()
    shared = head_end.crypto.ecdh(head_end.credentials["pp-ka"].private_key, keys.ka_public)
    return utrn.mint(head_end.crypto, shared, head_end.eui, keys.eui, counter,
                     utrn.CLASS_PENCE, pence)


def test_ppmid_top_up_once_and_a_replay_is_refused():
    async def main():
        lab = Lab(seed=0, wan="direct")
        premise, loop = _premise(lab)
        ppmid = premise.ppmid(None)
        loop.attach(0x3333, ppmid)
        credit = lab.esme.gbcs_objects.credits[0]
        before = credit.amount
        code = _utrn(lab, 500).encode()
        rsp = await ppmid.top_up(code)
        assert rsp.result_type == C.TopUpResult.Accepted and rsp.top_up_value == 500
        assert credit.amount == before + 500 == rsp.credit_remaining
        rsp = await ppmid.top_up(code)
        assert rsp.result_type == C.TopUpResult.Rejected_Duplicate
        assert credit.amount == before + 500
        rsp = await ppmid.top_up(b"1234")
        assert rsp.result_type == C.TopUpResult.Rejected_Invalid
        shown = await ppmid.read(C.Prepayment, ["credit_remaining"])
        assert shown["credit_remaining"] == before + 500
        ppmid.close()
        premise.app.sender.close()
    _run(main())


@pytest.mark.parametrize("max_incoming", [1500, 48])
def test_gbcs_read_travels_through_the_zigbee_tunnel_and_back(max_incoming):
    async def main():
        lab = Lab(seed=0, wan="direct")
        premise, loop = _premise(lab, max_incoming=max_incoming)
        node = premise.esme_node(None, max_incoming=max_incoming)
        loop.attach(0x2222, node)
        await node.open()
        outcome = await lab.request("A", "4.1.1", ESME_EUI)
        assert outcome.ok, outcome.response_code
        assert outcome.fields["import_wh"] == lab.esme.import_register.value[1]
        han = [h for h in outcome.hops if h.layer == "han"]
        assert [h.name for h in han] == ["hub → ESME", "ESME → hub"]
        assert all(h.gbcs is not None and h.checks for h in han)      # verified as GBCS
        tunnel = [p for _, _, p in loop.sent if p.cluster_id == C.Tunneling.cluster_id]
        biggest = max(len(C.parse_frame(C.Tunneling, p.data.serialize())[1].data)
                      for p in tunnel if p.data.serialize()[2] in (1, 2))
        assert biggest <= max_incoming
        outcome = await lab.run("A", lambda h: h.disable_supply(ESME_EUI), "7.2", "7.2",
                                ESME_EUI)
        assert outcome.ok and lab.esme.supply_state == 0
        node.close()
        premise.app.sender.close()
    _run(main())


def test_lossy_han_every_request_completes_or_times_out_and_nothing_runs_twice():
    async def main():
        lab = Lab(seed=3, wan="direct")
        premise, loop = _premise(lab, loss=0.3, seed=5)
        node = premise.esme_node(None, max_incoming=64)
        loop.attach(0x2222, node)
        for _ in range(10):                       # the tunnel request itself may be lost
            try:
                await node.open()
                break
            except asyncio.TimeoutError:
                continue
        executed = []
        original = lab.esme_gbcs.receive_gbcs

        def counting(data, now):
            out = original(data, now)
            message = envelope.parse(data)
            executed.append(message.originator_counter)
            return out
        lab.esme_gbcs.receive_gbcs = counting
        codes = []
        for _ in range(6):
            outcome = await lab.request("A", "4.1.1", ESME_EUI)
            codes.append(outcome.response_code)
        assert set(codes) <= {"I0", "E21"}, codes
        assert "I0" in codes
        assert len(executed) == len(set(executed))          # each command at most once
        assert loop.lost > 0
        node.close()
        premise.app.sender.close()
    _run(main(), timeout=90)


def test_gpf_endpoint_serves_the_gsme_mirror():
    async def main():
        lab = Lab(seed=0, wan="direct")
        premise, loop = _premise(lab)
        cad = premise.cad(None)
        loop.attach(0x4444, cad)
        got = await cad.read(C.Metering, ["current_summ_delivered", "unit_of_measure"],
                             endpoint=GPF_ENDPOINT)
        assert got["current_summ_delivered"] == lab.gpf.mirror["summation"]
        assert got["unit_of_measure"] == 0x01                  # m3
        cad.close()
        premise.app.sender.close()
    _run(main())


def test_hub_config_registers_the_se_endpoints_through_additional_endpoints():
    server = HubSeServer()
    config = hub_config("/dev/ttyUSB0", server, channel=15)
    app = HubApplication(config, server)
    endpoints = {d.endpoint: d for d in app.config["additional_endpoints"]}
    assert endpoints[SE_ENDPOINT].profile == SE_PROFILE
    assert C.Tunneling.cluster_id in endpoints[SE_ENDPOINT].input_clusters
    assert endpoints[GPF_ENDPOINT].input_clusters == [0x0000, 0x0702]
    assert app.config["network"]["channel"] == 15
    assert HUB_EUI == bytes.fromhex("00DB1234567890A2")


def test_a_valve_command_waits_at_the_gpf_and_the_gsme_takes_it_over_the_tunnel_on_wake():
    from emulator.lab import ACB_EUI, SUPPLIER_EUIS
    from firmware.gbcs import security
    from tests.fuzz.parties import InstalledDevice

    async def main():
        lab = Lab(seed=2, wan="direct")
        premise, loop = _premise(lab, max_incoming=48)
        node = premise.gsme_node(None, max_incoming=48)
        loop.attach(0x5555, node)
        await node.open()
        parties = InstalledDevice.in_lab(lab, GSME_EUI, SUPPLIER_EUIS["A"], ACB_EUI)
        device = parties.device
        counter = lab.headends["A"].next_counter()
        command = parties.command("GCS32", {}, counter, lab.now)
        wakes = lab.gsme.wakes
        assert premise.server.receive_wan(command, lab.now) == []              # queued
        assert lab.gsme.valve == "open" and len(lab.gpf.queue) == 1
        up = await premise.wake_gsme(timeout=5.0)
        assert lab.gsme.wakes == wakes + 1 and lab.gsme.valve == "closed"
        assert not lab.gpf.queue
        [raw] = up
        answer = envelope.parse(raw)
        assert answer.originator == GSME_EUI and answer.originator_counter == counter
        assert security.verify_signature(lab.crypto, device["ds"].public_xy, answer)
        pieces = [p for f, _, p in loop.sent if f == 0x5555
                  and p.cluster_id == C.Tunneling.cluster_id]
        assert len(pieces) > 2                      # GET, then the answer cut at 48 octets
        node.close()
        premise.app.sender.close()
    _run(main())
