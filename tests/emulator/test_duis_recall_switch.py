"""emulator/duis.py: with `RECALL` off every document is parsed from its bytes (what the
benchmark's "parsed" rows measure) and reads the same; the response date-time written from
whole days and seconds is strftime's."""

import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import duis
from emulator.duis import DuisRequest, DuisResponse, RequestId, XmlSigner
from emulator.smki import TestSmki
from firmware.gbcs import codes

SUPPLIER = bytes.fromhex("90B3D51F30010000")
ESME = bytes.fromhex("00DB1234567890A0")
CREDS = TestSmki(seed=12).organisation(SUPPLIER, codes.ROLE_SUPPLIER, "Supplier")
SIGNER = XmlSigner(CREDS["ds"].private_key, CREDS["ds"].certificate)
PUBLIC = duis._certificate_key(CREDS["ds"].certificate)


def _documents():
    rid = RequestId(SUPPLIER, ESME, 77)
    request = DuisRequest(rid, 1, "2.2", "2.2", "TopUpDevice", {"UTRN": "12345678901234567890"})
    response = DuisResponse("I0", "2026-01-01T00:00:00Z", request_id=rid,
                            response_id=rid.swapped(), service_reference="2.2",
                            service_reference_variant="2.2", gbcs_payload=b"\xdf" * 30)
    return request, response


def test_without_recall_documents_are_parsed_and_read_the_same():
    duis.RECALL = False
    duis._RECENT.clear()
    try:
        request, response = _documents()
        xml_request, xml_response = request.to_xml(SIGNER), response.to_xml(SIGNER)
        assert duis._RECENT == {}
        read_request = DuisRequest.from_xml(xml_request)
        read_response = DuisResponse.from_xml(xml_response)
        assert read_request.root is not None and read_request._signed is None   # parsed
        duis.verify(read_request, PUBLIC)
        duis.verify(read_response, PUBLIC)
    finally:
        duis.RECALL = True
    assert read_request == request and read_response == response
    recalled = DuisRequest.from_xml(request.to_xml(SIGNER))
    assert recalled._signed is not None and recalled == request                # recalled


@settings(max_examples=500, deadline=None)
@given(st.integers(-(10 ** 9), 4 * 10 ** 9))
def test_date_time_text_is_strftimes(seconds):
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    assert duis.date_time_text(seconds) == moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert duis.date_time_text(seconds + 1) == (moment + datetime.timedelta(seconds=1)
                                                ).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_what_a_recalled_document_verifies_is_what_as_signed_cuts_from_its_bytes():
    for document in _documents():
        xml = document.to_xml(SIGNER)
        recalled = type(document).from_xml(xml)
        digest_text, _, signed, raw = recalled._signed
        body, signed_info, digest, value = signed
        assert raw is recalled.xml and duis._as_signed(xml, digest_text) == (body, signed_info)
        assert duis.base64_text(digest) == digest_text and value in [
            duis.base64_bytes(duis._child_text(
                duis._signature_of(duis._parse(xml)), "SignatureValue", duis.DS_NS))]
        duis.verify(recalled, PUBLIC)
        recalled.xml = xml.replace(b":77<", b":78<", 1)       # not the bytes kept, nor signed
        try:
            duis.verify(recalled, PUBLIC)
        except duis.DuisError:
            pass
        else:
            raise AssertionError("verified bytes other than the ones received")
