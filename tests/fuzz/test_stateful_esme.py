"""Stateful test of the ESME through its GBCS port, across power cuts (issue 6, item 2).

A `RuleBasedStateMachine` plays supplier and DCC against one ESME inside a `MeterCore`
that saves its state to a directory: commands are built by the DCC-side use-case
builders (`emulator.usecases`), signed by the supplier when critical and MAC'd by the
DCC as ACB, and go in through `MeterCore.receive_gbcs`, the path a board's hub link
takes. Rules: time passes (energy accrues), register / HH / supply reads, UTRN top-ups
(fresh, replayed, for another meter), balance resets, supply enable / disable / arm,
clock set (ECS70), replayed and stale commands, commands with a flipped byte or for
another meter, power cuts and clean restarts.

Invariants, after every step:
- the import registers (total and TOU rates) never decrease, across restarts too;
- the credits equal the model: they change only by accepted top-ups and ECS04b resets
  (this ESME is in credit mode: consumption debits nothing, `esme_gbcs.py` has no
  prepayment debit, so the consumption term of the model is zero);
- the last originator counter the ESME accepted from the supplier is the last one the
  model expects accepted, and never falls; the ESME's own alert counters strictly rise;
- the supply state is the model's and moved along `SUPPLY_TRANSITIONS`;
- the meter's clock runs with board time, moved only by ECS70 and by a power cut (no
  earlier than it would have run, at most one save period later);
- every command the ESME accepts is answered exactly once, every refused one never.
"""

import os
import shutil
import tempfile
from collections import Counter

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from emulator import smki
from emulator.crypto import HostCrypto
from emulator.profiles import load_profile
from emulator.runtime import gbcs_credentials
from emulator.usecases import USE_CASE_BUILDERS
from firmware.board.meter import DEFAULT_SAVE_PERIOD, MeterCore
from firmware.cosem.disconnect import CONNECTED, DISCONNECTED, READY_FOR_RECONNECTION
from firmware.crypto.board import PrivateKey
from firmware.dlms import access as A
from firmware.dlms import axdr
from firmware.dlms.apdu import decode_apdu
from firmware.gbcs import codes, envelope, security, utrn
from tests.fuzz.budget import stateful_settings
from tests.fuzz.parties import InstalledDevice

SUPPLIER = bytes.fromhex("90B3D51F30010000")
ACB = bytes.fromhex("90B3D51F30000002")
ESME_EUI = bytes.fromhex("00DB1234567890A0")
OTHER_METER = bytes.fromhex("00DB1234567890A7")
HH = 1800
SEED = 5
UTRN_RECORD = 20        # the token gateway's record size (firmware/gbcs/utrn.py default)
INT32_MAX = 0x7FFFFFFF  # credits are double-long (Blue Book 4.6.3)
INT32_MIN = -0x80000000
# the core fsyncs every save; on tmpfs that costs nothing, on a disk it is most of the run
STATE_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Supply state machine of the GB supply commands, as this ESME implements them
# (firmware/devices/esme.py "Supply"; GBCS use cases ECS42 enable, ECS43 disable, ECS44
# arm; SMETS2: arming a disconnected supply makes it ready for the consumer to
# reconnect, arming a connected one changes nothing). Blue Book 4.5.8 names the states.
SUPPLY_AFTER = {
    ("ECS42", CONNECTED): CONNECTED, ("ECS42", DISCONNECTED): CONNECTED,
    ("ECS42", READY_FOR_RECONNECTION): CONNECTED,
    ("ECS43", CONNECTED): DISCONNECTED, ("ECS43", DISCONNECTED): DISCONNECTED,
    ("ECS43", READY_FOR_RECONNECTION): DISCONNECTED,
    ("ECS44", CONNECTED): CONNECTED, ("ECS44", DISCONNECTED): READY_FOR_RECONNECTION,
    ("ECS44", READY_FOR_RECONNECTION): READY_FOR_RECONNECTION,
}
# every (from, to) a step may show: staying put, or one of the moves above. Never
# connected -> armed: nothing remote arms a supply that is on.
SUPPLY_TRANSITIONS = {(s, s) for s in (CONNECTED, DISCONNECTED, READY_FOR_RECONNECTION)} | {
    (before, after) for (_, before), after in SUPPLY_AFTER.items()}
assert (CONNECTED, READY_FOR_RECONNECTION) not in SUPPLY_TRANSITIONS


class BoardKeysOnHostCrypto(HostCrypto):
    """HostCrypto that also takes the board's `PrivateKey` (what `MeterCore.enable_gbcs`
    builds from the credentials), as the same P-256 key in `cryptography`: the core runs
    as on a board, its curve arithmetic at host speed."""

    def __init__(self):
        super().__init__()
        self._keys = {}

    def _key(self, private_key):
        if not isinstance(private_key, PrivateKey):
            return private_key
        key = self._keys.get(private_key.d)
        if key is None:
            key = self._keys[private_key.d] = ec.derive_private_key(private_key.d,
                                                                    ec.SECP256R1())
        return key

    def ecdh(self, private_key, peer_xy):
        return super().ecdh(self._key(private_key), peer_xy)

    def ecdsa_sign(self, private_key, data):
        return super().ecdsa_sign(self._key(private_key), data)


CRYPTO = BoardKeysOnHostCrypto()
PKI = smki.TestSmki(seed=61)
INSTALLED = InstalledDevice(CRYPTO, PKI, ESME_EUI, SUPPLIER, ACB)
ORG, DEVICE = INSTALLED.org, INSTALLED.device


def _anchors():
    return INSTALLED.anchors()


CREDENTIALS = gbcs_credentials(PKI, ESME_EUI, _anchors())


def _profile():
    profile = load_profile("esme-single-phase")
    # small rings: the core saves its whole state before every answer
    profile["objects"]["hh_profile"]["depth"] = 144
    profile["objects"]["daily_log"]["depth"] = 8
    profile["objects"]["event_log"]["depth"] = 32
    return profile


PROFILE = _profile()
START = PROFILE["clock"]["start"]


# -- the supplier and the DCC ----------------------------------------------------------------

_context, command, mint = INSTALLED.context, INSTALLED.command, INSTALLED.mint


def verified(raw):
    """The recipient's check of what the ESME sent: from the ESME, to the supplier (or,
    for an alert about a sender it does not know, to the ACB), signed when critical
    (responses to critical commands, critical alerts), else MAC'd for the recipient."""
    message = envelope.parse(raw)
    assert message.originator == ESME_EUI
    if message.cra_flag == envelope.CRA_RESPONSE:
        assert message.recipient == SUPPLIER
        assert (message.signature is not None) == bool(codes.is_critical(message.message_code))
    assert message.recipient in ORG
    if message.signature is not None:
        assert not message.mac_protected
        assert security.verify_signature(CRYPTO, DEVICE["ds"].public_xy, message)
    else:
        shared = CRYPTO.ecdh(ORG[message.recipient]["ka"].private_key, DEVICE["ka"].public_xy)
        assert security.verify_mac(CRYPTO, shared, message)
    return message


def _token_of(raw):
    return A.decode_request(envelope.parse(raw).payload).data[0][1].decode()


def alert_code(message):
    return decode_apdu(message.payload).notification_body[1][0][1]


class Answers:
    """What one delivery brought back, each verified: responses, alert codes and the
    alerts' counters, in order."""

    def __init__(self, out):
        self.responses = []
        self.alerts = []
        self.alert_counters = []
        for raw in out:
            message = verified(raw)
            if message.cra_flag == envelope.CRA_RESPONSE:
                self.responses.append(message)
            else:
                assert message.cra_flag == envelope.CRA_ALERT
                self.alerts.append(alert_code(message))
                self.alert_counters.append(message.originator_counter)


# -- the machine -------------------------------------------------------------------------------

class EsmeMachine(RuleBasedStateMachine):
    commands_sent = Bundle("commands_sent")     # accepted non-top-up commands, as sent
    top_ups_sent = Bundle("top_ups_sent")       # top-up messages sent, accepted or not

    def __init__(self):
        super().__init__()
        self.state_dir = tempfile.mkdtemp(prefix="smets-stateful-esme-", dir=STATE_ROOT)
        self.board_now = START + HH + 600
        self.core = self._boot()
        self.counter = 0x1000                   # next non-top-up originator counter
        self.accepted_counter = -1              # the last one the ESME should hold
        self.top_up_hi = 2                      # UTRN counters (bits 63..32)
        self.utrn_record = []
        self.foreign = set()                    # UTRNs minted for another meter
        self.utrn_hi = {}                       # UTRN -> its counter bits 63..32
        self.utrn_pence = {}
        self.credits = [c.amount for c in self.gb.credits]
        self.supply = self.esme.supply_state
        self.seen_supply = self.supply
        self.seen_counter = self.security.last_counter(SUPPLIER)
        self.seen_energy = self._energy()
        self.seen_alert_counter = -1
        self.last_import_read = 0
        self.off_since = None if self.supply == CONNECTED else self.esme.clock()
        self.off_periods = []                   # meter times the supply was off
        self.meter_offset = self.core.now - self.board_now
        self.ambiguous_until = None             # HH times a clock set back made ambiguous
        self.expected_answers = Counter()
        self.answers = Counter()
        self.successes = Counter()

    def teardown(self):
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- the device -------------------------------------------------------------------------

    def _boot(self):
        core = MeterCore(PROFILE, self.board_now, seed=SEED, state_dir=self.state_dir)
        core.enable_gbcs(CREDENTIALS, crypto=CRYPTO)
        return core

    @property
    def esme(self):
        return self.core.esme

    @property
    def gb(self):
        return self.core.esme.gbcs_objects

    @property
    def security(self):
        return self.core.gbcs.security

    def _energy(self):
        esme = self.esme
        return [esme.import_register.value[1]] + [r.value[1] for r in esme.rate_registers]

    def _snapshot(self):
        """What a refused command must leave as it was (the alert counter may rise)."""
        state = self.security.state()
        return (state["counters"], self.esme.supply_state, [c.amount for c in self.gb.credits],
                list(self.gb.token_gateway.record.accepted), self._energy(),
                self.esme.clock())

    def _deliver(self, raw):
        answers = Answers(self.core.receive_gbcs(raw))
        for response in answers.responses:
            self.answers[response.originator_counter] += 1
        for counter in answers.alert_counters:
            assert counter > self.seen_alert_counter, "alert counters strictly rise"
            self.seen_alert_counter = counter
        return answers

    def _run(self, use_case, params, raw=None):
        """A command (not a top-up: `_top_up`) the ESME must accept, built here with the
        next counter, or `raw` built with it before: exactly one response, its counter."""
        self.counter += 1
        counter = self.counter
        if raw is None:
            raw = command(use_case, params, counter, self.esme.clock())
        answers = self._deliver(raw)
        assert len(answers.responses) == 1, (use_case, answers.alerts)
        reply = answers.responses[0]
        assert reply.originator_counter == counter
        assert reply.message_code == USE_CASE_BUILDERS[use_case].message_code
        self.expected_answers[counter] += 1
        self.accepted_counter = counter
        fields = USE_CASE_BUILDERS[use_case].read_response(
            reply.payload, _context(counter, self.esme.clock()))
        if fields["ok"]:
            self.successes[counter] += 1
        return raw, fields, answers

    def _refused(self, raw, alert):
        """A command the ESME must refuse: no response, `alert`, nothing changed."""
        before = self._snapshot()
        answers = self._deliver(raw)
        assert answers.responses == []
        assert answers.alerts == ([] if alert is None else [alert])
        assert self._snapshot() == before

    def _supply_changed(self, new):
        now = self.esme.clock()
        if self.supply == CONNECTED and new != CONNECTED:
            self.off_since = now
        elif self.supply != CONNECTED and new == CONNECTED:
            self.off_periods.append((self.off_since, now))
            self.off_since = None
        self.supply = new

    # -- time -------------------------------------------------------------------------------

    @rule(seconds=st.one_of(st.integers(1, 3 * HH), st.integers(HH, 2 * 86400)))
    def time_passes(self, seconds):
        before = self._energy()
        self.board_now += seconds
        self.core.advance(self.board_now)
        if self.supply != CONNECTED:
            assert self._energy() == before, "no energy accrues while the supply is off"

    # -- reads ------------------------------------------------------------------------------

    @rule(target=commands_sent)
    def read_registers(self):
        raw, fields, _ = self._run("ECS17b", {})
        assert fields["ok"] and fields["import_wh"] == self.esme.import_register.value[1]
        assert fields["import_wh"] >= self.last_import_read
        self.last_import_read = fields["import_wh"]
        return raw

    @rule(target=commands_sent, days=st.integers(1, 3))
    def read_hh_profile(self, days):
        now = self.esme.clock()
        raw, fields, _ = self._run("ECS22b", {"from": now - days * 86400, "to": now})
        assert fields["ok"]
        ring = self.esme.hh_profile.ring
        stored = [(ring.time(k), axdr.decode_all(ring.entry(k))[1][1][1])
                  for k in range(ring.count) if now - days * 86400 <= ring.time(k) <= now]
        assert fields["entries"] == stored
        if self.ambiguous_until is not None:    # after a clock set back, only the new times
            stored = [(t, wh) for t, wh in stored if t > self.ambiguous_until]
        times = [t for t, _ in stored]
        assert times == sorted(set(times)) and all(t % HH == 0 for t in times)
        off = self.off_periods + ([(self.off_since, now)] if self.off_since is not None else [])
        for end, wh in stored:
            if any(start <= end - HH and end <= stop for start, stop in off):
                assert wh == 0, "a half hour with the supply off used %d Wh" % wh
        return raw

    @rule(target=commands_sent)
    def read_daily_log(self):
        """ECS21a over the whole log: the midnight captures of the import registers,
        in capture order never decreasing, the TOU rates adding up to the total, none
        above the register now."""
        now = self.esme.clock()
        raw, fields, _ = self._run("ECS21a", {"from": START - 86400, "to": now + 60 * 86400})
        assert fields["ok"]
        days = fields["days"]
        assert len(days) == self.esme.daily_log.ring.count
        totals = [day["total"] for day in days]
        assert totals == sorted(totals) and all(t <= self.seen_energy[0] for t in totals)
        for day in days:
            assert sum(day["tou"]) == day["total"] and day["time"] % 86400 == 0
            assert day["blocks"] == [[0] * 8] * 4
        return raw

    @rule(target=commands_sent)
    def read_supply(self):
        raw, fields, _ = self._run("ECS45", {})
        assert fields["ok"] and fields["supply_state"] == self.supply
        return raw

    @rule(target=commands_sent, shift=st.one_of(st.integers(-2 * HH, 2 * HH),
                                                st.integers(-86400, 2 * 86400)),
          half_width=st.integers(0, 900))
    def set_clock(self, shift, half_width):
        """ECS70 with an unspecified preset time: a clock inside the validity window is
        left alone, one outside it goes to the window's midpoint (esme_gbcs.py)."""
        now = self.esme.clock()
        target = now + shift
        start, end = target - half_width, target + half_width
        expected = now if start <= now <= end else target
        raw, fields, _ = self._run("ECS70", {"validity_start": start, "validity_end": end})
        assert fields["ok"] and fields["clock"] == expected == self.esme.clock()
        if expected != now:
            # the half hour in progress carries its energy to the new time (esme.py
            # "Clock"), and a clock set back reuses times already stamped: the model
            # no longer knows what supply state those HH entries were recorded in
            unclear = expected - expected % HH + HH
            if expected < now:
                unclear = max(unclear, now)
            self.ambiguous_until = max(unclear, self.ambiguous_until or 0)
        if expected < now:
            self.off_periods = []
            if self.off_since is not None:
                self.off_since = expected
        self.meter_offset = expected - self.board_now
        return raw

    # -- supply -----------------------------------------------------------------------------

    @rule(target=commands_sent, use_case=st.sampled_from(["ECS42", "ECS43", "ECS44"]))
    def supply_command(self, use_case):
        raw, fields, _ = self._run(use_case, {})
        assert fields["ok"] and fields["results"] == [(A.ACTION, 0)]
        self._supply_changed(SUPPLY_AFTER[(use_case, self.supply)])
        return raw

    # -- credit -----------------------------------------------------------------------------

    @rule(target=top_ups_sent, pence=st.integers(1, utrn.MAX_VALUE), gap=st.integers(1, 3))
    def top_up(self, pence, gap):
        self.top_up_hi += gap
        return self._top_up(self._mint(self.top_up_hi, pence), self.top_up_hi << 32)

    def _mint(self, hi, pence, target=ESME_EUI):
        token = mint(hi, pence, target)
        self.utrn_hi[token] = hi
        self.utrn_pence[token] = pence
        if target != ESME_EUI:
            self.foreign.add(token)
        return token

    def _top_up_outcome(self, token):
        """The model of CS01a at this ESME (GBCS 14; the token gateway's three checks):
        (result, alert). A UTRN is used once, none older than the oldest of the last
        UTRN_RECORD is taken, another meter's does not authenticate, and one the credit
        cannot hold (double-long) is refused with nothing used. Accepting it records it."""
        hi = self.utrn_hi[token]
        if hi in self.utrn_record or (len(self.utrn_record) >= UTRN_RECORD
                                      and hi < min(self.utrn_record)):
            return 250, codes.ALERT_DUPLICATE_UTRN
        if token in self.foreign:
            return 250, codes.ALERT_UTRN_NOT_AUTHENTIC
        if self.credits[0] + self.utrn_pence[token] > INT32_MAX:
            return 250, None
        self.utrn_record.append(hi)
        if len(self.utrn_record) > UTRN_RECORD:
            self.utrn_record.remove(min(self.utrn_record))
        self.credits[0] += self.utrn_pence[token]
        return 0, None

    def _top_up(self, token, counter, raw=None):
        """A top-up the ESME accepts as a command (its counter is the UTRN's: the UTRN
        record, not the originator counter, refuses a replay): answered once, credited
        or refused with action-result other-reason and the UTRN alert."""
        if raw is None:
            raw = command("CS01a", {"utrn": token}, counter, self.esme.clock())
        result, alert = self._top_up_outcome(token)
        before = self._snapshot()
        answers = self._deliver(raw)
        self.expected_answers[counter] += 1
        assert len(answers.responses) == 1
        assert answers.alerts == ([] if alert is None else [alert])
        fields = USE_CASE_BUILDERS["CS01a"].read_response(
            answers.responses[0].payload, _context(counter, self.esme.clock()))
        assert fields["results"] == [(A.ACTION, result)]
        if result:
            assert self._snapshot() == before
        else:
            self.successes[counter] += 1
        return raw

    @rule(target=top_ups_sent, sent=top_ups_sent)
    def top_up_utrn_replayed(self, sent):
        """A UTRN sent before (used, or refused) in a new message."""
        self.top_up_hi += 1
        return self._top_up(_token_of(sent), self.top_up_hi << 32)

    @rule(raw=top_ups_sent)
    def top_up_message_replayed(self, raw):
        """A top-up message as sent before, byte for byte."""
        self._top_up(_token_of(raw), envelope.parse(raw).originator_counter, raw)

    @rule(target=top_ups_sent, pence=st.integers(1, utrn.MAX_VALUE))
    def top_up_for_another_meter(self, pence):
        self.top_up_hi += 1
        return self._top_up(self._mint(self.top_up_hi, pence, target=OTHER_METER),
                            self.top_up_hi << 32)

    @rule(target=commands_sent, value=st.one_of(st.integers(-5000, 50000),
                                                st.integers(INT32_MAX - utrn.MAX_VALUE, INT32_MAX),
                                                st.integers(INT32_MIN, INT32_MIN + 100)))
    def reset_balance(self, value):
        raw, fields, _ = self._run("ECS04b", {"value": value})
        assert fields["results"] == [(A.ACTION, 0)] * 3
        self.credits = [value] * 3
        return raw

    # -- attacks ----------------------------------------------------------------------------

    @rule(raw=commands_sent)
    def command_replayed(self, raw):
        self._refused(raw, codes.ALERT_FAILED_AUTHENTICATION_OTHER)

    @rule(use_case=st.sampled_from(["ECS43", "ECS17b", "ECS04b"]))
    def command_for_another_meter(self, use_case):
        """A good command for another device reaches this ESME: silence, no change."""
        raw = command(use_case, {}, self.counter + 1, self.esme.clock(), recipient=OTHER_METER)
        self._refused(raw, None)

    @precondition(lambda self: self.accepted_counter >= 0)
    @rule(use_case=st.sampled_from(["ECS42", "ECS43", "ECS04b", "ECS45"]), back=st.integers(0, 3))
    def stale_counter(self, use_case, back):
        counter = self.accepted_counter - back
        raw = command(use_case, {}, counter, self.esme.clock())
        self._refused(raw, codes.ALERT_FAILED_AUTHENTICATION_OTHER)

    @rule(use_case=st.sampled_from(["ECS42", "ECS43", "ECS44", "ECS17b", "ECS04b", "CS01a"]),
          where=st.integers(0, 1 << 16), xor=st.integers(1, 255), then_genuine=st.booleans())
    def flipped_byte(self, use_case, where, xor, then_genuine):
        """One byte of a fresh command flipped: only alerts, nothing changes, its counter
        is not spent (the genuine command is still accepted afterwards)."""
        if use_case == "CS01a":
            hi = self.top_up_hi + 1
            counter, params = hi << 32, {"utrn": self._mint(hi, 100)}
        else:
            counter, params = self.counter + 1, {}
        genuine = command(use_case, params, counter, self.esme.clock())
        mutated = bytearray(genuine)
        mutated[where % len(mutated)] ^= xor
        before = self._snapshot()
        answers = self._deliver(bytes(mutated))
        assert answers.responses == [], "a command with a flipped byte was obeyed"
        assert len(answers.alerts) <= 1
        assert self._snapshot() == before
        if not then_genuine:
            return
        if use_case == "CS01a":
            self.top_up_hi = hi
            self._top_up(params["utrn"], counter, genuine)
            return
        self._run(use_case, params, raw=genuine)
        if use_case in ("ECS42", "ECS43", "ECS44"):
            self._supply_changed(SUPPLY_AFTER[(use_case, self.supply)])
        elif use_case == "ECS04b":
            self.credits = [0] * 3

    # -- power --------------------------------------------------------------------------------

    @rule(seconds=st.integers(0, 4 * HH))
    def power_cut(self, seconds):
        """The board loses power (no shutdown), comes back `seconds` later and restores
        what the core saved."""
        before = self.core.now
        self.core = None
        self.board_now += seconds
        self.core = self._boot()
        assert self.core.restored
        # the clock resumes no earlier than it would have run, and at most one save
        # period later (the ceiling of the last save: MeterCore)
        assert before + seconds <= self.core.now <= max(before + seconds,
                                                         before + DEFAULT_SAVE_PERIOD)
        self.meter_offset = self.core.now - self.board_now

    @rule()
    def clean_restart(self):
        before = self.core.now
        self.core.shutdown()
        self.core = self._boot()
        assert self.core.restored and self.core.now == before

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def energy_never_decreases(self):
        energy = self._energy()
        assert all(now >= before for now, before in zip(energy, self.seen_energy)), \
            (self.seen_energy, energy)
        assert energy[0] == sum(energy[1:])
        self.seen_energy = energy

    @invariant()
    def meter_clock_is_the_model(self):
        assert self.core.now == self.esme.clock() == self.board_now + self.meter_offset

    @invariant()
    def credit_is_the_model(self):
        assert [c.amount for c in self.gb.credits] == self.credits

    @invariant()
    def originator_counter_rises(self):
        held = self.security.last_counter(SUPPLIER)
        assert held == self.accepted_counter
        assert held >= self.seen_counter
        self.seen_counter = held

    @invariant()
    def supply_moves_along_allowed_transitions(self):
        state = self.esme.supply_state
        assert state == self.supply
        assert (self.seen_supply, state) in SUPPLY_TRANSITIONS
        self.seen_supply = state

    @invariant()
    def every_accepted_command_answered_once(self):
        assert self.answers == self.expected_answers
        assert all(n == 1 for n in self.successes.values())
        non_top_up = [c for c in self.answers if c & 0xFFFFFFFF]
        assert all(self.answers[c] == 1 for c in non_top_up)


def test_a_gbcs_clock_set_carries_on_with_board_time_and_across_a_restart(tmp_path):
    """Regression (found by this machine): an ECS70 clock set through
    `MeterCore.receive_gbcs` left the core's clock offset behind, so the clock stood
    still until board time caught up with it, and a restart took it back."""
    board = START + HH
    core = MeterCore(PROFILE, board, seed=SEED, state_dir=str(tmp_path))
    core.enable_gbcs(CREDENTIALS, crypto=CRYPTO)
    target = core.now + 3600
    raw = command("ECS70", {"validity_start": target - 30, "validity_end": target + 30},
                  0x100, core.now)
    assert core.receive_gbcs(raw) and core.now == target
    core.advance(board + 60)
    assert core.now == target + 60
    core.shutdown()
    core = MeterCore(PROFILE, board + 60, seed=SEED, state_dir=str(tmp_path))
    assert core.now == target + 60


TestEsmeStateful = EsmeMachine.TestCase
TestEsmeStateful.settings = stateful_settings()
