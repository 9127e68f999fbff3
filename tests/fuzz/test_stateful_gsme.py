"""Stateful test of the GSME with its GPF (issue 6, item 2).

A `RuleBasedStateMachine` plays supplier and DCC against a battery GSME that sleeps and
the Gas Proxy Function on the hub that stands in for it: commands are built by the
DCC-side use-case builders (`emulator.usecases`), signed by the supplier when critical,
MAC'd by the DCC as ACB, and go to `GasProxyFunction.receive_gbcs`, as the CHF hands them
over. Reads (GCS13a, GCS17, GCS33) are answered by the GPF from its mirror while the GSME
sleeps; valve commands (GCS32 close, GCS39 arm) and top-ups (CS01b) wait in the GPF's
queue until the GSME wakes and polls (`gpf.wake_exchange`: the GB-HRGP GET /
GET-RESPONSE / PUT conversation over the tunnel). Rules also replay commands and UTRNs,
set the clock (GCS28, judged at the wake), send stale counters, flipped bytes and
commands for another meter, overfill the queue, send a command mid-wake, send the
sleeping GSME a frame it cannot hear, open an armed valve at the meter, and restart the
GSME (battery change) or the hub (GPF) from their saved state.

Invariants, after every step:
- the GSME's gas register (CurrentSummationDelivered) never decreases and is the sum of
  its half-hour records; no gas is recorded while the valve is not open; the mirror's
  register never decreases and never runs ahead of the meter; battery use never falls;
- the credit (prepayment mode) is the model's: the opening credit, plus accepted top-ups,
  less the price of the gas of every half hour recorded (kWh = m3 x calorific value x
  volume correction / 3.6, the GB gas billing rule);
- the originator counters the GPF and the GSME accepted from the supplier are the
  model's and never fall; the alert counters of everything sent as the GSME strictly rise;
- the valve is the model's and moved along `VALVE_TRANSITIONS`, through every state the
  valve answers of a wake reported;
- every accepted command is answered exactly once, queued ones after a wake and in
  queue order, always as the GSME (its EUI, its signature or MAC); the GPF's queue is the
  model's queue.
"""

import json
from collections import Counter

from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, invariant, multiple,
                                 precondition, rule)

from emulator import smki
from emulator.crypto import HostCrypto
from emulator.usecases import USE_CASE_BUILDERS
from firmware.devices import gpf as F
from firmware.devices import gsme as G
from firmware.gbcs import codes, envelope, gbz, security, utrn
from firmware.gbcs.device_security import DeviceSecurity
from firmware.han import tunnel
from firmware.sim.clock import SteppedClock
from firmware.zcl import frame as Z
from firmware.zcl import se
from tests.fuzz.budget import stateful_settings
from tests.fuzz.parties import InstalledDevice

SUPPLIER = bytes.fromhex("90B3D51F30010000")
ACB = bytes.fromhex("90B3D51F30000002")
GSME_EUI = bytes.fromhex("00DB1234567890B1")
OTHER_METER = bytes.fromhex("00DB1234567890B7")
START = 1767225600                  # 2026-01-01T00:00:00Z
HH = 1800
SEED = 13
OPENING_PENCE = 2000
QUEUE_LIMIT = 6                     # small, so that runs fill it
UTRN_RECORD = 20                    # the GSME's UTRN record size (gsme.py default)
CALORIFIC_KJ_M3 = 39500
CORRECTION_PPM = 1022640
UNIT_PRICE = 6000                   # 1/1000 p per kWh
PROFILE = {"clock": {"start": START}, "gas": {"hh_depth": 48 * 800,  # longer than any run
                                              "calorific_value_kj_m3": CALORIFIC_KJ_M3,
                                              "correction_ppm": CORRECTION_PPM},
           "prepayment": {"mode": "prepayment", "initial_pence": OPENING_PENCE,
                          "unit_price": UNIT_PRICE, "utrn_record": UTRN_RECORD},
           "valve": {"initial": "open"}}
READS = ("GCS13a", "GCS17", "GCS33")
OPEN, CLOSED, ARMED = G.VALVE_OPEN, G.VALVE_CLOSED, G.VALVE_ARMED

# The gas valve (SMETS2 GSME supply; GBCS GCS32 "close valve", GCS39 "arm valve"): closing
# works from any state, arming only a valve that is not open (an open valve answers
# FAILURE), and only the consumer opens an armed valve at the meter (local enable).
VALVE_AFTER_COMMAND = {("GCS32", OPEN): CLOSED, ("GCS32", CLOSED): CLOSED,
                       ("GCS32", ARMED): CLOSED, ("GCS39", CLOSED): ARMED,
                       ("GCS39", ARMED): ARMED}
VALVE_TRANSITIONS = {(v, v) for v in (OPEN, CLOSED, ARMED)} | {
    (before, after) for (_, before), after in VALVE_AFTER_COMMAND.items()} | {(ARMED, OPEN)}
assert (CLOSED, OPEN) not in VALVE_TRANSITIONS and (OPEN, ARMED) not in VALVE_TRANSITIONS
VALVE_OF_STATUS = {status: valve for valve, status in G.VALVE_SUPPLY_STATUS.items()}

CRYPTO = HostCrypto()
PKI = smki.TestSmki(seed=67)
INSTALLED = InstalledDevice(CRYPTO, PKI, GSME_EUI, SUPPLIER, ACB)
ORG, DEVICE = INSTALLED.org, INSTALLED.device


def _security():
    anchors = INSTALLED.anchors()
    return DeviceSecurity(GSME_EUI, DEVICE["ds"].private_key, DEVICE["ka"].private_key,
                          CRYPTO, anchors)


def gas_price(dm3):
    """1/1000 p for `dm3` of gas: kWh = m3 x CV (MJ/m3) x correction / 3.6."""
    wh = dm3 * CALORIFIC_KJ_M3 * CORRECTION_PPM // (3600 * 1000000)
    return wh * UNIT_PRICE // 1000


# -- the supplier and the DCC ----------------------------------------------------------------

_context, command, mint = INSTALLED.context, INSTALLED.command, INSTALLED.mint


def verified(raw):
    """The recipient's check: sent as the GSME (its EUI; its signature when critical, else
    its MAC for the recipient), to the supplier, or to the ACB for an alert about a
    sender it does not know."""
    message = envelope.parse(raw)
    assert message.originator == GSME_EUI
    assert message.recipient in ORG
    if message.cra_flag == envelope.CRA_RESPONSE:
        assert message.recipient == SUPPLIER
        assert (message.signature is not None) == bool(codes.is_critical(message.message_code))
    if message.signature is not None:
        assert not message.mac_protected
        assert security.verify_signature(CRYPTO, DEVICE["ds"].public_xy, message)
    else:
        shared = CRYPTO.ecdh(ORG[message.recipient]["ka"].private_key, DEVICE["ka"].public_xy)
        assert security.verify_mac(CRYPTO, shared, message)
    return message


def _utrn_of(raw):
    component = gbz.decode(envelope.parse(raw).payload).components[0]
    frame = component.zcl_frame()
    return bytes(se.decode(se.PREPAYMENT, False, frame.command_id, frame.payload)
                 ["topup_code"]).decode()


class Queued:
    """A command the GPF holds for the GSME (a top-up's UTRN, a clock set's window)."""

    def __init__(self, use_case, counter, raw, token=None, window=None):
        self.use_case = use_case
        self.counter = counter
        self.raw = raw
        self.token = token
        self.window = window


# -- the machine -------------------------------------------------------------------------------

class GsmeMachine(RuleBasedStateMachine):
    commands_sent = Bundle("commands_sent")     # non-top-up commands the GPF accepted
    top_ups_sent = Bundle("top_ups_sent")       # top-up messages queued, good or not

    def __init__(self):
        super().__init__()
        self.now = START + 600
        self.clock = SteppedClock(self.now)
        self.gsme = G.Gsme(PROFILE, self.clock, SEED, _security())
        self.gpf = F.GasProxyFunction(GSME_EUI, _security(), queue_limit=QUEUE_LIMIT)
        self.counter = 0x2000
        self.gpf_counter = -1                   # last counter the GPF should hold
        self.gsme_counter = -1                  # last counter the GSME should hold
        self.top_up_hi = 2
        self.utrn_hi = {}                       # UTRN -> its counter bits 63..32
        self.utrn_pence = {}
        self.foreign = set()                    # UTRNs minted for another meter
        self.utrn_record = []
        self.queue = []                         # the model of the GPF's queue
        self.valve = OPEN
        self.seen_valve = OPEN
        self.valve_path = []                    # valve states the step's answers showed
        self.credit = OPENING_PENCE * G.VALUE_PER_PENNY
        self.recorded_until = self.gsme.hh_start  # HH records the model has priced
        self.recorded_dm3 = 0
        self.seen_summation = 0
        self.mirror = None                      # (summation, valve) at the last wake
        self.seen_mirror_summation = 0
        self.seen_battery = 0
        self.seen_counters = (-1, -1)
        self.seen_alert_counter = -1
        self.expected_answers = Counter()
        self.answers = Counter()

    # -- delivering ---------------------------------------------------------------------------

    def _take(self, out):
        """(responses, alert codes) of what was sent as the GSME, tallied."""
        responses, alerts = [], []
        for raw in out:
            message = verified(raw)
            if message.cra_flag == envelope.CRA_RESPONSE:
                responses.append(message)
                self.answers[message.originator_counter] += 1
            else:
                assert message.cra_flag == envelope.CRA_ALERT
                alerts.append(gbz.decode(message.payload).alert_code)
                assert message.originator_counter > self.seen_alert_counter, \
                    "alert counters strictly rise"
                self.seen_alert_counter = message.originator_counter
        return responses, alerts

    def _snapshot(self):
        """What a refused command must leave as it was (alert counters may rise)."""
        gsme = self.gsme.state()
        del gsme["security"]["alert_counter"]
        return (json.dumps(gsme, sort_keys=True), list(self.gpf.queue),
                dict(self.gpf.security.counters), json.dumps(self.gpf.mirror, sort_keys=True))

    def _next_counter(self):
        self.counter += 1
        return self.counter

    def _queue_full_alert(self, use_case):
        return use_case not in READS and len(self.queue) >= QUEUE_LIMIT

    def _refused(self, raw, use_case, alert):
        """The GPF refuses `raw`: the queue-full alert if a command to queue finds the
        queue full (checked first), else `alert`; nothing changes."""
        if self._queue_full_alert(use_case):
            alert = F.ALERT_QUEUE_FULL
        before = self._snapshot()
        responses, alerts = self._take(self.gpf.receive_gbcs(raw, self.now))
        assert responses == [] and alerts == [alert]
        assert self._snapshot() == before

    def _send(self, use_case, raw, counter, token=None, window=None):
        """A command the GPF accepts: a read is answered now (its response returned),
        anything else queued (True), unless the queue is full (its alert; False)."""
        if self._queue_full_alert(use_case):
            self._refused(raw, use_case, None)
            return False
        out = self.gpf.receive_gbcs(raw, self.now)
        if use_case in READS:
            responses, alerts = self._take(out)
            assert alerts == [] and len(responses) == 1
            assert responses[0].originator_counter == counter
            self.expected_answers[counter] += 1
            self.gpf_counter = counter
            return responses[0]
        assert out == [], "a command for the GSME is queued, not answered"
        self.queue.append(Queued(use_case, counter, raw, token, window))
        if use_case != "CS01b":                 # a top-up's counter is the UTRN record's
            self.gpf_counter = counter
        return True

    # -- time and waking ----------------------------------------------------------------------

    @rule(seconds=st.one_of(st.integers(1, 2 * HH), st.integers(HH, 86400)))
    def time_passes(self, seconds):
        """The GSME sleeps on: nothing reaches it, it records nothing yet."""
        before = self._snapshot()
        self.now += seconds
        self.clock.set(self.now)
        assert self._snapshot() == before

    @rule(arrival=st.sampled_from([None, "GCS32", "GCS39"]))
    def wake(self, arrival):
        """The GSME wakes, updates the mirror, takes every queued command in order and
        answers each once, as itself; then sleeps. With an `arrival`, a valve command
        reaches the GPF just after it handed the GSME the first queued one: it joins
        the end of the queue, and is taken in this wake if the GSME was told more were
        waiting (two or more queued), else it waits for the next wake."""
        waiting = len(self.queue)
        if arrival is None:
            upstream = F.wake_exchange(self.gsme, self.gpf, self.now)
            delivered, self.queue = self.queue, []
        else:
            counter = self._next_counter()
            late = Queued(arrival, counter, command(arrival, {}, counter, self.now))
            upstream = self._wake_with_arrival(late.raw)
            self.gpf_counter = counter
            if waiting >= 2:
                delivered, self.queue = self.queue + [late], []
            else:
                delivered, self.queue = self.queue, [late]
        assert not self.gsme.awake
        expected = []                           # (counter, ok, alert) in queue order
        for item in delivered:
            expected.append(self._apply(item))
            self.expected_answers[item.counter] += 1
            if item.use_case != "CS01b":
                self.gsme_counter = item.counter
        messages = [verified(raw) for raw in upstream]
        responses, alerts = self._take(upstream)
        shape = [(m.cra_flag, m.originator_counter if m.cra_flag == envelope.CRA_RESPONSE
                  else None) for m in messages]
        want = []
        for counter, _, alert in expected:
            want.append((envelope.CRA_RESPONSE, counter))
            if alert is not None:
                want.append((envelope.CRA_ALERT, None))
        assert shape == want
        assert alerts == [alert for _, _, alert in expected if alert is not None]
        remaining = self.gsme.credit
        valves = []                             # the valve each valve answer reports
        for response, (counter, ok, _) in reversed(list(zip(responses, expected))):
            fields = USE_CASE_BUILDERS[_use_case(response)].read_response(
                response.payload, _context(counter, self.now))
            assert fields["ok"] == ok, (response.message_code, fields)
            if response.message_code == codes.CS01B and ok:
                assert fields["credit_remaining"] == remaining
                remaining -= fields["top_up_value"]
            elif response.message_code == codes.GCS28:
                assert fields["device_time"] == self.now
            elif ok:
                valves.insert(0, VALVE_OF_STATUS[fields["supply_status"]])
        self.valve_path.extend(valves)
        self.mirror = (self.gsme.summation, self.valve)

    def _wake_with_arrival(self, raw):
        """`gpf.wake_exchange` with `raw` sent to the GPF right after its first answer
        to the GSME's poll; what the GSME sent upstream."""
        gsme, gpf, now = self.gsme, self.gpf, self.now
        gsme.mirror_ack(gpf.receive_mirror(gsme.mirror_report(now), now))
        pending = gsme.wake(now)
        while pending:
            replies = gpf.receive_tunnel(pending.pop(0), now)
            if replies and raw is not None:
                assert gpf.receive_gbcs(raw, now) == []        # queued, room made
                raw = None
            for reply in replies:
                pending.extend(gsme.receive_tunnel(reply, now))
        gsme.mirror_ack(gpf.receive_mirror(gsme.mirror_report(now), now))
        return gpf.take_upstream()

    def _apply(self, item):
        """The model of one queued command reaching the GSME: (counter, ok, alert)."""
        if item.use_case == "CS01b":
            hi = self.utrn_hi[item.token]
            if hi in self.utrn_record or (len(self.utrn_record) >= UTRN_RECORD
                                          and hi < min(self.utrn_record)):
                return item.counter, False, codes.ALERT_DUPLICATE_UTRN
            if item.token in self.foreign:
                return item.counter, False, codes.ALERT_UTRN_NOT_AUTHENTIC
            self.utrn_record.append(hi)
            if len(self.utrn_record) > UTRN_RECORD:
                self.utrn_record.remove(min(self.utrn_record))
            self.credit += self.utrn_pence[item.token] * G.VALUE_PER_PENNY
            return item.counter, True, None
        if item.use_case == "GCS28":            # the window as of the wake, not the send
            start, end = item.window
            return item.counter, start <= self.now <= end, None
        after = VALVE_AFTER_COMMAND.get((item.use_case, self.valve))
        if after is None:
            return item.counter, False, None    # arming an open valve: FAILURE
        self.valve = after
        return item.counter, True, None

    @precondition(lambda self: not self.gsme.awake)
    @rule()
    def frame_while_asleep(self):
        """A GET-RESPONSE carrying a good command reaches the sleeping GSME: its radio is
        off, so it hears nothing and nothing changes."""
        counter = self._next_counter()
        raw = command("GCS32", {}, counter, self.now)
        before = self._snapshot()
        assert self.gsme.receive_tunnel(tunnel.get_response(0, raw), self.now) == []
        assert self._snapshot() == before

    @rule()
    def consumer_opens_valve(self):
        opened = self.gsme.open_valve_locally(self.now)
        assert opened == (self.valve == ARMED)
        if opened:
            self.valve = OPEN

    # -- reads the GPF answers ----------------------------------------------------------------

    @rule(target=commands_sent, use_case=st.sampled_from(READS), days=st.integers(0, 3))
    def read_from_gpf(self, use_case, days):
        counter = self._next_counter()
        params = {"from": self.now - days * 86400 - HH, "count": 48} if use_case == "GCS17" \
            else {}
        raw = command(use_case, params, counter, self.now)
        wakes = self.gsme.wakes
        response = self._send(use_case, raw, counter)
        assert self.gsme.wakes == wakes and not self.gsme.awake, "the GSME slept through"
        fields = USE_CASE_BUILDERS[use_case].read_response(response.payload,
                                                           _context(counter, self.now))
        if self.mirror is None:                 # nothing mirrored yet
            assert not fields["ok"]
            if use_case == "GCS17":
                assert fields["status"] == Z.NOT_FOUND
            else:
                assert {status for _, status, _ in fields["records"]} == {Z.HARDWARE_FAILURE}
            return raw
        summation, valve = self.mirror
        if use_case == "GCS13a":
            assert fields["ok"] and fields["current_summation_delivered"] == summation
        elif use_case == "GCS33":
            assert fields["ok"] and fields["supply_status"] == G.VALVE_SUPPLY_STATUS[valve]
        elif fields["ok"]:
            # the mirror's half hours are the GSME's own records
            first = (fields["start"] - self.gsme.hh_start) // HH
            assert first >= 0
            assert fields["samples"] == self.gsme.hh[first:first + len(fields["samples"])]
            assert fields["interval"] == HH
        else:
            assert fields["status"] == Z.NOT_FOUND
        return raw

    # -- commands the GPF queues --------------------------------------------------------------

    @rule(target=commands_sent, use_case=st.sampled_from(["GCS32", "GCS39"]))
    def valve_command(self, use_case):
        counter = self._next_counter()
        raw = command(use_case, {}, counter, self.now)
        if self._send(use_case, raw, counter):
            return raw
        return multiple()                       # refused (queue full): never accepted

    @rule(target=commands_sent, opens=st.integers(-2 * HH, 2 * HH), width=st.integers(0, 2 * HH))
    def set_clock(self, opens, width):
        """GCS28, queued: the GSME takes the hub's time if the validity window holds the
        time it wakes at, else keeps its clock and says so (GBCS 13.3.6)."""
        counter = self._next_counter()
        window = (self.now + opens, self.now + opens + width)
        raw = command("GCS28", {"validity_start": window[0], "validity_end": window[1]},
                      counter, self.now)
        if self._send("GCS28", raw, counter, window=window):
            return raw
        return multiple()

    @rule(use_case=st.sampled_from(["GCS32", "GCS13a", "CS01b"]))
    def command_for_another_meter(self, use_case):
        """A good command for another device reaches this GPF: silence, no change."""
        counter = self._next_counter() if use_case != "CS01b" else (self.top_up_hi + 1) << 32
        params = {"utrn": mint(self.top_up_hi + 1, 10)} if use_case == "CS01b" else {}
        raw = command(use_case, params, counter, self.now, recipient=OTHER_METER)
        before = self._snapshot()
        assert self.gpf.receive_gbcs(raw, self.now) == []
        assert self._snapshot() == before

    def _mint(self, hi, pence, target=GSME_EUI):
        token = mint(hi, pence, target)
        self.utrn_hi[token] = hi
        self.utrn_pence[token] = pence
        if target != GSME_EUI:
            self.foreign.add(token)
        return token

    def _top_up(self, token):
        self.top_up_hi += 1
        counter = self.top_up_hi << 32
        raw = command("CS01b", {"utrn": token}, counter, self.now)
        self._send("CS01b", raw, counter, token)
        return raw

    @rule(target=top_ups_sent, pence=st.integers(1, utrn.MAX_VALUE), gap=st.integers(0, 2))
    def top_up(self, pence, gap):
        self.top_up_hi += gap
        return self._top_up(self._mint(self.top_up_hi + 1, pence))

    @rule(target=top_ups_sent, pence=st.integers(1, utrn.MAX_VALUE))
    def top_up_for_another_meter(self, pence):
        return self._top_up(self._mint(self.top_up_hi + 1, pence, OTHER_METER))

    @rule(target=top_ups_sent, sent=top_ups_sent)
    def top_up_utrn_replayed(self, sent):
        return self._top_up(_utrn_of(sent))

    @rule(raw=top_ups_sent)
    def top_up_message_replayed(self, raw):
        """The same top-up message again: the GPF takes it (a top-up's counter is the
        UTRN's), the GSME's UTRN record refuses it."""
        self._send("CS01b", raw, envelope.parse(raw).originator_counter, _utrn_of(raw))

    # -- attacks ------------------------------------------------------------------------------

    @rule(raw=commands_sent)
    def command_replayed(self, raw):
        self._refused(raw, _use_case(envelope.parse(raw)),
                      codes.ALERT_FAILED_AUTHENTICATION_OTHER)

    @precondition(lambda self: self.gpf_counter >= 0)
    @rule(use_case=st.sampled_from(["GCS32", "GCS39", "GCS13a", "GCS33"]), back=st.integers(0, 3))
    def stale_counter(self, use_case, back):
        raw = command(use_case, {}, self.gpf_counter - back, self.now)
        self._refused(raw, use_case, codes.ALERT_FAILED_AUTHENTICATION_OTHER)

    @rule(use_case=st.sampled_from(["GCS32", "GCS39", "GCS13a", "GCS33", "CS01b"]),
          where=st.integers(0, 1 << 16), xor=st.integers(1, 255), then_genuine=st.booleans())
    def flipped_byte(self, use_case, where, xor, then_genuine):
        """One byte of a fresh command flipped: at most an alert, nothing queued or
        changed, its counter not spent (the genuine command is taken afterwards)."""
        token = None
        if use_case == "CS01b":
            hi = self.top_up_hi + 1
            token = self._mint(hi, 50)
            counter, params = hi << 32, {"utrn": token}
        else:
            counter, params = self.counter + 1, {}
        genuine = command(use_case, params, counter, self.now)
        mutated = bytearray(genuine)
        mutated[where % len(mutated)] ^= xor
        before = self._snapshot()
        responses, alerts = self._take(self.gpf.receive_gbcs(bytes(mutated), self.now))
        assert responses == [] and len(alerts) <= 1
        assert self._snapshot() == before
        if not then_genuine:
            return
        if use_case == "CS01b":
            self.top_up_hi = hi
        else:
            self.counter = counter
        self._send(use_case, genuine, counter, token)

    # -- restarts -----------------------------------------------------------------------------

    @rule()
    def gsme_restarts(self):
        """A battery change: a new GSME core from the state the old one saved."""
        saved = json.loads(json.dumps(self.gsme.state()))
        self.gsme = G.Gsme(PROFILE, self.clock, SEED, _security())
        self.gsme.load_state(saved)

    @rule()
    def hub_restarts(self):
        """The hub loses power: its GPF comes back from its saved state, queue and all."""
        saved = json.loads(json.dumps(self.gpf.state()))
        self.gpf = F.GasProxyFunction(GSME_EUI, _security(), queue_limit=QUEUE_LIMIT)
        self.gpf.load_state(saved)

    # -- invariants -----------------------------------------------------------------------------

    def _price_new_records(self):
        """Take the half hours the GSME recorded during the step into the model: no gas
        through a valve that was not open when the step began (a GSME accounts the time
        it slept before it obeys a command), each priced off the credit."""
        gsme = self.gsme
        first = (self.recorded_until - gsme.hh_start) // HH
        assert first >= 0, "half hours trimmed before the model saw them"
        new = gsme.hh[first:]
        if self.seen_valve != OPEN:
            assert not any(new), "gas recorded through a valve that was not open"
        self.recorded_dm3 += sum(new)
        self.credit -= sum(gas_price(dm3) for dm3 in new)
        self.recorded_until = gsme.hh_start + len(gsme.hh) * HH

    @invariant()
    def gas_register_never_decreases(self):
        self._price_new_records()
        gsme = self.gsme
        assert gsme.summation >= self.seen_summation
        assert gsme.summation == self.recorded_dm3
        self.seen_summation = gsme.summation
        if self.gpf.mirror is not None:
            mirrored = self.gpf.mirror["summation"]
            assert self.seen_mirror_summation <= mirrored <= gsme.summation
            self.seen_mirror_summation = mirrored
        assert gsme.battery_used >= self.seen_battery
        self.seen_battery = gsme.battery_used

    @invariant()
    def credit_is_the_model(self):
        self._price_new_records()
        assert self.gsme.credit == self.credit

    @invariant()
    def originator_counters_rise(self):
        held = (self.gpf.security.last_counter(SUPPLIER),
                self.gsme.security.last_counter(SUPPLIER))
        assert held == (self.gpf_counter, self.gsme_counter)
        assert held[0] >= self.seen_counters[0] and held[1] >= self.seen_counters[1]
        assert held[1] <= held[0], "the GSME holds a counter the GPF never accepted"
        self.seen_counters = held

    @invariant()
    def valve_moves_along_allowed_transitions(self):
        valve = self.gsme.valve
        assert valve == self.valve
        path = [self.seen_valve] + self.valve_path + [valve]
        assert all(step in VALVE_TRANSITIONS for step in zip(path, path[1:])), path
        self.seen_valve = valve
        self.valve_path = []

    @invariant()
    def every_accepted_command_answered_once(self):
        assert self.answers == self.expected_answers
        assert [q.counter for q in self.queue] == [
            envelope.parse(raw).originator_counter for raw in self.gpf.queue]
        assert all(self.answers[q.counter] == 0 for q in self.queue if q.counter & 0xFFFFFFFF)
        assert all(n == 1 for c, n in self.answers.items() if c & 0xFFFFFFFF)


def _use_case(message):
    for name in ("GCS13a", "GCS17", "GCS33", "GCS32", "GCS39", "CS01b", "GCS28"):
        if USE_CASE_BUILDERS[name].message_code == message.message_code:
            return name
    raise AssertionError("message code 0x%04X" % message.message_code)


TestGsmeStateful = GsmeMachine.TestCase
TestGsmeStateful.settings = stateful_settings()
