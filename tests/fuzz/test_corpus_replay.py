"""Every committed seed and crash input replays through its layer's fuzz target
(`emulator.fuzz.targets`) without a finding: the atheris corpus runs in CI, and a fixed
crash stays fixed. No atheris needed."""

import pathlib

import pytest

from emulator.fuzz import coverage, targets

LAYER_NAMES = sorted(targets.LAYERS)


def _files(root):
    if not root.is_dir():
        return []
    return sorted(path for folder in sorted(root.iterdir()) if folder.is_dir()
                  for path in sorted(folder.iterdir()) if path.is_file())


FILES = _files(coverage.CORPUS_DIR) + _files(coverage.CRASH_DIR)


def replay_file(layer, path):
    """Feed one file to its layer's target; a finding fails with the file's name."""
    try:
        targets.LAYERS[layer].run(pathlib.Path(path).read_bytes())
    except Exception as e:
        pytest.fail("%s replays as a finding of %s: %s: %s"
                    % (path, layer, type(e).__name__, e), pytrace=False)


@pytest.mark.parametrize("path", FILES, ids=lambda p: "%s/%s/%s" % (
    p.parent.parent.name, p.parent.name, p.name[:12]))
def test_file_replays_without_a_finding(path):
    replay_file(path.parent.name, path)


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_every_layer_has_seeds(layer):
    seeds = [p for p in FILES if p.parent == coverage.CORPUS_DIR / layer]
    assert seeds, "no files in %s" % (coverage.CORPUS_DIR / layer)


def test_every_folder_is_a_layer_and_the_corpus_is_small():
    for path in FILES:
        assert path.parent.name in targets.LAYERS, path
    assert sum(p.stat().st_size for p in FILES) < 1_000_000


def test_a_finding_fails_the_replay_with_the_file_name(tmp_path):
    """The replay really can fail: a target's finding fails it, naming the file."""
    path = tmp_path / "crash-example"
    path.write_bytes(bytes.fromhex("7ea0070321930f017e"))       # a good SNRM
    broken = targets.FuzzTarget("broken", "accepts nothing", lambda: (), _always_finding)
    targets.LAYERS["broken"] = broken
    try:
        with pytest.raises(pytest.fail.Exception, match="crash-example"):
            replay_file("broken", path)
    finally:
        del targets.LAYERS["broken"]


def _always_finding(target, data):
    target.expect(False, "%d bytes", len(data))
