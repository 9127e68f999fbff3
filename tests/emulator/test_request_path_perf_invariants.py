"""What the request path's performance shortcuts must not change (emulator/duis.py):
the canonical text written straight from the fields is the tree's canonical form, signed
documents are byte for byte what the tree path writes apart from the random signature,
the verifier's cut-from-the-bytes path accepts only what full canonicalisation accepts
(tampered, re-laid-out and re-ordered documents), and a request through the lab still
costs exactly the crypto operations it needs."""

import base64
import collections
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import duis
from emulator.crypto import HostCrypto, public_xy
from emulator.duis import DuisError, DuisRequest, DuisResponse, RequestId, XmlSigner
from emulator.smki import TestSmki
from firmware.gbcs import codes

SUPPLIER = bytes.fromhex("90B3D51F30010000")
ESME = bytes.fromhex("00DB1234567890A0")
SMKI = TestSmki(seed=11)
CREDS = SMKI.organisation(SUPPLIER, codes.ROLE_SUPPLIER, "Supplier")
SIGNER = XmlSigner(CREDS["ds"].private_key, CREDS["ds"].certificate)
PUBLIC = public_xy(CREDS["ds"].certificate.public_key())
RID = RequestId(SUPPLIER, ESME, 4242)

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=12).filter(lambda t: not duis._NOT_XML_CHARACTER.search(t))
_names = st.sampled_from(["UTRN", "A", "ReadLogPeriod", "Certificate", "x-y"])
_leaves = _text | st.integers(0, 10 ** 6) | st.booleans()
_nested = st.recursive(_leaves, lambda inner: st.dictionaries(_names, inner, max_size=3),
                       max_leaves=6)
# a repeated element is a list of two or more values, none of them a list itself
_values = _nested | st.lists(_nested, min_size=2, max_size=3)
_bodies = st.dictionaries(_names, _values, max_size=4)
_nested = st.recursive(_leaves, lambda inner: st.dictionaries(
    _names, inner | st.lists(inner, min_size=2, max_size=3), max_size=3), max_leaves=6)


def _request(body, variant=1):
    return DuisRequest(RID, variant, "4.1", "4.1.1", "ReadInstantaneousImportRegisters", body)


def _response(kind, payload, alert):
    if kind == duis.RESPONSE_MESSAGE:
        return DuisResponse("I0", "2026-01-01T00:00:00Z", request_id=RID,
                            response_id=RID.swapped(), service_reference="7.2",
                            service_reference_variant="7.2", gbcs_payload=payload)
    if kind == "pre":
        return DuisResponse("I0", "2026-01-01T00:00:00Z", request_id=RID,
                            response_id=RID.swapped(), service_reference="7.2",
                            service_reference_variant="7.2", pre_command=payload)
    if kind == duis.DEVICE_ALERT:
        return DuisResponse("I0", "2026-01-01T00:00:00Z", kind=kind,
                            response_id=RID.swapped(), alert_code=0x8F66, gbcs_payload=payload)
    return DuisResponse("I99", "2026-01-01T00:00:00Z", kind=duis.DCC_ALERT, request_id=RID,
                        response_id=RID.swapped(), dcc_alert_code="AD1", dcc_alert=alert)


@settings(max_examples=300, deadline=None)
@given(_bodies)
def test_request_canonical_text_is_the_trees_canonical_form(body):
    request = _request(body)
    assert request.canonical_text() == duis._canonical_text(request.element())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([duis.RESPONSE_MESSAGE, "pre", duis.DEVICE_ALERT, duis.DCC_ALERT]),
       st.binary(max_size=90), _bodies)
def test_response_canonical_text_is_the_trees_canonical_form(kind, payload, alert):
    response = _response(kind, payload, alert)
    assert response.canonical_text() == duis._canonical_text(response.element())


def _without_signature_value(xml):
    return re.sub(rb"<ds:SignatureValue>[^<]*</ds:SignatureValue>", b"", xml)


@settings(max_examples=60, deadline=None)
@given(_bodies)
def test_signed_documents_are_what_the_tree_path_writes(body):
    request = _request(body)
    fast = request.to_xml(SIGNER)
    slow = SIGNER._sign_compact(request.element())
    assert _without_signature_value(fast) == _without_signature_value(slow)
    duis.verify(fast, PUBLIC)
    duis.verify(DuisRequest.from_xml(fast), PUBLIC)


def _cut(xml):
    """The verifier's cut-from-the-bytes result for a document, or None."""
    root = duis._parse(xml)
    reference = duis._signature_of(root).find(duis._qd("SignedInfo")).find(
        duis._qd("Reference"))
    return duis._as_signed(xml, reference.findtext(duis._qd("DigestValue")).strip())


def test_the_cut_is_the_canonical_bytes_the_signer_made():
    xml = _request({"UTRN": "1 < 2 & 3"}).to_xml(SIGNER)
    root = duis._parse(xml)
    signature = duis._signature_of(root)
    document, signed_info = _cut(xml)
    assert document == duis.canonical(root, skip=signature)
    assert signed_info == duis.canonical(signature.find(duis._qd("SignedInfo")))


def test_other_layouts_are_canonicalised_from_the_tree_and_still_verify():
    compact = _request({"UTRN": "7"}).to_xml(SIGNER)
    pretty = _request({"UTRN": "7"}).to_xml(SIGNER, pretty=True)
    without_declaration = compact[len(duis._DECLARATION_BYTES):]
    renamed = compact.replace(b"sr:", b"dcc:").replace(b"xmlns:sr=", b"xmlns:dcc=")
    for xml in (pretty, without_declaration):
        assert _cut(xml) is None
        duis.verify(xml, PUBLIC)
        duis.verify(DuisRequest.from_xml(xml), PUBLIC)
    # laid out as the signer writes, but not the bytes it digested: the digest check
    # falls back to the tree's canonical form (prefixes rewritten to sr), which verifies
    document, _ = _cut(renamed)
    assert document != duis.canonical(duis._parse(renamed),
                                      skip=duis._signature_of(duis._parse(renamed)))
    duis.verify(renamed, PUBLIC)
    duis.verify(DuisRequest.from_xml(renamed), PUBLIC)
    # the signature moved to the front: a valid document the cut does not take
    root = duis._parse(compact)
    signature = duis._signature_of(root)
    root.remove(signature)
    root.insert(0, signature)
    moved = duis._serialise(root)
    assert _cut(moved) is None
    duis.verify(moved, PUBLIC)


@pytest.mark.parametrize("old, new", [
    (b"<sr:CommandVariant>1<", b"<sr:CommandVariant>3<"),          # the document
    (b"<sr:UTRN>7<", b"<sr:UTRN>8<"),
    (b'URI=""', b'URI="" Id="r"'),                                  # SignedInfo
    (b"<ds:DigestValue>", b"<ds:DigestValue>\n"),
])
def test_tampered_documents_are_refused_both_ways(old, new):
    xml = _request({"UTRN": "7"}).to_xml(SIGNER)
    assert old in xml
    tampered = xml.replace(old, new, 1)
    for document in (tampered, DuisRequest.from_xml(tampered)):
        with pytest.raises(DuisError):
            duis.verify(document, PUBLIC)


def test_what_canonicalisation_drops_still_verifies_as_before():
    xml = _request({"UTRN": "7"}).to_xml(SIGNER)
    for old, new in ((b"</ds:DigestMethod>", b"</ds:DigestMethod><!-- x -->"),
                     (b'URI=""', b'URI="" '), (b"<sr:UTRN>", b"<sr:UTRN >")):
        changed = xml.replace(old, new, 1)
        assert _cut(changed) is None or _cut(changed)[0] != _cut(xml)[0]
        duis.verify(changed, PUBLIC)
        duis.verify(DuisRequest.from_xml(changed), PUBLIC)


def test_a_second_signature_element_or_trailing_bytes_are_not_cut():
    xml = _request({"UTRN": "7"}).to_xml(SIGNER)
    start = xml.index(b"<ds:Signature ")
    end = xml.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    body = xml.index(b"</sr:Body>")
    doubled = xml[:body] + xml[start:end] + xml[body:]      # a copy inside the Body
    assert _cut(doubled) is None
    with pytest.raises(DuisError):
        duis.verify(doubled, PUBLIC)
    assert _cut(xml + b"\n") is None
    duis.verify(xml + b"\n", PUBLIC)


def test_a_signature_by_another_key_is_refused_on_the_cut_path():
    other = SMKI.organisation(bytes.fromhex("90B3D51F30020000"), codes.ROLE_SUPPLIER, "O")
    xml = _request({}).to_xml(XmlSigner(other["ds"].private_key, other["ds"].certificate))
    assert _cut(xml) is not None
    with pytest.raises(DuisError) as error:
        duis.verify(xml, PUBLIC)
    assert error.value.where == "SignatureValue"


def test_a_forged_digest_value_is_refused():
    xml = _request({"UTRN": "7"}).to_xml(SIGNER)
    digest = re.search(rb"<ds:DigestValue>([^<]*)<", xml).group(1)
    forged = xml.replace(digest, base64.b64encode(bytes(32)), 1)
    with pytest.raises(DuisError):
        duis.verify(forged, PUBLIC)


# -- the crypto a request costs through the lab ------------------------------------------

class _Counted:
    """Every HostCrypto primitive call; an ECDH only when it misses the static-static
    cache (the cache grows), so a hit is never counted as an exchange."""

    NAMES = ("ecdsa_sign", "ecdsa_verify", "ecdh", "gmac", "gcm_encrypt", "gcm_decrypt")

    def __init__(self, monkeypatch):
        self.counts = collections.Counter()
        for name in self.NAMES:
            monkeypatch.setattr(HostCrypto, name, self._wrap(name, getattr(HostCrypto, name)))

    def _wrap(self, name, original):
        counts = self.counts

        def counted(crypto, *args):
            if name != "ecdh":
                counts[name] += 1
                return original(crypto, *args)
            cached = len(crypto._shared_secrets)
            result = original(crypto, *args)
            if len(crypto._shared_secrets) != cached:     # a real exchange, now cached
                counts[name] += 1
            return result
        return counted


def test_a_request_through_the_lab_costs_the_crypto_it_needs(monkeypatch):
    import asyncio

    from emulator.lab import ESME_EUI, Lab

    async def run():
        lab = Lab(seed=1, wan="direct", record=False)
        for srv in ("4.1.1", "7.2", "7.1"):            # warm the static-static cache
            assert (await lab.request("A", srv, ESME_EUI)).ok
        counted = _Counted(monkeypatch)
        assert (await lab.request("A", "4.1.1", ESME_EUI)).ok
        read = dict(counted.counts)
        counted.counts.clear()
        assert (await lab.request("A", "7.2", ESME_EUI)).ok
        return read, dict(counted.counts)

    read, critical = asyncio.run(run())
    # read: head-end signs the DUIS request, DCC verifies it; DCC MACs the command, the
    # ESME checks it; the ESME MACs its answer and encrypts the registers; the DCC signs
    # the DUIS response, the head-end verifies it, checks the MAC and decrypts.
    assert read == {"ecdsa_sign": 2, "ecdsa_verify": 2, "gmac": 4, "gcm_encrypt": 1,
                    "gcm_decrypt": 1}
    # critical: two DUIS round trips (4 XML signatures, 4 checks), the head-end signs the
    # pre-command, the DCC and the ESME verify it; the ACB MAC made and checked; the ESME
    # signs its answer, the DCC and the head-end verify that.
    assert critical == {"ecdsa_sign": 6, "ecdsa_verify": 8, "gmac": 2}


# -- documents signed here and read back without parsing ----------------------------------

def _parsed(cls, xml):
    """What from_xml reads when it does parse (another copy of the bytes is not recalled
    when the memo is emptied first)."""
    saved = dict(duis._RECENT)
    duis._RECENT.clear()
    try:
        return cls.from_xml(xml)
    finally:
        duis._RECENT.update(saved)


@settings(max_examples=200, deadline=None)
@given(_bodies, st.sampled_from([1, 4]))
def test_a_recalled_request_is_what_parsing_reads(body, variant):
    xml = _request(body, variant).to_xml(SIGNER)
    recalled, parsed = DuisRequest.from_xml(xml), _parsed(DuisRequest, xml)
    assert recalled == parsed and recalled.key_info == parsed.key_info
    assert recalled.xml == parsed.xml == xml
    duis.verify(recalled, PUBLIC)
    assert duis._canonical_text(recalled.root) == duis._canonical_text(parsed.root)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([duis.RESPONSE_MESSAGE, "pre", duis.DEVICE_ALERT, duis.DCC_ALERT]),
       st.binary(max_size=90), _bodies, _text)
def test_a_recalled_response_is_what_parsing_reads(kind, payload, alert, code):
    response = _response(kind, payload, alert)
    response.response_code = code or "I0"
    xml = response.to_xml(SIGNER)
    recalled, parsed = DuisResponse.from_xml(xml), _parsed(DuisResponse, xml)
    assert recalled == parsed and recalled.key_info == parsed.key_info
    duis.verify(recalled, PUBLIC)


def test_only_the_exact_bytes_are_recalled_and_tampering_is_still_refused():
    xml = _request({"UTRN": "7"}).to_xml(SIGNER)
    assert DuisRequest.from_xml(xml)._signed is not None            # recalled
    tampered = xml.replace(b"<sr:UTRN>7<", b"<sr:UTRN>8<", 1)
    read = DuisRequest.from_xml(tampered)
    assert read._signed is None and read.body == {"UTRN": "8"}      # parsed
    with pytest.raises(DuisError):
        duis.verify(read, PUBLIC)
    other = SMKI.organisation(bytes.fromhex("90B3D51F30020000"), codes.ROLE_SUPPLIER, "O")
    with pytest.raises(DuisError) as error:                          # recalled, wrong key
        duis.verify(DuisRequest.from_xml(xml), public_xy(other["ds"].certificate.public_key()))
    assert error.value.where == "SignatureValue"


def test_a_recalled_request_changed_after_reading_is_not_the_memo():
    request = _request({"A": {"B": "1"}})
    xml = request.to_xml(SIGNER)
    request.body["A"]["B"] = "2"                       # the builder's object changes later
    first = DuisRequest.from_xml(xml)
    first.body["A"]["B"] = "3"                         # and so does a reader's copy
    assert DuisRequest.from_xml(xml).body == {"A": {"B": "1"}} == _parsed(DuisRequest, xml).body


def test_fields_that_would_not_read_back_are_not_remembered():
    for request in (_request({"UTRN": " 7"}), _request({"UTRN": "a\rb"}),
                    DuisRequest(RID, 1, "4.1 ", "4.1.1", "ReadInstantaneousImportRegisters")):
        xml = request.to_xml(SIGNER)
        read = DuisRequest.from_xml(xml)
        assert read._signed is None
        assert read == _parsed(DuisRequest, xml)
        duis.verify(read, PUBLIC)
