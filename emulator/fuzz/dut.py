"""Fuzzing a device under test: mutated frames of one layer to a DUT of the HIL harness
(`hil.targets`: in-process core, the micropython core on a pty, a board on a serial
port, a networked device), with a liveness probe every few cases.

    fuzzer = DutFuzzer(dut, "hdlc", seed=0, liveness_every=10, timeout=2.0)
    result = fuzzer.run(300)            # or fuzzer.replay(cases)
    result.findings                     # [Finding]

Cases come from `emulator.fuzz.mutators` (what to send, what must come back); the GBCS
layer first records the commands the lab's head-end and DCC build for the DUT's own
ESME (a few service requests through `dut.gbcs`) and mutates those. Every
`liveness_every` cases, and at once after a case that went unanswered, the probe (a
new link, an association as the public client and a GET of the clock) must be answered
within `timeout`. Findings:

    hang               the probe went unanswered: the DUT is power-cycled when it can
                       be (an emulated DUT, or a bench with --hil-power-* commands), else
                       the run stops
    crash              the DUT's process or port died
    missing-answer     a case that must be answered was not, but the DUT still answers
    unexpected-answer  an answer where silence was due, or one that does not decode

Each finding keeps the cases since the last good probe; a hang or crash is then
replayed case by case (the last one first) to find one that reproduces it alone: the
finding's `reproducer`, and `reproduced` says whether replaying it did.
"""

import time

from emulator.codec import acse as acse_codec
from emulator.codec import gbcs as gbcs_codec
from emulator.codec import hdlc as hdlc_codec
from emulator.codec import wrapper as wrapper_codec
from emulator.codec import xdlms as xdlms_codec
from emulator.fuzz import mutators
from emulator.fuzz.mutators import ANSWER, SILENCE, Case
from emulator.client import DlmsClientError
from emulator.link import LinkFailure, LinkTimeout
from emulator.runtime import CoreError, RuntimeFailure
from firmware.gbcs import envelope
from hil.drivers import DriverError, FrameSplitter
from hil.resources import ResourceError
from hil.targets import LAB_PROFILE

HANG, CRASH, MISSING, UNEXPECTED = "hang", "crash", "missing-answer", "unexpected-answer"
KINDS = (HANG, CRASH, MISSING, UNEXPECTED)
LAYER_FRAMING = {"hdlc": "hdlc", "wrapper": "wrapper"}     # the others ride either
CLOCK_CLASS = 8
GBCS_REQUESTS = ("4.1.1", "7.1", "7.2")   # ECS17b (MAC'd, encrypted), ECS42, ECS43 (signed)
QUIET = 0.1           # seconds of silence that end an answer on a real line
GAP = 0.03            # ... once its first bytes came
INPROCESS_TIMEOUT = 0.05
# APDUs a server may answer a request with (Green Book 9.5 and 9.4.2.2): GET, SET and
# ACTION responses, exception-response, confirmed-service-error, AARE, RLRE
RESPONSE_TAGS = (0xC4, 0xC5, 0xC7, 0xD8, 0x0E, 0x61, 0x63)
TRANSPORT_ERRORS = (ConnectionError, OSError, ResourceError)


class FuzzError(Exception):
    """A fuzz run that cannot start: a layer the DUT has no framing for, a DUT that
    does not answer before the first case."""


class Finding:
    def __init__(self, kind, index, cases, detail):
        self.kind = kind
        self.index = index            # the case after which it showed
        self.cases = list(cases)      # the cases since the last good probe
        self.detail = detail
        self.reproducer = list(cases)
        self.reproduced = None

    def to_json(self):
        return {"kind": self.kind, "case": self.index, "detail": self.detail,
                "frames": [c.data.hex() for c in self.cases],
                "reproducer": [c.to_json() for c in self.reproducer],
                "reproduced": self.reproduced}

    def __repr__(self):
        return "Finding(%s after case %d: %s)" % (self.kind, self.index, self.detail)


class FuzzResult:
    def __init__(self, target, layer, seed, liveness_every, timeout):
        self.target = target
        self.layer = layer
        self.seed = seed
        self.liveness_every = liveness_every
        self.timeout = timeout
        self.cases = 0
        self.probes = 0
        self.recoveries = 0
        self.duration = 0.0
        self.findings = []
        self.stopped = None           # why the run ended early, if it did


class DutFuzzer:
    def __init__(self, dut, layer, seed=0, liveness_every=10, timeout=2.0, minimize=True):
        if layer not in mutators.LAYERS:
            raise FuzzError("no layer %r for a DUT (layers: %s)" % (layer, ", ".join(mutators.LAYERS)))
        framing = LAYER_FRAMING.get(layer)
        if framing and framing != dut.target.framing:
            raise FuzzError("layer %s needs a DUT served with %s framing; %s has %s" % (
                layer, framing, dut.target.text, dut.target.framing))
        self.dut = dut
        self.target = dut.target
        self.layer = layer
        self.seed = seed
        self.liveness_every = max(1, liveness_every)
        self.timeout = timeout
        self.minimize = minimize
        self.context = mutators.Context(self.target.profile)
        self.gbcs_port = self.target.device_gbcs()
        if layer == "gbcs" and self.gbcs_port is None:
            raise FuzzError("layer gbcs needs a DUT whose own ESME takes GBCS (the gbcs "
                            "capability on micropython:%s); %s has none" % (
                                LAB_PROFILE, self.target.text))
        inprocess = self.target.spec["kind"] == "inprocess"
        self.quiet = 0.0 if inprocess else QUIET
        self.gap = 0.0 if inprocess else GAP
        self.result = None
        self._since_probe = []
        self._associated = False
        # the in-process core answers inside write(): silence there is certain at once
        self.target.link.timeout = INPROCESS_TIMEOUT if inprocess else timeout
        # an emulated DUT loses no frame; a real line may: one retransmission
        self.target.link.retries = 0 if "emulated" in self.target.capabilities else 1

    # -- runs ---------------------------------------------------------------------------
    def run(self, count, on_case=None):
        """`count` generated cases; the FuzzResult."""
        if self.layer == "gbcs":
            self._record_gbcs_commands()
        source = mutators.cases(self.layer, self.context, self.seed)
        return self._run((next(source) for _ in range(count)), on_case)

    def replay(self, cases, on_case=None):
        """The given cases (from a replay file), judged as in a run."""
        return self._run(iter(list(cases)), on_case)

    def _record_gbcs_commands(self):
        """Commands the lab's head-end and DCC build for the DUT's ESME, as delivered:
        what the GBCS cases mutate."""
        recorded = []

        def recording(message):
            recorded.append(bytes(message))
            return self.gbcs_port(message)
        driver = self.dut.gbcs
        driver.attach_device("ESME", recording)
        try:
            for srv in GBCS_REQUESTS:
                driver.service_request(srv, "ESME")
        finally:
            driver.attach_device("ESME", self.gbcs_port)
        self.context.gbcs_commands = [envelope.parse(m) for m in recorded]

    def _run(self, cases, on_case):
        self.result = FuzzResult(self.target.text, self.layer, self.seed,
                                 self.liveness_every, self.timeout)
        started = time.monotonic()
        if not self._probe()[0]:
            raise FuzzError("%s does not answer a GET of its clock: nothing to fuzz"
                            % self.target.text)
        for index, case in enumerate(cases):
            self.result.cases = index + 1
            self._since_probe.append(case)
            if not self._run_case(index, case):
                break
            if (index + 1) % self.liveness_every == 0 and not self._liveness(index):
                break
            if on_case is not None:
                on_case(index)
        else:
            if self._since_probe:
                self._liveness(self.result.cases - 1)
        self.result.duration = time.monotonic() - started
        return self.result

    def _run_case(self, index, case):
        """Sends one case and judges it; False when the run must stop."""
        outcome, detail = self._exchange(case)
        if outcome == "ok":
            return True
        if outcome == "gone" or outcome == MISSING:
            alive, gone = self._probe()
            if not alive:
                return self._lost(index, CRASH if gone else HANG, detail)
            if outcome == "gone":
                return True      # the link broke but the DUT answers: a new one serves
        finding = Finding(outcome, index, [case], detail)
        finding.reproduced = self._exchange(case)[0] == outcome
        self.result.findings.append(finding)
        return True

    def _liveness(self, index):
        alive, gone = self._probe()
        if alive:
            return True
        return self._lost(index, CRASH if gone else HANG,
                          "no answer to the liveness probe within %.1f s" % self.timeout)

    def _lost(self, index, kind, detail):
        """The DUT stopped answering: record it, restart it, find the reproducer."""
        finding = Finding(kind, index, self._since_probe, detail)
        self.result.findings.append(finding)
        self._since_probe = []
        if not self._recover():
            self.result.stopped = "%s after case %d and the DUT cannot be restarted" % (
                kind, index)
            return False
        if self.minimize:
            self._find_reproducer(finding)
        return True

    # -- the probe and recovery ---------------------------------------------------------
    def _probe(self):
        """(answered, gone): a GET of the clock on a new link as the public client."""
        self.result.probes += 1
        self._drop_link()
        try:
            self.target.dlms.associate("public")
            self.target.dlms.get(mutators.CLOCK, 2, class_id=CLOCK_CLASS)
        except TRANSPORT_ERRORS:
            self._drop_link()
            return False, True
        except Exception:
            self._drop_link()
            return False, self.target.alive() is False
        self._since_probe = []
        return True, False

    def _recover(self):
        if "power_cycle" not in self.target.capabilities:
            return False
        try:
            self.dut.power_cycle()
        except Exception:
            return False
        self.result.recoveries += 1
        return self._probe()[0]

    def _find_reproducer(self, finding):
        """The first case that hangs (or crashes) the DUT alone; else all of them."""
        candidates = finding.cases[-1:] + finding.cases[:-1]
        for case in candidates:
            if self._breaks([case]):
                finding.reproducer = [case]
                finding.reproduced = True
                return
        finding.reproducer = finding.cases
        finding.reproduced = self._breaks(finding.cases)

    def _breaks(self, cases):
        for case in cases:
            self._exchange(case)
        if self._probe()[0]:
            return False
        self._recover()
        return True

    def _drop_link(self):
        """Forget the link without a DISC (the DUT may be hung) and close the stream."""
        link = self.target.link
        link.connection = None
        self.target.dlms.client = None
        self._associated = False
        try:
            link.close_stream()
        except Exception:
            link.stream = None

    # -- sending one case ---------------------------------------------------------------
    def _exchange(self, case):
        """(outcome, detail): "ok", "gone" (the transport failed), MISSING or UNEXPECTED."""
        try:
            if case.action == "gbcs":
                return self._judge_gbcs(case)
            if case.action in ("raw", "wpdu"):
                return self._judge_bytes(case, self._send_bytes(case))
            return self._judge_apdu(case, self._send_apdu(case))
        except (TRANSPORT_ERRORS + (LinkFailure, DlmsClientError)) as exc:
            # the transport failed, or the DUT refused a new link or association: the
            # probe tells a dead DUT from one that lives on
            self._drop_link()
            return "gone", "%s: %s" % (type(exc).__name__, exc)
        except (LinkTimeout, DriverError) as exc:
            self._drop_link()
            return MISSING, "no answer: %s" % exc

    def _send_bytes(self, case):
        link = self.target.link
        if case.action == "wpdu" or link.connection is not None:
            self._drop_link()            # raw bytes: no link state of ours in the way
        stream = link.open_stream()
        self._read(stream, 0.0)          # late answers to earlier cases: not this one's
        stream.write(case.data)
        answer = self._read(stream, self.timeout if case.expect == ANSWER else self.quiet)
        if case.action == "wpdu":
            self._drop_link()            # each WPDU case on its own connection
        return answer

    def _read(self, stream, wait):
        out = bytearray()
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            data = stream.read(4096, max(left, 0.0))
            if data:
                out += data
                deadline = time.monotonic() + self.gap
            elif left <= 0 or self.gap == 0.0:
                return bytes(out)

    def _send_apdu(self, case):
        dlms = self.target.dlms
        if case.action == "aarq":
            self._drop_link()
            self.target.link.connect(self.context.public_sap)
        elif not self._associated:
            self._associate()
        try:
            return self.target.link.connection.request(case.data)
        except LinkFailure as exc:
            # the link refused the frame (FRMR, DM): an answer in its own protocol
            self._drop_link()
            return exc
        finally:
            if case.action == "aarq":
                dlms.client = None

    def _associate(self):
        """The management client where the profile has its password (deeper into the
        server: SET and ACTION reach the objects), else the public one."""
        dlms = self.target.dlms
        try:
            dlms.associate("management" if self.context.password else "public")
        except Exception:
            self._drop_link()
            dlms.associate("public")
        self._associated = True

    # -- judging answers ----------------------------------------------------------------
    def _judge_bytes(self, case, answer):
        if case.expect == ANSWER and not answer:
            return MISSING, "no answer within %.1f s" % self.timeout
        if case.expect == SILENCE and answer:
            return UNEXPECTED, "answered %s where silence was due" % answer.hex()
        bad = _undecodable_frames(case.layer, answer)
        if bad:
            return UNEXPECTED, "answered with a frame that does not decode: %s" % bad.hex()
        return "ok", ""

    def _judge_gbcs(self, case):
        try:
            answers = self.gbcs_port(case.data)
        except CoreError as exc:       # the core raised instead of refusing the message
            return UNEXPECTED, "the device failed on it: %s" % exc
        except RuntimeFailure as exc:
            return MISSING, "no answer: %s" % exc
        for answer in answers:
            try:
                gbcs_codec.decode(answer)
            except Exception as exc:
                return UNEXPECTED, "answered %s, not a GBCS message (%s)" % (answer.hex(), exc)
        return "ok", ""

    def _judge_apdu(self, case, answer):
        if isinstance(answer, LinkFailure):
            return "ok", ""
        if not answer:
            return MISSING, "no APDU in answer to %s" % case.data.hex()
        reason = _bad_response(answer)
        if reason:
            return UNEXPECTED, "%s: %s" % (reason, answer.hex())
        return "ok", ""


def _undecodable_frames(layer, data):
    """The first frame in `data` that does not decode (b"" when all do)."""
    if not data:
        return b""
    if layer == "hdlc":
        for frame in FrameSplitter("hdlc").feed(data):
            try:
                hdlc_codec.parse_frame(frame)
            except Exception:
                return frame
        return b""
    for wpdu in FrameSplitter("wrapper").feed(data):
        try:
            wrapper_codec.parse_wpdu(wpdu)
        except Exception:
            return wpdu
    return b""


def _bad_response(apdu):
    """Why `apdu` is no answer to a request, or None."""
    tag = apdu[0]
    if tag not in RESPONSE_TAGS:
        return "not a response APDU (tag 0x%02x)" % tag
    try:
        if tag in (0x61, 0x63):
            acse_codec.decode_acse(apdu)
        elif tag == 0x0E:
            if len(apdu) != 4:
                return "a confirmed-service-error of %d bytes" % len(apdu)
        else:
            xdlms_codec.decode_apdu(apdu)
    except Exception as exc:
        return "does not decode (%s)" % exc
    return None


__all__ = ["DutFuzzer", "Finding", "FuzzResult", "FuzzError", "KINDS", "Case"]
