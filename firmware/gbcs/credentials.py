"""CS02b Update Security Credentials: the ASN.1 payloads (GBCS 13.3.2) and the X.509
fields a device needs from the certificates they carry (RFC 5280 4.1).

Layout (GBCS section 13 ASN.1 module, checked against RTDS 6.15.1, 6.21, 6.23, 8.5 and the
CS02b variants in tests/emulator/test_cs02.py):

    UpdateSecurityCredentials ::= SEQUENCE {
        authorisingRemotePartyControl SEQUENCE {
            credentialsReplacementMode              INTEGER,
            plaintextSymmetricKey               [0] OCTET STRING OPTIONAL,
            applyTimeBasedCPVChecks             [1] INTEGER { apply(0), disapply(1) } OPTIONAL,
            authorisingRemotePartyTACellIdentifier [2] TrustAnchorCellIdentifier OPTIONAL,
            authorisingRemotePartySeqNumber     [3] INTEGER,
            newRemotePartyFloorSeqNumber        [4] INTEGER OPTIONAL,
            newRemotePartySpecialistFloorSeqNumber [5] SEQUENCE OF SpecialistSeqNumber OPTIONAL,
            otherRemotePartySeqNumberChanges    [6] SEQUENCE OF RemotePartySeqNumberChange OPTIONAL },
        replacements  SEQUENCE OF SEQUENCE { replacingCertificate Certificate,
                                             targetTrustAnchorCell TrustAnchorCellIdentifier },
        certificationPathCertificates SEQUENCE OF Certificate,
        executionDateTime GeneralizedTime OPTIONAL }
    TrustAnchorCellIdentifier ::= SEQUENCE { remotePartyRole INTEGER, keyUsage BIT STRING,
                                             cellUsage INTEGER DEFAULT management }
    response ::= SEQUENCE { commandAccepted NULL, executionOutcome ExecutionOutcome OPTIONAL }
    alert    ::= SEQUENCE { alertCode INTEGER, executionDateTime GeneralizedTime,
                            executionOutcome ExecutionOutcome }
    ExecutionOutcome ::= SEQUENCE { authorisingRemotePartySeqNumber INTEGER,
        credentialsReplacementMode INTEGER,
        remotePartySeqNumberChanges SEQUENCE OF RemotePartySeqNumberChange,
        replacementOutcomes SEQUENCE OF SEQUENCE { affectedTrustAnchorCell
            TrustAnchorCellIdentifier, statusCode ENUMERATED, existingSubjectUniqueID
            OCTET STRING, existingSubjectKeyIdentifier OCTET STRING, replacingSubjectUniqueID
            OCTET STRING, replacingSubjectKeyIdentifier OCTET STRING } }
    RemotePartySeqNumberChange ::= SEQUENCE { remotePartyRole INTEGER, floorSeqNumber INTEGER,
        specialistFloorSeqNumber SEQUENCE OF SpecialistSeqNumber OPTIONAL }
    SpecialistSeqNumber ::= SEQUENCE { seqNumberUsage INTEGER { prepaymentTopUp(0) },
                                       seqNumber INTEGER }

Every decoder raises `firmware.gbcs.asn1.Asn1Error(offset, reason)`.
"""

from firmware.gbcs import asn1, codes
from firmware.gbcs.asn1 import Asn1Error, Reader
from firmware.gbcs.codes import CELL_MANAGEMENT

# StatusCode (GBCS 13.3.2): the outcome of one trust-anchor replacement (codes.py)
STATUS_SUCCESS = codes.STATUS_SUCCESS
STATUS_BAD_CERTIFICATE = codes.STATUS_BAD_CERTIFICATE
STATUS_NO_TRUST_ANCHOR = codes.STATUS_NO_TRUST_ANCHOR
STATUS_OTHER = codes.STATUS_OTHER

SEQ_NUMBER_USAGE_PREPAYMENT_TOP_UP = 0
APPLY_CPV_CHECKS = 0
DISAPPLY_CPV_CHECKS = 1
CANCEL_EXECUTION_DATE_TIME = "99991231235959Z"   # RTDS CANCELLATION commands use it

_CONTROL_PLAINTEXT_KEY = asn1.context(0)
_CONTROL_CPV_CHECKS = asn1.context(1)
_CONTROL_AUTHORISING_CELL = asn1.context(2, True)
_CONTROL_SEQ_NUMBER = asn1.context(3)
_CONTROL_FLOOR = asn1.context(4)
_CONTROL_SPECIALIST_FLOORS = asn1.context(5, True)
_CONTROL_OTHER_CHANGES = asn1.context(6, True)


# -- shared types ----------------------------------------------------------------------------

class CellId:
    """TrustAnchorCellIdentifier: role, key usage (the X.509 KeyUsage bit), cell usage."""

    def __init__(self, role, key_usage, cell_usage=CELL_MANAGEMENT):
        self.role = role
        self.key_usage = key_usage
        self.cell_usage = cell_usage

    def __eq__(self, other):
        return (isinstance(other, CellId) and self.role == other.role
                and self.key_usage == other.key_usage and self.cell_usage == other.cell_usage)

    def __repr__(self):
        return "CellId(%d, %d, %d)" % (self.role, self.key_usage, self.cell_usage)


def read_cell_id(reader, tag=asn1.SEQUENCE):
    inner = reader.enter(tag)
    role = inner.unsigned()
    at = inner.pos
    key_usage = single_key_usage(inner.bit_string(), at)
    cell_usage = CELL_MANAGEMENT
    if inner.present(asn1.INTEGER):
        at = inner.pos
        cell_usage = inner.unsigned()
        if cell_usage == CELL_MANAGEMENT:
            raise Asn1Error(at, "cellUsage management is the DEFAULT and must be absent (DER)")
    inner.expect_end("TrustAnchorCellIdentifier")
    return CellId(role, key_usage, cell_usage)


def encode_cell_id(cell, tag=asn1.SEQUENCE):
    parts = [asn1.integer(cell.role), key_usage_bit_string(cell.key_usage)]
    if cell.cell_usage != CELL_MANAGEMENT:
        parts.append(asn1.integer(cell.cell_usage))
    return asn1.sequence(parts, tag)


def key_usage_bits(unused, data):
    """The bit numbers set in an X.509 KeyUsage BIT STRING (bit 0 = MSB of byte 0)."""
    bits = []
    for i in range(len(data) * 8 - unused):
        if data[i >> 3] & (0x80 >> (i & 7)):
            bits.append(i)
    return bits


def single_key_usage(bit_string, offset):
    bits = key_usage_bits(bit_string[0], bit_string[1])
    if len(bits) != 1:
        raise Asn1Error(offset, "a trust-anchor cell names exactly one key usage")
    return bits[0]


def key_usage_bit_string(bit):
    """DER named-bit BIT STRING with one bit set: trailing zero bits dropped (X.690 11.2.2)."""
    data = bytearray(bit // 8 + 1)
    data[bit // 8] = 0x80 >> (bit % 8)
    return asn1.bit_string(7 - bit % 8, bytes(data))


class SeqNumberChange:
    """RemotePartySeqNumberChange: a role's new counter floor, and its specialist floors."""

    def __init__(self, role, floor, specialist=None):
        self.role = role
        self.floor = floor
        self.specialist = specialist      # [(usage, seq number)] or None

    def __eq__(self, other):
        return (isinstance(other, SeqNumberChange) and self.role == other.role
                and self.floor == other.floor and self.specialist == other.specialist)


def _read_specialist(reader):
    inner = reader.enter()
    usage = inner.unsigned()
    seq = inner.unsigned()
    inner.expect_end("SpecialistSeqNumber")
    return (usage, seq)


def _encode_specialists(items, tag=asn1.SEQUENCE):
    return asn1.sequence([asn1.sequence([asn1.integer(u), asn1.integer(s)]) for u, s in items],
                         tag)


def _read_seq_number_change(reader):
    inner = reader.enter()
    role = inner.unsigned()
    floor = inner.unsigned()
    specialist = None
    if inner.present(asn1.SEQUENCE):
        specialist = inner.sequence_of(_read_specialist)
    inner.expect_end("RemotePartySeqNumberChange")
    return SeqNumberChange(role, floor, specialist)


def _encode_seq_number_change(change):
    parts = [asn1.integer(change.role), asn1.integer(change.floor)]
    if change.specialist is not None:
        parts.append(_encode_specialists(change.specialist))
    return asn1.sequence(parts)


# -- the command -----------------------------------------------------------------------------

class Control:
    """authorisingRemotePartyControl."""

    def __init__(self, mode, authorising_seq_number, authorising_cell=None,
                 plaintext_key=None, cpv_checks=None, new_floor=None,
                 new_specialist_floors=None, other_changes=None):
        self.mode = mode
        self.authorising_seq_number = authorising_seq_number
        self.authorising_cell = authorising_cell
        self.plaintext_key = plaintext_key
        self.cpv_checks = cpv_checks
        self.new_floor = new_floor
        self.new_specialist_floors = new_specialist_floors
        self.other_changes = other_changes


class Replacement:
    def __init__(self, certificate, target):
        self.certificate = certificate        # DER bytes
        self.target = target                  # CellId


class UpdateCommand:
    def __init__(self, control, replacements, path, execution_date_time=None):
        self.control = control
        self.replacements = replacements
        self.path = path                      # [DER certificate]
        self.execution_date_time = execution_date_time


def parse_command(payload):
    top = Reader(payload)
    body = top.enter()
    control = _read_control(body)
    replacements = body.sequence_of(_read_replacement)
    path = body.sequence_of(_read_certificate_bytes)
    execution = None
    if body.present(asn1.GENERALIZED_TIME):
        execution = body.generalized_time()
    body.expect_end("UpdateSecurityCredentials")
    top.expect_end("payload")
    return UpdateCommand(control, replacements, path, execution)


def _read_control(reader):
    inner = reader.enter()
    mode = inner.unsigned()
    plaintext_key = inner.octet_string(_CONTROL_PLAINTEXT_KEY) if inner.present(
        _CONTROL_PLAINTEXT_KEY) else None
    cpv = inner.unsigned(_CONTROL_CPV_CHECKS) if inner.present(_CONTROL_CPV_CHECKS) else None
    cell = read_cell_id(inner, _CONTROL_AUTHORISING_CELL) if inner.present(
        _CONTROL_AUTHORISING_CELL) else None
    seq = inner.unsigned(_CONTROL_SEQ_NUMBER)
    floor = inner.unsigned(_CONTROL_FLOOR) if inner.present(_CONTROL_FLOOR) else None
    specialist = inner.sequence_of(_read_specialist, _CONTROL_SPECIALIST_FLOORS) if \
        inner.present(_CONTROL_SPECIALIST_FLOORS) else None
    others = inner.sequence_of(_read_seq_number_change, _CONTROL_OTHER_CHANGES) if \
        inner.present(_CONTROL_OTHER_CHANGES) else None
    inner.expect_end("authorisingRemotePartyControl")
    return Control(mode, seq, cell, plaintext_key, cpv, floor, specialist, others)


def _read_replacement(reader):
    inner = reader.enter()
    certificate = _read_certificate_bytes(inner)
    target = read_cell_id(inner)
    inner.expect_end("TrustAnchorReplacement")
    return Replacement(certificate, target)


def _read_certificate_bytes(reader):
    if not reader.present(asn1.SEQUENCE):
        raise Asn1Error(reader.pos, "certificate (SEQUENCE) expected")
    return reader.raw(asn1.SEQUENCE)


def encode_command(command):
    control = command.control
    parts = [asn1.integer(control.mode)]
    if control.plaintext_key is not None:
        parts.append(asn1.octet_string(control.plaintext_key, _CONTROL_PLAINTEXT_KEY))
    if control.cpv_checks is not None:
        parts.append(asn1.integer(control.cpv_checks, _CONTROL_CPV_CHECKS))
    if control.authorising_cell is not None:
        parts.append(encode_cell_id(control.authorising_cell, _CONTROL_AUTHORISING_CELL))
    parts.append(asn1.integer(control.authorising_seq_number, _CONTROL_SEQ_NUMBER))
    if control.new_floor is not None:
        parts.append(asn1.integer(control.new_floor, _CONTROL_FLOOR))
    if control.new_specialist_floors is not None:
        parts.append(_encode_specialists(control.new_specialist_floors,
                                         _CONTROL_SPECIALIST_FLOORS))
    if control.other_changes is not None:
        parts.append(asn1.sequence([_encode_seq_number_change(c) for c in control.other_changes],
                                   _CONTROL_OTHER_CHANGES))
    body = [asn1.sequence(parts),
            asn1.sequence([asn1.sequence([r.certificate, encode_cell_id(r.target)])
                           for r in command.replacements]),
            asn1.sequence(command.path)]
    if command.execution_date_time is not None:
        body.append(asn1.generalized_time(command.execution_date_time))
    return asn1.sequence(body)


# -- response and alert ----------------------------------------------------------------------

class ReplacementOutcome:
    def __init__(self, cell, status, existing_eui, existing_key_id, replacing_eui,
                 replacing_key_id):
        self.cell = cell
        self.status = status
        self.existing_eui = existing_eui
        self.existing_key_id = existing_key_id
        self.replacing_eui = replacing_eui
        self.replacing_key_id = replacing_key_id


class ExecutionOutcome:
    def __init__(self, authorising_seq_number, mode, seq_number_changes, outcomes):
        self.authorising_seq_number = authorising_seq_number
        self.mode = mode
        self.seq_number_changes = seq_number_changes
        self.outcomes = outcomes


def _read_outcome(reader):
    inner = reader.enter()
    cell = read_cell_id(inner)
    status = inner.enumerated()
    fields = [inner.octet_string() for _ in range(4)]
    inner.expect_end("ReplacementOutcome")
    return ReplacementOutcome(cell, status, fields[0], fields[1], fields[2], fields[3])


def _read_execution_outcome(reader):
    inner = reader.enter()
    seq = inner.unsigned()
    mode = inner.unsigned()
    changes = inner.sequence_of(_read_seq_number_change)
    outcomes = inner.sequence_of(_read_outcome)
    inner.expect_end("ExecutionOutcome")
    return ExecutionOutcome(seq, mode, changes, outcomes)


def _encode_execution_outcome(outcome):
    return asn1.sequence([
        asn1.integer(outcome.authorising_seq_number),
        asn1.integer(outcome.mode),
        asn1.sequence([_encode_seq_number_change(c) for c in outcome.seq_number_changes]),
        asn1.sequence([asn1.sequence([
            encode_cell_id(o.cell), asn1.enumerated(o.status),
            asn1.octet_string(o.existing_eui), asn1.octet_string(o.existing_key_id),
            asn1.octet_string(o.replacing_eui), asn1.octet_string(o.replacing_key_id)])
            for o in outcome.outcomes]),
    ])


def parse_response(payload):
    """The ExecutionOutcome, or None when the command was only accepted (future-dated)."""
    top = Reader(payload)
    body = top.enter()
    body.null()
    outcome = _read_execution_outcome(body) if body.present(asn1.SEQUENCE) else None
    body.expect_end("UpdateSecurityCredentials response")
    top.expect_end("payload")
    return outcome


def encode_response(outcome=None):
    parts = [asn1.null()]
    if outcome is not None:
        parts.append(_encode_execution_outcome(outcome))
    return asn1.sequence(parts)


def parse_alert(payload):
    """(alert code, execution date-time, ExecutionOutcome) of a future-dated CS02b alert."""
    top = Reader(payload)
    body = top.enter()
    alert_code = body.unsigned()
    when = body.generalized_time()
    outcome = _read_execution_outcome(body)
    body.expect_end("UpdateSecurityCredentials alert")
    top.expect_end("payload")
    return alert_code, when, outcome


def encode_alert(alert_code, execution_date_time, outcome):
    return asn1.sequence([asn1.integer(alert_code), asn1.generalized_time(execution_date_time),
                          _encode_execution_outcome(outcome)])


# -- X.509: what the device takes from a certificate ------------------------------------------

_OID_OU = b"\x55\x04\x0b"
_OID_UNIQUE_IDENTIFIER = b"\x55\x04\x2d"
_OID_EC_PUBLIC_KEY = b"\x2a\x86\x48\xce\x3d\x02\x01"
_OID_KEY_USAGE = b"\x55\x1d\x0f"
_OID_SUBJECT_KEY_ID = b"\x55\x1d\x0e"
_OID_AUTHORITY_KEY_ID = b"\x55\x1d\x23"
_OID_BASIC_CONSTRAINTS = b"\x55\x1d\x13"
_OID_SUBJECT_ALT_NAME = b"\x55\x1d\x11"
_OID_HARDWARE_MODULE_NAME = b"\x2b\x06\x01\x05\x05\x07\x08\x04"


class Certificate:
    """The fields of an X.509 certificate that trust-anchor handling needs (RFC 5280 4.1)."""

    def __init__(self):
        self.der = b""
        self.tbs = b""               # what the issuer signed
        self.signature = b""         # r||s, 64 bytes
        self.subject_eui = None      # x500UniqueIdentifier or hardwareModuleName EUI-64
        self.subject_role = None     # OU=<role> of an organisation certificate
        self.public_key = None       # x||y, 64 bytes (P-256)
        self.key_usage = []          # KeyUsage bit numbers
        self.subject_key_id = None
        self.authority_key_id = None
        self.is_ca = False


def parse_certificate(der):
    cert = Certificate()
    cert.der = bytes(der)
    top = Reader(cert.der)
    outer = top.enter()
    tbs_at = outer.pos
    tbs = outer.enter()
    cert.tbs = cert.der[tbs_at:outer.pos]
    outer.enter()                                    # signatureAlgorithm
    at = outer.pos
    cert.signature = _ecdsa_signature(outer.bit_string(), at)
    outer.expect_end("Certificate")
    top.expect_end("certificate")
    _read_tbs(tbs, cert)
    return cert


def _read_tbs(tbs, cert):
    if tbs.present(asn1.context(0, True)):
        tbs.enter(asn1.context(0, True))              # version
    tbs.value(asn1.INTEGER)                            # serialNumber
    tbs.enter()                                        # signature algorithm
    tbs.enter()                                        # issuer
    tbs.enter()                                        # validity
    _read_subject(tbs.enter(), cert)
    _read_public_key(tbs.enter(), cert)
    while tbs.present(asn1.context(1)) or tbs.present(asn1.context(2)):
        tbs.read_tlv()                                 # issuer/subject unique ids
    if tbs.present(asn1.context(3, True)):
        extensions = tbs.enter(asn1.context(3, True)).enter()
        while not extensions.at_end():
            _read_extension(extensions.enter(), cert)
    tbs.expect_end("TBSCertificate")


def _read_subject(name, cert):
    while not name.at_end():
        rdn = name.enter(asn1.SET)
        while not rdn.at_end():
            attribute = rdn.enter()
            oid = attribute.value(asn1.OBJECT_IDENTIFIER)
            at = attribute.pos
            if oid == _OID_UNIQUE_IDENTIFIER:
                unused, eui = attribute.bit_string()
                if unused or len(eui) != 8:
                    raise Asn1Error(at, "x500UniqueIdentifier must hold an EUI-64")
                cert.subject_eui = eui
            elif oid == _OID_OU:
                text = attribute.value(attribute.peek_tag())
                if len(text) != 2 or not (0x30 <= text[0] <= 0x39 and 0x30 <= text[1] <= 0x39):
                    raise Asn1Error(at, "OU must be a two-digit remote-party role")
                cert.subject_role = (text[0] - 0x30) * 10 + text[1] - 0x30
            else:
                attribute.read_tlv()
            attribute.expect_end("AttributeTypeAndValue")


def _read_public_key(info, cert):
    algorithm = info.enter()
    at = algorithm.pos
    if algorithm.value(asn1.OBJECT_IDENTIFIER) != _OID_EC_PUBLIC_KEY:
        raise Asn1Error(at, "not an elliptic-curve public key")
    at = info.pos
    unused, point = info.bit_string()
    if unused or len(point) != 65 or point[0] != 0x04:
        raise Asn1Error(at, "public key must be an uncompressed P-256 point")
    cert.public_key = point[1:]
    info.expect_end("SubjectPublicKeyInfo")


def _read_extension(extension, cert):
    oid = extension.value(asn1.OBJECT_IDENTIFIER)
    if extension.present(0x01):
        extension.read_tlv(0x01)                       # critical BOOLEAN
    at = extension.pos
    value = extension.octet_string()
    extension.expect_end("Extension")
    inner = Reader(value)
    try:
        if oid == _OID_KEY_USAGE:
            unused, data = inner.bit_string()
            cert.key_usage = key_usage_bits(unused, data)
        elif oid == _OID_SUBJECT_KEY_ID:
            cert.subject_key_id = inner.octet_string()
        elif oid == _OID_AUTHORITY_KEY_ID:
            aki = inner.enter()
            if aki.present(asn1.context(0)):
                cert.authority_key_id = aki.value(asn1.context(0))
            return
        elif oid == _OID_BASIC_CONSTRAINTS:
            constraints = inner.enter()
            if constraints.present(0x01):
                cert.is_ca = constraints.value(0x01) == b"\xff"
            return
        elif oid == _OID_SUBJECT_ALT_NAME:
            _read_hardware_module_name(inner, cert)
        else:
            return
        inner.expect_end("extension value")
    except Asn1Error as exc:
        raise Asn1Error(at + exc.offset, exc.reason)


def _read_hardware_module_name(reader, cert):
    names = reader.enter()
    while not names.at_end():
        if not names.present(asn1.context(0, True)):
            names.read_tlv()
            continue
        other = names.enter(asn1.context(0, True))
        if other.value(asn1.OBJECT_IDENTIFIER) == _OID_HARDWARE_MODULE_NAME:
            module = other.enter(asn1.context(0, True)).enter()
            module.value(asn1.OBJECT_IDENTIFIER)
            serial = module.octet_string()
            if len(serial) == 8:
                cert.subject_eui = serial
        else:
            other.read_tlv()


def _ecdsa_signature(bit_string, offset):
    """ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 5480) -> r||s."""
    unused, der = bit_string
    if unused:
        raise Asn1Error(offset, "signature BIT STRING has unused bits")
    try:
        sig = Reader(der).enter()
        r = sig.value(asn1.INTEGER)
        s = sig.value(asn1.INTEGER)
        sig.expect_end("ECDSA-Sig-Value")
    except Asn1Error as exc:
        raise Asn1Error(offset + exc.offset, exc.reason)
    return _fixed32(r, offset) + _fixed32(s, offset)


def _fixed32(value, offset):
    while len(value) > 32 and value[0] == 0:
        value = value[1:]
    if len(value) > 32:
        raise Asn1Error(offset, "signature integer longer than 32 bytes")
    return b"\x00" * (32 - len(value)) + value
