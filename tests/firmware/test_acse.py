"""firmware/dlms/acse.py: known-answer AARQ/AARE/RLRQ/RLRE, Initiate PDUs, errors.

Plain functions and bare asserts (MicroPython-runnable). Vectors marked [GB] are the
DLMS UA 1000-2 Green Book (Ed. 10, "Encoding of the xDLMS InitiateRequest/AARQ" examples)
as carried in pwitab/dlms-cosem tests/test_asce/test_aarq.py and test_aare.py;
[dlms-cosem] are captures in those same test files.
"""

from firmware.dlms import acse
from firmware.dlms.acse import (
    Aare, Aarq, AcseError, ConfirmedServiceError, InitiateRequest, InitiateResponse,
    Rlre, Rlrq, decode_acse, decode_user_information,
)


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


def _error(fn, buf):
    try:
        fn(buf)
    except AcseError as e:
        return e
    raise AssertionError("no AcseError for %s" % buf.hex())


# [GB] AARQ, LN referencing, no ciphering, lowest-level security
AARQ_PUBLIC = ("60 1D A1 09 06 07 60857405080101"
               " BE 10 04 0E 01 00 00 00 06 5F1F0400007E1F 04B0")
# [GB] the same with low-level security, password "12345678"
AARQ_LLS = ("60 36 A1 09 06 07 60857405080101 8A 02 0780 8B 07 60857405080201"
            " AC 0A 80 08 3132333435363738"
            " BE 10 04 0E 01 00 00 00 06 5F1F0400007E1F 04B0")
# [dlms-cosem] AARE accepted, InitiateResponse with server-max-receive-pdu-size 500
AARE_OK = ("61 29 A1 09 06 07 60857405080101 A2 03 02 01 00 A3 05 A1 03 02 01 00"
           " BE 10 04 0E 08 00 06 5F1F040000501F 01F4 0007")
# [dlms-cosem] AARE rejected-permanent, application-context-name-not-supported
AARE_BAD_CONTEXT = ("61 29 A1 09 06 07 60857405080101 A2 03 02 01 01 A3 05 A1 03 02 01 02"
                    " BE 10 04 0E 08 00 06 5F1F040000501F 01F4 0007")
# [dlms-cosem] AARE rejected-permanent, ConfirmedServiceError initiate dlms-version-too-low
AARE_VERSION_TOO_LOW = ("61 1F A1 09 06 07 60857405080101 A2 03 02 01 01"
                        " A3 05 A1 03 02 01 01 BE 06 04 04 0E 01 06 01")
# [dlms-cosem] AARE HLS-GMAC accepted, authentication-required, StoC "P6wRJ21F"
AARE_HLS = ("61 42 A1 09 06 07 60857405080101 A2 03 02 01 00 A3 05 A1 03 02 01 0E"
            " 88 02 0780 89 07 60857405080205 AA 0A 80 08 503677524A323146"
            " BE 10 04 0E 08 00 06 5F1F040000501F 01F4 0007")
# [dlms-cosem] ciphered LLS AARQ with a calling-AP-title (system title) and a
# glo-initiateRequest (0x21) in user-information
AARQ_CIPHERED = ("6066a109060760857405080103a60a04084D4D4D0000BC614E8a0207808b0760857405080201"
                 "ac0a80083132333435363738be34043221303001234567801302FF8A7874133D414CED25B4"
                 "2534D28DB0047720606B175BD52211BE6841DB204D39EE6FDB8E356855")


def test_conformance_bits_are_msb_first():
    assert acse.CONFORMANCE_GET == acse.conformance_bit(19) == 0x000010
    assert acse.CONFORMANCE_SET == acse.conformance_bit(20) == 0x000008
    assert acse.CONFORMANCE_SELECTIVE_ACCESS == acse.conformance_bit(21)
    assert acse.CONFORMANCE_EVENT_NOTIFICATION == acse.conformance_bit(22)
    assert acse.CONFORMANCE_ACTION == acse.conformance_bit(23) == 0x000001
    assert acse.CONFORMANCE_BLOCK_TRANSFER_WITH_GET_OR_READ == acse.conformance_bit(11) == 0x001000
    assert acse.CONFORMANCE_MULTIPLE_REFERENCES == acse.conformance_bit(14) == 0x000200
    assert acse.CONFORMANCE_GENERAL_PROTECTION == acse.conformance_bit(1) == 0x400000
    # the Green Book example proposes 00 7E 1F: bits 9-14 and 19-23
    want = 0
    for bit in (9, 10, 11, 12, 13, 14, 19, 20, 21, 22, 23):
        want |= acse.conformance_bit(bit)
    assert want == 0x007E1F


def test_conformance_names():
    assert acse.conformance_names(0x007E1F) == [
        "priority-mgmt-supported", "attribute0-supported-with-get",
        "block-transfer-with-get-or-read", "block-transfer-with-set-or-write",
        "block-transfer-with-action", "multiple-references", "get", "set",
        "selective-access", "event-notification", "action"]
    assert acse.conformance_names(0) == []
    assert len(acse.CONFORMANCE_NAMES) == 24
    assert acse.CONFORMANCE_NAMES[19] == "get" and acse.CONFORMANCE_NAMES[11] == (
        "block-transfer-with-get-or-read")


def test_aarq_public_known_answer():
    raw = h(AARQ_PUBLIC)
    aarq = decode_acse(raw)
    assert isinstance(aarq, Aarq)
    assert aarq.application_context_name == acse.LN_NO_CIPHERING
    assert aarq.mechanism_name is None and aarq.calling_authentication_value is None
    ir = decode_user_information(aarq.user_information)
    assert ir == InitiateRequest(proposed_conformance=0x007E1F, client_max_receive_pdu_size=1200)
    built = Aarq(acse.LN_NO_CIPHERING,
                 user_information=InitiateRequest(proposed_conformance=0x007E1F,
                                                   client_max_receive_pdu_size=1200).encode())
    assert built.encode() == raw


def test_aarq_low_level_security_known_answer():
    raw = h(AARQ_LLS)
    aarq = decode_acse(raw)
    assert aarq.sender_acse_requirements is True
    assert aarq.mechanism_name == acse.MECHANISM_LOW
    assert aarq.calling_authentication_value == b"12345678"
    assert aarq.encode() == raw


def test_aarq_ciphered_known_answer():
    raw = h(AARQ_CIPHERED)
    aarq = decode_acse(raw)
    assert aarq.application_context_name == acse.LN_WITH_CIPHERING
    assert aarq.calling_ap_title == h("4D4D4D0000BC614E")
    assert aarq.user_information[0] == 0x21  # glo-initiateRequest, left opaque
    assert aarq.encode() == raw
    e = _error(decode_user_information, aarq.user_information)
    assert e.offset == 0


def test_aare_accepted_known_answer():
    raw = h(AARE_OK)
    aare = decode_acse(raw)
    assert aare.result == acse.RESULT_ACCEPTED
    assert aare.diagnostic_source == acse.ACSE_SERVICE_USER
    assert aare.result_source_diagnostic == acse.DIAG_NULL
    ir = decode_user_information(aare.user_information)
    assert ir == InitiateResponse(negotiated_quality_of_service=None,
                                  negotiated_conformance=0x00501F,
                                  server_max_receive_pdu_size=500)
    built = Aare(acse.LN_NO_CIPHERING, 0, 0, user_information=ir.encode())
    assert built.encode() == raw


def test_aare_rejections_known_answers():
    aare = decode_acse(h(AARE_BAD_CONTEXT))
    assert aare.result == acse.RESULT_REJECTED_PERMANENT
    assert aare.result_source_diagnostic == acse.DIAG_APPLICATION_CONTEXT_NAME_NOT_SUPPORTED
    assert aare.encode() == h(AARE_BAD_CONTEXT)
    built = Aare(acse.LN_NO_CIPHERING, acse.RESULT_REJECTED_PERMANENT,
                 acse.DIAG_NO_REASON_GIVEN,
                 user_information=ConfirmedServiceError(
                     acse.INITIATE_ERROR, acse.SERVICE_ERROR_INITIATE,
                     acse.INITIATE_DLMS_VERSION_TOO_LOW).encode())
    assert built.encode() == h(AARE_VERSION_TOO_LOW)
    cse = decode_user_information(decode_acse(h(AARE_VERSION_TOO_LOW)).user_information)
    assert cse == ConfirmedServiceError(1, 6, 1)


def test_aare_hls_known_answer():
    raw = h(AARE_HLS)
    aare = decode_acse(raw)
    assert aare.result_source_diagnostic == acse.DIAG_AUTHENTICATION_REQUIRED
    assert aare.responder_acse_requirements is True
    assert aare.mechanism_name == acse.MECHANISM_HIGH_GMAC
    assert aare.responding_authentication_value == b"P6wRJ21F"
    assert aare.encode() == raw


def test_aare_provider_diagnostic_round_trip():
    aare = Aare(acse.LN_NO_CIPHERING, acse.RESULT_REJECTED_TRANSIENT, 2,
                diagnostic_source=acse.ACSE_SERVICE_PROVIDER, responding_ap_title=b"SYSTITLE")
    raw = aare.encode()
    assert h("A3 05 A2 03 02 01 02") in raw
    assert decode_acse(raw) == aare


def test_release_pdus():
    # [GB] RLRQ / RLRE with reason normal and no user-information
    assert Rlrq(0).encode() == h("62 03 80 01 00")
    assert Rlre(0).encode() == h("63 03 80 01 00")
    assert Rlrq().encode() == h("62 00")
    assert decode_acse(h("62 03 80 01 00")) == Rlrq(0)
    ui = InitiateResponse(negotiated_conformance=0x00501F, server_max_receive_pdu_size=500).encode()
    rlre = Rlre(acse.RELEASE_RESPONSE_NORMAL, ui)
    assert decode_acse(rlre.encode()) == rlre
    assert rlre.encode() == h("63 15 80 01 00 BE 10 04 0E") + ui


def test_initiate_request_options():
    ir = InitiateRequest(dedicated_key=b"\x00" * 16, response_allowed=False,
                         proposed_quality_of_service=-3, proposed_dlms_version_number=5,
                         proposed_conformance=0xFFFFFF, client_max_receive_pdu_size=0)
    raw = ir.encode()
    assert raw[:3] == h("01 01 10")
    assert raw[19:23] == h("01 00 01 FD")
    assert decode_user_information(raw) == ir


def test_unknown_tags_in_aarq_are_skipped():
    # calling-AP-invocation-id [8], implementation-information [29] and a high tag number
    extra = h("A8 03 02 01 05") + h("9D 02 4142") + h("BF 21 01 00")
    body = h(AARQ_PUBLIC)[2:]
    raw = bytes((0x60, len(body) + len(extra))) + extra + body
    assert decode_acse(raw) == decode_acse(h(AARQ_PUBLIC))


def test_long_form_length_is_read():
    body = h(AARQ_PUBLIC)[2:]
    raw = h("60 81") + bytes((len(body),)) + body
    assert decode_acse(raw) == decode_acse(h(AARQ_PUBLIC))


def test_errors_with_offsets():
    assert _error(decode_acse, b"").offset == 0
    assert _error(decode_acse, h("64 00")).offset == 0
    e = _error(decode_acse, h(AARQ_PUBLIC)[:-1])
    assert e.offset == 2 and "exceeds" in e.reason
    e = _error(decode_acse, h(AARQ_PUBLIC) + b"\x00")
    assert e.offset == 31 and "trailing" in e.reason
    e = _error(decode_acse, h("60 80 00 00"))
    assert e.offset == 1 and "indefinite" in e.reason
    e = _error(decode_acse, h("60 83 000001 00"))
    assert e.offset == 1
    # application-context-name holding an INTEGER instead of an OBJECT IDENTIFIER
    e = _error(decode_acse, h("60 05 A1 03 02 01 01"))
    assert e.offset == 4
    e = _error(decode_acse, h("60 00"))
    assert "application-context-name" in e.reason
    e = _error(decode_acse, h("61 0B A1 09 06 07 60857405080101"))
    assert "result" in e.reason


def test_user_information_errors():
    ir = InitiateRequest(proposed_conformance=0x1F).encode()
    for n in range(len(ir)):
        e = _error(decode_user_information, ir[:n])
        assert 0 <= e.offset <= n
    e = _error(decode_user_information, ir + b"\x00")
    assert e.offset == len(ir)
    bad = bytearray(ir)
    bad[5] = 0x5E  # conformance tag
    assert _error(decode_user_information, bytes(bad)).offset == 5
    assert _error(decode_user_information, h("01 02")).offset == 1


def test_every_truncation_raises_acse_error():
    for vec in (AARQ_LLS, AARE_HLS, AARQ_CIPHERED):
        raw = h(vec)
        for n in range(len(raw)):
            e = _error(decode_acse, raw[:n])
            assert 0 <= e.offset <= n


def test_garbage_never_raises_anything_but_acse_error():
    seed = 99
    for i in range(600):
        body = bytearray()
        for _ in range(i % 50):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            body.append((seed >> 16) & 0xFF)
        for tag in (0x60, 0x61, 0x62, 0x63):
            buf = bytes((tag, len(body))) + bytes(body)
            try:
                decode_acse(buf)
            except AcseError as e:
                assert 0 <= e.offset <= len(buf)
        try:
            decode_user_information(bytes((1 + (i % 3) * 7,)) + bytes(body))
        except AcseError:
            pass


def test_encode_rejects_bad_fields():
    for pdu in (Aarq(None), Aare(acse.LN_NO_CIPHERING, -1, 0),
                Aare(acse.LN_NO_CIPHERING, 0, 0, diagnostic_source=3),
                Aarq(acse.LN_NO_CIPHERING, calling_authentication_value="text")):
        try:
            pdu.encode()
        except ValueError:
            continue
        raise AssertionError("encoded %r" % pdu)
    for pdu in (InitiateRequest(proposed_conformance=1 << 24),
                InitiateResponse(server_max_receive_pdu_size=0x10000)):
        try:
            pdu.encode()
        except ValueError:
            continue
        raise AssertionError("encoded %r" % pdu)
