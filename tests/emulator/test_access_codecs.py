"""The two ACCESS codecs (firmware/dlms/access.py and the construct twin in
emulator/codec/access.py) hold each other to the same bytes, and both read every DLMS
ACCESS payload of RTDS 4.5.0 and rebuild it byte for byte."""

import pathlib

import pytest
from hypothesis import given, settings, strategies as st

from emulator.codec.access import AccessCodecError, decode_access, encode_access
from emulator.codec.errors import CodecError
from emulator.strategies import xdlms as X
from firmware.dlms import access as A
from firmware.dlms.apdu import AttributeDescriptor, MethodDescriptor, SelectiveAccess
from firmware.gbcs import envelope

RTDS = pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs" / "rtds-4.5.0"


def _rtds_access_payloads():
    out = []
    for path in sorted(RTDS.glob("*/*.HEX")):
        message = envelope.parse(bytes.fromhex(path.read_text().strip()))
        if message.payload[:1] in (b"\xd9", b"\xda"):
            out.append((path.name, message.payload))
    return out


RTDS_PAYLOADS = _rtds_access_payloads()


# ---------------------------------------------------------------- strategies (host fields)

u32 = st.integers(0, 0xFFFFFFFF)
date_times = st.just(b"") | st.binary(min_size=12, max_size=12)


@st.composite
def request_specs(draw):
    kind = draw(st.sampled_from([A.GET, A.SET, A.ACTION, A.GET_WITH_SELECTION,
                                 A.SET_WITH_SELECTION]))
    descriptor = draw(X.method_descriptors() if kind == A.ACTION else X.attribute_descriptors())
    selection = None
    if kind in (A.GET_WITH_SELECTION, A.SET_WITH_SELECTION):
        selection = draw(X.selective_access())
    return {"kind": kind, "descriptor": descriptor, "access_selection": selection}


response_specs = st.fixed_dictionaries({"kind": st.sampled_from([A.GET, A.SET, A.ACTION]),
                                        "result": st.integers(0, 255)})


@st.composite
def requests(draw):
    specs = draw(st.lists(request_specs(), max_size=5))
    return {"long_invoke_id_and_priority": draw(u32), "date_time": draw(date_times),
            "specifications": specs,
            "data": draw(st.lists(X.data_values(), min_size=len(specs), max_size=len(specs)))}


@st.composite
def responses(draw):
    results = draw(st.lists(response_specs, max_size=5))
    echoed = draw(st.none() | st.lists(request_specs(), max_size=3))
    return {"long_invoke_id_and_priority": draw(u32), "date_time": draw(date_times),
            "request_specifications": echoed,
            "data": draw(st.lists(X.data_values(), min_size=len(results),
                                  max_size=len(results))),
            "results": results}


def _firmware_spec(spec):
    d = spec["descriptor"]
    if spec["kind"] == A.ACTION:
        descriptor = MethodDescriptor(d["class_id"], d["instance_id"], d["method_id"])
    else:
        descriptor = AttributeDescriptor(d["class_id"], d["instance_id"], d["attribute_id"])
    selection = spec["access_selection"]
    if selection is not None:
        selection = SelectiveAccess(selection["access_selector"], selection["access_parameters"])
    return A.RequestSpec(spec["kind"], descriptor, selection)


def _firmware(name, fields):
    if name == "AccessRequest":
        return A.AccessRequest(fields["long_invoke_id_and_priority"], fields["date_time"],
                               [_firmware_spec(s) for s in fields["specifications"]],
                               fields["data"])
    echoed = fields["request_specifications"]
    return A.AccessResponse(fields["long_invoke_id_and_priority"], fields["date_time"],
                            fields["data"],
                            [A.ResponseSpec(r["kind"], r["result"]) for r in fields["results"]],
                            None if echoed is None else [_firmware_spec(s) for s in echoed])


def _without_encodings(fields):
    out = dict(fields)
    out.pop("encodings")
    return out


# ---------------------------------------------------------------- properties

@settings(max_examples=200, deadline=None)
@given(st.one_of(requests().map(lambda f: ("AccessRequest", f)),
                 responses().map(lambda f: ("AccessResponse", f))))
def test_both_codecs_build_the_same_bytes_and_read_each_other(named):
    name, fields = named
    ours = _firmware(name, fields).encode()
    theirs = encode_access(name, fields)
    assert ours == theirs
    decoded_name, decoded = decode_access(ours)
    assert decoded_name == name
    assert _without_encodings(decoded) == A.decode(theirs).fields()
    assert A.decode(theirs).fields() == _firmware(name, fields).fields()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(RTDS_PAYLOADS), st.data())
def test_mutated_rtds_payloads_get_the_same_verdict_from_both(named, data):
    _, payload = named
    mutated = bytearray(payload)
    how = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    at = data.draw(st.integers(0, len(payload) - 1))
    if how == "flip":
        mutated[at] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        del mutated[at:]
    else:
        mutated[at:at] = data.draw(st.binary(min_size=1, max_size=3))
    mutated = bytes(mutated)
    try:
        ours = A.decode(mutated)
    except A.AccessError as e:
        assert 0 <= e.offset <= len(mutated)
        with pytest.raises(AccessCodecError) as theirs:
            decode_access(mutated)
        assert isinstance(theirs.value, CodecError)
        return
    name, theirs = decode_access(mutated)
    assert _without_encodings(theirs) == ours.fields()
    assert ours.encode() == mutated == encode_access(name, theirs)


# ---------------------------------------------------------------- the reference data

def test_every_rtds_access_payload_decodes_in_both_and_rebuilds_byte_for_byte():
    requests_seen = responses_seen = 0
    for name, payload in RTDS_PAYLOADS:
        ours = A.decode(payload)
        kind, theirs = decode_access(payload)
        assert _without_encodings(theirs) == ours.fields(), name
        assert ours.encode() == payload, name
        assert encode_access(kind, theirs) == payload, name
        # GBCS: 0x20 then the originator counter's low 24 bits
        assert ours.long_invoke_id_and_priority >> 24 == 0x20, name
        if kind == "AccessRequest":
            requests_seen += 1
            assert len(ours.data) == len(ours.specifications), name
        else:
            responses_seen += 1
            assert len(ours.data) == len(ours.results), name
    print("RTDS ACCESS payloads: %d requests, %d responses" % (requests_seen, responses_seen))
    assert requests_seen == 176 and responses_seen == 135


def test_rtds_true_written_as_ff_keeps_its_byte_in_both_codecs():
    differing = 0
    for name, payload in RTDS_PAYLOADS:
        kind, fields = decode_access(payload)
        del fields["encodings"]                    # without them TRUE builds as 01
        rebuilt = encode_access(kind, fields)
        assert _firmware(kind, fields).encode() == rebuilt, name
        if rebuilt == payload:
            continue
        differing += 1
        assert len(rebuilt) == len(payload), name
        for i in range(len(payload)):
            if rebuilt[i] != payload[i]:
                assert (payload[i - 1], payload[i], rebuilt[i]) == (0x03, 0xFF, 0x01), name
    assert differing == 47


def test_host_codec_errors_carry_layer_offset_and_reason():
    with pytest.raises(AccessCodecError) as e:
        decode_access(bytes.fromhex("d9200003e8000106000900000a006aff01"))
    assert e.value.layer == "access" and e.value.offset is not None
    with pytest.raises(AccessCodecError) as e:
        decode_access(bytes.fromhex("da200003e800000100010300") + b"\x00")
    assert e.value.offset == 12 and "trailing" in e.value.reason
    with pytest.raises(AccessCodecError) as e:
        encode_access("AccessRequest", {"long_invoke_id_and_priority": 1 << 32,
                                        "date_time": b"", "specifications": [], "data": []})
    assert e.value.offset is None
