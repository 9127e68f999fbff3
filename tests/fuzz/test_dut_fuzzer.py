"""The DUT fuzzer (emulator/fuzz/dut.py) against the HIL harness's targets.

It must find the planted fault (tests/fuzz/profiles/esme-planted-hang.toml: the core
hangs on an HDLC I frame over the negotiated maximum) on the in-process core and on the
micropython core, with a one-frame reproducer whose replay hangs the device again, and
report nothing against the shipped profiles: in-process, on micropython and over TCP
from `smets-emu serve`. The HIL plugin's --hil-fuzz items are run in a subprocess.
"""

import asyncio
import itertools
import json
import os
import pathlib
import random
import signal
import sys

import pytest

from emulator import profiles
from emulator.codec import hdlc as hdlc_codec
from emulator.fuzz import mutators
from emulator.fuzz.dut import HANG, DutFuzzer, FuzzError
from emulator.runtime import MicroPythonRuntime, RuntimeFailure
from emulator.strategies import gbcs as gbcs_strategies
from hil.drivers import FrameSplitter
from hil.resources import Subprocess
from hil.targets import Dut, Target, dut_label

REPO = pathlib.Path(__file__).resolve().parents[2]
PLANTED = str(pathlib.Path(__file__).resolve().parent / "profiles" / "esme-planted-hang.toml")
REAL = "esme-single-phase"
APDU_LAYERS = ("acse", "xdlms", "axdr")
INPROCESS_CASES = 300
MICROPYTHON_CASES = 150
pytest_plugins = ["pytester"]
PLANTED_CASES = 12        # the first oversized I frame of seed 0 is case 7


def fuzz(spec, layer, cases, **options):
    target = Target(spec).start()
    try:
        return DutFuzzer(Dut(target), layer, **options).run(cases)
    finally:
        target.stop()


def replay(spec, layer, cases, **options):
    target = Target(spec).start()
    try:
        return DutFuzzer(Dut(target), layer, **options).replay(cases)
    finally:
        target.stop()


def assert_planted_hang_found(result, spec):
    hangs = [f for f in result.findings if f.kind == HANG]
    assert hangs, result.findings
    first = hangs[0]
    assert first.reproduced is True
    assert len(first.reproducer) == 1 and first.reproducer[0].kind == "oversized"
    assert first.reproducer[0] in first.cases        # one of the frames since the last probe
    again = replay(spec, "hdlc", first.reproducer, timeout=0.5)
    assert [f.kind for f in again.findings] == [HANG]
    return first


# -- case generation ------------------------------------------------------------------------

def test_cases_are_repeatable_per_seed_and_differ_between_seeds():
    context = mutators.Context(profiles.load_profile(REAL))
    commands = gbcs_strategies.pooled_protected_commands("ESME")
    context.gbcs_commands = [mutators.draw(commands, random.Random(n)) for n in range(3)]
    for layer in mutators.LAYERS:
        first = [c.data for c in itertools.islice(mutators.cases(layer, context, 7), 40)]
        again = [c.data for c in itertools.islice(mutators.cases(layer, context, 7), 40)]
        other = [c.data for c in itertools.islice(mutators.cases(layer, context, 8), 40)]
        assert first == again and first != other, layer


def test_hdlc_cases_judge_frames_as_a_station_must():
    context = mutators.Context(profiles.load_profile(REAL))
    cases = list(itertools.islice(mutators.cases("hdlc", context, 0), 200))
    kinds = {c.kind for c in cases}
    assert kinds == {"malformed", "command", "linked", "oversized", "noise"}
    for case in cases:
        if case.kind == "malformed":
            assert case.expect == mutators.SILENCE
        if case.kind == "oversized":    # SNRM proposing 128, then an I frame over it
            assert case.expect == mutators.ANSWER
            snrm, frame = (hdlc_codec.parse_frame(f) for f in FrameSplitter("hdlc").feed(case.data))
            assert snrm.control.kind == "SNRM" and frame.control.kind == "I"
            assert len(frame.info) > mutators.PROPOSED_MAX_INFO


def test_a_layer_needs_its_framing_and_gbcs_a_dut_whose_esme_takes_it():
    target = Target("inprocess:%s" % REAL).start()
    try:
        with pytest.raises(FuzzError, match="wrapper framing"):
            DutFuzzer(Dut(target), "wrapper")
        with pytest.raises(FuzzError, match="layer gbcs needs"):
            DutFuzzer(Dut(target), "gbcs")
    finally:
        target.stop()


# -- the planted fault ----------------------------------------------------------------------

def test_finds_the_planted_hang_in_process_with_a_reproducer():
    spec = "inprocess:" + PLANTED
    result = fuzz(spec, "hdlc", PLANTED_CASES, timeout=0.5)
    first = assert_planted_hang_found(result, spec)
    assert first.index == 7 and result.recoveries >= 2       # found, restarted, replayed
    # the same frame is harmless to the shipped device: the fault is the planted one
    assert replay("inprocess:" + REAL, "hdlc", first.reproducer).findings == []


@pytest.mark.micropython
def test_finds_the_planted_hang_on_micropython_with_a_reproducer():
    spec = "micropython:" + PLANTED
    result = fuzz(spec, "hdlc", 8, timeout=0.5)
    assert result.stopped is None                 # the power cycle brought it back
    assert_planted_hang_found(result, spec)


# -- the real devices -----------------------------------------------------------------------

@pytest.mark.parametrize("layer", ("hdlc",) + APDU_LAYERS)
def test_the_shipped_core_survives_in_process(layer):
    result = fuzz("inprocess:" + REAL, layer, INPROCESS_CASES)
    assert result.findings == [] and result.stopped is None
    assert result.cases == INPROCESS_CASES and result.probes >= INPROCESS_CASES // 10


def test_the_shipped_core_survives_wrapper_in_process():
    for layer in ("wrapper",) + APDU_LAYERS:
        result = fuzz("inprocess:%s/wrapper" % REAL, layer, INPROCESS_CASES // 2)
        assert result.findings == [], (layer, result.findings)


@pytest.fixture(scope="module")
def micropython_dut():
    target = Target("micropython:" + REAL).start()
    yield Dut(target)
    target.stop()


@pytest.mark.micropython
@pytest.mark.parametrize("layer", ("hdlc",) + APDU_LAYERS + ("gbcs",))
def test_the_shipped_core_survives_on_micropython(micropython_dut, layer):
    result = DutFuzzer(micropython_dut, layer, timeout=5.0).run(MICROPYTHON_CASES)
    assert result.findings == [] and result.stopped is None
    assert result.cases == MICROPYTHON_CASES and result.recoveries == 0


@pytest.mark.micropython
def test_a_core_that_dies_is_a_crash_and_the_run_goes_on_after_a_restart():
    target = Target("micropython:" + REAL).start()
    try:
        def power_cut(index):
            if index == 4:
                os.kill(target._served._runtime.pid, signal.SIGKILL)
        fuzzer = DutFuzzer(Dut(target), "xdlms", timeout=0.5, minimize=False)
        result = fuzzer.run(20, on_case=power_cut)
    finally:
        target.stop()
    assert [(f.kind, f.index) for f in result.findings] == [("crash", 5)]
    assert result.recoveries == 1 and result.cases == 20 and result.stopped is None


def test_smets_emu_serve_over_tcp_survives(tmp_path):
    server = Subprocess(
        [sys.executable, "-m", "emulator.cli", "serve", "--profile", REAL,
         "--tcp", "127.0.0.1:0", "--framing", "wrapper", "--state", tmp_path / "state"],
        ready=r"listening tcp ([0-9.]+):(\d+) wrapper", ready_timeout=30, cwd=REPO).start()
    try:
        match = server.wait_ready()
        spec = "tcp:%s:%s/wrapper" % (match.group(1), match.group(2))
        for layer in ("wrapper", "xdlms", "acse"):
            result = fuzz(spec, layer, 60, timeout=5.0)
            assert result.findings == [], (layer, result.findings)
            assert result.cases == 60
        assert server.alive()
    finally:
        server.stop()


# -- the HIL plugin -------------------------------------------------------------------------

def test_hil_plugin_fuzz_items_fail_with_the_findings_and_write_the_report(pytester):
    report = pytester.path / "report"
    result = pytester.runpytest_inprocess(
        "--dut", "inprocess:" + PLANTED, "--hil-fuzz", "hdlc", "--hil-fuzz-cases", "10",
        "--hil-fuzz-timeout", "0.5", "--hil-report", str(report), "-p", "no:cacheprovider")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*hang after case 7*(reproduced: True)*",
                                 "FAILED *fuzz[[]hdlc[]]*"])
    folder = report / "fuzz" / dut_label("inprocess:" + PLANTED) / "hdlc"
    data = json.loads((folder / "fuzz-report.json").read_text())
    assert data["findings"][0]["kind"] == HANG and data["cases"] == 10
    assert (folder / "replay.jsonl").read_text().strip()
    campaign = json.loads((report / "campaign.json").read_text())
    outcomes = {name: test["outcome"] for name, test in
                next(iter(campaign["duts"].values()))["tests"].items()}
    assert outcomes == {"::fuzz[hdlc]": "failed"}


def test_hil_plugin_fuzz_items_pass_on_the_shipped_core(pytester):
    result = pytester.runpytest_inprocess("--dut", "inprocess:" + REAL, "--hil-fuzz", "hdlc",
                                          "--hil-fuzz", "xdlms", "--hil-fuzz-cases", "20",
                                          "-p", "no:cacheprovider")
    assert result.ret == 0
    result.assert_outcomes(passed=2)


# -- a bug this found -----------------------------------------------------------------------

@pytest.mark.micropython
def test_a_command_queued_behind_a_killed_hung_core_fails_cleanly():
    """Regression: after a power cycle of the hung micropython core, the command queued
    behind the hung one met `_proc` cleared by stop() and died of AttributeError, which
    killed the pty server's worker: the restarted DUT never answered again."""
    profile = profiles.load_profile(PLANTED)
    context = mutators.Context(profile)
    oversized = next(c for c in mutators.cases("hdlc", context, 0) if c.kind == "oversized")
    now = profile["clock"]["start"]

    async def scenario():
        runtime = MicroPythonRuntime(profile, now, command_timeout=30)
        await runtime.start()
        await runtime.open(1, "hdlc")
        hung = asyncio.ensure_future(runtime.receive(1, oversized.data))
        await asyncio.sleep(0.5)
        assert not hung.done()                    # the planted hang is real
        os.kill(runtime.pid, signal.SIGKILL)      # the power cut, as ServedPty makes it
        stopping = asyncio.ensure_future(runtime.stop())
        await asyncio.sleep(0)                    # its QUIT waits behind the hung command
        queued = asyncio.ensure_future(runtime.advance(now + 10))   # the clock's tick
        await stopping
        return await asyncio.gather(hung, queued, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert [type(o) for o in outcomes] == [RuntimeFailure, RuntimeFailure], outcomes
