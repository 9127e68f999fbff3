"""Data protection, class_id 30, version 0 (DLMS UA 1000-1 Blue Book 4.4.9), as GBCS uses it
for encrypted reads (ECS17b, ECS21a, ECS22b: GBCS 7.2.x and DOMAIN.md "Encrypted fields").

Attributes: protection_buffer (2, octet-string: the last protected result),
protection_object_list (3, array of object_definition {class_id, logical_name}: what may
be read through this object), protection_parameters_get (4), protection_parameters_set
(5, arrays of protection_parameters_element), required_protection (6, enum).
Method get_protected_attributes (1):

    request  ::= structure { object_list array of structure { class_id long-unsigned,
                   logical_name octet-string, attribute_index integer,
                   data_index long-unsigned, restriction structure {
                     restriction_type enum (0 none, 1 by date, 2 by entry),
                     restriction_value CHOICE { null-data,
                       structure {from_date, to_date octet-string(12)},
                       structure {from_entry, to_entry double-long-unsigned} } } },
                 get_protection_parameters array of protection_parameters_element }
    protection_parameters_element ::= structure { protection_type enum (2 authenticated
                 encryption), protection_options structure { transaction_id octet-string,
                 originator_system_title, recipient_system_title, other_information
                 octet-string, key_info structure {key_info_type enum (2 agreed key),
                 structure {key_parameters octet-string, key_ciphered_data octet-string}}}}
    response ::= structure { protection parameters (originator and recipient swapped),
                 protected_attributes octet-string }

The protected attributes are the A-XDR structure of the values read, encrypted as the GBCS
encrypted field `31 00000000 || ciphertext || 12-byte tag` (AES-128-GCM, IV = the
protecting party's EUI-64 || 00000000, AAD = 31), under the key the SP800-56A KDF derives
in mode 4 from the static-static ECDH secret: originator = the protecting device, the
transaction id's counter, recipient = the requester (checked against RTDS 4.5.0 ECS17b,
ECS21a and ECS22b responses). The transaction id is `04 || counter (8)`: the KDF's own
`mode || counter`. The key comes from the injected `key_for(requester, recipient, counter,
ctx)` (the device checks who may ask and holds the key agreement), the AES from `crypto`.

A restriction by date reads a profile with selective access 1 (range on the clock
column), by entry with selective access 2 (Blue Book 4.3.6).
"""

from firmware.cosem.base import (ActionError, CosemObject, DataAccessError, action_error,
                                 expect, expect_int, expect_structure, expect_logical_name)
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms.obis import CLOCK

ENCRYPTED_FIELD_TAG = 0x31
FIELD_HEADER = b"\x31\x00\x00\x00\x00"
TAG_LENGTH = 12
KDF_MODE_ENCRYPTION = 4

AUTHENTICATED_ENCRYPTION = 2
KEY_INFO_AGREED_KEY = 2
GBCS_KEY_PARAMETERS = b"\x02"        # as RTDS sends them (static-static C(0e, 2s))

RESTRICTION_NONE = 0
RESTRICTION_BY_DATE = 1
RESTRICTION_BY_ENTRY = 2

SELECTOR_RANGE = 1
SELECTOR_ENTRY = 2
CLOCK_CLASS = 8


# -- the GBCS encrypted field ---------------------------------------------------------

def field_iv(originator):
    return bytes(originator) + b"\x00\x00\x00\x00"


def encrypt_field(crypto, key, originator, plaintext):
    ciphertext, tag = crypto.gcm_encrypt(key, field_iv(originator), plaintext,
                                         bytes((ENCRYPTED_FIELD_TAG,)))
    return FIELD_HEADER + ciphertext + tag[:TAG_LENGTH]


def decrypt_field(crypto, key, originator, field):
    """Plaintext of an encrypted field; ValueError when it is malformed or does not verify."""
    field = bytes(field)
    if len(field) < len(FIELD_HEADER) + TAG_LENGTH or field[:5] != FIELD_HEADER:
        raise ValueError("not a GBCS encrypted field (31 00000000 ... tag)")
    return crypto.gcm_decrypt(key, field_iv(originator), field[5:-TAG_LENGTH],
                              bytes((ENCRYPTED_FIELD_TAG,)), field[-TAG_LENGTH:])


# -- building the request and response values --------------------------------------------

def transaction_id(counter):
    return bytes((KDF_MODE_ENCRYPTION,)) + counter.to_bytes(8, "big")


def protection_parameters(counter, originator, recipient):
    """get_protection_parameters: one authenticated-encryption element with agreed key."""
    options = (axdr.STRUCTURE, [
        (axdr.OCTET_STRING, transaction_id(counter)),
        (axdr.OCTET_STRING, bytes(originator)),
        (axdr.OCTET_STRING, bytes(recipient)),
        (axdr.OCTET_STRING, b""),
        (axdr.STRUCTURE, [(axdr.ENUM, KEY_INFO_AGREED_KEY), (axdr.STRUCTURE, [
            (axdr.OCTET_STRING, GBCS_KEY_PARAMETERS), (axdr.OCTET_STRING, b"")])]),
    ])
    return (axdr.ARRAY, [(axdr.STRUCTURE, [(axdr.ENUM, AUTHENTICATED_ENCRYPTION), options])])


def encoded_protection_parameters(counter, originator, recipient):
    """`protection_parameters` already written as A-XDR (axdr.RAW). Only the transaction
    id and the two EUI-64s change from one element to the next, and their lengths never
    do: the encoding is laid out once and the three fields copied in (every encrypted
    read answers with one). Other lengths: the value, for the encoder to check."""
    if len(originator) != 8 or len(recipient) != 8:
        return protection_parameters(counter, originator, recipient)
    if not _PARAMETERS_LAYOUT:
        _PARAMETERS_LAYOUT.extend(_parameters_layout())
    head, middle, between, tail = _PARAMETERS_LAYOUT
    return (axdr.RAW, b"".join((head, transaction_id(counter), middle, bytes(originator),
                                between, bytes(recipient), tail)))


_PARAMETERS_LAYOUT = []


def _parameters_layout():
    """The bytes around the three fields, cut from an element written with markers."""
    mark_originator, mark_recipient = b"\xaa" * 8, b"\xbb" * 8
    encoded = axdr.encode(protection_parameters(0, mark_originator, mark_recipient))
    head, rest = encoded.split(transaction_id(0), 1)
    middle, rest = rest.split(mark_originator, 1)
    between, tail = rest.split(mark_recipient, 1)
    return head, middle, between, tail


def restriction_none():
    return (axdr.STRUCTURE, [(axdr.ENUM, RESTRICTION_NONE), (axdr.NULL_DATA, None)])


def restriction_by_date(from_date, to_date):
    return (axdr.STRUCTURE, [(axdr.ENUM, RESTRICTION_BY_DATE), (axdr.STRUCTURE, [
        (axdr.OCTET_STRING, bytes(from_date)), (axdr.OCTET_STRING, bytes(to_date))])])


def restriction_by_entry(from_entry, to_entry):
    return (axdr.STRUCTURE, [(axdr.ENUM, RESTRICTION_BY_ENTRY), (axdr.STRUCTURE, [
        (axdr.DOUBLE_LONG_UNSIGNED, from_entry), (axdr.DOUBLE_LONG_UNSIGNED, to_entry)])])


def object_list_element(class_id, logical_name, attribute_index, data_index=0,
                        restriction=None):
    return (axdr.STRUCTURE, [
        (axdr.LONG_UNSIGNED, class_id), (axdr.OCTET_STRING, bytes(logical_name)),
        (axdr.INTEGER, attribute_index), (axdr.LONG_UNSIGNED, data_index),
        restriction if restriction is not None else restriction_none()])


def get_request(objects, counter, originator, recipient):
    """The parameters of get_protected_attributes."""
    return (axdr.STRUCTURE, [(axdr.ARRAY, list(objects)),
                             protection_parameters(counter, originator, recipient)])


class ProtectionParameters:
    def __init__(self, protection_type, counter, originator, recipient, other_information,
                 key_info_type, key_parameters):
        self.protection_type = protection_type
        self.counter = counter
        self.originator = originator
        self.recipient = recipient
        self.other_information = other_information
        self.key_info_type = key_info_type
        self.key_parameters = key_parameters


def parse_protection_parameters(value):
    """The one protection_parameters_element of `value`; DataAccessError if malformed."""
    known = _well_formed_parameters(value)
    return known if known is not None else _walked_parameters(value)


def _walked_parameters(value):
    """`parse_protection_parameters` field by field, each check in turn (the first fault)."""
    elements = expect(value, axdr.ARRAY)
    if len(elements) != 1:
        raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "one protection element expected")
    element = expect_structure(elements[0], 2)
    protection_type = expect_int(element[0], axdr.ENUM, 0, 255)
    options = expect_structure(element[1], 5)
    tid = expect(options[0], axdr.OCTET_STRING)
    if len(tid) != 9 or tid[0] != KDF_MODE_ENCRYPTION:
        raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "transaction id is 04 || counter")
    originator = bytes(expect(options[1], axdr.OCTET_STRING))
    recipient = bytes(expect(options[2], axdr.OCTET_STRING))
    if len(originator) != 8 or len(recipient) != 8:
        raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "system titles are EUI-64s")
    other = bytes(expect(options[3], axdr.OCTET_STRING))
    key_info = expect_structure(options[4], 2)
    key_type = expect_int(key_info[0], axdr.ENUM, 0, 255)
    agreed = expect_structure(key_info[1], 2)
    key_parameters = bytes(expect(agreed[0], axdr.OCTET_STRING))
    expect(agreed[1], axdr.OCTET_STRING)
    return ProtectionParameters(protection_type, int.from_bytes(bytes(tid[1:]), "big"),
                                originator, recipient, other, key_type, key_parameters)


_WELL_FORMED_TAGS = (axdr.ARRAY, axdr.STRUCTURE, axdr.STRUCTURE, axdr.STRUCTURE,
                     axdr.STRUCTURE, axdr.ENUM, axdr.ENUM, axdr.OCTET_STRING,
                     axdr.OCTET_STRING, axdr.OCTET_STRING, axdr.OCTET_STRING,
                     axdr.OCTET_STRING, axdr.OCTET_STRING)


def _well_formed_parameters(value):
    """The element read in one unpacking when it has exactly the shape and types the walk
    in `parse_protection_parameters` accepts (every encrypted read carries one, each way);
    None for anything else, which the walk then reads and reports."""
    try:
        array, [(structure, [(protection_enum, protection_type), (options_tag, [
            (tid_tag, tid), (originator_tag, originator), (recipient_tag, recipient),
            (other_tag, other), (key_info_tag, [(key_type_enum, key_type), (agreed_tag, [
                (parameters_tag, key_parameters), (ciphered_tag, _)])])])])] = value
        if not ((array, structure, options_tag, key_info_tag, agreed_tag, protection_enum,
                 key_type_enum, tid_tag, originator_tag, recipient_tag, other_tag,
                 parameters_tag, ciphered_tag) == _WELL_FORMED_TAGS
                and 0 <= protection_type <= 255 and 0 <= key_type <= 255
                and len(tid) == 9 and tid[0] == KDF_MODE_ENCRYPTION
                and len(originator) == 8 and len(recipient) == 8):
            return None
    except (TypeError, ValueError):
        return None
    return ProtectionParameters(protection_type, int.from_bytes(bytes(tid[1:]), "big"),
                                bytes(originator), bytes(recipient), bytes(other), key_type,
                                bytes(key_parameters))


def parse_response(value):
    """(ProtectionParameters, protected_attributes bytes) of a method 1 response."""
    items = expect_structure(value, 2)
    return parse_protection_parameters(items[0]), bytes(expect(items[1], axdr.OCTET_STRING))


# -- the interface class -----------------------------------------------------------------

class DataProtection(CosemObject):
    class_id = 30
    version = 0
    attribute_count = 6
    method_count = 3

    def __init__(self, logical_name, resolve, crypto, key_for, own_eui, protected_objects=()):
        CosemObject.__init__(self, logical_name)
        self.resolve = resolve              # resolve(class_id, logical_name) -> object|None
        self.crypto = crypto
        self.key_for = key_for              # key_for(requester, recipient, counter, ctx)
        self.own_eui = bytes(own_eui)
        self.protected_objects = [(c, bytes(n)) for c, n in protected_objects]
        self.buffer = b""
        self.required_protection = AUTHENTICATED_ENCRYPTION

    def get_protected_attributes(self, parameters, ctx):
        try:
            items = expect_structure(parameters, 2)
            requested = expect(items[0], axdr.ARRAY)
            params = parse_protection_parameters(items[1])
        except DataAccessError as e:
            raise action_error(e)
        if (params.protection_type != AUTHENTICATED_ENCRYPTION
                or params.key_info_type != KEY_INFO_AGREED_KEY):
            raise ActionError(R.ACTION_SCOPE_OF_ACCESS_VIOLATED,
                              "only authenticated encryption with an agreed key")
        if params.recipient != self.own_eui:
            raise ActionError(R.ACTION_SCOPE_OF_ACCESS_VIOLATED, "not addressed to this device")
        values = []
        for element in requested:
            values.append(self._read(element, ctx))
        key = self.key_for(params.originator, params.recipient, params.counter, ctx)
        if key is None:
            raise ActionError(R.ACTION_READ_WRITE_DENIED, "no key agreement with the requester")
        plaintext = axdr.encode((axdr.STRUCTURE, values))
        protected = encrypt_field(self.crypto, key, self.own_eui, plaintext)
        self.buffer = protected
        answer = encoded_protection_parameters(params.counter, self.own_eui,
                                               params.originator)
        return (axdr.STRUCTURE, [answer, (axdr.OCTET_STRING, protected)])

    def _read(self, element, ctx):
        try:
            fields = expect_structure(element, 5)
            class_id = expect_int(fields[0], axdr.LONG_UNSIGNED, 0, 0xFFFF)
            name = expect_logical_name(fields[1])
            attribute = expect_int(fields[2], axdr.INTEGER, -128, 127)
            data_index = expect_int(fields[3], axdr.LONG_UNSIGNED, 0, 0xFFFF)
            selector, selection = _restriction(fields[4])
        except DataAccessError as e:
            raise action_error(e)
        if (class_id, name) not in self.protected_objects:
            raise ActionError(R.ACTION_READ_WRITE_DENIED, "not in the protection object list")
        obj = self.resolve(class_id, name)
        if obj is None:
            raise ActionError(R.ACTION_OBJECT_UNDEFINED, "no such object")
        try:
            value = obj.get(attribute, ctx, selector, selection)
        except DataAccessError as e:
            raise action_error(e)
        if data_index:
            if value[0] not in (axdr.ARRAY, axdr.STRUCTURE) or data_index > len(value[1]):
                raise ActionError(R.ACTION_SCOPE_OF_ACCESS_VIOLATED, "data index out of range")
            value = value[1][data_index - 1]
        return value

    # -- COSEM services ------------------------------------------------------------------

    def get_attribute(self, attribute, ctx, selector, parameters):
        if attribute == 2:
            return (axdr.OCTET_STRING, self.buffer)
        if attribute == 3:
            return (axdr.ARRAY, [(axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, c),
                                                   (axdr.OCTET_STRING, n)])
                                 for c, n in self.protected_objects])
        if attribute == 6:
            return (axdr.ENUM, self.required_protection)
        return (axdr.ARRAY, [])

    def run_method(self, method, parameters, ctx):
        if method != 1:
            raise ActionError(R.ACTION_OBJECT_UNAVAILABLE, "only get_protected_attributes")
        return self.get_protected_attributes(parameters, ctx)


def _restriction(value):
    """(selector, selective access parameters) for a restriction_element."""
    items = expect_structure(value, 2)
    kind = expect_int(items[0], axdr.ENUM, 0, 2)
    if kind == RESTRICTION_NONE:
        expect(items[1], axdr.NULL_DATA)
        return 0, None
    bounds = expect_structure(items[1], 2)
    if kind == RESTRICTION_BY_DATE:
        clock_column = (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, CLOCK_CLASS),
                                         (axdr.OCTET_STRING, CLOCK), (axdr.INTEGER, 2),
                                         (axdr.LONG_UNSIGNED, 0)])
        for bound in bounds:
            if len(expect(bound, axdr.OCTET_STRING)) != 12:
                raise DataAccessError(R.TYPE_UNMATCHED, "dates are date-times")
        return SELECTOR_RANGE, (axdr.STRUCTURE, [clock_column, bounds[0], bounds[1],
                                                 (axdr.ARRAY, [])])
    first = expect_int(bounds[0], axdr.DOUBLE_LONG_UNSIGNED, 0, 0xFFFFFFFF)
    last = expect_int(bounds[1], axdr.DOUBLE_LONG_UNSIGNED, 0, 0xFFFFFFFF)
    return SELECTOR_ENTRY, (axdr.STRUCTURE, [(axdr.DOUBLE_LONG_UNSIGNED, first),
                                             (axdr.DOUBLE_LONG_UNSIGNED, last),
                                             (axdr.LONG_UNSIGNED, 1), (axdr.LONG_UNSIGNED, 0)])
