"""The Communications Hub Function: WAN in, HAN out, its own device log (GBCS 10, 7.2).

    hub = CommsHub(eui, security, han_send, gpf=None)
    up = hub.receive_wan(data, now)        # list of bytes: what goes back up the WAN now
    up = hub.receive_han(eui, frame, now)  # a TransferData payload from a HAN device
    hub.state() -> dict;  hub.load_state(state);  CommsHub.restore(state, ...)

docs/GBCS_INTERFACES.md section 7. Neither entry raises. `security` is the hub's own
`DeviceSecurity` (persisted by its owner beside `state()`); `han_send(eui, data)` hands a
TransferData payload (GB-HRGP, `firmware.han.tunnel`) to the HAN for one device.

From the WAN. A message that does not parse, is not a command (CRA flag 1), or is a
pre-command (no signature field: it goes back to its supplier, never to a device) is
dropped: nothing forwarded, nothing changed. Then by recipient EUI:
- the hub itself: `security.accept_command`, then the use case. CCS01 / CCS02 (add /
  remove a device in the CHF device log) are a DLMS ACCESS request on ZigBee network
  control (class 104) 0.0.30.3.0.255 (DOMAIN.md "Payload mappings"; RTDS 8.11):
      CCS01  ACTION m1 register_device {EUI-64, device type (enum), install code,
             enum}, SET attr 3 join_timeout (long-unsigned), SET attr 2
             enable_disable_joining (boolean)
      CCS02  ACTION m2 unregister_device (EUI-64)
  run as the ESME runs ACCESS (esme_gbcs.py): shape of the use case, then type checks
  before anything changes, then in order with break-on-error. Removing a device that is
  not in the log answers hardware-fault (as RTDS 8.11 CCS02 ERROR does); a full log
  temporary-failure and an impossible EUI (the hub's own, all zeros, all ones)
  other-reason (reasoned defaults, unconfirmed). The response is MAC'd or signed by
  `security.respond` and carries no date-time (RTDS 8.11 CCS01/CCS02 responses). CS02b
  (update security credentials) goes to `security.update_credentials`. Any other use
  case addressed to the hub is answered read-write-denied (ACCESS) or, when its payload
  is not ACCESS, with alert 0x8F1E. A refusal raises its alert (`security.dlms_alert`)
  or stays silent;
- a device in the device log: the message is sent unchanged in a PUT (segmented at the
  maximum transfer size) and remembered as outstanding until its answer comes back;
- the GSME the GPF serves (or the GPF itself): `gpf.receive_gbcs(data, now)`; the GPF
  answers now (a mirrored read) or queues the command for the GSME's next wake;
- anyone else: silence. GBCS gives the hub no alert for a device it does not know (an
  alert names the device that raises it, and this one is not there), so the message is
  dropped and counted in `stats["unknown recipient"]`; the DCC sees a time-out.

From the HAN. Frames from devices not in the log are dropped. Each device's payloads are
reassembled (`tunnel.Reassembler`). A PUT carries a response or an alert from that
device (its originator must be the device: a node speaks only for itself): a response
goes up only while its command is outstanding (originator, recipient and counter match)
and then never again, so a late or repeated answer is forwarded once; an alert goes up
once per (device, counter). The GSME's TransferData payloads (its GET polls and its PUT
answers) also go, as they arrive, to `gpf.receive_tunnel(data, now)`, whose returned
payloads are sent back to the GSME.
A GET from any other device is answered GET-RESPONSE with nothing queued.

The GPF, duck-typed: `gpf.gsme_eui` (and optionally `gpf.eui`), `gpf.receive_gbcs(data,
now) -> list[bytes]` (GBCS_INTERFACES.md section 4), `gpf.receive_tunnel(frame, now) ->
list[bytes]` (the HAN node interface of section 6, seen from the GSME's side).
The hub talks over the HAN only to devices in its log, the GSME included.
"""

from firmware.dlms import access as A
from firmware.dlms import axdr
from firmware.dlms import cosem_datetime as cdt
from firmware.dlms import results as R
from firmware.gbcs import codes
from firmware.gbcs.device_security import GbcsRefusal, eui_text
from firmware.gbcs.envelope import CRA_ALERT, CRA_COMMAND, CRA_RESPONSE, parse
from firmware.han import tunnel as T
from firmware.persist import from_hex

CLASS_ZIGBEE_NETWORK_CONTROL = 104
ZIGBEE_NETWORK_CONTROL = bytes((0, 0, 30, 3, 0, 255))
ATTR_ENABLE_DISABLE_JOINING = 2
ATTR_JOIN_TIMEOUT = 3
METHOD_REGISTER_DEVICE = 1
METHOD_UNREGISTER_DEVICE = 2

MAX_DEVICES = 16                # device log capacity (configurable; GBCS sets a minimum)
MAX_OUTSTANDING = 64            # commands awaiting an answer from the HAN
ANSWER_WINDOW = 24 * 3600       # seconds a command waits for its answer (a GSME sleeps)
MAX_RECENT_ALERTS = 64          # (device, counter) pairs remembered against repeats
MAX_INSTALL_CODE = 18           # ZigBee install code: 6/8/12/16 bytes + CRC-16

_ZNC = (CLASS_ZIGBEE_NETWORK_CONTROL, ZIGBEE_NETWORK_CONTROL)
_REGISTER = (A.ACTION,) + _ZNC + (METHOD_REGISTER_DEVICE,)
_UNREGISTER = (A.ACTION,) + _ZNC + (METHOD_UNREGISTER_DEVICE,)
_SET_TIMEOUT = (A.SET,) + _ZNC + (ATTR_JOIN_TIMEOUT,)
_SET_JOINING = (A.SET,) + _ZNC + (ATTR_ENABLE_DISABLE_JOINING,)
_NO_EUI = (b"\x00" * 8, b"\xff" * 8)


class _Refused(Exception):
    def __init__(self, index, code):
        super().__init__(index, code)
        self.index = index
        self.code = code


class CommsHub:
    def __init__(self, eui, security, han_send, gpf=None, max_devices=MAX_DEVICES,
                 answer_window=ANSWER_WINDOW, max_outstanding=MAX_OUTSTANDING):
        self.eui = bytes(eui)
        self.security = security
        self.han_send = han_send
        self.gpf = gpf
        self.max_devices = max_devices
        self.answer_window = answer_window
        self.max_outstanding = max_outstanding
        self.device_log = {}        # EUI hex -> {"type", "install_code" (hex), "extra"}
        self.joining = False
        self.join_timeout = 0
        self.outstanding = {}       # (device EUI, originator EUI, counter) -> sent at
        self.recent_alerts = []     # [device hex, counter], oldest first
        self.stats = {}
        self._reassemblers = {}

    # -- the device log ----------------------------------------------------------------
    def add_device(self, eui, device_type, install_code=b"", extra=0):
        """What CCS01's register_device does (also for a lab that commissions directly)."""
        self.device_log[eui_text(eui)] = {"type": device_type, "install_code": eui_text(install_code),
                                      "extra": extra}

    def remove_device(self, eui):
        key = eui_text(eui)
        if key not in self.device_log:
            return False
        del self.device_log[key]
        self._reassemblers.pop(key, None)
        eui = bytes(eui)
        if self._is_gpf(eui):
            # the GPF keeps the GSME's queued commands across a removal: if the GSME
            # rejoins and runs them, each answer must still go up once (the entries
            # expire with the answer window; the hub hears nothing from it meanwhile)
            return True
        for entry in list(self.outstanding):
            if entry[0] == eui:
                del self.outstanding[entry]
        return True

    def knows(self, eui):
        return eui_text(eui) in self.device_log

    # -- WAN -----------------------------------------------------------------------------
    def receive_wan(self, data, now):
        try:
            message = parse(data)
        except Exception:
            return self._drop("malformed")
        if message.cra_flag != CRA_COMMAND:
            return self._drop("not a command")
        if not message.signature_field:
            return self._drop("pre-command")      # signed by its supplier before the WAN
        self._expire(now)
        target = bytes(message.recipient)
        if target == self.eui:
            return self._own(message, now)
        if self._is_gpf(target):
            self._remember(target, message, now)
            return self._from_gpf(self._call(self.gpf.receive_gbcs, bytes(data), now), now)
        if eui_text(target) in self.device_log:
            self._remember(target, message, now)
            self._send(target, T.put(data))
            return []
        return self._drop("unknown recipient")

    def _is_gpf(self, eui):
        """Whether `eui` is the GSME the GPF serves, or the GPF itself."""
        return self.gpf is not None and eui in self._gpf_euis()

    def _gpf_euis(self):
        out = []
        for name in ("gsme_eui", "eui"):
            eui = getattr(self.gpf, name, None)
            if eui is not None:
                out.append(bytes(eui))
        return out

    def _send(self, eui, frame):
        for part in T.segments(frame):
            self.han_send(eui, part)

    def _remember(self, device, message, now):
        if len(self.outstanding) >= self.max_outstanding:
            oldest = None
            for key in self.outstanding:
                entry = (self.outstanding[key], key)
                if oldest is None or entry < oldest:
                    oldest = entry
            del self.outstanding[oldest[1]]
        self.outstanding[(device, bytes(message.originator),
                          message.originator_counter)] = now

    def _expire(self, now):
        for key in list(self.outstanding):
            if now - self.outstanding[key] > self.answer_window:
                del self.outstanding[key]

    # -- HAN -----------------------------------------------------------------------------
    def receive_han(self, eui, frame, now):
        eui = bytes(eui)
        key = eui_text(eui)
        if key not in self.device_log:
            return self._drop("HAN frame from a device not in the log")
        to_gpf = self.gpf is not None and eui == getattr(self.gpf, "gsme_eui", None)
        if to_gpf:
            for answer in self._call(self.gpf.receive_tunnel, bytes(frame), now):
                self._send(eui, answer)
        reassembler = self._reassemblers.get(key)
        if reassembler is None:
            reassembler = T.Reassembler()
            self._reassemblers[key] = reassembler
        try:
            got = reassembler.feed(frame, now)
        except T.TunnelError:
            return self._drop("bad tunnel frame")
        if got is None:
            return []
        self._expire(now)
        kind, _, payload = got
        if kind == T.GET and not to_gpf:
            self._send(eui, T.get_response(0))
        if kind != T.PUT:
            return []
        return self._upstream(eui, payload, (eui,))

    def _from_gpf(self, answers, now):
        out = []
        euis = self._gpf_euis()
        for answer in answers:
            out.extend(self._upstream(None, answer, euis))
        return out

    def _upstream(self, sender, payload, allowed):
        """[payload] when it may go up the WAN, else [] (and the reason counted)."""
        try:
            message = parse(payload)
        except Exception:
            return self._drop("malformed answer")
        origin = bytes(message.originator)
        if origin not in allowed:
            return self._drop("answer not from its sender")
        if message.cra_flag == CRA_RESPONSE:
            key = (origin, bytes(message.recipient), message.originator_counter)
            if key not in self.outstanding:
                return self._drop("answer to nothing outstanding")
            del self.outstanding[key]
            return [bytes(payload)]
        if message.cra_flag == CRA_ALERT:
            seen = [eui_text(origin), message.originator_counter]
            if seen in self.recent_alerts:
                return self._drop("repeated alert")
            self.recent_alerts.append(seen)
            while len(self.recent_alerts) > MAX_RECENT_ALERTS:
                self.recent_alerts.pop(0)
            return [bytes(payload)]
        return self._drop("command from the HAN")

    def _call(self, fn, data, now):
        try:
            return list(fn(data, now) or [])
        except Exception:           # a device port never raises; the hub survives one that does
            return self._drop("device port raised")

    def _drop(self, reason):
        self.stats[reason] = self.stats.get(reason, 0) + 1
        return []

    # -- commands to the hub itself --------------------------------------------------------
    def _own(self, message, now):
        try:
            self.security.accept_command(message)
        except GbcsRefusal as refusal:
            return self._alert(refusal.alert_code, message.originator, now)
        code = message.message_code
        if code in codes.CS02B_CODES:
            return self._credentials(message, now)
        try:
            request = A.decode_request(message.payload)
        except A.AccessError:
            return self._alert(codes.ALERT_INTEGRITY_CHECK_FAILED, message.originator, now)
        if (request.long_invoke_id_and_priority
                != A.gbcs_long_invoke_id(message.originator_counter)
                or len(request.data) != len(request.specifications)):
            return self._alert(codes.ALERT_INTEGRITY_CHECK_FAILED, message.originator, now)
        if not _fits(code, request):
            data, results = A.refused_all(request, R.READ_WRITE_DENIED, R.ACTION_READ_WRITE_DENIED)
        elif len(request.date_time):
            # future-dated execution is not supported by this hub: nothing is scheduled
            data, results = A.refused_all(request, R.TEMPORARY_FAILURE, R.ACTION_TEMPORARY_FAILURE)
        else:
            try:
                _precheck(request)
                data, results = self._execute(request)
            except _Refused as refused:
                data, results = A.refused_at(request, refused.index, refused.code)
        response = A.AccessResponse(A.gbcs_long_invoke_id(message.originator_counter), b"",
                                    data, results)
        try:
            return [self.security.respond(message, response.encode(), None)]
        except GbcsRefusal:
            return []

    def _credentials(self, message, now):
        try:
            payload = self.security.update_credentials(message)
            return [self.security.respond(message, payload, cdt.datetime_bytes(now))]
        except GbcsRefusal as refusal:
            return self._alert(refusal.alert_code, message.originator, now)

    def _alert(self, alert_code, recipient, now):
        if alert_code is None:
            return []
        try:
            return [self.security.dlms_alert(alert_code, recipient, cdt.datetime_bytes(now))]
        except GbcsRefusal:
            return []

    def _execute(self, request):
        data = []
        results = []
        failed = False
        for i in range(len(request.specifications)):
            spec = request.specifications[i]
            kind = A.RESPONSE_KIND[spec.kind]
            data.append((axdr.NULL_DATA, None))
            if failed:
                results.append(A.ResponseSpec(kind, R.OTHER_REASON))
                continue
            code = self._one(_key(spec), request.data[i])
            results.append(A.ResponseSpec(kind, code))
            failed = code != R.SUCCESS
        return data, results

    def _one(self, key, value):
        if key == _REGISTER:
            items = value[1]
            eui = bytes(items[0][1])
            if eui == self.eui or eui in _NO_EUI:
                return R.ACTION_OTHER_REASON
            if not self.knows(eui) and len(self.device_log) >= self.max_devices:
                return R.ACTION_TEMPORARY_FAILURE
            code = bytes(items[2][1]) if len(items) > 2 else b""
            extra = items[3][1] if len(items) > 3 else 0
            self.add_device(eui, items[1][1], code, extra)
            return R.ACTION_SUCCESS
        if key == _UNREGISTER:
            if not self.remove_device(bytes(value[1])):
                return R.ACTION_HARDWARE_FAULT
            return R.ACTION_SUCCESS
        if key == _SET_TIMEOUT:
            self.join_timeout = value[1]
        else:
            self.joining = bool(value[1])
        return R.SUCCESS

    # -- persistence -----------------------------------------------------------------------
    def state(self):
        log = {}
        for key in self.device_log:
            entry = self.device_log[key]
            log[key] = {"type": entry["type"], "install_code": entry["install_code"],
                        "extra": entry["extra"]}
        outstanding = []
        for key in self.outstanding:
            outstanding.append([eui_text(key[0]), eui_text(key[1]), key[2],
                                self.outstanding[key]])
        alerts = []
        for seen in self.recent_alerts:
            alerts.append([seen[0], seen[1]])
        return {"eui": eui_text(self.eui), "device_log": log, "joining": self.joining,
                "join_timeout": self.join_timeout, "outstanding": outstanding,
                "recent_alerts": alerts}

    def load_state(self, state):
        self.device_log = {}
        for key in state.get("device_log", {}):
            entry = state["device_log"][key]
            self.device_log[key.lower()] = {"type": int(entry["type"]),
                                            "install_code": entry.get("install_code", ""),
                                            "extra": entry.get("extra", 0)}
        self.joining = bool(state.get("joining", False))
        self.join_timeout = int(state.get("join_timeout", 0))
        self.outstanding = {}
        for item in state.get("outstanding", ()):
            self.outstanding[(from_hex(item[0]), from_hex(item[1]), int(item[2]))] = item[3]
        self.recent_alerts = []
        for item in state.get("recent_alerts", ()):
            self.recent_alerts.append([item[0], int(item[1])])
        self._reassemblers = {}

    @classmethod
    def restore(cls, state, security, han_send, gpf=None, eui=None):
        hub = cls(eui if eui is not None else from_hex(state["eui"]), security,
                  han_send, gpf)
        hub.load_state(state)
        return hub


# -- ACCESS on ZigBee network control ------------------------------------------------------

def _key(spec):
    d = spec.descriptor
    index = d.method_id if spec.kind == A.ACTION else d.attribute_id
    return (spec.kind, d.class_id, bytes(d.instance_id), index)


def _fits(code, request):
    keys = [_key(s) for s in request.specifications]
    if code == codes.CCS02:
        return keys == [_UNREGISTER]
    if code != codes.CCS01 or not keys or keys[0] != _REGISTER:
        return False
    seen = []
    for key in keys:
        if key not in (_REGISTER, _SET_TIMEOUT, _SET_JOINING) or key in seen:
            return False
        seen.append(key)
    return True


def _precheck(request):
    for i in range(len(request.specifications)):
        key = _key(request.specifications[i])
        value = request.data[i]
        if key == _REGISTER and not _register_data(value):
            raise _Refused(i, R.ACTION_TYPE_UNMATCHED)
        if key == _UNREGISTER and not _eui_data(value):
            raise _Refused(i, R.ACTION_TYPE_UNMATCHED)
        if key == _SET_TIMEOUT and value[0] != axdr.LONG_UNSIGNED:
            raise _Refused(i, R.TYPE_UNMATCHED)
        if key == _SET_JOINING and value[0] != axdr.BOOLEAN:
            raise _Refused(i, R.TYPE_UNMATCHED)


def _eui_data(value):
    return value[0] == axdr.OCTET_STRING and len(value[1]) == 8


def _register_data(value):
    if value[0] != axdr.STRUCTURE or not 2 <= len(value[1]) <= 4:
        return False
    items = value[1]
    if not _eui_data(items[0]) or items[1][0] != axdr.ENUM:
        return False
    if len(items) > 2 and (items[2][0] != axdr.OCTET_STRING
                           or len(items[2][1]) > MAX_INSTALL_CODE):
        return False
    return len(items) < 4 or items[3][0] == axdr.ENUM

