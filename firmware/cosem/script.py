"""Script table, class_id 9, version 0 (Blue Book 4.5.2).

scripts (2) ::= array of structure {script_identifier long-unsigned,
  actions array of structure {service_id enum (1 write attribute, 2 execute method),
  class_id long-unsigned, logical_name octet-string, index integer, parameter data}}.
execute (1) with data ::= long-unsigned script_identifier runs the actions in order.

The actions run through the `run_action(action, ctx)` callback the application
injects; `logical_device_runner(ld)` builds the usual one, which writes attributes and
invokes methods of the logical device's objects. GB uses this for supply control:
script table 0.0.10.0.106.255 scripts enable / disable / arm run Disconnect control
0.0.96.3.10.255 remote_reconnect / remote_disconnect (GBCS ECS42/43/44).

Script identifier 0 is the null script (Blue Book: it does nothing). An unknown
identifier answers object-unavailable; a failing action stops the script and its
action-result is returned (actions already done stay done, as on a meter).
"""

from firmware.cosem.base import (CosemObject, ActionError, DataAccessError, expect,
                                 expect_int, expect_structure, expect_logical_name,
                                 value_to_json, value_from_json)
from firmware.dlms import axdr
from firmware.dlms import results as R

WRITE_ATTRIBUTE = 1
EXECUTE_METHOD = 2


class ScriptAction:
    def __init__(self, service_id, class_id, logical_name, index, parameter=None):
        if service_id != WRITE_ATTRIBUTE and service_id != EXECUTE_METHOD:
            raise ValueError("service_id must be 1 or 2")
        self.service_id = service_id
        self.class_id = class_id
        self.logical_name = bytes(logical_name)
        self.index = index
        self.parameter = parameter if parameter is not None else (axdr.INTEGER, 0)

    def value(self):
        return (axdr.STRUCTURE, [(axdr.ENUM, self.service_id),
                                 (axdr.LONG_UNSIGNED, self.class_id),
                                 (axdr.OCTET_STRING, self.logical_name),
                                 (axdr.INTEGER, self.index), self.parameter])


def parse_script(value):
    items = expect_structure(value, 2)
    script_id = expect_int(items[0], axdr.LONG_UNSIGNED, 0, 0xFFFF)
    actions = []
    for a in expect(items[1], axdr.ARRAY):
        f = expect_structure(a, 5)
        service = expect_int(f[0], axdr.ENUM, WRITE_ATTRIBUTE, EXECUTE_METHOD)
        actions.append(ScriptAction(service, expect_int(f[1], axdr.LONG_UNSIGNED, 0, 0xFFFF),
                                    expect_logical_name(f[2]),
                                    expect_int(f[3], axdr.INTEGER, -128, 127), f[4]))
    return (script_id, actions)


def logical_device_runner(logical_device):
    """run_action callback acting on the objects of `logical_device` directly (a script
    runs inside the device, so client access rights do not apply)."""
    def run(action, ctx):
        obj = logical_device.find(action.class_id, action.logical_name)
        if obj is None:
            raise ActionError(R.ACTION_OBJECT_UNDEFINED, "script target does not exist")
        if action.service_id == WRITE_ATTRIBUTE:
            try:
                obj.set(action.index, action.parameter, ctx)
            except DataAccessError as e:
                raise ActionError(e.code, e.reason)
        else:
            obj.action(action.index, action.parameter, ctx)
    return run


class ScriptTable(CosemObject):
    class_id = 9
    version = 0
    attribute_count = 2
    method_count = 1

    def __init__(self, logical_name, scripts=(), run_action=None):
        CosemObject.__init__(self, logical_name)
        # scripts: list of (script_identifier, [ScriptAction]) in the order shown
        self.scripts = [(s[0], list(s[1])) for s in scripts]
        self.run_action = run_action

    def execute(self, script_id, ctx):
        if script_id == 0:
            return
        actions = None
        for s in self.scripts:
            if s[0] == script_id:
                actions = s[1]
        if actions is None:
            raise ActionError(R.ACTION_OBJECT_UNAVAILABLE, "no script %d" % script_id)
        if self.run_action is None:
            raise ActionError(R.ACTION_OBJECT_UNAVAILABLE, "no action runner")
        for a in actions:
            self.run_action(a, ctx)

    def get_attribute(self, attribute, ctx, selector, parameters):
        return (axdr.ARRAY, [(axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, s[0]),
                                               (axdr.ARRAY, [a.value() for a in s[1]])])
                             for s in self.scripts])

    def set_attribute(self, attribute, value, ctx):
        scripts = [parse_script(v) for v in expect(value, axdr.ARRAY)]
        seen = []
        for s in scripts:
            if s[0] in seen:
                raise DataAccessError(R.OTHER_REASON, "duplicate script identifier")
            seen.append(s[0])
        self.scripts = scripts

    def run_method(self, method, parameters, ctx):
        if parameters is None or parameters[0] != axdr.LONG_UNSIGNED:
            raise ActionError(R.ACTION_TYPE_UNMATCHED, "script identifier is long-unsigned")
        self.execute(parameters[1], ctx)
        return None

    def state(self):
        # scripts are writable (attribute 2), so they persist with the device
        return {"scripts": value_to_json(self.get_attribute(2, None, 0, None))}

    def restore(self, state):
        self.set_attribute(2, value_from_json(state["scripts"]), None)
