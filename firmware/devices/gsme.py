"""The GSME: a battery gas meter that sleeps, wakes, polls its GPF and speaks GBZ.

    gsme = Gsme(profile, clock, seed, security)
    frames = gsme.wake(now)                  # [GET]: the GB-HRGP poll of the hub's GPF
    frames = gsme.receive_tunnel(data, now)  # GET-RESPONSE in -> PUT(s) [+ GET] out
    report = gsme.mirror_report(now)         # readings for the GPF mirror (JSON-safe)
    gsme.mirror_ack(ack)                     # the GPF's answer (its alert counter)
    out = gsme.receive_gbcs(data, now)       # GBCS_INTERFACES.md 4: responses + alerts
    state = gsme.state(); gsme.load_state(state)

docs/GBCS_INTERFACES.md 4 and 6. The GSME's radio is off while it sleeps: it wakes every
`sleep.wake_interval` seconds (profile; DOMAIN.md "Unconfirmed": default 1800), sends a
GET to the hub, executes the command of each GET-RESPONSE and answers it with a PUT,
polling again until the GPF says nothing remains, then sleeps; frames that arrive while
it sleeps are lost, as on air. Each wake and radio frame costs battery (`battery`).
The GPF offers a command again when its GET-RESPONSE or the GSME's PUT was lost
(gpf.py): a GET-RESPONSE carrying, byte for byte, the last command the GSME took from
that originator over the tunnel is answered with the PUTs it already sent for it
(kept per originator, `MAX_ANSWERED` originators, and saved in `state()`), not executed
again nor refused as a replay. Only the tunnel does this: a replay on the GBCS port
(`receive_gbcs`) is refused as before.

Use cases the GSME executes (the GBZ shapes of RTDS 4.5.0; one component each):
  GCS13a  Read Attributes, Metering 0x0302 0x0301 0x0300 0x0000 (any of the four)
          -> Read Attributes Response, encrypted (KDF mode 4 to the requester)
  GCS17   Metering GetSampledData (consumption delivered, HH) -> response, encrypted
  GCS33   Read Attributes, Metering 0x0205 (battery life, days) 0x0014 (supply status)
          -> Read Attributes Response, plain
  GCS32   Metering ChangeSupply proposed 0 (off): the valve closes
  GCS39   Metering ChangeSupply proposed 1 (armed): the valve arms; the consumer opens it
  CS01b   Prepayment ConsumerTopUp with a UTRN -> ConsumerTopUpResponse; the UTRN is
          checked (firmware/gbcs/utrn.py) against its own anti-replay record
  GCS28   set clock: ASN.1 {validity start, end} (GBCS 13.3.6; RTDS carries it in ASN.1,
          not ZCL) -> {device time, status}; inside the window the GSME takes the hub's
          time (`now`) and answers status 0, outside it keeps its clock and answers 2.
A command of another shape (a read carrying ChangeSupply, two components...) is answered
with a ZCL Default Response NOT_AUTHORIZED per component, a GBZ use case this GSME does
not implement (GCS01a tariffs...) with UNSUP_CLUSTER_COMMAND, and neither changes anything; a GBZ
payload that does not parse raises alert 0x8F1E; a command GBCS security refuses raises
its alert (GBZ alert payload) to a known originator or else the ACB, and changes nothing.
A refused top-up answers result 1 (invalid) or 2 (duplicate), value and credit -1 (RTDS
CS01b ERROR), and raises 0x8F63 / 0x8F51 as the ESME does.

Units (RTDS GCS13a/CS01b plaintexts): CurrentSummationDelivered in dm3 (Unit of Measure
m3, Multiplier 1, Divisor 1000); HH samples in dm3; credit and top-up values in 1/1000
of a penny (RTDS: a 1250 p top-up reads 1250000). Energy for prepayment follows
kWh = m3 x calorific value (MJ/m3) x volume correction / 3.6 (the GB gas billing rule).
"""

from firmware.devices import profile as P
from firmware.persist import from_hex, hex_text
from firmware.devices.load_model import month_index, seed_state, xorshift32
from firmware.dlms import cosem_datetime as cdt
from firmware.gbcs import asn1
from firmware.gbcs import codes
from firmware.gbcs import gbz
from firmware.gbcs import utrn as U
from firmware.gbcs.anchors import KA
from firmware.gbcs.device_security import GbcsRefusal, pending_credentials_alert
from firmware.gbcs.envelope import parse
from firmware.han import tunnel
from firmware.zcl import frame as Z
from firmware.zcl import se
from firmware.zcl.types import ZclError

ZIGBEE_EPOCH = 946684800            # 2000-01-01T00:00:00Z in seconds since 1970
INTERVAL = 1800
DAY = 86400
VALVE_OPEN = "open"
VALVE_CLOSED = "closed"
VALVE_ARMED = "armed"
VALVE_SUPPLY_STATUS = {VALVE_CLOSED: se.SUPPLY_OFF, VALVE_ARMED: se.SUPPLY_OFF_ARMED,
                       VALVE_OPEN: se.SUPPLY_ON}
PAYMENT_CREDIT = "credit"
PAYMENT_PREPAYMENT = "prepayment"
VALUE_PER_PENNY = 1000              # credit and top-up units per penny (RTDS CS01b)
TIME_RELIABLE = 0                   # GCS28 response time status (GBCS 13.3.6)
TIME_NOT_ADJUSTED = 2
MAX_ANSWERED = 8                    # originators whose last answered command is kept

DEFAULT_WAKE_INTERVAL = 1800
DEFAULT_AWAKE_WINDOW = 10           # seconds the radio stays on waiting for an answer
DEFAULT_HH_DEPTH = 395 * 48         # 13 months of half hours (boards: lower it)
DEFAULT_ANNUAL_M3 = 1100            # about 12 000 kWh, a GB household (Ofgem TDCV)
DEFAULT_CALORIFIC_KJ_M3 = 39500     # 39.5 MJ/m3
DEFAULT_CORRECTION_PPM = 1022640    # the GB volume correction factor 1.02264
DEFAULT_UNIT_PRICE = 6000           # 1/1000 p per kWh (6 p/kWh)
DEFAULT_BATTERY_UWH = 20000000      # battery capacity, micro-watt-hours (unconfirmed)
WAKE_COST_UWH = 40
FRAME_COST_UWH = 15
SLEEP_COST_UWH_PER_DAY = 600

# Gas demand: relative weight per half hour from 00:00 UTC (space heating peaks in the
# morning and evening, hot water through the day) and per month (January first; the
# months average 1000). Shaped after the GB gas demand profile, not copied from it.
GAS_SHAPE = (
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,          # 00:00-06:00
    120, 160, 150, 120, 90, 60, 40, 30, 30, 30, 30, 30,      # 06:00-12:00
    30, 30, 30, 30, 30, 30, 40, 50, 90, 120, 130, 130,       # 12:00-18:00
    120, 110, 100, 90, 80, 70, 60, 50, 30, 20, 15, 10,       # 18:00-24:00
)
GAS_MONTH = (1750, 1600, 1350, 1000, 700, 450, 380, 400, 550, 900, 1300, 1620)
_SHAPE_TOTAL = sum(GAS_SHAPE)

# message code -> (cluster, cluster specific, command id) its one component must carry
GBZ_SHAPES = {
    codes.GCS13A: (se.METERING, False, Z.READ_ATTRIBUTES),
    codes.GCS17: (se.METERING, True, se.GET_SAMPLED_DATA),
    codes.GCS33: (se.METERING, False, Z.READ_ATTRIBUTES),
    codes.GCS32: (se.METERING, True, se.CHANGE_SUPPLY),
    codes.GCS39: (se.METERING, True, se.CHANGE_SUPPLY),
    codes.CS01B: (se.PREPAYMENT, True, se.CONSUMER_TOP_UP),
}
READS = (codes.GCS13A, codes.GCS17, codes.GCS33)    # what the GPF answers from its mirror
PROPOSED_SUPPLY = {codes.GCS32: se.SUPPLY_OFF, codes.GCS39: se.SUPPLY_OFF_ARMED}
GCS13A_ATTRIBUTES = (se.DIVISOR, se.MULTIPLIER, se.UNIT_OF_MEASURE,
                     se.CURRENT_SUMMATION_DELIVERED)
GCS33_ATTRIBUTES = (se.REMAINING_BATTERY_LIFE_DAYS, se.SUPPLY_STATUS)
READ_ATTRIBUTES = {codes.GCS13A: GCS13A_ATTRIBUTES, codes.GCS33: GCS33_ATTRIBUTES}
ENCRYPTED_READS = (codes.GCS13A, codes.GCS17)   # RTDS: GCS33's answer travels in clear

# frame controls of the answers (RTDS): general/cluster, server to client, and whether
# the default response is disabled
FC_READ_RESPONSE = Z.FRAME_TYPE_GENERAL | Z.SERVER_TO_CLIENT | Z.DISABLE_DEFAULT_RESPONSE
FC_PLAIN_READ_RESPONSE = Z.FRAME_TYPE_GENERAL | Z.SERVER_TO_CLIENT
FC_SAMPLED_RESPONSE = Z.FRAME_TYPE_CLUSTER | Z.SERVER_TO_CLIENT | Z.DISABLE_DEFAULT_RESPONSE
FC_CLUSTER_RESPONSE = Z.FRAME_TYPE_CLUSTER | Z.SERVER_TO_CLIENT
FC_DEFAULT_RESPONSE = Z.FRAME_TYPE_GENERAL | Z.SERVER_TO_CLIENT


def zigbee_time(seconds):
    return seconds - ZIGBEE_EPOCH


def unix_time(zigbee_seconds):
    return zigbee_seconds + ZIGBEE_EPOCH


class GasModel:
    """Seeded, integer gas demand in dm3 per half hour (same numbers on every port)."""

    def __init__(self, annual_m3=DEFAULT_ANNUAL_M3, noise_permille=400, seed=0):
        self.annual_dm3 = annual_m3 * 1000
        self.noise = noise_permille
        self.seed = seed
        self.reset()

    def reset(self):
        self.rng = seed_state(self.seed)
        self.walk = 0

    def expected_dm3(self, start):
        slot = (start % DAY) // INTERVAL
        return (self.annual_dm3 * GAS_SHAPE[slot] * GAS_MONTH[month_index(start)]
                // (365 * _SHAPE_TOTAL * 1000))

    def next_interval(self, start):
        self.rng = xorshift32(self.rng)
        draw = self.rng % 2001 - 1000                   # -1000..1000
        self.walk = (self.walk * 3 + draw) // 4         # AR(1): busy hours cluster
        factor = 1000 + self.walk * self.noise // 1000
        value = self.expected_dm3(start) * factor // 1000
        return value if value > 0 else 0

    def state(self):
        return {"rng": self.rng, "walk": self.walk}

    def load_state(self, state):
        self.rng = int(state["rng"])
        self.walk = int(state["walk"])


# -- reading the registers and the profile (shared with the GPF's mirror) ----------------

def attribute_records(readings, attribute_ids):
    """Read Attributes Response records for the Metering attributes GCS13a reads."""
    values = {
        se.CURRENT_SUMMATION_DELIVERED: (0x25, readings["summation"]),   # uint48
        se.UNIT_OF_MEASURE: (0x30, se.UNIT_M3),                          # enum8
        se.MULTIPLIER: (0x22, 1),                                        # uint24
        se.DIVISOR: (0x22, 1000),                                        # uint24
        se.SUPPLY_STATUS: (0x30, readings["supply_status"]),             # enum8
    }
    days = readings.get("battery_days")
    if days is not None:
        values[se.REMAINING_BATTERY_LIFE_DAYS] = (0x21, min(days, 0xFFFF))  # uint16
    records = []
    for attribute_id in attribute_ids:
        got = values.get(attribute_id)
        if got is None:
            records.append((attribute_id, Z.UNSUPPORTED_ATTRIBUTE, None, None))
        else:
            records.append((attribute_id, Z.SUCCESS, got[0], got[1]))
    return records


def sampled_data(readings, request):
    """GetSampledDataResponse fields for a request, or None when nothing matches (ZCL
    NOT_FOUND). The first sample is the first half hour starting at or after the earliest
    sample time; samples are consecutive."""
    if request["sample_type"] != se.SAMPLE_CONSUMPTION_DELIVERED:
        return None
    hh = readings["hh"]
    first = readings["hh_start"]
    earliest = unix_time(request["earliest_sample_time"])
    if earliest <= first:
        index = 0
    else:
        index = (earliest - first + INTERVAL - 1) // INTERVAL
    count = request["number_of_samples"]
    if count == 0 or index >= len(hh):
        return None
    samples = hh[index:index + count]
    return {"sample_id": request["sample_id"],
            "sample_start_time": zigbee_time(first + index * INTERVAL),
            "sample_type": se.SAMPLE_CONSUMPTION_DELIVERED,
            "sample_request_interval": INTERVAL, "number_of_samples": len(samples),
            "samples": [s if s <= 0xFFFFFF else 0xFFFFFF for s in samples]}


# -- the GBCS side common to the GSME and the GPF ----------------------------------------

class _Answer:
    """One response component being built: its ZCL frame and whether it is encrypted."""

    def __init__(self, cluster_id, frame, encrypted=False):
        self.cluster_id = cluster_id
        self.frame = frame
        self.encrypted = encrypted


def default_response(cluster_id, request, status):
    frame = Z.ZclFrame(FC_DEFAULT_RESPONSE, request.tsn, Z.DEFAULT_RESPONSE,
                       Z.encode_default_response(request.command_id, status))
    return _Answer(cluster_id, frame)


def read_answer(readings, component, request, encrypted=True):
    """The GCS13a / GCS17 / GCS33 answer from a set of readings (the GSME's or the
    mirror's); GCS33's travels in clear (`encrypted` False)."""
    if request.cluster_specific:
        fields = sampled_data(readings, se.decode(se.METERING, False, request.command_id,
                                                  request.payload))
        if fields is None:
            return default_response(component.cluster_id, request, Z.NOT_FOUND)
        payload = se.encode(se.METERING, True, se.GET_SAMPLED_DATA_RESPONSE, fields)
        frame = Z.ZclFrame(FC_SAMPLED_RESPONSE, request.tsn, se.GET_SAMPLED_DATA_RESPONSE,
                           payload)
        return _Answer(component.cluster_id, frame, True)
    ids = Z.decode_read_attributes(request.payload)
    payload = Z.encode_read_attributes_response(attribute_records(readings, ids))
    fc = FC_READ_RESPONSE if encrypted else FC_PLAIN_READ_RESPONSE
    frame = Z.ZclFrame(fc, request.tsn, Z.READ_ATTRIBUTES_RESPONSE, payload)
    return _Answer(component.cluster_id, frame, encrypted)


class GbzPort:
    """GBCS in, GBZ answers out, protected by a DeviceSecurity that speaks as the GSME.

    Subclasses set `security`, `crypto` and implement `_execute(message, request,
    component, now) -> (_Answer, alerts)`, which changes state only on success."""

    def _accepted(self, data, now):
        """(message, outputs): the parsed command once GBCS security accepts it; else
        (None, the alert to send or nothing)."""
        try:
            message = parse(data)
        except Exception:
            return None, []             # nothing in it can be trusted, not even the sender
        if bytes(message.recipient) != self.security.own_eui:
            return None, []
        try:
            self.security.accept_command(message)
        except GbcsRefusal as refusal:
            return None, self.alert(refusal.alert_code, self._alert_recipient(message), now)
        return message, []

    def _alert_recipient(self, message):
        """A refused command's originator when it is a known remote party; otherwise the
        ACB, never an address the sender chose."""
        anchors = self.security.anchors
        if anchors.find(message.originator):
            return bytes(message.originator)
        acb = anchors.get(codes.ROLE_ACB)
        return None if acb is None else acb.eui

    def alert(self, alert_code, recipient, now):
        """A GBZ alert (profile 0109, no components, the code and a ZigBee time stamp)."""
        if alert_code is None or recipient is None:
            return []
        payload = gbz.GbzPayload(alert_code=alert_code,
                                 time_stamp=zigbee_time(now) & 0xFFFFFFFF).encode()
        try:
            return [self.security.alert(alert_code, payload, recipient)]
        except GbcsRefusal:
            return []

    def _answer_gbz(self, message, now):
        try:
            request = gbz.decode(message.payload)
            frames = [c.zcl_frame() for c in request.components]
        except (gbz.GbzError, ZclError):
            return self.alert(codes.ALERT_INTEGRITY_CHECK_FAILED, message.originator, now)
        if request.is_alert or not request.components:
            return self.alert(codes.ALERT_INTEGRITY_CHECK_FAILED, message.originator, now)
        alerts = []
        if not _fits_shape(message.message_code, request.components, frames):
            # a use case this GSME does not serve, or one that carries other commands
            status = Z.NOT_AUTHORIZED
            if message.message_code not in GBZ_SHAPES:
                status = Z.UNSUP_CLUSTER_COMMAND
            answers = [default_response(c.cluster_id, f, status)
                       for c, f in zip(request.components, frames)]
        else:
            try:
                answer, alerts = self._execute(message, frames[0], request.components[0], now)
            except (ZclError, ValueError, KeyError):
                answer = default_response(request.components[0].cluster_id, frames[0],
                                          Z.MALFORMED_COMMAND)
            answers = [answer]
        payload = self._response_payload(message, answers)
        return [self.security.respond(message, payload, cdt.datetime_bytes(now))] + alerts

    def _response_payload(self, message, answers):
        components = []
        key = None
        for i in range(len(answers)):
            answer = answers[i]
            if not answer.encrypted:
                components.append(gbz.GbzComponent(answer.cluster_id, answer.frame.encode()))
                continue
            if key is None:
                key = self._payload_key(message)
            components.append(gbz.encrypt_component(self.crypto, key, self.security.own_eui,
                                                    answer.cluster_id, answer.frame.encode(),
                                                    frame_counter=i))
        return gbz.GbzPayload(components).encode()

    def _payload_key(self, message):
        """KDF mode 4: my KA key x the requester's KA anchor; the requester is the
        supplementary remote party when the ACB forwards (DOMAIN.md, gbcs-parser)."""
        requester = message.supplementary_remote_party or message.originator
        peer = _ka_anchor(self.security, requester)
        if peer is None:
            raise GbcsRefusal("no key-agreement anchor for the requester", None)
        shared = self.crypto.ecdh(self.security.own_ka_private, peer)
        return gbz.payload_key(self.crypto, shared, self.security.own_eui,
                               message.originator_counter, bytes(requester))


def _fits_shape(message_code, components, frames):
    shape = GBZ_SHAPES.get(message_code)
    if shape is None or len(components) != 1 or components[0].from_date_time is not None:
        return False
    frame = frames[0]
    if (components[0].cluster_id, frame.cluster_specific, frame.command_id) != shape:
        return False
    if frame.server_to_client or frame.manufacturer_code is not None:
        return False
    allowed = READ_ATTRIBUTES.get(message_code)
    if allowed is not None:
        try:
            ids = Z.decode_read_attributes(frame.payload)
        except ZclError:
            return False
        return len(ids) > 0 and all(i in allowed for i in ids)
    return True


def _ka_anchor(security, eui):
    eui = bytes(eui)
    for cell in security.anchors.find(eui):
        key = cell.key(KA)
        if cell.cell == codes.CELL_MANAGEMENT and key is not None and key.eui == eui:
            return key.public
    return None


# -- the meter -------------------------------------------------------------------------------

class Gsme(GbzPort):
    def __init__(self, profile, clock, seed, security, crypto=None):
        self.profile = profile
        self.clock = clock
        self.seed = seed
        self.security = security
        self.crypto = crypto if crypto is not None else security.crypto
        self.eui = security.own_eui
        self.wake_interval = P.integer(profile, "sleep.wake_interval", 1, 7 * DAY,
                                       DEFAULT_WAKE_INTERVAL)
        self.awake_window = P.integer(profile, "sleep.awake_window", 1, 3600,
                                      DEFAULT_AWAKE_WINDOW)
        self.hh_depth = P.integer(profile, "gas.hh_depth", 48, 800 * 48, DEFAULT_HH_DEPTH)
        self.calorific = P.integer(profile, "gas.calorific_value_kj_m3", 1, 100000,
                                   DEFAULT_CALORIFIC_KJ_M3)
        self.correction = P.integer(profile, "gas.correction_ppm", 1, 2000000,
                                    DEFAULT_CORRECTION_PPM)
        self.unit_price = P.integer(profile, "prepayment.unit_price", 0, 10000000,
                                    DEFAULT_UNIT_PRICE)
        self.model = GasModel(P.integer(profile, "gas.annual_m3", 0, 1000000,
                                        DEFAULT_ANNUAL_M3),
                              P.integer(profile, "gas.noise_permille", 0, 1000, 400), seed)
        self.reassembler = tunnel.Reassembler()
        start = P.integer(profile, "clock.start", 0, 0xFFFFFFFF, clock())
        self._reset(start)

    def _reset(self, start):
        first = start - start % INTERVAL
        self.clock_offset = 0
        self.last_time = first            # end of the last half hour accounted for
        self.summation = P.integer(self.profile, "gas.initial_dm3", 0, (1 << 48) - 1, 0)
        self.hh_start = first             # start of hh[0]
        self.hh = []
        self.pushed_until = first         # HH entries before this went to the mirror
        self.valve = P.text(self.profile, "valve.initial", VALVE_OPEN)
        if self.valve not in VALVE_SUPPLY_STATUS:
            raise P.ProfileError("valve.initial", "must be open, closed or armed")
        self.payment_mode = P.text(self.profile, "prepayment.mode", PAYMENT_CREDIT)
        if self.payment_mode not in (PAYMENT_CREDIT, PAYMENT_PREPAYMENT):
            raise P.ProfileError("prepayment.mode", "must be credit or prepayment")
        self.credit = P.integer(self.profile, "prepayment.initial_pence", -10000000,
                                10000000, 0) * VALUE_PER_PENNY
        self.utrn_record = U.UtrnAntiReplay(P.integer(self.profile, "prepayment.utrn_record",
                                                      1, 1000, 20))
        self.radio_used = 0
        self.commissioned_at = start
        self.battery_time = start
        self.battery_capacity = P.integer(self.profile, "battery.capacity_uwh", 1,
                                          1 << 40, DEFAULT_BATTERY_UWH)
        self.next_wake = start
        self.awake_until = -1
        self.wakes = 0
        self.answered = []                # [originator, command, [replies]], oldest first

    # -- time and consumption ----------------------------------------------------------------

    def time(self, now=None):
        """The GSME's own clock: the true time plus what GCS28 set."""
        return (self.clock() if now is None else now) + self.clock_offset

    def advance(self, now):
        """Account every half hour that ended by `now` (device time)."""
        t = self.time(now)
        while self.last_time + INTERVAL <= t:
            start = self.last_time
            used = self.model.next_interval(start)
            if self.valve != VALVE_OPEN:
                used = 0                  # the model still steps: same seed, same sequence
            self._record(start, used)
            self.last_time = start + INTERVAL
        excess = len(self.hh) - self.hh_depth
        if excess > 0:                    # trimmed once per catch-up, not per half hour
            self.hh = self.hh[excess:]
            self.hh_start += excess * INTERVAL
        if t > self.battery_time:
            self.battery_time = t

    def _record(self, start, used):
        self.summation = (self.summation + used) % (1 << 48)
        self.hh.append(used)
        if self.payment_mode == PAYMENT_PREPAYMENT and used:
            self.credit -= self.energy_wh(used) * self.unit_price // 1000

    def energy_wh(self, dm3):
        """kWh = m3 x CV (MJ/m3) x correction / 3.6; here Wh from dm3 and kJ/m3."""
        return dm3 * self.calorific * self.correction // (3600 * 1000000)

    @property
    def battery_used(self):
        """Micro-watt-hours drawn: each wake and radio frame, and the sleep current."""
        asleep = self.battery_time - self.commissioned_at
        return self.radio_used + asleep * SLEEP_COST_UWH_PER_DAY // DAY

    @property
    def supply_status(self):
        return VALVE_SUPPLY_STATUS[self.valve]

    def readings(self):
        return {"summation": self.summation, "supply_status": self.supply_status,
                "hh_start": self.hh_start, "hh": self.hh, "credit": self.credit,
                "battery_days": self.battery_days()}

    def open_valve_locally(self, now):
        """The consumer presses the button of an armed valve (SMETS2: arm, then local
        re-enable); nothing happens unless it is armed."""
        self.advance(now)
        if self.valve == VALVE_ARMED:
            self.valve = VALVE_OPEN
            return True
        return False

    # -- the sleepy HAN side ---------------------------------------------------------------

    def wake_due(self, now=None):
        return (self.clock() if now is None else now) >= self.next_wake

    def wake(self, now=None):
        """Wake up: account consumption, switch the radio on and poll the hub."""
        now = self.clock() if now is None else now
        self.advance(now)
        self.wakes += 1
        self.radio_used += WAKE_COST_UWH + FRAME_COST_UWH
        self.next_wake = now + self.wake_interval
        self.awake_until = now + self.awake_window
        return [tunnel.get()]

    @property
    def awake(self):
        return self.awake_until >= 0

    def receive_tunnel(self, data, now=None):
        """One TransferData payload from the hub; the frames to send back."""
        now = self.clock() if now is None else now
        if self.awake_until < 0 or now > self.awake_until:
            self.awake_until = -1
            return []                     # asleep: the radio is off
        try:
            got = self.reassembler.feed(data, now)
        except tunnel.TunnelError:
            return []
        if got is None:
            return []
        kind, remaining, payload = got
        if kind != tunnel.GET_RESPONSE:
            return []
        out = []
        if payload:
            for reply in self._handed_over(payload, now):
                out.extend(tunnel.segments(tunnel.put(reply)))
        if remaining:
            out.append(tunnel.get())
            self.awake_until = now + self.awake_window
        else:
            self.awake_until = -1         # nothing queued: back to sleep
        self.radio_used += FRAME_COST_UWH * (1 + len(out))
        return out

    def mirror_report(self, now=None):
        """Readings for the GPF mirror (JSON-safe): registers, valve, credit and the HH
        entries the mirror has not had yet."""
        now = self.clock() if now is None else now
        self.advance(now)
        index = (self.pushed_until - self.hh_start) // INTERVAL
        if index < 0:
            index = 0
        report = {"time": self.time(now), "summation": self.summation,
                  "supply_status": self.supply_status, "credit": self.credit,
                  "hh_start": self.hh_start + index * INTERVAL, "hh": self.hh[index:],
                  "battery_days": self.battery_days(),
                  "alert_counter": self.security.alert_counter}
        self.pushed_until = self.hh_start + len(self.hh) * INTERVAL
        return report

    def mirror_ack(self, ack):
        """The GPF's acknowledgement of a mirror update: it speaks as this GSME too, so
        its alert counter is adopted to keep the GSME's alert counters rising."""
        counter = int(ack.get("alert_counter", 0))
        if counter > self.security.alert_counter:
            self.security.alert_counter = counter

    def battery_days(self):
        left = self.battery_capacity - self.battery_used
        per_day = SLEEP_COST_UWH_PER_DAY + (DAY // self.wake_interval) * (
            WAKE_COST_UWH + 2 * FRAME_COST_UWH)
        return left // per_day if left > 0 else 0

    # -- the GBCS port ---------------------------------------------------------------------

    def _handed_over(self, data, now):
        """A command the GPF handed over: the replies already sent when it is the one
        last answered for its originator (offered again), else `receive_gbcs`'s.

        Only commands whose counter the GPF checked before queueing them are remembered:
        the same bytes again can then only be the GPF offering it again. A top-up's
        counter is its UTRN's, which the GPF cannot check, so a top-up seen again may be
        a replay: the UTRN record decides, and refuses it with its alert (GBCS has no
        other way to tell)."""
        data = bytes(data)
        for entry in self.answered:
            if entry[1] == data:          # same bytes: same originator, same counter
                return list(entry[2])
        out, message = self._serve(data, now)
        if message is not None and message.message_code != codes.CS01B:
            self._remember(bytes(message.originator), data, out)
        return out

    def _remember(self, originator, data, out):
        for i in range(len(self.answered)):
            if self.answered[i][0] == originator:
                del self.answered[i]
                break
        self.answered.append([originator, data, [bytes(r) for r in out]])
        if len(self.answered) > MAX_ANSWERED:
            del self.answered[0]

    def receive_gbcs(self, data, now):
        """GBCS_INTERFACES.md 4: never raises; refusals change nothing."""
        return self._serve(data, now)[0]

    def _serve(self, data, now):
        """(replies, the command once GBCS security accepted it, else None)."""
        message = None
        try:
            message, out = self._accepted(data, now)
            if message is None:
                return out, None
            self.advance(now)
            if message.message_code == codes.GCS28:
                return self._set_clock(message, now), message
            if message.message_code in codes.CS02B_CODES:
                return self._credentials(message, now), message
            return self._answer_gbz(message, now), message
        except GbcsRefusal:
            return [], message
        except Exception:
            return [], message            # a bug must not take the meter loop down

    def _execute(self, message, request, component, now):
        code = message.message_code
        if code in READS:
            return read_answer(self.readings(), component, request,
                               code in ENCRYPTED_READS), []
        fields = se.decode(component.cluster_id, False, request.command_id, request.payload)
        if code in PROPOSED_SUPPLY:
            return self._change_supply(code, component, request, fields), []
        return self._top_up(message, component, request, fields, now)

    def _change_supply(self, code, component, request, fields):
        proposed = fields["proposed_supply_status"]
        if proposed != PROPOSED_SUPPLY[code]:
            return default_response(component.cluster_id, request, Z.INVALID_FIELD)
        if fields["implementation_date_time"] not in (0, 0xFFFFFFFF):
            # future-dated valve operations are not supported: nothing is scheduled
            return default_response(component.cluster_id, request, Z.INVALID_FIELD)
        if proposed == se.SUPPLY_OFF_ARMED and self.valve == VALVE_OPEN:
            return default_response(component.cluster_id, request, Z.FAILURE)
        self.valve = VALVE_CLOSED if proposed == se.SUPPLY_OFF else VALVE_ARMED
        payload = se.encode(se.METERING, True, se.SUPPLY_STATUS_RESPONSE, {
            "provider_id": fields["provider_id"], "issuer_event_id": fields["issuer_event_id"],
            "implementation_date_time": fields["implementation_date_time"],
            "supply_status": self.supply_status})
        frame = Z.ZclFrame(FC_CLUSTER_RESPONSE, request.tsn, se.SUPPLY_STATUS_RESPONSE, payload)
        return _Answer(component.cluster_id, frame)

    def _top_up(self, message, component, request, fields, now):
        """CS01b: the UTRN is checked against the supplier's prepayment key and the
        GSME's own record of used UTRNs; nothing changes unless it is accepted."""
        record = U.UtrnAntiReplay(self.utrn_record.size, self.utrn_record.accepted)
        result, alert = self._check_utrn(fields["topup_code"], record)
        source = fields["originating_device"]
        if result is None:
            counter, value_class, value = alert
            pence = value * 100 if value_class == U.CLASS_POUNDS else value
            self.utrn_record = record
            self.credit += pence * VALUE_PER_PENNY
            alert = None
            values = {"result_type": se.TOP_UP_ACCEPTED, "top_up_value": pence * VALUE_PER_PENNY,
                      "source_of_top_up": source, "credit_remaining": _int32(self.credit)}
        else:
            values = {"result_type": result, "top_up_value": -1, "source_of_top_up": source,
                      "credit_remaining": -1}
        payload = se.encode(se.PREPAYMENT, True, se.CONSUMER_TOP_UP_RESPONSE, values)
        frame = Z.ZclFrame(FC_CLUSTER_RESPONSE, request.tsn, se.CONSUMER_TOP_UP_RESPONSE, payload)
        alerts = self.alert(alert, message.originator, now) if alert is not None else []
        return _Answer(component.cluster_id, frame), alerts

    def _check_utrn(self, code, record):
        """(None, (counter, class, value)) for a good UTRN (recorded in `record`), else
        (ZCL result type, alert code)."""
        if code is None or len(code) != U.UTRN_DIGITS or not all(0x30 <= c <= 0x39 for c in code):
            return se.TOP_UP_REJECTED_INVALID, codes.ALERT_UTRN_NOT_AUTHENTIC
        text = bytes(code).decode()
        try:
            low_bits = U.parse(text)[0]
        except U.UtrnError:
            return se.TOP_UP_REJECTED_INVALID, codes.ALERT_UTRN_NOT_AUTHENTIC
        try:
            record.check(record.full_counter(low_bits))
        except U.UtrnError:
            return se.TOP_UP_REJECTED_DUPLICATE, codes.ALERT_DUPLICATE_UTRN
        cell = self.security.anchors.get(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT)
        key = None if cell is None else cell.key(KA)
        if key is None:
            return se.TOP_UP_REJECTED_INVALID, codes.ALERT_UTRN_NOT_AUTHENTIC
        shared = self.crypto.ecdh(self.security.own_ka_private, key.public)
        try:
            return None, U.verify(self.crypto, shared, key.eui, self.eui, text, record)
        except U.UtrnError:
            return se.TOP_UP_REJECTED_INVALID, codes.ALERT_UTRN_NOT_AUTHENTIC

    def _credentials(self, message, now):
        """CS02b (GBCS 13.3.2.4, ASN.1): `security.update_credentials` changes nothing when
        it refuses; its alert goes to the originator."""
        try:
            payload = self.security.update_credentials(message)
        except GbcsRefusal as refusal:
            return self.alert(refusal.alert_code, message.originator, now)
        return [self.security.respond(message, payload, cdt.datetime_bytes(now))]

    def credentials_due(self, now):
        """A future-dated CS02b whose time has come: its 0x00CB alert, else []."""
        return pending_credentials_alert(self.security, now)

    def _set_clock(self, message, now):
        """GCS28 (GBCS 13.3.6): SEQUENCE {validity start, validity end GeneralizedTime}."""
        try:
            reader = asn1.Reader(message.payload)
            body = reader.enter()
            start = _seconds(body.generalized_time())
            end = _seconds(body.generalized_time())
            body.expect_end()
            reader.expect_end()
        except (asn1.Asn1Error, ValueError):
            return self.alert(codes.ALERT_INTEGRITY_CHECK_FAILED, message.originator, now)
        status = TIME_NOT_ADJUSTED
        if start <= now <= end:
            self.clock_offset = 0         # take the hub's (the GPF's) time
            status = TIME_RELIABLE
        payload = asn1.sequence([asn1.generalized_time(asn1.generalized_time_text(self.time(now))),
                                 asn1.integer(status)])
        return [self.security.respond(message, payload, None)]

    # -- persistence -------------------------------------------------------------------------

    def state(self):
        return {"clock_offset": self.clock_offset, "last_time": self.last_time,
                "summation": self.summation, "hh_start": self.hh_start, "hh": list(self.hh),
                "pushed_until": self.pushed_until, "valve": self.valve,
                "payment_mode": self.payment_mode, "credit": self.credit,
                "utrn_record": self.utrn_record.state(), "radio_used": self.radio_used,
                "commissioned_at": self.commissioned_at, "battery_time": self.battery_time,
                "next_wake": self.next_wake, "wakes": self.wakes,
                "answered": [[hex_text(o), hex_text(c), [hex_text(r) for r in replies]]
                             for o, c, replies in self.answered],
                "model": self.model.state(), "security": self.security.state()}

    def load_state(self, state):
        try:                              # a state saved before answers were kept: none
            answered = [[from_hex(o), from_hex(c), [from_hex(r) for r in replies]]
                        for o, c, replies in state.get("answered", [])]
        except (TypeError, ValueError) as exc:
            raise ValueError("GSME state: answered: %r" % (exc,))
        self.clock_offset = int(state["clock_offset"])
        self.last_time = int(state["last_time"])
        self.summation = int(state["summation"])
        self.hh_start = int(state["hh_start"])
        self.hh = [int(v) for v in state["hh"]]
        self.pushed_until = int(state["pushed_until"])
        self.valve = state["valve"] if state["valve"] in VALVE_SUPPLY_STATUS else VALVE_OPEN
        self.payment_mode = state["payment_mode"]
        self.credit = int(state["credit"])
        record = state["utrn_record"]
        self.utrn_record = U.UtrnAntiReplay(int(record["size"]), record["accepted"])
        self.radio_used = int(state["radio_used"])
        self.commissioned_at = int(state["commissioned_at"])
        self.battery_time = int(state["battery_time"])
        self.next_wake = int(state["next_wake"])
        self.wakes = int(state["wakes"])
        self.model.load_state(state["model"])
        self.security.load_state(state["security"])
        self.answered = answered[-MAX_ANSWERED:]
        self.awake_until = -1             # a restart finds the meter asleep
        self.reassembler.reset()


def _int32(n):
    if n > 0x7FFFFFFF:
        return 0x7FFFFFFF
    if n < -0x80000000:
        return -0x80000000
    return n


def _seconds(text):
    """Seconds since 1970 of a GeneralizedTime YYYYMMDDHHMMSSZ."""
    return cdt.seconds_from_civil(int(text[0:4]), int(text[4:6]), int(text[6:8]),
                                  int(text[8:10]), int(text[10:12]), int(text[12:14]))


