"""The HIL pytest plugin (entry point `pytest11: smets_hil`).

    pytest --dut inprocess:esme-single-phase hil/scenarios tests/hil_cases
    pytest --dut micropython:esme-single-phase --hil-scenarios hil/scenarios \
           --junitxml out.xml --hil-report report/
    pytest --dut serial:/dev/ttyACM0@115200 ...      pytest --dut tcp:10.0.0.7:4059/wrapper ...

Without `--dut` it only registers its options and the `requires` marker: ordinary tests
are untouched. With it:
- a `dut` fixture (`hil.targets.Dut`): `request()`/`expect()` on decoded frames,
  `write()`/`expect_bytes()` on raw bytes, `get/set/action/read_profile`,
  `service_request` (GBCS), `power_cycle`
- `@pytest.mark.requires("gbcs", "power_cycle", ...)` skips, with the reason, what the
  DUT cannot do; any other skip fails the run (`--hil-strict-skips`, on under --dut)
- TOML scenarios in hil/scenarios (or `--hil-scenarios DIR`) are test items
- every frame, hex and decoded, in `hil-logs/<dut>/<test>.log`
- `--hil-report DIR`: campaign summary (scenario × DUT) as Markdown and HTML
- `--hil-fuzz LAYER` (repeatable) and `--hil-fuzz-cases N`: one item per layer that
  fuzzes the DUT (`emulator/fuzz/dut.py`); it fails with the findings, and with
  --hil-report writes fuzz/<dut>/<layer>/fuzz-report.json and replay.jsonl there
"""

import pathlib
import re
import time

import pytest

from hil.drivers import FrameLog
from hil.report import CampaignRecord
from hil.scenario import Scenario, ScenarioError, ScenarioRun, StepFailure
from hil.targets import Dut, Target, TargetError

SCENARIO_DIR = pathlib.Path(__file__).resolve().parent / "scenarios"
SESSION_KEY = pytest.StashKey()
CAPABILITY_SKIP = "DUT lacks capability"


def pytest_addoption(parser):
    group = parser.getgroup("smets-hil", "hardware in the loop (smets-emu)")
    group.addoption("--dut", metavar="SPEC", help=(
        "device under test: inprocess:PROFILE[/wrapper], micropython:PROFILE, "
        "serial:DEVICE[@baud], tcp:HOST:PORT[/wrapper|/hdlc]"))
    group.addoption("--hil-profile", default=None, metavar="PROFILE",
                    help="profile of a serial/tcp DUT (clients, passwords, addresses); "
                    "default esme-single-phase")
    group.addoption("--hil-seed", type=int, default=0, help="load-model seed of emulated DUTs")
    group.addoption("--hil-scenarios", action="append", default=[], metavar="DIR",
                    help="collect the TOML scenarios of DIR (needs --dut)")
    group.addoption("--hil-strict-skips", action="store_true", default=None,
                    help="fail the run on a skip not made by a capability marker "
                    "(default on under --dut)")
    group.addoption("--no-hil-strict-skips", dest="hil_strict_skips", action="store_false",
                    help="let other skips pass")
    group.addoption("--hil-logs", default="hil-logs", metavar="DIR",
                    help="where the per-DUT frame logs go (default hil-logs)")
    group.addoption("--hil-report", metavar="DIR", help="write the campaign summary here")
    group.addoption("--hil-power-command", metavar="CMD",
                    help="command that power-cycles a serial/tcp DUT (e.g. "
                    "'uhubctl -l 1-1 -p 2 -a cycle')")
    group.addoption("--hil-power-on", metavar="CMD", help="command that powers the DUT on")
    group.addoption("--hil-power-off", metavar="CMD", help="command that powers the DUT off")
    group.addoption("--hil-micropython", default="micropython", metavar="BINARY",
                    help="MicroPython binary of the micropython DUT")
    group.addoption("--hil-fuzz", action="append", default=[], metavar="LAYER",
                    help="fuzz the DUT at this layer (hdlc, wrapper, acse, xdlms, axdr): "
                    "one test item per layer (needs --dut)")
    group.addoption("--hil-fuzz-cases", type=int, default=100, metavar="N",
                    help="cases per --hil-fuzz layer (default 100)")
    group.addoption("--hil-fuzz-timeout", type=float, default=2.0, metavar="SECONDS",
                    help="seconds the DUT has to answer a fuzz case or probe (default 2)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires(*capabilities): the DUT must have these capabilities "
        "(dlms, hdlc, wrapper, gbcs, power_cycle, emulated, micropython, ...); "
        "skipped with the reason otherwise")
    spec = config.getoption("dut")
    if not spec:
        for option in ("hil_scenarios", "hil_fuzz"):
            if config.getoption(option):
                raise pytest.UsageError("--%s needs --dut" % option.replace("_", "-"))
        return
    session = HilSession(config, spec)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "smets-hil-session")
    extra = [str(pathlib.Path(d)) for d in config.getoption("hil_scenarios")]
    if extra or config.getoption("hil_fuzz"):
        if config.args_source == pytest.Config.ArgsSource.TESTPATHS:
            config.args[:] = extra     # scenarios or fuzzing asked for, not the test tree
        else:
            config.args.extend(a for a in extra if a not in config.args)


@pytest.fixture
def dut(request):
    """The device under test chosen with --dut (skipped when there is none)."""
    session = request.config.stash.get(SESSION_KEY, None)
    if session is None:
        pytest.skip("no --dut given: this test needs a device under test")
    device = session.begin_test(request.node)
    yield device
    session.end_test(request.node)


class HilSession:
    """Everything that exists only under --dut: the target, the logs, skips, the report."""

    def __init__(self, config, spec):
        self.config = config
        self.spec = spec
        self.strict = config.getoption("hil_strict_skips") is not False
        self.log_root = pathlib.Path(config.getoption("hil_logs"))
        self.target = None
        self.device = None
        self.start_error = None
        self.capability_skips = set()
        self.unexpected_skips = []
        self.steps = {}              # nodeid -> [StepResult]
        self.results = []            # (nodeid, name, outcome, duration_ms, reason)
        self._scenario_dirs = [SCENARIO_DIR] + [
            pathlib.Path(d).resolve() for d in config.getoption("hil_scenarios")]

    # -- the target ------------------------------------------------------------------------
    def ensure_target(self):
        if self.start_error is not None:
            raise TargetError(self.start_error)
        if self.target is None:
            try:
                self.target = Target(
                    self.spec, profile=self.config.getoption("hil_profile"),
                    seed=self.config.getoption("hil_seed"),
                    power_command=self.config.getoption("hil_power_command"),
                    power_on=self.config.getoption("hil_power_on"),
                    power_off=self.config.getoption("hil_power_off"),
                    micropython=self.config.getoption("hil_micropython")).start()
            except Exception as exc:
                self.start_error = "the DUT %s did not start: %s: %s" % (
                    self.spec, type(exc).__name__, exc)
                raise TargetError(self.start_error)
            self.device = Dut(self.target)
        return self.target

    def begin_test(self, item):
        self.ensure_target()
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", short_name(item.nodeid)).strip("_")
        self.device.set_log(FrameLog(self.log_root / self.target.name / ("%s.log" % name)))
        self.device.log.note("%s on %s" % (item.nodeid, self.target.describe()))
        return self.device

    def end_test(self, item):
        try:
            self.target.dlms.release()    # every test starts without an association
        except Exception:
            self.target.link.close()
        finally:
            if self.device.log is not None:
                self.device.log.close()
            self.device.set_log(None)

    # -- hooks -------------------------------------------------------------------------------
    def pytest_report_header(self, config):
        return "smets-hil: DUT %s" % self.spec

    def pytest_collect_file(self, file_path, parent):
        if file_path.suffix != ".toml":
            return None
        resolved = file_path.resolve()
        if any(resolved.parent == d or d in resolved.parents for d in self._scenario_dirs):
            return ScenarioFile.from_parent(parent, path=file_path)
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        required = []
        for marker in item.iter_markers("requires"):
            required += [c for c in marker.args if c not in required]
        if not required:
            return
        capabilities = self.ensure_target().capabilities
        missing = [c for c in required if c not in capabilities]
        if missing:
            self.capability_skips.add(item.nodeid)
            reason = "%s %s: %s (it has: %s)" % (CAPABILITY_SKIP, self.spec, ", ".join(missing),
                                                 ", ".join(sorted(capabilities)))
            try:      # reported at the test's own location, as skip markers are
                raise pytest.skip.Exception(reason, _use_item_location=True)
            except TypeError:
                pytest.skip(reason)

    def pytest_collection_modifyitems(self, session, config, items):
        for layer in config.getoption("hil_fuzz"):
            items.append(FuzzItem.from_parent(session, name="fuzz[%s]" % layer, layer=layer))

    def pytest_collectreport(self, report):
        if report.skipped:             # a module skipped whole: never a capability skip
            self.unexpected_skips.append((report.nodeid, _skip_reason(report)))

    def pytest_runtest_logreport(self, report):
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = _skip_reason(report)
            if report.nodeid not in self.capability_skips:
                self.unexpected_skips.append((report.nodeid, reason))
            self.results.append((report.nodeid, "skipped", None, reason))
        elif report.failed:
            outcome = "failed" if report.when == "call" else "error"
            self.results.append((report.nodeid, outcome, report.duration * 1000.0,
                                 str(report.longrepr).splitlines()[-1] if report.longrepr else ""))
        elif report.when == "call" and report.passed:
            self.results.append((report.nodeid, "passed", report.duration * 1000.0, ""))

    def pytest_sessionfinish(self, session, exitstatus):
        if self.strict and self.unexpected_skips and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        folder = self.config.getoption("hil_report")
        if folder:
            self.write_report(folder)

    def pytest_terminal_summary(self, terminalreporter):
        tr = terminalreporter
        tr.section("smets-hil: %s" % (self.target.describe() if self.target else self.spec))
        for nodeid, steps in self.steps.items():
            timed = [s for s in steps if s.latency_ms is not None]
            if not timed:
                continue
            slowest = max(timed, key=lambda s: s.latency_ms)
            tr.write_line("%s: %d steps, %.1f ms in all, slowest %d '%s' %.1f ms of %s" % (
                nodeid, len(timed), sum(s.latency_ms for s in timed), slowest.index,
                slowest.name, slowest.latency_ms, slowest.budget_ms))
        if self.unexpected_skips:
            tr.write_line("unexpected skips (not from a capability marker)%s:" % (
                ": the run fails" if self.strict else ""), red=self.strict, bold=True)
            for nodeid, reason in self.unexpected_skips:
                tr.write_line("  %s: %s" % (nodeid, reason))
        folder = self.config.getoption("hil_report")
        if folder:
            tr.write_line("campaign summary: %s" % (pathlib.Path(folder) / "summary.md"))

    def pytest_unconfigure(self, config):
        if self.target is not None:
            self.target.stop()
            self.target = None

    def write_report(self, folder):
        record = CampaignRecord(folder)
        dut = self.target.name if self.target else re.sub(r"[^A-Za-z0-9_.-]+", "-", self.spec)
        final = {}
        for nodeid, outcome, duration, reason in self.results:
            previous = final.get(nodeid)
            if previous and previous[0] in ("failed", "error"):
                continue                  # a teardown report must not hide a failure
            final[nodeid] = (outcome, duration, reason)
        for nodeid, (outcome, duration, reason) in final.items():
            steps = [s.to_json() for s in self.steps.get(nodeid, [])]
            if steps and all(s["latency_ms"] is not None for s in steps):
                duration = sum(s["latency_ms"] for s in steps)
            record.add(dut, short_name(nodeid), outcome, duration, steps, reason)
        record.write()


def short_name(nodeid):
    """The node id without its folders: the same scenario has the same name in every
    campaign run, wherever pytest was started from."""
    path, sep, rest = nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


def _skip_reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).replace("Skipped: ", "")
    return str(longrepr)


class ScenarioFile(pytest.File):
    def collect(self):
        try:
            scenario = Scenario.load(self.path)
        except ScenarioError as exc:
            raise self.CollectError(str(exc))
        item = ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario)
        if scenario.requires:
            item.add_marker(pytest.mark.requires(*scenario.requires))
        yield item


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario, **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.run = None

    def runtest(self):
        session = self.config.stash[SESSION_KEY]
        device = session.begin_test(self)
        self.run = ScenarioRun(self.scenario, device)
        session.steps[self.nodeid] = self.run.results
        started = time.perf_counter()
        try:
            self.run.run()
        finally:
            for result in self.run.results:
                if result.latency_ms is not None:
                    self.user_properties.append(("step %d %s latency_ms" % (
                        result.index, result.name), "%.3f" % result.latency_ms))
            self.user_properties.append(("scenario_ms", "%.3f" % (
                (time.perf_counter() - started) * 1000.0)))
            session.end_test(self)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, (StepFailure, ScenarioError, TargetError)):
            lines = [str(excinfo.value), ""]
            if self.run is not None:
                lines.append("steps of %s:" % self.scenario.name)
                for result in self.run.results:
                    lines.append("  %2d %-45s %9s ms  budget %6s ms  %s" % (
                        result.index, result.name[:45],
                        "-" if result.latency_ms is None else "%.1f" % result.latency_ms,
                        result.budget_ms, result.status))
            return "\n".join(lines)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, "scenario: %s" % self.scenario.name


class FuzzFindings(AssertionError):
    """A fuzz item's findings (emulator/fuzz/dut.py)."""


class FuzzItem(pytest.Item):
    """Fuzzes the DUT at one layer: `--hil-fuzz-cases` generated cases, seed --hil-seed."""

    def __init__(self, *, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer
        self.result = None

    def runtest(self):
        from emulator.fuzz import report
        from emulator.fuzz.dut import DutFuzzer
        session = self.config.stash[SESSION_KEY]
        device = session.begin_test(self)
        link = session.target.link
        saved = (link.timeout, link.retries)
        try:
            fuzzer = DutFuzzer(device, self.layer, seed=self.config.getoption("hil_seed"),
                               timeout=self.config.getoption("hil_fuzz_timeout"))
            self.result = fuzzer.run(self.config.getoption("hil_fuzz_cases"))
        finally:
            link.timeout, link.retries = saved
            session.end_test(self)
        folder = self.config.getoption("hil_report")
        if folder:
            report.write(self.result, pathlib.Path(folder) / "fuzz" / session.target.name
                         / self.layer)
        self.user_properties.append(("fuzz_cases", self.result.cases))
        self.user_properties.append(("fuzz_findings", len(self.result.findings)))
        if self.result.findings:
            raise FuzzFindings("%d findings in %d %s cases on %s" % (
                len(self.result.findings), self.result.cases, self.layer, session.spec))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, FuzzFindings) and self.result is not None:
            lines = [str(excinfo.value)]
            for finding in self.result.findings:
                lines.append("  %s after case %d: %s; reproducer %s (reproduced: %s)" % (
                    finding.kind, finding.index, finding.detail,
                    " ".join(c.data.hex() for c in finding.reproducer), finding.reproduced))
            if self.result.stopped:
                lines.append("  stopped: %s" % self.result.stopped)
            return "\n".join(lines)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, "fuzz %s: %s" % (self.layer, self.name)
