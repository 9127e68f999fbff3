"""The firmware HDLC/wrapper codecs and the construct codecs are each other's oracle:
the same fields give the same bytes, each parses the other's output, and what one
rejects the other rejects too (ARCHITECTURE.md principle 3)."""

import pytest
from gurux_dlms import GXByteBuffer, GXDLMSTranslator
from gurux_dlms._GXFCS16 import _GXFCS16
from gurux_dlms.enums import TranslatorOutputType
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.codec import hdlc as codec
from emulator.codec import wrapper as wrapper_codec
from emulator.codec.errors import CodecError
from emulator.strategies import hdlc as strategies
from firmware import wrapper as fw_wrapper
from firmware.hdlc import crc as fw_crc
from firmware.hdlc import frame as fw
from firmware.hdlc.parameters import LinkParameters, decode_parameters
from firmware.hdlc.station import HdlcStation

FW_KINDS = {name: kind for kind, name in fw.KIND_NAMES.items()}


def firmware_control(control):
    if control.kind == "I":
        return fw.i_control(control.ns, control.nr, control.pf)
    if control.kind in codec.SUPERVISORY.values():
        return fw.s_control(FW_KINDS[control.kind], control.nr, control.pf)
    if control.kind == "U":
        return control.code | (fw.POLL_FINAL if control.pf else 0)
    return fw.u_control(FW_KINDS[control.kind], control.pf)


def firmware_frame(fields):
    return fw.HdlcFrame(firmware_control(fields["control"]),
                        (fields["destination"].value, fields["destination"].size),
                        (fields["source"].value, fields["source"].size),
                        fields["info"], fields["segmented"])


def control_key(control):
    return (control.kind, bool(control.pf), control.get("ns"), control.get("nr"),
            control.get("code") if control.kind == "U" else None)


def assert_same_fields(parsed, fields):
    assert parsed.segmented == fields["segmented"]
    assert (parsed.destination.value, parsed.destination.size) == (
        fields["destination"].value, fields["destination"].size)
    assert (parsed.source.value, parsed.source.size) == (
        fields["source"].value, fields["source"].size)
    assert control_key(parsed.control) == control_key(fields["control"])
    assert parsed.info == fields["info"]


KIND_STRATEGIES = {
    "I": strategies.i_controls(),
    "S": strategies.s_controls(),
    "U named": strategies.u_controls(named_only=True),
    "U any": strategies.u_controls(),
}


@pytest.mark.parametrize("family", sorted(KIND_STRATEGIES))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_both_codecs_build_the_same_bytes_and_parse_each_other(family, data):
    fields = data.draw(strategies.hdlc_frame_fields(KIND_STRATEGIES[family]))
    ours = firmware_frame(fields).encode()
    theirs = codec.build_frame(**fields)
    assert ours == theirs
    assert fw.parse_frame(theirs) == firmware_frame(fields)
    assert_same_fields(codec.parse_frame(ours), fields)


@pytest.mark.parametrize("kind", sorted(codec.UNNUMBERED.values())
                         + sorted(codec.SUPERVISORY.values()) + ["I"])
def test_every_named_kind_agrees_on_its_control_byte(kind):
    for pf in (False, True):
        control = codec.control(kind, pf, ns=3 if kind == "I" else None,
                                nr=5 if kind in ("I",) + tuple(codec.SUPERVISORY.values())
                                else None)
        raw = codec.build_frame(control, codec.server_address(1, 0x10, 2),
                                codec.client_address(0x10))
        frame = fw.parse_frame(raw)
        assert fw.KIND_NAMES[frame.kind] == kind
        assert frame.poll == pf
        assert codec.parse_frame(raw).control.kind == kind


def test_known_gurux_frames():
    snrm = bytes.fromhex("7ea0070321930f017e")
    parsed = codec.parse_frame(snrm)
    assert parsed.control.kind == "SNRM" and parsed.control.pf
    assert (parsed.destination.value, parsed.source.value) == (1, 0x10)
    assert fw.parse_frame(snrm).control == 0x93


@settings(max_examples=300, deadline=None)
@given(strategies.malformed_hdlc_frames())
def test_malformed_frames_make_both_codecs_raise_their_layer_error(raw):
    with pytest.raises(fw.HdlcError) as ours:
        fw.parse_frame(raw)
    with pytest.raises(codec.HdlcCodecError) as theirs:
        codec.parse_frame(raw)
    assert 0 <= ours.value.offset <= len(raw)
    assert 0 <= theirs.value.offset <= len(raw)
    assert isinstance(theirs.value, CodecError) and theirs.value.reason


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_either_parse_in_both_or_in_neither(raw):
    try:
        ours = fw.parse_frame(raw)
    except fw.HdlcError:
        ours = None
    try:
        theirs = codec.parse_frame(raw)
    except codec.HdlcCodecError:
        theirs = None
    assert (ours is None) == (theirs is None)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_three_crc_implementations_agree(data):
    gurux = _GXFCS16.countFCS16(data, 0, len(data))
    want = (gurux & 0xFF) << 8 | gurux >> 8    # Gurux keeps it byte-swapped for its
                                               # big-endian write: LSB first on the wire
    assert fw_crc.crc16(data) == want
    assert codec.crc16_x25(data) == want


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2030), st.integers(1, 2030), st.integers(1, 7), st.integers(1, 7))
def test_negotiation_field_agrees(tx, rx, wtx, wrx):
    ours = LinkParameters(tx, rx, wtx, wrx).encode()
    theirs = codec.build_parameters(tx, rx, wtx, wrx)
    assert ours == theirs
    assert decode_parameters(theirs) == LinkParameters(tx, rx, wtx, wrx)
    assert codec.parse_parameters(ours) == dict(max_info_transmit=tx, max_info_receive=rx,
                                                window_transmit=wtx, window_receive=wrx)


def test_negotiation_field_errors_in_both():
    for bad in (b"\x82\x80\x00", b"\x81\x80\x05\x05\x01\x80", b"\x81\x80\x03\x05\x05\x80",
                b"\x81\x80", b"\x81\x80\x03\x05\x01\x80\x00"):
        with pytest.raises(fw.HdlcError):
            decode_parameters(bad)
        with pytest.raises(codec.HdlcCodecError):
            codec.parse_parameters(bad)


def test_build_errors_are_codec_errors():
    with pytest.raises(codec.HdlcCodecError):
        codec.build_frame(codec.control("I", ns=9, nr=0), codec.address(1, 1),
                          codec.client_address(16))
    with pytest.raises(codec.HdlcCodecError):
        codec.build_frame(codec.control("XYZ"), codec.address(1, 1), codec.client_address(16))
    with pytest.raises(codec.HdlcCodecError):
        codec.build_frame(codec.control("UI"), codec.address(0x80, 1), codec.client_address(16))
    with pytest.raises(codec.HdlcCodecError):
        codec.build_frame(codec.control("UI"), codec.address(1, 1), codec.client_address(16),
                          bytes(2040))


@settings(max_examples=300, deadline=None)
@given(strategies.wpdu_fields())
def test_wrapper_codecs_agree(fields):
    ours = fw_wrapper.encode_wpdu(fields["source_wport"], fields["destination_wport"],
                                  fields["apdu"])
    theirs = wrapper_codec.build_wpdu(**fields)
    assert ours == theirs
    assert fw_wrapper.decode_wpdu(theirs) == (fields["source_wport"],
                                              fields["destination_wport"], fields["apdu"])
    parsed = wrapper_codec.parse_wpdu(ours)
    assert (parsed.source_wport, parsed.destination_wport, parsed.apdu) == (
        fields["source_wport"], fields["destination_wport"], fields["apdu"])


@settings(max_examples=300, deadline=None)
@given(strategies.malformed_wpdus())
def test_malformed_wpdus_make_both_codecs_raise(raw):
    with pytest.raises(fw_wrapper.WrapperError) as ours:
        fw_wrapper.decode_wpdu(raw)
    with pytest.raises(wrapper_codec.WrapperCodecError) as theirs:
        wrapper_codec.parse_wpdu(raw)
    assert ours.value.offset == theirs.value.offset
    assert isinstance(theirs.value, CodecError)


# -- Gurux reads what the station sends ---------------------------------------------------

def _station_session(address, answer_size):
    """Every kind of frame the station emits, from one scripted session."""
    station = HdlcStation(on_apdu=lambda apdu, sap: b"\xc4\x01\xc1\x00\x09\x82"
                          + answer_size.to_bytes(2, "big") + bytes(answer_size))
    client = (0x10, 1)

    def send(control, info=b""):
        return station.receive(fw.HdlcFrame(control, address, client, info).encode())

    out = [send(fw.u_control(fw.SNRM, True)),
           send(fw.i_control(0, 0, True), b"\xe6\xe6\x00\xc0\x01\xc1\x00\x08\x00\x00\x01\x00"
                                          b"\x00\xff\x02\x00")]
    ns = 1
    while fw.parse_frame(out[-1]).segmented:
        out.append(send(fw.s_control(fw.RR, ns, True)))
        ns = (ns + 1) & 7
    out.append(send(fw.s_control(fw.RR, ns, True)))          # nothing left: RR
    out.append(send(fw.s_control(fw.REJ, ns, True)))         # FRMR
    out.append(send(fw.u_control(fw.DISC, True)))            # UA
    out.append(send(fw.u_control(fw.DISC, True)))            # DM
    return out


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([(1, 1), (1 << 7 | 0x10, 2), (1 << 14 | 0x10, 4)]),
       st.integers(0, 600))
def test_every_frame_the_station_emits_parses_in_gurux_translator(address, answer_size):
    translator = GXDLMSTranslator(TranslatorOutputType.SIMPLE_XML)
    frames = _station_session(address, answer_size)
    kinds = [fw.KIND_NAMES[fw.parse_frame(raw).kind] for raw in frames]
    assert kinds[0] == "UA" and kinds[-3:] == ["FRMR", "UA", "DM"]
    for raw in frames:
        xml = translator.messageToXml(GXByteBuffer(raw))
        assert '<FrameType Value="%02X" />' % raw[_control_at(raw)] in xml
        assert '<TargetAddress Value="10" />' in xml


def _control_at(raw):
    """Index of the control byte: after the format field and both addresses."""
    i = 3
    for _ in range(2):
        while not raw[i] & 1:
            i += 1
        i += 1
    return i
