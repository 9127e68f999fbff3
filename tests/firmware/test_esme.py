"""The ESME application on both runtimes: objects from a profile, the simulation walk,
supply control, clock setting, persistence. Host tests of the shipped TOML profiles are
in tests/emulator/test_profiles.py."""

import json
import os
import sys

from firmware.cosem.base import ActionError, Context
from firmware.cosem.disconnect import CONNECTED, DISCONNECTED, READY_FOR_RECONNECTION
from firmware.devices import profile as P
from firmware.devices.esme import Esme
from firmware.dlms import axdr
from firmware.dlms import obis as O
from firmware.dlms.cosem_datetime import datetime_bytes, datetime_seconds
from firmware.persist import FileStateStore, MemoryStateStore, StateError
from firmware.sim.clock import SimulatedClock, SteppedClock

START = 1767225600          # 2026-01-01T00:00:00Z, a Thursday
HOUR = 3600
DAY = 86400
PUBLIC = 16
MANAGEMENT = 1
ENABLE, DISABLE, ARM = 51, 52, 54
EV_POWER_UP, EV_CLOCK, EV_ARMED, EV_OFF, EV_ON, EV_LOCAL_ON = 2, 5, 59, 62, 63, 61

READ = "read"
MGMT = {"read": "all", "write": [2], "methods": "all"}


def tiny_profile(variant="single-phase", phases=1, secondary=None, initial="connected"):
    """A small profile in the JSON form (what emulator/profiles.py generates)."""
    load = {"annual_kwh": 3650, "peak_w": 9200, "phases": phases, "noise_permille": 350,
            "seasonal_permille": 1000, "voltage_dv": 2300, "voltage_noise_dv": 40}
    objects = {}
    for role in P.ROLES:
        objects[role] = {"access": {"public": READ, "management": MGMT}}
    del objects["secondary_import_energy"]
    objects["supply_scripts"]["access"]["public"] = "none"
    objects["association"] = {"access": {"public": {"read": [1, 2, 3, 4, 5, 6, 8, 9]},
                                         "management": {"read": [1, 2, 3], "write": [7]}}}
    objects["import_energy"]["initial_wh"] = 1000
    objects["import_energy_tou"]["initial_wh"] = [400, 300, 200, 100]
    objects["hh_profile"]["depth"] = 400
    objects["daily_log"]["depth"] = 10
    objects["event_log"]["depth"] = 50
    if secondary is not None:
        load["secondary"] = secondary
        objects["secondary_import_energy"] = {"access": {"public": READ}, "initial_wh": 7}
    return {
        "schema": 1, "name": "tiny",
        "device": {"kind": "esme", "variant": variant,
                   "logical_device_name": "EMU0TEST00000001", "eui": "00DB1234567890A0"},
        "clock": {"start": START},
        "hdlc": {"server_upper": 1, "server_lower": 16},
        "wrapper": {"wport": 1, "tcp_port": 4059},
        "dlms": {"max_pdu_size": 1024},
        "clients": {"public": {"sap": PUBLIC, "authentication": 0},
                    "management": {"sap": MANAGEMENT, "authentication": 1,
                                   "password": "secret01"}},
        "load": load,
        "tou": {"switches": [[0, 1], [7 * HOUR, 2], [16 * HOUR, 3], [19 * HOUR, 2],
                             [23 * HOUR, 1]]},
        "supply": {"initial": initial, "control_mode": 4,
                   "scripts": {"enable": ENABLE, "disable": DISABLE, "arm": ARM}},
        "events": {"power_down": 1, "power_up": EV_POWER_UP, "clock_adjusted": EV_CLOCK,
                   "supply_armed": EV_ARMED, "supply_disconnected": EV_OFF,
                   "supply_connected": EV_ON, "supply_connected_locally": EV_LOCAL_ON},
        "objects": objects,
    }


TWIN_SECONDARY = {"rated_w": 3400, "window_start": 1800, "window_end": 27000,
                  "winter_intervals": 14, "summer_intervals": 2}


def make(profile=None, start=START, seed=1):
    clock = SteppedClock(start)
    return Esme(profile or tiny_profile(), clock, seed=seed), clock


def run_to(esme, clock, t):
    clock.set(t)
    esme.advance(t)


def total(esme):
    return esme.import_register.value[1]


def rates(esme):
    return [r.value[1] for r in esme.rate_registers]


def rows(profile_generic):
    """Decoded entries of a ProfileGeneric buffer, as lists of payloads."""
    out = []
    for raw in profile_generic.entries():
        value = axdr.decode_all(bytes(raw))
        out.append([v[1] for v in value[1]])
    return out


def events(esme):
    return [(datetime_seconds(r[0]), r[1]) for r in rows(esme.event_log)]


def execute_script(esme, script_id, sap=MANAGEMENT):
    ctx = Context(esme.clock(), sap)
    return esme.supply_scripts.action(1, (axdr.LONG_UNSIGNED, script_id), ctx)


def _raises(fn, exc):
    try:
        fn()
    except exc:
        return True
    return False


# -- building -------------------------------------------------------------------

def test_objects_built_from_profile_with_their_classes():
    esme, _ = make()
    ld = esme.logical_device
    for role in P.ROLES:
        if role in ("secondary_import_energy", "association"):
            continue
        class_id, attributes, methods, names, _required = P.ROLES[role]
        expected = names[:1] if role == "voltage" else names
        for name in expected:
            obj = ld.find(class_id, name)
            assert obj is not None, role
            assert obj.attribute_count == attributes, role
            assert obj.method_count == methods, role
    assert ld.find(3, O.VOLTAGE_L1) is not None
    assert ld.find(3, P.VOLTAGE_L2) is None          # single phase: one voltage


def test_registers_carry_scaler_and_unit():
    esme, _ = make()
    ctx = esme.context()
    su = esme.import_register.get(3, ctx)
    assert su == (axdr.STRUCTURE, [(axdr.INTEGER, 0), (axdr.ENUM, 30)])    # Wh
    assert esme.power_register.get(3, ctx)[1][1] == (axdr.ENUM, 27)        # W
    assert esme.voltage_registers[0].get(3, ctx)[1] == [(axdr.INTEGER, -1), (axdr.ENUM, 35)]
    assert esme.import_register.get(2, ctx) == (axdr.DOUBLE_LONG_UNSIGNED, 1000)
    assert rates(esme) == [400, 300, 200, 100]
    assert esme.name_object.get(2, ctx) == (axdr.OCTET_STRING, b"EMU0TEST00000001")


def test_access_rights_follow_the_profile():
    esme, _ = make()
    ld = esme.logical_device
    assert ld.attribute_access(PUBLIC, esme.import_register, 2) == 1
    assert ld.method_access(PUBLIC, esme.supply_scripts, 1) == 0
    assert ld.method_access(MANAGEMENT, esme.supply_scripts, 1) == 1
    assert ld.attribute_access(MANAGEMENT, esme.clock_object, 2) == 3
    assert ld.client(MANAGEMENT).secret == b"secret01"
    assert ld.client(PUBLIC).authentication == 0
    assert ld.client(MANAGEMENT).association is not ld.client(PUBLIC).association
    own = ld.client(PUBLIC).association
    assert own.attribute_count == P.ROLES["association"][1]
    assert own.method_count == P.ROLES["association"][2]
    assert ld.find(15, O.CURRENT_ASSOCIATION, PUBLIC) is own
    assert ld.attribute_access(PUBLIC, own, 7) == 0         # the profile's rights
    assert ld.attribute_access(MANAGEMENT, ld.client(MANAGEMENT).association, 7) == 2


def test_associations_default_when_the_profile_is_silent():
    profile = tiny_profile()
    del profile["objects"]["association"]
    esme, _ = make(profile)
    ld = esme.logical_device
    management = ld.client(MANAGEMENT).association
    assert ld.attribute_access(MANAGEMENT, management, 2) == 1
    assert ld.attribute_access(MANAGEMENT, management, 7) == 2


def test_polyphase_has_a_voltage_per_phase():
    esme, clock = make(tiny_profile("polyphase", phases=3))
    run_to(esme, clock, START + 600)
    ld = esme.logical_device
    for name in (O.VOLTAGE_L1, P.VOLTAGE_L2, P.VOLTAGE_L3):
        register = ld.find(3, name)
        assert 2200 < register.value[1] < 2400


def test_power_up_is_the_first_event():
    esme, _ = make()
    assert events(esme) == [(START, EV_POWER_UP)]


def test_bad_profile_names_the_key():
    profile = tiny_profile()
    profile["tou"]["switches"][1][1] = 7
    try:
        make(profile)
        assert False, "a rate of 7 was accepted"
    except P.ProfileError as err:
        assert err.key == "tou.switches[1]"
    profile = tiny_profile()
    profile["objects"]["clock"]["access"]["management"] = {"write": [10]}
    try:
        make(profile)
        assert False, "attribute 10 of a clock was accepted"
    except P.ProfileError as err:
        assert err.key == "objects.clock.access.management.write"
    profile = tiny_profile()
    profile["load"]["phases"] = 2
    try:
        make(profile)
        assert False, "two phases were accepted"
    except P.ProfileError as err:
        assert err.key == "load"


# -- the simulation walk ------------------------------------------------------------

def test_registers_are_monotonic_and_tou_adds_up():
    esme, clock = make()
    t = START
    last_total = total(esme)
    last_rates = rates(esme)
    step = 0
    while t < START + 3 * DAY:
        step += 1
        t += 97 + (step * 611) % 1500
        run_to(esme, clock, t)
        now_rates = rates(esme)
        assert total(esme) >= last_total
        for i in range(4):
            assert now_rates[i] >= last_rates[i]
        assert sum(now_rates) == total(esme)
        last_total, last_rates = total(esme), now_rates
    assert total(esme) > 1000 + 3 * 5000          # ~10 kWh a day were drawn


def test_one_hh_entry_per_interval_with_capture_times():
    esme, clock = make()
    run_to(esme, clock, START + 3 * DAY + 900)
    entries = rows(esme.hh_profile)
    assert len(entries) == 3 * 48
    assert esme.hh_profile.entries_in_use == 3 * 48
    for i in range(len(entries)):
        assert datetime_seconds(entries[i][0]) == START + (i + 1) * 1800
    # every Wh in the registers is in an entry, except the half-hour still open
    assert sum(e[1] for e in entries) <= total(esme) - 1000
    assert esme.interval_register.value[1] == entries[-1][1]


def test_result_does_not_depend_on_how_time_is_stepped():
    one, clock_one = make()
    run_to(one, clock_one, START + 2 * DAY + 1234)
    many, clock_many = make()
    t = START
    while t < START + 2 * DAY + 1234:
        t = min(t + 317, START + 2 * DAY + 1234)
        run_to(many, clock_many, t)
    assert rows(one.hh_profile) == rows(many.hh_profile)
    assert rates(one) == rates(many)
    assert total(one) == total(many)


def test_daily_log_captures_registers_at_midnight():
    esme, clock = make()
    at_midnight = []
    for day in range(1, 4):
        run_to(esme, clock, START + day * DAY - 1)
        run_to(esme, clock, START + day * DAY)
        at_midnight.append([total(esme)] + rates(esme))
    run_to(esme, clock, START + 3 * DAY + 5 * HOUR)
    log = rows(esme.daily_log)
    assert len(log) == 3
    for day in range(3):
        assert datetime_seconds(log[day][0]) == START + (day + 1) * DAY
        assert log[day][1:] == at_midnight[day]
        assert sum(log[day][2:]) == log[day][1]


def test_energy_goes_to_the_rate_of_its_band():
    esme, clock = make()
    before = rates(esme)
    run_to(esme, clock, START + 7 * HOUR)                 # 00:00-07:00 is rate 1
    night = rates(esme)
    assert night[0] > before[0] and night[1:] == before[1:]
    run_to(esme, clock, START + 16 * HOUR)                # 07:00-16:00 is rate 2
    day = rates(esme)
    assert day[1] > night[1] and day[0] == night[0] and day[2:] == night[2:]
    run_to(esme, clock, START + 19 * HOUR)                # 16:00-19:00 is rate 3
    peak = rates(esme)
    assert peak[2] > day[2] and peak[3] == day[3] == 100


def test_instantaneous_power_follows_the_load_and_voltage_is_near_230():
    esme, clock = make()
    run_to(esme, clock, START + 18 * HOUR + 60)
    evening = esme.power_register.value[1]
    assert 200 < evening < 9200
    assert 2250 <= esme.voltage_registers[0].value[1] <= 2350


# -- supply -----------------------------------------------------------------------

def test_supply_off_stops_accrual_and_logs_events():
    esme, clock = make()
    run_to(esme, clock, START + 10 * HOUR + 600)
    execute_script(esme, DISABLE)
    assert esme.supply_state == DISCONNECTED
    assert esme.disconnect.get(2, esme.context()) == (axdr.BOOLEAN, False)
    off_total = total(esme)
    run_to(esme, clock, START + 20 * HOUR)
    assert total(esme) == off_total
    assert esme.power_register.value[1] == 0
    entries = rows(esme.hh_profile)
    assert [e[1] for e in entries[21:]] == [0] * (len(entries) - 21)
    assert entries[20][1] > 0                       # 10:00-10:30 ran for 10 minutes
    execute_script(esme, ENABLE)
    assert esme.supply_state == CONNECTED
    run_to(esme, clock, START + 22 * HOUR)
    assert total(esme) > off_total
    assert events(esme)[1:] == [(START + 10 * HOUR + 600, EV_OFF),
                                (START + 20 * HOUR, EV_ON)]


def test_arm_then_button_reconnects_locally():
    esme, clock = make(tiny_profile(initial="disconnected"))
    run_to(esme, clock, START + HOUR)
    assert total(esme) == 1000
    execute_script(esme, ARM)
    assert esme.supply_state == READY_FOR_RECONNECTION
    run_to(esme, clock, START + 2 * HOUR)
    assert total(esme) == 1000                      # armed is still off
    assert esme.press_button()
    assert esme.supply_state == CONNECTED
    run_to(esme, clock, START + 3 * HOUR)
    assert total(esme) > 1000
    assert [e[1] for e in events(esme)] == [EV_POWER_UP, EV_ARMED, EV_LOCAL_ON]


def test_arming_a_connected_supply_and_repeating_commands_change_nothing():
    esme, clock = make()
    execute_script(esme, ARM)
    execute_script(esme, ENABLE)
    assert esme.supply_state == CONNECTED
    execute_script(esme, DISABLE)
    execute_script(esme, DISABLE)
    assert [e[1] for e in events(esme)] == [EV_POWER_UP, EV_OFF]
    assert not esme.press_button()                  # nothing armed: the button does nothing


def test_unknown_script_is_refused():
    esme, _ = make()
    assert _raises(lambda: execute_script(esme, 53), ActionError)
    assert esme.supply_state == CONNECTED


def test_direct_disconnect_control_method_also_stops_accrual():
    esme, clock = make()
    run_to(esme, clock, START + HOUR)
    esme.disconnect.action(1, (axdr.INTEGER, 0), esme.context(MANAGEMENT))
    before = total(esme)
    run_to(esme, clock, START + 2 * HOUR)
    assert total(esme) == before
    assert events(esme)[-1] == (START + HOUR, EV_OFF)


# -- clock ------------------------------------------------------------------------

def test_client_setting_the_clock_rebases_and_logs():
    esme, clock = make()
    run_to(esme, clock, START + HOUR)
    target = START + 5 * DAY + 600
    esme.clock_object.set(2, (axdr.OCTET_STRING, datetime_bytes(target)),
                          esme.context(MANAGEMENT))
    assert clock() == target
    assert events(esme)[-1] == (target, EV_CLOCK)
    hh_before = esme.hh_profile.entries_in_use
    run_to(esme, clock, target + 1200)              # the open interval ends at +1200
    assert esme.hh_profile.entries_in_use == hh_before + 1
    last = rows(esme.hh_profile)[-1]
    assert datetime_seconds(last[0]) == START + 5 * DAY + 1800
    assert len(rows(esme.daily_log)) == 0           # the skipped midnights are not invented


def test_runs_on_a_fast_simulated_clock_and_a_client_can_set_it():
    ticks = [0]
    clock = SimulatedClock(START, speed=1800, ticks_ms=lambda: ticks[0])
    esme = Esme(tiny_profile(), clock, seed=1)
    ticks[0] += 48 * 1000                           # 48 s of board time = one day
    esme.advance(clock())
    assert clock() == START + DAY
    assert esme.hh_profile.entries_in_use == 48 and esme.daily_log.entries_in_use == 1
    target = START + 10 * DAY
    esme.clock_object.set(2, (axdr.OCTET_STRING, datetime_bytes(target)),
                          esme.context(MANAGEMENT))
    assert clock() == target
    ticks[0] += 1000
    esme.advance(clock())
    assert clock() == target + 1800
    assert esme.hh_profile.entries_in_use == 49


# -- persistence ----------------------------------------------------------------------

def _busy_day(esme, clock, start):
    run_to(esme, clock, start + 5 * HOUR + 77)
    execute_script(esme, DISABLE)
    run_to(esme, clock, start + 6 * HOUR)
    execute_script(esme, ENABLE)
    run_to(esme, clock, start + 30 * HOUR + 901)


def test_restore_gives_the_same_future_as_never_stopping():
    profile = tiny_profile("twin-element", secondary=TWIN_SECONDARY)
    steady, steady_clock = make(profile, seed=5)
    _busy_day(steady, steady_clock, START)
    saved = json.loads(json.dumps(steady.save_state()))    # through JSON: JSON-safe

    restored, restored_clock = make(profile, seed=5)
    restored.restore_state(saved)
    assert restored_clock() == steady_clock()
    for t in (START + 31 * HOUR, START + 40 * HOUR + 13, START + 3 * DAY):
        run_to(steady, steady_clock, t)
        run_to(restored, restored_clock, t)
        assert rows(restored.hh_profile) == rows(steady.hh_profile)
        assert rows(restored.event_log) == rows(steady.event_log)
        assert restored.save_state() == steady.save_state()
    execute_script(steady, DISABLE)
    execute_script(restored, DISABLE)
    assert restored.save_state() == steady.save_state()


def test_restore_refuses_a_foreign_state():
    esme, _ = make()
    assert _raises(lambda: esme.restore_state({"format": 99}), ValueError)


def test_state_survives_the_file_store():
    directory = "/tmp/smets-emu-test-esme-" + sys.implementation.name
    store = FileStateStore(directory)
    _cleanup(directory)
    try:
        assert store.load() is None
        esme, clock = make()
        run_to(esme, clock, START + DAY + 100)
        store.save(esme.save_state())
        store.save(esme.save_state())              # the second save replaces the first
        again, again_clock = make()
        again.restore_state(store.load())
        run_to(esme, clock, START + 2 * DAY)
        run_to(again, again_clock, START + 2 * DAY)
        assert again.save_state() == esme.save_state()
    finally:
        _cleanup(directory)


def test_file_store_survives_a_cut_at_any_step():
    directory = "/tmp/smets-emu-test-persist-" + sys.implementation.name
    store = FileStateStore(directory)
    _cleanup(directory)
    try:
        store.save({"n": 1})
        # cut while writing the temp file: the old state is what loads
        _write(store.temp_path, '{"n": 2, "half')
        assert store.load() == {"n": 1}
        # cut between removing the old file and the rename (FAT-style replace)
        os.remove(store.path)
        _write(store.temp_path, '{"n": 2}')
        assert store.load() == {"n": 2}
        # the next save completes normally
        store.save({"n": 3})
        assert store.load() == {"n": 3}
        # a state file that is not ours is an error, not a silent fresh start
        _write(store.path, "not json")
        assert _raises(store.load, StateError)
    finally:
        _cleanup(directory)


def test_memory_store_round_trip():
    store = MemoryStateStore()
    assert store.load() is None
    store.save({"a": [1, 2]})
    assert store.load() == {"a": [1, 2]}
    assert _raises(lambda: store.save([1]), TypeError)


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _cleanup(directory):
    for name in ("state.json", "state.json.tmp"):
        try:
            os.remove(directory + "/" + name)
        except OSError:
            pass
    try:
        os.rmdir(directory)
    except OSError:
        pass


# -- twin element ------------------------------------------------------------------------

def test_twin_element_secondary_charges_only_in_its_window():
    esme, clock = make(tiny_profile("twin-element", secondary=TWIN_SECONDARY))
    assert esme.secondary_register.value[1] == 7
    run_to(esme, clock, START + DAY)                # from midnight: tonight's window ran
    first_night = esme.secondary_register.value[1]
    assert first_night > 7
    run_to(esme, clock, START + DAY + 1800)
    assert esme.secondary_register.value[1] == first_night     # 00:00-00:30 is outside
    run_to(esme, clock, START + DAY + 8 * HOUR)
    assert esme.secondary_register.value[1] > first_night
    run_to(esme, clock, START + DAY + 20 * HOUR)
    assert sum(rates(esme)) == total(esme)          # the primary's TOU is unaffected
    log = rows(esme.daily_log)
    assert len(log) == 1 and log[0][6] == first_night           # its own daily column


def test_a_month_in_one_step():
    esme, clock = make()
    run_to(esme, clock, START + 31 * DAY)
    assert esme.hh_profile.entries_in_use == 400     # depth of the tiny profile
    assert esme.daily_log.entries_in_use == 10
    assert datetime_seconds(rows(esme.hh_profile)[-1][0]) == START + 31 * DAY


# -- served by the xDLMS server (the path a client takes) ------------------------------

def _served(esme, client, password=None):
    from firmware.dlms import acse as C
    from firmware.dlms.server import DlmsServer
    server = DlmsServer(esme.logical_device, esme.clock)
    session = server.new_session()
    initiate = C.InitiateRequest(proposed_dlms_version_number=6,
                                 proposed_conformance=0xFFFFFF,
                                 client_max_receive_pdu_size=0xFFFF)
    request = C.Aarq(C.LN_NO_CIPHERING, user_information=initiate.encode())
    if password is not None:
        request.sender_acse_requirements = True
        request.mechanism_name = C.MECHANISM_LOW
        request.calling_authentication_value = password
    assert C.decode_acse(session.handle(request.encode(), client)).result == C.RESULT_ACCEPTED
    return session


def _get(session, client, class_id, name, attribute, selection=None):
    from firmware.dlms import apdu as A
    request = A.GetRequestNormal(0xC1, A.AttributeDescriptor(class_id, name, attribute),
                                 selection)
    reply = A.decode_apdu(session.handle(request.encode(), client))
    raw = bytearray()
    while isinstance(reply, A.GetResponseWithDatablock):
        assert reply.data_access_result is None
        raw.extend(reply.raw_data)
        if reply.last_block:
            return axdr.decode_all(bytes(raw))
        nxt = A.GetRequestNext(0xC1, reply.block_number).encode()
        reply = A.decode_apdu(session.handle(nxt, client))
    assert reply.result.data_access_result is None, reply
    return reply.result.data


def _action(session, client, class_id, name, method, parameters):
    from firmware.dlms import apdu as A
    request = A.ActionRequestNormal(0xC3, A.MethodDescriptor(class_id, name, method),
                                    parameters)
    return A.decode_apdu(session.handle(request.encode(), client)).result


def test_public_client_reads_the_meter_through_the_server():
    esme, clock = make()
    run_to(esme, clock, START + DAY + 600)
    session = _served(esme, PUBLIC)
    objects = _get(session, PUBLIC, 15, O.CURRENT_ASSOCIATION, 2)[1]
    listed = [(o[1][0][1], o[1][2][1]) for o in objects]
    assert (7, O.HH_PROFILE) in listed and (3, O.IMPORT_ACTIVE_ENERGY) in listed
    assert (9, O.SUPPLY_SCRIPT_TABLE) not in listed          # "none" for the public client
    assert _get(session, PUBLIC, 3, O.IMPORT_ACTIVE_ENERGY, 2) == esme.import_register.value
    clock_time = _get(session, PUBLIC, 8, O.CLOCK, 2)[1]
    assert datetime_seconds(clock_time) == START + DAY + 600
    by_entry = ((axdr.STRUCTURE, [(axdr.DOUBLE_LONG_UNSIGNED, 2), (axdr.DOUBLE_LONG_UNSIGNED, 3),
                                  (axdr.LONG_UNSIGNED, 1), (axdr.LONG_UNSIGNED, 0)]))
    from firmware.dlms import apdu as A
    two = _get(session, PUBLIC, 7, O.HH_PROFILE, 2, A.SelectiveAccess(2, by_entry))[1]
    assert [r[1] for r in two] == [[(axdr.OCTET_STRING, e[0]), (axdr.DOUBLE_LONG_UNSIGNED, e[1])]
                                   for e in rows(esme.hh_profile)[1:3]]
    whole = _get(session, PUBLIC, 7, O.HH_PROFILE, 2)[1]
    assert len(whole) == 48


def test_management_client_switches_the_supply_through_the_server():
    esme, clock = make()
    run_to(esme, clock, START + HOUR)
    public = _served(esme, PUBLIC)
    refused = _action(public, PUBLIC, 9, O.SUPPLY_SCRIPT_TABLE, 1, (axdr.LONG_UNSIGNED, DISABLE))
    assert refused != 0 and esme.supply_state == CONNECTED
    session = _served(esme, MANAGEMENT, b"secret01")
    assert _action(session, MANAGEMENT, 9, O.SUPPLY_SCRIPT_TABLE, 1,
                   (axdr.LONG_UNSIGNED, DISABLE)) == 0
    assert esme.supply_state == DISCONNECTED
    assert _get(session, MANAGEMENT, 70, O.DISCONNECT_CONTROL, 3) == (axdr.ENUM, DISCONNECTED)
    assert events(esme)[-1] == (START + HOUR, EV_OFF)
