"""Common ground of every COSEM interface class (DLMS UA 1000-1 Blue Book 4.1).

Contract: docs/CORE_INTERFACES.md section 2. An object answers GET/SET/ACTION on its
own attributes and methods; access rights are the LogicalDevice's business, so an
object only refuses what no client may ever do (reading a write-only secret, writing
a value that is computed).

Result codes chosen where the Blue Book is silent:
- attribute or method index outside the class -> object-undefined;
- a value of the wrong A-XDR type -> type-unmatched;
- a value of the right type but outside the attribute's range -> other-reason;
- an unsupported selective-access selector or malformed access parameters ->
  scope-of-access-violated (the client asked for a view the object cannot give).
"""

import binascii

from firmware.dlms import axdr
from firmware.dlms import results as R


class DataAccessError(Exception):
    """A GET or SET that fails with a data-access-result (Green Book, xDLMS ASN.1)."""

    def __init__(self, code, reason=""):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class ActionError(Exception):
    """An ACTION that fails with an action-result (Green Book, xDLMS ASN.1)."""

    def __init__(self, code, reason=""):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class Context:
    """Who is asking, and when: `now` is the device's integer seconds since 1970 UTC."""

    def __init__(self, now, client_sap, session=None):
        self.now = now
        self.client_sap = client_sap
        self.session = session


class CosemObject:
    class_id = 0
    version = 0
    attribute_count = 1
    method_count = 0

    def __init__(self, logical_name):
        if not isinstance(logical_name, (bytes, bytearray)) or len(logical_name) != 6:
            raise ValueError("logical name must be 6 bytes")
        self.logical_name = bytes(logical_name)

    # -- services ---------------------------------------------------------------

    def get(self, attribute, ctx, selector=0, parameters=None):
        self._check_attribute(attribute)
        if selector and selector not in self.selectors(attribute):
            raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "selector not supported")
        if attribute == 1:
            return (axdr.OCTET_STRING, self.logical_name)
        return self.get_attribute(attribute, ctx, selector, parameters)

    def set(self, attribute, value, ctx):
        self._check_attribute(attribute)
        if attribute == 1:
            raise DataAccessError(R.READ_WRITE_DENIED, "logical_name is fixed")
        if not isinstance(value, tuple) or len(value) != 2:
            raise DataAccessError(R.TYPE_UNMATCHED, "not a tagged value")
        self.set_attribute(attribute, value, ctx)

    def action(self, method, parameters, ctx):
        if not isinstance(method, int) or method < 1 or method > self.method_count:
            raise ActionError(R.ACTION_OBJECT_UNDEFINED, "no such method")
        return self.run_method(method, parameters, ctx)

    def selectors(self, attribute):
        return ()

    # -- what subclasses implement --------------------------------------------

    def get_attribute(self, attribute, ctx, selector, parameters):
        raise DataAccessError(R.READ_WRITE_DENIED)

    def set_attribute(self, attribute, value, ctx):
        raise DataAccessError(R.READ_WRITE_DENIED)

    def run_method(self, method, parameters, ctx):
        raise ActionError(R.ACTION_OBJECT_UNAVAILABLE)

    def state(self):
        """JSON-safe snapshot of the dynamic attributes (values, buffers, states)."""
        return {}

    def restore(self, state):
        pass

    def _check_attribute(self, attribute):
        if not isinstance(attribute, int) or attribute < 1 or attribute > self.attribute_count:
            raise DataAccessError(R.OBJECT_UNDEFINED, "no such attribute")


# -- type and range checks shared by the classes ---------------------------------

INTEGER_TAGS = (axdr.INTEGER, axdr.LONG, axdr.DOUBLE_LONG, axdr.LONG64, axdr.UNSIGNED,
                axdr.LONG_UNSIGNED, axdr.DOUBLE_LONG_UNSIGNED, axdr.LONG64_UNSIGNED,
                axdr.ENUM)


def expect(value, tag):
    """The payload of `value` if it carries `tag`, else type-unmatched."""
    if value[0] != tag:
        raise DataAccessError(R.TYPE_UNMATCHED, "expected tag %d" % tag)
    return value[1]


def expect_int(value, tag, low, high):
    payload = expect(value, tag)
    if payload < low or payload > high:
        raise DataAccessError(R.OTHER_REASON, "value out of range")
    return payload


def expect_logical_name(value):
    payload = expect(value, axdr.OCTET_STRING)
    if len(payload) != 6:
        raise DataAccessError(R.OTHER_REASON, "logical name must be 6 bytes")
    return bytes(payload)


def expect_structure(value, count):
    items = expect(value, axdr.STRUCTURE)
    if len(items) != count:
        raise DataAccessError(R.TYPE_UNMATCHED, "structure of %d expected" % count)
    return items


def action_error(err):
    """Re-raise a DataAccessError met while running a method as the ActionError."""
    return ActionError(err.code, err.reason)


# -- tagged values <-> JSON (for state()/restore()) --------------------------------

def _hex(b):
    return binascii.hexlify(b).decode()


def _unhex(s):
    return binascii.unhexlify(s)


BYTES_TAGS = (axdr.OCTET_STRING, axdr.VISIBLE_STRING, axdr.UTF8_STRING,
              axdr.DATE_TIME, axdr.DATE, axdr.TIME)


def value_to_json(value):
    """A tagged value as JSON-safe lists: bytes become hex, lists are recursed."""
    tag, payload = value
    if tag in BYTES_TAGS:
        return [tag, _hex(payload)]
    if tag == axdr.ARRAY or tag == axdr.STRUCTURE:
        return [tag, [value_to_json(v) for v in payload]]
    if tag == axdr.BIT_STRING:
        return [tag, [payload[0], _hex(payload[1])]]
    if tag == axdr.COMPACT_ARRAY:
        return [tag, [_description_to_json(payload[0]),
                      [value_to_json(v) for v in payload[1]]]]
    return [tag, payload]


def value_from_json(data):
    tag, payload = data[0], data[1]
    if tag in BYTES_TAGS:
        return (tag, _unhex(payload))
    if tag == axdr.ARRAY or tag == axdr.STRUCTURE:
        return (tag, [value_from_json(v) for v in payload])
    if tag == axdr.BIT_STRING:
        return (tag, (payload[0], _unhex(payload[1])))
    if tag == axdr.COMPACT_ARRAY:
        return (tag, (_description_from_json(payload[0]),
                      [value_from_json(v) for v in payload[1]]))
    if tag == axdr.BOOLEAN:
        return (tag, bool(payload))
    return (tag, payload)


def _description_to_json(desc):
    if isinstance(desc, int):
        return desc
    if desc[0] == axdr.ARRAY:
        return [desc[0], desc[1], _description_to_json(desc[2])]
    return [desc[0], [_description_to_json(d) for d in desc[1]]]


def _description_from_json(desc):
    if isinstance(desc, int):
        return desc
    if desc[0] == axdr.ARRAY:
        return (desc[0], desc[1], _description_from_json(desc[2]))
    return (desc[0], [_description_from_json(d) for d in desc[1]])


def hex_bytes(b):
    return _hex(b)


def bytes_hex(s):
    return _unhex(s)
