"""The firmware A-XDR codec and the construct codec are each other's oracle
(ARCHITECTURE.md principle 3): same bytes for the same value, each decodes the
other's output, and bad input raises each one's layer error and nothing else."""

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.codec import axdr as host
from emulator.codec.errors import CodecError
from emulator.strategies import axdr as S
from firmware.dlms import axdr as fw

PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _both_encode(value):
    fw_bytes = fw.encode(value)
    host_bytes = host.encode(value)
    assert fw_bytes == host_bytes, (value, fw_bytes.hex(), host_bytes.hex())
    return fw_bytes


def _check_round_trip(value):
    encoded = _both_encode(value)
    assert fw.decode_all(encoded) == value
    assert host.decode(encoded) == value
    return encoded


def _outcome(decoder, error_type, data):
    """('ok', value) or ('error', offset); any other exception fails the test."""
    try:
        return ("ok", decoder(data))
    except error_type as e:
        assert e.offset is None or 0 <= e.offset <= len(data), e
        assert str(e)
        return ("error", e.offset)


def _same_outcome(data):
    fw_result = _outcome(fw.decode_all, fw.AxdrError, data)
    host_result = _outcome(host.decode, host.AxdrCodecError, data)
    assert fw_result[0] == host_result[0], (data.hex(), fw_result, host_result)
    if fw_result[0] == "ok":
        assert _nan_safe(fw_result[1]) == _nan_safe(host_result[1]), data.hex()
        assert fw.encode(fw_result[1]) == host.encode(host_result[1])
    return fw_result[0]


def _nan_safe(value):
    """NaN != NaN; compare floats by their bits instead."""
    if isinstance(value, float):
        return ("float", struct.pack(">d", value))
    if isinstance(value, (list, tuple)):
        return type(value)(_nan_safe(v) for v in value)
    return value


# ---------------------------------------------------------------- valid values

@pytest.mark.parametrize("tag", S.ALL_TAGS, ids=lambda t: host_name(t))
@PROPERTY
@given(data=st.data())
def test_every_type_same_bytes_and_cross_decodes(tag, data):
    value = data.draw(S.values_of_type(tag))
    encoded = _check_round_trip(value)
    assert encoded[0] == tag


def host_name(tag):
    return fw.TYPE_NAMES[tag]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(S.data_values())
def test_nested_values_same_bytes_and_cross_decode(value):
    _check_round_trip(value)


@PROPERTY
@given(S.compact_arrays(S.type_descriptions(max_depth=4)))
def test_compact_arrays_same_bytes_and_cross_decode(value):
    _check_round_trip(value)


@settings(max_examples=50, deadline=None)
@given(S.profile_buffers())
def test_profile_buffers_same_bytes(value):
    _check_round_trip(value)


@PROPERTY
@given(st.sampled_from(S.SIMPLE_TAGS).flatmap(S.values_of_type), st.integers(0, 3))
def test_values_decode_at_an_offset_alike(value, offset):
    data = b"\xaa" * offset + fw.encode(value) + b"\x00"
    fw_value, fw_next = fw.decode(data, offset)
    host_value, host_next = host.decode_prefix(data, offset)
    assert fw_value == host_value == value
    assert fw_next == host_next == len(data) - 1


@given(st.sampled_from([S.ARRAY, S.STRUCTURE]))
def test_nesting_limit_is_the_same_on_both_sides(tag):
    deepest = S.nested(S.MAX_DEPTH, tag)
    _check_round_trip(deepest)
    too_deep = S.nested(S.MAX_DEPTH + 1, tag)
    with pytest.raises(fw.AxdrError):
        fw.encode(too_deep)
    with pytest.raises(host.AxdrCodecError):
        host.encode(too_deep)
    encoded = bytes((tag, 1)) + fw.encode(deepest)
    assert _same_outcome(encoded) == "error"


def test_nan_encodes_alike_and_decodes_to_nan():
    for tag, fmt in ((S.FLOAT32, ">f"), (S.FLOAT64, ">d")):
        value = (tag, float("nan"))
        encoded = _both_encode(value)
        assert math.isnan(fw.decode_all(encoded)[1])
        assert math.isnan(host.decode(encoded)[1])
        quiet_nan = bytes((tag,)) + struct.pack(fmt, float("nan"))
        assert _same_outcome(quiet_nan) == "ok"


def test_raw_passes_through_both_encoders():
    row = fw.structure([fw.octet_string(b"\x07\xe7" + b"\x00" * 10), fw.unsigned(3)])
    raw = fw.raw(fw.encode(row))
    expected = fw.encode(fw.array([row, row]))
    assert fw.encode(fw.array([raw, raw])) == expected
    assert host.encode(fw.array([raw, raw])) == expected


def test_non_minimal_lengths_decode_alike():
    # A-XDR lengths in long form where the short form would do: tolerated by both.
    assert _same_outcome(b"\x09\x81\x02ab") == "ok"
    assert _same_outcome(b"\x01\x82\x00\x01\x11\x05") == "ok"
    assert fw.decode_all(b"\x09\x81\x02ab") == (fw.OCTET_STRING, b"ab")


def test_unused_bit_string_bits_are_cleared_by_both():
    encoded = b"\x04\x03\xff"
    assert fw.decode_all(encoded) == host.decode(encoded) == (fw.BIT_STRING, (3, b"\xe0"))


# ---------------------------------------------------------------- bad input

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(S.mutated_encodings())
def test_mutated_encodings_same_verdict_and_only_layer_errors(mutation_and_bytes):
    mutation, data = mutation_and_bytes
    verdict = _same_outcome(data)
    if mutation == "truncate":
        assert verdict == "error"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_random_bytes_same_verdict_and_only_layer_errors(data):
    _same_outcome(data)


@settings(max_examples=300, deadline=None)
@given(S.invalid_values())
def test_invalid_values_raise_layer_errors_on_both_sides(value):
    with pytest.raises(fw.AxdrError):
        fw.encode(value)
    with pytest.raises(host.AxdrCodecError) as caught:
        host.encode(value)
    assert isinstance(caught.value, CodecError)
    assert str(caught.value).startswith("axdr: ")


@settings(max_examples=150, deadline=None)
@given(S.data_values(max_leaves=10), st.data())
def test_every_strict_prefix_is_rejected_by_both(value, data):
    encoded = fw.encode(value)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    assert _same_outcome(encoded[:cut]) == "error"


def test_huge_declared_counts_fail_fast_on_both():
    for data in (b"\x01\x84\xff\xff\xff\xff\x00",
                 b"\x13\x02\x84\xff\xff\xff\xff\x11\x00",
                 b"\x13\x01\xff\xff\x01\xff\xff\x00\x00",
                 b"\x09\x84\x7f\xff\xff\xff"):
        assert _same_outcome(data) == "error"
