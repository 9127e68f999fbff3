"""Reading a device profile: the JSON form of `profiles/*.toml`.

`emulator/profiles.py` turns the TOML into this dict (validated, times as integer
seconds, powers as integer watts); the device core reads it with the helpers here, which
re-check what they use and raise `ProfileError` naming the key. The JSON form:

    schema            1
    name              "esme-single-phase"
    device            {kind, variant, logical_device_name, eui}
    clock             {start}                       seconds since 1970 UTC
    hdlc              {server_upper, server_lower}  IEC 62056-46 server address
    wrapper           {wport, tcp_port}             IEC 62056-47
    dlms              {max_pdu_size}
    clients           {name: {sap, authentication 0|1, password (when 1)}}
    load              {annual_kwh, peak_w, phases, noise_permille, seasonal_permille,
                       voltage_dv, voltage_noise_dv, secondary?: {rated_w, window_start,
                       window_end, winter_intervals, summer_intervals}}
    tou               {switches: [[second_of_day, rate 1..4], ...]}   UTC, half hours
    supply            {initial: connected|disconnected|armed, control_mode,
                       scripts: {enable, disable, arm}}
    events            {power_down, power_up, clock_adjusted, supply_armed,
                       supply_disconnected, supply_connected, supply_connected_locally}
    objects           {role: {obis?, access: {client: spec}, initial_wh?, depth?}}

An access spec is "none", "read" (every attribute read-only, no method) or
{read: "all" | [attribute...], write: [attribute...], methods: "all" | [method...]}.
"""

from firmware.dlms import obis as O

SCHEMA = 1
INTERVAL = 1800
DAY = 86400

AUTHENTICATIONS = {"none": 0, "low": 1}
SUPPLY_STATES = ("connected", "disconnected", "armed")
VARIANTS = ("single-phase", "polyphase", "twin-element")
EVENTS = ("power_down", "power_up", "clock_adjusted", "supply_armed",
          "supply_disconnected", "supply_connected", "supply_connected_locally")

# Logical names the core needs beyond firmware/dlms/obis.py (IEC 62056-6-1 codes).
INTERVAL_IMPORT = O.obis("1.0.1.29.0.255")     # active import over the last capture period
VOLTAGE_L2 = O.obis("1.0.52.7.0.255")
VOLTAGE_L3 = O.obis("1.0.72.7.0.255")
EVENT_CODE = O.obis("0.0.96.11.0.255")         # event object of the standard event log
# UNCONFIRMED: GBCS's name for the twin-element secondary register; B = 2 is
# measurement channel 2. Profiles may override it.
SECONDARY_IMPORT_ENERGY = O.obis("1.2.1.8.0.255")

# role -> (class_id, attribute_count, method_count, default logical names, required)
# The counts are those of the interface class versions firmware/cosem implements
# (Blue Book 4.x); test_esme checks them against the objects an Esme builds.
ROLES = {
    "logical_device_name": (1, 2, 0, (O.LOGICAL_DEVICE_NAME,), True),
    "clock": (8, 9, 6, (O.CLOCK,), True),
    "import_energy": (3, 3, 1, (O.IMPORT_ACTIVE_ENERGY,), True),
    "import_energy_tou": (3, 3, 1, O.IMPORT_ACTIVE_ENERGY_TOU, True),
    "interval_import": (3, 3, 1, (INTERVAL_IMPORT,), True),
    "active_power": (3, 3, 1, (O.IMPORT_ACTIVE_POWER,), True),
    "voltage": (3, 3, 1, (O.VOLTAGE_L1, VOLTAGE_L2, VOLTAGE_L3), True),
    "secondary_import_energy": (3, 3, 1, (SECONDARY_IMPORT_ENERGY,), False),
    "hh_profile": (7, 8, 2, (O.HH_PROFILE,), True),
    "daily_log": (7, 8, 2, (O.DAILY_READ_LOG,), True),
    "event_log": (7, 8, 2, (O.EVENT_LOG,), True),
    "event_code": (1, 2, 0, (EVENT_CODE,), True),
    "disconnect_control": (70, 4, 2, (O.DISCONNECT_CONTROL,), True),
    "supply_scripts": (9, 2, 1, (O.SUPPLY_SCRIPT_TABLE,), True),
    "sap_assignment": (17, 2, 1, (O.SAP_ASSIGNMENT,), True),
    # each client's own Association LN (Blue Book 4.4.3, version 1); a client's entry
    # is its rights on its association; absent: read all but the secret, and a
    # password client may write its secret
    "association": (15, 9, 6, (O.CURRENT_ASSOCIATION,), False),
}
PROFILE_ROLES = ("hh_profile", "daily_log", "event_log")


class ProfileError(ValueError):
    """A profile value is missing or wrong; `key` is its dotted path."""

    def __init__(self, key, reason):
        super().__init__("profile key %s: %s" % (key, reason))
        self.key = key
        self.reason = reason


_MISSING = object()


def lookup(profile, path, default=_MISSING):
    """The value at dotted `path` ("load.annual_kwh"), or `default`, else ProfileError."""
    node = profile
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is _MISSING:
                raise ProfileError(path, "missing")
            return default
        node = node[part]
    return node


def integer(profile, path, low, high, default=_MISSING):
    value = lookup(profile, path, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProfileError(path, "must be an integer")
    if value < low or value > high:
        raise ProfileError(path, "must be in %d..%d" % (low, high))
    return value


def text(profile, path, default=_MISSING):
    value = lookup(profile, path, default)
    if not isinstance(value, str):
        raise ProfileError(path, "must be a string")
    return value


def role_names(profile, role):
    """The logical names (6 bytes each) of `role`: the profile's `obis` or the default."""
    defaults = ROLES[role][3]
    key = "objects.%s.obis" % role
    given = lookup(profile, key, None)
    if given is None:
        return list(defaults)
    if isinstance(given, str):
        given = [given]
    if not isinstance(given, list) or len(given) != len(defaults):
        raise ProfileError(key, "needs %d logical name(s)" % len(defaults))
    out = []
    for i in range(len(given)):
        try:
            out.append(O.obis(given[i]))
        except ValueError as err:
            raise ProfileError(key, str(err))
    return out


def _numbers(spec, key, count, allow_all):
    if allow_all and spec == "all":
        return list(range(1, count + 1))
    if not isinstance(spec, list):
        raise ProfileError(key, "must be a list of numbers" + (' or "all"' if allow_all else ""))
    for n in spec:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1 or n > count:
            raise ProfileError(key, "%r is not in 1..%d" % (n, count))
    return spec


def access_modes(spec, key, attribute_count, method_count):
    """(attribute modes, method modes) for one client's access spec on one object."""
    attributes = [0] * attribute_count
    methods = [0] * method_count
    if spec == "none":
        return attributes, methods
    if spec == "read":
        return [1] * attribute_count, methods
    if not isinstance(spec, dict):
        raise ProfileError(key, 'must be "none", "read" or a table of read/write/methods')
    for name in spec:
        if name not in ("read", "write", "methods"):
            raise ProfileError(key + "." + name, "unknown access field")
    for n in _numbers(spec.get("read", []), key + ".read", attribute_count, True):
        attributes[n - 1] |= 1
    for n in _numbers(spec.get("write", []), key + ".write", attribute_count, False):
        attributes[n - 1] |= 2
    for n in _numbers(spec.get("methods", []), key + ".methods", method_count, True):
        methods[n - 1] = 1
    if attributes[0] == 0 and (_any(attributes) or _any(methods)):
        attributes[0] = 1      # a client that sees the object may read its logical name
    return attributes, methods


def _any(modes):
    for m in modes:
        if m:
            return True
    return False


def object_access(profile, role, attribute_count, method_count):
    """{client SAP: (attribute modes, method modes)} for `role` from the profile."""
    saps = client_saps(profile)
    access = lookup(profile, "objects.%s.access" % role, {})
    if not isinstance(access, dict):
        raise ProfileError("objects.%s.access" % role, "must be a table of clients")
    out = {}
    for name in access:
        key = "objects.%s.access.%s" % (role, name)
        if name not in saps:
            raise ProfileError(key, "no such client in [clients]")
        out[saps[name]] = access_modes(access[name], key, attribute_count, method_count)
    return out


def client_saps(profile):
    clients = lookup(profile, "clients")
    if not isinstance(clients, dict) or not clients:
        raise ProfileError("clients", "needs at least one client")
    out = {}
    for name in clients:
        out[name] = integer(profile, "clients.%s.sap" % name, 1, 0x7F)
    return out


def tou_slots(profile):
    """The TOU rate (1..4) of each of the 48 half-hours of the UTC day."""
    switches = lookup(profile, "tou.switches")
    if not isinstance(switches, list) or not switches:
        raise ProfileError("tou.switches", "needs at least one switch")
    slots = [0] * (DAY // INTERVAL)
    previous = -1
    for i in range(len(switches)):
        key = "tou.switches[%d]" % i
        item = switches[i]
        if not isinstance(item, list) or len(item) != 2:
            raise ProfileError(key, "must be [second_of_day, rate]")
        at, rate = item
        if not isinstance(at, int) or at % INTERVAL or not 0 <= at < DAY:
            raise ProfileError(key, "switch time must be a half hour of the day")
        if at <= previous:
            raise ProfileError(key, "switch times must rise through the day")
        if i == 0 and at != 0:
            raise ProfileError(key, "the first switch must be at 00:00")
        if not isinstance(rate, int) or not 1 <= rate <= 4:
            raise ProfileError(key, "rate must be 1..4")
        for slot in range(at // INTERVAL, DAY // INTERVAL):
            slots[slot] = rate
        previous = at
    return slots
