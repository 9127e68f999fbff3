"""The harness's parts on their own: the --dut grammar, scenario files and values, the
frame splitter, the frame log and the campaign record."""

import json

import pytest

from hil.drivers import Frame, FrameLog, FrameSplitter
from hil.report import CampaignRecord
from hil.scenario import (Scenario, ScenarioError, StepResult, build_value, plain,
                          resolve)
from hil.targets import TargetError, dut_label, parse_dut


@pytest.mark.parametrize("text, expected", [
    ("inprocess:esme-single-phase", {"kind": "inprocess", "profile": "esme-single-phase",
                                     "framing": "hdlc"}),
    ("inprocess:esme-polyphase/wrapper", {"kind": "inprocess", "profile": "esme-polyphase",
                                          "framing": "wrapper"}),
    ("micropython:esme-single-phase", {"kind": "micropython", "profile": "esme-single-phase",
                                       "framing": "hdlc"}),
    ("serial:/dev/ttyACM0", {"kind": "serial", "url": "/dev/ttyACM0", "baudrate": 9600,
                             "framing": "hdlc"}),
    ("serial:/dev/ttyUSB1@115200", {"kind": "serial", "url": "/dev/ttyUSB1",
                                    "baudrate": 115200, "framing": "hdlc"}),
    ("serial:socket://127.0.0.1:7000", {"kind": "serial", "url": "socket://127.0.0.1:7000",
                                        "baudrate": 9600, "framing": "hdlc"}),
    ("tcp:10.0.0.7:4059", {"kind": "tcp", "host": "10.0.0.7", "port": 4059,
                           "framing": "wrapper"}),
    ("tcp:meter.local:4059/hdlc", {"kind": "tcp", "host": "meter.local", "port": 4059,
                                   "framing": "hdlc"}),
    ("tcp:[::1]:4059/wrapper", {"kind": "tcp", "host": "::1", "port": 4059,
                                "framing": "wrapper"}),
])
def test_dut_strings(text, expected):
    assert parse_dut(text) == expected


@pytest.mark.parametrize("text", ["", "esme", "usb:/dev/x", "tcp:host", "tcp:host:99999",
                                  "tcp:host:4059/udp", "inprocess:", "micropython:p/wrapper",
                                  "inprocess:p/zigbee"])
def test_bad_dut_strings_say_what_is_expected(text):
    with pytest.raises(TargetError, match="expected|framing|serves HDLC"):
        parse_dut(text)


def test_dut_label_is_a_file_name():
    assert dut_label("serial:/dev/ttyACM0@115200") == "serial-dev-ttyACM0-115200"


def _scenario(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return Scenario.load(path)


def test_scenario_budgets_default_and_requires_collect_from_steps(tmp_path):
    scenario = _scenario(tmp_path, """
        [scenario]
        name = "x"
        requires = ["dlms"]
        budget_ms = 750
        [[step]]
        associate = "public"
        [[step]]
        name = "gas"
        service_request = { srv = "4.1.1", target = "GSME" }
        requires = ["gbcs"]
        budget_ms = 5000
        """)
    assert scenario.name == "x"
    assert [s.budget_ms for s in scenario.steps] == [750, 5000]
    assert [s.name for s in scenario.steps] == ["step 1", "gas"]
    assert scenario.requires == ["dlms", "gbcs"]


@pytest.mark.parametrize("body, reason", [
    ("[scenario]\nname = 'x'\n", "no \\[\\[step\\]\\]"),
    ("[[step]]\nname = 'n'\n", "exactly one action"),
    ("[[step]]\nrelease = true\nlisten = true\n", "exactly one action"),
    ("[[step]]\nrelease = true\nexpect = { colour = 'red' }\n", "unknown expectations"),
    ("[[step]\n", "s.toml"),
])
def test_bad_scenarios_name_file_step_and_reason(tmp_path, body, reason):
    with pytest.raises(ScenarioError, match=reason):
        _scenario(tmp_path, body)


def test_variables_resolve_with_offsets():
    variables = {"t0": 1000}
    assert resolve("$t0", variables) == 1000
    assert resolve("$t0 + 60", variables) == 1060
    assert resolve("$t0-5", variables) == 995
    assert resolve(["$t0", 7], variables) == [1000, 7]
    with pytest.raises(ScenarioError, match="not saved"):
        resolve("$t1", variables)
    with pytest.raises(ScenarioError, match="cannot read"):
        resolve("$t0 * 2", variables)


def test_values_build_the_tuple_model_and_date_times_compare_as_seconds():
    seconds = 1767398400            # 2026-01-03T00:00:00Z
    value = build_value({"type": "octet-string", "datetime": "$t + 60"}, {"t": seconds})
    # 2026-01-03 (a Saturday, 6) 00:01:00.00, deviation 0, status 0 (Blue Book 4.1.6.1)
    assert value == (9, bytes.fromhex("07ea01030600010000000000"))
    assert plain(value) == seconds + 60
    assert build_value({"type": "long-unsigned", "value": 5}, {}) == (18, 5)
    assert build_value({"type": "structure", "items": [
        {"type": "integer", "value": -1}, {"type": "enum", "value": 30}]}, {}) == \
        (2, [(15, -1), (22, 30)])
    assert build_value({"type": "visible-string", "value": "ab"}, {}) == (10, b"ab")
    with pytest.raises(ScenarioError, match="unknown Data type"):
        build_value({"type": "quaternion", "value": 1}, {})


def test_the_splitter_cuts_hdlc_and_wrapper_streams_into_frames():
    snrm = bytes.fromhex("7ea00802212193 05d17e".replace(" ", ""))
    ua_head = bytes.fromhex("7ea01f2102217356f4818012050180060180070400000001080400000001533b7e")
    splitter = FrameSplitter("hdlc")
    stream = snrm + ua_head
    frames = []
    for k in range(0, len(stream), 5):           # any chunking gives the same frames
        frames += splitter.feed(stream[k:k + 5])
    assert frames == [snrm, ua_head]
    wpdu = bytes.fromhex("0001001000010003c00102")
    splitter = FrameSplitter("wrapper")
    assert splitter.feed(wpdu[:4]) == []
    assert splitter.feed(wpdu[4:] + wpdu) == [wpdu, wpdu]


def test_the_frame_log_writes_hex_and_decoded_layers(tmp_path):
    log = FrameLog(tmp_path / "dut" / "t.log")
    log.note("step 1")
    frame = log.record("tx", bytes.fromhex("7ea00802212193 05d17e".replace(" ", "")))
    log.close()
    text = (tmp_path / "dut" / "t.log").read_text()
    assert "-- step 1" in text and ">> 7ea00802212193" in text and "HDLC SNRM" in text
    assert frame.apdu is None and frame.summary == ["hdlc: HDLC SNRM"]
    get = Frame(bytes.fromhex("c401c1000600001388"))
    assert get.apdu == "GetResponseNormal" and get.fields["result"]["data"] == (6, 5000)


def test_the_campaign_record_merges_runs_by_dut(tmp_path):
    first = CampaignRecord(tmp_path)
    step = StepResult(1, "read", 100)
    step.latency_ms, step.status = 12.5, "passed"
    first.add("a", "s.toml::s", "passed", 12.5, [step.to_json()])
    first.add("a", "t.toml::t", "failed", 3.0, [], "step 1 'x' took 3.0 ms, over its budget of 1 ms")
    first.write()
    second = CampaignRecord(tmp_path)
    second.add("b", "s.toml::s", "skipped", None, [], "DUT lacks capability b: gbcs")
    second.write()
    data = json.loads((tmp_path / "campaign.json").read_text())
    assert sorted(data["duts"]) == ["a", "b"]
    markdown = (tmp_path / "summary.md").read_text()
    assert "| s.toml::s | pass 12.5 ms | skip |" in markdown
    assert "| t.toml::t | FAIL 3.0 ms | - |" in markdown
    assert "a: 1 passed, 1 failed, 0 skipped; b: 0 passed, 0 failed, 1 skipped" in markdown
    third = CampaignRecord(tmp_path)       # a new run of DUT a replaces a's column
    third.add("a", "s.toml::s", "failed", 1.0)
    third.write()
    data = json.loads((tmp_path / "campaign.json").read_text())
    assert list(data["duts"]["a"]["tests"]) == ["s.toml::s"]
    assert "over its budget" not in (tmp_path / "summary.html").read_text()


def test_a_command_power_switch_runs_its_command_and_reports_failure(tmp_path):
    from hil.resources import ResourceError, command_power_switch
    marker = tmp_path / "cycled"
    switch = command_power_switch("touch %s" % marker)
    switch.cycle()
    assert marker.exists() and switch.cycles == 1
    broken = command_power_switch("echo relay not found >&2; exit 3")
    with pytest.raises(ResourceError, match="failed \\(3\\): relay not found"):
        broken.cycle()
    assert broken.cycles == 0


class _Alert:
    def __init__(self, code):
        self.alert_code = code


class _Response:
    def __init__(self, code, fields, ok=True):
        self.response_code = code
        self.fields = fields
        self.ok = ok
        self.checks = []


def _checked(tmp_path, expect, **outcome_fields):
    from hil.scenario import Outcome, ScenarioRun
    lines = ["[[step]]", "listen = true"]
    lines += ["expect.%s = %s" % (key, value) for key, value in expect.items()]
    scenario = _scenario(tmp_path, "\n".join(lines) + "\n")
    outcome = Outcome()
    for key, value in outcome_fields.items():
        setattr(outcome, key, value)
    run = ScenarioRun(scenario, dut=None)
    run.variables["w"] = 1000
    return run.check(scenario.steps[0], outcome)


def test_expectations_on_alerts_silence_bytes_and_fields(tmp_path):
    assert _checked(tmp_path, {"alert": "0x8F51"}, alerts=[_Alert(0x8F51)]) == []
    assert _checked(tmp_path, {"alert": "0x8F51"}, alerts=[_Alert(0x8F63)]) == [
        "no alert 0x8F51 (alerts: ['0x8F63'])"]
    assert _checked(tmp_path, {"silence": "true"}, received=b"") == []
    assert _checked(tmp_path, {"silence": "true"}, received=b"\x7e") == [
        "expected silence, received 7e"]
    assert _checked(tmp_path, {"bytes": "'^7ea0.*73'"}, received=bytes.fromhex("7ea00a73")) == []
    assert _checked(tmp_path, {"bytes": "'^7ea0'"}, received=b"") == [
        "received nothing, expected bytes matching '^7ea0'"]
    response = _Response("I0", {"import_wh": 1500, "supply_state": 1})
    assert _checked(tmp_path, {"fields": "{ import_wh = { range = ['$w', '$w + 1000'] } }",
                               "response_code": "'I0'", "ok": "true"},
                    response=response, result="I0") == []
    problems = _checked(tmp_path, {"fields": "{ supply_state = 0, credit = 5 }"},
                        response=response)
    assert problems == ["field supply_state = 1, expected 0",
                        "no field credit (has ['import_wh', 'supply_state'])"]


def test_board_power_from_on_and_off_commands(tmp_path):
    pytest.importorskip("hil.power")
    from hil.targets import board_power
    log = tmp_path / "power.log"
    switch = board_power(on="sh -c 'echo on >> %s'" % log, off="sh -c 'echo off >> %s'" % log)
    switch.cycle()
    assert log.read_text().split() == ["off", "on"] and switch.cycles == 1
    assert board_power() is None
    with pytest.raises(TargetError, match="go together"):
        board_power(on="true")
