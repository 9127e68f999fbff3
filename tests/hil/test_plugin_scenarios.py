"""The HIL plugin run by pytest itself (pytester): the shipped scenario suite against
every kind of DUT, budgets, skips, logs and reports."""

import json
import os
import shutil

import pytest

from tests.hil.conftest import SHIPPED_SCENARIOS

pytest_plugins = ["pytester"]

SCENARIOS = os.path.abspath(SHIPPED_SCENARIOS)
ALL_SCENARIOS = sorted(n for n in os.listdir(SCENARIOS) if n.endswith(".toml"))
DLMS_SCENARIOS = 4        # associate, read, manage, refused: every DLMS DUT runs them


def run_suite(pytester, dut, *extra):
    return pytester.runpytest_inprocess("--dut", dut, "--hil-scenarios", SCENARIOS,
                                        "-p", "no:cacheprovider", *extra)


def test_suite_passes_against_the_inprocess_dut(pytester):
    result = run_suite(pytester, "inprocess:esme-single-phase")
    result.assert_outcomes(passed=len(ALL_SCENARIOS))
    assert result.ret == 0


def test_suite_passes_against_the_inprocess_dut_over_the_wrapper(pytester):
    result = run_suite(pytester, "inprocess:esme-single-phase/wrapper")
    # the HDLC link scenario needs HDLC: skipped by its capability marker, not a failure
    result.assert_outcomes(passed=len(ALL_SCENARIOS) - 1, skipped=1)
    result.stdout.fnmatch_lines(["*DUT lacks capability*hdlc*"])
    assert result.ret == 0


@pytest.mark.micropython
@pytest.mark.skipif(shutil.which("micropython") is None, reason="micropython binary not on PATH")
def test_suite_passes_against_the_micropython_dut(pytester):
    result = run_suite(pytester, "micropython:esme-single-phase", "-rs")
    # every scenario, GBCS included: the lab's head-end and DCC drive the core's ESME
    # (BoardCrypto inside the micropython binary) through its GBCS pipe channel
    result.assert_outcomes(passed=len(ALL_SCENARIOS))
    assert result.ret == 0
    logs = pytester.path / "hil-logs"
    text = (next(logs.iterdir()) / "10-gbcs-esme.toml_gbcs-esme.log").read_text()
    assert "ESME → hub" in text and "signature: verified" in text


def test_serial_driver_against_a_core_on_a_pty(pytester, core_on_pty):
    path, _ = core_on_pty
    result = run_suite(pytester, "serial:%s@115200" % path, "-rs")
    # a serial DUT has no power switch unless --hil-power-command names one, and no lab
    result.assert_outcomes(passed=len(ALL_SCENARIOS) - 2, skipped=2)
    result.stdout.fnmatch_lines(["*SKIPPED*DUT lacks capability*: power_cycle*",
                                 "*SKIPPED*DUT lacks capability*: gbcs*"])
    assert result.ret == 0
    logs = pytester.path / "hil-logs"
    folder = next(logs.iterdir())
    assert folder.name.startswith("serial-")
    text = (folder / "02-esme-read.toml_esme-read.log").read_text()
    assert "7ea0" in text and "GetResponseNormal" in text


@pytest.mark.parametrize("framing", ["wrapper", "hdlc"])
def test_tcp_driver_against_smets_emu_serve(pytester, smets_serve, framing):
    host, port = smets_serve(framing)
    result = run_suite(pytester, "tcp:%s:%d/%s" % (host, port, framing), "-rs")
    expected = DLMS_SCENARIOS + (1 if framing == "hdlc" else 0)
    result.assert_outcomes(passed=expected, skipped=len(ALL_SCENARIOS) - expected)
    assert result.ret == 0


def test_a_step_over_its_budget_fails_naming_step_budget_and_time(pytester):
    pytester.makefile(".toml", slow="""
        [scenario]
        name = "slow-clock"

        [[step]]
        name = "associate"
        associate = "public"

        [[step]]
        name = "read the clock"
        get = { class_id = 8, obis = "0.0.1.0.0.255", attribute = 2 }
        budget_ms = 0
        expect = { result = "success" }
        """)
    result = pytester.runpytest_inprocess("--dut", "inprocess:esme-single-phase",
                                          "--hil-scenarios", str(pytester.path),
                                          "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([
        r".*step 2 'read the clock' took \d+\.\d ms, over its budget of 0 ms.*"])
    result.stdout.fnmatch_lines(["*2 read the clock*over-budget*"])


def test_a_failed_expectation_names_the_step_and_what_was_read(pytester):
    pytester.makefile(".toml", wrong="""
        [scenario]
        name = "wrong-unit"

        [[step]]
        name = "read the scaler-unit"
        get = { class_id = 3, obis = "1.0.1.8.0.255", attribute = 3 }
        expect = { items = [3, 30] }
        """)
    result = pytester.runpytest_inprocess("--dut", "inprocess:esme-single-phase",
                                          "--hil-scenarios", str(pytester.path),
                                          "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([
        r"step 1 'read the scaler-unit' \(\d+\.\d ms\): items \[0, 30\], expected \[3, 30\]"])


def test_a_bad_scenario_file_is_a_collection_error(pytester):
    pytester.makefile(".toml", broken="""
        [[step]]
        name = "two actions"
        associate = "public"
        release = true
        """)
    result = pytester.runpytest_inprocess("--dut", "inprocess:esme-single-phase",
                                          "--hil-scenarios", str(pytester.path),
                                          "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*exactly one action*"])


def test_reports_junit_and_campaign_summary(pytester):
    report = pytester.path / "report"
    for dut in ("inprocess:esme-single-phase", "inprocess:esme-single-phase/wrapper"):
        result = run_suite(pytester, dut, "--junitxml", str(pytester.path / "junit.xml"),
                           "--hil-report", str(report))
        assert result.ret == 0
    junit = (pytester.path / "junit.xml").read_text()
    assert junit.count("<testcase") == len(ALL_SCENARIOS)
    assert 'name="step 2 read the clock latency_ms"' in junit
    campaign = json.loads((report / "campaign.json").read_text())
    assert sorted(campaign["duts"]) == ["inprocess-esme-single-phase",
                                        "inprocess-esme-single-phase-wrapper"]
    read = campaign["duts"]["inprocess-esme-single-phase"]["tests"]["02-esme-read.toml::esme-read"]
    assert read["outcome"] == "passed" and len(read["steps"]) == 10
    assert all(step["latency_ms"] > 0 and step["status"] == "passed" for step in read["steps"])
    markdown = (report / "summary.md").read_text()
    assert "| scenario | inprocess-esme-single-phase | inprocess-esme-single-phase-wrapper |" in markdown
    assert "| 05-esme-hdlc-link.toml::esme-hdlc-link | pass " in markdown
    assert "| skip |" in markdown
    page = (report / "summary.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "class='skipped'" in page
    assert "read the last 24 h of the half-hourly profile by range" in page
