"""UTRN minting and checking against the RTDS top-up vectors (shared/design/DOMAIN.md)."""

import pathlib

import pytest
from hypothesis import given, settings, strategies as st

from emulator.crypto import HostCrypto, KeyStore
from firmware.gbcs import utrn

KEYSTORE = KeyStore(pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs" / "keystore")
CRYPTO = HostCrypto()
SUPPLIER = bytes.fromhex("90B3D51F30010000")

VECTORS = [
    # (UTRN, counter bits 63..32, value class, value, target ESME)
    ("73946144332040217315", 3, utrn.CLASS_POUNDS, 10, "00DB1234567890A0"),
    ("73950067887105178605", 6, utrn.CLASS_PENCE, 1250, "00DB1234567890A1"),
]


def _secret(target):
    return CRYPTO.ecdh(KEYSTORE.private_key(SUPPLIER, "pp-ka"), KEYSTORE.public_key(target, "ka"))


@pytest.mark.parametrize("code,counter_hi,value_class,value,target", VECTORS)
def test_mint_reproduces_rtds_utrn(code, counter_hi, value_class, value, target):
    target = bytes.fromhex(target)
    assert utrn.mint(CRYPTO, _secret(target), SUPPLIER, target, counter_hi << 32,
                     value_class, value) == code


@pytest.mark.parametrize("code,counter_hi,value_class,value,target", VECTORS)
def test_device_accepts_once(code, counter_hi, value_class, value, target):
    target = bytes.fromhex(target)
    record = utrn.UtrnAntiReplay()
    assert utrn.verify(CRYPTO, _secret(target), SUPPLIER, target, code, record) == (
        counter_hi << 32, value_class, value)
    with pytest.raises(utrn.UtrnError, match="already used"):
        utrn.verify(CRYPTO, _secret(target), SUPPLIER, target, code, record)
    assert record.accepted == [counter_hi]


def test_utrn_for_another_meter_is_refused_and_record_unchanged():
    code, _, _, _, _ = VECTORS[0]
    other = bytes.fromhex("00DB1234567890A1")
    record = utrn.UtrnAntiReplay()
    with pytest.raises(utrn.UtrnError, match="does not verify"):
        utrn.verify(CRYPTO, _secret(other), SUPPLIER, other, code, record)
    assert record.accepted == []


@pytest.mark.parametrize("mutation", ["check digit", "length", "letters"])
def test_malformed_utrn(mutation):
    code = VECTORS[0][0]
    bad = {"check digit": code[:-1] + str((int(code[-1]) + 1) % 10),
           "length": code[:-1], "letters": code[:5] + "A" + code[6:]}[mutation]
    with pytest.raises(utrn.UtrnError):
        utrn.parse(bad)


@settings(max_examples=100)
@given(st.text(alphabet="0123456789", min_size=19, max_size=19))
def test_check_digit_catches_every_single_digit_error(digits):
    full = digits + utrn.check_digit(digits)
    for position in range(len(digits)):
        for replacement in "0123456789":
            if replacement != digits[position]:
                changed = digits[:position] + replacement + digits[position + 1:]
                assert utrn.check_digit(changed) != full[-1]


@settings(max_examples=100)
@given(st.text(alphabet="0123456789", min_size=19, max_size=19), st.integers(0, 17))
def test_check_digit_catches_adjacent_transpositions(digits, position):
    a, b = digits[position], digits[position + 1]
    if a != b:
        swapped = digits[:position] + b + a + digits[position + 2:]
        assert utrn.check_digit(swapped) != utrn.check_digit(digits)


def test_counters_wrap_through_the_ten_bit_window():
    target = bytes.fromhex("00DB1234567890A0")
    record = utrn.UtrnAntiReplay(size=5)
    for counter_hi in range(1020, 1030):      # crosses the 10-bit boundary at 1024
        code = utrn.mint(CRYPTO, _secret(target), SUPPLIER, target, counter_hi << 32,
                         utrn.CLASS_PENCE, counter_hi)
        counter, _, value = utrn.verify(CRYPTO, _secret(target), SUPPLIER, target, code, record)
        assert counter == counter_hi << 32 and value == counter_hi
    assert sorted(record.accepted) == list(range(1025, 1030))
