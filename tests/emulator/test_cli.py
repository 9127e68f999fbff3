"""The `smets-emu` command line: decode (tree, JSON, exit codes), profile-json, demo,
and `serve` as a real subprocess, including a power cut with --state."""

import json

from click.testing import CliRunner

from emulator.cli import main
from emulator.codec import hdlc, wrapper, xdlms

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
