# The GB COSEM classes: Credit (112), Account (111), Charge (113), Token gateway (115) and
# Data protection (30). Pure Python stand-ins for the crypto (hashlib only), so this runs
# under MicroPython too; tests/emulator/test_esme_usecases.py opens real RTDS encrypted
# fields with AES-GCM.

import hashlib
from binascii import unhexlify

from firmware.cosem import data_protection as DP
from firmware.cosem.base import ActionError, Context, CosemObject, DataAccessError
from firmware.cosem.prepayment import (ACCOUNT_ACTIVE, ACCOUNT_CLOSED, ACCOUNT_NEW, Account,
                                       Charge, Credit, INT32_MAX, STATUS_SELECTED)
from firmware.cosem.token_gateway import (AUTHENTICATION_FAILURE, EXECUTION_FAILURE,
                                          EXECUTION_OK, FORMAT_FAILURE, NOT_YET_PROCESSED,
                                          TokenGateway, TokenRefused, VALIDATION_FAILURE)
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.gbcs import utrn as U

NOW = 1767225600
CTX = Context(NOW, 1)
SUPPLIER = unhexlify("90B3D51F30010000")
DEVICE = unhexlify("00DB1234567890A0")
OTHER_DEVICE = unhexlify("00DB1234567890A1")


class ToyCrypto:
    """hashlib stand-ins: the GCM tag covers key, IV, AAD and ciphertext; the keystream
    depends on key and IV. Not secure; keeps what the tests check."""

    def sha256(self, data):
        return hashlib.sha256(data).digest()

    def gmac(self, key, iv, aad):
        return hashlib.sha256(b"gmac" + key + iv + aad).digest()[:16]

    def _stream(self, key, iv, n):
        out = b""
        block = 0
        while len(out) < n:
            out += hashlib.sha256(key + iv + bytes((block,))).digest()
            block += 1
        return out[:n]

    def gcm_encrypt(self, key, iv, plaintext, aad):
        stream = self._stream(key, iv, len(plaintext))
        ciphertext = bytes(plaintext[i] ^ stream[i] for i in range(len(plaintext)))
        return ciphertext, hashlib.sha256(key + iv + aad + ciphertext).digest()[:16]

    def gcm_decrypt(self, key, iv, ciphertext, aad, tag):
        if hashlib.sha256(key + iv + aad + ciphertext).digest()[:len(tag)] != tag:
            raise ValueError("GCM tag does not verify")
        stream = self._stream(key, iv, len(ciphertext))
        return bytes(ciphertext[i] ^ stream[i] for i in range(len(ciphertext)))


CRYPTO = ToyCrypto()


def _action_error(fn, code):
    try:
        fn()
    except ActionError as e:
        assert e.code == code, (e.code, code)
        return e
    raise AssertionError("no ActionError")


def _access_error(fn, code):
    try:
        fn()
    except DataAccessError as e:
        assert e.code == code, (e.code, code)
        return
    raise AssertionError("no DataAccessError")


# -- Credit, Account, Charge ------------------------------------------------------------------

def _credit(amount=0):
    return Credit(unhexlify("0000130a00ff"), amount=amount)


def test_credit_update_and_set_amount_by_method():
    credit = _credit(500)
    assert credit.action(1, (axdr.DOUBLE_LONG, 250), CTX) is None
    assert credit.get(2, CTX) == (axdr.DOUBLE_LONG, 750)
    credit.action(1, (axdr.DOUBLE_LONG, -1000), CTX)
    assert credit.amount == -250
    credit.action(2, (axdr.DOUBLE_LONG, 0), CTX)       # GBCS ECS04b
    assert credit.amount == 0
    credit.action(3, (axdr.ENUM, STATUS_SELECTED), CTX)
    assert credit.get(8, CTX) == (axdr.ENUM, STATUS_SELECTED)


def test_credit_refuses_bad_parameters_and_overflow_without_change():
    changes = []
    credit = Credit(unhexlify("0000130a00ff"), amount=INT32_MAX - 5,
                    on_change=lambda c, old: changes.append(old))
    _action_error(lambda: credit.action(2, (axdr.DOUBLE_LONG_UNSIGNED, 0), CTX),
                  R.ACTION_TYPE_UNMATCHED)
    _action_error(lambda: credit.action(1, (axdr.DOUBLE_LONG, 6), CTX), R.ACTION_OTHER_REASON)
    _action_error(lambda: credit.action(4, (axdr.DOUBLE_LONG, 6), CTX),
                  R.ACTION_OBJECT_UNDEFINED)
    assert credit.amount == INT32_MAX - 5 and changes == []
    credit.action(1, (axdr.DOUBLE_LONG, 5), CTX)
    assert credit.amount == INT32_MAX and changes == [INT32_MAX - 5]


def test_credit_attributes_writable_and_not():
    credit = _credit()
    credit.set(5, (axdr.DOUBLE_LONG, 100), CTX)
    assert credit.get(5, CTX) == (axdr.DOUBLE_LONG, 100)
    _access_error(lambda: credit.set(2, (axdr.DOUBLE_LONG, 1), CTX), R.READ_WRITE_DENIED)
    _access_error(lambda: credit.set(4, (axdr.UNSIGNED, 0), CTX), R.OTHER_REASON)
    _access_error(lambda: credit.set(11, (axdr.OCTET_STRING, b"short"), CTX), R.TYPE_UNMATCHED)


def test_account_sums_its_credits_and_charges():
    credits = [_credit(1000), Credit(unhexlify("0000130a01ff"), amount=500)]
    charge = Charge(unhexlify("0000131400ff"), total_amount_remaining=300)
    account = Account(unhexlify("0000130000ff"), credits, [charge])
    assert account.get(5, CTX) == (axdr.DOUBLE_LONG, 1500)
    assert account.get(8, CTX) == (axdr.DOUBLE_LONG, 300)
    assert account.get(9, CTX) == (axdr.ARRAY, [(axdr.OCTET_STRING, c.logical_name)
                                                for c in credits])
    credits[0].update_amount(-200)
    assert account.get(5, CTX) == (axdr.DOUBLE_LONG, 1300)
    assert account.get(2, CTX) == (axdr.STRUCTURE, [(axdr.ENUM, 1), (axdr.ENUM, ACCOUNT_ACTIVE)])
    _access_error(lambda: account.set(5, (axdr.DOUBLE_LONG, 0), CTX), R.READ_WRITE_DENIED)
    account.action(2, (axdr.INTEGER, 0), CTX)
    assert account.account_status == ACCOUNT_CLOSED
    account.action(3, (axdr.INTEGER, 0), CTX)
    assert account.account_status == ACCOUNT_NEW
    assert account.available_credit() == 0 and account.aggregated_debt() == 0


def test_charge_remaining_amount_methods():
    charge = Charge(unhexlify("0000131400ff"), total_amount_remaining=100)
    charge.action(4, (axdr.DOUBLE_LONG, 50), CTX)
    assert charge.get(12, CTX) == (axdr.DOUBLE_LONG, 150)
    charge.action(5, (axdr.DOUBLE_LONG, 20), CTX)
    assert charge.total_amount_remaining == 20
    assert charge.collect(30, b"\x00" * 12) == 20
    assert charge.get(2, CTX) == (axdr.DOUBLE_LONG, 20) and charge.total_amount_remaining == 0
    _action_error(lambda: charge.action(5, (axdr.LONG, 1), CTX), R.ACTION_TYPE_UNMATCHED)


def test_prepayment_state_round_trips():
    credit = _credit(1234)
    credit.set(6, (axdr.DOUBLE_LONG, -500), CTX)
    again = _credit()
    again.restore(credit.state())
    assert again.state() == credit.state() and again.amount == 1234 and again.limit == -500
    charge = Charge(unhexlify("0000131400ff"), total_amount_remaining=77)
    copy = Charge(unhexlify("0000131400ff"))
    copy.restore(charge.state())
    assert copy.total_amount_remaining == 77 and copy.get(5, CTX) == charge.get(5, CTX)


# -- Token gateway ----------------------------------------------------------------------------

SHARED = hashlib.sha256(b"supplier prepayment KA x device KA").digest()


def _verifier(target=DEVICE):
    def verify(token, record):
        return U.verify(CRYPTO, SHARED, SUPPLIER, target, token, record)
    return verify


def _utrn(counter_hi, value_class, value, target=DEVICE):
    return U.mint(CRYPTO, SHARED, SUPPLIER, target, counter_hi << 32, value_class, value).encode()


def _gateway(amount=0):
    credit = _credit(amount)
    return TokenGateway(unhexlify("0000132800ff"), _verifier(), credit), credit


def _refused(gateway, token, code):
    try:
        gateway.enter(token, NOW)
    except TokenRefused as e:
        assert e.status_code == code and e.code == R.ACTION_OTHER_REASON
        assert gateway.get(6, CTX)[1][0] == (axdr.ENUM, code)
        return
    raise AssertionError("token accepted")


def test_token_gateway_applies_a_utrn_once():
    gateway, credit = _gateway()
    assert gateway.get(6, CTX)[1][0] == (axdr.ENUM, NOT_YET_PROCESSED)
    token = _utrn(3, U.CLASS_POUNDS, 10)
    gateway.action(1, (axdr.OCTET_STRING, token), CTX)
    assert credit.amount == 1000
    assert gateway.get(2, CTX) == (axdr.OCTET_STRING, token)
    assert gateway.get(6, CTX)[1][0] == (axdr.ENUM, EXECUTION_OK)
    assert gateway.record.accepted == [3]
    _refused(gateway, token, VALIDATION_FAILURE)
    assert credit.amount == 1000 and gateway.record.accepted == [3]
    assert gateway.enter(_utrn(4, U.CLASS_PENCE, 1250), NOW) == 1250
    assert credit.amount == 2250 and gateway.record.accepted == [3, 4]


def test_token_gateway_refusals_change_neither_credit_nor_record():
    gateway, credit = _gateway()
    gateway.enter(_utrn(5, U.CLASS_PENCE, 100), NOW)
    before = (credit.amount, list(gateway.record.accepted))
    good = _utrn(6, U.CLASS_PENCE, 100)
    bad_digit = good[:-1] + (b"0" if good[-1:] != b"0" else b"1")
    _refused(gateway, bad_digit, FORMAT_FAILURE)
    _refused(gateway, b"1234", FORMAT_FAILURE)
    _refused(gateway, _utrn(6, U.CLASS_PENCE, 100, target=OTHER_DEVICE), AUTHENTICATION_FAILURE)
    _refused(gateway, _utrn(5, U.CLASS_PENCE, 100), VALIDATION_FAILURE)
    assert (credit.amount, gateway.record.accepted) == before
    _action_error(lambda: gateway.action(1, (axdr.VISIBLE_STRING, good), CTX),
                  R.ACTION_TYPE_UNMATCHED)
    gateway.enter(good, NOW)
    assert credit.amount == before[0] + 100


def test_token_gateway_credit_overflow_keeps_the_utrn_unused():
    gateway, credit = _gateway(INT32_MAX - 10)
    token = _utrn(7, U.CLASS_PENCE, 11)
    _refused(gateway, token, EXECUTION_FAILURE)
    assert credit.amount == INT32_MAX - 10 and gateway.record.accepted == []
    credit.set_amount(0)
    assert gateway.enter(token, NOW) == 11


def test_token_gateway_state_round_trips():
    gateway, _ = _gateway()
    gateway.enter(_utrn(8, U.CLASS_PENCE, 1), NOW)
    again, _ = _gateway()
    again.restore(gateway.state())
    assert again.record.accepted == [8] and again.status_code == EXECUTION_OK
    _refused(again, _utrn(8, U.CLASS_PENCE, 1), VALIDATION_FAILURE)


# -- Data protection ----------------------------------------------------------------------------

KEY = hashlib.sha256(b"agreed").digest()[:16]
TARGET_NAME = unhexlify("00005e2c220a")


def test_encrypted_field_layout_and_tamper_detection():
    field = DP.encrypt_field(CRYPTO, KEY, DEVICE, b"\x02\x01\x11\x05")
    assert field[:5] == unhexlify("3100000000") and len(field) == 5 + 4 + 12
    assert DP.decrypt_field(CRYPTO, KEY, DEVICE, field) == b"\x02\x01\x11\x05"
    for i in range(len(field)):
        tampered = bytearray(field)
        tampered[i] ^= 1
        try:
            DP.decrypt_field(CRYPTO, KEY, DEVICE, bytes(tampered))
        except ValueError:
            continue
        raise AssertionError("tampered byte %d accepted" % i)
    for wrong in ((KEY[:-1] + bytes((KEY[-1] ^ 1,)), DEVICE), (KEY, OTHER_DEVICE)):  # key, IV
        try:
            DP.decrypt_field(CRYPTO, wrong[0], wrong[1], field)
        except ValueError:
            continue
        raise AssertionError("opened with the wrong key or IV")


class Recorder(CosemObject):
    """A class 7 stand-in that answers what selective access it was asked for."""

    class_id = 7
    attribute_count = 2

    def __init__(self):
        CosemObject.__init__(self, TARGET_NAME)
        self.asked = []

    def selectors(self, attribute):
        return (1, 2)

    def get_attribute(self, attribute, ctx, selector, parameters):
        self.asked.append((selector, parameters))
        return (axdr.STRUCTURE, [(axdr.UNSIGNED, selector), (axdr.LONG_UNSIGNED, 7)])


def _protection(target, key=KEY, listed=True):
    keys = []

    def key_for(requester, recipient, counter, ctx):
        keys.append((requester, recipient, counter))
        return key
    objects = {(target.class_id, target.logical_name): target}
    dp = DP.DataProtection(unhexlify("00002b0208ff"),
                           lambda c, n: objects.get((c, n)), CRYPTO, key_for, DEVICE,
                           [(target.class_id, target.logical_name)] if listed else [])
    return dp, keys


def _received(response):
    """The method's result as a client decodes it (the device may hand part of it over
    already encoded, axdr.RAW)."""
    return axdr.decode_all(axdr.encode(response))


def _open(response):
    params, field = DP.parse_response(_received(response))
    return params, axdr.decode_all(DP.decrypt_field(CRYPTO, KEY, DEVICE, field))


def test_get_protected_attributes_encrypts_the_values_read():
    target = Recorder()
    dp, keys = _protection(target)
    element = DP.object_list_element(7, TARGET_NAME, 2)
    response = _received(dp.action(1, DP.get_request([element], 0x3E8, SUPPLIER, DEVICE), CTX))
    params, plain = _open(response)
    assert keys == [(SUPPLIER, DEVICE, 0x3E8)]
    assert (params.originator, params.recipient, params.counter) == (DEVICE, SUPPLIER, 0x3E8)
    assert plain == (axdr.STRUCTURE, [(axdr.STRUCTURE, [(axdr.UNSIGNED, 0),
                                                        (axdr.LONG_UNSIGNED, 7)])])
    assert dp.get(2, CTX) == response[1][1]
    # the answer's protection parameters are the request's with the parties swapped
    assert response[1][0] == DP.protection_parameters(0x3E8, DEVICE, SUPPLIER)


def test_encoded_protection_parameters_are_the_encoding_of_the_element():
    for counter, originator, recipient in ((0, DEVICE, SUPPLIER), (0x3E8, SUPPLIER, DEVICE),
                                           ((1 << 64) - 1, b"\xff" * 8, bytes(8))):
        raw = DP.encoded_protection_parameters(counter, originator, recipient)
        assert raw[0] == axdr.RAW
        assert raw[1] == axdr.encode(DP.protection_parameters(counter, originator, recipient))
    # a system title of another length is not laid out: the value goes to the encoder
    odd = DP.encoded_protection_parameters(1, b"\x01" * 7, SUPPLIER)
    assert odd == DP.protection_parameters(1, b"\x01" * 7, SUPPLIER)


def test_restrictions_become_selective_access_and_data_index_picks_an_element():
    target = Recorder()
    dp, _ = _protection(target)
    start = unhexlify("07de0c1fff000000008000ff")
    end = unhexlify("07df0101ff000000008000ff")
    by_date = DP.object_list_element(7, TARGET_NAME, 2, 0, DP.restriction_by_date(start, end))
    by_entry = DP.object_list_element(7, TARGET_NAME, 2, 2, DP.restriction_by_entry(1, 48))
    _, plain = _open(dp.action(1, DP.get_request([by_date, by_entry], 9, SUPPLIER, DEVICE),
                               CTX))
    assert plain[1][0][1][0] == (axdr.UNSIGNED, 1)
    assert plain[1][1] == (axdr.LONG_UNSIGNED, 7)
    date_selector, date_params = target.asked[0]
    assert date_selector == 1
    assert date_params[1][0][1][0] == (axdr.LONG_UNSIGNED, 8)       # the clock column
    assert date_params[1][1:3] == [(axdr.OCTET_STRING, start), (axdr.OCTET_STRING, end)]
    assert target.asked[1] == (2, (axdr.STRUCTURE, [(axdr.DOUBLE_LONG_UNSIGNED, 1),
                                                     (axdr.DOUBLE_LONG_UNSIGNED, 48),
                                                     (axdr.LONG_UNSIGNED, 1),
                                                     (axdr.LONG_UNSIGNED, 0)]))


def test_data_protection_refusals():
    target = Recorder()
    element = DP.object_list_element(7, TARGET_NAME, 2)
    request = DP.get_request([element], 1, SUPPLIER, DEVICE)
    unlisted, _ = _protection(target, listed=False)
    _action_error(lambda: unlisted.action(1, request, CTX), R.ACTION_READ_WRITE_DENIED)
    no_key, _ = _protection(target, key=None)
    _action_error(lambda: no_key.action(1, request, CTX), R.ACTION_READ_WRITE_DENIED)
    dp, keys = _protection(target)
    elsewhere = DP.get_request([element], 1, SUPPLIER, OTHER_DEVICE)
    _action_error(lambda: dp.action(1, elsewhere, CTX), R.ACTION_SCOPE_OF_ACCESS_VIOLATED)
    params = DP.protection_parameters(1, SUPPLIER, DEVICE)
    params[1][0][1][0] = (axdr.ENUM, 0)                          # authentication only
    _action_error(lambda: dp.action(1, (axdr.STRUCTURE, [(axdr.ARRAY, [element]), params]),
                                    CTX), R.ACTION_SCOPE_OF_ACCESS_VIOLATED)
    missing = DP.object_list_element(7, unhexlify("0000630100ff"), 2)
    _action_error(lambda: dp.action(1, DP.get_request([missing], 1, SUPPLIER, DEVICE), CTX),
                  R.ACTION_READ_WRITE_DENIED)
    bad_index = DP.object_list_element(7, TARGET_NAME, 2, 3)
    _action_error(lambda: dp.action(1, DP.get_request([bad_index], 1, SUPPLIER, DEVICE), CTX),
                  R.ACTION_SCOPE_OF_ACCESS_VIOLATED)
    _action_error(lambda: dp.action(1, (axdr.ARRAY, []), CTX), R.ACTION_TYPE_UNMATCHED)
    _action_error(lambda: dp.action(2, request, CTX), R.ACTION_OBJECT_UNAVAILABLE)
    assert keys == [] and dp.get(2, CTX) == (axdr.OCTET_STRING, b"")


def test_protection_parameters_match_the_rtds_request_bytes():
    # RTDS ECS17b_4.1.1_SINGLE command: the get_protected_attributes parameters
    rtds = unhexlify(
        "020201010205120001090600005e2c220a0f02120000020216000001010202160202050909040000"
        "0000000003e8090890b3d51f30010000090800db1234567890a009000202160202020901020900")
    element = DP.object_list_element(1, TARGET_NAME, 2)
    assert axdr.encode(DP.get_request([element], 0x3E8, SUPPLIER, DEVICE)) == rtds
    params = DP.parse_protection_parameters(axdr.decode_all(rtds)[1][1])
    assert (params.counter, params.originator, params.recipient) == (0x3E8, SUPPLIER, DEVICE)
    assert params.key_parameters == b"\x02" and params.other_information == b""


def test_token_gateway_honours_the_top_up_floor():
    credit = _credit()
    floors = [None]
    gateway = TokenGateway(unhexlify("0000132800ff"), _verifier(), credit,
                           floor=lambda: floors[0])
    floors[0] = 9 << 32                     # a CS02b set the new supplier's floor
    _refused(gateway, _utrn(9, U.CLASS_PENCE, 5), VALIDATION_FAILURE)
    assert credit.amount == 0 and gateway.record.accepted == []
    assert gateway.enter(_utrn(10, U.CLASS_PENCE, 5), NOW) == 5


def _every_leaf_changed(value, path=()):
    """(path, the value with the tag or payload at that place changed) for every node."""
    tag, payload = value
    yield path + ("tag",), (axdr.UNSIGNED if tag != axdr.UNSIGNED else axdr.ENUM, payload)
    if isinstance(payload, list):
        for i, item in enumerate(payload):
            for where, changed in _every_leaf_changed(item, path + (i,)):
                yield where, (tag, payload[:i] + [changed] + payload[i + 1:])
        yield path + ("short",), (tag, payload[:-1])
        yield path + ("long",), (tag, payload + [payload[-1]])
    elif isinstance(payload, bytes):
        yield path + ("bytes",), (tag, payload + b"\x00")


def _reading(read, value):
    try:
        p = read(value)
    except DataAccessError as e:
        return ("refused", e.args)
    if p is None:
        return None
    return (p.protection_type, p.counter, p.originator, p.recipient, p.other_information,
            p.key_info_type, p.key_parameters)


def test_protection_parameters_read_in_one_go_as_the_walk_reads_them():
    """The one-unpacking reading takes only what the field-by-field walk takes, and reads
    it alike; anything else is left to the walk (None)."""
    good = DP.protection_parameters(0x3E8, DEVICE, SUPPLIER)
    expected = (DP.AUTHENTICATED_ENCRYPTION, 0x3E8, DEVICE, SUPPLIER, b"",
                DP.KEY_INFO_AGREED_KEY, DP.GBCS_KEY_PARAMETERS)
    assert _reading(DP._well_formed_parameters, good) == expected
    assert _reading(DP._walked_parameters, good) == expected
    left_to_the_walk = 0
    variants = list(_every_leaf_changed(good))
    for where, changed in variants:
        fast = _reading(DP._well_formed_parameters, changed)
        walk = _reading(DP._walked_parameters, changed)
        if fast is None:
            left_to_the_walk += 1
        else:
            assert fast == walk, where
        assert _reading(DP.parse_protection_parameters, changed) == (fast or walk), where
    assert len(variants) > 25 and left_to_the_walk > 20
