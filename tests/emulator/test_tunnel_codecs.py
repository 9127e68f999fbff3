"""The firmware GB-HRGP tunnel and the construct codec: same bytes, same verdicts."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.codec import tunnel as H
from firmware.gbcs import envelope
from firmware.han import tunnel as F

EXAMPLES = 300


@st.composite
def gbcs_messages(draw, max_payload=5000):
    size = draw(st.integers(0, max_payload))
    seed = draw(st.integers(0, 255))
    payload = bytes((seed + i * 31) & 0xFF for i in range(size))
    m = envelope.GbcsMessage(
        draw(st.sampled_from([1, 2, 3])), draw(st.integers(0, 2 ** 64 - 1)),
        draw(st.binary(min_size=8, max_size=8)), draw(st.binary(min_size=8, max_size=8)),
        draw(st.integers(0, 0xFFFF)), payload,
        date_time=draw(st.one_of(st.none(), st.binary(min_size=12, max_size=12))),
        other_info_tail=draw(st.binary(max_size=300)))
    if draw(st.booleans()):
        m.signature = draw(st.binary(min_size=64, max_size=64))
    if draw(st.booleans()):
        m.mac_protected = True
        m.mac = draw(st.binary(min_size=12, max_size=12))
    return m.encode()


def _firmware_frame(kind, remaining, payload):
    if kind == F.GET:
        return F.get()
    if kind == F.GET_RESPONSE:
        return F.get_response(remaining, payload)
    return F.put(payload)


def _verdict(fn, data, error):
    try:
        return ("ok", fn(data))
    except error as e:
        return ("error", e.offset)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.sampled_from([F.GET, F.GET_RESPONSE, F.PUT]), st.integers(0, 255),
       st.binary(min_size=1, max_size=64))
def test_both_build_the_same_frames(kind, remaining, payload):
    if kind == F.GET:
        payload, remaining = b"", None
    elif kind == F.PUT:
        remaining = None
    frame = _firmware_frame(kind, remaining, payload)
    assert H.encode(kind, payload, remaining) == frame
    assert F.decode(frame) == H.decode(frame) == (kind, remaining, payload)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.one_of(st.binary(max_size=6),
                 st.tuples(st.sampled_from([1, 2, 3]), st.binary(max_size=4))
                 .map(lambda t: bytes((t[0],)) + t[1])))
def test_decode_verdicts_and_offsets_agree_on_any_bytes(data):
    assert _verdict(F.decode, data, F.TunnelError) == _verdict(H.decode, data,
                                                               H.TunnelCodecError)


def _length_verdict(fn, data, error):
    try:
        return fn(data)
    except error:
        return "error"


@settings(max_examples=EXAMPLES, deadline=None)
@given(gbcs_messages(max_payload=400), st.data())
def test_message_length_agrees_on_prefixes_and_damage(message, data):
    assert F.message_length(message) == H.message_length(message) == len(message)
    cut = data.draw(st.integers(0, len(message)))
    prefix = message[:cut]
    assert (_length_verdict(F.message_length, prefix, F.TunnelError)
            == _length_verdict(H.message_length, prefix, H.TunnelCodecError))
    at = data.draw(st.integers(0, len(message) - 1))
    damaged = bytearray(message)
    damaged[at] ^= data.draw(st.integers(1, 255))
    for view in (bytes(damaged), bytes(damaged[:cut])):
        assert (_length_verdict(F.message_length, view, F.TunnelError)
                == _length_verdict(H.message_length, view, H.TunnelCodecError))


@settings(max_examples=200, deadline=None)
@given(gbcs_messages(), st.sampled_from([F.GET_RESPONSE, F.PUT]), st.integers(0, 255),
       st.sampled_from([F.MAX_TRANSFER, 64, 500]))
def test_segmentation_agrees_and_reassembles(message, kind, remaining, max_transfer):
    frame = _firmware_frame(kind, remaining, message)
    parts = F.segments(frame, max_transfer)
    assert parts == H.segments(frame, max_transfer)
    r = F.Reassembler(max_transfer=max_transfer)
    got = [r.feed(p, 0) for p in parts]
    assert got[:-1] == [None] * (len(parts) - 1)
    expected = (kind, remaining if kind == F.GET_RESPONSE else None, message)
    assert got[-1] == H.reassemble(parts) == expected


@settings(max_examples=200, deadline=None)
@given(gbcs_messages(max_payload=3000), st.data())
def test_a_lost_segment_is_refused_by_both_and_the_next_frame_gets_through(message, data):
    parts = F.segments(F.put(message), 256)
    if len(parts) < 2:
        return
    lost = data.draw(st.integers(0, len(parts) - 1))
    kept = parts[:lost] + parts[lost + 1:]
    with pytest.raises(H.TunnelCodecError):
        H.reassemble(kept)
    r = F.Reassembler(max_transfer=256)
    outcomes = []
    for p in kept:
        try:
            outcomes.append(r.feed(p, 0))
        except F.TunnelError:
            outcomes.append("error")
    assert (F.PUT, None, message) not in outcomes
    follow = F.put(b"\xdd\x00\x00\x00\x00\x00\x00\x01\x00")
    if r.pending:                      # a partial waits for more: the timeout clears it
        assert r.feed(follow, 1 + F.REASSEMBLY_TIMEOUT) == (F.PUT, None, follow[1:])
    else:
        assert r.feed(follow, 1) == (F.PUT, None, follow[1:])


def test_rtds_messages_round_trip_through_the_tunnel():
    import pathlib
    folder = pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs" / "rtds-4.5.0"
    count = 0
    for path in sorted(folder.glob("*/*.HEX")):
        raw = bytes.fromhex(path.read_text().strip())
        if "PRECOMMAND" in path.name:
            continue                       # pre-commands never cross the HAN
        assert F.message_length(raw) == H.message_length(raw) == len(raw), path.name
        frame = F.put(raw)
        parts = F.segments(frame)
        r = F.Reassembler()
        assert [r.feed(p, 0) for p in parts][-1] == (F.PUT, None, raw)
        count += 1
    assert count > 200
