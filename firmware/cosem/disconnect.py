"""Disconnect control, class_id 70, version 0 (Blue Book 4.5.8).

States (control_state, attribute 3): 0 disconnected, 1 connected,
2 ready_for_reconnection; output_state (attribute 2) is true only when connected.

Transitions (Blue Book 4.5.8, state diagram):
  a remote_reconnect   disconnected -> connected
  b remote_disconnect  connected -> disconnected
  c remote_disconnect  ready_for_reconnection -> disconnected
  d remote_reconnect   disconnected -> ready_for_reconnection
  e manual_reconnect   ready_for_reconnection -> connected
  f manual_disconnect  connected -> ready_for_reconnection
  g local_disconnect   connected -> ready_for_reconnection
  h local_reconnect    ready_for_reconnection -> connected

Allowed per control_mode (attribute 4):
  0 none (always connected)   1 b c d e f g   2 a b c e f g   3 b c d e g
  4 a b c e g   5 b c d e f g h   6 b c d e g h

A trigger with no allowed transition from the current state (including any trigger
in mode 0) is illegal: the methods answer action-result temporary-failure, the
local/manual triggers return None, and the state is unchanged either way.
"""

from firmware.cosem.base import CosemObject, ActionError, DataAccessError, expect_int
from firmware.dlms import axdr
from firmware.dlms import results as R

DISCONNECTED = 0
CONNECTED = 1
READY_FOR_RECONNECTION = 2

# transition -> (trigger, from_state, to_state)
TRANSITIONS = {
    "a": ("remote_reconnect", DISCONNECTED, CONNECTED),
    "b": ("remote_disconnect", CONNECTED, DISCONNECTED),
    "c": ("remote_disconnect", READY_FOR_RECONNECTION, DISCONNECTED),
    "d": ("remote_reconnect", DISCONNECTED, READY_FOR_RECONNECTION),
    "e": ("manual_reconnect", READY_FOR_RECONNECTION, CONNECTED),
    "f": ("manual_disconnect", CONNECTED, READY_FOR_RECONNECTION),
    "g": ("local_disconnect", CONNECTED, READY_FOR_RECONNECTION),
    "h": ("local_reconnect", READY_FOR_RECONNECTION, CONNECTED),
}

MODE_TRANSITIONS = {
    0: "",
    1: "bcdefg",
    2: "abcefg",
    3: "bcdeg",
    4: "abceg",
    5: "bcdefgh",
    6: "bcdegh",
}


def transition_for(mode, state, trigger):
    """The letter of the transition `trigger` makes from `state` in `mode`, or None."""
    for letter in MODE_TRANSITIONS.get(mode, ""):
        t = TRANSITIONS[letter]
        if t[0] == trigger and t[1] == state:
            return letter
    return None


class DisconnectControl(CosemObject):
    class_id = 70
    version = 0
    attribute_count = 4
    method_count = 2

    def __init__(self, logical_name, control_mode=1, control_state=CONNECTED,
                 on_change=None):
        CosemObject.__init__(self, logical_name)
        if control_mode not in MODE_TRANSITIONS:
            raise ValueError("control mode must be 0..6")
        self.control_mode = control_mode
        self.control_state = control_state
        # on_change(old_state, new_state, transition_letter, trigger): log and persist
        self.on_change = on_change

    @property
    def output_state(self):
        return self.control_state == CONNECTED

    def trigger(self, trigger):
        """Apply `trigger`; returns the transition letter, or None if it is illegal."""
        letter = transition_for(self.control_mode, self.control_state, trigger)
        if letter is None:
            return None
        old = self.control_state
        self.control_state = TRANSITIONS[letter][2]
        if self.on_change is not None:
            self.on_change(old, self.control_state, letter, trigger)
        return letter

    def manual_disconnect(self):
        return self.trigger("manual_disconnect")

    def manual_reconnect(self):
        return self.trigger("manual_reconnect")

    def local_disconnect(self):
        return self.trigger("local_disconnect")

    def local_reconnect(self):
        return self.trigger("local_reconnect")

    # -- COSEM services ---------------------------------------------------------------

    def get_attribute(self, attribute, ctx, selector, parameters):
        if attribute == 2:
            return (axdr.BOOLEAN, self.output_state)
        if attribute == 3:
            return (axdr.ENUM, self.control_state)
        return (axdr.ENUM, self.control_mode)

    def set_attribute(self, attribute, value, ctx):
        if attribute != 4:
            raise DataAccessError(R.READ_WRITE_DENIED, "state changes only by methods")
        self.control_mode = expect_int(value, axdr.ENUM, 0, 6)

    def run_method(self, method, parameters, ctx):
        # remote_disconnect (1) / remote_reconnect (2), data ::= integer(0)
        trigger = "remote_disconnect" if method == 1 else "remote_reconnect"
        if self.trigger(trigger) is None:
            raise ActionError(R.ACTION_TEMPORARY_FAILURE,
                              "%s not allowed in state %d, mode %d"
                              % (trigger, self.control_state, self.control_mode))
        return None

    def state(self):
        return {"control_state": self.control_state, "control_mode": self.control_mode}

    def restore(self, state):
        self.control_state = state["control_state"]
        self.control_mode = state["control_mode"]
