"""Disconnect control (70): the state machine of Blue Book 4.5.8 for control modes 0-6."""

import json

from firmware.cosem.base import Context, DataAccessError, ActionError
from firmware.cosem.disconnect import (DisconnectControl, DISCONNECTED, CONNECTED,
                                       READY_FOR_RECONNECTION)
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms.obis import DISCONNECT_CONTROL

CTX = Context(1767225600, 1)
D, C, RR = DISCONNECTED, CONNECTED, READY_FOR_RECONNECTION
STATES = (D, C, RR)
TRIGGERS = ("remote_disconnect", "remote_reconnect", "manual_disconnect", "manual_reconnect",
            "local_disconnect", "local_reconnect")

# Written out from the Blue Book mode descriptions (not from the module's table):
# (state, trigger) -> new state; every pair not listed is illegal in that mode.
COMMON = {(C, "remote_disconnect"): D, (RR, "remote_disconnect"): D,     # b, c
          (RR, "manual_reconnect"): C, (C, "local_disconnect"): RR}      # e, g
REMOTE_TO_READY = {(D, "remote_reconnect"): RR}                          # d
REMOTE_TO_CONNECTED = {(D, "remote_reconnect"): C}                       # a
MANUAL_OFF = {(C, "manual_disconnect"): RR}                              # f
LOCAL_ON = {(RR, "local_reconnect"): C}                                  # h


def _merge(*tables):
    out = {}
    for t in tables:
        for k in t:
            out[k] = t[k]
    return out


EXPECTED = {
    0: {},
    1: _merge(COMMON, REMOTE_TO_READY, MANUAL_OFF),
    2: _merge(COMMON, REMOTE_TO_CONNECTED, MANUAL_OFF),
    3: _merge(COMMON, REMOTE_TO_READY),
    4: _merge(COMMON, REMOTE_TO_CONNECTED),
    5: _merge(COMMON, REMOTE_TO_READY, MANUAL_OFF, LOCAL_ON),
    6: _merge(COMMON, REMOTE_TO_READY, LOCAL_ON),
}


def _apply(dc, trigger):
    """Run a trigger the way it arrives; True if it was accepted."""
    if trigger == "remote_disconnect" or trigger == "remote_reconnect":
        method = 1 if trigger == "remote_disconnect" else 2
        try:
            assert dc.action(method, (axdr.INTEGER, 0), CTX) is None
            return True
        except ActionError as e:
            assert e.code == R.ACTION_TEMPORARY_FAILURE
            return False
    return getattr(dc, trigger)() is not None


def test_transition_table_for_every_mode():
    for mode in range(7):
        for state in STATES:
            for trigger in TRIGGERS:
                log = []
                dc = DisconnectControl(DISCONNECT_CONTROL, mode, state,
                                       on_change=lambda *a: log.append(a))
                accepted = _apply(dc, trigger)
                expected = EXPECTED[mode].get((state, trigger))
                where = (mode, state, trigger)
                if expected is None:
                    assert not accepted, where
                    assert dc.control_state == state, where
                    assert log == [], where
                else:
                    assert accepted, where
                    assert dc.control_state == expected, where
                    assert len(log) == 1 and log[0][0] == state and log[0][1] == expected, where
                    assert log[0][3] == trigger, where


def test_output_state_follows_control_state():
    dc = DisconnectControl(DISCONNECT_CONTROL, 1, CONNECTED)
    assert dc.get(2, CTX) == (axdr.BOOLEAN, True)
    assert dc.get(3, CTX) == (axdr.ENUM, CONNECTED)
    dc.action(1, (axdr.INTEGER, 0), CTX)
    assert dc.get(2, CTX) == (axdr.BOOLEAN, False)
    assert dc.get(3, CTX) == (axdr.ENUM, DISCONNECTED)
    dc.action(2, (axdr.INTEGER, 0), CTX)
    assert dc.get(3, CTX) == (axdr.ENUM, READY_FOR_RECONNECTION)
    assert dc.get(2, CTX) == (axdr.BOOLEAN, False)
    assert dc.manual_reconnect() == "e"
    assert dc.get(2, CTX) == (axdr.BOOLEAN, True)


def test_gb_supply_sequence_in_mode_2():
    # remote reconnection goes straight to connected (transition a) in mode 2
    log = []
    dc = DisconnectControl(DISCONNECT_CONTROL, 2, CONNECTED, on_change=lambda *a: log.append(a[2]))
    dc.action(1, (axdr.INTEGER, 0), CTX)
    dc.action(2, (axdr.INTEGER, 0), CTX)
    assert dc.control_state == CONNECTED and log == ["b", "a"]


def test_control_mode_attribute():
    dc = DisconnectControl(DISCONNECT_CONTROL, 1)
    assert dc.get(4, CTX) == (axdr.ENUM, 1)
    dc.set(4, (axdr.ENUM, 4), CTX)
    assert dc.control_mode == 4
    for bad, code in (((axdr.ENUM, 7), R.OTHER_REASON), ((axdr.UNSIGNED, 1), R.TYPE_UNMATCHED)):
        try:
            dc.set(4, bad, CTX)
            assert False
        except DataAccessError as e:
            assert e.code == code
    for attribute in (2, 3):
        try:
            dc.set(attribute, (axdr.ENUM, 0), CTX)
            assert False
        except DataAccessError as e:
            assert e.code == R.READ_WRITE_DENIED
    try:
        dc.action(3, (axdr.INTEGER, 0), CTX)
        assert False
    except ActionError as e:
        assert e.code == R.ACTION_OBJECT_UNDEFINED


def test_state_round_trip():
    dc = DisconnectControl(DISCONNECT_CONTROL, 3, CONNECTED)
    dc.action(1, (axdr.INTEGER, 0), CTX)
    saved = json.loads(json.dumps(dc.state()))
    other = DisconnectControl(DISCONNECT_CONTROL)
    other.restore(saved)
    assert other.control_state == DISCONNECTED and other.control_mode == 3
    assert other.get(2, CTX) == (axdr.BOOLEAN, False)


def test_constructor_refuses_unknown_mode():
    try:
        DisconnectControl(DISCONNECT_CONTROL, 7)
        assert False
    except ValueError:
        pass
