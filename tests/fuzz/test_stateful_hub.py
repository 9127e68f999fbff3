"""Stateful test of the comms hub (firmware/devices/chf.py) with its GPF, on the lab's
in-process premise (emulator/lab.py: hub, virtual HAN, ESME, sleeping GSME).

The machine plays the WAN side: the ACB adding and removing HAN devices (CCS01 / CCS02,
built by the DCC's own builders in emulator/usecases/hub.py), the same commands from
parties the hub must not obey (a supplier, an unknown organisation, a forged MAC, a
replayed counter), supplier commands for joined and not-joined EUIs, gas reads the GPF
answers and valve commands it queues until the GSME wakes, and garbage on the WAN and on
the HAN. Invariants (issue 6; ARCHITECTURE.md principle 6):

- the device log changes only by an accepted CCS01 / CCS02, as its answer says;
- nothing for a device outside the log crosses the HAN to it;
- every command a device accepts is answered exactly once (the hub's own at once, the
  ESME's through the HAN, the GSME's queued ones at its next wake);
- the counters the hub originates (its alerts) strictly rise, and its records of accepted
  counters never fall.
"""

from hypothesis import event as hypothesis_event
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from emulator.lab import ACB_EUI, ESME_EUI, GSME_EUI, HUB_EUI, SUPPLIER_EUIS, Lab
from emulator.usecases import USE_CASE_BUILDERS, BuildContext
from firmware.devices import chf
from firmware.devices import gpf as GPF
from firmware.dlms import results as R
from firmware.gbcs import codes, security
from firmware.gbcs.envelope import CRA_ALERT, CRA_COMMAND, CRA_RESPONSE, GbcsMessage, parse
from firmware.han import tunnel as T
from tests.fuzz.budget import stateful_settings

SUPPLIER = SUPPLIER_EUIS["A"]
OUTSIDER = SUPPLIER_EUIS["B"]            # an organisation the hub has no anchor for
CANDIDATES = [bytes.fromhex("00DB1234567890B%d" % i) for i in range(1, 4)]
IMPOSSIBLE = [HUB_EUI, bytes(8), b"\xff" * 8]
STRANGER = bytes.fromhex("00DB1234567890C0")      # never in any log
HAN_DEVICES = [ESME_EUI, GSME_EUI] + CANDIDATES
# the premise's own devices drawn as often as all the others together
LOG_EUIS = st.one_of(st.sampled_from([ESME_EUI, GSME_EUI]), st.sampled_from(CANDIDATES))
MAX_DEVICES = 4                 # a small log and a short GPF queue, so "full" is
GAS_QUEUE_LIMIT = 3             # reachable in a short run
UNAUTHORISED = ["supplier", "outsider", "forged MAC", "replayed counter"]
ESME_READS = ["ECS45", "ECS17b"]
GAS_READS = ["GCS13a", "GCS33"]
GAS_QUEUED = ["GCS32", "GCS39"]


def _first_segment(length):
    """The first TransferData of a PUT whose GBCS message (MAC header form, GBCS 7.2.x)
    claims `length` bytes: a partial the receiver must hold, then give up."""
    header = b"\xdd" + bytes(6) + b"\x82" + length.to_bytes(2, "big")
    return T.segments(T.put(header + bytes(length)))[0]


class Listener:
    """A HAN node that keeps what it is sent and never answers (an IHD being joined)."""

    def __init__(self):
        self.frames = []

    def receive_tunnel(self, data, now):
        self.frames.append(bytes(data))
        return []


class HubMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.lab = Lab(seed=6, wan="direct", record=False)
        self.hub = self.lab.hub
        self.hub.max_devices = MAX_DEVICES
        self.lab.gpf.queue_limit = GAS_QUEUE_LIMIT
        self.org = self.lab.pki.organisations
        self.listeners = {}
        for eui in CANDIDATES:
            self.listeners[eui] = Listener()
            self.lab.han.attach(eui, self.listeners[eui])
        self.log = set(self.hub.device_log)         # the model: EUI hex
        self.acb_counter = self.hub.security.last_counter(ACB_EUI) + 0x100
        self.acb_accepted = self.hub.security.last_counter(ACB_EUI)
        self.supplier_counter = 0x20000
        self.gas_queue = []                          # counters the GPF holds for the GSME
        self.hub_alerts = []                         # counters of the hub's own alerts
        self.han_seen = len(self.lab.han.log)
        self.accepted_before = dict(self.hub.security.counters)
        self.listener_seen = {eui: 0 for eui in CANDIDATES}
        self.remove_device(STRANGER)       # an accepted ACB counter to replay from the start

    # -- building commands -------------------------------------------------------------
    def _protect(self, message, recipient, mac_party=ACB_EUI):
        if codes.is_critical(message.message_code):
            security.sign(self.lab.crypto, self.org[SUPPLIER]["ds"].private_key, message)
        shared = self.lab.crypto.ecdh(self.org[mac_party]["ka"].private_key,
                                      self.lab.pki.devices[recipient]["ka"].public_xy)
        security.protect_mac(self.lab.crypto, shared, message)
        return message.encode()

    def _hub_command(self, use_case, params, who="acb"):
        """(bytes, counter) of a CCS01/CCS02 as `who` sends it."""
        originator = {"supplier": SUPPLIER, "outsider": OUTSIDER}.get(who, ACB_EUI)
        if who == "replayed counter":
            counter = self.acb_accepted
        elif originator == ACB_EUI:
            self.acb_counter += 1
            counter = self.acb_counter
        else:
            self.supplier_counter += 1
            counter = self.supplier_counter
        builder = USE_CASE_BUILDERS[use_case]
        payload = builder.build(params, BuildContext(counter, originator, HUB_EUI))
        message = GbcsMessage(CRA_COMMAND, counter, originator, HUB_EUI,
                              builder.message_code, payload)
        mac_party = OUTSIDER if who == "outsider" else ACB_EUI
        data = self._protect(message, HUB_EUI, mac_party)
        if who == "forged MAC":
            data = data[:-1] + bytes((data[-1] ^ 0x01,))
        return data, counter

    def _supplier_command(self, use_case, target, params=None):
        """(bytes, counter) of a supplier A command, signed when critical and MAC'd by the
        ACB. A candidate has no keys in the lab: its commands carry the ESME's (the hub
        routes by recipient and checks neither)."""
        self.supplier_counter += 1
        counter = self.supplier_counter
        builder = USE_CASE_BUILDERS[use_case]
        key_owner = target if target in self.lab.pki.devices else ESME_EUI
        ctx = BuildContext(counter, SUPPLIER, target, self.lab.now, self.lab.crypto,
                           self.org[SUPPLIER]["ka"].private_key,
                           self.lab.pki.devices[key_owner]["ka"].public_xy)
        message = GbcsMessage(CRA_COMMAND, counter, SUPPLIER, target, builder.message_code,
                              builder.build(params or {}, ctx))
        return self._protect(message, key_owner), counter

    # -- what comes back ---------------------------------------------------------------
    def _send(self, data):
        """The hub's answers to one WAN message (HAN settled), with the hub's alerts'
        counters collected."""
        answers = [parse(a) for a in self.lab.inject(data)]
        for answer in answers:
            if answer.originator == HUB_EUI and answer.cra_flag == CRA_ALERT:
                self.hub_alerts.append(answer.originator_counter)
        return answers

    def _hub_results(self, answers, counter):
        assert len(answers) == 1, answers
        reply = answers[0]
        assert (reply.cra_flag, reply.originator, reply.recipient,
                reply.originator_counter) == (CRA_RESPONSE, HUB_EUI, ACB_EUI, counter)
        shared = self.lab.crypto.ecdh(self.org[ACB_EUI]["ka"].private_key,
                                      self.lab.pki.devices[HUB_EUI]["ka"].public_xy)
        assert security.verify_mac(self.lab.crypto, shared, reply)
        self.acb_accepted = counter
        fields = USE_CASE_BUILDERS["CCS01"].read_response(reply.payload, None)
        return [code for _, code in fields["results"]]

    def _han_frames(self):
        """The HAN frames since the last look, each checked: the hub sends only to
        devices in its log."""
        new = self.lab.han.log[self.han_seen:]
        self.han_seen = len(self.lab.han.log)
        for frame in new:
            if frame.source == HUB_EUI:
                assert frame.destination.hex() in self.log, frame
        return new

    def _refused_silently_or_by_alert(self, answers, originator):
        assert len(answers) <= 1, answers
        for alert in answers:
            assert alert.cra_flag == CRA_ALERT and alert.originator == HUB_EUI
            assert alert.recipient == originator

    # -- the device log ----------------------------------------------------------------
    @rule(eui=st.one_of(LOG_EUIS, st.sampled_from(IMPOSSIBLE)),
          install_code=st.binary(max_size=chf.MAX_INSTALL_CODE), join_time=st.integers(0, 0xFFFF))
    def add_device(self, eui, install_code, join_time):
        data, counter = self._hub_command("CCS01", {"device": eui, "install_code": install_code,
                                                    "join_time": join_time})
        results = self._hub_results(self._send(data), counter)
        key = eui.hex()
        if eui in IMPOSSIBLE:
            expected = R.ACTION_OTHER_REASON
        elif key not in self.log and len(self.log) >= MAX_DEVICES:
            expected = R.ACTION_TEMPORARY_FAILURE
        else:
            expected = R.ACTION_SUCCESS
            self.log.add(key)
            assert self.hub.device_log[key]["install_code"] == install_code.hex()
            assert self.hub.join_timeout == join_time and self.hub.joining
        event("CCS01 result %d" % expected)
        assert results[0] == expected, (results, eui.hex())
        assert all(code != R.SUCCESS for code in results[1:]) == (expected != R.ACTION_SUCCESS)
        assert self._han_frames() == []

    @rule(eui=st.one_of(LOG_EUIS, st.just(STRANGER)))
    def remove_device(self, eui):
        data, counter = self._hub_command("CCS02", {"device": eui})
        results = self._hub_results(self._send(data), counter)
        key = eui.hex()
        if key in self.log:
            assert results == [R.ACTION_SUCCESS]
            self.log.discard(key)
        else:
            assert results == [R.ACTION_HARDWARE_FAULT]
        assert self._han_frames() == []

    @rule(who=st.sampled_from(UNAUTHORISED), remove=st.booleans(),
          eui=LOG_EUIS)
    def unauthorised_log_change(self, who, remove, eui):
        if remove:
            data, _ = self._hub_command("CCS02", {"device": eui}, who)
        else:
            data, _ = self._hub_command("CCS01", {"device": eui}, who)
        counters = dict(self.hub.security.counters)
        answers = self._send(data)
        self._refused_silently_or_by_alert(answers, parse(data).originator)
        assert self.hub.security.counters == counters
        assert self._han_frames() == []

    # -- routing -----------------------------------------------------------------------
    @rule(use_case=st.sampled_from(ESME_READS))
    def command_the_esme(self, use_case):
        data, counter = self._supplier_command(use_case, ESME_EUI)
        security_before = dict(self.lab.esme_security.counters)
        answers = self._send(data)
        frames = self._han_frames()
        event("ESME command, ESME %s" % _joined(ESME_EUI, self.log))
        if ESME_EUI.hex() in self.log:
            assert len(answers) == 1, answers
            reply = answers[0]
            assert (reply.cra_flag, reply.originator, reply.recipient,
                    reply.originator_counter) == (CRA_RESPONSE, ESME_EUI, SUPPLIER, counter)
            assert self.lab.esme_security.last_counter(SUPPLIER) == counter
            assert [f.destination for f in frames if f.source == HUB_EUI] == [ESME_EUI]
        else:
            assert answers == [] and frames == []
            assert self.lab.esme_security.counters == security_before

    @precondition(lambda self: len(self.hub.outstanding) < self.hub.max_outstanding // 2)
    @rule(eui=st.sampled_from(CANDIDATES + [STRANGER]))
    def command_a_candidate(self, eui):
        data, _ = self._supplier_command("ECS45", eui)
        listener = self.listeners.get(eui)
        before = list(listener.frames) if listener else []
        assert self._send(data) == []
        frames = self._han_frames()
        event("candidate command, candidate %s" % _joined(eui, self.log))
        if eui.hex() in self.log:
            assert listener.frames == before + [T.put(data)]
            assert [(f.destination, f.data) for f in frames] == [(eui, T.put(data))]
        else:
            assert frames == [] and (listener is None or listener.frames == before)

    # -- gas: the GPF and the sleeping GSME ------------------------------------------------
    @rule(use_case=st.sampled_from(GAS_READS))
    def read_gas(self, use_case):
        data, counter = self._supplier_command(use_case, GSME_EUI)
        wakes = self.lab.gsme.wakes
        answers = self._send(data)
        assert len(answers) == 1, answers
        reply = answers[0]
        assert (reply.cra_flag, reply.originator, reply.originator_counter) == (
            CRA_RESPONSE, GSME_EUI, counter)
        assert self.lab.gsme.wakes == wakes
        self._gsme_frames_only_if_joined(self._han_frames())

    @rule(use_case=st.sampled_from(GAS_QUEUED))
    def queue_for_the_gsme(self, use_case):
        data, counter = self._supplier_command(use_case, GSME_EUI)
        answers = self._send(data)
        if len(self.gas_queue) < self.lab.gpf.queue_limit:
            event("queued")
            assert answers == []
            self.gas_queue.append(counter)
        else:
            event("GPF queue full")
            assert len(answers) == 1 and answers[0].cra_flag == CRA_ALERT
            assert answers[0].originator == GSME_EUI
            assert GPF.ALERT_QUEUE_FULL.to_bytes(2, "big") in answers[0].payload
        assert [parse(c).originator_counter for c in self.lab.gpf.queue] == self.gas_queue
        self._gsme_frames_only_if_joined(self._han_frames())

    @rule()
    def gsme_wakes(self):
        event("wake with %s queued, GSME %s" % (bool(self.gas_queue) and "some" or "none",
                                              _joined(GSME_EUI, self.log)))
        answers = [parse(a) for a in self.lab.wake_gsme()]
        frames = self._han_frames()
        self._gsme_frames_only_if_joined(frames)
        if GSME_EUI.hex() in self.log:
            assert [(a.cra_flag, a.originator, a.originator_counter) for a in answers] == [
                (CRA_RESPONSE, GSME_EUI, c) for c in self.gas_queue]
            self.gas_queue = []
        else:
            assert answers == []
        assert [parse(c).originator_counter for c in self.lab.gpf.queue] == self.gas_queue

    def _gsme_frames_only_if_joined(self, frames):
        if GSME_EUI.hex() not in self.log:
            assert [f for f in frames if f.destination == GSME_EUI] == []

    # -- garbage -----------------------------------------------------------------------
    @rule(source=st.sampled_from(HAN_DEVICES + [STRANGER]), data=st.one_of(
        st.binary(max_size=64), st.builds(_first_segment, st.integers(T.MAX_TRANSFER, 8000))))
    def garbage_on_the_han(self, source, data):
        """Bytes that are no answer: short garbage, or the first segment of a long
        message whose rest never comes (the device's next real frame must still pass)."""
        if source == GSME_EUI and data == T.get():
            data = b""                         # a GET is the GSME's real poll, not garbage
        log, queue = dict(self.hub.device_log), list(self.lab.gpf.queue)
        counters = dict(self.hub.security.counters)
        assert self.hub.receive_han(source, data, self.lab.now) == []
        up, _ = self.lab.han.settle(self.lab.now)
        assert up == []
        frames = self._han_frames()
        if source.hex() not in self.log:
            assert frames == []
        assert (self.hub.device_log, self.lab.gpf.queue, self.hub.security.counters) == (
            log, queue, counters)

    @rule(data=st.one_of(st.binary(max_size=200), st.tuples(
        st.sampled_from(["flip", "truncate", "extend"]), st.integers(0, 10**6),
        st.integers(1, 255))))
    def garbage_on_the_wan(self, data):
        if isinstance(data, tuple):
            data = self._damaged(*data)
        hub_counters = dict(self.hub.security.counters)
        esme_counters = dict(self.lab.esme_security.counters)
        answers = self._send(data)
        assert [a for a in answers if a.cra_flag != CRA_ALERT] == []
        assert set(self.hub.device_log) == self.log
        assert self.hub.security.counters == hub_counters
        assert self.lab.esme_security.counters == esme_counters
        self._han_frames()

    def _damaged(self, how, at, value):
        genuine, _ = self._hub_command("CCS02", {"device": ESME_EUI})
        self.acb_counter -= 1                       # built, never sent intact
        damaged = bytearray(genuine)
        if how == "flip":
            damaged[at % len(damaged)] ^= value
        elif how == "truncate":
            damaged = damaged[:at % len(damaged)]
        else:
            damaged += bytes((value,)) * (1 + at % 8)
        return bytes(damaged)

    # -- invariants --------------------------------------------------------------------
    @invariant()
    def log_changes_only_by_accepted_commands(self):
        assert set(self.hub.device_log) == self.log

    @invariant()
    def nothing_crosses_the_han_to_a_device_outside_the_log(self):
        self._han_frames()
        for eui, listener in self.listeners.items():
            if eui.hex() not in self.log:
                assert len(listener.frames) == self.listener_seen[eui]
            self.listener_seen[eui] = len(listener.frames)

    @invariant()
    def hub_counters_rise(self):
        assert self.hub_alerts == sorted(set(self.hub_alerts))
        assert self.hub.security.last_counter(ACB_EUI) == self.acb_accepted
        for party, counter in self.accepted_before.items():
            assert self.hub.security.counters.get(party, -1) >= counter
        self.accepted_before = dict(self.hub.security.counters)


def event(text):
    """Count what happened for --hypothesis-show-statistics (also callable outside)."""
    if currently_in_test_context():
        hypothesis_event(text)


def _joined(eui, log):
    return "joined" if eui.hex() in log else "not joined"


TestHub = HubMachine.TestCase
TestHub.settings = stateful_settings()


def test_a_gsme_command_queued_across_its_removal_and_rejoin_is_answered_once():
    """Found by the machine: CCS02 of the GSME dropped the hub's record of the commands the
    GPF still held for it, so after a CCS01 the GSME ran them at its wake and the hub threw
    the answers away (accepted, executed, never answered)."""
    machine = HubMachine()
    machine.queue_for_the_gsme("GCS32")
    machine.remove_device(GSME_EUI)
    machine.gsme_wakes()                        # not in the log: polls unheard, queue kept
    machine.add_device(GSME_EUI, b"", 60)
    machine.gsme_wakes()                        # asserts the one response per command
    assert machine.gas_queue == [] and machine.lab.gpf.queue == []
