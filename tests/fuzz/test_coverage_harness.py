"""The atheris harness (`emulator.fuzz.coverage`) where atheris installs: it runs a
layer's decoders for a few seconds from the seed corpus without a crash, and a planted
defect is found, written as a libFuzzer crash file, and replays as a failure."""

import os

import pytest

from emulator.fuzz import coverage, targets
from tests.fuzz.test_corpus_replay import replay_file

AVAILABLE, WHY = coverage.available()
needs_atheris = pytest.mark.skipif(not AVAILABLE, reason=WHY)

PLANTED = "planted-test-only"
PLANTED_ENV = "SMETS_FUZZ_PLANTED"


def _planted(target, data):
    """A decoder with a bug: any input starting with 'B' breaks it (one byte, so even an
    uninstrumented search finds it within a few hundred inputs)."""
    target.expect(data[:1] != b"B", "planted defect on %s", data.hex())


PLANTED_TARGET = targets.FuzzTarget(PLANTED, "fails on inputs starting with 'B'",
                                    lambda: (), _planted)
if os.environ.get(PLANTED_ENV):      # the atheris subprocess of the test below
    targets.LAYERS[PLANTED] = PLANTED_TARGET


@needs_atheris
@pytest.mark.parametrize("layer", ["axdr", "gbz"])
def test_a_layer_runs_under_atheris_without_a_crash(layer, tmp_path):
    # a count of inputs with the harness's fixed seed, not seconds: the same inputs on a
    # fast or a loaded machine (a time limit reached different inputs run to run)
    result = coverage.run(layer, seconds=0, runs=4000, corpus_dir=tmp_path / "corpus",
                          crash_dir=tmp_path / "crashes")
    assert result.returncode == 0 and result.crashes == [], result.log[-3000:]
    assert result.executions > 0, result.log[-3000:]
    assert result.corpus_size > 0, result.log[-3000:]


@needs_atheris
def test_a_planted_defect_is_found_written_and_replays_as_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv(PLANTED_ENV, "1")
    monkeypatch.setitem(targets.LAYERS, PLANTED, PLANTED_TARGET)
    result = coverage.run(PLANTED, seconds=20, crash_dir=tmp_path,
                          imports=["tests.fuzz.test_coverage_harness"])
    assert result.returncode != 0 and len(result.crashes) == 1, result.log[-3000:]
    crash = result.crashes[0]
    assert crash.parent == tmp_path and crash.name.startswith("crash-")
    assert crash.read_bytes()[:1] == b"B"
    with pytest.raises(pytest.fail.Exception, match=crash.name):
        replay_file(PLANTED, crash)


def test_atheris_is_reported_missing_with_a_reason(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_atheris(name, *args, **kwargs):
        if name == "atheris":
            raise ImportError("No module named 'atheris'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_atheris)
    ok, why = coverage.available()
    assert not ok and "atheris" in why
