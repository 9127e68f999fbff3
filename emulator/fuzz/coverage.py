"""Coverage-guided fuzzing of one layer's decoders with atheris (libFuzzer for Python).

    result = coverage.run("gbz", seconds=30)      # atheris in a subprocess
    result.executions, result.crashes             # crash files, named crash-<sha1>

The subprocess is this module, `python -m emulator.fuzz.coverage --layer L ...`: it
imports the firmware and host codecs under `atheris.instrument_imports()` (so libFuzzer
sees their branches), then fuzzes `LAYERS[L].run` starting from the seed corpus
`fuzz/corpus/<layer>/`. New inputs that reach new code go to a working corpus folder
(a temporary one unless given), never into the committed seeds; an input that makes the
target raise is written by libFuzzer to `fuzz/crashes/<layer>/crash-<sha1>` (or the
`crash_dir` given), where the replay tests pick it up.

atheris ships wheels for Linux on x86_64 (CPython 3.x); `available()` says whether it
imports here.
"""

import argparse
import importlib
import os
import pathlib
import re
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
FUZZ_DIR = REPO / "fuzz"
CORPUS_DIR = FUZZ_DIR / "corpus"
CRASH_DIR = FUZZ_DIR / "crashes"
ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")
MAX_LEN = 4096               # bytes; the largest seeds (RTDS messages) are below this
TIMEOUT = 25                 # seconds one input may take before libFuzzer calls it a hang
# Packages whose code libFuzzer measures: the decoders and devices under test, and
# construct (the host codecs' branches are in its parsers). What a layer uses is imported
# (and so instrumented) by running its seeds once at start-up.
INSTRUMENTED = ("firmware", "emulator.codec", "emulator.ncp.ash", "emulator.ncp.ezsp",
                "construct")


class CoverageResult:
    """What one atheris run did: how many inputs it ran, how large its corpus grew, the
    crash files it wrote, its exit code and its log."""

    def __init__(self, layer, seconds, executions, corpus_size, crashes, returncode, log):
        self.layer = layer
        self.seconds = seconds
        self.executions = executions
        self.corpus_size = corpus_size
        self.crashes = crashes
        self.returncode = returncode
        self.log = log

    @property
    def ok(self):
        return self.returncode == 0 and not self.crashes

    def __repr__(self):
        return ("CoverageResult(%s, %ss, %d executions, corpus %d, %d crashes, rc %d)"
                % (self.layer, self.seconds, self.executions, self.corpus_size,
                   len(self.crashes), self.returncode))


def available():
    """(True, version) when atheris imports here, else (False, why not)."""
    try:
        import atheris  # noqa: F401
    except ImportError as e:
        return False, ("atheris is not installed (pip install atheris: wheels exist for "
                       "Linux x86_64 only): %s" % e)
    except Exception as e:       # a wheel for another CPU or libc fails at load time
        return False, "atheris does not load here: %r" % (e,)
    from importlib import metadata
    try:
        return True, "atheris %s" % metadata.version("atheris")
    except metadata.PackageNotFoundError:
        return True, "atheris"


def run(layer, seconds, corpus_dir=None, crash_dir=None, runs=None, jobs=1,
        imports=()):
    """Fuzz `layer` for `seconds` (0: no time limit, then give `runs`) or until `runs`
    inputs ran, in `jobs` subprocesses; a CoverageResult.

    `corpus_dir` receives the inputs atheris finds (a temporary folder when None; the
    committed seeds are read, never written); `crash_dir` the crash files (default
    fuzz/crashes/<layer>/). `imports` names modules the subprocess imports first: a test
    registers a layer of its own in `targets.LAYERS` that way. RuntimeError (with the
    reason) where atheris does not import."""
    ok, why = available()
    if not ok:
        raise RuntimeError(why)
    crash_dir = pathlib.Path(crash_dir) if crash_dir else CRASH_DIR / layer
    crash_dir.mkdir(parents=True, exist_ok=True)
    before = set(_artifacts(crash_dir))
    with tempfile.TemporaryDirectory(prefix="smets-fuzz-") as scratch:
        work = pathlib.Path(corpus_dir) if corpus_dir else pathlib.Path(scratch) / "corpus"
        work.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "emulator.fuzz.coverage", "--layer", layer,
                   "--seconds", str(seconds), "--corpus", str(work),
                   "--crash-dir", str(crash_dir)]
        if runs is not None:
            command += ["--runs", str(runs)]
        for module in imports:
            command += ["--import", module]
        # jobs: independent workers with their own seeds sharing one corpus folder
        # (libFuzzer's own -jobs re-executes argv[0], which a `python -m` run is not)
        env = dict(os.environ)       # the repository first: `imports` may name tests.*
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
        workers = [subprocess.Popen(command + ["--seed", str(job + 1)], cwd=scratch,
                                    env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace")
                   for job in range(max(1, jobs))]
        logs, codes = [], []
        for worker in workers:
            try:
                out, _ = worker.communicate(timeout=seconds + 120 if seconds else None)
            except subprocess.TimeoutExpired:
                worker.kill()
                out, _ = worker.communicate()
            logs.append(out)
            codes.append(worker.returncode)
    log = "".join(logs)
    returncode = next((code for code in codes if code), 0)
    crashes = sorted(p for p in _artifacts(crash_dir) if p not in before)
    return CoverageResult(layer, seconds, sum(_executions(out) for out in logs),
                          _corpus_size(log), crashes, returncode, log)


def _artifacts(folder):
    return [p for p in pathlib.Path(folder).iterdir() if p.name.startswith(ARTIFACT_PREFIXES)]


def _executions(log):
    """libFuzzer's count: "Done N runs" at the end, else the last "#N" status line."""
    done = re.findall(r"Done (\d+) runs", log)
    if done:
        return sum(int(n) for n in done)
    status = re.findall(r"^#(\d+)\s", log, re.MULTILINE)
    return int(status[-1]) if status else 0


def _corpus_size(log):
    sizes = re.findall(r"corp: (\d+)/", log)
    return int(sizes[-1]) if sizes else 0


# ---------------------------------------------------------------- the subprocess

def _arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m emulator.fuzz.coverage",
                                     description="atheris on one layer's decoders")
    parser.add_argument("--layer", required=True)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--corpus", required=True, help="folder the new inputs go to")
    parser.add_argument("--crash-dir", required=True)
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed")
    parser.add_argument("--import", dest="imports", action="append", default=[])
    return parser.parse_args(argv)


def libfuzzer_flags(args):
    flags = ["-max_total_time=%d" % args.seconds, "-max_len=%d" % MAX_LEN,
             "-timeout=%d" % TIMEOUT, "-seed=%d" % args.seed,
             "-artifact_prefix=%s/" % str(args.crash_dir).rstrip("/")]
    if args.runs is not None:
        flags.append("-runs=%d" % args.runs)
    return flags


def main(argv=None):
    args = _arguments(sys.argv[1:] if argv is None else argv)
    import atheris
    from emulator.fuzz import targets
    seeds = CORPUS_DIR / args.layer
    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        for module in args.imports:
            importlib.import_module(module)
        if args.layer not in targets.LAYERS:
            sys.exit("unknown layer %r (known: %s)" % (args.layer, ", ".join(targets.LAYERS)))
        target = targets.LAYERS[args.layer]
        # the seeds import what the layer needs (and build its device) under the hook
        target.run(b"")
        for path in sorted(seeds.iterdir()) if seeds.is_dir() else ():
            target.run(path.read_bytes())
    folders = [args.corpus] + ([str(seeds)] if seeds.is_dir() else [])
    atheris.Setup([sys.argv[0]] + libfuzzer_flags(args) + folders, target.run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
