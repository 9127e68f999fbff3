"""Script table (9): scripts attribute, execute through the injected runner (GB supply)."""

import json

from firmware.cosem.base import Context, DataAccessError, ActionError
from firmware.cosem.data import Data
from firmware.cosem.disconnect import DisconnectControl, CONNECTED, DISCONNECTED
from firmware.cosem.logical_device import LogicalDevice, full_access
from firmware.cosem.script import (ScriptTable, ScriptAction, logical_device_runner,
                                   WRITE_ATTRIBUTE, EXECUTE_METHOD)
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms.obis import DISCONNECT_CONTROL, SUPPLY_SCRIPT_TABLE

CTX = Context(1767225600, 1)
FLAG = b"\x00\x00\x60\x01\x00\xff"
ENABLE, DISABLE = 1, 2


def _code(fn, *args):
    try:
        fn(*args)
    except (DataAccessError, ActionError) as e:
        return e.code
    return None


def _supply_device():
    ld = LogicalDevice()
    dc = DisconnectControl(DISCONNECT_CONTROL, 2, CONNECTED)
    flag = Data(FLAG, (axdr.UNSIGNED, 0))
    scripts = [
        (ENABLE, [ScriptAction(EXECUTE_METHOD, 70, DISCONNECT_CONTROL, 2)]),
        (DISABLE, [ScriptAction(EXECUTE_METHOD, 70, DISCONNECT_CONTROL, 1),
                   ScriptAction(WRITE_ATTRIBUTE, 1, FLAG, 2, (axdr.UNSIGNED, 7))]),
    ]
    st = ScriptTable(SUPPLY_SCRIPT_TABLE, scripts, logical_device_runner(ld))
    for o in (dc, flag, st):
        ld.add(o, {1: full_access(o)})
    return ld, dc, flag, st


def test_execute_runs_the_actions_in_order():
    ld, dc, flag, st = _supply_device()
    assert st.action(1, (axdr.LONG_UNSIGNED, DISABLE), CTX) is None
    assert dc.control_state == DISCONNECTED
    assert flag.value == (axdr.UNSIGNED, 7)
    st.action(1, (axdr.LONG_UNSIGNED, ENABLE), CTX)
    assert dc.control_state == CONNECTED


def test_failing_action_is_the_action_result():
    ld, dc, flag, st = _supply_device()
    # enable while connected: remote_reconnect is illegal (Blue Book 4.5.8)
    assert _code(st.action, 1, (axdr.LONG_UNSIGNED, ENABLE), CTX) == R.ACTION_TEMPORARY_FAILURE
    assert dc.control_state == CONNECTED


def test_null_unknown_and_malformed_script_ids():
    ld, dc, flag, st = _supply_device()
    assert st.action(1, (axdr.LONG_UNSIGNED, 0), CTX) is None
    assert dc.control_state == CONNECTED
    assert _code(st.action, 1, (axdr.LONG_UNSIGNED, 9), CTX) == R.ACTION_OBJECT_UNAVAILABLE
    assert _code(st.action, 1, (axdr.UNSIGNED, 1), CTX) == R.ACTION_TYPE_UNMATCHED
    assert _code(st.action, 1, None, CTX) == R.ACTION_TYPE_UNMATCHED
    assert _code(st.action, 2, (axdr.LONG_UNSIGNED, 1), CTX) == R.ACTION_OBJECT_UNDEFINED


def test_runner_errors():
    ld, dc, flag, st = _supply_device()
    st.scripts.append((5, [ScriptAction(EXECUTE_METHOD, 70, b"\x00" * 6, 1)]))
    st.scripts.append((6, [ScriptAction(WRITE_ATTRIBUTE, 1, FLAG, 2, (axdr.LONG, 1))]))
    assert _code(st.action, 1, (axdr.LONG_UNSIGNED, 5), CTX) == R.ACTION_OBJECT_UNDEFINED
    assert _code(st.action, 1, (axdr.LONG_UNSIGNED, 6), CTX) == R.TYPE_UNMATCHED
    bare = ScriptTable(SUPPLY_SCRIPT_TABLE, [(1, [])])
    assert _code(bare.action, 1, (axdr.LONG_UNSIGNED, 1), CTX) == R.ACTION_OBJECT_UNAVAILABLE


def test_custom_runner_sees_each_action():
    seen = []
    st = ScriptTable(SUPPLY_SCRIPT_TABLE, [(3, [ScriptAction(EXECUTE_METHOD, 70, DISCONNECT_CONTROL, 1)])],
                     lambda action, ctx: seen.append((action.class_id, action.index, ctx.now)))
    st.execute(3, CTX)
    assert seen == [(70, 1, CTX.now)]


def test_scripts_attribute_encoding():
    ld, dc, flag, st = _supply_device()
    v = st.get(2, CTX)
    assert v[0] == axdr.ARRAY and len(v[1]) == 2
    enable = v[1][0]
    assert enable == (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, ENABLE), (axdr.ARRAY, [
        (axdr.STRUCTURE, [(axdr.ENUM, 2), (axdr.LONG_UNSIGNED, 70),
                          (axdr.OCTET_STRING, DISCONNECT_CONTROL), (axdr.INTEGER, 2),
                          (axdr.INTEGER, 0)])])])


def test_set_scripts_type_checks_and_persists():
    ld, dc, flag, st = _supply_device()
    new = (axdr.ARRAY, [(axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 4), (axdr.ARRAY, [
        (axdr.STRUCTURE, [(axdr.ENUM, 1), (axdr.LONG_UNSIGNED, 1), (axdr.OCTET_STRING, FLAG),
                          (axdr.INTEGER, 2), (axdr.UNSIGNED, 3)])])])])
    st.set(2, new, CTX)
    st.action(1, (axdr.LONG_UNSIGNED, 4), CTX)
    assert flag.value == (axdr.UNSIGNED, 3)
    bad_service = (axdr.ARRAY, [(axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 4), (axdr.ARRAY, [
        (axdr.STRUCTURE, [(axdr.ENUM, 3), (axdr.LONG_UNSIGNED, 1), (axdr.OCTET_STRING, FLAG),
                          (axdr.INTEGER, 2), (axdr.UNSIGNED, 3)])])])])
    assert _code(st.set, 2, bad_service, CTX) == R.OTHER_REASON
    duplicate = (axdr.ARRAY, [new[1][0], new[1][0]])
    assert _code(st.set, 2, duplicate, CTX) == R.OTHER_REASON
    assert _code(st.set, 2, (axdr.STRUCTURE, []), CTX) == R.TYPE_UNMATCHED
    saved = json.loads(json.dumps(st.state()))
    other = ScriptTable(SUPPLY_SCRIPT_TABLE)
    other.restore(saved)
    assert other.get(2, CTX) == new
