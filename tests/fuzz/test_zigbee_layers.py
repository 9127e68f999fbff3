"""The ZigBee layers under generated cases (issue 6): ZCL Smart Energy, ASH and EZSP,
from `emulator.strategies.zigbee`.

- zcl: every case goes through the firmware's ZCL decoder (`firmware.zcl`: header, then
  the general or SE command it names) and through zigpy's (`clusters.parse_frame`);
  each decodes or raises its own error (ZclError, ValueError), and where both decode
  they read the same header, attribute ids, default response and SE fields. Then the
  hub's SE endpoint (`HubSeServer`, on the lab's CHF, ESME and GPF) takes the case: a
  frame zigpy cannot read is answered with a Default Response carrying
  MALFORMED_COMMAND, a command the cluster does not have with UNSUP_*_COMMAND, a frame
  without a readable header with nothing; none of these changes the server's state,
  every answer is a frame zigpy reads, and a valid Read Attributes is answered after
  each case.
- ash: the ASH decoder (`emulator.ncp.ash`) on every case: a frame decodes as bellows
  reads it or raises AshError; a flipped bit, a stray escape or a frame ending in an
  escape is always refused. Then the virtual NCP (`VirtualNcp`, the same object bellows
  drives on a pty) is fed lines of valid and broken frames and noise: whatever it sends
  back parses in bellows, and after each line the host's RST gets RSTACK and the EZSP
  `version` command its answer.
- ezsp: the NCP's EZSP decoder (`ezsp.CommandTable`) for v8, v13 and v18 on every
  case: a request decodes to bellows' own arguments or raises EzspError with the
  EzspStatus the NCP answers; an unknown frame id, the response direction bit, a bad
  frame control byte or a short header never decode. Then the live NCP of each version
  takes requests through ASH: a malformed one is answered with `invalidCommand` and
  that status, a valid one with its own reply (or `invalidCommand` where the virtual NCP
  has no handler), and `echo` is answered after each.

The decoders take the full budget (10,000 cases each in CI). The hub and live NCP runs
are smaller (LIVE_CASES, 1,000 in CI) because each case is a whole ZCL or ASH/EZSP
exchange through a device.
"""

import bellows.ash as bash
import bellows.types as bt
import zigpy.types as t
from hypothesis import strategies as st
from zigpy.zcl import foundation

from emulator.lab import ESME_EUI, GSME_EUI, Lab
from emulator.ncp import ash
from emulator.ncp.ezsp import CommandTable, EzspError, canonical
from emulator.ncp.ncp import VirtualNcp
from emulator.ncp.sim import Simulation
from emulator.strategies import zigbee as Z
from emulator.zigbee import clusters as C
from emulator.zigbee.hub import (EsmeMeter, EsmePrepayment, GpfMeter, HubSeServer,
                                 SE_ENDPOINT, SE_PROFILE, ieee_of)
from firmware.zcl import frame as fw_frame
from firmware.zcl import se as fw_se
from firmware.zcl.types import ZclError
from tests.fuzz.budget import CASES_PER_LAYER, run_cases

LIVE_CASES = max(1, CASES_PER_LAYER // 10)
Status = foundation.Status
S2C = foundation.Direction.Server_to_Client
DEFAULT_RESPONSE = foundation.GeneralCommand.Default_Response
NOW = 1_700_000_000
NODE_NWK = 0x1234


# -- ZCL ---------------------------------------------------------------------------------

CLUSTERS = {cluster.cluster_id: cluster for cluster in Z.SE_CLUSTERS}


def firmware_reading(data):
    """(header fields, payload reading) by the firmware's codec, or ZclError."""
    frame = fw_frame.decode(data)
    fields = (frame.frame_control, frame.manufacturer_code, frame.tsn, frame.command_id)
    return fields, frame


def firmware_payload(cluster_id, frame):
    """The firmware's reading of the payload where it has a reader, else None."""
    if frame.cluster_specific:
        return fw_se.decode(cluster_id, frame.server_to_client, frame.command_id,
                            frame.payload)
    if frame.command_id == fw_frame.READ_ATTRIBUTES and not frame.server_to_client:
        return fw_frame.decode_read_attributes(frame.payload)
    if frame.command_id == fw_frame.READ_ATTRIBUTES_RESPONSE and frame.server_to_client:
        return fw_frame.decode_read_attributes_response(frame.payload)
    if frame.command_id == fw_frame.DEFAULT_RESPONSE:
        return fw_frame.decode_default_response(frame.payload)
    return None


def agree_on_header(fields, hdr):
    frame_control, manufacturer, tsn, command_id = fields
    assert frame_control == hdr.frame_control.serialize()[0]
    assert manufacturer == (hdr.manufacturer if hdr.frame_control.is_manufacturer_specific
                            else None)
    assert (tsn, command_id) == (hdr.tsn, hdr.command_id)


def agree_on_payload(frame, reading, command):
    """Where the firmware and zigpy both read a payload, the values are the same."""
    if isinstance(command, bytes) or reading is None:
        return
    if isinstance(reading, dict):                          # an SE command
        for name, value in reading.items():
            if value is not None and name in command.as_dict():
                ours = command.as_dict()[name]
                assert (list(value) if isinstance(value, list) else value) == (
                    list(ours) if isinstance(ours, list) else ours), name
    elif frame.command_id == fw_frame.READ_ATTRIBUTES:
        assert reading == list(command.attribute_ids)
    elif frame.command_id == fw_frame.DEFAULT_RESPONSE:
        assert reading == (command.command_id, command.status)


def check_zcl_decoders(sample):
    cluster = CLUSTERS[sample.cluster_id]
    try:
        fields, frame = firmware_reading(sample.data)
        reading = firmware_payload(sample.cluster_id, frame)
    except ZclError as e:
        assert e.reason and (e.offset is None or 0 <= e.offset <= len(sample.data))
        fields = reading = frame = None
    try:
        hdr, command = C.parse_frame(cluster, sample.data)
    except ValueError:
        return
    if fields is not None:
        agree_on_header(fields, hdr)
        agree_on_payload(frame, reading, command)


class HubUnderTest:
    """The hub's SE server on the lab's CHF, ESME and GPF, one node joined."""

    def __init__(self):
        lab = Lab(seed=0, wan="direct")
        self.server = HubSeServer(lab.hub, meter=EsmeMeter(lab.esme), gas=GpfMeter(lab.gpf),
                                  prepayment=EsmePrepayment(lab.esme))
        self.server.node_joined(NODE_NWK, ieee_of(ESME_EUI))
        self.server.node_joined(NODE_NWK + 1, ieee_of(GSME_EUI))

    def state(self):
        s = self.server
        return (dict(s.nodes), {k: (v.ieee, v.nwk, v.endpoint) for k, v in s.tunnels.items()},
                s.message, list(s.confirmations), dict(s.reporting), list(s.upstream))

    def handle(self, data, cluster_id, dst_ep=SE_ENDPOINT):
        packet = t.ZigbeePacket(
            src=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=NODE_NWK), src_ep=11,
            dst=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=0), dst_ep=dst_ep,
            tsn=data[1] if len(data) > 1 else 0, profile_id=SE_PROFILE,
            cluster_id=cluster_id, data=t.SerializableBytes(data))
        return self.server.handle(packet, NOW)


HUB = None


def hub():
    global HUB
    if HUB is None:
        HUB = HubUnderTest()
    return HUB


def replies_of(cluster, packets):
    """Every packet the hub sends is a server-to-client ZCL frame zigpy reads."""
    out = []
    for packet in packets:
        assert packet.profile_id == SE_PROFILE
        hdr, command = C.parse_frame(cluster, packet.data.serialize())
        assert hdr.direction == S2C
        out.append((hdr, command))
    return out


def expected_refusal(cluster, data):
    """The Default Response status a frame must get without touching state, None when
    the frame is a command the server may act on, or 'silent' when no answer can be
    addressed (no readable header) or the frame is not a request."""
    try:
        hdr, _ = foundation.ZCLHeader.deserialize(data)
    except ValueError:
        return "silent"
    general = hdr.frame_control.frame_type == foundation.FrameType.GLOBAL_COMMAND
    if hdr.direction == S2C or general and hdr.command_id == DEFAULT_RESPONSE:
        return "silent"             # ZCL r7 2.5.12.2: never a Default Response to one
    if hdr.frame_control.is_manufacturer_specific:
        return Status.UNSUP_MANUF_GENERAL_COMMAND if general else \
            Status.UNSUP_MANUF_CLUSTER_COMMAND
    try:
        _, command = C.parse_frame(cluster, data)
    except ValueError:
        return Status.MALFORMED_COMMAND
    if isinstance(command, bytes):
        return Status.UNSUP_GENERAL_COMMAND if general else Status.UNSUP_CLUSTER_COMMAND
    return None


def price_read():
    hdr = foundation.ZCLHeader.general(0x5A, foundation.GeneralCommand.Read_Attributes)
    ids = [C.Price.AttributeDefs.currency.id, C.Price.AttributeDefs.tier1_price_label.id]
    command = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes].schema(
        attribute_ids=ids)
    return hdr.serialize() + command.serialize()


PRICE_READ = price_read()


def check_hub(sample):
    h = hub()
    cluster = CLUSTERS[sample.cluster_id]
    before = h.state()
    refusal = expected_refusal(cluster, sample.data)
    answer = h.handle(sample.data, sample.cluster_id)
    if refusal == "silent":
        assert not answer
    elif refusal is not None:
        [(hdr, rsp)] = replies_of(cluster, answer)
        assert hdr.command_id == foundation.GeneralCommand.Default_Response
        assert hdr.tsn == foundation.ZCLHeader.deserialize(sample.data)[0].tsn
        assert rsp.status == refusal
    else:
        replies_of(cluster, answer or [])
    if refusal is not None:
        assert h.state() == before, "a refused frame changed the hub's state"
    [(hdr, rsp)] = replies_of(C.Price, h.handle(PRICE_READ, C.Price.cluster_id))
    assert hdr.tsn == 0x5A
    assert [r.status for r in rsp.status_records] == [Status.SUCCESS, Status.SUCCESS]
    assert rsp.status_records[0].value.value == C.GBP


def test_zcl_layer_decoders():
    run_cases("zcl", Z.zcl_se_traffic(), check_zcl_decoders)


def test_zcl_layer_hub_se_endpoint():
    """Requests only (the hub leaves server-to-client frames to zigpy)."""
    run_cases("zcl-hub", Z.zcl_se_traffic(directions=(Z.C2S,)), check_hub, cases=LIVE_CASES)


# -- what the ZCL fuzzing found (regressions) ----------------------------------------------

def _refusal_status(data, cluster=C.Price):
    [(hdr, rsp)] = replies_of(cluster, hub().handle(data, cluster.cluster_id))
    assert hdr.command_id == DEFAULT_RESPONSE
    return rsp.status


def test_a_general_command_id_zigpy_does_not_define_is_unsupported_not_a_crash():
    # GeneralCommand(0x17) is a pseudo-member that GENERAL_COMMANDS lacks: parse_frame
    # raised KeyError out of the hub's handler
    hdr, command = C.parse_frame(C.Price, bytes((0x00, 0x42, 0x17)))
    assert (hdr.command_id, command) == (0x17, b"")
    assert _refusal_status(bytes((0x00, 0x42, 0x17))) == Status.UNSUP_GENERAL_COMMAND


def test_a_reserved_frame_type_is_malformed():
    # frame type 0b10 was read as a general command, then served as a cluster command
    for fc in (0x02, 0x03):
        try:
            C.parse_frame(C.Price, bytes((fc, 0x42, 0x00, 0x00, 0x00)))
        except ValueError as e:
            assert "reserved" in str(e)
        else:
            raise AssertionError("frame type %d accepted" % (fc & 3))
        assert _refusal_status(bytes((fc, 0x42, 0x00, 0x00, 0x00))) == \
            Status.MALFORMED_COMMAND


def test_manufacturer_specific_general_and_cluster_commands_get_their_own_status():
    # ZCL r7 Table 2-12: UNSUP_MANUF_GENERAL_COMMAND (0x84) for a general command; the
    # hub answered UNSUP_MANUF_CLUSTER_COMMAND (0x83) to both
    general = bytes((0x04, 0x34, 0x12, 0x42, 0x00, 0x00, 0x00))
    specific = bytes((0x05, 0x34, 0x12, 0x42, 0x00))
    assert _refusal_status(general) == Status.UNSUP_MANUF_GENERAL_COMMAND
    assert _refusal_status(specific) == Status.UNSUP_MANUF_CLUSTER_COMMAND


# -- ASH ---------------------------------------------------------------------------------

NEVER_DECODE_ASH = ("bad crc", "stray escape", "ends in escape")


def bellows_reading(frame):
    """A decoded frame in bellows' terms, to compare with bellows' own parse."""
    kind = {"DATA": bash.DataFrame, "ACK": bash.AckFrame, "NAK": bash.NakFrame,
            "RST": bash.RstFrame, "RSTACK": bash.RStackFrame,
            "ERROR": bash.ErrorFrame}[frame.kind]
    if kind is bash.DataFrame:
        return kind(frm_num=frame.frm_num, re_tx=frame.re_tx, ack_num=frame.ack_num,
                    ezsp_frame=frame.payload)
    if kind in (bash.AckFrame, bash.NakFrame):
        return kind(res=0, ncp_ready=frame.not_ready, ack_num=frame.ack_num)
    if kind is bash.RstFrame:
        return kind()
    return kind(version=frame.payload[0], reset_code=bt.NcpResetCode(frame.payload[1]))


def check_ash_decoder(sample):
    for piece in (p for p in sample.data.split(b"\x7e") if p):
        try:
            frame = ash.decode(ash.unstuff(piece))
        except ash.AshError as e:
            assert e.reason and 0 <= e.offset <= len(piece)
            assert sample.fault is not None, "a valid frame was refused: %s" % e
            continue
        assert sample.fault not in NEVER_DECODE_ASH, "%s decoded" % sample.fault
        theirs = bash.parse_frame(bash.AshProtocol._unstuff_bytes(piece))
        assert bellows_reading(frame) == theirs
    ASH_RECEIVER.receive(sample.data, 0.0)                 # the line discipline too
    for raw in (p for p in ASH_RECEIVER.outgoing().split(b"\x7e") if p):
        bash.parse_frame(bash.AshProtocol._unstuff_bytes(raw))


ASH_RECEIVER = ash.AshNcp()


def test_ash_layer_decoder():
    run_cases("ash", st.one_of(Z.ash_wire_frames(), Z.malformed_ash_frames()),
              check_ash_decoder)


class LiveNcp:
    """A virtual NCP driven by bellows' frames in simulated time (`emulator.ncp.sim`)."""

    def __init__(self, version):
        self.sim = Simulation()
        self.ncp = VirtualNcp("00:12:4b:00:0f:00:00:%02x" % version, ezsp_version=version)
        self.host = self.sim.host(self.ncp)
        self.host.start()

    def restart(self):
        """RST -> RSTACK, then `version` (legacy header, then the NCP's version)."""
        before = len(self.host.ash_frames)
        self.host.rx.clear()
        self.host.start()
        assert any(isinstance(f, bash.RStackFrame) for f in self.host.ash_frames[before:])
        assert self.host.replies[-1] == ("version", {
            "protocol_version": self.ncp.version, "stack_type": 2,
            "stack_version": self.host.replies[-1][1]["stack_version"]})

    def alive(self):
        assert self.host.command("echo", data=bt.LVBytes(b"alive")) == {
            "echo": b"alive"}


LIVE = {}


def live(version):
    if version not in LIVE:
        LIVE[version] = LiveNcp(version)
    return LIVE[version]


def check_ash_line(traffic):
    link = live(13)
    for chunk in traffic:
        link.host.write(chunk.data)      # whatever the NCP sends back, bellows parses
        link.sim.step()
    link.sim.run_for(0.5)
    link.restart()
    link.alive()


def test_ash_layer_ncp_recovers_from_garbage():
    run_cases("ash-ncp", Z.ash_traffic(), check_ash_line, cases=LIVE_CASES)


# -- EZSP --------------------------------------------------------------------------------

TABLES = {v: CommandTable(v) for v in Z.SERVED_VERSIONS}
NEVER_DECODE_EZSP = ("unknown frame id", "response direction", "frame control high",
                     "short header")
EZSP_TRAFFIC = st.one_of([Z.ezsp_traffic(v) for v in Z.SERVED_VERSIONS])


def ezsp_reading(sample):
    """(name, canonical args) by the NCP's decoder, or the EzspError it raises."""
    try:
        _seq, name, args, _legacy = TABLES[sample.version].decode_request(sample.data)
    except EzspError as e:
        assert e.reason and 0 <= e.offset <= len(sample.data)
        assert bt.EzspStatus(e.status).name.startswith("ERROR_")
        return e
    return name, args


def check_ezsp_decoder(sample):
    reading = ezsp_reading(sample)
    if isinstance(reading, EzspError):
        assert sample.fault is not None, "a valid request was refused: %s" % reading
        if sample.fault == "unknown frame id":
            assert reading.status == bt.EzspStatus.ERROR_INVALID_FRAME_ID
        if sample.fault == "response direction":
            assert reading.status == bt.EzspStatus.ERROR_WRONG_DIRECTION
        return
    assert sample.fault not in NEVER_DECODE_EZSP, "%s decoded" % sample.fault
    name, args = reading
    if sample.fault is None:                   # bellows' bytes back from what was read
        assert name == sample.name
        schema = Z.ezsp_table(sample.version)[name][1]
        by_canonical = {canonical(k): k for k in schema}
        again = Z.encode_request(sample.data[0], name,
                                 {by_canonical[k]: v for k, v in args.items()},
                                 sample.version)
        assert again == sample.data


def test_ezsp_layer_decoder():
    run_cases("ezsp", EZSP_TRAFFIC, check_ezsp_decoder)


def check_ezsp_ncp(sample):
    link = live(sample.version)
    reading = ezsp_reading(sample)
    before = len(link.host.replies)
    link.host.send_ezsp(sample.data)
    assert link.sim.run_until(lambda: len(link.host.replies) > before, 5.0), \
        "no answer to %r" % sample
    name, values = link.host.replies[before]
    if isinstance(reading, EzspError):
        assert name == "invalidCommand" and int(values["status"]) == reading.status, values
    elif hasattr(link.ncp, "cmd_" + reading[0]):
        assert name == reading[0]
    else:
        assert name == "invalidCommand"
    link.sim.run_for(0.5)
    link.alive()


def test_ezsp_layer_live_ncp_answers_every_request():
    run_cases("ezsp-ncp", EZSP_TRAFFIC, check_ezsp_ncp, cases=LIVE_CASES)


# -- what the EZSP fuzzing found (regressions) ---------------------------------------------

def test_gp_proxy_table_get_entry_is_answered_with_an_unused_entry():
    # the handler left out `entry`, so encoding its reply raised KeyError out of the NCP
    for version in Z.SERVED_VERSIONS:
        reply = live(version).host.command("gpProxyTableGetEntry", proxy_index=0)
        assert reply["entry"].status == bt.EmberGpProxyTableEntryStatus.UNUSED
        assert reply["status"] != 0
        live(version).alive()


# -- what the ASH fuzzing found (regressions) ----------------------------------------------

def test_noise_without_flags_is_dropped_not_buffered():
    # a line of noise never ended a frame: the receiver kept every byte, and every
    # decode error, for as long as the noise lasted
    receiver = ash.AshNcp()
    noise = bytes(b for b in range(256) if b not in Z.RESERVED) * 400   # ~100 kB, no flag
    receiver.receive(noise, 0.0)
    assert "longer than" in receiver.errors[-1].reason
    assert len(receiver.errors) <= ash.MAX_ERRORS
    for _ in range(3 * ash.MAX_ERRORS):
        receiver.receive(b"\x01\x02\x03\x7e", 0.0)      # damaged DATA frames
    assert len(receiver.errors) == ash.MAX_ERRORS
    # UG101: before RSTACK only RST is answered (a damaged DATA frame was NAKed)
    assert receiver.outgoing() == b""
    receiver.receive(Z.wire(bash.RstFrame()), 0.0)       # and the link still comes up
    assert isinstance(bash.parse_frame(bash.AshProtocol._unstuff_bytes(
        receiver.outgoing()[:-1])), bash.RStackFrame)


def test_configure_reporting_without_records_is_malformed():
    # zigpy reads an empty record list, but cannot write the empty response the hub
    # built for it: ValueError out of the hub's handler
    state = hub().state()
    assert _refusal_status(bytes((0x00, 0x42, 0x06))) == Status.MALFORMED_COMMAND
    assert hub().state() == state
