"""DUIS requests and responses (emulator/duis.py): XML round trips, the XMLDSig-shaped
signature and every way to break it, bounded parsing, and the SRV table against the GBCS
use-case table it maps to."""

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import duis
from emulator.duis import (DuisError, DuisRequest, DuisResponse, RequestId, XmlSigner,
                           verify_with_certificate)
from emulator.smki import TestSmki
from firmware.gbcs import codes

SUPPLIER = bytes.fromhex("90B3D51F30010000")
OTHER = bytes.fromhex("90B3D51F30020000")
ESME = bytes.fromhex("00DB1234567890A0")
SMKI = TestSmki(seed=5)
CREDS = SMKI.organisation(SUPPLIER, codes.ROLE_SUPPLIER, "Supplier")
OTHER_CREDS = SMKI.organisation(OTHER, codes.ROLE_SUPPLIER, "Other")
SIGNER = XmlSigner(CREDS["ds"].private_key, CREDS["ds"].certificate)
CERT = CREDS["ds"].certificate
RID = RequestId(SUPPLIER, ESME, 12884901888)


def request(**changes):
    fields = dict(request_id=RID, command_variant=1, service_reference="2.2",
                  service_reference_variant="2.2", body_name="TopUpDevice",
                  body={"UTRN": "73946144332040217315"})
    fields.update(changes)
    return DuisRequest(**fields)


# -- identifiers ------------------------------------------------------------------------------

def test_request_id_is_hyphenated_euis_and_a_decimal_counter():
    assert str(RID) == "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:12884901888"
    assert RequestId.parse(str(RID)) == RID
    assert str(RID.swapped()) == "00-DB-12-34-56-78-90-A0:90-B3-D5-1F-30-01-00-00:12884901888"
    assert RequestId.parse("90-b3-d5-1f-30-01-00-00:00-db-12-34-56-78-90-a0:0") == \
        RequestId(SUPPLIER, ESME, 0)
    assert RequestId.parse("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:"
                           "18446744073709551615").counter == (1 << 64) - 1


@pytest.mark.parametrize("text", [
    "", "90B3D51F30010000:00DB1234567890A0:1",                   # EUIs without hyphens
    "90-B3-D5-1F-30-01-00:00-DB-12-34-56-78-90-A0:1",           # seven bytes
    "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:01",        # leading zero
    "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:-1",
    "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:18446744073709551616",
    "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0",
    "90-B3-D5-1F-30-01-00-0G:00-DB-12-34-56-78-90-A0:1",
])
def test_malformed_request_ids_are_duis_errors(text):
    with pytest.raises(DuisError) as error:
        RequestId.parse(text)
    assert error.value.where == "RequestID"


# -- round trips ------------------------------------------------------------------------------

@pytest.mark.parametrize("req", [
    request(),
    request(command_variant=4, service_reference="7.2", service_reference_variant="7.2",
            body_name="DisableSupply", body={}),
    request(service_reference="4.8", service_reference_variant="4.8.1",
            body_name="ReadActiveImportProfileData",
            body={"ReadLogPeriod": {"StartDateTime": "2026-01-01T00:00:00Z",
                                    "EndDateTime": "2026-01-02T00:00:00Z"}}),
    request(service_reference="6.23", service_reference_variant="6.23",
            body_name="UpdateSecurityCredentialsCoS",
            body={"SupplierFloorSeqNumber": 0, "ApplyTimeBasedCPVChecks": True,
                  "CertificationPathCertificates": {"Certificate": ["AAEC", "AwQF"]}}),
    DuisRequest.signed_pre_command(RID, "7.2", "7.2", b"\xdf\x09\x01" + bytes(40), 6),
])
def test_requests_round_trip_signed_and_unsigned(req):
    for signer, pretty in ((None, False), (None, True), (SIGNER, False), (SIGNER, True)):
        xml = req.to_xml(signer, pretty)
        assert (b"\n  <sr:Header>" in xml) == pretty
        if signer is not None:
            verify_with_certificate(xml, CERT)
        back = DuisRequest.from_xml(xml)
        assert back == req and back.xml == xml
        assert back.key_info == (None if signer is None else SIGNER.key_info)
    if req.body_name == "SignedPreCommand":
        assert DuisRequest.from_xml(req.to_xml()).gbcs_payload() == b"\xdf\x09\x01" + bytes(40)


def test_values_read_back_as_their_xml_text():
    req = request(body={"A": 5, "B": False, "C": {"D": [1, 2]}, "E": None, "F": {}})
    assert req.body == {"A": "5", "B": "false", "C": {"D": ["1", "2"]}, "E": "", "F": ""}
    assert DuisRequest.from_xml(req.to_xml()).body == req.body


@pytest.mark.parametrize("resp", [
    DuisResponse("I0", "2026-01-03T01:00:00Z", request_id=RID, response_id=RID.swapped(),
                 service_reference="2.2", service_reference_variant="2.2",
                 gbcs_payload=b"\xdd" + bytes(30)),
    DuisResponse("I0", "2026-01-03T01:00:00Z", request_id=RID, response_id=RID.swapped(),
                 service_reference="7.1", service_reference_variant="7.1",
                 pre_command=b"\xdf" + bytes(30)),
    DuisResponse("E4", "2026-01-03T01:00:00Z", request_id=RID, response_id=RID.swapped(),
                 service_reference="7.1", service_reference_variant="7.1"),
    DuisResponse("I0", "2026-01-03T01:00:00Z", kind=duis.DEVICE_ALERT,
                 response_id=RID.swapped(), alert_code=0x8F30, gbcs_payload=b"\xdf\x09\x03"),
    DuisResponse("I99", "2026-01-03T01:00:00Z", kind=duis.DCC_ALERT, request_id=RID,
                 dcc_alert_code="AD1", dcc_alert={"QuarantinedRequest": {
                     "ADUserThresholdBreach": {"RequestID": str(RID),
                                               "QuarantineEventRef": 7}}}),
])
def test_responses_round_trip(resp):
    for signer in (None, SIGNER):
        back = DuisResponse.from_xml(resp.to_xml(signer))
        assert back == resp
    xml = resp.to_xml(SIGNER)
    verify_with_certificate(xml, CERT)
    assert (b"<sr:ResponseID>" in xml) == (resp.response_id is not None)


_NAME = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=1,
                max_size=12)
_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"),
                                       blacklist_characters="\r"),
                max_size=20).map(str.strip)
_VALUES = st.recursive(_TEXT, lambda inner: st.dictionaries(_NAME, inner, min_size=1,
                                                            max_size=4), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(originator=st.binary(min_size=8, max_size=8), target=st.binary(min_size=8, max_size=8),
       counter=st.integers(0, (1 << 64) - 1), variant=st.integers(1, 8),
       body=st.dictionaries(_NAME, _VALUES, max_size=5))
def test_any_request_round_trips(originator, target, counter, variant, body):
    req = DuisRequest(RequestId(originator, target, counter), variant, "4.1", "4.1.1",
                      "ReadInstantaneousImportRegisters", body)
    assert DuisRequest.from_xml(req.to_xml()) == req


# -- the signature ----------------------------------------------------------------------------

def test_signature_verifies_and_says_how_it_was_made():
    xml = request().to_xml(SIGNER)
    verify_with_certificate(xml, CERT)
    assert duis.C14N_EXC.encode() in xml and duis.SIG_ECDSA_SHA256.encode() in xml
    value = xml.split(b"<ds:SignatureValue>")[1].split(b"<")[0]
    assert len(base64.b64decode(value)) == 64                     # raw r||s
    with pytest.raises(DuisError) as error:
        verify_with_certificate(xml, OTHER_CREDS["ds"].certificate)
    assert error.value.where == "SignatureValue"


@pytest.mark.parametrize("old,new,where", [
    (b"73946144332040217315", b"73946144332040217316", "DigestValue"),     # body text
    (b":12884901888<", b":12884901889<", "DigestValue"),                  # header
    (b'schemaVersion="5.4"', b'schemaVersion="5.3"', "DigestValue"),       # attribute
    (b"<sr:Header>", b"<sr:Header> ", "DigestValue"),                     # whitespace counts
    (b"xml-exc-c14n#", b"xml-c14n11#", "CanonicalizationMethod"),
    (b"ecdsa-sha256", b"ecdsa-sha384", "SignatureMethod"),
    (b"xmlenc#sha256", b"xmlenc#sha512", "DigestMethod"),
    (b'URI=""', b'URI="#body"', "Signature"),
])
def test_tampering_is_caught(old, new, where):
    xml = request().to_xml(SIGNER)
    assert old in xml
    with pytest.raises(DuisError) as error:
        verify_with_certificate(xml.replace(old, new, 1), CERT)
    assert error.value.where == where


def test_a_changed_digest_or_signature_value_is_caught():
    xml = request().to_xml(SIGNER)
    for tag in (b"DigestValue", b"SignatureValue"):
        head, rest = xml.split(b"<ds:%s>" % tag)
        value, tail = rest.split(b"<", 1)
        raw = bytearray(base64.b64decode(value))
        raw[3] ^= 0x40
        with pytest.raises(DuisError):
            verify_with_certificate(head + b"<ds:%s>" % tag + base64.b64encode(bytes(raw))
                                    + b"<" + tail, CERT)


def test_an_unsigned_or_twice_signed_document_does_not_verify():
    with pytest.raises(DuisError) as error:
        verify_with_certificate(request().to_xml(), CERT)
    assert error.value.where == "Signature"
    xml = request().to_xml(SIGNER)
    signature = xml[xml.index(b"<ds:Signature"):xml.index(b"</ds:Signature>") + 15]
    doubled = xml.replace(b"</sr:Request>", signature + b"</sr:Request>")
    with pytest.raises(DuisError):
        verify_with_certificate(doubled, CERT)


def test_the_signature_does_not_depend_on_prefixes_or_the_xml_declaration():
    # another implementation's prefix choice: the canonical form uses sr/ds regardless
    xml = request().to_xml(SIGNER)
    assert xml.startswith(b"<?xml ")
    renamed = xml.split(b"\n", 1)[1]
    renamed = renamed.replace(b"sr:", b"q:").replace(b"xmlns:sr=", b"xmlns:q=")
    assert b"sr:" not in renamed
    verify_with_certificate(renamed, CERT)
    assert DuisRequest.from_xml(renamed) == request()


def test_a_document_written_with_other_prefixes_reads_the_same():
    xml = (b'<?xml version="1.0" encoding="UTF-8"?>'
           b'<q:Request xmlns:q="http://www.dccinterface.co.uk/ServiceUserGateway" '
           b'schemaVersion="5.4"><q:Header>'
           b"<q:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:12884901888"
           b"</q:RequestID><q:CommandVariant>1</q:CommandVariant>"
           b"<q:ServiceReference>2.2</q:ServiceReference>"
           b"<q:ServiceReferenceVariant>2.2</q:ServiceReferenceVariant></q:Header>"
           b"<q:Body><q:TopUpDevice><q:UTRN> 73946144332040217315 </q:UTRN></q:TopUpDevice>"
           b"</q:Body></q:Request>")
    assert DuisRequest.from_xml(xml) == request()


# -- bounded, clear refusals ------------------------------------------------------------------

def _header(**fields):
    values = {"RequestID": str(RID), "CommandVariant": "1", "ServiceReference": "2.2",
              "ServiceReferenceVariant": "2.2"}
    values.update(fields)
    return "".join("<sr:%s>%s</sr:%s>" % (k, v, k) for k, v in values.items() if v is not None)


def _doc(header=None, body="<sr:TopUpDevice><sr:UTRN>1</sr:UTRN></sr:TopUpDevice>",
         root="Request"):
    return ('<sr:%s xmlns:sr="%s" schemaVersion="5.4"><sr:Header>%s</sr:Header>'
            "<sr:Body>%s</sr:Body></sr:%s>" % (root, duis.NS, header or _header(), body,
                                               root)).encode()


@pytest.mark.parametrize("xml,where", [
    (b"", "xml"),
    (b"<sr:Request", "xml"),
    (b"\xff\xfe<", "xml"),
    (b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>', "xml"),
    (b'<!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>', "xml"),
    (b"<r>" + b" " * duis.MAX_XML_BYTES + b"</r>", "xml"),
    (b"<a>" * (duis.MAX_DEPTH + 1) + b"</a>" * (duis.MAX_DEPTH + 1), "a"),
    (b"<r>" + b"<e/>" * duis.MAX_ELEMENTS + b"</r>", "xml"),
    (b"<Request/>", "Request"),
    (_doc(root="Other"), "Request"),
    (_doc(header=_header(RequestID=None)), "Header"),
    (_doc(header=_header(RequestID="x:y:1")), "RequestID"),
    (_doc(header=_header(CommandVariant="9")), "CommandVariant"),
    (_doc(header=_header(CommandVariant="one")), "CommandVariant"),
    (_doc(body=""), "Body"),
    (_doc(body="<sr:EnableSupply/><sr:ArmSupply/>"), "Body"),
    (_doc(body='<x:Foreign xmlns:x="urn:other"/>'), "Body"),
    (_doc(body='<sr:TopUpDevice><x:UTRN xmlns:x="urn:other">1</x:UTRN></sr:TopUpDevice>'),
     "TopUpDevice"),
])
def test_bad_xml_is_a_duis_error_naming_what(xml, where):
    with pytest.raises(DuisError) as error:
        DuisRequest.from_xml(xml)
    assert error.value.where == where
    assert str(error.value).startswith("duis: %s: " % where)


def test_a_signed_pre_command_with_bad_base64_is_a_duis_error():
    xml = _doc(header=_header(CommandVariant="5"),
               body="<sr:SignedPreCommand><sr:GBCSPayload>not*base64</sr:GBCSPayload>"
                    "</sr:SignedPreCommand>")
    with pytest.raises(DuisError) as error:
        DuisRequest.from_xml(xml).gbcs_payload()
    assert error.value.where == "GBCSPayload"


def test_response_fields_are_checked_too():
    good = DuisResponse("I0", "2026-01-03T01:00:00Z", kind=duis.DEVICE_ALERT,
                        response_id=RID.swapped(), alert_code=0x8F30, gbcs_payload=b"\x01")
    xml = good.to_xml()
    for old, new, where in ((b">8F30<", b">8F3<", "AlertCode"),
                            (b"DeviceAlertMessage", b"OtherMessage", "Body"),
                            (b"<sr:ResponseCode>I0</sr:ResponseCode>", b"", "Header")):
        with pytest.raises(DuisError) as error:
            DuisResponse.from_xml(xml.replace(old, new))
        assert error.value.where == where
    with pytest.raises(DuisError):
        DuisResponse.from_xml(request().to_xml())


def test_date_times():
    assert duis.date_time_text(0) == "1970-01-01T00:00:00Z"
    assert duis.parse_date_time("2014-12-31T23:59:10.00Z") == 1420070350
    assert duis.parse_date_time("2014-12-31T23:59:10") == 1420070350
    assert duis.parse_date_time("2015-01-01T01:59:10+02:00") == 1420070350
    with pytest.raises(DuisError):
        duis.parse_date_time("yesterday")


# -- the SRV table ----------------------------------------------------------------------------

def test_srv_criticality_agrees_with_the_gbcs_use_cases_it_maps_to():
    for srv in duis.SERVICE_REQUESTS.values():
        for device_type, use_case in srv.use_cases.items():
            _, critical, use_case_device, _ = codes.use_case(use_case)
            assert use_case_device in (device_type, codes.ANY_DEVICE), (srv, use_case)
            if srv.variant == "6.23":
                # non-critical to the user; the Transitional CoS party signs the CS02b
                assert critical and not srv.critical
            else:
                assert critical == srv.critical, (srv, use_case)


def test_srv_table_holds_the_lab_subset():
    table = duis.SERVICE_REQUESTS
    assert {"1.5", "2.2", "4.1.1", "4.6.1", "4.8.1", "6.11", "6.15.1", "6.23", "7.1", "7.2",
            "7.3", "7.4", "8.1.1", "8.11"} <= set(table)
    assert table["4.1.1"].reference == "4.1" and table["7.2"].reference == "7.2"
    assert table["7.1"].roles == ("IS",) and codes.GSME not in table["7.1"].use_cases
    assert "OU" in table["8.11"].roles and "OU" not in table["7.2"].roles


# -- the canonical form against an independent canonicaliser --------------------------------

_ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                           whitelist_characters="&<>\"'\t\r\n ",
                                           max_codepoint=0x2FF)
                    .filter(lambda c: not duis._NOT_XML_CHARACTER.search(c)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(body=st.dictionaries(_NAME, st.one_of(_ANY_TEXT, st.dictionaries(_NAME, _ANY_TEXT,
                                                                          min_size=1,
                                                                          max_size=3)),
                            max_size=4),
       pretty=st.booleans())
def test_canonical_form_agrees_with_the_stdlib_c14n(body, pretty):
    """W3C C14N 2.0 (xml.etree.ElementTree.canonicalize, another implementation) gives the
    same bytes as ours for DUIS documents: the document without its signature, and the
    SignedInfo on its own (where exclusive c14n and C14N 2.0 coincide)."""
    req = DuisRequest(RID, 1, "4.1", "4.1.1", "ReadInstantaneousImportRegisters", body)
    xml = req.to_xml(pretty=pretty)
    root = duis._parse(xml)
    ours = duis.canonical(root)
    assert ours == duis.ET.canonicalize(xml.decode("utf-8"), strip_text=False).encode()
    assert DuisRequest.from_xml(xml) == DuisRequest(RID, 1, "4.1", "4.1.1",
                                                    "ReadInstantaneousImportRegisters",
                                                    _stripped(body))
    signed = duis._parse(req.to_xml(SIGNER, pretty))
    signed_info = signed.find("{%s}Signature/{%s}SignedInfo" % (duis.DS_NS, duis.DS_NS))
    reference = duis.ET.canonicalize(duis.ET.tostring(signed_info, encoding="unicode"),
                                     strip_text=False)
    assert duis.canonical(signed_info) == reference.encode()


def _stripped(body):
    """What reading back gives: text values without surrounding whitespace."""
    if isinstance(body, dict):
        return {k: _stripped(v) for k, v in body.items()} or ""
    return body.strip()


def test_text_xml_cannot_carry_is_refused_when_the_request_is_made():
    with pytest.raises(ValueError):
        request(body={"UTRN": "7394\x0b6144"})
