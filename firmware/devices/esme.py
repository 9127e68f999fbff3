"""The ESME application: a GB electricity meter's COSEM objects driven by a load model.

    esme = Esme(profile, clock, seed=0)      # profile: the JSON form of profiles/*.toml
    esme.logical_device                      # what the DLMS server serves
    esme.advance(now)                        # run the simulation up to `now`
    state = esme.save_state(); esme.restore_state(state)      # JSON-safe

The board edge calls `advance(clock())` before it serves a request, so registers and
profiles are current when read (docs/CORE_INTERFACES.md section 5).

Simulation. Time is walked one half-hour at a time and never skipped: each interval's
energy is drawn from the seeded load model when the interval opens and accrues pro rata
(integer Wh, exact in total) while the supply is connected; when it closes, its energy
becomes one half-hourly profile entry stamped with the capture time (the interval's end,
as a Profile generic capture at the end of its capture period stamps it), and at
midnight UTC the daily read log captures the cumulative and TOU registers. Energy goes
to the TOU register (1.0.1.8.1..4.255) of the half-hour's band, so the rates always add
up to 1.0.1.8.0.255. A disconnected supply accrues nothing but the intervals still close.

CPU cost: per half-hour about 30 integer operations, two xorshift steps, one date-time
encode and one ring-buffer copy of ~21 bytes, nothing allocated per value; a simulated
year (17,520 HH captures + 365 daily captures) takes ~0.11 s on CPython 3.11 and ~0.21 s
on the MicroPython unix port (one x86-64 core); only intervals that end are walked, so
`advance` within one half-hour is O(1). Memory is the profile buffers' (~23 bytes per
HH entry: a 13-month HH profile needs ~440 KB, more than a 128 KB board heap; give such
a board a smaller `depth`).

Supply. Disconnect control 0.0.96.3.10.255 follows its Blue Book control_mode for direct
class-70 methods and for the local button (`press_button`). The GB supply commands
(ECS42 enable, ECS43 disable, ECS44 arm) arrive as script table 0.0.10.0.106.255
execute(script_id) and are authoritative: enable connects, disable disconnects, arm
makes a disconnected supply ready for reconnection (the consumer's button then
connects it). Every change is logged in the event log.

Clock. A client setting the COSEM clock (attribute 2 or a clock method) re-bases the
injected clock: energy up to the old time is accrued first, the interval in progress
carries on at the new time (its energy is not lost), and a clock-adjusted event is
logged. A jump does not walk the skipped intervals.
"""

from firmware.cosem.association import AssociationLN, SapAssignment
from firmware.cosem.base import ActionError, Context, DataAccessError
from firmware.cosem.clock import Clock
from firmware.cosem.data import Data
from firmware.cosem.disconnect import (CONNECTED, DISCONNECTED, READY_FOR_RECONNECTION,
                                       DisconnectControl)
from firmware.cosem.logical_device import AccessRights, LogicalDevice
from firmware.cosem.profile import ProfileGeneric
from firmware.cosem.register import Register
from firmware.cosem.script import EXECUTE_METHOD, ScriptAction, ScriptTable
from firmware.devices import profile as P
from firmware.devices.load_model import LoadModel
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms.cosem_datetime import datetime_bytes

INTERVAL = 1800
DAY = 86400
STATE_FORMAT = 1

# Blue Book units table (4.3.2): 27 W, 30 Wh, 35 V
UNIT_W = 27
UNIT_WH = 30
UNIT_V = 35

SUPPLY_STATES = {"connected": CONNECTED, "disconnected": DISCONNECTED,
                 "armed": READY_FOR_RECONNECTION}
LOCAL_TRIGGERS = ("manual_reconnect", "local_reconnect")


def _dt(seconds):
    return (axdr.OCTET_STRING, datetime_bytes(seconds))


def _u32(n):
    return (axdr.DOUBLE_LONG_UNSIGNED, n & 0xFFFFFFFF)   # registers roll over, as meters do


class SupplyScriptTable(ScriptTable):
    """The GB supply script table: script ids map to enable / disable / arm.

    The scripts attribute shows each script's action on the disconnect control
    (remote_reconnect or remote_disconnect); execution goes to the ESME, which applies
    the GB supply state whatever the DLMS control_mode would allow. Fixed: not writable.
    """

    def __init__(self, logical_name, scripts, operations, run_operation):
        ScriptTable.__init__(self, logical_name, scripts)
        self.operations = operations        # script id -> "enable" | "disable" | "arm"
        self.run_operation = run_operation

    def execute(self, script_id, ctx):
        if script_id == 0:
            return
        operation = self.operations.get(script_id)
        if operation is None:
            raise ActionError(R.ACTION_OBJECT_UNAVAILABLE, "no script %d" % script_id)
        self.run_operation(operation, ctx.now)

    def set_attribute(self, attribute, value, ctx):
        raise DataAccessError(R.READ_WRITE_DENIED, "GB supply scripts are fixed")

    def state(self):
        return {}


class Esme:
    def __init__(self, profile, clock, seed=0):
        if P.lookup(profile, "schema") != P.SCHEMA:
            raise P.ProfileError("schema", "this core reads schema %d" % P.SCHEMA)
        self.profile = profile
        self.clock = clock
        self.seed = seed
        try:
            self.model = LoadModel(P.lookup(profile, "load"), seed)
        except P.ProfileError:
            raise
        except ValueError as err:
            raise P.ProfileError("load", str(err))
        self.phases = self.model.phases
        self._tou = P.tou_slots(profile)
        self._event_codes = {}
        for name in P.EVENTS:
            self._event_codes[name] = P.integer(profile, "events." + name, 0, 0xFFFF)
        self._build_objects()
        start = clock()
        self._t = start
        self._total = 0
        self._rates = [0, 0, 0, 0]
        self._secondary = 0
        self._last_interval_wh = 0
        self._voltages_at, self._voltages = None, []
        self._load_initial_energy()
        self._supplied = self.disconnect.control_state == CONNECTED
        self._open_interval(start - start % INTERVAL)
        self._publish(start)
        self.log_event("power_up", start)

    # -- building the logical device ---------------------------------------------

    def _build_objects(self):
        profile = self.profile
        name = P.text(profile, "device.logical_device_name").encode()
        ld = LogicalDevice(sap=1, name=name)
        self.logical_device = ld

        def names(role):
            return P.role_names(profile, role)

        self.name_object = self._add("logical_device_name",
                                     [Data(names("logical_device_name")[0],
                                           (axdr.OCTET_STRING, name))])[0]
        self.clock_object = self._add("clock", [Clock(names("clock")[0],
                                                      set_time=self._set_time)])[0]
        self.import_register = self._add("import_energy", [
            Register(names("import_energy")[0], _u32(0), 0, UNIT_WH)])[0]
        self.rate_registers = self._add("import_energy_tou", [
            Register(n, _u32(0), 0, UNIT_WH) for n in names("import_energy_tou")])
        self.interval_register = self._add("interval_import", [
            Register(names("interval_import")[0], _u32(0), 0, UNIT_WH)])[0]
        self.power_register = self._add("active_power", [
            Register(names("active_power")[0], _u32(0), 0, UNIT_W)])[0]
        self.voltage_registers = self._add("voltage", [
            Register(n, (axdr.LONG_UNSIGNED, 0), -1, UNIT_V)
            for n in names("voltage")[:self.phases]])
        self.secondary_register = None
        if self.model.secondary is not None:
            self.secondary_register = self._add("secondary_import_energy", [
                Register(names("secondary_import_energy")[0], _u32(0), 0, UNIT_WH)])[0]
        self.event_code = self._add("event_code", [
            Data(names("event_code")[0], (axdr.LONG_UNSIGNED, 0))])[0]
        self._build_profiles(names)
        self._build_supply(names)
        self.sap_assignment = self._add("sap_assignment", [
            SapAssignment(names("sap_assignment")[0], [(ld.sap, name)])])[0]
        self._build_clients()

    def _build_profiles(self, names):
        clock = self.clock_object
        find = self.logical_device.find
        # GB HH layout: {capture time, interval import Wh} every 1800 s (DOMAIN.md)
        self.hh_profile = self._add("hh_profile", [ProfileGeneric(
            names("hh_profile")[0], [(clock, 2), (self.interval_register, 2)],
            capture_period=INTERVAL, profile_entries=self._depth("hh_profile"),
            resolve=find)])[0]
        # daily read log: {capture time, import, rates 1..4[, secondary element import]}
        daily_columns = [(clock, 2), (self.import_register, 2)]
        for r in self.rate_registers:
            daily_columns.append((r, 2))
        if self.secondary_register is not None:
            daily_columns.append((self.secondary_register, 2))
        self.daily_log = self._add("daily_log", [ProfileGeneric(
            names("daily_log")[0], daily_columns, capture_period=DAY,
            profile_entries=self._depth("daily_log"), resolve=find)])[0]
        self.event_log = self._add("event_log", [ProfileGeneric(
            names("event_log")[0], [(clock, 2), (self.event_code, 2)],
            capture_period=0, profile_entries=self._depth("event_log"), resolve=find)])[0]

    def _build_supply(self, names):
        profile = self.profile
        initial = P.text(profile, "supply.initial")
        if initial not in SUPPLY_STATES:
            raise P.ProfileError("supply.initial", "must be connected, disconnected or armed")
        dc_name = names("disconnect_control")[0]
        self.disconnect = self._add("disconnect_control", [DisconnectControl(
            dc_name, control_mode=P.integer(profile, "supply.control_mode", 0, 6),
            control_state=SUPPLY_STATES[initial], on_change=self._on_supply_change)])[0]
        operations = {}
        scripts = []
        for operation in ("enable", "disable", "arm"):
            script_id = P.integer(profile, "supply.scripts." + operation, 1, 0xFFFF)
            operations[script_id] = operation
            method = 1 if operation == "disable" else 2   # remote_disconnect / reconnect
            scripts.append((script_id, [ScriptAction(EXECUTE_METHOD, DisconnectControl.class_id,
                                                     dc_name, method)]))
        self.supply_scripts = self._add("supply_scripts", [SupplyScriptTable(
            names("supply_scripts")[0], scripts, operations, self._supply_command)])[0]

    def _build_clients(self):
        profile = self.profile
        max_pdu = P.integer(profile, "dlms.max_pdu_size", 64, 0xFFFF, 1024)
        clients = P.lookup(profile, "clients")
        rights = {}
        if "association" in P.lookup(profile, "objects"):
            _, attributes, methods, _, _ = P.ROLES["association"]
            rights = P.object_access(profile, "association", attributes, methods)
        for client in sorted(clients):
            key = "clients." + client
            sap = P.integer(profile, key + ".sap", 1, 0x7F)
            authentication = P.integer(profile, key + ".authentication", 0, 1)
            secret = None
            if authentication:
                secret = P.text(profile, key + ".password").encode()
            association = AssociationLN(P.role_names(profile, "association")[0],
                                        max_receive_pdu_size=max_pdu,
                                        max_send_pdu_size=max_pdu)
            modes = rights.get(sap)
            self.logical_device.add_client(
                sap, authentication, secret, association,
                None if modes is None else AccessRights(modes[0], modes[1]))

    def _add(self, role, objects):
        """Add the objects of `role` with the profile's access rights; returns them."""
        if role not in P.lookup(self.profile, "objects"):
            raise P.ProfileError("objects." + role, "missing")
        first = objects[0]
        access = P.object_access(self.profile, role, first.attribute_count,
                                 first.method_count)
        for obj in objects:
            rights = {}
            for sap in access:
                modes = access[sap]
                rights[sap] = AccessRights(modes[0], modes[1])
            self.logical_device.add(obj, rights)
        return objects

    def _depth(self, role):
        return P.integer(self.profile, "objects.%s.depth" % role, 1, 1000000)

    def _load_initial_energy(self):
        objects = P.lookup(self.profile, "objects")
        self._total = objects["import_energy"].get("initial_wh", 0)
        rates = objects["import_energy_tou"].get("initial_wh", [0, 0, 0, 0])
        self._rates = [rates[0], rates[1], rates[2], rates[3]]
        if sum(self._rates) != self._total:
            raise P.ProfileError("objects.import_energy_tou.initial_wh",
                                 "rates must add up to import_energy.initial_wh")
        if self.secondary_register is not None:
            self._secondary = objects["secondary_import_energy"].get("initial_wh", 0)

    # -- the simulation ----------------------------------------------------------------

    def advance(self, now):
        """Run the meter up to `now` (integer seconds); earlier times are ignored."""
        if now <= self._t:
            return
        self._sync_from_registers()
        end = self._interval_start + INTERVAL
        while end <= now:
            self._accrue(end)
            self._close_interval(end)
            self._open_interval(end)
            end += INTERVAL
        self._accrue(now)
        self._publish(now)

    def _open_interval(self, start):
        self._interval_start = start
        self._pending, self._pending2 = self.model.next_interval(start)
        self._rate = self._tou[(start % DAY) // INTERVAL] - 1
        self._interval_wh = 0

    def _accrue(self, t):
        """Energy of the open interval from self._t to t, if the supply is on."""
        if self._supplied:
            start = self._interval_start
            done = self._t - start
            now = t - start
            wh = self._pending * now // INTERVAL - self._pending * done // INTERVAL
            if wh:
                self._total += wh
                self._rates[self._rate] += wh
                self._interval_wh += wh
            if self._pending2:
                self._secondary += (self._pending2 * now // INTERVAL
                                    - self._pending2 * done // INTERVAL)
        self._t = t

    def _close_interval(self, end):
        wh = self._interval_wh
        self.hh_profile.store_entry(end, [_dt(end), _u32(wh)])
        self._last_interval_wh = wh
        if end % DAY == 0:
            rates = self._rates
            values = [_dt(end), _u32(self._total), _u32(rates[0]), _u32(rates[1]),
                      _u32(rates[2]), _u32(rates[3])]
            if self.secondary_register is not None:
                values.append(_u32(self._secondary))
            self.daily_log.store_entry(end, values)

    def _publish(self, now):
        """Write the running values into the registers clients read."""
        self.import_register.value = _u32(self._total)
        rates = self._rates
        for i in range(4):
            self.rate_registers[i].value = _u32(rates[i])
        self.interval_register.value = _u32(self._last_interval_wh)
        if self.secondary_register is not None:
            self.secondary_register.value = _u32(self._secondary)
        self._publish_power(now)
        # the voltages are a hash of the second: a burst of commands in one second (a
        # supply change publishes twice) computes them once
        if self._voltages_at != now:
            self._voltages = [(axdr.LONG_UNSIGNED, self.model.voltage_dv(now, phase))
                              for phase in range(1, len(self.voltage_registers) + 1)]
            self._voltages_at = now
        voltages = self._voltages
        for i in range(len(voltages)):
            self.voltage_registers[i].value = voltages[i]

    def _publish_power(self, now):
        power = 0
        if self._supplied:
            power = self.model.power_w(self._pending, now)
        self.power_register.value = _u32(power)

    def _sync_from_registers(self):
        """Adopt a value a client wrote or reset (e.g. Register reset) since the last run."""
        total = self.import_register.value[1]
        if total != self._total & 0xFFFFFFFF:
            self._total = total
        for i in range(4):
            v = self.rate_registers[i].value[1]
            if v != self._rates[i] & 0xFFFFFFFF:
                self._rates[i] = v
        if self.secondary_register is not None:
            v = self.secondary_register.value[1]
            if v != self._secondary & 0xFFFFFFFF:
                self._secondary = v

    # -- events, supply, clock -------------------------------------------------------

    def log_event(self, name, now):
        code = self._event_codes[name]
        self.event_code.value = (axdr.LONG_UNSIGNED, code)
        self.event_log.store_entry(now, [_dt(now), (axdr.LONG_UNSIGNED, code)])

    @property
    def supply_state(self):
        """0 disconnected, 1 connected, 2 ready for reconnection (armed)."""
        return self.disconnect.control_state

    def press_button(self):
        """The consumer's button: completes an armed reconnection (manual_reconnect)."""
        self.advance(self.clock())
        return self.disconnect.manual_reconnect() is not None

    def _supply_command(self, operation, now):
        """A GB supply command (ECS42/43/44 via the supply script table)."""
        dc = self.disconnect
        if dc.control_mode == 0:
            raise ActionError(R.ACTION_TEMPORARY_FAILURE, "control mode 0: always connected")
        state = dc.control_state
        if operation == "enable":
            target = CONNECTED
        elif operation == "disable":
            target = DISCONNECTED
        elif state == CONNECTED:
            return          # arming a supply that is already on changes nothing
        else:
            target = READY_FOR_RECONNECTION
        if state == target:
            return
        dc.control_state = target
        self._on_supply_change(state, target, None, "gb_" + operation)

    def _on_supply_change(self, old, new, letter, trigger):
        now = self.clock()
        if now < self._t:
            now = self._t           # the board advanced the meter past its clock
        # energy up to now accrued in the old state (the object has already switched)
        self.advance(now)
        self._supplied = new == CONNECTED
        if new == DISCONNECTED:
            self.log_event("supply_disconnected", now)
        elif new == READY_FOR_RECONNECTION:
            self.log_event("supply_armed", now)
        elif trigger in LOCAL_TRIGGERS:
            self.log_event("supply_connected_locally", now)
        else:
            self.log_event("supply_connected", now)
        # advance() has just published everything else at `now`: only the power follows
        # the supply
        self._publish_power(now)

    def _set_time(self, seconds):
        """Clock callback: a client set the time (Clock attribute 2 or a method)."""
        self.advance(self.clock())
        self.clock.set(seconds)
        start = seconds - seconds % INTERVAL
        self._interval_start = start
        self._rate = self._tou[(start % DAY) // INTERVAL] - 1
        self._t = seconds
        self.log_event("clock_adjusted", seconds)
        self._publish(seconds)

    # -- persistence -------------------------------------------------------------------

    def save_state(self):
        """JSON-safe snapshot: restoring it gives the same future as never stopping."""
        return {
            "format": STATE_FORMAT,
            "seed": self.seed,
            "clock": self.clock(),
            "t": self._t,
            "interval": [self._interval_start, self._pending, self._pending2,
                         self._interval_wh, self._last_interval_wh],
            "energy": [self._total, self._rates[0], self._rates[1], self._rates[2],
                       self._rates[3], self._secondary],
            "supplied": self._supplied,
            "model": self.model.save_state(),
            "objects": self.logical_device.state(),
        }

    def restore_state(self, state):
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError("not an ESME state of format %d" % STATE_FORMAT)
        self.logical_device.restore(state["objects"])
        self.seed = state["seed"]
        self.model.seed = state["seed"] & 0xFFFFFFFF
        self.model.restore_state(state["model"])
        start, pending, pending2, interval_wh, last_wh = state["interval"]
        self._interval_start = start
        self._pending = pending
        self._pending2 = pending2
        self._interval_wh = interval_wh
        self._last_interval_wh = last_wh
        self._rate = self._tou[(start % DAY) // INTERVAL] - 1
        energy = state["energy"]
        self._total = energy[0]
        self._rates = [energy[1], energy[2], energy[3], energy[4]]
        self._secondary = energy[5]
        self._supplied = bool(state["supplied"])
        self._t = state["t"]
        if self.clock() < state["clock"]:
            self.clock.set(state["clock"])      # a restart never winds the meter back
        self._publish(self._t)

    # -- convenience for tests and the board -------------------------------------------

    def context(self, client_sap=16):
        """A COSEM Context at the device's current time (for direct object access)."""
        return Context(self.clock(), client_sap)
