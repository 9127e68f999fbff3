"""The host links (emulator/link.py, on the construct codecs) drive the firmware framing
end to end: HdlcPrimary against HdlcStation, WrapperClient against WrapperEndpoint, with
a stand-in upper layer, over an in-memory stream that cuts the bytes anywhere."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.codec import hdlc as codec
from emulator.link import (Acknowledged, ApduReceived, Connected, Disconnected,
                           FrameRejected, HdlcPrimary, LinkConnection, LinkFailure,
                           LinkTimeout, WrapperClient)
from emulator.strategies import hdlc as strategies
from firmware.hdlc.station import NDM, NRM, HdlcStation
from firmware.wrapper import WrapperEndpoint


class Upper:
    """Stand-in DLMS session: answers `reply(apdu)` (default: C4 + the request)."""

    def __init__(self, reply=None):
        self.apdus = []
        self.disconnects = 0
        self.reply = reply or (lambda apdu: b"\xc4" + apdu)

    def on_apdu(self, apdu, client_sap):
        self.apdus.append((apdu, client_sap))
        return self.reply(apdu)

    def on_disconnect(self):
        self.disconnects += 1


class DeviceStream:
    """The blocking stream API of emulator/transport/streams.py over a device endpoint:
    writes go to `device.receive` in random pieces, reads return its output in random
    pieces. `drop_next_answers` loses that many answers on the way back."""

    def __init__(self, device, seed=0, max_chunk=7):
        self.device = device
        self.rng = random.Random(seed)
        self.max_chunk = max_chunk
        self.pending = bytearray()
        self.drop_next_answers = 0
        self.writes = []

    def write(self, data):
        self.writes.append(bytes(data))
        data = bytes(data)
        while data:
            n = self.rng.randint(1, self.max_chunk)
            out = self.device.receive(data[:n])
            data = data[n:]
            if out and self.drop_next_answers:
                self.drop_next_answers -= 1
                continue
            self.pending += out

    def read(self, n, timeout):
        if not self.pending:
            return b""
        n = min(n, self.rng.randint(1, self.max_chunk))
        data = bytes(self.pending[:n])
        del self.pending[:n]
        return data


def _hdlc(upper=None, seed=0, station_kwargs=None, **primary_kwargs):
    upper = upper or Upper()
    station = HdlcStation(server_upper=1, server_lower=0x10, on_apdu=upper.on_apdu,
                          on_disconnect=upper.on_disconnect, **(station_kwargs or {}))
    stream = DeviceStream(station, seed)
    link = HdlcPrimary(client_address=0x10, server_upper=1, server_lower=0x10,
                       **primary_kwargs)
    return LinkConnection(link, stream, timeout=0.5, retries=2), station, upper


def test_sans_io_connect_exchange_disconnect():
    upper = Upper()
    station = HdlcStation(on_apdu=upper.on_apdu, on_disconnect=upper.on_disconnect)
    primary = HdlcPrimary(0x10, 1, 0x10, 2)
    events, out = primary.receive(station.receive(primary.connect()))
    assert events == [Connected(dict(max_info_transmit=128, max_info_receive=128,
                                     window_transmit=1, window_receive=1))]
    assert out == b"" and station.state == NRM
    events, out = primary.receive(station.receive(primary.send_apdu(b"\xc0\x01")))
    assert events == [ApduReceived(b"\xc4\xc0\x01")]
    assert upper.apdus == [(b"\xc0\x01", 0x10)]
    events, _ = primary.receive(station.receive(primary.disconnect()))
    assert events == [Disconnected("UA")]
    assert station.state == NDM and upper.disconnects == 1


def test_blocking_connection_open_request_close():
    conn, station, upper = _hdlc()
    assert conn.open() == dict(max_info_transmit=128, max_info_receive=128,
                               window_transmit=1, window_receive=1)
    for n in range(10):          # N(S)/N(R) wrap past 7
        assert conn.request(bytes((0xC0, n))) == b"\xc4\xc0" + bytes((n,))
    conn.close()
    assert len(upper.apdus) == 10 and upper.disconnects == 1 and station.state == NDM


def test_negotiated_parameters_are_mirrored():
    conn, station, _ = _hdlc(station_kwargs=dict(max_info_length=256, window_size=1))
    params = conn.open(dict(max_info_transmit=1000, max_info_receive=200, window_transmit=1,
                            window_receive=1))
    # the client sends at most what the server receives and the other way round
    assert params == dict(max_info_transmit=256, max_info_receive=200, window_transmit=1,
                          window_receive=1)
    assert station.parameters.max_info_transmit == 200
    assert station.parameters.max_info_receive == 256


@pytest.mark.parametrize("seed", range(4))
def test_segmentation_both_ways_with_chunked_delivery(seed):
    rng = random.Random(seed)
    answer = bytes(rng.randrange(256) for _ in range(3000))
    conn, station, upper = _hdlc(Upper(reply=lambda apdu: answer), seed=seed)
    conn.open()
    request = bytes(rng.randrange(256) for _ in range(700))
    assert conn.request(request) == answer
    assert upper.apdus == [(request, 0x10)]
    frames = [codec.parse_frame(w) for w in conn.stream.writes if w.startswith(b"\x7e")]
    segments = [f for f in frames if f.control.kind == "I"]
    rrs = [f for f in frames if f.control.kind == "RR"]
    assert len(segments) == -(-(700 + 3) // 128)
    assert all(f.segmented for f in segments[:-1]) and not segments[-1].segmented
    assert len(rrs) == -(-(3000 + 3) // 128) - 1      # one RR per answer segment but the last
    conn.close()


def test_windows_of_three_both_ways():
    answer = bytes(range(256)) * 3
    conn, station, upper = _hdlc(Upper(reply=lambda apdu: answer),
                                 station_kwargs=dict(max_info_length=64, window_size=3))
    params = conn.open(dict(max_info_transmit=64, max_info_receive=64, window_transmit=3,
                            window_receive=3))
    assert params["window_transmit"] == 3 and params["window_receive"] == 3
    assert conn.request(bytes(500)) == answer
    assert upper.apdus == [(bytes(500), 0x10)]


@pytest.mark.parametrize("size", [1, 2, 4])
def test_every_server_address_size(size):
    conn, station, upper = _hdlc(address_size=size)
    conn.open()
    assert conn.request(b"\xc0\x01") == b"\xc4\xc0\x01"
    sent = codec.parse_frame(conn.stream.writes[0])
    assert sent.destination.size == size


def test_lost_answer_is_repeated_without_a_second_delivery():
    conn, station, upper = _hdlc()
    conn.open()
    conn.stream.drop_next_answers = 1
    assert conn.request(b"\xc0\x07") == b"\xc4\xc0\x07"
    assert upper.apdus == [(b"\xc0\x07", 0x10)]
    assert conn.request(b"\xc0\x08") == b"\xc4\xc0\x08"


def test_lost_segment_is_recovered():
    answer = bytes(range(200)) * 2
    conn, station, upper = _hdlc(Upper(reply=lambda apdu: answer))
    conn.open()
    link, stream = conn.link, conn.stream
    stream.write(link.send_apdu(b"\xc0"))
    events, out = link.receive(bytes(stream.pending))   # first segment: RR to send
    stream.pending.clear()
    stream.drop_next_answers = 1
    stream.write(out)                                      # second segment lost
    stream.write(link.retransmit())                        # time-out: RR again
    events, out = link.receive(bytes(stream.pending))
    stream.pending.clear()
    while out:
        stream.write(out)
        more, out = link.receive(bytes(stream.pending))
        stream.pending.clear()
        events += more
    assert events == [ApduReceived(answer)]
    assert len(upper.apdus) == 1


def test_no_answer_from_the_server_is_acknowledged():
    conn, _, _ = _hdlc(Upper(reply=lambda apdu: None))
    conn.open()
    assert conn.request(b"\xc0") is None
    assert conn.request(b"\xc1") is None


def test_segmented_request_without_answer_ends_with_acknowledged():
    upper = Upper(reply=lambda apdu: None)
    station = HdlcStation(on_apdu=upper.on_apdu)
    primary = HdlcPrimary()
    primary.receive(station.receive(primary.connect()))
    out = primary.send_apdu(bytes(300))
    events = []
    while out:
        more, out = primary.receive(station.receive(out))
        events += more
    assert events == [Acknowledged()]
    assert upper.apdus == [(bytes(300), 0x10)]


def test_dm_when_the_station_is_not_connected():
    conn, station, _ = _hdlc()
    conn.open()
    conn.close()
    with pytest.raises(LinkFailure) as failure:
        conn.link.state = "connected"          # pretend: the client thinks it is linked
        conn.request(b"\xc0")
    assert failure.value.event == Disconnected("DM")


def test_frame_reject_reaches_the_client():
    conn, station, _ = _hdlc()
    conn.open()
    conn.link.parameters["max_info_transmit"] = 200        # lie: more than agreed
    with pytest.raises(LinkFailure) as failure:
        conn.request(bytes(190))
    event = failure.value.event
    assert isinstance(event, FrameRejected) and event.reasons == 0x04   # Y
    conn.link.parameters["max_info_transmit"] = 128
    assert conn.open() is not None                                      # SNRM recovers
    assert conn.request(b"\xc0") == b"\xc4\xc0"


def test_silence_times_out():
    class Deaf(DeviceStream):
        def write(self, data):
            self.writes.append(bytes(data))

    link = HdlcPrimary()
    conn = LinkConnection(link, Deaf(None), timeout=0.01, retries=1)
    with pytest.raises(LinkTimeout):
        conn.open()
    assert conn.stream.writes == [conn.stream.writes[0]] * 2        # SNRM, then once again


def _wrapper(upper=None, seed=0):
    upper = upper or Upper()
    endpoint = WrapperEndpoint(on_apdu=upper.on_apdu, on_disconnect=upper.on_disconnect)
    conn = LinkConnection(WrapperClient(0x10, 1), DeviceStream(endpoint, seed), timeout=0.5)
    return conn, endpoint, upper


@pytest.mark.parametrize("seed", range(3))
def test_wrapper_client_against_the_endpoint(seed):
    answer = bytes(range(256)) * 20
    conn, endpoint, upper = _wrapper(Upper(reply=lambda apdu: answer), seed)
    assert conn.open() is None
    assert conn.request(b"\x60\x1d") == answer
    assert conn.request(b"\xc0\x01") == answer
    assert upper.apdus == [(b"\x60\x1d", 0x10), (b"\xc0\x01", 0x10)]
    conn.close()


# -- bad input never breaks the device ---------------------------------------------------

SERVER = codec.server_address(1, 0x10, 2)
CLIENT = codec.client_address(0x10)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=strategies.station_traffic(SERVER, CLIENT), seed=st.integers(0, 3))
def test_station_survives_any_input_and_then_serves_a_client(chunks, seed):
    upper = Upper()
    station = HdlcStation(server_upper=1, server_lower=0x10, on_apdu=upper.on_apdu,
                          on_disconnect=upper.on_disconnect)
    for chunk in chunks:
        out = station.receive(chunk)
        assert isinstance(out, bytes)
        assert station._reader.buffered() <= 2049
    assert station.internal_error is None
    conn = LinkConnection(HdlcPrimary(), DeviceStream(station, seed), timeout=0.5)
    conn.open()
    assert conn.request(b"\xc0\x01\xc1") == b"\xc4\xc0\x01\xc1"
    conn.close()
    assert station.state == NDM and station.internal_error is None


@settings(max_examples=250, deadline=None)
@given(chunks=strategies.wrapper_traffic(), seed=st.integers(0, 3))
def test_wrapper_endpoint_survives_any_input_and_then_serves_a_client(chunks, seed):
    upper = Upper()
    endpoint = WrapperEndpoint(on_apdu=upper.on_apdu, max_apdu_size=512)
    for chunk in chunks:
        assert isinstance(endpoint.receive(chunk), bytes)
        assert endpoint.buffered() <= 512 + 8
    assert endpoint.internal_error is None
    endpoint.idle()          # the noise stops; the client's next request starts clean
    conn = LinkConnection(WrapperClient(0x10, 1), DeviceStream(endpoint, seed), timeout=0.5)
    conn.open()
    assert conn.request(b"\xc0\x01\xc1") == b"\xc4\xc0\x01\xc1"


def test_garbled_ua_parameters_are_a_link_error():
    primary = HdlcPrimary()
    primary.connect()
    ua = codec.build_frame(codec.control("UA"), CLIENT, SERVER, b"\x81\x80\x09\x05")
    events, _ = primary.receive(ua)
    assert len(events) == 1 and "UA parameters" in events[0].reason
    assert primary.state != "connected"


@settings(max_examples=100, deadline=None)
@given(request_size=st.integers(0, 2500), answer_size=st.integers(0, 4000),
       station_info=st.integers(16, 600), client_info=st.integers(16, 600),
       station_window=st.integers(1, 7), client_window=st.integers(1, 7),
       address_size=st.sampled_from([1, 2, 4]), seed=st.integers(0, 1000))
def test_any_sizes_and_parameters_round_trip(request_size, answer_size, station_info,
                                             client_info, station_window, client_window,
                                             address_size, seed):
    rng = random.Random(seed)
    answer = bytes(rng.randrange(256) for _ in range(answer_size))
    conn, station, upper = _hdlc(
        Upper(reply=lambda apdu: answer), seed=seed, address_size=address_size,
        station_kwargs=dict(max_info_length=station_info, window_size=station_window,
                            max_apdu_size=4096))
    params = conn.open(dict(max_info_transmit=client_info, max_info_receive=client_info,
                            window_transmit=client_window, window_receive=client_window))
    assert params["max_info_transmit"] == min(station_info, client_info)
    assert params["window_receive"] == min(station_window, client_window)
    request = bytes(rng.randrange(256) for _ in range(request_size))
    assert conn.request(request) == (answer or None)
    assert upper.apdus == [(request, 0x10)]
    conn.close()
    assert station.internal_error is None and station.upper_error is None


def test_rnr_from_the_server_holds_the_request_and_the_time_out_polls():
    upper = Upper()
    station = HdlcStation(on_apdu=upper.on_apdu)
    primary = HdlcPrimary()
    primary.receive(station.receive(primary.connect()))
    first = primary.send_apdu(bytes(300))                  # three segments of 128
    assert codec.parse_frame(first).segmented
    station.receive(first)                                 # (its RR is "lost")
    rnr = codec.build_frame(codec.control("RNR", True, nr=1), CLIENT, SERVER)
    events, out = primary.receive(rnr)
    assert events == [] and out == b""                     # nothing sent while busy
    poll = codec.parse_frame(primary.retransmit())
    assert poll.control.kind == "RR" and poll.control.pf
    events, out = primary.receive(station.receive(primary.retransmit()))
    assert codec.parse_frame(out).control.ns == 1          # the server's RR: go on
    while out:
        more, out = primary.receive(station.receive(out))
        events += more
    assert events == [ApduReceived(b"\xc4" + bytes(300))]
