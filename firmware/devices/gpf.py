"""The Gas Proxy Function on the comms hub: the GSME's always-awake stand-in.

    gpf = GasProxyFunction(gsme_eui, security, queue_limit=8, max_offers=3)
    out = gpf.receive_gbcs(data, now)        # from the CHF: answers to send upstream now
    frames = gpf.receive_tunnel(data, now)   # from the GSME over the HAN: frames back
    ack = gpf.receive_mirror(report, now)    # the GSME's readings (Gsme.mirror_report)
    upstream = gpf.take_upstream()           # the GSME's answers that came in PUTs
    upstream = wake_exchange(gsme, gpf, now) # one whole wake over a direct link

docs/GBCS_INTERFACES.md 6. The GSME sleeps; the GPF
- answers the reads it can serve from its mirror of the GSME's readings (GCS13a
  registers, GCS17 HH profile, GCS33 valve status and battery life) at once, while the
  GSME sleeps;
- queues every other command for the GSME (valve GCS32/GCS39, top-up CS01b, clock
  GCS28, and whatever else the GSME will answer) and hands them over in arrival order,
  one per GET-RESPONSE with the count still queued behind it, when the GSME wakes and
  polls (GBCS 10.3.4 GSME command retrieval);
- keeps a handed-over command at the head of the queue until the GSME's PUT answering
  it arrives (a response whose recipient is the command's originator and whose
  counter is the command's originator counter): a GET that comes first means the
  GET-RESPONSE or the PUT was lost on the HAN, and the same command is offered again.
  After `max_offers` offers (default 3) without an answer, the next GET drops it, raises
  `undelivered_alert` to its originator and hands over the next command;
- forwards the GSME's PUTs (its responses and alerts) upstream.
Commands are checked by GBCS security (recipient, role, counter, signature, MAC) before
they are answered or queued, so a forged or replayed command never takes a queue slot;
the GSME checks them again when they reach it. The queue is bounded: a command that
finds it full is refused with no state change and raises alert `ALERT_QUEUE_FULL` to its
originator. The bound counts the commands waiting, not the one handed over and awaiting
its answer (so a command arriving mid-wake finds the room the hand-over made).

Whose keys. Answers carry the GSME's EUI as originator (DOMAIN.md, RTDS "RELIABLE_GPF"
responses) and are protected as the GSME's: encrypted reads with KDF mode 4 between the
GSME's KA key and the requester's, the response MAC'd the same way. In real GBCS the GPF
is a device of its own with its own SMKI certificates; the GSME's private keys never leave
the GSME, and the GPF-served use cases are defined with the protection GBCS gives them
there (not reproduced here: the clause text is not public). In this emulator the GPF is
given a DeviceSecurity built on the GSME's EUI, KA key and trust anchors (`security`), so
what it sends verifies at the DCC against the GSME's certificate. It has its own counter
records; alert counters are kept rising across the two by exchanging them with each
mirror update (`receive_mirror` returns the GPF's, `Gsme.mirror_ack` adopts it).

Change of supplier (CS02b, e.g. SRV 6.23 by the Transitional CoS party). The GPF answers
with the GSME's identity and trust anchors, so it must come to obey whom the GSME obeys.
It queues a CS02b like any command, and applies the same CS02b to its own anchor store
only when the GSME's response to it passes through it (`_settle`): an immediate outcome
is applied at once (same command, same anchors before: the same replacements succeed);
a future-dated one is stored as the GSME stores it, and run when the GSME's
FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT (its pending one ran) passes through. Why
not when it accepts and queues it: until the GSME has run it, the GSME still obeys the old
supplier. Applied at queue time, a command the GSME never receives (dropped after
`max_offers`) or refuses would leave the GPF obeying the new supplier and answering it
with the GSME's identity, while the GSME refuses that supplier's commands the GPF queued;
following the GSME's own answer keeps the two on the same anchors. A GSME answer with
no outcome the GPF can read changes nothing here.

Unconfirmed, configurable: the queue bound (default 8) and ALERT_QUEUE_FULL (0x8F84,
the hub's "failure to deliver remote party message" alert; GBCS's code for a full GPF
queue could not be confirmed from a public source). A command dropped after `max_offers`
unanswered offers raises ALERT_UNDELIVERED, the same 0x8F84: it is exactly a remote
party's message the GPF failed to deliver, and the same reasoned choice as for a full
queue. The number of offers is the emulator's (GBCS leaves retries to the device).
Alerts the GPF raises on its own while the GSME polls (not as the answer to a WAN
message) go to `alert_sink(bytes)`, or when that is None to the outbox (`take_upstream`).
"""

from firmware.devices import gsme as G
from firmware.gbcs import codes
from firmware.gbcs import credentials as cs02
from firmware.gbcs.device_security import GbcsRefusal, eui_text
from firmware.gbcs.envelope import CRA_ALERT, CRA_RESPONSE, parse
from firmware.han import tunnel
from firmware.persist import from_hex, hex_text
from firmware.zcl import frame as Z

ALERT_QUEUE_FULL = 0x8F84
ALERT_UNDELIVERED = 0x8F84          # failure to deliver remote party message
DEFAULT_QUEUE_LIMIT = 8
DEFAULT_MAX_OFFERS = 3


class GasProxyFunction(G.GbzPort):
    def __init__(self, gsme_eui, security, crypto=None, queue_limit=DEFAULT_QUEUE_LIMIT,
                 mirror_depth=G.DEFAULT_HH_DEPTH, upstream=None,
                 queue_full_alert=ALERT_QUEUE_FULL, max_offers=DEFAULT_MAX_OFFERS,
                 undelivered_alert=ALERT_UNDELIVERED, alert_sink=None):
        self.gsme_eui = bytes(gsme_eui)
        if security.own_eui != self.gsme_eui:
            raise ValueError("the GPF answers with the GSME's identity")
        if not isinstance(queue_limit, int) or queue_limit < 0:
            raise ValueError("queue_limit is a whole number of commands, 0 or more")
        if not isinstance(max_offers, int) or max_offers < 1:
            raise ValueError("max_offers is a whole number of offers, 1 or more")
        self.security = security
        self.crypto = crypto if crypto is not None else security.crypto
        self.queue_limit = queue_limit
        self.mirror_depth = mirror_depth
        self.upstream = upstream            # callback(bytes); None: kept for take_upstream
        self.queue_full_alert = queue_full_alert
        self.max_offers = max_offers
        self.undelivered_alert = undelivered_alert
        self.alert_sink = alert_sink        # callback(bytes); None: kept for take_upstream
        self.queue = []                     # GBCS commands for the GSME, oldest first
        self.offers = 0                     # times queue[0] was handed over unanswered
        self.outbox = []
        self.mirror = None                  # the GSME's last readings (Gsme.mirror_report)
        self.last_contact = None
        self.reassembler = tunnel.Reassembler()

    # -- from the WAN (through the CHF) ---------------------------------------------------

    def receive_gbcs(self, data, now):
        """GBCS_INTERFACES.md 4: answers for upstream now ([] when queued); never raises."""
        try:
            return self._receive(bytes(data), now)
        except GbcsRefusal:
            return []
        except Exception:
            return []

    def _receive(self, data, now):
        try:
            message = parse(data)
        except Exception:
            return []
        if bytes(message.recipient) != self.gsme_eui:
            return []
        if message.message_code in G.READS:
            accepted, out = self._accepted(data, now)
            return out if accepted is None else self._answer_gbz(accepted, now)
        if self.waiting() >= self.queue_limit:
            # refused before any check records a counter: nothing changes
            return self.alert(self.queue_full_alert, self._alert_recipient(message), now)
        accepted, out = self._accepted(data, now)
        if accepted is None:
            return out
        self.queue.append(data)
        return []

    def waiting(self):
        """Commands queued and not yet handed over (what the queue bound counts)."""
        return len(self.queue) - 1 if self.offers else len(self.queue)

    def _execute(self, message, request, component, now):
        if self.mirror is None:
            return _no_data(component, request, message.message_code in G.ENCRYPTED_READS), []
        return G.read_answer(self.mirror, component, request,
                             message.message_code in G.ENCRYPTED_READS), []

    # -- from the GSME over the HAN -------------------------------------------------------

    def receive_tunnel(self, data, now):
        """A TransferData payload from the GSME; the frames to send back to it."""
        try:
            got = self.reassembler.feed(data, now)
        except tunnel.TunnelError:
            return []
        if got is None:
            return []
        kind, _, payload = got
        self.last_contact = now
        if kind == tunnel.GET:
            return self._hand_over(now)
        if kind == tunnel.PUT:
            self._forward(payload)
        return []

    def _hand_over(self, now):
        """The GET-RESPONSE to a poll: the head of the queue, offered again while it is
        unanswered, dropped (with its alert) once it has been offered `max_offers` times."""
        if self.queue and self.offers >= self.max_offers:
            self._give_up(now)
        if not self.queue:
            return [tunnel.get_response(0, b"")]
        self.offers += 1
        return tunnel.segments(tunnel.get_response(min(len(self.queue) - 1, 255),
                                                   self.queue[0]))

    def _give_up(self, now):
        command = self.queue.pop(0)
        self.offers = 0
        try:
            message = parse(command)
            alerts = self.alert(self.undelivered_alert, self._alert_recipient(message), now)
        except Exception:
            return                          # queued commands parsed once: not expected
        for alert in alerts:
            if self.alert_sink is not None:
                self.alert_sink(alert)
            else:
                self.outbox.append(alert)

    def _settle(self, response):
        """The head of the queue leaves once the GSME's response to it arrives: GBCS
        responses carry the command's originator (as recipient) and originator counter."""
        if not self.offers or not self.queue:
            return
        try:
            command = parse(self.queue[0])
        except Exception:
            return
        if (bytes(response.recipient) == bytes(command.originator)
                and response.originator_counter == command.originator_counter):
            self.queue.pop(0)
            self.offers = 0
            if (command.message_code in codes.CS02B_CODES
                    and response.message_code == command.message_code):
                self._follow_credentials(command, response)

    def _follow_credentials(self, command, response):
        """The GSME ran this CS02b (its response carries the outcome): the GPF applies
        the same command to its own anchors (module docstring, "Change of supplier")."""
        try:
            cs02.parse_response(response.payload)
        except Exception:
            return                          # not an outcome: the GSME changed nothing
        security = self.security
        key = eui_text(command.originator)
        last = security.last_counter(command.originator)
        # update_credentials applies the command last accepted from its originator; a
        # later one from the same party may have been queued since this one was
        security.counters[key] = command.originator_counter
        try:
            security.update_credentials(command)
        except GbcsRefusal:
            pass
        if key in security.counters and security.counters[key] < last:
            security.counters[key] = last

    def _follow_future_dated(self, alert):
        """The GSME's future-dated CS02b ran: so does the one the GPF stored with it."""
        if alert.message_code != codes.FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT:
            return
        if self.security.pending_credentials is None:
            return
        try:
            self.security.execute_pending_credentials()
        except GbcsRefusal:
            pass

    def _forward(self, payload):
        try:
            message = parse(payload)
        except Exception:
            return
        if bytes(message.originator) != self.gsme_eui:
            return                          # the tunnel is the GSME's: nobody else speaks
        if message.cra_flag == CRA_ALERT:
            self._adopt_alert_counter(message.originator_counter)
            self._follow_future_dated(message)
        elif message.cra_flag == CRA_RESPONSE:
            self._settle(message)
        if self.upstream is not None:
            self.upstream(bytes(payload))
        else:
            self.outbox.append(bytes(payload))

    def take_upstream(self):
        out = self.outbox
        self.outbox = []
        return out

    # -- the mirror -----------------------------------------------------------------------

    def receive_mirror(self, report, now):
        """Take the GSME's readings; returns the acknowledgement the GSME applies."""
        self.last_contact = now
        self._adopt_alert_counter(int(report.get("alert_counter", 0)))
        mirror = self.mirror
        start = int(report["hh_start"])
        entries = [int(v) for v in report["hh"]]
        if mirror is None or mirror["hh_start"] + len(mirror["hh"]) * G.INTERVAL != start:
            hh_start, hh = start, entries       # a gap: start again from what came
        else:
            hh_start, hh = mirror["hh_start"], mirror["hh"] + entries
        if len(hh) > self.mirror_depth:
            drop = len(hh) - self.mirror_depth
            hh = hh[drop:]
            hh_start += drop * G.INTERVAL
        self.mirror = {"time": int(report["time"]), "summation": int(report["summation"]),
                       "supply_status": int(report["supply_status"]),
                       "credit": int(report["credit"]), "hh_start": hh_start, "hh": hh,
                       "battery_days": report.get("battery_days")}
        return {"alert_counter": self.security.alert_counter}

    def _adopt_alert_counter(self, counter):
        if counter > self.security.alert_counter:
            self.security.alert_counter = counter

    # -- persistence ----------------------------------------------------------------------

    def state(self):
        return {"queue": [hex_text(c) for c in self.queue], "offers": self.offers,
                "outbox": [hex_text(c) for c in self.outbox],
                "mirror": self.mirror, "last_contact": self.last_contact,
                "security": self.security.state()}

    def load_state(self, state):
        """Restore `state()`; a state without "offers" (saved before the hand-over was
        kept) restores none handed over. Raises ValueError and changes nothing on a
        malformed state."""
        try:
            queue = [from_hex(c) for c in state["queue"]]
            outbox = [from_hex(c) for c in state["outbox"]]
            offers = int(state.get("offers", 0))
            mirror = state["mirror"]
            last_contact = state["last_contact"]
            saved_security = state["security"]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError("GPF state: %r" % (exc,))
        if offers < 0 or (offers and not queue):
            raise ValueError("GPF state: %d offers of an empty queue" % offers)
        self.security.load_state(saved_security)
        self.queue = queue
        self.offers = offers
        self.outbox = outbox
        self.mirror = mirror
        self.last_contact = last_contact
        self.reassembler.reset()


def _no_data(component, request, encrypted):
    """Nothing mirrored yet: GetSampledData finds nothing, each attribute read fails with
    HARDWARE_FAILURE (the status RTDS's GCS13a ERROR response carries)."""
    if request.cluster_specific:
        return G.default_response(component.cluster_id, request, Z.NOT_FOUND)
    ids = Z.decode_read_attributes(request.payload)
    payload = Z.encode_read_attributes_response([(i, Z.HARDWARE_FAILURE, None, None)
                                                 for i in ids])
    fc = G.FC_READ_RESPONSE if encrypted else G.FC_PLAIN_READ_RESPONSE
    frame = Z.ZclFrame(fc, request.tsn, Z.READ_ATTRIBUTES_RESPONSE, payload)
    return G._Answer(component.cluster_id, frame, encrypted)


def wake_exchange(gsme, gpf, now, max_frames=256):
    """One wake of `gsme` against `gpf` over a direct, lossless link: mirror update, the
    GET / GET-RESPONSE / PUT conversation until nothing remains, mirror update again.
    Returns what the GSME sent upstream (responses and alerts, in order)."""
    gsme.mirror_ack(gpf.receive_mirror(gsme.mirror_report(now), now))
    pending = gsme.wake(now)
    sent = 0
    while pending and sent < max_frames:
        frame = pending.pop(0)
        sent += 1
        for reply in gpf.receive_tunnel(frame, now):
            pending.extend(gsme.receive_tunnel(reply, now))
    gsme.mirror_ack(gpf.receive_mirror(gsme.mirror_report(now), now))
    return gpf.take_upstream()
