"""ASH (UG101) on the NCP side: framing vectors, sequencing, NAK and retransmission."""

import bellows.ash as bash
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.ncp import ash
from emulator.ncp.ash import AshError, AshNcp


def wire(frame) -> bytes:
    """A host frame, built by bellows, as it goes on the wire."""
    return bash.AshProtocol._stuff_bytes(frame.to_bytes()) + b"\x7e"


def frames_of(data: bytes):
    return [bash.parse_frame(bash.AshProtocol._unstuff_bytes(raw))
            for raw in data.split(b"\x7e") if raw]


def connected(ncp=None) -> AshNcp:
    ncp = ncp or AshNcp()
    ncp.receive(b"\x1a" * 32 + wire(bash.RstFrame()), 0.0)
    ncp.outgoing()
    return ncp


# --- vectors from UG101 (§3, §4.3) --------------------------------------------------------
def test_ug101_frame_vectors():
    assert ash.encode(bytes([ash.RST])) == bytes.fromhex("c038bc7e")
    assert ash.encode(bytes([ash.RSTACK, 0x02, 0x02])) == bytes.fromhex("c102029b7b7e")
    assert ash.encode(ash.ack_frame(1)) == bytes.fromhex("8160597e")
    assert ash.encode(ash.nak_frame(6)) == bytes.fromhex("a634dc7e")


def test_pseudo_random_sequence_starts_as_ug101_says():
    assert ash.randomise(bytes(5)) == bytes.fromhex("4221a8542a")
    assert ash.PSEUDO_RANDOM[:256] == bytes(bash.PSEUDO_RANDOM_DATA_SEQUENCE)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 7), st.integers(0, 7), st.booleans(), st.binary(max_size=120))
def test_data_frames_agree_with_bellows(frm, ack_num, re_tx, payload):
    ours = ash.encode(ash.data_frame(frm, ack_num, payload, re_tx))
    theirs = wire(bash.DataFrame(frm_num=frm, re_tx=re_tx, ack_num=ack_num,
                                 ezsp_frame=payload))
    assert ours == theirs
    decoded = ash.decode(ash.unstuff(ours[:-1]))
    assert (decoded.kind, decoded.frm_num, decoded.ack_num, decoded.re_tx,
            decoded.payload) == ("DATA", frm, ack_num, re_tx, payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_stuffing_round_trips_and_hides_reserved_bytes(data):
    stuffed = ash.stuff(data)
    assert not set(stuffed) & {0x7E, 0x11, 0x13, 0x18, 0x1A}
    assert ash.unstuff(stuffed) == data


def test_decode_errors_carry_offset_and_reason():
    good = ash.unstuff(ash.encode(ash.data_frame(0, 0, b"\x01\x02\x03"))[:-1])
    bad_crc = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(AshError) as err:
        ash.decode(bad_crc)
    assert err.value.offset == len(good) - 2 and "CRC" in err.value.reason
    with pytest.raises(AshError) as err:
        ash.decode(b"\x81\x60")
    assert err.value.offset == 2
    with pytest.raises(AshError) as err:
        ash.unstuff(b"\x01\x7d\x41")
    assert err.value.offset == 2 and "escaped" in err.value.reason
    with pytest.raises(AshError) as err:
        ash.decode(ash.with_crc(bytes([ash.RSTACK, 0x03, 0x0B])))
    assert "version" in err.value.reason


# --- the link ---------------------------------------------------------------------------
def test_rst_is_answered_with_rstack_version_2_software_reset():
    ncp = AshNcp()
    ncp.receive(b"\x1a" * 32 + wire(bash.RstFrame()), 0.0)
    (frame,) = frames_of(ncp.outgoing())
    assert isinstance(frame, bash.RStackFrame)
    assert frame.version == 2 and frame.reset_code == bash.t.NcpResetCode.RESET_SOFTWARE
    assert ncp.resets == 1


def test_data_before_rst_is_ignored():
    ncp = AshNcp()
    assert ncp.receive(wire(bash.DataFrame(0, False, 0, b"\x00\x00\x00\x04")), 0.0) == []
    assert ncp.outgoing() == b""


def test_in_sequence_data_is_delivered_and_acked():
    ncp = connected()
    got = ncp.receive(wire(bash.DataFrame(frm_num=0, re_tx=False, ack_num=0,
                                          ezsp_frame=b"\x00\x00\x00\x04")), 0.0)
    assert got == [b"\x00\x00\x00\x04"]
    (ack,) = frames_of(ncp.outgoing())
    assert isinstance(ack, bash.AckFrame) and ack.ack_num == 1


def test_bad_crc_is_naked_once_then_recovered_by_retransmission():
    ncp = connected()
    frame = bytearray(wire(bash.DataFrame(0, False, 0, b"\x01\x02\x03")))
    frame[2] ^= 0x01                                  # damage the payload
    assert ncp.receive(bytes(frame), 0.0) == []
    (nak,) = frames_of(ncp.outgoing())
    assert isinstance(nak, bash.NakFrame) and nak.ack_num == 0
    assert ncp.errors and "CRC" in ncp.errors[-1].reason
    ncp.receive(bytes(frame), 0.1)                    # still rejecting: no second NAK
    assert ncp.outgoing() == b""
    got = ncp.receive(wire(bash.DataFrame(0, True, 0, b"\x01\x02\x03")), 0.2)
    assert got == [b"\x01\x02\x03"]
    (ack,) = frames_of(ncp.outgoing())
    assert isinstance(ack, bash.AckFrame) and ack.ack_num == 1


def test_out_of_sequence_frame_is_naked_and_not_delivered():
    ncp = connected()
    assert ncp.receive(wire(bash.DataFrame(2, False, 0, b"\x09")), 0.0) == []
    (nak,) = frames_of(ncp.outgoing())
    assert isinstance(nak, bash.NakFrame) and nak.ack_num == 0


def test_retransmitted_duplicate_is_acked_but_not_delivered_twice():
    ncp = connected()
    assert ncp.receive(wire(bash.DataFrame(0, False, 0, b"\x05")), 0.0) == [b"\x05"]
    ncp.outgoing()
    assert ncp.receive(wire(bash.DataFrame(0, True, 0, b"\x05")), 0.1) == []
    (ack,) = frames_of(ncp.outgoing())
    assert isinstance(ack, bash.AckFrame) and ack.ack_num == 1


def test_cancel_and_substitute_drop_the_frame_in_progress():
    ncp = connected()
    data = wire(bash.DataFrame(0, False, 0, b"\x05"))
    assert ncp.receive(data[:3] + b"\x1a" + data, 0.0) == [b"\x05"]
    ncp.outgoing()
    data = wire(bash.DataFrame(1, False, 0, b"\x06"))
    assert ncp.receive(data[:3] + b"\x18" + data, 0.0) == []   # discarded to the flag
    assert ncp.receive(data, 0.0) == [b"\x06"]


def test_window_of_one_and_piggybacked_ack_numbers():
    ncp = connected()
    ncp.receive(wire(bash.DataFrame(0, False, 0, b"\x01")), 0.0)
    ncp.outgoing()
    ncp.send(b"reply-1", 0.0)
    ncp.send(b"reply-2", 0.0)
    (first,) = frames_of(ncp.outgoing())
    assert (first.frm_num, first.ack_num, first.ezsp_frame) == (0, 1, b"reply-1")
    assert ncp.outgoing() == b""                          # window 1: second waits
    ncp.receive(wire(bash.AckFrame(res=0, ncp_ready=0, ack_num=1)), 0.01)
    (second,) = frames_of(ncp.outgoing())
    assert (second.frm_num, second.ezsp_frame) == (1, b"reply-2")


def test_unacked_data_is_retransmitted_with_retx_then_error_frame():
    ncp = connected(AshNcp(t_rx_ack=0.4))
    ncp.send(b"callback", 0.0)
    (first,) = frames_of(ncp.outgoing())
    assert not first.re_tx
    now, sent = 0.0, []
    while not ncp.failed and now < 30:
        now = ncp.next_deadline()
        ncp.poll(now)
        sent += frames_of(ncp.outgoing())
    retries = [f for f in sent if isinstance(f, bash.DataFrame)]
    assert len(retries) == ash.ACK_TIMEOUTS - 1
    assert all(f.re_tx and f.frm_num == 0 and f.ezsp_frame == b"callback" for f in retries)
    assert isinstance(sent[-1], bash.ErrorFrame)
    assert sent[-1].reset_code == bash.t.NcpResetCode.ERROR_EXCEEDED_MAXIMUM_ACK_TIMEOUT_COUNT
    ncp.receive(wire(bash.DataFrame(0, False, 0, b"\x01")), now)   # failed: DATA ignored
    assert ncp.outgoing() == b""
    ncp.receive(wire(bash.RstFrame()), now)                          # RST recovers
    assert isinstance(frames_of(ncp.outgoing())[0], bash.RStackFrame)


def test_nak_from_host_triggers_immediate_retransmission():
    ncp = connected()
    ncp.send(b"reply", 0.0)
    ncp.outgoing()
    ncp.receive(wire(bash.NakFrame(res=0, ncp_ready=0, ack_num=0)), 0.05)
    (again,) = frames_of(ncp.outgoing())
    assert again.re_tx and again.frm_num == 0 and again.ezsp_frame == b"reply"
    ncp.receive(wire(bash.AckFrame(res=0, ncp_ready=0, ack_num=1)), 0.06)
    assert ncp.idle


def test_ack_timeout_adapts_as_ug101_says():
    ncp = connected()
    ncp.send(b"x", 0.0)
    ncp.outgoing()
    assert ncp.next_deadline() == pytest.approx(ash.T_RX_ACK_INIT)
    ncp.poll(ash.T_RX_ACK_INIT)                           # timeout: doubled, capped
    ncp.outgoing()
    assert ncp.next_deadline() == pytest.approx(ash.T_RX_ACK_INIT + ash.T_RX_ACK_MAX)
