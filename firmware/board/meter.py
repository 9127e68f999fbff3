"""One metering device assembled for a transport: the board's view of the device core.

`MeterCore` turns a profile (the JSON form of `profiles/*.toml`) into an `Esme` and its
`DlmsServer`, and gives every transport connection its own framing endpoint bound to a
new `DlmsSession`:

    core = MeterCore(profile, now, seed=0, state_dir=None)
    core.open(conn_id, "hdlc")          # or "wrapper"
    out = core.receive(conn_id, data)   # bytes from the peer in, bytes to the peer out
    core.close(conn_id)
    core.advance(now)                   # run the simulation up to `now` (integer seconds)
    core.shutdown()                     # final save

Time only comes in through `now` (ARCHITECTURE.md principle 1): the board edge owns the
wall clock and the speed. `now` is board time; the meter's own clock runs at board
time plus an offset that changes when a client writes the COSEM clock. The offset is
kept across a restart like a battery-backed real-time clock, and the meter's clock
never restarts earlier than it stopped.

With a `state_dir`, the device state is saved through `firmware/persist.py` before the
reply to any request that may have changed it leaves the device (nothing acknowledged
is lost across a power cut, principle 6), every `save_period` simulated seconds for the
registers the load model drives, and on `shutdown`.

Registers never go backwards across a power cut: between two saves the registers move
only with time (the load model is deterministic: a restored meter at time t shows what
the meter that never stopped shows at t), and every save but the last one on shutdown
records a time `ceiling` (now + save_period) that no value shown before the next save
can be later than (a periodic save comes at the latest save_period after the last).
A meter restored from a cut resumes no earlier than that ceiling, so its clock may
step forward by up to save_period, never back; after a clean shutdown it resumes at the
time it stopped.

Runs unchanged on MicroPython: `firmware/board/stdio_main.py` drives it over a pipe.

A test-only planted fault (a profile's `"fault": {"hang_on": KIND}`, which no shipped
profile has) makes the device hang on one kind of bad frame, so that the DUT fuzzer
(`emulator/fuzz/dut.py`) can be shown to find a hang: under MicroPython the loop stops
for good, elsewhere the core falls silent until it is restarted.
"""

import json
import sys

from firmware.devices.esme import Esme
from firmware.dlms.server import DlmsServer
from firmware.hdlc.station import REJECT_Y, HdlcStation
from firmware.persist import FileStateStore
from firmware.sim.clock import SteppedClock
from firmware.wrapper import WrapperEndpoint

FRAMING_HDLC = "hdlc"
FRAMING_WRAPPER = "wrapper"
FRAMINGS = (FRAMING_HDLC, FRAMING_WRAPPER)

# xDLMS APDU tags that only read (DLMS UA 1000-2 Green Book, xDLMS APDU CHOICE):
# get-request [192], AARQ [APPLICATION 0] and RLRQ [APPLICATION 2]. Any other request
# may change the device (SET, ACTION, their ciphered forms), so the state is checked
# for a change after it and saved before the reply is released.
READ_ONLY_REQUEST_TAGS = (0xC0, 0x60, 0x62)

DEFAULT_SAVE_PERIOD = 900     # simulated seconds between saves of the running registers
DEFAULT_MAX_PDU_SIZE = 1024
STATE_FORMAT = 1

# Planted faults: an I frame whose information field is over the negotiated maximum
# (the station's FRMR with reason Y, ISO/IEC 13239).
FAULT_HDLC_INFO_TOO_LONG = "hdlc-info-too-long"
FAULTS = (FAULT_HDLC_INFO_TOO_LONG,)


class MeterError(Exception):
    """Misuse of the core by the board edge (unknown connection, unknown framing)."""


class _Link:
    """One transport connection: its framing endpoint and its xDLMS session."""

    def __init__(self, endpoint, session):
        self.endpoint = endpoint
        self.session = session


class MeterCore:
    def __init__(self, profile, now, seed=0, state_dir=None,
                 save_period=DEFAULT_SAVE_PERIOD):
        self.profile = profile
        self.clock = SteppedClock(now)
        self._board_now = now
        self._offset = 0          # meter clock minus board time
        self.esme = Esme(profile, self.clock, seed)
        self._store = FileStateStore(state_dir) if state_dir else None
        self._save_period = save_period
        self._saved_text = None
        self._saved_at = now
        self._ceiling = now       # no time after this was ever shown
        self.gbcs = None          # the ESME's GBCS port, after enable_gbcs
        self._restored_gbcs = None
        self._restored_objects = {}
        self.restored = self._restore()
        # Before anything is shown: a ceiling on disk covers this run's first period.
        self.save()
        self.server = DlmsServer(self.esme.logical_device, self.clock,
                                 max_pdu_size=_max_pdu_size(profile))
        self._hdlc_address = _hdlc_address(profile)
        self._wport = (profile.get("wrapper") or {}).get("wport")
        self._links = {}
        self._fault = (profile.get("fault") or {}).get("hang_on")
        if self._fault is not None and self._fault not in FAULTS:
            raise MeterError("unknown planted fault %r" % (self._fault,))
        self.hung = False

    @property
    def now(self):
        return self.clock()

    def connections(self):
        return list(self._links.keys())

    def open(self, conn_id, framing):
        if conn_id in self._links:
            raise MeterError("connection %d is already open" % conn_id)
        session = self.server.new_session()
        on_apdu = self._apdu_handler(session)
        if framing == FRAMING_HDLC:
            upper, lower = self._hdlc_address
            endpoint = HdlcStation(server_upper=upper, server_lower=lower,
                                   on_apdu=on_apdu, on_disconnect=session.abort)
            if self._fault == FAULT_HDLC_INFO_TOO_LONG:
                endpoint.on_reject = self._on_reject_fault
        elif framing == FRAMING_WRAPPER:
            endpoint = WrapperEndpoint(on_apdu=on_apdu, on_disconnect=session.abort,
                                       wport=self._wport)
        else:
            raise MeterError("unknown framing %r (expected hdlc or wrapper)" % (framing,))
        self._links[conn_id] = _Link(endpoint, session)

    def receive(self, conn_id, data):
        if self.hung:
            return b""
        out = self._link(conn_id).endpoint.receive(data)
        if self.hung:
            return b""
        return out or b""

    def _on_reject_fault(self, frmr_info):
        if frmr_info[2] & REJECT_Y:
            self.hung = True
            if sys.implementation.name == "micropython":
                while True:      # the planted hang: the pipe loop never answers again
                    pass

    def idle(self, conn_id):
        """The line of `conn_id` was silent for its inter-frame time-out: drop a frame
        that will not be completed."""
        self._link(conn_id).endpoint.idle()

    def close(self, conn_id):
        link = self._link(conn_id)
        del self._links[conn_id]
        link.session.abort()

    def advance(self, now):
        """Run the device up to board time `now` (which never runs backwards)."""
        if now <= self._board_now:
            return
        self._board_now = now
        meter_now = now + self._offset
        if meter_now > self.clock():
            self.clock.set(meter_now)
            self.esme.advance(meter_now)
        if self._store is not None and meter_now - self._saved_at >= self._save_period:
            self.save()

    def save(self, final=False):
        """Write the state if it differs from the last write; True when written.

        `final` (shutdown): nothing will be shown after this, so the ceiling is now."""
        if self._store is None:
            return False
        now = self.clock()
        ceiling = now if final else now + self._save_period
        esme_state = self.esme.save_state()
        parts = [self._offset, esme_state]
        if self.gbcs is not None:          # GBCS counters and anchors: replay protection
            parts.append(self.gbcs.security.state())
        text = json.dumps(parts)           # what a change is judged by
        self._saved_at = now
        if text == self._saved_text and (ceiling == self._ceiling
                                         or (ceiling < self._ceiling and not final)):
            return False     # what is on disk already covers everything shown
        state = {"format": STATE_FORMAT, "now": now, "offset": self._offset,
                 "ceiling": ceiling, "esme": esme_state}
        if self.gbcs is not None:
            state["gbcs"] = parts[2]
        self._store.save(state)
        self._saved_text = text
        self._ceiling = ceiling
        return True

    # -- GBCS (enabled only with credentials) --------------------------------------------
    def enable_gbcs(self, credentials, crypto=None):
        """Give the ESME its GBCS port: `credentials` is the JSON form
        {"eui": hex, "ds": hex scalar, "ka": hex scalar, "anchors": TrustAnchors.state()}.
        `crypto` defaults to `BoardCrypto` (pure Python over cryptolib). A core restored
        from `state_dir` keeps the GBCS state it saved (originator counters, so a replay
        stays refused across a power cut, and anchors as changed since installation)."""
        from firmware.crypto.board import BoardCrypto, PrivateKey
        from firmware.devices.esme_gbcs import EsmeGbcs
        from firmware.gbcs.anchors import TrustAnchors
        from firmware.gbcs.device_security import DeviceSecurity
        crypto = crypto or BoardCrypto()
        security = DeviceSecurity(_unhex(credentials["eui"]),
                                  PrivateKey(int(credentials["ds"], 16)),
                                  PrivateKey(int(credentials["ka"], 16)), crypto,
                                  TrustAnchors.restore(credentials["anchors"]))
        if self._restored_gbcs is not None:
            security.load_state(self._restored_gbcs)   # counters seen before the cut
        present = self.esme.logical_device.state()["objects"]
        self.gbcs = EsmeGbcs(self.esme, security, crypto)
        self._restore_added_objects(present)
        self.save()          # from now on the GBCS state goes with every save

    def _restore_added_objects(self, present):
        """The saved state of the objects `EsmeGbcs` just added (credits, token gateway,
        UTRN record): they did not exist when the ESME was restored. Objects restored then
        have run on since, so they are left as they are."""
        added = {}
        for key in self._restored_objects:
            if key not in present:
                added[key] = self._restored_objects[key]
        if added:
            self.esme.logical_device.restore({"objects": added})

    def receive_gbcs(self, data):
        """One GBCS message in (a command from the hub): its responses and alerts out,
        stamped with the meter's own clock. The state is saved before they leave."""
        if self.gbcs is None:
            raise MeterError("GBCS is not enabled on this core (no credentials)")
        out = self.gbcs.receive_gbcs(bytes(data), self.clock())
        self._offset = self.clock() - self._board_now   # ECS70 may have set the clock
        if self._store is not None:
            self.save()     # an acknowledged change (supply, credit) survives a cut
        return out

    def shutdown(self):
        for conn_id in self.connections():
            self.close(conn_id)
        self.save(final=True)

    def _link(self, conn_id):
        link = self._links.get(conn_id)
        if link is None:
            raise MeterError("connection %d is not open" % conn_id)
        return link

    def _apdu_handler(self, session):
        def on_apdu(apdu, client_sap):
            reply = session.handle(apdu, client_sap)
            self._offset = self.clock() - self._board_now   # a client may set the clock
            if self._store is not None and apdu and apdu[0] not in READ_ONLY_REQUEST_TAGS:
                self.save()   # before the reply leaves: an acknowledged change survives
            return reply
        return on_apdu

    def _restore(self):
        if self._store is None:
            return False
        state = self._store.load()
        if state is None:
            return False
        if state.get("format") != STATE_FORMAT:
            raise MeterError("state format %r is not %d" % (state.get("format"), STATE_FORMAT))
        # The meter's clock keeps its offset over the cut, and never runs backwards:
        # not behind anything it may have shown before the cut (the ceiling).
        meter_now = max(self._board_now + state.get("offset", 0), state["now"],
                        state.get("ceiling", state["now"]))
        self.clock.set(meter_now)
        self.esme.restore_state(state["esme"])
        self.esme.advance(self.clock())
        self._offset = self.clock() - self._board_now
        self._saved_text = json.dumps([self._offset, state["esme"]])
        self._restored_gbcs = state.get("gbcs")     # taken up by enable_gbcs
        # the logical device's state (LogicalDevice.state(): {"objects", "secrets"})
        self._restored_objects = (state["esme"].get("objects") or {}).get("objects") or {}
        self._saved_at = self.clock()
        self._ceiling = state.get("ceiling", state["now"])
        return True


def _unhex(text):
    from binascii import unhexlify
    return unhexlify(text)


def _max_pdu_size(profile):
    dlms = profile.get("dlms") or {}
    return dlms.get("max_pdu_size", DEFAULT_MAX_PDU_SIZE)


def _hdlc_address(profile):
    """(upper, lower) HDLC server address (IEC 62056-46 6.4.2.2): logical device 1,
    physical device 0x10 unless the profile says otherwise."""
    hdlc = profile.get("hdlc") or {}
    return hdlc.get("server_upper", 1), hdlc.get("server_lower", 0x10)
