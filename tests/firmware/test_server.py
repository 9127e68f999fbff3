"""xDLMS server (firmware/dlms/server.py) against a small LogicalDevice of real COSEM objects.

Plain test functions with bare asserts: tests/firmware/mp_runner.py also runs them
under MicroPython. Requests are built and replies parsed with the firmware codecs.
"""

from firmware.cosem.association import AssociationLN
from firmware.cosem.data import Data
from firmware.cosem.logical_device import (AUTH_LOW, AUTH_LOWEST, AccessRights, LogicalDevice,
                                           full_access, read_only)
from firmware.cosem.profile import ProfileGeneric
from firmware.cosem.register import Register
from firmware.dlms import acse as C
from firmware.dlms import apdu as A
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms.server import SERVER_CONFORMANCE, DlmsServer

PUBLIC = 16
MANAGEMENT = 1
PASSWORD = b"12345678"
NOW = 1700000000

ENERGY = b"\x01\x00\x01\x08\x00\xff"        # 1.0.1.8.0.255
SERIAL = b"\x00\x00\x60\x01\x00\xff"        # 0.0.96.1.0.255
SECRET = b"\x00\x00\x60\x32\x00\xff"        # management only
BIG = b"\x00\x00\x60\x63\x00\xff"           # larger than any small PDU
PROFILE = b"\x01\x00\x63\x01\x00\xff"       # 1.0.99.1.0.255
UNKNOWN = b"\x00\x00\x63\x63\x63\xff"
CURRENT_ASSOCIATION = b"\x00\x00\x28\x00\x00\xff"   # 0.0.40.0.0.255

BIG_VALUE = (axdr.OCTET_STRING, bytes(range(256)) * 3)

ALL = 0xFFFFFF


def make_server(max_pdu_size=1024):
    ld = LogicalDevice()
    energy = Register(ENERGY, (axdr.DOUBLE_LONG_UNSIGNED, 12345), scaler=0, unit=30)
    serial = Data(SERIAL, (axdr.OCTET_STRING, b"SMETS-EMU-0001"))
    secret = Data(SECRET, (axdr.LONG_UNSIGNED, 7))
    big = Data(BIG, BIG_VALUE)
    profile = ProfileGeneric(PROFILE, [(energy, 2)], capture_period=1800, profile_entries=10)
    for i in range(10):
        profile.store_entry(NOW + 1800 * i, [(axdr.DOUBLE_LONG_UNSIGNED, 100 + i)])
    for obj in (energy, serial, big, profile):
        ld.add(obj, {PUBLIC: read_only(obj), MANAGEMENT: full_access(obj)})
    ld.add(secret, {MANAGEMENT: full_access(secret)})
    ld.add_client(PUBLIC, AUTH_LOWEST, association=AssociationLN())
    ld.add_client(MANAGEMENT, AUTH_LOW, secret=PASSWORD, association=AssociationLN())
    server = DlmsServer(ld, lambda: NOW, max_pdu_size=max_pdu_size)
    return ld, server


def aarq(conformance=ALL, max_pdu=0xFFFF, password=None, mechanism=None,
         context=C.LN_NO_CIPHERING, version=6):
    initiate = C.InitiateRequest(proposed_dlms_version_number=version,
                                 proposed_conformance=conformance,
                                 client_max_receive_pdu_size=max_pdu)
    request = C.Aarq(context, user_information=initiate.encode())
    if mechanism is not None:
        request.sender_acse_requirements = True
        request.mechanism_name = mechanism
    if password is not None:
        request.calling_authentication_value = password
    return request.encode()


def associated(client=PUBLIC, max_pdu=0xFFFF, conformance=ALL, server_pdu=1024):
    ld, server = make_server(server_pdu)
    session = server.new_session()
    if client == MANAGEMENT:
        reply = session.handle(aarq(conformance, max_pdu, PASSWORD, C.MECHANISM_LOW), client)
    else:
        reply = session.handle(aarq(conformance, max_pdu), client)
    assert C.decode_acse(reply).result == C.RESULT_ACCEPTED
    return ld, session


def attr(class_id, ln, attribute):
    return A.AttributeDescriptor(class_id, ln, attribute)


def get(session, client, class_id, ln, attribute, iap=0xC1, selection=None):
    request = A.GetRequestNormal(iap, attr(class_id, ln, attribute), selection)
    return A.decode_apdu(session.handle(request.encode(), client))


def get_value(session, client, class_id, ln, attribute):
    reply = get(session, client, class_id, ln, attribute)
    assert isinstance(reply, A.GetResponseNormal)
    assert reply.result.data_access_result is None, reply
    return reply.result.data


def get_error(session, client, class_id, ln, attribute):
    reply = get(session, client, class_id, ln, attribute)
    assert isinstance(reply, A.GetResponseNormal)
    return reply.result.data_access_result


def set_result(session, client, class_id, ln, attribute, value, iap=0xC2):
    request = A.SetRequestNormal(iap, attr(class_id, ln, attribute), value)
    reply = A.decode_apdu(session.handle(request.encode(), client))
    assert isinstance(reply, A.SetResponseNormal)
    assert reply.invoke_id_and_priority == iap
    return reply.result


def action(session, client, class_id, ln, method, parameters=None, iap=0xC3):
    request = A.ActionRequestNormal(iap, A.MethodDescriptor(class_id, ln, method), parameters)
    reply = A.decode_apdu(session.handle(request.encode(), client))
    assert isinstance(reply, A.ActionResponseNormal)
    assert reply.invoke_id_and_priority == iap
    return reply


def exception_of(reply):
    decoded = A.decode_apdu(reply)
    assert isinstance(decoded, A.ExceptionResponse), decoded
    return decoded.state_error, decoded.service_error


# --- association -------------------------------------------------------------------

def test_public_client_associates_with_lowest_level_security():
    ld, server = make_server()
    session = server.new_session()
    aare = C.decode_acse(session.handle(aarq(), PUBLIC))
    assert aare.result == C.RESULT_ACCEPTED
    assert aare.result_source_diagnostic == C.DIAG_NULL
    assert aare.application_context_name == C.LN_NO_CIPHERING
    response = C.decode_user_information(aare.user_information)
    assert isinstance(response, C.InitiateResponse)
    assert response.negotiated_dlms_version_number == 6
    assert response.server_max_receive_pdu_size == 1024
    assert response.vaa_name == C.VAA_NAME_LN
    assert session.association(PUBLIC) is not None


def test_conformance_is_the_and_and_pdu_size_the_minimum():
    ld, server = make_server(max_pdu_size=512)
    session = server.new_session()
    proposed = C.CONFORMANCE_GET | C.CONFORMANCE_ACTION | C.CONFORMANCE_GENERAL_PROTECTION
    aare = C.decode_acse(session.handle(aarq(conformance=proposed, max_pdu=200), PUBLIC))
    response = C.decode_user_information(aare.user_information)
    assert response.negotiated_conformance == C.CONFORMANCE_GET | C.CONFORMANCE_ACTION
    assert response.negotiated_conformance == proposed & SERVER_CONFORMANCE
    assert session.association(PUBLIC).max_pdu_size == 200
    session2 = server.new_session()
    session2.handle(aarq(max_pdu=4000), PUBLIC)
    assert session2.association(PUBLIC).max_pdu_size == 512


def test_management_client_associates_with_its_password():
    ld, server = make_server()
    session = server.new_session()
    reply = session.handle(aarq(password=PASSWORD, mechanism=C.MECHANISM_LOW), MANAGEMENT)
    aare = C.decode_acse(reply)
    assert aare.result == C.RESULT_ACCEPTED
    assert aare.mechanism_name == C.MECHANISM_LOW
    assert get_value(session, MANAGEMENT, 1, SECRET, 2) == (axdr.LONG_UNSIGNED, 7)


def rejected(reply):
    aare = C.decode_acse(reply)
    assert aare.result == C.RESULT_REJECTED_PERMANENT
    assert aare.diagnostic_source == C.ACSE_SERVICE_USER
    return aare


def test_management_client_with_wrong_or_missing_password_is_rejected():
    ld, server = make_server()
    session = server.new_session()
    cases = (
        (aarq(password=b"87654321", mechanism=C.MECHANISM_LOW), C.DIAG_AUTHENTICATION_FAILURE),
        (aarq(password=PASSWORD + b"9", mechanism=C.MECHANISM_LOW),
         C.DIAG_AUTHENTICATION_FAILURE),
        (aarq(mechanism=C.MECHANISM_LOW), C.DIAG_AUTHENTICATION_FAILURE),
        (aarq(), C.DIAG_AUTHENTICATION_MECHANISM_NAME_REQUIRED),
        (aarq(password=PASSWORD, mechanism=C.MECHANISM_HIGH_GMAC),
         C.DIAG_AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED),
    )
    for request, diagnostic in cases:
        aare = rejected(session.handle(request, MANAGEMENT))
        assert aare.result_source_diagnostic == diagnostic
        assert session.association(MANAGEMENT) is None
    # and nothing is served without the association
    reply = A.GetRequestNormal(0xC1, attr(1, SECRET, 2)).encode()
    assert exception_of(session.handle(reply, MANAGEMENT)) == (
        R.STATE_ERROR_SERVICE_NOT_ALLOWED, R.SERVICE_ERROR_OPERATION_NOT_POSSIBLE)


def test_wrong_application_context_is_rejected_with_diagnostic_2():
    ld, server = make_server()
    session = server.new_session()
    for context in (C.SN_NO_CIPHERING, C.LN_WITH_CIPHERING):
        aare = rejected(session.handle(aarq(context=context), PUBLIC))
        assert aare.result_source_diagnostic == C.DIAG_APPLICATION_CONTEXT_NAME_NOT_SUPPORTED
        assert session.association(PUBLIC) is None


def test_unknown_client_sap_gets_no_answer():
    ld, server = make_server()
    session = server.new_session()
    assert session.handle(aarq(), 0x22) is None
    assert session.handle(A.GetRequestNormal(0xC1, attr(3, ENERGY, 2)).encode(), 0x22) is None


def test_initiate_errors_reject_with_confirmed_service_error():
    ld, server = make_server()
    session = server.new_session()
    cases = ((aarq(version=5), C.INITIATE_DLMS_VERSION_TOO_LOW),
             (aarq(conformance=C.CONFORMANCE_DATA_NOTIFICATION),
              C.INITIATE_INCOMPATIBLE_CONFORMANCE),
             (aarq(max_pdu=8), C.INITIATE_PDU_SIZE_TOO_SHORT))
    for request, error in cases:
        aare = rejected(session.handle(request, PUBLIC))
        pdu = C.decode_user_information(aare.user_information)
        assert pdu == C.ConfirmedServiceError(C.INITIATE_ERROR, C.SERVICE_ERROR_INITIATE, error)
        assert session.association(PUBLIC) is None


def test_second_aarq_is_rejected_and_keeps_the_open_association():
    ld, session = associated(conformance=C.CONFORMANCE_GET, max_pdu=300)
    before = session.association(PUBLIC)
    rejected(session.handle(aarq(), PUBLIC))
    assert session.association(PUBLIC) is before
    assert before.max_pdu_size == 300


def test_garbled_aarq_is_rejected():
    ld, server = make_server()
    session = server.new_session()
    good = aarq()
    for bad in (good[:-3], b"\x60\x03\xa1\x01", good[:5] + b"\xff" + good[6:]):
        reply = session.handle(bad, PUBLIC)
        aare = C.decode_acse(reply)
        assert aare.result != C.RESULT_ACCEPTED
        assert session.association(PUBLIC) is None


def test_associations_of_two_clients_on_one_session_are_separate():
    ld, server = make_server()
    session = server.new_session()
    session.handle(aarq(), PUBLIC)
    assert session.association(MANAGEMENT) is None
    assert get_error(session, PUBLIC, 1, SECRET, 2) == R.SCOPE_OF_ACCESS_VIOLATED
    reply = session.handle(A.GetRequestNormal(0xC1, attr(1, SECRET, 2)).encode(), MANAGEMENT)
    assert exception_of(reply)[0] == R.STATE_ERROR_SERVICE_NOT_ALLOWED


def test_current_association_answers_for_the_client_of_the_session():
    ld, server = make_server(max_pdu_size=512)
    session = server.new_session()
    conformance = C.CONFORMANCE_GET | C.CONFORMANCE_SET | C.CONFORMANCE_GENERAL_PROTECTION
    session.handle(aarq(conformance=conformance | C.CONFORMANCE_BLOCK_TRANSFER_WITH_GET_OR_READ,
                        max_pdu=300), PUBLIC)
    assert get_value(session, PUBLIC, 15, CURRENT_ASSOCIATION, 8) == (axdr.ENUM, 2)
    context = get_value(session, PUBLIC, 15, CURRENT_ASSOCIATION, 5)[1]
    assert context[0] == (axdr.BIT_STRING, (24, b"\x00\x10\x18"))
    assert context[1] == (axdr.LONG_UNSIGNED, 512)
    assert context[2] == (axdr.LONG_UNSIGNED, 300)
    partners = get_value(session, PUBLIC, 15, CURRENT_ASSOCIATION, 3)[1]
    assert partners[0] == (axdr.INTEGER, PUBLIC)
    raw, blocks = read_blocks(session, session.handle(
        A.GetRequestNormal(0xC1, attr(15, CURRENT_ASSOCIATION, 2)).encode(), PUBLIC))
    object_list = axdr.decode_all(raw)
    names = [e[1][2][1] for e in object_list[1]]
    assert ENERGY in names and PROFILE in names and SECRET not in names
    assert get_error(session, PUBLIC, 15, CURRENT_ASSOCIATION, 7) == R.READ_WRITE_DENIED


def test_management_client_changes_its_password_through_its_association():
    ld, session = associated(MANAGEMENT)
    new = (axdr.OCTET_STRING, b"abcdefgh")
    assert set_result(session, MANAGEMENT, 15, CURRENT_ASSOCIATION, 7, new) == R.SUCCESS
    session.handle(C.Rlrq().encode(), MANAGEMENT)
    old = session.handle(aarq(password=PASSWORD, mechanism=C.MECHANISM_LOW), MANAGEMENT)
    assert rejected(old).result_source_diagnostic == C.DIAG_AUTHENTICATION_FAILURE
    reply = session.handle(aarq(password=b"abcdefgh", mechanism=C.MECHANISM_LOW), MANAGEMENT)
    assert C.decode_acse(reply).result == C.RESULT_ACCEPTED


# --- GET -----------------------------------------------------------------------------

def test_get_normal_reads_value_and_scaler_unit_and_echoes_invoke_id():
    ld, session = associated()
    assert get_value(session, PUBLIC, 3, ENERGY, 2) == (axdr.DOUBLE_LONG_UNSIGNED, 12345)
    assert get_value(session, PUBLIC, 3, ENERGY, 3) == (
        axdr.STRUCTURE, [(axdr.INTEGER, 0), (axdr.ENUM, 30)])
    assert get_value(session, PUBLIC, 3, ENERGY, 1) == (axdr.OCTET_STRING, ENERGY)
    for iap in (0x40, 0xC7, 0x4F, 0x81):
        reply = get(session, PUBLIC, 1, SERIAL, 2, iap=iap)
        assert reply.invoke_id_and_priority == iap


def test_get_errors_name_what_is_wrong():
    ld, session = associated()
    assert get_error(session, PUBLIC, 1, UNKNOWN, 2) == R.OBJECT_UNDEFINED
    assert get_error(session, PUBLIC, 1, ENERGY, 2) == R.OBJECT_CLASS_INCONSISTENT
    assert get_error(session, PUBLIC, 3, ENERGY, 4) == R.OBJECT_UNDEFINED
    assert get_error(session, PUBLIC, 3, ENERGY, 0) == R.OBJECT_UNDEFINED
    assert get_error(session, PUBLIC, 1, SECRET, 2) == R.SCOPE_OF_ACCESS_VIOLATED


def test_read_right_is_enforced_per_client():
    ld, server = make_server()
    write_only = Data(b"\x00\x00\x60\x33\x00\xff", (axdr.UNSIGNED, 1))
    ld.add(write_only, {PUBLIC: AccessRights([1, 2])})
    session = server.new_session()
    session.handle(aarq(), PUBLIC)
    assert get_error(session, PUBLIC, 1, write_only.logical_name, 2) == R.READ_WRITE_DENIED
    assert get_value(session, PUBLIC, 1, write_only.logical_name, 1)[1] == write_only.logical_name


def test_get_with_list_answers_each_item():
    ld, session = associated()
    items = [A.DescriptorWithSelection(attr(3, ENERGY, 2)),
             A.DescriptorWithSelection(attr(1, UNKNOWN, 2)),
             A.DescriptorWithSelection(attr(1, SERIAL, 2)),
             A.DescriptorWithSelection(attr(1, SECRET, 2))]
    reply = A.decode_apdu(session.handle(A.GetRequestWithList(0xC4, items).encode(), PUBLIC))
    assert isinstance(reply, A.GetResponseWithList)
    assert reply.invoke_id_and_priority == 0xC4
    assert reply.result == [A.GetDataResult.of_data((axdr.DOUBLE_LONG_UNSIGNED, 12345)),
                            A.GetDataResult.of_error(R.OBJECT_UNDEFINED),
                            A.GetDataResult.of_data((axdr.OCTET_STRING, b"SMETS-EMU-0001")),
                            A.GetDataResult.of_error(R.SCOPE_OF_ACCESS_VIOLATED)]


def entry_selection(from_entry, to_entry):
    return A.SelectiveAccess(2, (axdr.STRUCTURE, [
        (axdr.DOUBLE_LONG_UNSIGNED, from_entry), (axdr.DOUBLE_LONG_UNSIGNED, to_entry),
        (axdr.LONG_UNSIGNED, 1), (axdr.LONG_UNSIGNED, 0)]))


def test_selective_access_reaches_the_object():
    ld, session = associated()
    reply = get(session, PUBLIC, 7, PROFILE, 2, selection=entry_selection(3, 5))
    rows = reply.result.data
    assert rows[0] == axdr.ARRAY
    assert [r[1][0] for r in rows[1]] == [(axdr.DOUBLE_LONG_UNSIGNED, v) for v in (102, 103, 104)]
    bad = A.SelectiveAccess(9, (axdr.NULL_DATA, None))
    assert get(session, PUBLIC, 7, PROFILE, 2, selection=bad).result.data_access_result == \
        R.SCOPE_OF_ACCESS_VIOLATED


def read_blocks(session, first_reply, iap=0xC1, client=PUBLIC, limit=None):
    """Follow a long GET; returns (raw data, number of blocks)."""
    reply = A.decode_apdu(first_reply)
    raw = bytearray()
    blocks = 0
    while True:
        assert isinstance(reply, A.GetResponseWithDatablock), reply
        assert reply.data_access_result is None, reply
        blocks += 1
        assert reply.block_number == blocks
        raw.extend(reply.raw_data)
        if reply.last_block:
            return bytes(raw), blocks
        nxt = A.GetRequestNext(iap, reply.block_number).encode()
        encoded = session.handle(nxt, client)
        if limit is not None:
            assert len(encoded) <= limit
        reply = A.decode_apdu(encoded)


def test_block_transfer_when_the_response_exceeds_the_pdu_size():
    ld, session = associated(max_pdu=64)
    first = session.handle(A.GetRequestNormal(0xC1, attr(1, BIG, 2)).encode(), PUBLIC)
    assert len(first) <= 64
    raw, blocks = read_blocks(session, first, limit=64)
    assert axdr.decode_all(raw) == BIG_VALUE
    assert blocks == (len(raw) + 54) // 55    # 64 - 9 header bytes - 1 length byte
    # the long GET is over: a further GET-next has nothing to serve
    reply = A.decode_apdu(session.handle(A.GetRequestNext(0xC1, blocks).encode(), PUBLIC))
    assert reply.data_access_result == R.NO_LONG_GET_IN_PROGRESS
    assert reply.last_block


def test_block_transfer_of_get_with_list():
    ld, session = associated(max_pdu=100)
    items = [A.DescriptorWithSelection(attr(1, BIG, 2)),
             A.DescriptorWithSelection(attr(1, UNKNOWN, 2)),
             A.DescriptorWithSelection(attr(1, SERIAL, 2))]
    first = session.handle(A.GetRequestWithList(0xC2, items).encode(), PUBLIC)
    raw, blocks = read_blocks(session, first, iap=0xC2, limit=100)
    assert blocks > 1
    # raw-data is the SEQUENCE OF Get-Data-Result (Green Book 9.3.6)
    whole = A.decode_apdu(b"\xc4\x03\xc2" + raw)
    assert whole.result == [A.GetDataResult.of_data(BIG_VALUE),
                            A.GetDataResult.of_error(R.OBJECT_UNDEFINED),
                            A.GetDataResult.of_data((axdr.OCTET_STRING, b"SMETS-EMU-0001"))]


def test_wrong_block_number_ends_the_long_get():
    ld, session = associated(max_pdu=64)
    first = A.decode_apdu(session.handle(A.GetRequestNormal(0xC1, attr(1, BIG, 2)).encode(),
                                         PUBLIC))
    assert first.block_number == 1 and not first.last_block
    reply = A.decode_apdu(session.handle(A.GetRequestNext(0xC1, 5).encode(), PUBLIC))
    assert isinstance(reply, A.GetResponseWithDatablock)
    assert reply.last_block
    assert reply.data_access_result == R.DATA_BLOCK_NUMBER_INVALID
    reply = A.decode_apdu(session.handle(A.GetRequestNext(0xC1, 1).encode(), PUBLIC))
    assert reply.data_access_result == R.NO_LONG_GET_IN_PROGRESS


def test_another_request_abandons_the_long_get():
    ld, session = associated(max_pdu=64)
    session.handle(A.GetRequestNormal(0xC1, attr(1, BIG, 2)).encode(), PUBLIC)
    assert get_value(session, PUBLIC, 3, ENERGY, 2) == (axdr.DOUBLE_LONG_UNSIGNED, 12345)
    reply = A.decode_apdu(session.handle(A.GetRequestNext(0xC1, 1).encode(), PUBLIC))
    assert reply.data_access_result == R.NO_LONG_GET_IN_PROGRESS
    # and a new long GET starts again from block 1
    raw, blocks = read_blocks(session, session.handle(
        A.GetRequestNormal(0xC1, attr(1, BIG, 2)).encode(), PUBLIC))
    assert axdr.decode_all(raw) == BIG_VALUE


def test_too_long_response_without_block_transfer_is_refused():
    ld, session = associated(max_pdu=64, conformance=C.CONFORMANCE_GET)
    assert get_error(session, PUBLIC, 1, BIG, 2) == R.OTHER_REASON
    assert get_value(session, PUBLIC, 3, ENERGY, 2) == (axdr.DOUBLE_LONG_UNSIGNED, 12345)


# --- SET and ACTION ---------------------------------------------------------------------

def test_set_normal_by_management_and_refused_to_public():
    ld, session = associated(MANAGEMENT)
    assert set_result(session, MANAGEMENT, 1, SERIAL, 2, (axdr.OCTET_STRING, b"NEW")) == R.SUCCESS
    assert get_value(session, MANAGEMENT, 1, SERIAL, 2) == (axdr.OCTET_STRING, b"NEW")
    assert set_result(session, MANAGEMENT, 1, SERIAL, 2, (axdr.UNSIGNED, 1)) == R.TYPE_UNMATCHED
    assert set_result(session, MANAGEMENT, 1, UNKNOWN, 2, (axdr.UNSIGNED, 1)) == \
        R.OBJECT_UNDEFINED
    assert set_result(session, MANAGEMENT, 1, SERIAL, 1, (axdr.OCTET_STRING, UNKNOWN)) == \
        R.READ_WRITE_DENIED      # logical_name is read-only in full_access
    public = ld_session(ld, PUBLIC)
    assert set_result(public, PUBLIC, 1, SERIAL, 2, (axdr.OCTET_STRING, b"X")) == \
        R.READ_WRITE_DENIED
    assert set_result(public, PUBLIC, 1, SECRET, 2, (axdr.LONG_UNSIGNED, 1)) == \
        R.SCOPE_OF_ACCESS_VIOLATED
    assert get_value(session, MANAGEMENT, 1, SERIAL, 2) == (axdr.OCTET_STRING, b"NEW")


def ld_session(ld, client):
    """A second link to the same logical device, associated as `client`."""
    server = DlmsServer(ld, lambda: NOW)
    session = server.new_session()
    assert C.decode_acse(session.handle(aarq(), client)).result == C.RESULT_ACCEPTED
    return session


def test_set_with_list():
    ld, session = associated(MANAGEMENT)
    descriptors = [A.DescriptorWithSelection(attr(1, SERIAL, 2)),
                   A.DescriptorWithSelection(attr(1, SECRET, 2)),
                   A.DescriptorWithSelection(attr(1, UNKNOWN, 2))]
    values = [(axdr.OCTET_STRING, b"S2"), (axdr.LONG_UNSIGNED, 99), (axdr.UNSIGNED, 0)]
    request = A.SetRequestWithList(0xC5, descriptors, values)
    reply = A.decode_apdu(session.handle(request.encode(), MANAGEMENT))
    assert isinstance(reply, A.SetResponseWithList)
    assert reply.invoke_id_and_priority == 0xC5
    assert reply.result == [R.SUCCESS, R.SUCCESS, R.OBJECT_UNDEFINED]
    assert get_value(session, MANAGEMENT, 1, SECRET, 2) == (axdr.LONG_UNSIGNED, 99)


def test_set_with_datablocks():
    ld, session = associated(MANAGEMENT)
    value = (axdr.OCTET_STRING, bytes(range(200)))
    encoded = axdr.encode(value)
    chunks = [encoded[0:80], encoded[80:160], encoded[160:]]
    first = A.SetRequestWithFirstDatablock(0xC1, attr(1, SERIAL, 2), False, 1, chunks[0])
    reply = A.decode_apdu(session.handle(first.encode(), MANAGEMENT))
    assert reply == A.SetResponseDatablock(0xC1, 1)
    second = A.SetRequestWithDatablock(0xC1, False, 2, chunks[1])
    assert A.decode_apdu(session.handle(second.encode(), MANAGEMENT)) == \
        A.SetResponseDatablock(0xC1, 2)
    last = A.SetRequestWithDatablock(0xC1, True, 3, chunks[2])
    assert A.decode_apdu(session.handle(last.encode(), MANAGEMENT)) == \
        A.SetResponseLastDatablock(0xC1, R.SUCCESS, 3)
    assert get_value(session, MANAGEMENT, 1, SERIAL, 2) == value


def test_set_datablock_out_of_order_or_without_first_block():
    ld, session = associated(MANAGEMENT)
    encoded = axdr.encode((axdr.OCTET_STRING, b"ABCDEFGH"))
    first = A.SetRequestWithFirstDatablock(0xC1, attr(1, SERIAL, 2), False, 1, encoded[:4])
    session.handle(first.encode(), MANAGEMENT)
    skipped = A.SetRequestWithDatablock(0xC1, True, 3, encoded[4:])
    assert A.decode_apdu(session.handle(skipped.encode(), MANAGEMENT)) == \
        A.SetResponseLastDatablock(0xC1, R.DATA_BLOCK_NUMBER_INVALID, 3)
    again = A.SetRequestWithDatablock(0xC1, True, 2, encoded[4:])
    assert A.decode_apdu(session.handle(again.encode(), MANAGEMENT)) == \
        A.SetResponseLastDatablock(0xC1, R.NO_LONG_SET_IN_PROGRESS, 2)
    assert get_value(session, MANAGEMENT, 1, SERIAL, 2) == (axdr.OCTET_STRING, b"SMETS-EMU-0001")


def test_set_with_list_and_datablocks():
    ld, session = associated(MANAGEMENT)
    descriptors = [A.DescriptorWithSelection(attr(1, SERIAL, 2)),
                   A.DescriptorWithSelection(attr(1, SECRET, 2)),
                   A.DescriptorWithSelection(attr(1, SERIAL, 1))]
    values = [(axdr.OCTET_STRING, bytes(100)), (axdr.LONG_UNSIGNED, 3),
              (axdr.OCTET_STRING, UNKNOWN)]
    # raw-data carries the SEQUENCE OF Data of the value list
    encoded = b"\x03" + b"".join(axdr.encode(v) for v in values)
    first = A.SetRequestWithListAndFirstDatablock(0xC6, descriptors, False, 1, encoded[:60])
    assert A.decode_apdu(session.handle(first.encode(), MANAGEMENT)) == \
        A.SetResponseDatablock(0xC6, 1)
    last = A.SetRequestWithDatablock(0xC6, True, 2, encoded[60:])
    assert A.decode_apdu(session.handle(last.encode(), MANAGEMENT)) == \
        A.SetResponseLastDatablockWithList(0xC6, [R.SUCCESS, R.SUCCESS, R.READ_WRITE_DENIED], 2)
    assert get_value(session, MANAGEMENT, 1, SERIAL, 2) == values[0]
    assert get_value(session, MANAGEMENT, 1, SECRET, 2) == values[1]
    # a value list that does not match the descriptors sets nothing
    short = b"\x02" + axdr.encode((axdr.OCTET_STRING, b"no")) + axdr.encode((axdr.UNSIGNED, 1))
    only = A.SetRequestWithListAndFirstDatablock(0xC6, descriptors, True, 1, short)
    assert A.decode_apdu(session.handle(only.encode(), MANAGEMENT)) == \
        A.SetResponseLastDatablockWithList(0xC6, [R.TYPE_UNMATCHED] * 3, 1)
    assert get_value(session, MANAGEMENT, 1, SERIAL, 2) == values[0]


def test_action_normal_and_method_rights():
    ld, session = associated(MANAGEMENT)
    public = ld_session(ld, PUBLIC)
    reply = action(public, PUBLIC, 3, ENERGY, 1, (axdr.INTEGER, 0))
    assert reply.result == R.ACTION_READ_WRITE_DENIED
    assert get_value(session, MANAGEMENT, 3, ENERGY, 2) == (axdr.DOUBLE_LONG_UNSIGNED, 12345)
    reply = action(session, MANAGEMENT, 3, ENERGY, 1, (axdr.INTEGER, 0), iap=0xC9)
    assert reply.result == R.ACTION_SUCCESS
    assert reply.return_parameters is None
    assert get_value(session, MANAGEMENT, 3, ENERGY, 2) == (axdr.DOUBLE_LONG_UNSIGNED, 0)
    assert action(session, MANAGEMENT, 3, ENERGY, 2).result == R.ACTION_OBJECT_UNDEFINED
    assert action(session, MANAGEMENT, 3, UNKNOWN, 1).result == R.ACTION_OBJECT_UNDEFINED
    assert action(session, MANAGEMENT, 7, PROFILE, 1).result == R.ACTION_SUCCESS
    assert get_value(session, MANAGEMENT, 7, PROFILE, 7) == (axdr.DOUBLE_LONG_UNSIGNED, 0)


def test_services_outside_the_negotiated_conformance_are_refused():
    ld, session = associated(MANAGEMENT, conformance=C.CONFORMANCE_GET)
    request = A.SetRequestNormal(0xC1, attr(1, SERIAL, 2), (axdr.OCTET_STRING, b"X"))
    assert exception_of(session.handle(request.encode(), MANAGEMENT)) == (
        R.STATE_ERROR_SERVICE_NOT_ALLOWED, R.SERVICE_ERROR_SERVICE_NOT_SUPPORTED)
    items = [A.DescriptorWithSelection(attr(1, SERIAL, 2))]
    assert exception_of(session.handle(A.GetRequestWithList(0xC1, items).encode(),
                                       MANAGEMENT))[1] == R.SERVICE_ERROR_SERVICE_NOT_SUPPORTED
    assert get_value(session, MANAGEMENT, 1, SERIAL, 2) == (axdr.OCTET_STRING, b"SMETS-EMU-0001")


# --- exceptions, release and bad input ------------------------------------------------------

def test_get_before_aarq_gets_exception_response():
    ld, server = make_server()
    session = server.new_session()
    request = A.GetRequestNormal(0xC1, attr(3, ENERGY, 2)).encode()
    assert exception_of(session.handle(request, PUBLIC)) == (
        R.STATE_ERROR_SERVICE_NOT_ALLOWED, R.SERVICE_ERROR_OPERATION_NOT_POSSIBLE)


def test_unknown_tag_and_unsupported_choice_get_exception_response():
    ld, session = associated()
    for apdu in (b"\x99\x01\x02", b"\xc2\x01", b"\xc0\x07\xc1", b"\xc3\x02\xc1\x00\x00\x00\x01",
                 b"\xc4\x01\xc1\x00\x11\x01", b"\x01\x00\x00\x00\x06"):
        assert exception_of(session.handle(apdu, PUBLIC)) == (
            R.STATE_ERROR_SERVICE_UNKNOWN, R.SERVICE_ERROR_SERVICE_NOT_SUPPORTED), apdu
    assert get_value(session, PUBLIC, 3, ENERGY, 2) == (axdr.DOUBLE_LONG_UNSIGNED, 12345)


def test_request_longer_than_the_server_pdu_gets_pdu_too_long():
    ld, session = associated(MANAGEMENT, server_pdu=128)
    request = A.SetRequestNormal(0xC1, attr(1, SERIAL, 2), (axdr.OCTET_STRING, bytes(200)))
    assert exception_of(session.handle(request.encode(), MANAGEMENT)) == (
        R.STATE_ERROR_SERVICE_NOT_ALLOWED, R.SERVICE_ERROR_PDU_TOO_LONG)
    assert get_value(session, MANAGEMENT, 1, SERIAL, 2) == (axdr.OCTET_STRING, b"SMETS-EMU-0001")


def test_rlrq_ends_the_association():
    ld, session = associated()
    rlre = C.decode_acse(session.handle(C.Rlrq(reason=C.RELEASE_REQUEST_NORMAL).encode(), PUBLIC))
    assert isinstance(rlre, C.Rlre)
    assert rlre.reason == C.RELEASE_RESPONSE_NORMAL
    assert session.association(PUBLIC) is None
    request = A.GetRequestNormal(0xC1, attr(3, ENERGY, 2)).encode()
    assert exception_of(session.handle(request, PUBLIC))[0] == R.STATE_ERROR_SERVICE_NOT_ALLOWED
    # a new association can be opened after the release
    assert C.decode_acse(session.handle(aarq(), PUBLIC)).result == C.RESULT_ACCEPTED


def test_abort_drops_every_association_of_the_link():
    ld, session = associated()
    session.abort()
    assert session.association(PUBLIC) is None
    request = A.GetRequestNormal(0xC1, attr(3, ENERGY, 2)).encode()
    assert exception_of(session.handle(request, PUBLIC))[0] == R.STATE_ERROR_SERVICE_NOT_ALLOWED


def association_state(session, client):
    assoc = session.association(client)
    if assoc is None:
        return None
    long_get = None
    if assoc.long_get is not None:
        long_get = (assoc.long_get.encoded, assoc.long_get.offset, assoc.long_get.block_number)
    return (assoc.conformance, assoc.max_pdu_size, long_get, assoc.long_set is None)


def test_malformed_apdus_change_no_state():
    ld, session = associated(MANAGEMENT, max_pdu=64)
    # a long GET in progress must survive the garbage too
    first = session.handle(A.GetRequestNormal(0xC1, attr(1, BIG, 2)).encode(), MANAGEMENT)
    set_serial = A.SetRequestNormal(0xC1, attr(1, SERIAL, 2), (axdr.OCTET_STRING, b"X")).encode()
    set_list = A.SetRequestWithList(0xC1, [A.DescriptorWithSelection(attr(1, SECRET, 2))],
                                    [(axdr.LONG_UNSIGNED, 5)]).encode()
    reset = A.ActionRequestNormal(0xC1, A.MethodDescriptor(3, ENERGY, 1),
                                  (axdr.INTEGER, 0)).encode()
    malformed = [b"", b"\xc1", b"\xc1\x01", set_serial[:-1], set_serial + b"\x00",
                 set_serial[:-2] + b"\x7f\x00", set_list[:-1],
                 set_list[:3] + b"\x05" + set_list[4:], reset[:-1], reset + b"\x00", reset[:12] + b"\x02\x00", b"\x62\x05\x80",
                 b"\xc0\x02\xc1\x00\x00", b"\xc0\x01\xc1\x00\x03\x01\x00\x01\x08"]
    ld_before = ld.state()
    assoc_before = association_state(session, MANAGEMENT)
    for apdu in malformed:
        reply = session.handle(apdu, MANAGEMENT)
        assert reply is not None
        state, service = exception_of(reply)
        assert state in (R.STATE_ERROR_SERVICE_NOT_ALLOWED, R.STATE_ERROR_SERVICE_UNKNOWN)
        assert ld.state() == ld_before, apdu
        assert association_state(session, MANAGEMENT) == assoc_before, apdu
    raw, blocks = read_blocks(session, first, client=MANAGEMENT)
    assert axdr.decode_all(raw) == BIG_VALUE
    assert get_value(session, MANAGEMENT, 3, ENERGY, 2) == (axdr.DOUBLE_LONG_UNSIGNED, 12345)
