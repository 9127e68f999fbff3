"""The benchmark command runs to the end and prints its table (no timing asserts: the
numbers belong to the machine; `python benchmarks/run.py` is where they are read)."""

import json
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
SECTIONS = {"a", "b", "c", "d", "e"}


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), "--quick", *args],
                          capture_output=True, text=True, timeout=300)


def test_quick_benchmark_prints_the_table():
    proc = _run()
    assert proc.returncode == 0, proc.stderr
    assert "smets-emu benchmarks (quick)" in proc.stdout
    for measure in ("firmware codec", "construct codec", "gurux codec", "dlms-cosem codec",
                    "simulated year", "heapsize=128K", "GET clock round trip"):
        assert measure in proc.stdout, measure


def test_quick_benchmark_json_has_every_section_and_no_codec_disagrees():
    proc = _run("--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["machine"]["cores"] >= 1 and report["quick"] is True
    rows = report["rows"]
    assert {row["section"] for row in rows} == SECTIONS
    # the modules have landed: no row may be left "not available", and the four codecs
    # must agree on the bytes and the values (a MISMATCH is a wrong codec, not slowness)
    assert not [r for r in rows if r["status"] in ("n/a", "MISMATCH")], rows
    targets = [r for r in rows if r["target"]]
    assert all(r["status"] in ("PASS", "FAIL") for r in targets)
