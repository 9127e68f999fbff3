"""tshark (Debian package) reads the captures `smets-emu han --radio virtual --pcap` and
`smets-emu demo --pcap` write, down to ZCL SE Metering and the GBCS tunnel.

The han run is unmodified bellows on virtual NCPs; its capture is the medium's own
frames. The hub and the tunnel nodes advertise a transfer size that holds every GBCS
message (emulator/zigbee/radio.py), so each message is one TransferData, and one longer
than an APS frame crosses as APS blocks (emulator/zigbee/fragmentation.py on the hosts,
the extended APS header on the air) that tshark reassembles: it reports no malformed
packet at all.

The demo capture encapsulates the in-process HAN's TransferData commands
(emulator/pcap.py `tunnel_packets`) as APS blocks too. That HAN cuts GB-HRGP frames at
the GB maximum transfer size (1500, firmware/han/tunnel.py "Segmentation"), and the
lab's one message past it (CS02b's new certificates) crosses as two TransferData, which
Wireshark's gbcs_tunnel dissector cannot join: the one malformed packet there, asserted
to be exactly that.
"""

import shutil
import subprocess
import sys

import pytest

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None,
                                reason="tshark is not installed (Debian package tshark)")

METERING = 0x0702
CURRENT_SUMMATION_DELIVERED = 0x0000
INSTANTANEOUS_DEMAND = 0x0400
READ_ATTRIBUTES, READ_ATTRIBUTES_RESPONSE = 0x00, 0x01
ECS17B, ECS42, ECS43, ECS70, CS01A, CS02B = 0x0027, 0x004F, 0x0050, 0x0062, 0x0007, 0x0107
APS_DATA, APS_ACK = 0, 2
FIELDS = ("frame.number", "frame.protocols", "zbee_aps.cluster", "zbee_zcl.cmd.id",
          "zbee_zcl_se.met.attr_id", "gbcs_message.grouping_header.message_code",
          "gbcs_message.grouping_header.cra_flag", "_ws.malformed", "_ws.expert.message",
          "zbee_aps.type", "zbee_aps.fragmentation", "zbee_aps.block",
          "zbee_aps.fragment.count", "zbee_aps.reassembled.length", "frame.len")
GB_MAX_TRANSFER = 1500
ZCL_TRANSFER_DATA_HEADER = 5      # frame control, sequence, command, tunnel id


def _smets(*args, timeout=120):
    run = subprocess.run([sys.executable, "-m", "emulator.cli", *args], capture_output=True,
                         text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def _tshark(pcap, *args):
    run = subprocess.run(["tshark", "-n", "-r", str(pcap), *args], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def _rows(pcap):
    args = ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in FIELDS:
        args += ["-e", field]
    rows = []
    for line in _tshark(pcap, *args).splitlines():
        values = line.split("\t")
        rows.append(dict(zip(FIELDS, values + [""] * (len(FIELDS) - len(values)))))
    return rows


def _ints(text):
    return [int(v, 0) for v in text.split(",") if v]


def _message_codes(rows, cra):
    """Message codes of the GBCS messages tshark decoded (cra: 1 command, 2 response)."""
    return {code for r in rows
            for code, flag in zip(_ints(r["gbcs_message.grouping_header.message_code"]),
                                  _ints(r["gbcs_message.grouping_header.cra_flag"]))
            if flag == cra}


def _malformed(rows):
    return [r for r in rows if r["_ws.malformed"] or "Malformed" in r["_ws.expert.message"]]


def _reassembled_tunnel_messages(rows):
    """(block count, ZCL length, message codes) of each GBCS TransferData tshark put back
    together from APS blocks."""
    return [(_ints(r["zbee_aps.fragment.count"])[0], _ints(r["zbee_aps.reassembled.length"])[0],
             _ints(r["gbcs_message.grouping_header.message_code"]))
            for r in rows if r["zbee_aps.reassembled.length"] and "gbcs_tunnel" in
            r["frame.protocols"]]


@pytest.fixture(scope="module")
def han_pcap(tmp_path_factory):
    pcap = tmp_path_factory.mktemp("han") / "han.pcap"
    output = _smets("han", "--radio", "virtual", "--profile", "full", "--pcap", str(pcap))
    assert "FAILED" not in output
    return pcap


@pytest.fixture(scope="module")
def demo_pcap(tmp_path_factory):
    pcap = tmp_path_factory.mktemp("demo") / "demo.pcap"
    output = _smets("demo", "--pcap", str(pcap), timeout=60)
    assert "0 failed" in output
    return pcap


@needs_tshark
def test_han_capture_decodes_metering_reads_and_their_responses(han_pcap):
    rows = _rows(han_pcap)
    metering = [r for r in rows if _ints(r["zbee_aps.cluster"]) == [METERING]]
    reads = [r for r in metering if _ints(r["zbee_zcl.cmd.id"]) == [READ_ATTRIBUTES]]
    answers = [r for r in metering if _ints(r["zbee_zcl.cmd.id"]) == [READ_ATTRIBUTES_RESPONSE]]
    assert reads and answers
    for kind in (reads, answers):
        attributes = {a for r in kind for a in _ints(r["zbee_zcl_se.met.attr_id"])}
        assert {CURRENT_SUMMATION_DELIVERED, INSTANTANEOUS_DEMAND} <= attributes
    verbose = _tshark(han_pcap, "-V", "-Y", "zbee_aps.cluster == 0x0702")
    assert "Attribute: Current Summation Delivered (0x0000)" in verbose
    assert "Attribute: Instantaneous Demand (0x0400)" in verbose
    assert "Malformed" not in verbose


@needs_tshark
def test_han_capture_decodes_gbcs_tunnel_messages_with_their_codes(han_pcap):
    rows = _rows(han_pcap)
    for cra in (1, 2):
        assert {ECS70, ECS17B, ECS43, ECS42, CS01A} <= _message_codes(rows, cra)
    assert any("zbee_zcl_se.tun" in r["frame.protocols"] for r in rows)


@needs_tshark
def test_han_capture_has_no_malformed_packet(han_pcap):
    rows = _rows(han_pcap)
    assert rows and not _malformed(rows)
    verbose = _tshark(han_pcap, "-V")
    assert "Malformed" not in verbose and "Dissector bug" not in verbose
    assert all(int(r["frame.len"]) <= 127 for r in rows)


@needs_tshark
def test_han_capture_reassembles_tunnel_messages_longer_than_one_frame(han_pcap):
    rows = _rows(han_pcap)
    whole = _reassembled_tunnel_messages(rows)
    from emulator.ncp.ncp import MAX_APS_PAYLOAD
    assert whole and all(count > 1 and length > MAX_APS_PAYLOAD for count, length, _ in whole)
    codes = {code for _, _, found in whole for code in found}
    assert {ECS70, ECS17B, CS02B} <= codes
    # the largest, CS02b's certificates, is past GB's 1500 and still one TransferData
    assert max(length for _, length, _ in whole) > GB_MAX_TRANSFER + ZCL_TRANSFER_DATA_HEADER
    blocks = [r for r in rows if _ints(r["zbee_aps.type"]) == [APS_DATA] and
              r["zbee_aps.fragmentation"]]
    acks = [r for r in rows if _ints(r["zbee_aps.type"]) == [APS_ACK] and
            r["zbee_aps.fragmentation"]]
    assert len(blocks) >= sum(count for count, _, _ in whole)
    assert len(acks) >= sum(count for count, _, _ in whole)     # every block acked


@needs_tshark
def test_demo_capture_decodes_gbcs_tunnel_messages_with_their_codes(demo_pcap):
    rows = _rows(demo_pcap)
    for cra in (1, 2):
        assert {ECS70, ECS17B, ECS43, ECS42, CS01A} <= _message_codes(rows, cra)
    verbose = _tshark(demo_pcap, "-V")
    assert "Message Code: ECS17b Read ESME Energy Registers (Import Energy) (0x0027)" in verbose
    assert "Transfer data command: PUT (0x03)" in verbose
    assert "Transfer data command: GET (0x01)" in verbose          # the sleeping GSME polls
    assert "Reassembled ZigBee APS" in verbose                      # APS fragmentation


@needs_tshark
def test_demo_capture_malformed_only_where_gb_hrgp_cuts_a_message_past_1500(demo_pcap):
    rows = _rows(demo_pcap)
    malformed = _malformed(rows)
    verbose = _tshark(demo_pcap, "-V")
    assert "Dissector bug" not in verbose
    assert len([f for f in verbose.split("\nFrame ") if "Malformed Packet" in f]) == \
        len(malformed)
    # one for each CS02b the demo sends (the electricity meter's, then the gas meter's
    # change of supplier): the only messages past GB's 1500 octets
    assert len(malformed) == 2
    for cut in malformed:
        # MAC, NWK, APS and ZCL decoded; the APS blocks reassembled into a TransferData
        # carrying exactly GB's 1500 octets: the first GB-HRGP segment of CS02b
        assert cut["frame.protocols"].split(":")[:6] == [
            "wpan", "zbee_nwk", "zbee_aps", "zbee_zcl", "zbee_zcl_se.tun", "gbcs_tunnel"]
        assert _ints(cut["zbee_aps.reassembled.length"]) == [
            GB_MAX_TRANSFER + ZCL_TRANSFER_DATA_HEADER]
        assert _ints(cut["gbcs_message.grouping_header.message_code"]) == [CS02B]


def test_tunnel_packets_fit_one_psdu_with_a_good_fcs():
    from emulator.han.virtual import FrameRecord
    from emulator.ncp.frames import fcs_ok
    from emulator.pcap import tunnel_packets

    hub, meter = bytes(range(8)), bytes(range(8, 16))
    records = [FrameRecord(0, 0, hub, meter, bytes((3,)) + bytes(1500), None, "lost"),
               FrameRecord(1, 1, meter, hub, bytes((1,)), bytes((1,)), "delivered")]
    packets = list(tunnel_packets(records, hub))
    assert len(packets) == 20                     # 1508-octet ZCL in 80-octet APS blocks, + 1
    assert all(len(psdu) <= 127 and fcs_ok(psdu) for _, psdu in packets)
    assert packets[0][1][17] & 0x80 and not packets[-1][1][17] & 0x80   # APS extended header


def test_demo_pcap_refuses_the_dlms_only_demo(tmp_path):
    run = subprocess.run([sys.executable, "-m", "emulator.cli", "demo", "--dlms-only",
                          "--pcap", str(tmp_path / "x.pcap")], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "no HAN" in run.stderr
    assert not (tmp_path / "x.pcap").exists()
