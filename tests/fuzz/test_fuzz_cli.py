"""`smets-emu fuzz` end to end through click: a DUT run, its report files, replaying
them, the exit codes (0 clean, 1 findings, 2 usage), and the atheris mode's wiring."""

import json
import pathlib

from click.testing import CliRunner

from emulator.cli import main
from emulator.fuzz import cli, coverage, mutators, targets

PLANTED = str(pathlib.Path(__file__).resolve().parent / "profiles" / "esme-planted-hang.toml")
REAL = "esme-single-phase"
HEX_KEYS = {"layer", "action", "hex", "expect", "kind"}


def smets_emu(*args):
    return CliRunner().invoke(main, ["fuzz", *args], catch_exceptions=False)


def test_a_planted_hang_exits_1_with_a_report_and_a_replay_that_hangs_it_again(tmp_path):
    done = smets_emu("--target", "inprocess:" + PLANTED, "--layer", "hdlc", "--cases", "10",
                     "--seed", "0", "--timeout", "0.5", "--report", str(tmp_path))
    assert done.exit_code == 1, done.output
    report = json.loads((tmp_path / "fuzz-report.json").read_text())
    assert report["schema"] == 1
    assert (report["target"], report["layer"], report["seed"], report["cases"]) == (
        "inprocess:" + PLANTED, "hdlc", 0, 10)
    assert isinstance(report["duration_s"], float) and report["liveness_every"] == 10
    assert report["stopped"] is None and report["recoveries"] >= 1
    hang = report["findings"][0]
    assert (hang["kind"], hang["case"], hang["reproduced"]) == ("hang", 7, True)
    assert all(bytes.fromhex(frame) is not None for frame in hang["frames"])
    assert len(hang["reproducer"]) == 1 and set(hang["reproducer"][0]) == HEX_KEYS
    assert hang["reproducer"][0]["hex"] in hang["frames"]

    lines = (tmp_path / "replay.jsonl").read_text().splitlines()
    assert len(lines) == sum(len(f["reproducer"]) for f in report["findings"])
    first = json.loads(lines[0])
    assert first["finding"] == 0 and first["hex"] == hang["reproducer"][0]["hex"]

    again = smets_emu("--target", "inprocess:" + PLANTED, "--layer", "hdlc", "--timeout", "0.5",
                      "--replay", str(tmp_path / "replay.jsonl"), "--report", str(tmp_path / "r"))
    assert again.exit_code == 1, again.output
    replayed = json.loads((tmp_path / "r" / "fuzz-report.json").read_text())
    assert {f["kind"] for f in replayed["findings"]} == {"hang"}
    assert replayed["cases"] == len(lines)

    shipped = smets_emu("--target", "inprocess:" + REAL, "--layer", "hdlc",
                        "--replay", str(tmp_path / "replay.jsonl"))
    assert shipped.exit_code == 0, shipped.output


def test_a_clean_run_exits_0_and_writes_an_empty_replay(tmp_path):
    done = smets_emu("--target", "inprocess:%s/wrapper" % REAL, "--layer", "wrapper",
                     "--cases", "40", "--liveness-every", "5", "--report", str(tmp_path))
    assert done.exit_code == 0, done.output
    report = json.loads((tmp_path / "fuzz-report.json").read_text())
    assert report["findings"] == [] and report["cases"] == 40 and report["probes"] >= 8
    assert (tmp_path / "replay.jsonl").read_text() == ""
    assert "40 cases" in done.output


def test_the_help_names_every_dut_layer():
    assert cli.DUT_LAYERS_TEXT == ", ".join(mutators.LAYERS)
    assert cli.DUT_LAYERS_TEXT in " ".join(smets_emu("--help").output.split())


def test_usage_errors_exit_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    for args in (
            ["--target", "inprocess:" + REAL, "--layer", "nonsense"],
            ["--target", "inprocess:" + REAL, "--layer", "wrapper"],       # an HDLC DUT
            ["--target", "bogus:thing", "--layer", "hdlc"],
            ["--target", "tcp:127.0.0.1:1/wrapper", "--layer", "wrapper"],  # nobody there
            ["--target", "inprocess:" + REAL, "--layer", "hdlc", "--replay", str(bad)],
            ["--layer", "hdlc", "--replay", str(bad)],
            ["--layer", "hdlc"],                                           # no --seconds
            ["--layer", "no-such-decoder", "--seconds", "1"],
            ["--target", "inprocess:" + REAL, "--layer", "hdlc", "--cases", "0"]):
        done = smets_emu(*args)
        assert done.exit_code == 2, (args, done.output)


def test_without_target_the_atheris_harness_runs_the_layer(monkeypatch, tmp_path):
    calls = []

    def run(layer, seconds, corpus_dir=None, crash_dir=None, runs=None, jobs=1):
        calls.append((layer, seconds, corpus_dir, crash_dir, runs, jobs))
        crashes = [tmp_path / "crash-1"] if layer == "hdlc" else []
        return coverage.CoverageResult(layer, seconds, 10, 3, crashes, 0, "")

    monkeypatch.setattr(coverage, "available", lambda: (True, "atheris"))
    monkeypatch.setattr(coverage, "run", run)
    layer = next(name for name in sorted(targets.LAYERS) if name != "hdlc")
    assert smets_emu("--layer", layer, "--seconds", "3", "--corpus", str(tmp_path)).exit_code == 0
    crashed = smets_emu("--layer", "hdlc", "--seconds", "2", "--jobs", "2")
    assert crashed.exit_code == 1 and "crash-1" in crashed.output
    assert calls == [(layer, 3, str(tmp_path), None, None, 1), ("hdlc", 2, None, None, None, 2)]

    monkeypatch.setattr(coverage, "available", lambda: (False, "atheris is not installed"))
    missing = smets_emu("--layer", "hdlc", "--seconds", "1")
    assert missing.exit_code == 2 and "atheris is not installed" in missing.output
