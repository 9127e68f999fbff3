"""Scenario files (TOML): steps that send something to a DUT and expect something back,
each within a time budget. Independent of pytest: `hil/plugin.py` makes each file an item.

    [scenario]
    name = "esme-read-public"
    requires = ["dlms"]            # capabilities the DUT must have (else: skipped)
    budget_ms = 2000               # default budget of every step

    [[step]]
    name = "read the clock"
    get = { class_id = 8, obis = "0.0.1.0.0.255", attribute = 2 }
    budget_ms = 1000
    expect = { result = "success", type = "octet-string", range = ["$t0", "$t0 + 60"] }
    save = "clock"                 # the value (date-time as seconds) for later steps

One action per step:
    associate = "public" | "management" (password = "..." overrides the profile's)
    release = true
    get = { obis, attribute, class_id?, entries = [from, to]?, range = [from_s, to_s]? }
    set = { obis, attribute, class_id?, value = VALUE }
    action = { obis, method, class_id?, parameter = VALUE? }
    read_profile = { obis, from_entry?, to_entry?, from_s?, to_s? }
    apdu = "hex"                   raw APDU on the open association
    send = "hex"                   raw bytes on the transport
    service_request = { srv, target = "ESME", supplier = "A", body = {...}?,
                        log_period_s = 86400? }   (GBCS, through the lab)
    top_up = { pence = 1000, target = "ESME" } | { replay = true }   (GBCS SRV 2.2, a UTRN
                                   minted by the head-end, or the last one sent again)
    inject = "hex"                 GBCS bytes put on the WAN by a stranger (not the DCC)
    listen = true                  send nothing: wait for what the DUT sends on its own
    power_cycle = true

VALUE: { type = "long-unsigned", value = 5 } | { type = "octet-string", hex = "..." } |
{ type = "octet-string", datetime = "$clock + 3600" } | { type = "structure", items = [...] }

Expectations (all that are given must hold):
    association = "accepted" | "rejected"
    result = "success" | a data-access-result or action-result name (read-write-denied...)
    type = Data type name;  value = scalar (bytes as {hex = "..."});  range = [lo, hi]
    items = [..]                   the scalars inside a structure or array
    rows = n | rows_range = [lo, hi] (profile rows, array items)
    apdu = "GetResponseNormal";  fields = { "result.data_access_result" = 3, ... }
    response_code = "I0";  ok = true;  fields = { import_wh = { range = [...] } }  (GBCS)
    alert = 0x8F1C                 an alert with this code reaches the supplier (GBCS)
    silence = true                 nothing comes back within silence_ms (default 500)
    bytes = "regex over the hex of what came back"

Numbers may be "$name", "$name + N" or "$name - N" (a value saved by an earlier step).
"""

import re
import time
import tomllib

from emulator.client import DlmsClientError, cosem_date_time
from firmware.dlms import axdr as A
from firmware.dlms import results as R
from firmware.dlms.cosem_datetime import datetime_seconds

ACTIONS = ("associate", "release", "get", "set", "action", "read_profile", "apdu", "send",
           "service_request", "top_up", "inject", "listen", "power_cycle")
EXPECTATIONS = ("association", "result", "type", "value", "items", "range", "rows", "rows_range",
                "apdu", "fields", "response_code", "ok", "alert", "silence", "silence_ms",
                "bytes")
DEFAULT_BUDGET_MS = 2000
DEFAULT_SILENCE_MS = 500

TYPE_TAGS = {
    "null-data": A.NULL_DATA, "array": A.ARRAY, "structure": A.STRUCTURE,
    "boolean": A.BOOLEAN, "bit-string": A.BIT_STRING, "double-long": A.DOUBLE_LONG,
    "double-long-unsigned": A.DOUBLE_LONG_UNSIGNED, "octet-string": A.OCTET_STRING,
    "visible-string": A.VISIBLE_STRING, "utf8-string": 12, "bcd": A.BCD,
    "integer": A.INTEGER, "long": A.LONG, "unsigned": A.UNSIGNED,
    "long-unsigned": A.LONG_UNSIGNED, "long64": 20, "long64-unsigned": 21, "enum": 22,
    "float32": 23, "float64": 24, "date-time": A.DATE_TIME, "date": A.DATE, "time": A.TIME,
}
TYPE_NAMES = {tag: name for name, tag in TYPE_TAGS.items()}
RESULT_CODES = {name: code for code, name in R.DATA_ACCESS_RESULT_NAMES.items()}
RESULT_CODES.update({name: code for code, name in R.ACTION_RESULT_NAMES.items()})


class ScenarioError(Exception):
    """A scenario file that does not say what it means: file, step and reason."""


class StepFailure(AssertionError):
    """A step whose expectation did not hold, or that took longer than its budget."""


class StepResult:
    def __init__(self, index, name, budget_ms):
        self.index = index
        self.name = name
        self.budget_ms = budget_ms
        self.latency_ms = None
        self.status = "not run"       # passed | failed | over-budget | error
        self.message = ""

    def to_json(self):
        return {"step": self.index, "name": self.name, "budget_ms": self.budget_ms,
                "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
                "status": self.status, "message": self.message}


class Step:
    def __init__(self, index, spec, default_budget, where):
        self.index = index
        self.spec = spec
        self.where = "%s, step %d" % (where, index)
        self.name = spec.get("name") or "step %d" % index
        actions = [key for key in ACTIONS if key in spec]
        if len(actions) != 1:
            raise ScenarioError("%s (%s): exactly one action of %s, found %s" % (
                self.where, self.name, ", ".join(ACTIONS), actions or "none"))
        self.action = actions[0]
        self.budget_ms = spec.get("budget_ms", default_budget)
        self.expect = spec.get("expect", {})
        unknown = set(self.expect) - set(EXPECTATIONS)
        if unknown:
            raise ScenarioError("%s (%s): unknown expectations %s (known: %s)" % (
                self.where, self.name, sorted(unknown), ", ".join(EXPECTATIONS)))
        self.save = spec.get("save")
        self.requires = list(spec.get("requires", []))


class Scenario:
    def __init__(self, path, data):
        self.path = path
        head = data.get("scenario", {})
        self.name = head.get("name") or path.stem
        self.description = head.get("description", "")
        self.budget_ms = head.get("budget_ms", DEFAULT_BUDGET_MS)
        steps = data.get("step", [])
        if not steps:
            raise ScenarioError("%s: no [[step]]" % path)
        self.steps = [Step(i + 1, spec, self.budget_ms, path.name) for i, spec in enumerate(steps)]
        requires = list(head.get("requires", []))
        for step in self.steps:
            requires += [r for r in step.requires if r not in requires]
        self.requires = requires

    @classmethod
    def load(cls, path):
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError("%s: %s" % (path, exc))
        return cls(path, data)


# -- values ---------------------------------------------------------------------------------

_VARIABLE = re.compile(r"^\s*\$(\w+)\s*(?:([+-])\s*(\d+)\s*)?$")


def resolve(value, variables):
    """A number, or "$name [+|- N]" looked up in `variables`."""
    if isinstance(value, str) and value.strip().startswith("$"):
        match = _VARIABLE.match(value)
        if not match:
            raise ScenarioError("cannot read %r (expected $name, $name + N or $name - N)" % value)
        name, sign, amount = match.groups()
        if name not in variables:
            raise ScenarioError("$%s is not saved by an earlier step" % name)
        base = variables[name]
        return base + int(amount) if sign == "+" else base - int(amount) if sign else base
    if isinstance(value, list):
        return [resolve(v, variables) for v in value]
    return value


def build_value(spec, variables):
    """A VALUE table -> a Data value of the tuple model (docs/CORE_INTERFACES.md §1)."""
    kind = spec.get("type")
    if kind not in TYPE_TAGS:
        raise ScenarioError("unknown Data type %r (known: %s)" % (kind, ", ".join(TYPE_TAGS)))
    tag = TYPE_TAGS[kind]
    if tag in (A.ARRAY, A.STRUCTURE):
        return (tag, [build_value(item, variables) for item in spec.get("items", [])])
    if "datetime" in spec:           # COSEM date-time of integer seconds (Blue Book 4.1.6.1)
        return (tag, cosem_date_time(resolve(spec["datetime"], variables)))
    if "hex" in spec:
        return (tag, bytes.fromhex(spec["hex"]))
    if tag in (A.NULL_DATA, 255):
        return (tag, None)
    if "value" not in spec:
        raise ScenarioError("a %s value needs `value`" % kind)
    value = resolve(spec["value"], variables)
    if tag in (A.VISIBLE_STRING, 12) and isinstance(value, str):
        value = value.encode()
    return (tag, value)


def plain(value):
    """A Data value as a comparable scalar: date-time octet strings become seconds."""
    if not (isinstance(value, tuple) and len(value) == 2):
        return value
    tag, payload = value
    if tag in (A.OCTET_STRING, A.DATE_TIME) and isinstance(payload, bytes) and len(payload) == 12:
        try:
            return datetime_seconds(payload)
        except ValueError:
            return payload
    return payload


def _expected_scalar(value, variables):
    if isinstance(value, dict) and "hex" in value:
        return bytes.fromhex(value["hex"])
    return resolve(value, variables)


def _dig(fields, path):
    node = fields
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(path)
    return node


# -- running ----------------------------------------------------------------------------------

class Outcome:
    """What one action produced, in the terms the expectations use."""

    def __init__(self):
        self.association = None
        self.result = None
        self.value = None
        self.rows = None
        self.frame = None
        self.response = None        # GBCS: the lab's Outcome
        self.received = b""
        self.alerts = None


class ScenarioRun:
    """Runs a scenario's steps against a `hil.targets.Dut`; `results` has every step's
    latency; `run()` raises StepFailure at the first step that fails."""

    def __init__(self, scenario, dut):
        self.scenario = scenario
        self.dut = dut
        self.variables = {}
        self.results = []

    def run(self):
        for step in self.scenario.steps:
            result = StepResult(step.index, step.name, step.budget_ms)
            self.results.append(result)
            if self.dut.log is not None:
                self.dut.log.note("step %d: %s" % (step.index, step.name))
            try:
                self.run_step(step, result)
            except StepFailure as failure:
                result.status = result.status if result.status != "not run" else "failed"
                result.message = str(failure)
                raise
            except ScenarioError as exc:
                result.status = "error"
                result.message = "%s (%s): %s" % (step.where, step.name, exc)
                raise ScenarioError(result.message)
            except Exception as exc:
                result.status = "failed"
                result.message = "step %d '%s': %s: %s" % (step.index, step.name,
                                                           type(exc).__name__, exc)
                raise StepFailure(result.message)
        return self.results

    def run_step(self, step, result):
        started = time.perf_counter()
        outcome = getattr(self, "_do_" + step.action)(step)
        if "silence" in step.expect or "bytes" in step.expect:
            self._listen(step, outcome)
        if "alert" in step.expect:
            spec = step.spec[step.action]
            supplier = spec.get("supplier", "A") if isinstance(spec, dict) else "A"
            outcome.alerts = self.dut.gbcs.alerts(supplier)
        result.latency_ms = (time.perf_counter() - started) * 1000.0
        problems = self.check(step, outcome)
        if problems:
            result.status = "failed"
            raise StepFailure("step %d '%s' (%.1f ms): %s" % (
                step.index, step.name, result.latency_ms, "; ".join(problems)))
        if result.latency_ms > step.budget_ms:
            result.status = "over-budget"
            raise StepFailure("step %d '%s' took %.1f ms, over its budget of %s ms" % (
                step.index, step.name, result.latency_ms, step.budget_ms))
        if step.save:
            self.variables[step.save] = plain(outcome.value)
        result.status = "passed"

    # -- actions ------------------------------------------------------------------------------
    def _do_associate(self, step):
        outcome = Outcome()
        try:
            self.dut.associate(step.spec["associate"], step.spec.get("password"))
            outcome.association = "accepted"
        except DlmsClientError as exc:
            if exc.diagnostic is None:
                raise
            outcome.association = "rejected"
            outcome.value = exc.diagnostic
        return outcome

    def _do_release(self, step):
        self.dut.release()
        return Outcome()

    def _dlms(self, call):
        outcome = Outcome()
        try:
            outcome.value = call()
            outcome.result = "success"
        except DlmsClientError as exc:
            code = exc.data_access_result if exc.data_access_result is not None else exc.action_result
            if code is None:
                raise
            names = R.ACTION_RESULT_NAMES if exc.action_result is not None else R.DATA_ACCESS_RESULT_NAMES
            outcome.result = names.get(code, str(code))
        if isinstance(outcome.value, tuple) and outcome.value[0] == A.ARRAY:
            outcome.rows = outcome.value[1]
        return outcome

    def _do_get(self, step):
        spec = step.spec["get"]
        selector = parameters = None
        if "entries" in spec:
            from emulator.client import entry_descriptor
            first, last = resolve(spec["entries"], self.variables)
            selector, parameters = 2, entry_descriptor(first, last)
        elif "range" in spec:
            from emulator.client import range_descriptor
            low, high = resolve(spec["range"], self.variables)
            selector, parameters = 1, range_descriptor(low, high)
        return self._dlms(lambda: self.dut.get(spec["obis"], spec["attribute"],
                                               spec.get("class_id"), selector, parameters))

    def _do_set(self, step):
        spec = step.spec["set"]
        value = build_value(spec["value"], self.variables)
        return self._dlms(lambda: self.dut.set(spec["obis"], spec["attribute"], value,
                                               spec.get("class_id")))

    def _do_action(self, step):
        spec = step.spec["action"]
        parameter = spec.get("parameter")
        value = build_value(parameter, self.variables) if parameter else None
        return self._dlms(lambda: self.dut.action(spec["obis"], spec["method"], value,
                                                  spec.get("class_id")))

    def _do_read_profile(self, step):
        spec = step.spec["read_profile"]
        selection = {}
        for key, name in (("from_entry", "from_entry"), ("to_entry", "to_entry"),
                          ("from_s", "from_seconds"), ("to_s", "to_seconds")):
            if key in spec:
                selection[name] = resolve(spec[key], self.variables)
        outcome = self._dlms(lambda: self.dut.read_profile(spec["obis"], **selection))
        if outcome.result == "success":
            outcome.rows = outcome.value
            outcome.value = (A.ARRAY, [(A.STRUCTURE, row) for row in outcome.rows])
        return outcome

    def _do_apdu(self, step):
        outcome = Outcome()
        outcome.frame = self.dut.request(bytes.fromhex(step.spec["apdu"]))
        return outcome

    def _do_send(self, step):
        self.dut.write(bytes.fromhex(step.spec["send"]))
        return Outcome()

    def _do_listen(self, step):
        return Outcome()

    def _do_service_request(self, step):
        spec = step.spec["service_request"]
        outcome = Outcome()
        outcome.response = self.dut.service_request(
            spec["srv"], spec.get("target", "ESME"), spec.get("body"), spec.get("supplier", "A"),
            log_period=spec.get("log_period_s"))
        outcome.result = outcome.response.response_code
        return outcome

    def _do_top_up(self, step):
        spec = step.spec["top_up"]
        outcome = Outcome()
        gbcs = self.dut.gbcs
        if gbcs is None:
            raise ScenarioError("the DUT has no GBCS driver (mark the scenario requires gbcs)")
        outcome.response = gbcs.top_up(spec.get("pence", 0), spec.get("target", "ESME"),
                                       spec.get("supplier", "A"), bool(spec.get("replay")))
        outcome.result = outcome.response.response_code
        return outcome

    def _do_inject(self, step):
        outcome = Outcome()
        answers = self.dut.gbcs.inject(bytes.fromhex(step.spec["inject"]))
        outcome.received = b"".join(answers)
        return outcome

    def _do_power_cycle(self, step):
        self.dut.power_cycle()
        return Outcome()

    def _listen(self, step, outcome):
        wait = step.expect.get("silence_ms", DEFAULT_SILENCE_MS) / 1000.0
        if step.action in ("service_request", "top_up", "inject"):
            return                      # the lab answers in process: what came is all
        outcome.received = self.dut.read_bytes(wait)

    # -- expectations -------------------------------------------------------------------------
    def check(self, step, outcome):
        problems = []
        expect = step.expect
        variables = self.variables

        def fail(text):
            problems.append(text)

        if "association" in expect and outcome.association != expect["association"]:
            fail("association %s, expected %s" % (outcome.association, expect["association"]))
        gbcs_step = step.action in ("service_request", "top_up")
        if "result" in expect and not gbcs_step \
                and outcome.result != expect["result"]:
            fail("result %s, expected %s" % (outcome.result, expect["result"]))
        if "type" in expect:
            tag = outcome.value[0] if isinstance(outcome.value, tuple) else None
            if tag != TYPE_TAGS.get(expect["type"], expect["type"]):
                fail("type %s, expected %s" % (TYPE_NAMES.get(tag, tag), expect["type"]))
        if "value" in expect:
            wanted = _expected_scalar(expect["value"], variables)
            got = plain(outcome.value)
            if got != wanted:
                fail("value %r, expected %r" % (got, wanted))
        if "items" in expect:
            got = plain(outcome.value)
            got = [plain(item) for item in got] if isinstance(got, list) else got
            wanted = [_expected_scalar(v, variables) for v in expect["items"]]
            if got != wanted:
                fail("items %r, expected %r" % (got, wanted))
        if "range" in expect:
            low, high = resolve(expect["range"], variables)
            got = plain(outcome.value)
            if not isinstance(got, (int, float)) or isinstance(got, bool) or not low <= got <= high:
                fail("value %r not in range [%s, %s]" % (got, low, high))
        if "rows" in expect or "rows_range" in expect:
            count = None if outcome.rows is None else len(outcome.rows)
            low, high = ((expect["rows"], expect["rows"]) if "rows" in expect
                         else resolve(expect["rows_range"], variables))
            if count is None or not low <= count <= high:
                fail("%s rows, expected %s" % (count, expect.get("rows", expect.get("rows_range"))))
        if "apdu" in expect:
            name = outcome.frame.apdu if outcome.frame is not None else None
            if name != expect["apdu"]:
                fail("APDU %s, expected %s" % (name, expect["apdu"]))
        if "fields" in expect:
            self._check_fields(expect["fields"], outcome, fail)
        if "response_code" in expect or (gbcs_step and "result" in expect):
            wanted = expect.get("response_code", expect.get("result"))
            if outcome.result != wanted:
                fail("response code %s, expected %s" % (outcome.result, wanted))
        if "ok" in expect:
            ok = outcome.response.ok if outcome.response is not None else outcome.result == "success"
            if ok != expect["ok"]:
                failed = [c for c in getattr(outcome.response, "checks", []) if not c[2]]
                fail("ok is %s, expected %s%s" % (ok, expect["ok"],
                                                  " (failed checks: %s)" % failed if failed else ""))
        if "alert" in expect:
            codes = [a.alert_code for a in outcome.alerts or []]
            if expect["alert"] not in codes:
                fail("no alert 0x%04X (alerts: %s)" % (expect["alert"],
                                                        ["0x%04X" % c for c in codes] or "none"))
        if expect.get("silence") and outcome.received:
            fail("expected silence, received %s" % outcome.received.hex())
        if "bytes" in expect and not re.search(expect["bytes"], outcome.received.hex()):
            fail("received %s, expected bytes matching %r" % (outcome.received.hex() or "nothing",
                                                             expect["bytes"]))
        return problems

    def _check_fields(self, wanted, outcome, fail):
        if outcome.response is not None:
            fields = outcome.response.fields
        elif outcome.frame is not None:
            fields = outcome.frame.fields
        else:
            fail("no decoded frame to read fields from")
            return
        for path, expected in wanted.items():
            try:
                got = _dig(fields, path)
            except KeyError:
                fail("no field %s (has %s)" % (path, sorted(fields)))
                continue
            got = plain(got)
            if isinstance(expected, dict) and "range" in expected:
                low, high = resolve(expected["range"], self.variables)
                if not isinstance(got, (int, float)) or not low <= got <= high:
                    fail("field %s = %r not in range [%s, %s]" % (path, got, low, high))
            else:
                expected = _expected_scalar(expected, self.variables)
                if got != expected:
                    fail("field %s = %r, expected %r" % (path, got, expected))
