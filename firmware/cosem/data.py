"""Data, class_id 1, version 0 (Blue Book 4.3.1): one value of any A-XDR type."""

from firmware.cosem.base import CosemObject, DataAccessError, value_to_json, value_from_json
from firmware.dlms import axdr
from firmware.dlms import results as R


class Data(CosemObject):
    class_id = 1
    version = 0
    attribute_count = 2
    method_count = 0

    def __init__(self, logical_name, value=(axdr.NULL_DATA, None), fixed_type=True):
        CosemObject.__init__(self, logical_name)
        self.value = value
        # A SET must keep the type the object was configured with, unless it was
        # created as null-data (Blue Book leaves value's type to the instance).
        self.fixed_type = fixed_type

    def get_attribute(self, attribute, ctx, selector, parameters):
        return self.value

    def set_attribute(self, attribute, value, ctx):
        if self.fixed_type and self.value[0] != axdr.NULL_DATA and value[0] != self.value[0]:
            raise DataAccessError(R.TYPE_UNMATCHED, "value keeps its configured type")
        self.value = value

    def state(self):
        return {"value": value_to_json(self.value)}

    def restore(self, state):
        self.value = value_from_json(state["value"])
