"""The fast paths of both A-XDR codecs for an array of same-shaped structures (a
Profile Generic buffer) must give exactly what the value-by-value readers give, on
good input and on bad: the same values, the same errors at the same offsets.

The firmware fast path is `firmware.dlms.axdr._uniform_rows`; switching it off (it
returning None) gives the value-by-value reader, the reference here. The construct
fast path is `axdr_uniform_rows`, compiled into `emulator.codec.axdr.Data`; its
reference is the firmware codec, and the layouts it caches show that it ran."""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.codec import axdr as host
from emulator.codec import xdlms
from firmware.dlms import apdu as A
from firmware.dlms import axdr as fw

PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# member types a uniform row may hold, with a strategy for their payload
_INTS = {fw.DOUBLE_LONG: (-2**31, 2**31 - 1), fw.DOUBLE_LONG_UNSIGNED: (0, 2**32 - 1),
         fw.INTEGER: (-128, 127), fw.LONG: (-2**15, 2**15 - 1), fw.UNSIGNED: (0, 255),
         fw.LONG_UNSIGNED: (0, 2**16 - 1), fw.LONG64: (-2**63, 2**63 - 1),
         fw.LONG64_UNSIGNED: (0, 2**64 - 1), fw.ENUM: (0, 255), fw.BCD: (0, 255)}
_FIXED_OCTETS = {fw.DATE_TIME: 12, fw.DATE: 5, fw.TIME: 4}


def _member_type():
    """(tag, payload strategy) of one structure member of a uniform row."""
    ints = st.sampled_from(sorted(_INTS)).map(
        lambda tag: (tag, st.integers(*_INTS[tag])))
    octets = st.sampled_from(sorted(_FIXED_OCTETS)).map(
        lambda tag: (tag, st.binary(min_size=_FIXED_OCTETS[tag],
                                    max_size=_FIXED_OCTETS[tag])))
    strings = st.tuples(st.sampled_from((fw.OCTET_STRING, fw.VISIBLE_STRING,
                                         fw.UTF8_STRING)),
                        st.integers(0, 0x7F)).map(
        lambda t: (t[0], st.binary(min_size=t[1], max_size=t[1])))
    doubles = st.just((fw.FLOAT64, st.floats(allow_nan=False)))
    return st.one_of(ints, octets, strings, doubles)


@st.composite
def uniform_arrays(draw, max_rows=70):
    members = draw(st.lists(_member_type(), min_size=1, max_size=5))
    rows = draw(st.integers(2, max_rows))
    return (fw.ARRAY, [(fw.STRUCTURE, [(tag, draw(payload)) for tag, payload in members])
                       for _ in range(rows)])


def _outcome(decoder, error, data):
    try:
        return ("ok", decoder(data))
    except error as e:
        return ("error", e.offset)


def _firmware_slow(data):
    fast_path = fw._uniform_rows
    fw._uniform_rows = lambda *args: None
    try:
        return _outcome(fw.decode_all, fw.AxdrError, data)
    finally:
        fw._uniform_rows = fast_path


def _float_bits(value):
    if isinstance(value, float):
        return struct.pack(">d", value)
    if isinstance(value, (list, tuple)):
        return type(value)(_float_bits(v) for v in value)
    return value


def _check_like_slow_path(data):
    """Both codecs decode `data` as the firmware's value-by-value reader does."""
    slow = _firmware_slow(data)
    fast = _outcome(fw.decode_all, fw.AxdrError, data)
    assert _float_bits(fast) == _float_bits(slow), data.hex()
    construct = _outcome(host.decode, host.AxdrCodecError, data)
    assert construct[0] == slow[0], (data.hex(), construct, slow)
    if slow[0] == "ok":
        assert _float_bits(construct[1]) == _float_bits(slow[1]), data.hex()
    return slow


def _uniform_profile(rows=48):
    return (fw.ARRAY, [(fw.STRUCTURE, [(fw.OCTET_STRING, bytes([i % 60] * 12)),
                                       (fw.DOUBLE_LONG_UNSIGNED, 1000000 + 37 * i)])
                       for i in range(rows)])


# ---------------------------------------------------------------- good input

def test_both_fast_paths_run_on_a_profile_buffer():
    value = _uniform_profile()
    data = fw.encode(value)
    # firmware: the fast path itself answers, for the whole array
    items, end = fw._uniform_rows(data, 2, len(data), 48)
    assert (fw.ARRAY, items) == value and end == len(data)
    # construct: the compiled Data caches a row layout when its fast path reads rows
    module = host.Data.module
    module.axdr_row_layouts.clear()
    assert host.decode(data) == value
    assert len(module.axdr_row_layouts) == 1


@PROPERTY
@given(value=uniform_arrays())
def test_uniform_arrays_decode_like_the_value_by_value_reader(value):
    data = fw.encode(value)
    assert host.encode(value) == data
    outcome = _check_like_slow_path(data)
    assert outcome[0] == "ok"
    assert _float_bits(outcome[1]) == _float_bits(value)


@PROPERTY
@given(value=uniform_arrays(max_rows=40), data=st.data())
def test_one_different_row_falls_back(value, data):
    """A row of another shape anywhere (other tag, other length, a null) is decoded,
    not misread as the first row's shape."""
    rows = value[1]
    at = data.draw(st.integers(0, len(rows) - 1))
    other = data.draw(st.sampled_from((
        (fw.STRUCTURE, [(fw.NULL_DATA, None)] * len(rows[0][1])),
        (fw.STRUCTURE, rows[0][1] + [(fw.UNSIGNED, 1)]),
        (fw.STRUCTURE, [(fw.OCTET_STRING, b"x" * 3)] + rows[0][1][1:]),
        (fw.LONG_UNSIGNED, 7),
    )))
    rows[at] = other
    encoded = fw.encode(value)
    outcome = _check_like_slow_path(encoded)
    assert outcome == ("ok", value) or _float_bits(outcome[1]) == _float_bits(value)


# ---------------------------------------------------------------- bad input

def test_every_truncation_of_a_profile_buffer_is_rejected_where_the_slow_path_says():
    data = fw.encode(_uniform_profile(20))
    for cut in range(len(data)):
        slow = _check_like_slow_path(data[:cut])
        assert slow[0] == "error", cut


def test_every_changed_byte_of_a_profile_buffer_decodes_like_the_slow_path():
    """Any tag, length or count byte changed (and values, which must come through)."""
    data = fw.encode(_uniform_profile(6))
    for at in range(len(data)):
        for byte in (0x00, 0x02, 0x06, 0x09, 0x0B, 0x0C, 0x0D, 0x7F, 0x80, 0x81, 0xFF):
            if data[at] == byte:
                continue
            _check_like_slow_path(data[:at] + bytes((byte,)) + data[at + 1:])


def test_trailing_bytes_after_uniform_rows_are_rejected():
    data = fw.encode(_uniform_profile(8)) + b"\x00"
    assert _check_like_slow_path(data) == ("error", len(data) - 1)


@pytest.mark.parametrize("depth", [13, 14, 15, 16])
def test_rows_at_the_nesting_limit_are_refused_alike(depth):
    """Arrays of rows wrapped in `depth` arrays: at MAX_DEPTH both refuse, below both
    read them."""
    data = b"\x01\x01" * depth + fw.encode(_uniform_profile(3))
    outcome = _check_like_slow_path(data)
    assert outcome[0] == ("ok" if depth + 2 <= fw.MAX_DEPTH else "error"), outcome


# ---------------------------------------------------------------- encoding

def _encode_outcome(encoder, error, value):
    try:
        return ("ok", encoder(value))
    except error:
        return ("error",)


def test_the_construct_row_writer_runs_on_a_profile_buffer():
    module = host.Data.module
    module.axdr_row_writers.clear()
    value = _uniform_profile()
    assert host.encode(value) == fw.encode(value)
    assert len(module.axdr_row_writers) == 1


@pytest.mark.parametrize("row", [
    (fw.STRUCTURE, [(fw.OCTET_STRING, b"\x00" * 12), (fw.DOUBLE_LONG_UNSIGNED, 2**32)]),
    (fw.STRUCTURE, [(fw.OCTET_STRING, b"\x00" * 12), (fw.DOUBLE_LONG_UNSIGNED, -1)]),
    (fw.STRUCTURE, [(fw.OCTET_STRING, b"\x00" * 12), (fw.DOUBLE_LONG_UNSIGNED, True)]),
    (fw.STRUCTURE, [(fw.OCTET_STRING, b"\x00" * 12), (fw.DOUBLE_LONG_UNSIGNED, 1.0)]),
    (fw.STRUCTURE, [(fw.OCTET_STRING, "text"), (fw.DOUBLE_LONG_UNSIGNED, 1)]),
    (fw.STRUCTURE, [(fw.OCTET_STRING, b"\x00" * 12), (6.0, 1)]),
    (fw.STRUCTURE, [(fw.OCTET_STRING, b"\x00" * 12), (fw.DOUBLE_LONG_UNSIGNED, 1), 7]),
])
@pytest.mark.parametrize("at", [0, 1, 47])
def test_a_bad_row_anywhere_is_refused_by_both_encoders(row, at):
    value = _uniform_profile()
    value[1][at] = row
    assert _encode_outcome(fw.encode, fw.AxdrError, value) == ("error",)
    assert _encode_outcome(host.encode, host.AxdrCodecError, value) == ("error",)


@pytest.mark.parametrize("row", [
    (fw.STRUCTURE, [(fw.OCTET_STRING, b"\x00" * 11), (fw.DOUBLE_LONG_UNSIGNED, 1)]),
    (fw.STRUCTURE, [(fw.OCTET_STRING, bytearray(12)), (fw.DOUBLE_LONG_UNSIGNED, 1)]),
    (fw.STRUCTURE, [(fw.OCTET_STRING, b"\x00" * 12), (fw.DOUBLE_LONG, 1)]),
    (fw.STRUCTURE, [(fw.NULL_DATA, None), (fw.DOUBLE_LONG_UNSIGNED, 1)]),
    (fw.STRUCTURE, [(fw.OCTET_STRING, b"\x00" * 200), (fw.DOUBLE_LONG_UNSIGNED, 1)]),
    (fw.STRUCTURE, [(fw.OCTET_STRING, b"\x00" * 12)]),
    (fw.UNSIGNED, 3),
])
@pytest.mark.parametrize("at", [0, 1, 47])
def test_a_row_of_another_shape_anywhere_encodes_alike(row, at):
    value = _uniform_profile()
    value[1][at] = row
    encoded = fw.encode(value)
    assert host.encode(value) == encoded
    assert host.decode(encoded) == fw.decode_all(encoded)


def test_float32_overflow_in_a_row_is_refused_by_both_encoders():
    value = (fw.ARRAY, [(fw.STRUCTURE, [(fw.FLOAT32, 1.0), (fw.UNSIGNED, 1)])] * 4)
    assert host.encode(value) == fw.encode(value)
    value[1][2] = (fw.STRUCTURE, [(fw.FLOAT32, 1e300), (fw.UNSIGNED, 1)])
    assert _encode_outcome(fw.encode, fw.AxdrError, value) == ("error",)
    assert _encode_outcome(host.encode, host.AxdrCodecError, value) == ("error",)


# ---------------------------------------------------------------- through the APDU

def test_a_profile_get_response_decodes_the_same_through_both_apdu_codecs():
    value = _uniform_profile()
    response = A.GetResponseNormal(0xC1, A.GetDataResult.of_data(value))
    data = response.encode()
    assert A.decode_apdu(data).result.data == value
    name, fields = xdlms.decode_apdu(data)
    assert name == "GetResponseNormal" and fields["result"]["data"] == value
    assert xdlms.encode_apdu(name, fields) == data
    for cut in (len(data) - 1, len(data) - 5, 10):
        with pytest.raises(A.ApduError):
            A.decode_apdu(data[:cut])
        with pytest.raises(xdlms.XdlmsCodecError):
            xdlms.decode_apdu(data[:cut])
