"""The Gas Proxy Function on the comms hub: the GSME's always-awake stand-in.

    gpf = GasProxyFunction(gsme_eui, security, queue_limit=8)
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
  one per GET-RESPONSE with the count still queued, when the GSME wakes and polls;
- forwards the GSME's PUTs (its responses and alerts) upstream.
Commands are checked by GBCS security (recipient, role, counter, signature, MAC) before
they are answered or queued, so a forged or replayed command never takes a queue slot;
the GSME checks them again when they reach it. The queue is bounded: a command that
finds it full is refused with no state change and raises alert `ALERT_QUEUE_FULL` to its
originator.

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

Unconfirmed, configurable: the queue bound (default 8) and ALERT_QUEUE_FULL (0x8F84,
the hub's "failure to deliver remote party message" alert; GBCS's code for a full GPF
queue could not be confirmed from a public source).
"""

import binascii

from firmware.devices import gsme as G
from firmware.gbcs.device_security import GbcsRefusal
from firmware.gbcs.envelope import CRA_ALERT, parse
from firmware.han import tunnel
from firmware.zcl import frame as Z

ALERT_QUEUE_FULL = 0x8F84
DEFAULT_QUEUE_LIMIT = 8


class GasProxyFunction(G.GbzPort):
    def __init__(self, gsme_eui, security, crypto=None, queue_limit=DEFAULT_QUEUE_LIMIT,
                 mirror_depth=G.DEFAULT_HH_DEPTH, upstream=None,
                 queue_full_alert=ALERT_QUEUE_FULL):
        self.gsme_eui = bytes(gsme_eui)
        if security.own_eui != self.gsme_eui:
            raise ValueError("the GPF answers with the GSME's identity")
        self.security = security
        self.crypto = crypto if crypto is not None else security.crypto
        self.queue_limit = queue_limit
        self.mirror_depth = mirror_depth
        self.upstream = upstream            # callback(bytes); None: kept for take_upstream
        self.queue_full_alert = queue_full_alert
        self.queue = []                     # GBCS commands for the GSME, oldest first
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
        if len(self.queue) >= self.queue_limit:
            # refused before any check records a counter: nothing changes
            return self.alert(self.queue_full_alert, self._alert_recipient(message), now)
        accepted, out = self._accepted(data, now)
        if accepted is None:
            return out
        self.queue.append(data)
        return []

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
            return self._hand_over()
        if kind == tunnel.PUT:
            self._forward(payload)
        return []

    def _hand_over(self):
        if not self.queue:
            return [tunnel.get_response(0, b"")]
        command = self.queue.pop(0)
        return tunnel.segments(tunnel.get_response(min(len(self.queue), 255), command))

    def _forward(self, payload):
        try:
            message = parse(payload)
        except Exception:
            return
        if bytes(message.originator) != self.gsme_eui:
            return                          # the tunnel is the GSME's: nobody else speaks
        if message.cra_flag == CRA_ALERT:
            self._adopt_alert_counter(message.originator_counter)
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
        return {"queue": [_hex(c) for c in self.queue], "outbox": [_hex(c) for c in self.outbox],
                "mirror": self.mirror, "last_contact": self.last_contact,
                "security": self.security.state()}

    def load_state(self, state):
        self.queue = [binascii.unhexlify(c) for c in state["queue"]]
        self.outbox = [binascii.unhexlify(c) for c in state["outbox"]]
        self.mirror = state["mirror"]
        self.last_contact = state["last_contact"]
        self.security.load_state(state["security"])
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


def _hex(data):
    return binascii.hexlify(bytes(data)).decode()
