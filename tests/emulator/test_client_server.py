"""The host DLMS client (emulator/client.py, construct codecs) against the firmware
xDLMS server, through the firmware HDLC station and the wrapper endpoint, in process
(an in-memory stream), over a real TCP socket, and over a pty.

The bad-input properties feed generated malformed APDUs straight to the session: the
device must never raise, must answer in the right terms, and must still serve a valid
GET afterwards.
"""

import os
import socket
import threading
import tty

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.client import DlmsClient, DlmsClientError, cosem_date_time, to_logical_name
from emulator.codec import acse as host_acse
from emulator.codec import xdlms as host_xdlms
from emulator.link import HdlcPrimary, LinkConnection, LinkTimeout, WrapperClient
from emulator.strategies import xdlms as strategies
from emulator.transport.streams import SerialStream, SocketStream
from firmware.dlms import acse as fw_acse
from firmware.dlms import apdu as fw_apdu
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.hdlc.station import HdlcStation
from firmware.wrapper import WrapperEndpoint
from tests.firmware.test_server import (BIG, BIG_VALUE, ENERGY, MANAGEMENT, NOW, PASSWORD,
                                        PROFILE, PUBLIC, SECRET, SERIAL, UNKNOWN, make_server)


class MemoryStream:
    """The stream API of emulator/transport/streams.py over a framing endpoint in process:
    what the client writes is fed to the device at once; its answer waits to be read."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.pending = bytearray()

    def write(self, data):
        self.pending.extend(self.endpoint.receive(bytes(data)))

    def read(self, n, timeout):
        data = bytes(self.pending[:n])
        del self.pending[:n]
        return data

    def close(self):
        pass


def device(framing, max_pdu_size=1024, max_info_length=128):
    ld, server = make_server(max_pdu_size)
    session = server.new_session()
    if framing == "hdlc":
        endpoint = HdlcStation(server_upper=1, server_lower=0x10, on_apdu=session.handle,
                               on_disconnect=session.abort, max_info_length=max_info_length)
    else:
        endpoint = WrapperEndpoint(on_apdu=session.handle, on_disconnect=session.abort)
    return ld, session, endpoint


def client_link(framing, client_sap):
    if framing == "hdlc":
        return HdlcPrimary(client_address=client_sap, server_upper=1, server_lower=0x10)
    return WrapperClient(client_wport=client_sap, server_wport=1)


def connect(framing, client_sap=PUBLIC, timeout=2.0, **device_options):
    ld, session, endpoint = device(framing, **device_options)
    connection = LinkConnection(client_link(framing, client_sap), MemoryStream(endpoint),
                                timeout=timeout, retries=0)
    connection.open()
    return ld, session, DlmsClient(connection)


FRAMINGS = ["hdlc", "wrapper"]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_public_client_reads_registers_object_list_and_profile(framing):
    ld, session, client = connect(framing)
    info = client.associate(PUBLIC, max_pdu=512)
    assert info["negotiated_dlms_version_number"] == 6
    assert session.association(PUBLIC).max_pdu_size == 512
    assert client.get(3, "1.0.1.8.0.255", 2) == (axdr.DOUBLE_LONG_UNSIGNED, 12345)
    assert client.get(3, "1-0:1.8.0*255", 3) == (axdr.STRUCTURE, [(axdr.INTEGER, 0),
                                                                   (axdr.ENUM, 30)])
    objects = client.object_list()
    by_name = {o["logical_name"]: o for o in objects}
    assert by_name[ENERGY]["class_id"] == 3
    assert by_name[ENERGY]["attribute_access"][2] == (1, [])
    assert by_name[ENERGY]["method_access"] == {1: 0}
    assert by_name[PROFILE]["attribute_access"][2] == (1, [1, 2])
    assert SECRET not in by_name
    assert by_name[b"\x00\x00\x28\x00\x00\xff"]["class_id"] == 15
    rows = client.read_profile(PROFILE, from_entry=2, to_entry=4)
    assert rows == [[(axdr.DOUBLE_LONG_UNSIGNED, v)] for v in (101, 102, 103)]
    assert len(client.read_profile(PROFILE)) == 10
    assert client.release()["pdu"] == "rlre"
    assert session.association(PUBLIC) is None


def test_profile_read_by_time_range_uses_the_clock_column():
    from firmware.cosem.clock import Clock
    from firmware.cosem.logical_device import read_only
    from firmware.cosem.profile import ProfileGeneric
    ld, session, endpoint = device("wrapper")
    clock = Clock(b"\x00\x00\x01\x00\x00\xff")
    energy = ld.find(3, ENERGY)
    profile = ProfileGeneric(b"\x01\x00\x63\x02\x00\xff", [(clock, 2), (energy, 2)],
                             capture_period=1800, profile_entries=48)
    for i in range(48):
        profile.store_entry(NOW + 1800 * i, [(axdr.OCTET_STRING, cosem_date_time(NOW + 1800 * i)),
                                             (axdr.DOUBLE_LONG_UNSIGNED, i)])
    ld.add(profile, {PUBLIC: read_only(profile)})
    client = DlmsClient(LinkConnection(WrapperClient(PUBLIC, 1), MemoryStream(endpoint)))
    client.associate(PUBLIC, max_pdu=200)
    rows = client.read_profile(profile.logical_name, from_seconds=NOW + 1800 * 10,
                               to_seconds=NOW + 1800 * 12)
    assert [r[1] for r in rows] == [(axdr.DOUBLE_LONG_UNSIGNED, i) for i in (10, 11, 12)]
    assert rows[0][0] == (axdr.OCTET_STRING, cosem_date_time(NOW + 18000))
    # the whole buffer is longer than 200 bytes: it comes in blocks
    assert len(client.read_profile(profile.logical_name)) == 48


@pytest.mark.parametrize("framing", FRAMINGS)
def test_block_transfer_and_hdlc_segmentation(framing):
    ld, session, client = connect(framing, max_info_length=32)
    client.associate(PUBLIC, max_pdu=64)
    assert client.get(1, BIG, 2) == BIG_VALUE
    results = client.get_with_list([(1, BIG, 2), (1, UNKNOWN, 2), (3, ENERGY, 2)])
    assert results[0] == BIG_VALUE
    assert isinstance(results[1], DlmsClientError)
    assert results[1].data_access_result == R.OBJECT_UNDEFINED
    assert results[2] == (axdr.DOUBLE_LONG_UNSIGNED, 12345)


@pytest.mark.parametrize("framing", FRAMINGS)
def test_management_client_sets_and_acts(framing):
    ld, session, client = connect(framing, client_sap=MANAGEMENT)
    client.associate(MANAGEMENT, password=PASSWORD)
    client.set(1, SERIAL, 2, (axdr.OCTET_STRING, b"written by host"))
    assert client.get(1, SERIAL, 2) == (axdr.OCTET_STRING, b"written by host")
    assert client.set_with_list([(1, SECRET, 2, (axdr.LONG_UNSIGNED, 42)),
                                 (1, SERIAL, 2, (axdr.UNSIGNED, 1))]) == [
        R.SUCCESS, R.TYPE_UNMATCHED]
    assert client.get(1, SECRET, 2) == (axdr.LONG_UNSIGNED, 42)
    assert client.action(3, ENERGY, 1, (axdr.INTEGER, 0)) is None
    assert client.get(3, ENERGY, 2) == (axdr.DOUBLE_LONG_UNSIGNED, 0)
    with pytest.raises(DlmsClientError) as refused:
        client.action(3, ENERGY, 9)
    assert refused.value.action_result == R.ACTION_OBJECT_UNDEFINED
    client.release()


@pytest.mark.parametrize("framing", FRAMINGS)
def test_a_value_longer_than_the_server_pdu_is_set_in_blocks(framing):
    ld, session, client = connect(framing, client_sap=MANAGEMENT, max_pdu_size=128)
    client.associate(MANAGEMENT, password=PASSWORD)
    value = (axdr.OCTET_STRING, bytes(range(256)) * 2)
    client.set(1, SERIAL, 2, value)
    assert ld.find(1, SERIAL).value == value
    assert client.get(1, SERIAL, 2) == value
    with pytest.raises(DlmsClientError) as refused:
        client.set(1, SERIAL, 2, (axdr.VISIBLE_STRING, bytes(300)))
    assert refused.value.data_access_result == R.TYPE_UNMATCHED
    assert ld.find(1, SERIAL).value == value


@pytest.mark.parametrize("framing", FRAMINGS)
def test_refusals_reach_the_client_as_errors(framing):
    ld, session, client = connect(framing)
    with pytest.raises(DlmsClientError) as before:
        client.client_sap = PUBLIC
        client.get(3, ENERGY, 2)
    assert before.value.exception == (R.STATE_ERROR_SERVICE_NOT_ALLOWED,
                                      R.SERVICE_ERROR_OPERATION_NOT_POSSIBLE)
    client.associate(PUBLIC, conformance=(1 << 4))      # GET only
    with pytest.raises(DlmsClientError) as denied:
        client.get(1, SECRET, 2)
    assert denied.value.data_access_result == R.SCOPE_OF_ACCESS_VIOLATED
    with pytest.raises(DlmsClientError) as not_negotiated:
        client.set(1, SERIAL, 2, (axdr.OCTET_STRING, b"x"))
    assert not_negotiated.value.exception == (R.STATE_ERROR_SERVICE_NOT_ALLOWED,
                                              R.SERVICE_ERROR_SERVICE_NOT_SUPPORTED)


def test_wrong_password_is_reported_with_the_diagnostic():
    ld, session, client = connect("wrapper", client_sap=MANAGEMENT)
    with pytest.raises(DlmsClientError) as rejected:
        client.associate(MANAGEMENT, password=b"wrong")
    assert rejected.value.diagnostic == fw_acse.DIAG_AUTHENTICATION_FAILURE
    with pytest.raises(DlmsClientError) as no_password:
        client.associate(MANAGEMENT)
    assert no_password.value.diagnostic == fw_acse.DIAG_AUTHENTICATION_MECHANISM_NAME_REQUIRED
    assert session.association(MANAGEMENT) is None


def test_unknown_client_sap_gets_no_answer_over_the_wrapper():
    ld, session, client = connect("wrapper", client_sap=0x33, timeout=0.05)
    with pytest.raises(LinkTimeout):
        client.associate(0x33)


def test_hdlc_disconnect_aborts_the_association():
    ld, session, endpoint = device("hdlc")
    connection = LinkConnection(client_link("hdlc", PUBLIC), MemoryStream(endpoint))
    connection.open()
    client = DlmsClient(connection)
    client.associate(PUBLIC)
    assert session.association(PUBLIC) is not None
    connection.close()
    assert session.association(PUBLIC) is None


def test_hdlc_client_address_must_match_the_association():
    ld, session, client = connect("hdlc", client_sap=PUBLIC)
    with pytest.raises(DlmsClientError):
        client.associate(MANAGEMENT, password=PASSWORD)


def test_client_helpers():
    assert to_logical_name("1.0.1.8.0.255") == ENERGY
    assert to_logical_name("1-0:1.8.0") == ENERGY
    assert to_logical_name(ENERGY) == ENERGY
    with pytest.raises(ValueError):
        to_logical_name("1.0.1.8.0.256")
    # 2023-11-14 22:13:20 UTC, a Tuesday: Blue Book 4.1.6.1 date-time layout
    assert cosem_date_time(NOW) == bytes((0x07, 0xE7, 11, 14, 2, 22, 13, 20, 0, 0, 0, 0))


# --- real transports ---------------------------------------------------------------------

def serve_tcp(framing):
    """A one-connection TCP server thread around the firmware endpoint; -> (port, thread)."""
    ld, session, endpoint = device(framing)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def run():
        conn, _ = listener.accept()
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    break
                out = endpoint.receive(data)
                if out:
                    conn.sendall(out)
        listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return port, thread


@pytest.mark.parametrize("framing", FRAMINGS)
def test_socket_stream_to_a_tcp_device(framing):
    port, thread = serve_tcp(framing)
    with SocketStream("127.0.0.1", port) as stream:
        with LinkConnection(client_link(framing, PUBLIC), stream) as connection:
            client = DlmsClient(connection)
            client.associate(PUBLIC, max_pdu=100)
            assert client.get(1, BIG, 2) == BIG_VALUE
            client.release()
    thread.join(5)
    assert not thread.is_alive()


def test_serial_stream_socket_url():
    port, thread = serve_tcp("hdlc")
    with SerialStream("socket://127.0.0.1:%d" % port) as stream:
        with LinkConnection(client_link("hdlc", PUBLIC), stream) as connection:
            client = DlmsClient(connection)
            client.associate(PUBLIC)
            assert client.get(3, ENERGY, 2) == (axdr.DOUBLE_LONG_UNSIGNED, 12345)
    thread.join(5)


def test_serial_stream_on_a_pty():
    ld, session, endpoint = device("hdlc")
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def run():
        import select
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                out = endpoint.receive(os.read(master, 4096))
                if out:
                    os.write(master, out)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        with SerialStream(os.ttyname(slave)) as stream:
            with LinkConnection(client_link("hdlc", PUBLIC), stream) as connection:
                client = DlmsClient(connection)
                client.associate(PUBLIC, max_pdu=64)
                assert client.get(1, BIG, 2) == BIG_VALUE
    finally:
        stop.set()
        thread.join(5)
        os.close(master)
        os.close(slave)


def test_socket_stream_reports_a_closed_peer_and_timeouts():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stream = SocketStream("127.0.0.1", port)
    peer, _ = listener.accept()
    assert stream.read(10, 0.05) == b""
    peer.sendall(b"\x01\x02\x03")
    assert stream.read(2, 1.0) == b"\x01\x02"
    assert stream.read(10, 1.0) == b"\x03"
    peer.close()
    with pytest.raises(ConnectionError):
        stream.read(10, 1.0)
    stream.close()
    stream.close()
    listener.close()


# --- bad input never breaks the device ------------------------------------------------------

def _request_bytes():
    """Valid encodings of every request APDU and of the ACSE requests (host codecs)."""
    xdlms = st.sampled_from(["GetRequestNormal", "GetRequestNext", "GetRequestWithList",
                             "SetRequestNormal", "SetRequestWithFirstDatablock",
                             "SetRequestWithDatablock", "SetRequestWithList",
                             "SetRequestWithListAndFirstDatablock",
                             "ActionRequestNormal"]).flatmap(
        lambda name: strategies.APDU_STRATEGIES[name]).map(
        lambda a: host_xdlms.encode_apdu(*a))
    acse = st.sampled_from(["aarq", "rlrq"]).flatmap(
        lambda pdu: strategies.ACSE_STRATEGIES[pdu]).map(host_acse.encode_acse)
    return st.one_of(xdlms, acse)


# The reply tag a request tag may get besides an Exception-Response (D8).
REPLY_TAG = {0xC0: 0xC4, 0xC1: 0xC5, 0xC3: 0xC7, 0x60: 0x61, 0x62: 0x63}


def _valid_request(apdu):
    try:
        if apdu and apdu[0] in (0x60, 0x62):
            fw_acse.decode_acse(apdu)
        else:
            fw_apdu.decode_apdu(apdu)
        return True
    except (fw_acse.AcseError, fw_apdu.ApduError):
        return False


def _check_answer(apdu, reply):
    assert reply is not None, apdu.hex()
    tag = apdu[0] if apdu else None
    if reply[0] == 0xD8:
        fw_apdu.decode_apdu(reply)             # a well-formed Exception-Response
        return
    assert reply[0] == REPLY_TAG.get(tag), (apdu.hex(), reply.hex())
    if reply[0] in (0x61, 0x63):
        host_acse.decode_acse(reply)
    else:
        host_xdlms.decode_apdu(reply)          # the host codec accepts what the device says


GOOD_GET = fw_apdu.GetRequestNormal(0xC1, fw_apdu.AttributeDescriptor(3, ENERGY, 2)).encode()


def _fresh_associated_session():
    ld, server = make_server()
    session = server.new_session()
    aarq = fw_acse.Aarq(fw_acse.LN_NO_CIPHERING, sender_acse_requirements=True,
                        mechanism_name=fw_acse.MECHANISM_LOW,
                        calling_authentication_value=PASSWORD,
                        user_information=fw_acse.InitiateRequest(
                            proposed_conformance=0xFFFFFF,
                            client_max_receive_pdu_size=96).encode())
    assert fw_acse.decode_acse(session.handle(aarq.encode(), MANAGEMENT)).result == 0
    # a long GET in progress, so malformed input meets that state too
    session.handle(fw_apdu.GetRequestNormal(0xC1, fw_apdu.AttributeDescriptor(1, BIG, 2))
                   .encode(), MANAGEMENT)
    return ld, session


def _association_snapshot(session):
    assoc = session.association(MANAGEMENT)
    if assoc is None:
        return None
    long_get = assoc.long_get
    return (assoc.conformance, assoc.max_pdu_size,
            None if long_get is None else (long_get.offset, long_get.block_number),
            None if assoc.long_set is None else bytes(assoc.long_set.received))


def _get_still_works(session):
    reply = session.handle(GOOD_GET, MANAGEMENT)
    if reply[0] == 0xD8:       # the garbage was a valid RLRQ: associate again
        _, fresh = _fresh_associated_session()
        reply = fresh.handle(GOOD_GET, MANAGEMENT)
    assert fw_apdu.decode_apdu(reply) == fw_apdu.GetResponseNormal(
        0xC1, fw_apdu.GetDataResult.of_data((axdr.DOUBLE_LONG_UNSIGNED, 12345)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.mutated(_request_bytes()))
def test_malformed_apdus_are_answered_and_change_nothing(apdu):
    ld, session = _fresh_associated_session()
    ld_before = ld.state()
    assoc_before = _association_snapshot(session)
    reply = session.handle(apdu, MANAGEMENT)
    _check_answer(apdu, reply)
    if not _valid_request(apdu):
        # undecodable: the device answered and nothing moved
        assert ld.state() == ld_before
        assert _association_snapshot(session) == assoc_before
    _get_still_works(session)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_arbitrary_bytes_are_answered(apdu):
    ld, session = _fresh_associated_session()
    ld_before = ld.state()
    reply = session.handle(apdu, MANAGEMENT)
    assert reply is not None
    if apdu[:1] in (b"\xc0", b"\xc1", b"\xc3", b"\x60", b"\x62"):
        _check_answer(apdu, reply)
    else:
        assert fw_apdu.decode_apdu(reply) == fw_apdu.ExceptionResponse(
            R.STATE_ERROR_SERVICE_UNKNOWN, R.SERVICE_ERROR_SERVICE_NOT_SUPPORTED) or not apdu
    if not _valid_request(apdu):
        assert ld.state() == ld_before
    _get_still_works(session)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(strategies.mutated(_request_bytes()), min_size=1, max_size=6))
def test_malformed_apdus_over_the_wrapper_never_break_the_link(apdus):
    ld, session, endpoint = device("wrapper")
    stream = MemoryStream(endpoint)
    connection = LinkConnection(WrapperClient(MANAGEMENT, 1), stream, timeout=0.01, retries=0)
    for apdu in apdus:
        reply = connection.request(apdu)
        _check_answer(apdu, reply)
    assert endpoint.internal_error is None and endpoint.upper_error is None
    client = DlmsClient(connection)
    client.client_sap = MANAGEMENT
    if session.association(MANAGEMENT) is None:
        client.associate(MANAGEMENT, password=PASSWORD)
    assert client.get(3, ENERGY, 2)[0] == axdr.DOUBLE_LONG_UNSIGNED
