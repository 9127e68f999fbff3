"""The `smets-emu` command line: decode (tree, JSON, exit codes), profile-json, demo,
and `serve` as a real subprocess, including a power cut with --state."""

import json
import os
import pathlib
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.cli import main
from emulator.codec import hdlc, wrapper, xdlms

REPO = pathlib.Path(__file__).resolve().parents[2]
GET_IMPORT_ENERGY = bytes.fromhex("C001C100030100010800FF0200")   # GET 1.0.1.8.0.255 attr 2
# AARQ, LN referencing, no security, conformance 0x001E1D, max PDU 0xFFFF (Green Book 9.4)
AARQ = bytes.fromhex("601DA109060760857405080101BE10040E01000000065F1F0400001E1DFFFF")
GET_RESPONSE = bytes.fromhex("C401C1000600001F40")                # double-long-unsigned 8000


def hdlc_i_frame(apdu, segmented=False):
    return hdlc.build_frame(hdlc.control("I", pf=True, ns=0, nr=0),
                            hdlc.server_address(1, 0x10, 2), hdlc.client_address(16),
                            info=b"\xe6\xe6\x00" + apdu, segmented=segmented)


def decode(*args):
    return CliRunner().invoke(main, ["decode", *args])


def json_lines(result):
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


# ---------------------------------------------------------------------------- decode


def test_decode_dissects_an_hdlc_frame_down_to_the_get_request():
    result = decode("--json", hdlc_i_frame(GET_IMPORT_ENERGY).hex())
    assert result.exit_code == 0, result.output
    [obj] = json_lines(result)
    assert obj["ok"] is True and obj["error"] is None
    assert [layer["layer"] for layer in obj["layers"]] == ["hdlc", "llc", "xdlms"]
    frame = obj["layers"][0]["fields"]
    assert frame["destination"] == {"value": 1 << 7 | 0x10, "size": 2, "upper": 1, "lower": 0x10}
    assert frame["source"]["value"] == 16
    assert frame["control"]["kind"] == "I"
    get = obj["layers"][2]
    assert get["offset"] == 1 + 2 + 2 + 1 + 1 + 2 + 3      # flag, format, addresses, control, HCS, LLC
    assert get["fields"]["apdu"] == "GetRequestNormal"
    assert get["fields"]["cosem_attribute_descriptor"] == {
        "class_id": 3, "instance_id": "0100010800ff", "attribute_id": 2}


def test_decode_tree_names_the_object_and_its_class():
    result = decode(hdlc_i_frame(GET_IMPORT_ENERGY).hex())
    assert result.exit_code == 0, result.output
    assert "GetRequestNormal" in result.stdout
    assert "1.0.1.8.0.255 (import active energy)" in result.stdout
    assert "3 (Register)" in result.stdout


def test_decode_wrapper_aarq_and_snrm_in_one_call():
    wpdu = wrapper.build_wpdu(16, 1, AARQ)
    snrm = hdlc.build_frame(hdlc.control("SNRM"), hdlc.server_address(1, 0x10, 2),
                            hdlc.client_address(16), info=hdlc.build_parameters(
                                max_info_transmit=256, max_info_receive=256))
    result = decode("--json", wpdu.hex(), AARQ.hex(), snrm.hex(), GET_RESPONSE.hex())
    assert result.exit_code == 0, result.output
    wrapped, bare, link, response = json_lines(result)
    assert [l["layer"] for l in wrapped["layers"]] == ["wrapper", "acse", "xdlms-initiate"]
    assert wrapped["layers"][0]["fields"]["source_wport"] == 16
    assert wrapped["layers"][1]["offset"] == 8
    assert bare["layers"][1]["fields"]["proposed_conformance"] == 0x001E1D
    assert link["layers"][1]["fields"]["max_info_transmit"] == 256
    assert response["layers"][0]["fields"]["result"]["data"] == {
        "type": "double-long-unsigned", "value": 8000}


def test_a_refused_get_says_why_in_the_summary():
    [obj] = json_lines(decode("--json", "C401C10103"))
    assert obj["layers"][0]["summary"] == "GetResponseNormal data_access_result=read-write-denied"


def test_a_bad_fcs_names_the_layer_and_offset_and_fails_the_exit_code():
    frame = bytearray(hdlc_i_frame(GET_IMPORT_ENERGY))
    frame[-2] ^= 0xFF                                    # corrupt the FCS
    result = decode("--json", bytes(frame).hex())
    assert result.exit_code == 1
    [obj] = json_lines(result)
    assert obj["ok"] is False
    assert obj["error"]["layer"] == "hdlc"
    assert obj["error"]["offset"] == len(frame) - 3     # where the FCS starts
    assert "FCS" in obj["error"]["reason"]


def test_an_error_inside_the_apdu_is_reported_at_its_offset_in_the_whole_frame():
    truncated = GET_IMPORT_ENERGY[:7]
    wpdu = wrapper.build_wpdu(16, 1, truncated)
    result = decode(wpdu.hex())
    assert result.exit_code == 1
    assert "error" in result.stdout and "xdlms" in result.stdout
    [line] = [l for l in result.stderr.splitlines() if l.startswith("error")]
    assert "xdlms layer, offset" in line
    offset = int(line.split("offset ")[1].split(":")[0])
    assert 8 < offset <= len(wpdu)                       # inside the APDU, counted from byte 0
    as_json = json_lines(decode("--json", wpdu.hex()))[0]
    assert as_json["layers"][0]["layer"] == "wrapper"   # the good outer layer is still shown
    assert as_json["error"]["layer"] == "xdlms" and as_json["error"]["offset"] == offset


def test_a_wrapper_length_that_lies_is_a_wrapper_error():
    wpdu = bytearray(wrapper.build_wpdu(16, 1, GET_IMPORT_ENERGY))
    wpdu[7] += 1
    [obj] = json_lines(decode("--json", bytes(wpdu).hex()))
    assert obj["error"] == {"layer": "wrapper", "offset": 6,
                            "reason": "length field 14, but 13 APDU bytes"}


def test_one_bad_frame_among_good_ones_still_fails_the_run():
    result = decode("--json", GET_IMPORT_ENERGY.hex(), "C0FF", AARQ.hex())
    assert result.exit_code == 1
    assert [o["ok"] for o in json_lines(result)] == [True, False, True]


def test_input_that_is_neither_hex_nor_a_file_exits_2():
    result = decode("--json", "not-hex-at-all")
    assert result.exit_code == 2
    [obj] = json_lines(result)
    assert obj["error"]["layer"] == "input"


def test_decode_reads_hex_lines_and_raw_captures_from_files(tmp_path):
    listing = tmp_path / "frames.txt"
    listing.write_text("# a GET and its answer\n%s\n\n%s  # response\n"
                       % (GET_IMPORT_ENERGY.hex(" "), GET_RESPONSE.hex()))
    capture = tmp_path / "line.bin"
    snrm = hdlc.build_frame(hdlc.control("SNRM"), hdlc.server_address(1, 0x10, 2),
                            hdlc.client_address(16))
    capture.write_bytes(snrm + hdlc_i_frame(GET_IMPORT_ENERGY))  # two frames back to back
    result = decode("--json", str(listing), str(capture))
    assert result.exit_code == 0, result.output
    objs = json_lines(result)
    assert [o["input"] for o in objs] == [
        "%s:2" % listing, "%s:4" % listing, str(capture), "%s[1]" % capture]
    assert objs[3]["layers"][2]["fields"]["apdu"] == "GetRequestNormal"


def test_a_segment_is_shown_as_a_segment_not_misread_as_an_apdu():
    first = hdlc_i_frame(GET_IMPORT_ENERGY[:5], segmented=True)
    [obj] = json_lines(decode("--json", first.hex()))
    assert obj["ok"] and [l["layer"] for l in obj["layers"]] == ["hdlc", "llc", "segment"]


def test_the_xdlms_oracle_agrees_with_the_sample_bytes():
    # guards the constants above: if the codec reads them differently the tests lie
    assert xdlms.decode_apdu(GET_IMPORT_ENERGY)[0] == "GetRequestNormal"
    assert xdlms.decode_apdu(GET_RESPONSE)[0] == "GetResponseNormal"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([GET_IMPORT_ENERGY, AARQ, GET_RESPONSE]).flatmap(
    lambda apdu: st.sampled_from([apdu, hdlc_i_frame(apdu), wrapper.build_wpdu(16, 1, apdu)])),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4))
def test_any_damaged_frame_is_dissected_or_refused_with_an_offset_inside_it(frame, damage):
    from io import StringIO
    from rich.console import Console
    from emulator.decode import dissect, render_tree

    data = bytearray(frame)
    for position, byte in damage:
        data[position % len(data)] = byte
    dissection = dissect(bytes(data))
    as_json = json.loads(json.dumps(dissection.to_json()))
    Console(file=StringIO()).print(render_tree(dissection, "damaged"))
    if not dissection.ok:
        assert 0 <= as_json["error"]["offset"] <= len(data)
        assert as_json["error"]["layer"] in ("hdlc", "hdlc-parameters", "wrapper", "apdu",
                                             "acse", "xdlms", "axdr")


# ---------------------------------------------------------------------------- profile-json


def test_profile_json_is_the_generated_board_json(tmp_path):
    out = tmp_path / "board.json"
    result = CliRunner().invoke(main, ["profile-json", "profiles/esme-single-phase.toml",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    board = json.loads(out.read_text())
    assert board["name"] == "esme-single-phase"
    assert board["clock"]["start"] == 1767225600            # 2026-01-01T00:00:00Z
    assert board["hdlc"] == {"server_upper": 1, "server_lower": 0x10}
    stdout = CliRunner().invoke(main, ["profile-json", "profiles/esme-single-phase.toml"])
    assert json.loads(stdout.stdout) == board


# ---------------------------------------------------------------------------- demo


def test_demo_reads_the_meter_and_exits_0():
    result = CliRunner().invoke(main, ["demo", "--dlms-only"])
    assert result.exit_code == 0, result.output
    assert "EMU0SP0000000001" in result.stdout
    assert "Half-hourly profile: the last 48 entries" in result.stdout
    assert "1.0.1.8.0.255" in result.stdout and "1271300 Wh" in result.stdout


@pytest.mark.micropython
@pytest.mark.skipif(shutil.which("micropython") is None, reason="no micropython binary")
def test_demo_on_micropython_prints_what_cpython_prints():
    on_cpython = CliRunner().invoke(main, ["demo", "--dlms-only", "--framing", "hdlc"])
    on_micropython = CliRunner().invoke(main, ["demo", "--dlms-only", "--framing", "hdlc",
                                               "--runtime", "micropython"])
    assert on_micropython.exit_code == 0, on_micropython.output
    assert "on the micropython runtime" in on_micropython.stdout
    assert _readings(on_micropython.stdout) == _readings(on_cpython.stdout)


def _readings(stdout):
    """The tables, without the banner (runtime name and ephemeral port differ)."""
    return re.split(r"meter clock [^\n]*Z\n", stdout, maxsplit=1)[1]


def test_demo_fails_with_a_non_zero_exit_when_the_runtime_cannot_start():
    result = CliRunner().invoke(main, ["demo", "--dlms-only", "--runtime", "micropython",
                                       "--micropython", "no-such-micropython"])
    assert result.exit_code == 1
    assert "demo failed" in result.output and "no-such-micropython" in result.output


# ---------------------------------------------------------------------------- serve


class Serve:
    """`smets-emu serve` as a real process: started, waited for, stopped or killed."""

    def __init__(self, *args, tmp_path):
        self.stderr_path = tmp_path / ("serve-%d.err" % time.monotonic_ns())
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emulator.cli", "serve", *args],
            stdout=subprocess.PIPE, stderr=self.stderr, cwd=REPO, start_new_session=True)
        self.out = ""

    def wait_for(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.out)
            if found:
                return found
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                self.out += chunk.decode()
        raise AssertionError("serve never printed %r; stdout:\n%s\nstderr:\n%s"
                             % (pattern, self.out, self.stderr_path.read_text()))

    def tcp(self):
        found = self.wait_for(r"listening tcp ([\d.]+):(\d+) (\w+)")
        return found.group(1), int(found.group(2))

    def interrupt(self):
        """Ctrl-C as a terminal sends it: to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(20)

    def power_cut(self):
        """SIGKILL the server and any child it runs (the micropython core): no goodbyes."""
        for child in _children(self.proc.pid):
            os.kill(child, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait(10)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stdout.close()
        self.stderr.close()


def _children(pid):
    children = []
    for task in pathlib.Path("/proc/%d/task" % pid).glob("*/children"):
        children += [int(p) for p in task.read_text().split()]
    return children


PROFILE = "profiles/esme-single-phase.toml"


def test_serve_prints_where_it_serves_answers_and_stops_on_ctrl_c(tmp_path):
    from emulator.cli import dlms_client
    from emulator.profiles import load_profile
    from firmware.dlms import obis as O

    profile = load_profile(PROFILE)
    serve = Serve("--profile", PROFILE, "--tcp", "127.0.0.1:0", "--framing", "hdlc",
                  "--speed", "100", tmp_path=tmp_path)
    try:
        host, port = serve.tcp()
        assert "esme-single-phase on the cpython runtime" in serve.out
        assert "meter clock 2026-01-01 00:00:00Z" in serve.out
        with dlms_client(profile, "hdlc", host, port) as client:
            assert client.get(1, O.LOGICAL_DEVICE_NAME, 2)[1] == b"EMU0SP0000000001"
        assert serve.interrupt() == 0
        assert serve.stderr_path.read_text() == ""            # quiet unless -v
    finally:
        serve.close()


@pytest.mark.micropython
@pytest.mark.skipif(shutil.which("micropython") is None, reason="no micropython binary")
def test_serve_on_micropython_over_a_pty_with_verbose_logs(tmp_path):
    from emulator.profiles import load_profile
    from emulator.transport.streams import SerialStream
    from firmware.dlms import obis as O
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from test_pty import read_meter_over

    profile = load_profile(PROFILE)
    state = tmp_path / "state"
    serve = Serve("-v", "--profile", PROFILE, "--runtime", "micropython", "--pty",
                  "--state", str(state), "--speed", "3600", "--tick", "0.1", tmp_path=tmp_path)
    try:
        path = serve.wait_for(r"listening pty (\S+) hdlc").group(1)
        assert "listening tcp" not in serve.out                # --pty alone: no TCP
        with SerialStream(path) as port:
            name, energy = read_meter_over(profile, port)
        assert name[1] == b"EMU0SP0000000001" and energy[0] == 6
        time.sleep(1.0)                                        # an hour of simulated time
        assert serve.interrupt() == 0
        log = serve.stderr_path.read_text()
        assert "level=info logger=smets_emu.serve event=open conn=1 framing=hdlc" in log
        # Ctrl-C reached the host only; it asked the core to quit, and the core saved
        saved = json.loads((state / "state.json").read_text())
        assert saved["now"] >= profile["clock"]["start"] + 3600
    finally:
        serve.close()


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_a_power_cut_after_an_acknowledged_set_loses_nothing(tmp_path, runtime):
    if runtime == "micropython" and shutil.which("micropython") is None:
        pytest.skip("no micropython binary")
    from emulator.cli import dlms_client
    from emulator.client import cosem_date_time
    from emulator.profiles import load_profile
    from firmware.dlms import obis as O

    profile = load_profile(PROFILE)
    state = tmp_path / "state"
    args = ("--profile", PROFILE, "--runtime", runtime, "--tcp", "127.0.0.1:0",
            "--state", str(state))
    new_time = 1781524800                                  # 2026-06-15T12:00:00Z
    supply_disable = profile["supply"]["scripts"]["disable"]

    serve = Serve(*args, tmp_path=tmp_path)
    try:
        host, port = serve.tcp()
        with dlms_client(profile, "wrapper", host, port, client="management") as client:
            client.set(8, O.CLOCK, 2, (9, cosem_date_time(new_time)))        # SET
            client.action(9, O.SUPPLY_SCRIPT_TABLE, 1, (18, supply_disable))  # ACTION
            assert client.get(70, O.DISCONNECT_CONTROL, 3) == (22, 0)         # disconnected
        # Only the RLRQ/RLRE went by since the acknowledgements, and neither saves: what
        # is on disk now was written before the SET and ACTION answers left the meter.
        serve.power_cut()
    finally:
        serve.close()

    serve = Serve(*args, tmp_path=tmp_path)
    try:
        host, port = serve.tcp()
        assert "(restored)" in serve.out
        with dlms_client(profile, "wrapper", host, port) as client:
            clock = client.get(8, O.CLOCK, 2)[1]
            control_state = client.get(70, O.DISCONNECT_CONTROL, 3)
        assert (clock[0] << 8 | clock[1], clock[2], clock[3], clock[5]) == (2026, 6, 15, 12)
        assert control_state == (22, 0)
        assert serve.interrupt() == 0
    finally:
        serve.close()


@pytest.mark.micropython
@pytest.mark.skipif(shutil.which("micropython") is None, reason="no micropython binary")
def test_serve_exits_non_zero_with_the_cores_stderr_when_the_micropython_core_dies(tmp_path):
    serve = Serve("--profile", PROFILE, "--runtime", "micropython", "--tcp", "127.0.0.1:0",
                  tmp_path=tmp_path)
    try:
        serve.tcp()
        [core] = _children(serve.proc.pid)
        os.kill(core, signal.SIGKILL)
        assert serve.proc.wait(20) == 1
        assert "micropython core exited (code -9)" in serve.stderr_path.read_text()
    finally:
        serve.close()


def test_serve_on_a_serial_port(tmp_path):
    import tty
    from emulator.profiles import load_profile
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from test_pty import MasterStream, read_meter_over

    profile = load_profile(PROFILE)
    master, slave = os.openpty()
    tty.setraw(master)
    serve = Serve("--profile", PROFILE, "--serial", os.ttyname(slave), "--baudrate", "19200",
                  tmp_path=tmp_path)
    try:
        serve.wait_for(r"listening serial %s hdlc" % re.escape(os.ttyname(slave)))
        name, energy = read_meter_over(profile, MasterStream(master))
        assert name[1] == b"EMU0SP0000000001" and energy == (6, 1250000)
        assert serve.interrupt() == 0
    finally:
        serve.close()
        os.close(master)
        os.close(slave)
