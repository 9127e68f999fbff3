"""Hypothesis strategies for HDLC frames (IEC 62056-46) and COSEM wrapper PDUs
(IEC 62056-47), valid and broken.

Valid frames come as fields in the model of `emulator.codec.hdlc` (`hdlc_frame_fields`)
or as bytes (`hdlc_frames`); `malformed_hdlc_frames` derives byte strings from valid
frames by mutations that a frame check is guaranteed to catch (a single bit flip, a
byte inserted or removed, a truncation: CRC-16 detects every single-bit error and the
11-bit length field every change of size). `station_traffic` mixes commands addressed
to a station (good checksums, any control byte, any sequence numbers) with broken
frames and line noise, in random chunks: input for fuzzing a secondary station.
The same for wrapper PDUs: `wpdu_fields`, `wpdus`, `malformed_wpdus`.
"""

from hypothesis import strategies as st

from emulator.codec import hdlc as codec
from emulator.codec import wrapper as wrapper_codec

SEQUENCE = st.integers(0, 7)
UNNAMED_U_CODES = tuple(code for code in range(256)
                        if code & 0x13 == 0x03 and code not in codec.UNNUMBERED)


def i_controls():
    return st.builds(codec.control, st.just("I"), st.booleans(), SEQUENCE, SEQUENCE)


def s_controls():
    return st.builds(lambda kind, pf, nr: codec.control(kind, pf, nr=nr),
                     st.sampled_from(sorted(codec.SUPERVISORY.values())), st.booleans(),
                     SEQUENCE)


def u_controls(named_only=False):
    named = st.builds(lambda code, pf: codec.control(codec.UNNUMBERED[code], pf, code=code),
                      st.sampled_from(sorted(codec.UNNUMBERED)), st.booleans())
    if named_only:
        return named
    unnamed = st.builds(lambda code, pf: codec.control("U", pf, code=code),
                        st.sampled_from(UNNAMED_U_CODES), st.booleans())
    return st.one_of(named, unnamed)


def hdlc_controls():
    """Every control byte there is, as the codec's Container."""
    return st.one_of(i_controls(), s_controls(), u_controls())


def client_addresses():
    return st.builds(codec.client_address, st.integers(0, 0x7F))


def server_addresses():
    return st.one_of(
        st.builds(codec.address, st.integers(0, 0x7F), st.just(1)),
        st.builds(codec.address, st.integers(0, 0x3FFF), st.just(2)),
        st.builds(codec.address, st.integers(0, 0x0FFFFFFF), st.just(4)))


def hdlc_frame_fields(controls=None, max_info=300):
    """dict(control, destination, source, info, segmented) of a buildable frame, in
    either direction (client to server or server to client)."""
    controls = controls if controls is not None else hdlc_controls()
    command = st.tuples(server_addresses(), client_addresses())
    response = st.tuples(client_addresses(), server_addresses())
    return st.builds(
        lambda control, addresses, info, segmented: dict(
            control=control, destination=addresses[0], source=addresses[1], info=info,
            segmented=segmented),
        controls, st.one_of(command, response), st.binary(max_size=max_info), st.booleans())


def hdlc_frames(controls=None, max_info=300):
    return hdlc_frame_fields(controls, max_info).map(lambda f: codec.build_frame(**f))


@st.composite
def _flip_one_bit(draw, frames):
    frame = bytearray(draw(frames))
    bit = draw(st.integers(0, len(frame) * 8 - 1))
    frame[bit // 8] ^= 1 << (bit % 8)
    return bytes(frame)


@st.composite
def _insert_byte(draw, frames):
    frame = draw(frames)
    at = draw(st.integers(1, len(frame) - 1))      # inside the flags: size changes
    return frame[:at] + bytes((draw(st.integers(0, 255)),)) + frame[at:]


@st.composite
def _remove_byte(draw, frames):
    frame = draw(frames)
    at = draw(st.integers(1, len(frame) - 2))
    return frame[:at] + frame[at + 1:]


@st.composite
def _truncate(draw, frames):
    frame = draw(frames)
    return frame[:draw(st.integers(0, len(frame) - 1))]


def malformed_hdlc_frames(frames=None):
    """Byte strings that are certainly not a valid frame, each one mutation away from one."""
    frames = frames if frames is not None else hdlc_frames(max_info=120)
    return st.one_of(_flip_one_bit(frames), _insert_byte(frames), _remove_byte(frames),
                     _truncate(frames))


def commands_to(server, client, max_info=200):
    """Frames with good checksums from `client` to `server` (codec address Containers):
    any control byte, any sequence numbers, any information, either S bit."""
    return st.builds(
        lambda control, info, segmented: codec.build_frame(control, server, client, info,
                                                           segmented),
        hdlc_controls(), st.binary(max_size=max_info), st.booleans())


@st.composite
def _chunked(draw, data_strategy):
    data = draw(data_strategy)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    bounds = [0] + cuts + [len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def _joined(items, max_items):
    return st.lists(items, max_size=max_items).map(b"".join)


def station_traffic(server, client, max_items=12):
    """Chunks of input for a station at `server`: its own commands, broken frames,
    frames for other addresses and noise, cut anywhere.

    The item strategies are built once per call, not per draw: hypothesis validates a
    new strategy object on first use, which cost more than the draw itself."""
    item = st.one_of(
        commands_to(server, client),
        malformed_hdlc_frames(),
        hdlc_frames(max_info=60),
        st.binary(max_size=40),
        st.binary(max_size=12).map(lambda b: b"\x7e" + b))
    return _chunked(_joined(item, max_items))


def wpdu_fields(max_apdu=300):
    port = st.integers(0, 0xFFFF)
    return st.builds(lambda s, d, a: dict(source_wport=s, destination_wport=d, apdu=a),
                     port, port, st.binary(max_size=max_apdu))


def wpdus(max_apdu=300):
    return wpdu_fields(max_apdu).map(lambda f: wrapper_codec.build_wpdu(**f))


@st.composite
def _bad_version(draw, frames):
    frame = draw(frames)
    # any version but the right one, without a filter built per draw
    version = (wrapper_codec.VERSION + draw(st.integers(1, 0xFFFF))) & 0xFFFF
    return version.to_bytes(2, "big") + frame[2:]


@st.composite
def _bad_length(draw, frames):
    frame = draw(frames)
    length = int.from_bytes(frame[6:8], "big")
    wrong = (length + draw(st.integers(1, 0xFFFF))) & 0xFFFF
    return frame[:6] + wrong.to_bytes(2, "big") + frame[8:]


def malformed_wpdus(frames=None):
    """Byte strings that are certainly not one valid WPDU."""
    frames = frames if frames is not None else wpdus(120)
    return st.one_of(_bad_version(frames), _bad_length(frames), _truncate(frames),
                     st.tuples(frames, st.binary(min_size=1, max_size=8)).map(
                         lambda t: t[0] + t[1]))


def wrapper_traffic(max_items=8):
    """Chunks of input for a wrapper endpoint: WPDUs, broken WPDUs and noise."""
    item = st.one_of(wpdus(100), malformed_wpdus(), st.binary(max_size=30))
    return _chunked(_joined(item, max_items))
