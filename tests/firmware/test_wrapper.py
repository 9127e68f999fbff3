"""The COSEM TCP wrapper (IEC 62056-47 §5.3.2, §6.3) as the device runs it."""

from firmware.wrapper import (HEADER_LENGTH, WrapperEndpoint, WrapperError, decode_header,
                              decode_wpdu, encode_wpdu)

AARQ = bytes.fromhex("601da109060760857405080101be10040e01000000065f1f0400007e1fffff")


class Upper:
    def __init__(self, reply=None):
        self.apdus = []
        self.disconnects = 0
        self.reply = reply

    def on_apdu(self, apdu, client_sap):
        self.apdus.append((apdu, client_sap))
        return b"\x61" + apdu[:4] if self.reply is None else self.reply(apdu)

    def on_disconnect(self):
        self.disconnects += 1


def _endpoint(upper=None, **kwargs):
    upper = upper or Upper()
    return WrapperEndpoint(on_apdu=upper.on_apdu, on_disconnect=upper.on_disconnect,
                           **kwargs), upper


def _error(fn, *args):
    try:
        fn(*args)
    except WrapperError as err:
        return err
    raise AssertionError("no WrapperError")


def test_header_layout():
    # version 1, source wPort 16 (public client), destination wPort 1, length 31
    wpdu = encode_wpdu(0x10, 0x01, AARQ)
    assert wpdu[:HEADER_LENGTH] == bytes.fromhex("000100100001001f")
    assert decode_wpdu(wpdu) == (0x10, 0x01, AARQ)
    assert decode_header(wpdu) == (0x10, 0x01, len(AARQ))


def test_decode_errors_carry_offsets():
    assert _error(decode_header, b"\x00\x01\x00").offset == 3
    assert _error(decode_header, b"\x00\x02\x00\x10\x00\x01\x00\x00").offset == 0
    assert _error(decode_wpdu, encode_wpdu(1, 1, b"abc")[:-1]).offset == 6
    assert _error(encode_wpdu, 0x10000, 1, b"").offset == 2
    assert _error(encode_wpdu, 1, -1, b"").offset == 4


def test_apdu_goes_up_with_the_source_wport_as_client_sap_and_back_swapped():
    endpoint, upper = _endpoint()
    out = endpoint.receive(encode_wpdu(0x10, 0x01, AARQ))
    assert upper.apdus == [(AARQ, 0x10)]
    assert decode_wpdu(out) == (0x01, 0x10, b"\x61" + AARQ[:4])


def test_reassembles_across_any_chunking():
    stream = encode_wpdu(0x10, 1, AARQ) + encode_wpdu(0x01, 1, b"\xc0\x01") + encode_wpdu(
        0x10, 1, b"")
    for size in (1, 2, 3, 7, 8, 9, len(stream)):
        endpoint, upper = _endpoint()
        out = bytearray()
        for start in range(0, len(stream), size):
            out.extend(endpoint.receive(stream[start:start + size]))
        assert upper.apdus == [(AARQ, 0x10), (b"\xc0\x01", 0x01), (b"", 0x10)]
        assert len(out) == (8 + 5) + (8 + 3) + (8 + 1)
        assert endpoint.buffered() == 0


def test_no_answer_sends_nothing():
    endpoint, _ = _endpoint(Upper(reply=lambda apdu: None))
    assert endpoint.receive(encode_wpdu(0x10, 1, AARQ)) == b""


def test_bad_version_drops_the_buffer_and_the_next_chunk_starts_afresh():
    endpoint, upper = _endpoint()
    bad = b"\x00\x02" + encode_wpdu(0x10, 1, AARQ)[2:]
    assert endpoint.receive(bad) == b""
    assert endpoint.buffered() == 0 and endpoint.dropped == len(bad)
    assert upper.apdus == []
    assert endpoint.receive(encode_wpdu(0x10, 1, AARQ)) != b""
    assert upper.apdus == [(AARQ, 0x10)]


def test_oversized_wpdu_is_skipped_exactly_and_the_stream_stays_in_step():
    endpoint, upper = _endpoint(max_apdu_size=64)
    big = encode_wpdu(0x10, 1, bytes(1000))
    good = encode_wpdu(0x10, 1, AARQ)
    stream = big + good
    out = bytearray()
    for start in range(0, len(stream), 100):
        out.extend(endpoint.receive(stream[start:start + 100]))
        assert endpoint.buffered() <= 64 + HEADER_LENGTH
    assert upper.apdus == [(AARQ, 0x10)]
    assert decode_wpdu(bytes(out))[2] == b"\x61" + AARQ[:4]


def test_other_wports_are_skipped_when_the_endpoint_serves_one():
    endpoint, upper = _endpoint(wport=1)
    out = endpoint.receive(encode_wpdu(0x10, 2, AARQ) + encode_wpdu(0x10, 1, b"\xc0"))
    assert upper.apdus == [(b"\xc0", 0x10)]
    assert decode_wpdu(out)[:2] == (1, 0x10)


def test_close_tells_the_upper_layer():
    endpoint, upper = _endpoint()
    endpoint.receive(b"\x00\x01\x00")
    endpoint.close()
    assert upper.disconnects == 1 and endpoint.buffered() == 0


def test_upper_layer_failure_is_contained():
    def fail(apdu):
        raise ValueError("boom")
    endpoint, upper = _endpoint(Upper(reply=fail))
    assert endpoint.receive(encode_wpdu(0x10, 1, AARQ)) == b""
    assert isinstance(endpoint.upper_error, ValueError)
    upper.reply = None
    assert endpoint.receive(encode_wpdu(0x10, 1, AARQ)) != b""


def test_noise_never_grows_the_buffer_past_one_wpdu():
    endpoint, _ = _endpoint(max_apdu_size=256)
    seed = 99
    for _ in range(50):
        chunk = bytearray(97)
        for i in range(len(chunk)):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            chunk[i] = seed >> 16 & 0xFF
        chunk[0:2] = b"\x00\x01"
        endpoint.receive(bytes(chunk))
        assert endpoint.buffered() <= 256 + HEADER_LENGTH
    assert endpoint.internal_error is None
