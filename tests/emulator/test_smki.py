"""The run-time test SMKI follows the certificate profiles the RTDS certificates carry."""

import pathlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from emulator import smki
from emulator.crypto import HostCrypto, KeyStore
from firmware.gbcs import envelope, security

RTDS_KEYSTORE = KeyStore(pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs" / "keystore")
SUPPLIER = bytes.fromhex("90B3D51F30010000")
ACB = bytes.fromhex("90B3D51F30000002")
ESME = bytes.fromhex("00DB1234567890A0")


@pytest.fixture(scope="module")
def pki():
    authority = smki.TestSmki(seed=7)
    authority.organisation(SUPPLIER, smki.ROLE_SUPPLIER, "TEST SUPPLIER")
    authority.organisation(ACB, smki.ROLE_ACB, "DCC ACB")
    authority.device(ESME)
    return authority


def _extension_bytes(certificate, cls):
    return certificate.extensions.get_extension_for_class(cls)


def test_device_certificate_profile_matches_rtds(pki):
    ours = pki.devices[ESME]["ka"].certificate
    theirs = RTDS_KEYSTORE.certificate(ESME, "ka")
    assert len(ours.subject) == 0 and len(theirs.subject) == 0
    assert ours.not_valid_after_utc == theirs.not_valid_after_utc
    for cls in (x509.SubjectAlternativeName, x509.KeyUsage, x509.CertificatePolicies):
        mine, reference = _extension_bytes(ours, cls), _extension_bytes(theirs, cls)
        assert mine.critical == reference.critical
        assert mine.value.public_bytes() == reference.value.public_bytes(), cls.__name__
    assert smki.hardware_module_eui(ours) == ESME


def test_organisation_certificate_profile_matches_rtds(pki):
    ours = pki.organisations[SUPPLIER]["ds"].certificate
    theirs = RTDS_KEYSTORE.certificate(SUPPLIER, "ds")
    assert smki.organisation_eui(ours) == smki.organisation_eui(theirs) == SUPPLIER
    assert smki.organisation_role(ours) == smki.organisation_role(theirs) == smki.ROLE_SUPPLIER
    assert ours.issuer == theirs.issuer
    for cls in (x509.KeyUsage, x509.CertificatePolicies):
        assert (_extension_bytes(ours, cls).value.public_bytes()
                == _extension_bytes(theirs, cls).value.public_bytes()), cls.__name__
    ka_usage = _extension_bytes(pki.organisations[SUPPLIER]["ka"].certificate, x509.KeyUsage).value
    assert ka_usage.key_agreement and not ka_usage.digital_signature
    assert "pp-ka" in pki.organisations[SUPPLIER] and "pp-ka" not in pki.organisations[ACB]


def test_every_certificate_chains_to_its_issuer(pki):
    issued = [(c, pki.organisation_ca) for party in pki.organisations.values() for c in party.values()]
    issued += [(c, pki.device_ca) for party in pki.devices.values() for c in party.values()]
    issued += [(pki.organisation_ca, pki.root), (pki.device_ca, pki.root)]
    for credential, issuer in issued:
        credential.certificate.verify_directly_issued_by(issuer.certificate)


def test_same_seed_same_keys_other_seed_other_keys():
    first, second, other = smki.TestSmki(3), smki.TestSmki(3), smki.TestSmki(4)
    for authority in (first, second, other):
        authority.device(ESME)
    assert first.devices[ESME]["ka"].public_xy == second.devices[ESME]["ka"].public_xy
    assert first.devices[ESME]["ka"].public_xy != other.devices[ESME]["ka"].public_xy


def test_exported_keystore_reads_back_and_protects_a_message(pki, tmp_path):
    keystore = KeyStore(pki.export(tmp_path))
    assert keystore.is_device(ESME) and not keystore.is_device(SUPPLIER)
    assert keystore.public_key(ESME, "ka") == pki.devices[ESME]["ka"].public_xy
    crypto = HostCrypto()
    command = envelope.GbcsMessage(envelope.CRA_COMMAND, 1 << 32, SUPPLIER, ESME, 0x0027, b"\xd9\x00")
    security.sign(crypto, keystore.private_key(SUPPLIER, "ds"), command)
    security.protect_mac(crypto, crypto.ecdh(keystore.private_key(ACB, "ka"),
                                             keystore.public_key(ESME, "ka")), command)
    received = envelope.parse(command.encode())
    # the device side: its own KA private key with the ACB's public key agrees
    device_secret = crypto.ecdh(keystore.private_key(ESME, "ka"), keystore.public_key(ACB, "ka"))
    assert security.verify_mac(crypto, device_secret, received)
    assert security.verify_signature(crypto, keystore.public_key(SUPPLIER, "ds"), received)
    assert isinstance(keystore.private_key(SUPPLIER, "pp-ka"), ec.EllipticCurvePrivateKey)
