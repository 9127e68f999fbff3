"""Device profiles: `profiles/*.toml` -> a validated dict -> the JSON the device core reads.

The TOML is the only hand-written form (ISSUE 2 "not written twice"); the JSON that a
board or the MicroPython runtime needs is generated here:

    profile = load_profile("profiles/esme-single-phase.toml")   # the JSON-form dict
    text = profile_json(path)                                    # its JSON text
    write_profile_json(path, out)                                # ... into a file

Conversions: TOML date-times -> integer seconds since 1970 UTC; TOML times of day ->
seconds of the day; kW -> integer W; V -> integer decivolts; authentication names ->
mechanism ids (0 none, 1 low). Any bad value raises `ProfileError` whose message names
the file and the dotted key (`objects.clock.access.management.write: ...`).
The shape of the result is documented in `firmware/devices/profile.py`.
"""

import datetime
import json
import pathlib
import tomllib

from firmware.board.meter import FAULTS
from firmware.devices import profile as fp
from firmware.devices.profile import ProfileError

PROFILES_DIR = pathlib.Path(__file__).resolve().parent.parent / "profiles"

_TOP_LEVEL = ("schema", "name", "device", "clock", "hdlc", "wrapper", "dlms", "clients",
              "load", "tou", "supply", "events", "objects", "fault")
_OBJECT_FIELDS = ("obis", "access", "initial_wh", "depth")
_DEPTH_LIMIT = 100000


class ProfileFileError(ProfileError):
    """A ProfileError that also names the file."""

    def __init__(self, source, key, reason):
        ValueError.__init__(self, "%s: %s: %s" % (source, key, reason))
        self.source = source
        self.key = key
        self.reason = reason


def profile_names():
    """Names of the profiles shipped in profiles/ ("esme-single-phase", ...)."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def profile_path(name_or_path):
    """A shipped profile by name, or a path to any TOML profile."""
    path = pathlib.Path(name_or_path)
    if path.suffix != ".toml" and not path.exists():
        path = PROFILES_DIR / (str(name_or_path) + ".toml")
    return path


def load_profile(path):
    """The validated JSON-form dict of the TOML profile at `path`."""
    path = profile_path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ProfileFileError(str(path), "(syntax)", str(err))
    return profile_from_toml(raw, str(path))


def profile_from_toml_text(text, source="<profile>"):
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ProfileFileError(source, "(syntax)", str(err))
    return profile_from_toml(raw, source)


def profile_from_toml(raw, source="<profile>"):
    try:
        profile = _convert(raw)
        _check_json_form(profile)
    except ProfileFileError:
        raise
    except ProfileError as err:
        raise ProfileFileError(source, err.key, err.reason) from None
    return profile


def profile_json(path):
    """The JSON text of the profile at `path` (keys sorted: stable bytes)."""
    return json.dumps(load_profile(path), sort_keys=True, separators=(",", ":"))


def write_profile_json(path, out):
    text = profile_json(path)
    pathlib.Path(out).write_text(text + "\n", encoding="utf-8")
    return out


# -- TOML -> JSON form ----------------------------------------------------------

def _convert(raw):
    _only(raw, "", _TOP_LEVEL)
    schema = _int(raw, "schema", 1, 1)
    variant = _choice(raw, "device.variant", fp.VARIANTS)
    clients = _clients(raw)
    profile = {
        "schema": schema,
        "name": _str(raw, "name", 1, 64),
        "device": _device(raw, variant),
        "clock": {"start": _instant(raw, "clock.start")},
        "hdlc": {"server_upper": _int(raw, "hdlc.server_upper", 0, 0x3FFF),
                 "server_lower": _int(raw, "hdlc.server_lower", 0, 0x3FFF)},
        "wrapper": {"wport": _int(raw, "wrapper.wport", 1, 0xFFFF),
                    "tcp_port": _int(raw, "wrapper.tcp_port", 1, 0xFFFF)},
        "dlms": {"max_pdu_size": _int(raw, "dlms.max_pdu_size", 64, 0xFFFF)},
        "clients": clients,
        "load": _load(raw, variant),
        "tou": {"switches": _switches(raw)},
        "supply": _supply(raw),
        "events": _events(raw),
        "objects": _objects(raw, variant, clients),
    }
    if "fault" in raw:
        profile["fault"] = _fault(raw)
    return profile


def _fault(raw):
    """A planted fault, for tests of the DUT fuzzer only (firmware/board/meter.py)."""
    _only(_table(raw, "fault"), "fault.", ("hang_on",))
    return {"hang_on": _choice(raw, "fault.hang_on", FAULTS)}


def _device(raw, variant):
    _only(raw.get("device", {}), "device.", ("kind", "variant", "logical_device_name", "eui"))
    if _str(raw, "device.kind", 1, 16) != "esme":
        raise ProfileError("device.kind", 'only "esme" profiles exist so far')
    name = _str(raw, "device.logical_device_name", 1, 16)
    if not name.isascii():
        raise ProfileError("device.logical_device_name", "must be ASCII")
    eui = _str(raw, "device.eui", 16, 16)
    try:
        bytes.fromhex(eui)
    except ValueError:
        raise ProfileError("device.eui", "must be 16 hex digits") from None
    return {"kind": "esme", "variant": variant, "logical_device_name": name,
            "eui": eui.upper()}


def _clients(raw):
    table = _table(raw, "clients")
    if not table:
        raise ProfileError("clients", "needs at least one client")
    out = {}
    saps = set()
    for name in table:
        key = "clients." + name
        _only(table[name], key + ".", ("sap", "authentication", "password"))
        sap = _int(raw, key + ".sap", 1, 0x7F)
        if sap in saps:
            raise ProfileError(key + ".sap", "SAP %d used twice" % sap)
        saps.add(sap)
        auth = _choice(raw, key + ".authentication", tuple(fp.AUTHENTICATIONS))
        client = {"sap": sap, "authentication": fp.AUTHENTICATIONS[auth]}
        if auth == "low":
            password = _str(raw, key + ".password", 1, 64)
            if not password.isascii():
                raise ProfileError(key + ".password", "must be ASCII")
            client["password"] = password
        elif "password" in table[name]:
            raise ProfileError(key + ".password", 'only a "low" client has a password')
        out[name] = client
    return out


def _load(raw, variant):
    fields = ("annual_kwh", "peak_kw", "phases", "noise_permille", "seasonal_permille",
              "voltage_v", "voltage_noise_v", "secondary")
    _only(_table(raw, "load"), "load.", fields)
    phases = _int(raw, "load.phases", 1, 3)
    if phases == 2:
        raise ProfileError("load.phases", "must be 1 or 3")
    if (phases == 3) != (variant == "polyphase"):
        raise ProfileError("load.phases", "3 phases exactly for the polyphase variant")
    load = {
        "annual_kwh": _int(raw, "load.annual_kwh", 1, 10 ** 7),
        "peak_w": _scaled(raw, "load.peak_kw", 1000, 1, 10 ** 6),
        "phases": phases,
        "noise_permille": _int(raw, "load.noise_permille", 0, 900, 350),
        "seasonal_permille": _int(raw, "load.seasonal_permille", 0, 1000, 1000),
        "voltage_dv": _scaled(raw, "load.voltage_v", 10, 1000, 5000, 230),
        "voltage_noise_dv": _scaled(raw, "load.voltage_noise_v", 10, 0, 500, 4),
    }
    has_secondary = "secondary" in raw["load"]
    if has_secondary != (variant == "twin-element"):
        raise ProfileError("load.secondary", "present exactly for the twin-element variant")
    if has_secondary:
        _only(_table(raw, "load.secondary"), "load.secondary.",
              ("rated_kw", "window_start", "window_end", "winter_intervals",
               "summer_intervals"))
        start = _time_of_day(raw, "load.secondary.window_start")
        end = _time_of_day(raw, "load.secondary.window_end")
        window = ((end - start) % fp.DAY) // fp.INTERVAL
        if window == 0:
            raise ProfileError("load.secondary.window_end", "the window is empty")
        winter = _int(raw, "load.secondary.winter_intervals", 0, window)
        summer = _int(raw, "load.secondary.summer_intervals", 0, winter)
        load["secondary"] = {
            "rated_w": _scaled(raw, "load.secondary.rated_kw", 1000, 1, 10 ** 6),
            "window_start": start, "window_end": end,
            "winter_intervals": winter, "summer_intervals": summer}
    return load


def _switches(raw):
    switches = _list(raw, "tou.switches")
    out = []
    for i in range(len(switches)):
        key = "tou.switches[%d]" % i
        item = switches[i]
        if not isinstance(item, dict):
            raise ProfileError(key, "must be a table { at = HH:MM:SS, rate = 1..4 }")
        _only(item, key + ".", ("at", "rate"))
        out.append([_time_of_day(item, "at", key + ".at"),
                    _int(item, "rate", 1, 4, key=key + ".rate")])
    return out


def _supply(raw):
    _only(_table(raw, "supply"), "supply.", ("initial", "control_mode", "scripts"))
    _only(_table(raw, "supply.scripts"), "supply.scripts.", ("enable", "disable", "arm"))
    scripts = {}
    for name in ("enable", "disable", "arm"):
        scripts[name] = _int(raw, "supply.scripts." + name, 1, 0xFFFF)
    if len(set(scripts.values())) != 3:
        raise ProfileError("supply.scripts", "enable, disable and arm need distinct ids")
    return {"initial": _choice(raw, "supply.initial", fp.SUPPLY_STATES),
            "control_mode": _int(raw, "supply.control_mode", 0, 6),
            "scripts": scripts}


def _events(raw):
    _only(_table(raw, "events"), "events.", fp.EVENTS)
    return {name: _int(raw, "events." + name, 0, 0xFFFF) for name in fp.EVENTS}


def _objects(raw, variant, clients):
    table = _table(raw, "objects")
    for role in table:
        if role not in fp.ROLES:
            raise ProfileError("objects." + role, "unknown object role (known: %s)"
                               % ", ".join(sorted(fp.ROLES)))
    out = {}
    for role in sorted(fp.ROLES):
        class_id, attributes, methods, defaults, required = fp.ROLES[role]
        if role == "secondary_import_energy":
            required = variant == "twin-element"
            if role in table and not required:
                raise ProfileError("objects." + role, "only a twin-element meter has it")
        if role not in table:
            if required:
                raise ProfileError("objects." + role, "missing")
            continue
        out[role] = _object(raw, role, table[role], attributes, methods, clients)
    _check_initial_values(out)
    return out


def _object(raw, role, spec, attributes, methods, clients):
    key = "objects." + role
    if not isinstance(spec, dict):
        raise ProfileError(key, "must be a table")
    _only(spec, key + ".", _OBJECT_FIELDS)
    obj = {"access": {}}
    access = spec.get("access", {})
    if not isinstance(access, dict):
        raise ProfileError(key + ".access", "must be a table of clients")
    for client in access:
        if client not in clients:
            raise ProfileError("%s.access.%s" % (key, client), "no such client in [clients]")
        # the firmware's own parser checks the spec against the class's counts
        fp.access_modes(access[client], "%s.access.%s" % (key, client), attributes, methods)
        obj["access"][client] = access[client]
    if "obis" in spec:
        obj["obis"] = spec["obis"]
        fp.role_names({"objects": {role: obj}}, role)
    if "depth" in spec:
        if role not in fp.PROFILE_ROLES:
            raise ProfileError(key + ".depth", "only profile objects have a depth")
        obj["depth"] = _int(spec, "depth", 1, _DEPTH_LIMIT, key=key + ".depth")
    elif role in fp.PROFILE_ROLES:
        raise ProfileError(key + ".depth", "missing")
    if "initial_wh" in spec:
        obj["initial_wh"] = _initial_wh(spec["initial_wh"], role, key + ".initial_wh")
    return obj


def _initial_wh(value, role, key):
    if role == "import_energy_tou":
        if not isinstance(value, list) or len(value) != 4:
            raise ProfileError(key, "needs 4 values, rates 1..4")
        for v in value:
            _check_wh(v, key)
        return list(value)
    if role not in ("import_energy", "secondary_import_energy"):
        raise ProfileError(key, "only energy registers have an initial value")
    _check_wh(value, key)
    return value


def _check_wh(value, key):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFFFFFF:
        raise ProfileError(key, "must be an integer Wh in 0..4294967295")


def _check_initial_values(objects):
    total = objects["import_energy"].get("initial_wh", 0)
    rates = objects["import_energy_tou"].get("initial_wh", [0, 0, 0, 0])
    if sum(rates) != total:
        raise ProfileError("objects.import_energy_tou.initial_wh",
                           "rates add up to %d, import_energy.initial_wh is %d"
                           % (sum(rates), total))


def _check_json_form(profile):
    """What the firmware itself will check, so errors surface on the host first."""
    fp.client_saps(profile)
    fp.tou_slots(profile)
    json.dumps(profile)


# -- typed lookups that name the key ----------------------------------------------

def _get(raw, path, default=fp._MISSING, key=None):
    return fp.lookup(raw, path, default) if key is None else _lookup_keyed(raw, path,
                                                                            default, key)


def _lookup_keyed(raw, path, default, key):
    try:
        return fp.lookup(raw, path, default)
    except ProfileError:
        raise ProfileError(key, "missing") from None


def _int(raw, path, low, high, default=fp._MISSING, key=None):
    key = key or path
    value = _get(raw, path, default, key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProfileError(key, "must be an integer")
    if not low <= value <= high:
        raise ProfileError(key, "must be in %d..%d" % (low, high))
    return value


def _scaled(raw, path, factor, low, high, default=fp._MISSING):
    """A number (int or float) in TOML units -> an integer in units/factor."""
    value = _get(raw, path, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProfileError(path, "must be a number")
    scaled = round(value * factor)
    if not low <= scaled <= high:
        raise ProfileError(path, "out of range")
    return scaled


def _str(raw, path, shortest, longest):
    value = _get(raw, path)
    if not isinstance(value, str):
        raise ProfileError(path, "must be a string")
    if not shortest <= len(value) <= longest:
        raise ProfileError(path, "length must be %d..%d" % (shortest, longest))
    return value


def _choice(raw, path, choices):
    value = _get(raw, path)
    if value not in choices:
        raise ProfileError(path, "must be one of %s" % ", ".join(choices))
    return value


def _table(raw, path):
    value = _get(raw, path)
    if not isinstance(value, dict):
        raise ProfileError(path, "must be a table")
    return value


def _list(raw, path):
    value = _get(raw, path)
    if not isinstance(value, list) or not value:
        raise ProfileError(path, "must be a non-empty array")
    return value


def _only(table, prefix, allowed):
    if not isinstance(table, dict):
        raise ProfileError(prefix.rstrip(".") or "(top level)", "must be a table")
    for name in table:
        if name not in allowed:
            raise ProfileError(prefix + name, "unknown key")


def _instant(raw, path):
    value = _get(raw, path)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ProfileError(path, "needs an offset (write it in UTC: ...Z)")
        seconds = int(value.timestamp())
        if seconds < 0:
            raise ProfileError(path, "must be after 1970")
        return seconds
    raise ProfileError(path, "must be a TOML date-time such as 2026-01-01T00:00:00Z")


def _time_of_day(raw, path, key=None):
    key = key or path
    value = _get(raw, path, key=key)
    if not isinstance(value, datetime.time):
        raise ProfileError(key, "must be a TOML time of day such as 07:00:00")
    seconds = value.hour * 3600 + value.minute * 60 + value.second
    if value.microsecond or seconds % fp.INTERVAL:
        raise ProfileError(key, "must fall on a half hour")
    return seconds
