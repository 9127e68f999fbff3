"""A test SMKI generated at run time with the GB certificate profiles.

Profiles follow what the RTDS 4.5.0 certificates carry (SMKI Certificate Policy / GBCS
4.3.2; checked with `openssl x509 -text` on tests/vectors/gbcs/keystore):

- Organisation certificates: subject CN=<name>, OU=<remote party role (2 digits)>,
  x500UniqueIdentifier=<EUI-64 as a BIT STRING>; issuer OU=07, CN=Z1; key usage critical
  (digitalSignature for DS, keyAgreement for KA); critical certificate policy; SKI/AKI.
- Device certificates: empty subject; critical subjectAltName with an otherName of type
  id-on-hardwareModuleName (RFC 4108) carrying {hwType, hwSerialNum = EUI-64}; notAfter
  9999-12-31 23:59:59; issuer CN=<device CA>.
- Suppliers hold a separate prepayment KA pair (`-pp-ka`).

Private keys are derived from a seed, and certificates are signed with RFC 6979 nonces, so
the same seed gives the same key pairs and the same certificates, byte for byte.
"""

from __future__ import annotations

import datetime
import hashlib
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from emulator.crypto import public_xy

# Remote party roles (GBCS 4.3.1 / DOMAIN.md)
ROLE_ROOT = 0
ROLE_RECOVERY = 1
ROLE_SUPPLIER = 2
ROLE_NETWORK_OPERATOR = 3
ROLE_ACB = 4
ROLE_TRANSITIONAL_COS = 5
ROLE_WAN_PROVIDER = 6
ROLE_ISSUING_AUTHORITY = 7
ROLE_OTHER = 127

OID_X500_UNIQUE_IDENTIFIER = NameOID.X500_UNIQUE_IDENTIFIER
OID_HARDWARE_MODULE_NAME = ObjectIdentifier("1.3.6.1.5.5.7.8.4")
OID_DEVICE_HW_TYPE = ObjectIdentifier("1.2.826.0.1.8641679.1.2.2.1")   # as in RTDS
OID_DEVICE_POLICY = ObjectIdentifier("1.2.826.0.1.1800000.1.2.1.4")
OID_ORGANISATION_POLICY = ObjectIdentifier("1.2.826.0.1.8641679.1.2.1.4")

_CURVE_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
DEVICE_NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)
NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _hardware_module_name(eui: bytes) -> bytes:
    """[0] EXPLICIT HardwareModuleName ::= SEQUENCE { hwType OID, hwSerialNum OCTET STRING }
    (RFC 4108 5), the value of the otherName. cryptography takes the DER of the value."""
    hw_type = _der(0x06, _oid_body(OID_DEVICE_HW_TYPE))
    return _der(0x30, hw_type + _der(0x04, eui))


def _oid_body(oid: ObjectIdentifier) -> bytes:
    arcs = [int(a) for a in oid.dotted_string.split(".")]
    body = bytes([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return body


def _eui_bit_string(eui: bytes) -> bytes:
    # x500UniqueIdentifier is a BIT STRING: 0 unused bits, then the EUI-64
    return b"\x00" + eui


class Credential:
    """One key pair with its certificate."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate):
        self.private_key = private_key
        self.certificate = certificate

    @property
    def public_xy(self) -> bytes:
        return public_xy(self.private_key.public_key())


class TestSmki:
    """Root, organisation CA and device CA, issuing organisation and device credentials."""

    __test__ = False  # not a pytest class

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.root = self._ca("root", x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Z0")]), None)
        self.organisation_ca = self._ca("organisation-ca", x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "07"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Z1")]), self.root)
        self.device_ca = self._ca("device-ca", x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, "E357")]), self.root)
        self.organisations: dict[bytes, dict[str, Credential]] = {}
        self.devices: dict[bytes, dict[str, Credential]] = {}
        self.roles: dict[bytes, int] = {}

    # -- keys ------------------------------------------------------------------
    def derive_key(self, label: str) -> ec.EllipticCurvePrivateKey:
        digest = hashlib.sha256(f"smets-emu smki {self.seed} {label}".encode()).digest()
        scalar = int.from_bytes(digest, "big") % (_CURVE_ORDER - 1) + 1
        return ec.derive_private_key(scalar, ec.SECP256R1())

    def _ca(self, label: str, name: x509.Name, issuer: Credential | None) -> Credential:
        key = self.derive_key(label)
        issuer_key = issuer.private_key if issuer else key
        issuer_name = issuer.certificate.subject if issuer else name
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
                   .public_key(key.public_key()).serial_number(self._serial(label))
                   .not_valid_before(NOT_BEFORE).not_valid_after(DEVICE_NOT_AFTER)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                False, False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False))
        return Credential(key, builder.sign(issuer_key, hashes.SHA256(),
                                            ecdsa_deterministic=True))

    def _serial(self, label: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{self.seed} serial {label}".encode()).digest()[:16],
                              "big") >> 1

    def _leaf(self, label, subject, key, issuer, usage, extra_extensions, not_after, policy):
        signing = usage == "ds"
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(issuer.certificate.subject).public_key(key.public_key())
                   .serial_number(self._serial(label)).not_valid_before(NOT_BEFORE)
                   .not_valid_after(not_after)
                   .add_extension(x509.KeyUsage(signing, False, False, False, not signing, False,
                                                False, False, False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False)
                   .add_extension(x509.CertificatePolicies([x509.PolicyInformation(policy, None)]),
                                  critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       issuer.private_key.public_key()), critical=False))
        for extension, critical in extra_extensions:
            builder = builder.add_extension(extension, critical=critical)
        return Credential(key, builder.sign(issuer.private_key, hashes.SHA256(),
                                            ecdsa_deterministic=True))

    # -- issuing ----------------------------------------------------------------
    def organisation(self, eui: bytes, role: int, name: str) -> dict[str, Credential]:
        """DS and KA credentials (and prepayment KA for a supplier) for a remote party."""
        subject = x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{role:02d}"),
            # cryptography has no public way to say BIT STRING for this attribute, which
            # the SMKI profile requires (RTDS: #030900<EUI>); _ASN1Type is the only route.
            x509.NameAttribute(OID_X500_UNIQUE_IDENTIFIER, _eui_bit_string(eui),
                               _type=x509.name._ASN1Type.BitString),
        ])
        usages = ["ds", "ka"] + (["pp-ka"] if role == ROLE_SUPPLIER else [])
        issued = {}
        for usage in usages:
            label = f"{eui.hex()}-{usage}"
            issued[usage] = self._leaf(label, subject, self.derive_key(label), self.organisation_ca,
                                       "ds" if usage == "ds" else "ka", [],
                                       NOT_BEFORE + datetime.timedelta(days=3650),
                                       OID_ORGANISATION_POLICY)
        self.organisations[eui] = issued
        self.roles[eui] = role
        return issued

    def device(self, eui: bytes) -> dict[str, Credential]:
        """DS and KA credentials of a device (ESME, GSME, CHF, GPF, PPMID...)."""
        san = x509.SubjectAlternativeName([x509.OtherName(OID_HARDWARE_MODULE_NAME,
                                                          _hardware_module_name(eui))])
        issued = {}
        for usage in ("ds", "ka"):
            label = f"{eui.hex()}-{usage}"
            issued[usage] = self._leaf(label, x509.Name([]), self.derive_key(label),
                                       self.device_ca, usage, [(san, True)], DEVICE_NOT_AFTER,
                                       OID_DEVICE_POLICY)
        self.devices[eui] = issued
        return issued

    # -- export -----------------------------------------------------------------
    def export(self, folder: str | pathlib.Path) -> pathlib.Path:
        """Write the keystore in the RTDS layout: `<eui>-<usage>.pem` and `.key`."""
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for party in (self.organisations, self.devices):
            for eui, credentials in party.items():
                for usage, credential in credentials.items():
                    stem = folder / f"{eui.hex()}-{usage}"
                    stem.with_suffix(".pem").write_bytes(
                        credential.certificate.public_bytes(serialization.Encoding.PEM))
                    stem.with_suffix(".key").write_bytes(credential.private_key.private_bytes(
                        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption()))
        for name, credential in (("root", self.root), ("organisation-ca", self.organisation_ca),
                                 ("device-ca", self.device_ca)):
            (folder / f"{name}.pem").write_bytes(
                credential.certificate.public_bytes(serialization.Encoding.PEM))
        return folder


def hardware_module_eui(certificate: x509.Certificate) -> bytes | None:
    """The EUI-64 a device certificate names in its hardwareModuleName SAN, if any."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for name in san.get_values_for_type(x509.OtherName):
        if name.type_id == OID_HARDWARE_MODULE_NAME:
            value = name.value
            return value[-8:] if value[-10:-8] == b"\x04\x08" else None
    return None


def organisation_eui(certificate: x509.Certificate) -> bytes | None:
    values = certificate.subject.get_attributes_for_oid(OID_X500_UNIQUE_IDENTIFIER)
    if not values:
        return None
    raw = values[0].value
    raw = raw if isinstance(raw, bytes) else raw.encode("latin-1")
    return raw[1:] if len(raw) == 9 else None


def organisation_role(certificate: x509.Certificate) -> int | None:
    values = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return int(values[0].value) if values else None
