"""The ESME's GBCS port: GBCS commands in, protected responses and alerts out.

    gbcs = EsmeGbcs(esme, security, crypto)      # adds the GB objects to the ESME
    out = gbcs.receive_gbcs(data, now)           # list of bytes: responses and alerts

docs/GBCS_INTERFACES.md section 4. Never raises. In order:
1. the envelope is parsed (`firmware.gbcs.envelope`); a message that does not parse is
   dropped: nothing in it can be trusted, not even whom to answer;
2. `security.accept_command` checks recipient, role, counter, signature and MAC; a
   refusal raises its alert (to the originator when it is a known remote party, else
   to the ACB) or stays silent, and changes nothing but the alert counter;
3. the payload must be a DLMS ACCESS request (`firmware.dlms.access`) whose
   long-invoke-id carries the command's counter (GBCS 7.2.x); otherwise alert 0x8F1E
   (integrity check of content or format failed);
4. the request must be the shape of its use case (the message code): the objects,
   attributes and methods that use case touches and nothing else, so a MAC-only read
   cannot carry a critical action. A request of another shape is answered with
   read-write-denied for every specification and changes nothing;
5. each use case's parameters are checked before anything runs; a request that fails
   a check is answered with the failing specification's result and other-reason for
   the rest, and changes nothing; then the specifications run in order, break-on-error
   (the 0x20 of GBCS's long-invoke-id), as the RTDS ERROR responses show;
6. the ACCESS response (`DA`) is protected by `security.respond` (signed for critical
   use cases, MAC'd otherwise).

Use cases (message code -> what the ACCESS request may do, RTDS 4.5.0 shapes):
  ECS17b  ACTION Data protection 0.0.43.2.8.255 m1 -> GB import registers (encrypted)
  ECS22b  ACTION Data protection 0.0.43.2.7.255 m1 -> HH profile (encrypted)
  ECS21a  ACTION Data protection 0.0.43.2.5.255 m1 -> daily read log (encrypted)
  ECS70   SET Clock attr 9, ACTION m5 preset_adjusting_time, ACTION m4, GET attr 2, 4
  ECS42/43/44  ACTION Script table 0.0.10.0.106.255 m1 (the profile's enable/disable/arm id)
  ECS45   GET Disconnect control 0.0.96.3.10.255 attr 3
  CS01a   ACTION Token gateway 0.0.19.40.0.255 m1 (20-digit UTRN)
  ECS04b  ACTION Credit 0.0.19.10.{0,1,2}.255 m2 set_amount_to_value
  CS02b   (0x0100-0x0109) ASN.1, not ACCESS: `security.update_credentials`, answered with
          its response (signed) or the refusal's alert; a future-dated one runs when
          `credentials_due(now)` finds it due and raises the 0x00CB alert
Failed top-ups also raise the UTRN alert: 0x8F51 duplicate (used or too old), 0x8F63
not authentic (format or authentication).

GB object views (added by `add_gbcs_objects`). RTDS names the objects the DCC reads
through Data protection; they are views of the ESME's own registers and profiles:
- Data 0.0.94.44.34.10: {active import Wh, its scaler-unit, reactive import varh, its
  scaler-unit[, secondary element active import Wh]} (RTDS ECS17b plaintext); the load
  model has no reactive part (unity power factor), so reactive import reads 0;
- Profile 0.0.99.1.0.255: the HH profile as compact-array {uint32 ZigBee UTC (seconds
  since 2000-01-01), uint32 Wh} (RTDS ECS22b), stamped with each interval's end;
- Profile 0.0.98.1.9.255: the daily read log as compact-array {ZigBee UTC, total import,
  48 TOU registers, 4 x 8 block registers} (RTDS ECS21a layout); the ESME's tariff has 4
  TOU rates and no block tariff, so the others read 0.
A by-date restriction selects the entries whose capture time t has from <= t <= to
(Blue Book range semantics).

Clock (ECS70). RTDS sends preset_time fully unspecified with a 60 s validity window.
UNCONFIRMED against GBCS text: with an unspecified preset time the ESME keeps a clock
that lies inside the window and otherwise sets it to the window's midpoint; a fully
specified preset time follows the Blue Book (adjust inside the validity interval).
"""

from firmware.cosem.base import ActionError, Context, CosemObject, DataAccessError
from firmware.cosem.data_protection import DataProtection
from firmware.cosem.logical_device import AccessRights
from firmware.cosem.prepayment import (Account, Charge, Credit, CREDIT_EMERGENCY,
                                       CREDIT_TOKEN, PAYMENT_MODE_CREDIT)
from firmware.cosem.token_gateway import (AUTHENTICATION_FAILURE, FORMAT_FAILURE,
                                          TokenGateway, TokenRefused, VALIDATION_FAILURE)
from firmware.devices import profile as P
from firmware.dlms import access as A
from firmware.dlms import axdr
from firmware.dlms import cosem_datetime as cdt
from firmware.dlms import obis as O
from firmware.dlms import results as R
from firmware.dlms.apdu import DataNotification
from firmware.gbcs import codes
from firmware.gbcs import security as S
from firmware.gbcs import utrn as U
from firmware.gbcs.anchors import KA
from firmware.gbcs.device_security import GbcsRefusal, pending_credentials_alert
from firmware.gbcs.envelope import GbcsError, parse

ZIGBEE_EPOCH = 946684800            # 2000-01-01T00:00:00Z in seconds since 1970
MANAGEMENT_SAP = 1

# GB logical names (RTDS 4.5.0 payloads)
GB_IMPORT_REGISTERS = O.obis("0.0.94.44.34.10")
GB_HH_PROFILE = O.obis("0.0.99.1.0.255")
GB_DAILY_LOG = O.obis("0.0.98.1.9.255")
DP_REGISTERS = O.obis("0.0.43.2.8.255")
DP_HH_PROFILE = O.obis("0.0.43.2.7.255")
DP_DAILY_LOG = O.obis("0.0.43.2.5.255")
ACCOUNT = O.obis("0.0.19.0.0.255")
CREDITS = (O.obis("0.0.19.10.0.255"), O.obis("0.0.19.10.1.255"), O.obis("0.0.19.10.2.255"))
CHARGE = O.obis("0.0.19.20.0.255")
TOKEN_GATEWAY = O.obis("0.0.19.40.0.255")

UNIT_WH = 30
UNIT_VARH = 32
TOU_REGISTERS = 48
BLOCKS = 4
BLOCK_REGISTERS = 8

CLASS_DATA = 1
CLASS_PROFILE = 7
CLASS_CLOCK = 8
CLASS_SCRIPT = 9
CLASS_DATA_PROTECTION = 30
CLASS_DISCONNECT = 70
CLASS_CREDIT = 112
CLASS_TOKEN_GATEWAY = 115


def zigbee_utc(seconds):
    return seconds - ZIGBEE_EPOCH


# -- the GB object views -----------------------------------------------------------------

class GbImportRegisters(CosemObject):
    """Data (class 1) 0.0.94.44.34.10: the ECS17b register structure, read live."""

    class_id = CLASS_DATA
    attribute_count = 2

    def __init__(self, esme):
        CosemObject.__init__(self, GB_IMPORT_REGISTERS)
        self.esme = esme

    def get_attribute(self, attribute, ctx, selector, parameters):
        esme = self.esme
        register = esme.import_register
        values = [register.value, (axdr.STRUCTURE, [(axdr.INTEGER, register.scaler),
                                                    (axdr.ENUM, register.unit)]),
                  (axdr.DOUBLE_LONG_UNSIGNED, 0),
                  (axdr.STRUCTURE, [(axdr.INTEGER, 0), (axdr.ENUM, UNIT_VARH)])]
        if esme.secondary_register is not None:
            values.append(esme.secondary_register.value)
        return (axdr.STRUCTURE, values)


class GbProfileView(CosemObject):
    """Profile generic (class 7) in the GB layout over one of the ESME's profiles.

    Only the buffer (2, by range on capture time, selector 1, or by entry, selector 2),
    capture period (4) and entry counts (7, 8) are served; the rest is the ESME profile's.
    """

    class_id = CLASS_PROFILE
    version = 1
    attribute_count = 8
    method_count = 2

    def __init__(self, logical_name, profile, row, description):
        CosemObject.__init__(self, logical_name)
        self.profile = profile
        self.row = row                  # row(seconds, decoded entry values) -> structure
        self.description = description

    def selectors(self, attribute):
        return (1, 2) if attribute == 2 else ()

    def get_attribute(self, attribute, ctx, selector, parameters):
        if attribute == 2:
            return self._buffer(selector, parameters)
        if attribute == 7:
            return (axdr.DOUBLE_LONG_UNSIGNED, self.profile.ring.count)
        if attribute == 8:
            return (axdr.DOUBLE_LONG_UNSIGNED, self.profile.ring.capacity)
        if attribute == 4:
            return (axdr.DOUBLE_LONG_UNSIGNED, self.profile.capture_period)
        return self.profile.get(attribute, ctx)

    def _buffer(self, selector, parameters):
        ring = self.profile.ring
        if selector == 1:
            low, high = _range_bounds(parameters)
            if ring.monotonic:
                stored = range(ring.first_at_or_after(low), ring.first_at_or_after(high + 1))
            else:
                stored = [k for k in range(ring.count) if low <= ring.time(k) <= high]
        elif selector == 2:
            first, last = _entry_bounds(parameters, ring.count)
            stored = range(first, last)
        else:
            stored = range(ring.count)
        rows = []
        for k in stored:
            rows.append(self.row(ring.time(k), axdr.decode_all(ring.entry(k))[1]))
        return (axdr.COMPACT_ARRAY, (self.description, rows))


def _selection_items(parameters, count):
    if (not isinstance(parameters, tuple) or parameters[0] != axdr.STRUCTURE
            or len(parameters[1]) != count):
        raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "malformed access parameters")
    return parameters[1]


def _range_bounds(parameters):
    """from_value and to_value of a range_descriptor, as seconds (both inclusive)."""
    items = _selection_items(parameters, 4)
    bounds = []
    for item in (items[1], items[2]):
        if item[0] != axdr.OCTET_STRING or len(item[1]) != 12:
            raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "range bounds are date-times")
        try:
            bounds.append(cdt.datetime_seconds(bytes(item[1])))
        except ValueError:
            raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "dates must be fully specified")
    return bounds[0], bounds[1]


def _entry_bounds(parameters, count):
    """0-based [first, last) of an entry_descriptor (to_entry 0: the last entry)."""
    items = _selection_items(parameters, 4)
    if items[0][0] != axdr.DOUBLE_LONG_UNSIGNED or items[1][0] != axdr.DOUBLE_LONG_UNSIGNED:
        raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "entries are double-long-unsigned")
    first = max(items[0][1], 1)
    last = items[1][1]
    if last == 0 or last > count:
        last = count
    return first - 1, max(last, first - 1)


def _u32(n):
    return (axdr.DOUBLE_LONG_UNSIGNED, n & 0xFFFFFFFF)


def _hh_row(seconds, values):
    return (axdr.STRUCTURE, [_u32(zigbee_utc(seconds)), values[1]])


HH_DESCRIPTION = (axdr.STRUCTURE, [axdr.DOUBLE_LONG_UNSIGNED, axdr.DOUBLE_LONG_UNSIGNED])
DAILY_DESCRIPTION = (axdr.STRUCTURE, [
    axdr.DOUBLE_LONG_UNSIGNED, axdr.DOUBLE_LONG_UNSIGNED,
    (axdr.ARRAY, TOU_REGISTERS, axdr.DOUBLE_LONG_UNSIGNED),
    (axdr.ARRAY, BLOCK_REGISTERS, axdr.DOUBLE_LONG_UNSIGNED),
    (axdr.ARRAY, BLOCK_REGISTERS, axdr.DOUBLE_LONG_UNSIGNED),
    (axdr.ARRAY, BLOCK_REGISTERS, axdr.DOUBLE_LONG_UNSIGNED),
    (axdr.ARRAY, BLOCK_REGISTERS, axdr.DOUBLE_LONG_UNSIGNED)])


def _daily_row(seconds, values):
    # ESME daily log entry: {time, total, rate 1..4[, secondary]}
    tou = [values[2], values[3], values[4], values[5]]
    while len(tou) < TOU_REGISTERS:
        tou.append(_u32(0))
    row = [_u32(zigbee_utc(seconds)), values[1], (axdr.ARRAY, tou)]
    for _ in range(BLOCKS):
        row.append((axdr.ARRAY, [_u32(0)] * BLOCK_REGISTERS))
    return (axdr.STRUCTURE, row)


class GbcsObjects:
    """The objects `add_gbcs_objects` added, by name."""

    def __init__(self):
        self.registers = None
        self.hh_profile = None
        self.daily_log = None
        self.protection = {}
        self.account = None
        self.credits = []
        self.charge = None
        self.token_gateway = None


def add_gbcs_objects(esme, security, crypto):
    """Add the GB objects to `esme` (once; later calls return the same holder)."""
    existing = getattr(esme, "gbcs_objects", None)
    if existing is not None:
        return existing
    ld = esme.logical_device
    gb = GbcsObjects()
    gb.registers = GbImportRegisters(esme)
    gb.hh_profile = GbProfileView(GB_HH_PROFILE, esme.hh_profile, _hh_row, HH_DESCRIPTION)
    gb.daily_log = GbProfileView(GB_DAILY_LOG, esme.daily_log, _daily_row, DAILY_DESCRIPTION)
    key_for = _key_for(security, crypto)
    for dp_name, target in ((DP_REGISTERS, gb.registers), (DP_HH_PROFILE, gb.hh_profile),
                            (DP_DAILY_LOG, gb.daily_log)):
        gb.protection[dp_name] = DataProtection(
            dp_name, ld.find, crypto, key_for, security.own_eui,
            [(target.class_id, target.logical_name)])
    gb.credits = [Credit(CREDITS[0], CREDIT_TOKEN, priority=1),
                  Credit(CREDITS[1], CREDIT_EMERGENCY, priority=2, status=1),
                  Credit(CREDITS[2], CREDIT_TOKEN, priority=3, status=0)]
    gb.charge = Charge(CHARGE)
    gb.account = Account(ACCOUNT, gb.credits, [gb.charge], PAYMENT_MODE_CREDIT)
    gb.token_gateway = TokenGateway(TOKEN_GATEWAY, _utrn_verifier(security, crypto),
                                    gb.credits[0], floor=_top_up_floor(security))
    objects = [gb.registers, gb.hh_profile, gb.daily_log]
    for name in (DP_REGISTERS, DP_HH_PROFILE, DP_DAILY_LOG):
        objects.append(gb.protection[name])
    objects.extend(gb.credits)
    objects.extend([gb.charge, gb.account, gb.token_gateway])
    for obj in objects:
        # the management client may read them over DLMS; GBCS commands reach them here
        ld.add(obj, {MANAGEMENT_SAP: AccessRights([1] * obj.attribute_count,
                                                  [0] * obj.method_count)})
    esme.gbcs_objects = gb
    return gb


def _key_for(security, crypto):
    """Data protection key: KDF mode 4 between my KA key and the requester's KA anchor;
    only a party that holds a management cell may ask, and only for itself."""
    def key_for(requester, recipient, counter, ctx):
        command = getattr(ctx, "session", None)
        if command is not None and bytes(requester) not in _requesters(command):
            raise ActionError(R.ACTION_READ_WRITE_DENIED, "encryption for another party")
        peer = _ka_anchor(security, requester)
        if peer is None:
            return None
        shared = crypto.ecdh(security.own_ka_private, peer)
        return S.derive_key(crypto, shared, security.own_eui, 4, counter, bytes(requester))
    return key_for


def _requesters(command):
    out = [bytes(command.originator)]
    if command.supplementary_remote_party is not None:
        out.append(bytes(command.supplementary_remote_party))
    return out


def _ka_anchor(security, eui):
    eui = bytes(eui)
    for cell in security.anchors.find(eui):
        key = cell.key(KA)
        if cell.cell == codes.CELL_MANAGEMENT and key is not None and key.eui == eui:
            return key.public
    return None


def _utrn_verifier(security, crypto):
    """utrn.verify bound to the supplier's prepayment key agreement (GBCS 14)."""
    def verify(token, record):
        cell = security.anchors.get(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT)
        key = None if cell is None else cell.key(KA)
        if key is None:
            raise U.UtrnError("no supplier prepayment key-agreement anchor")
        shared = crypto.ecdh(security.own_ka_private, key.public)
        return U.verify(crypto, shared, key.eui, security.own_eui, token, record)
    return verify


def _top_up_floor(security):
    def floor():
        cell = security.anchors.get(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT)
        key = None if cell is None else cell.key(KA)
        return None if key is None else security.specialist_floor(key.eui)
    return floor


# -- the use cases -------------------------------------------------------------------------

def _spec_key(spec):
    d = spec.descriptor
    index = d.method_id if spec.kind == A.ACTION else d.attribute_id
    return (spec.kind, d.class_id, d.instance_id, index)


def _shapes(esme):
    """message code -> (allowed spec keys, exact: every spec in order, once)."""
    clock = esme.clock_object.logical_name
    scripts = esme.supply_scripts.logical_name
    disconnect = esme.disconnect.logical_name
    dp_read = (A.ACTION, CLASS_DATA_PROTECTION)
    return {
        codes.ECS17B: ([dp_read + (DP_REGISTERS, 1)], True),
        codes.ECS22B: ([dp_read + (DP_HH_PROFILE, 1)], True),
        codes.ECS21A: ([dp_read + (DP_DAILY_LOG, 1)], True),
        codes.ECS45: ([(A.GET, CLASS_DISCONNECT, disconnect, 3)], True),
        codes.ECS42: ([(A.ACTION, CLASS_SCRIPT, scripts, 1)], True),
        codes.ECS43: ([(A.ACTION, CLASS_SCRIPT, scripts, 1)], True),
        codes.ECS44: ([(A.ACTION, CLASS_SCRIPT, scripts, 1)], True),
        codes.CS01A: ([(A.ACTION, CLASS_TOKEN_GATEWAY, TOKEN_GATEWAY, 1)], True),
        codes.ECS04B: ([(A.ACTION, CLASS_CREDIT, name, 2) for name in CREDITS], False),
        codes.ECS70: ([(A.SET, CLASS_CLOCK, clock, 9), (A.ACTION, CLASS_CLOCK, clock, 5),
                       (A.ACTION, CLASS_CLOCK, clock, 4), (A.GET, CLASS_CLOCK, clock, 2),
                       (A.GET, CLASS_CLOCK, clock, 4)], False),
    }


SUPPLY_OPERATION = {codes.ECS42: "enable", codes.ECS43: "disable", codes.ECS44: "arm"}


class _Refused(Exception):
    """A specification that fails its use case's check: (index, result code)."""

    def __init__(self, index, code):
        super().__init__(index, code)
        self.index = index
        self.code = code


class EsmeGbcs:
    def __init__(self, esme, security, crypto):
        self.esme = esme
        self.security = security
        self.crypto = crypto
        self.objects = add_gbcs_objects(esme, security, crypto)
        self.shapes = _shapes(esme)
        self.supply_scripts = {}
        for operation in ("enable", "disable", "arm"):
            script_id = P.integer(esme.profile, "supply.scripts." + operation, 1, 0xFFFF)
            self.supply_scripts[operation] = script_id
        self.clock_window = None       # GB ECS70: (start, end) of an unspecified preset

    # -- the port -----------------------------------------------------------------------

    def receive_gbcs(self, data, now):
        try:
            message = parse(data)
        except (GbcsError, TypeError, ValueError):
            return []
        try:
            self.security.accept_command(message)
        except GbcsRefusal as refusal:
            return self._alert(refusal.alert_code, self._alert_recipient(message), now)
        try:
            if message.message_code in codes.CS02B_CODES:
                return self._credentials(message, now)
            return self._run(message, now)
        except GbcsRefusal:
            return []
        except Exception:
            # the port never raises (GBCS_INTERFACES.md 4); every expected failure has its
            # answer above, this only keeps a bug from taking the device loop down
            return []

    def _credentials(self, message, now):
        """CS02b (GBCS 13.3.2.4): an ASN.1 payload, not ACCESS. `update_credentials` checks
        the originator's authority and changes nothing when it refuses (its alert then
        goes to the originator, as for any refused command)."""
        try:
            payload = self.security.update_credentials(message)
        except GbcsRefusal as refusal:
            return self._alert(refusal.alert_code, message.originator, now)
        return [self.security.respond(message, payload, cdt.datetime_bytes(now))]

    def credentials_due(self, now):
        """Run a future-dated CS02b whose execution date-time has come: its alert (message
        code 0x00CB, 0x8F66 actioned / 0x8F67 not) to the command's originator, else []."""
        return pending_credentials_alert(self.security, now)

    def _alert_recipient(self, message):
        """A refused command's originator when it is a known remote party; otherwise
        (an unknown or forged originator) the ACB, never an address the sender chose."""
        anchors = self.security.anchors
        if anchors.find(message.originator):
            return bytes(message.originator)
        acb = anchors.get(codes.ROLE_ACB)
        return None if acb is None else acb.eui

    def _alert(self, alert_code, recipient, now):
        if alert_code is None or recipient is None:
            return []
        counter = self.security.next_alert_counter()
        stamp = cdt.datetime_bytes(now)
        body = (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, alert_code), (axdr.OCTET_STRING, stamp)])
        payload = DataNotification(A.gbcs_long_invoke_id(counter), b"", body).encode()
        try:
            return [self.security.alert(alert_code, payload, recipient, counter, stamp)]
        except GbcsRefusal:
            return []

    def _run(self, message, now):
        try:
            request = A.decode_request(message.payload)
        except A.AccessError:
            return self._alert(codes.ALERT_INTEGRITY_CHECK_FAILED, message.originator, now)
        invoke = A.gbcs_long_invoke_id(message.originator_counter)
        if (request.long_invoke_id_and_priority != invoke
                or len(request.data) != len(request.specifications)):
            return self._alert(codes.ALERT_INTEGRITY_CHECK_FAILED, message.originator, now)
        self.esme.advance(now)
        ctx = Context(now, MANAGEMENT_SAP, message)
        alerts = []
        if not self._fits_shape(message.message_code, request):
            data, results = A.refused_all(request, R.READ_WRITE_DENIED, R.ACTION_READ_WRITE_DENIED)
        elif len(request.date_time):
            # future-dated execution is not supported by this ESME: nothing is scheduled
            data, results = A.refused_all(request, R.TEMPORARY_FAILURE, R.ACTION_TEMPORARY_FAILURE)
        else:
            try:
                self._precheck(message.message_code, request)
                data, results = self._execute(message.message_code, request, ctx)
            except _Refused as refused:
                data, results = A.refused_at(request, refused.index, refused.code)
            except TokenRefused as refused:
                data, results = A.refused_at(request, 0, refused.code)
                alerts = self._alert(_utrn_alert(refused.status_code), message.originator, now)
        response = A.AccessResponse(invoke, b"", data, results)
        reply = self.security.respond(message, response.encode(), cdt.datetime_bytes(now))
        return [reply] + alerts

    def _fits_shape(self, message_code, request):
        shape = self.shapes.get(message_code)
        if shape is None or not request.specifications:
            return False
        allowed, exact = shape
        keys = [_spec_key(s) for s in request.specifications]
        if exact:
            return keys == allowed
        seen = []
        for key in keys:
            if key not in allowed or key in seen:
                return False
            seen.append(key)
        return True

    # -- checks before anything runs ----------------------------------------------------------

    def _precheck(self, code, request):
        data = request.data
        specs = request.specifications
        if code in SUPPLY_OPERATION:
            wanted = self.supply_scripts[SUPPLY_OPERATION[code]]
            if data[0] != (axdr.LONG_UNSIGNED, wanted):
                raise _Refused(0, R.ACTION_OTHER_REASON)
        elif code == codes.CS01A:
            if data[0][0] != axdr.OCTET_STRING or len(data[0][1]) != U.UTRN_DIGITS:
                raise _Refused(0, R.ACTION_TYPE_UNMATCHED)
        elif code == codes.ECS04B:
            for i in range(len(specs)):
                if data[i][0] != axdr.DOUBLE_LONG:
                    raise _Refused(i, R.ACTION_TYPE_UNMATCHED)
        elif code == codes.ECS70:
            self._precheck_clock(specs, data)

    def _precheck_clock(self, specs, data):
        for i in range(len(specs)):
            key = _spec_key(specs[i])
            value = data[i]
            if key[0] == A.SET:
                if value[0] != axdr.ENUM or value[1] > 5:
                    raise _Refused(i, R.TYPE_UNMATCHED)
            elif key[0] == A.ACTION and key[3] == 5:
                if _preset_times(value) is None:
                    raise _Refused(i, R.ACTION_TYPE_UNMATCHED)
            elif key[0] == A.ACTION and value != (axdr.INTEGER, 0):
                raise _Refused(i, R.ACTION_TYPE_UNMATCHED)

    # -- running the specifications --------------------------------------------------------

    def _execute(self, code, request, ctx):
        specs = request.specifications
        data = []
        results = []
        failed = False
        for i in range(len(specs)):
            spec = specs[i]
            kind = A.RESPONSE_KIND[spec.kind]
            if failed:
                data.append((axdr.NULL_DATA, None))
                results.append(A.ResponseSpec(kind, R.OTHER_REASON))
                continue
            try:
                value = self._one(code, spec, request.data[i], ctx)
                data.append(value if value is not None else (axdr.NULL_DATA, None))
                results.append(A.ResponseSpec(kind, R.SUCCESS))
            except TokenRefused:
                raise
            except (DataAccessError, ActionError) as e:
                failed = True
                data.append((axdr.NULL_DATA, None))
                results.append(A.ResponseSpec(kind, e.code))
        return data, results

    def _one(self, code, spec, value, ctx):
        d = spec.descriptor
        obj = self.esme.logical_device.find(d.class_id, d.instance_id)
        if obj is None:
            raise DataAccessError(R.OBJECT_UNDEFINED, "no such object")
        if spec.kind == A.GET:
            return obj.get(d.attribute_id, ctx)
        if spec.kind == A.SET:
            obj.set(d.attribute_id, value, ctx)
            return None
        if code == codes.ECS70 and d.class_id == CLASS_CLOCK and d.method_id in (4, 5):
            return self._gb_clock(obj, d.method_id, value, ctx)
        return obj.action(d.method_id, value, ctx)

    def _gb_clock(self, clock, method, value, ctx):
        if method == 5:
            times = _preset_times(value)
            if times[0] is not None:
                self.clock_window = None
                return clock.action(5, value, ctx)
            self.clock_window = (times[1], times[2])
            return None
        window = self.clock_window
        if window is None:
            return clock.action(4, value, ctx)
        self.clock_window = None
        if not window[0] <= ctx.now <= window[1]:
            target = (window[0] + window[1]) // 2
            clock.set(2, (axdr.OCTET_STRING, cdt.datetime_bytes(target)), ctx)
            ctx.now = target
        return None


def _preset_times(value):
    """(preset or None when unspecified, start, end) seconds, or None when malformed."""
    if value[0] != axdr.STRUCTURE or len(value[1]) != 3:
        return None
    raw = []
    for item in value[1]:
        if item[0] != axdr.OCTET_STRING or len(item[1]) != 12:
            return None
        raw.append(bytes(item[1]))
    try:
        start = cdt.datetime_seconds(raw[1])
        end = cdt.datetime_seconds(raw[2])
    except ValueError:
        return None
    if end < start:
        return None
    if raw[0][:9] == b"\xff" * 9:
        return (None, start, end)
    try:
        return (cdt.datetime_seconds(raw[0]), start, end)
    except ValueError:
        return None


def _utrn_alert(status_code):
    if status_code == VALIDATION_FAILURE:
        return codes.ALERT_DUPLICATE_UTRN
    if status_code in (FORMAT_FAILURE, AUTHENTICATION_FAILURE):
        return codes.ALERT_UTRN_NOT_AUTHENTIC
    return None
