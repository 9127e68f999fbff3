"""ACSE PDUs (AARQ, AARE, RLRQ, RLRE) in BER, and the xDLMS Initiate PDUs they carry.

BER per ISO/IEC 8825-1 as profiled by DLMS UA 1000-2 Green Book 9.4 (COSEM-ACSE
services, "AARQ/AARE/RLRQ/RLRE encoding", ISO/IEC 8650-1 ASN.1 with the DLMS subset).
The user-information field is an OCTET STRING that holds an A-XDR encoded xDLMS
InitiateRequest / InitiateResponse / ConfirmedServiceError (Green Book 9.5).

API
---
PDU classes (fields named as in the ASN.1, '-' -> '_'; absent optional fields are None):

- ``Aarq(application_context_name, called_ap_title=None, called_ae_qualifier=None,
  calling_ap_title=None, calling_ae_qualifier=None, sender_acse_requirements=None,
  mechanism_name=None, calling_authentication_value=None, user_information=None,
  protocol_version=None)``
- ``Aare(application_context_name, result, result_source_diagnostic, diagnostic_source=
  ACSE_SERVICE_USER, responding_ap_title=None, responder_acse_requirements=None,
  mechanism_name=None, responding_authentication_value=None, user_information=None,
  protocol_version=None)``
- ``Rlrq(reason=None, user_information=None)``, ``Rlre(reason=None, user_information=None)``

Field types: OBJECT IDENTIFIERs (application-context-name, mechanism-name) are the BER
content bytes (constants below); AP titles, AE qualifiers (octet-string form) and
authentication values (GraphicString, charstring [0]) are ``bytes``;
``sender_acse_requirements`` / ``responder_acse_requirements`` are ``True`` (the
authentication functional unit, bit 0) / ``False`` / ``None`` (absent);
``protocol_version`` is None (absent, default version1) or the first content byte
pair as an int (0x0780 = version1 with 7 unused bits); ``user_information`` is the raw
content of the association-information OCTET STRING.

Each has ``encode() -> bytes``, ``==`` and ``fields()``. ``decode_acse(buf)`` dispatches
on the tag (60/61/62/63); unknown context tags inside an AARQ/AARE/RLRQ/RLRE are
skipped, lengths are bounded by the buffer and ``MAX_LENGTH``; everything malformed
raises ``AcseError(offset, reason)``.

xDLMS inside user-information (A-XDR):
- ``InitiateRequest(dedicated_key=None, response_allowed=True,
  proposed_quality_of_service=None, proposed_dlms_version_number=6,
  proposed_conformance=0, client_max_receive_pdu_size=0xFFFF)``
- ``InitiateResponse(negotiated_quality_of_service=None, negotiated_dlms_version_number=6,
  negotiated_conformance=0, server_max_receive_pdu_size=0xFFFF, vaa_name=VAA_NAME_LN)``
- ``ConfirmedServiceError(confirmed_service, service_error, value)``, e.g.
  ``ConfirmedServiceError(INITIATE_ERROR, SERVICE_ERROR_INITIATE, INITIATE_DLMS_VERSION_TOO_LOW)``
- ``decode_user_information(buf)`` -> one of the three (AcseError on anything else).

Conformance is a 24-bit int; ``CONFORMANCE_*`` constants are the bit masks (bit 0 is
the MSB of the first byte, so bit n has mask ``1 << (23 - n)``); ``conformance_bit(n)``,
``CONFORMANCE_NAMES[n]`` and ``conformance_names(value) -> [name, ...]``.
"""

from firmware.dlms.record import Record
from firmware.dlms import axdr

# --- PDU tags (Green Book 9.4: [APPLICATION n] IMPLICIT SEQUENCE, constructed)
AARQ_TAG = 0x60
AARE_TAG = 0x61
RLRQ_TAG = 0x62
RLRE_TAG = 0x63

MAX_LENGTH = 0xFFFF  # no ACSE PDU of a meter comes near this

# --- application-context-name: joint-iso-ccitt(2) country(16) country-name(756)
# identified-organization(5) DLMS-UA(8) application-context(1) context_id
LN_NO_CIPHERING = b"\x60\x85\x74\x05\x08\x01\x01"
SN_NO_CIPHERING = b"\x60\x85\x74\x05\x08\x01\x02"
LN_WITH_CIPHERING = b"\x60\x85\x74\x05\x08\x01\x03"
SN_WITH_CIPHERING = b"\x60\x85\x74\x05\x08\x01\x04"

# --- mechanism-name: ... DLMS-UA(8) authentication-mechanism-name(2) mechanism_id
MECHANISM_LOWEST = b"\x60\x85\x74\x05\x08\x02\x00"
MECHANISM_LOW = b"\x60\x85\x74\x05\x08\x02\x01"
MECHANISM_HIGH = b"\x60\x85\x74\x05\x08\x02\x02"
MECHANISM_HIGH_MD5 = b"\x60\x85\x74\x05\x08\x02\x03"
MECHANISM_HIGH_SHA1 = b"\x60\x85\x74\x05\x08\x02\x04"
MECHANISM_HIGH_GMAC = b"\x60\x85\x74\x05\x08\x02\x05"
MECHANISM_HIGH_SHA256 = b"\x60\x85\x74\x05\x08\x02\x06"
MECHANISM_HIGH_ECDSA = b"\x60\x85\x74\x05\x08\x02\x07"

# --- AARE result (Associate-result)
RESULT_ACCEPTED = 0
RESULT_REJECTED_PERMANENT = 1
RESULT_REJECTED_TRANSIENT = 2

# result-source-diagnostic CHOICE
ACSE_SERVICE_USER = 1
ACSE_SERVICE_PROVIDER = 2

# acse-service-user diagnostics
DIAG_NULL = 0
DIAG_NO_REASON_GIVEN = 1
DIAG_APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2
DIAG_CALLING_AP_TITLE_NOT_RECOGNIZED = 3
DIAG_CALLING_AP_INVOCATION_ID_NOT_RECOGNIZED = 4
DIAG_CALLING_AE_QUALIFIER_NOT_RECOGNIZED = 5
DIAG_CALLING_AE_INVOCATION_ID_NOT_RECOGNIZED = 6
DIAG_CALLED_AP_TITLE_NOT_RECOGNIZED = 7
DIAG_CALLED_AP_INVOCATION_ID_NOT_RECOGNIZED = 8
DIAG_CALLED_AE_QUALIFIER_NOT_RECOGNIZED = 9
DIAG_CALLED_AE_INVOCATION_ID_NOT_RECOGNIZED = 10
DIAG_AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED = 11
DIAG_AUTHENTICATION_MECHANISM_NAME_REQUIRED = 12
DIAG_AUTHENTICATION_FAILURE = 13
DIAG_AUTHENTICATION_REQUIRED = 14

# RLRQ / RLRE reason
RELEASE_REQUEST_NORMAL = 0
RELEASE_REQUEST_URGENT = 1
RELEASE_REQUEST_USER_DEFINED = 30
RELEASE_RESPONSE_NORMAL = 0
RELEASE_RESPONSE_NOT_FINISHED = 1
RELEASE_RESPONSE_USER_DEFINED = 30

# --- xDLMS (A-XDR) PDU tags inside user-information (Green Book 9.5)
INITIATE_REQUEST = 0x01
INITIATE_RESPONSE = 0x08
CONFIRMED_SERVICE_ERROR = 0x0E

DLMS_VERSION = 6
VAA_NAME_LN = 0x0007
VAA_NAME_SN = 0xFA00

# ConfirmedServiceError ::= CHOICE { initiateError [1] ServiceError, getStatus [2], ...}
INITIATE_ERROR = 1
# ServiceError ::= CHOICE { ..., initiate [6] IMPLICIT ENUMERATED {...}, ... }
SERVICE_ERROR_APPLICATION_REFERENCE = 0
SERVICE_ERROR_HARDWARE_RESOURCE = 1
SERVICE_ERROR_VDE_STATE_ERROR = 2
SERVICE_ERROR_SERVICE = 3
SERVICE_ERROR_DEFINITION = 4
SERVICE_ERROR_ACCESS = 5
SERVICE_ERROR_INITIATE = 6
SERVICE_ERROR_LOAD_DATA_SET = 7
SERVICE_ERROR_TASK = 9
SERVICE_ERROR_OTHER = 10
INITIATE_OTHER = 0
INITIATE_DLMS_VERSION_TOO_LOW = 1
INITIATE_INCOMPATIBLE_CONFORMANCE = 2
INITIATE_PDU_SIZE_TOO_SHORT = 3
INITIATE_REFUSED_BY_THE_VDE_HANDLER = 4

# --- Conformance block (Green Book 9.5, "Conformance ::= [APPLICATION 31] IMPLICIT
# BIT STRING (SIZE(24))"); bit n is mask 1 << (23 - n).


def conformance_bit(n):
    if not 0 <= n <= 23:
        raise ValueError("conformance bit 0..23")
    return 1 << (23 - n)


CONFORMANCE_RESERVED_ZERO = 0x800000                      # bit 0
CONFORMANCE_GENERAL_PROTECTION = 0x400000                 # bit 1
CONFORMANCE_GENERAL_BLOCK_TRANSFER = 0x200000             # bit 2
CONFORMANCE_READ = 0x100000                               # bit 3
CONFORMANCE_WRITE = 0x080000                              # bit 4
CONFORMANCE_UNCONFIRMED_WRITE = 0x040000                  # bit 5
CONFORMANCE_DELTA_VALUE_ENCODING = 0x020000               # bit 6
CONFORMANCE_RESERVED_SEVEN = 0x010000                     # bit 7
CONFORMANCE_ATTRIBUTE0_SUPPORTED_WITH_SET = 0x008000      # bit 8
CONFORMANCE_PRIORITY_MGMT_SUPPORTED = 0x004000            # bit 9
CONFORMANCE_ATTRIBUTE0_SUPPORTED_WITH_GET = 0x002000      # bit 10
CONFORMANCE_BLOCK_TRANSFER_WITH_GET_OR_READ = 0x001000    # bit 11
CONFORMANCE_BLOCK_TRANSFER_WITH_SET_OR_WRITE = 0x000800   # bit 12
CONFORMANCE_BLOCK_TRANSFER_WITH_ACTION = 0x000400         # bit 13
CONFORMANCE_MULTIPLE_REFERENCES = 0x000200                # bit 14
CONFORMANCE_INFORMATION_REPORT = 0x000100                 # bit 15
CONFORMANCE_DATA_NOTIFICATION = 0x000080                  # bit 16
CONFORMANCE_ACCESS = 0x000040                             # bit 17
CONFORMANCE_PARAMETERIZED_ACCESS = 0x000020               # bit 18
CONFORMANCE_GET = 0x000010                                # bit 19
CONFORMANCE_SET = 0x000008                                # bit 20
CONFORMANCE_SELECTIVE_ACCESS = 0x000004                   # bit 21
CONFORMANCE_EVENT_NOTIFICATION = 0x000002                 # bit 22
CONFORMANCE_ACTION = 0x000001                             # bit 23

# Green Book names by bit position (bit 6 was reserved-six before Ed. 9)
CONFORMANCE_NAMES = (
    "reserved-zero", "general-protection", "general-block-transfer", "read", "write",
    "unconfirmed-write", "delta-value-encoding", "reserved-seven",
    "attribute0-supported-with-set", "priority-mgmt-supported",
    "attribute0-supported-with-get", "block-transfer-with-get-or-read",
    "block-transfer-with-set-or-write", "block-transfer-with-action", "multiple-references",
    "information-report", "data-notification", "access", "parameterized-access", "get",
    "set", "selective-access", "event-notification", "action",
)


def conformance_names(conformance):
    """The names of the bits set in a 24-bit conformance block, in bit order."""
    names = []
    for n in range(24):
        if conformance & (1 << (23 - n)):
            names.append(CONFORMANCE_NAMES[n])
    return names


class AcseError(Exception):
    """A malformed ACSE PDU or xDLMS Initiate PDU: ``offset`` and ``reason``."""

    def __init__(self, offset, reason):
        super().__init__(offset, reason)
        self.offset = offset
        self.reason = reason

    def __str__(self):
        return "acse: offset %d: %s" % (self.offset, self.reason)


# --- BER primitives (ISO/IEC 8825-1 8.1: identifier, definite length, contents)

def ber_length(n):
    if n < 0 or n > MAX_LENGTH:
        raise ValueError("BER length out of range")
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    return bytes((0x82, n >> 8, n & 0xFF))


def ber_tlv(tag, content):
    return bytes((tag,)) + ber_length(len(content)) + bytes(content)


def _read_tag(buf, pos, end):
    """Identifier octets -> (tag_bytes, next). High tag numbers (x1F) span bytes."""
    if pos >= end:
        raise AcseError(pos, "truncated: missing tag")
    start = pos
    first = buf[pos]
    pos += 1
    if first & 0x1F == 0x1F:
        while True:
            if pos >= end:
                raise AcseError(pos, "truncated high tag number")
            if pos - start > 4:
                raise AcseError(start, "tag number too long")
            b = buf[pos]
            pos += 1
            if not b & 0x80:
                break
    return bytes(buf[start:pos]), pos


def _read_length(buf, pos, end):
    if pos >= end:
        raise AcseError(pos, "truncated: missing length")
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    if first == 0x80:
        raise AcseError(pos, "indefinite length not allowed")
    count = first & 0x7F
    if count > 2:
        raise AcseError(pos, "length of %d octets exceeds the bound" % count)
    if pos + 1 + count > end:
        raise AcseError(pos, "truncated length")
    n = 0
    for i in range(count):
        n = (n << 8) | buf[pos + 1 + i]
    return n, pos + 1 + count


def read_tlv(buf, pos, end):
    """One TLV -> (tag_bytes, content_start, content_end); bounded by ``end``."""
    tag, p = _read_tag(buf, pos, end)
    n, p = _read_length(buf, p, end)
    if p + n > end:
        raise AcseError(p, "length %d exceeds the %d bytes left" % (n, end - p))
    return tag, p, p + n


def _tlvs(buf, start, end):
    """The TLVs of a constructed content: list of (tag_bytes, at, c0, c1)."""
    out = []
    pos = start
    while pos < end:
        tag, c0, c1 = read_tlv(buf, pos, end)
        out.append((tag, pos, c0, c1))
        pos = c1
    return out


def _single(buf, c0, c1, want_tag, what):
    """Contents of exactly one inner TLV with tag ``want_tag`` filling [c0, c1)."""
    tag, i0, i1 = read_tlv(buf, c0, c1)
    if tag != bytes((want_tag,)):
        raise AcseError(c0, "%s: expected tag 0x%02x, got 0x%s"
                        % (what, want_tag, _hex(tag)))
    if i1 != c1:
        raise AcseError(i1, "%s: %d bytes after the value" % (what, c1 - i1))
    return bytes(buf[i0:i1])


def _hex(b):
    s = ""
    for x in b:
        s += "%02x" % x
    return s


def _ber_uint(content, at, what):
    # INTEGER contents (two's complement); the ACSE integers used here are small, >= 0
    if len(content) == 0 or len(content) > 4:
        raise AcseError(at, "%s: INTEGER of %d bytes" % (what, len(content)))
    if content[0] & 0x80:
        raise AcseError(at, "%s: negative INTEGER" % what)
    n = 0
    for b in content:
        n = (n << 8) | b
    return n


def _enc_uint(n, what):
    if not isinstance(n, int) or n < 0 or n > 0x7FFFFFFF:
        raise ValueError("%s out of range" % what)
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes(4, "big")
    i = 0
    while i < 3 and body[i] == 0 and body[i + 1] < 0x80:
        i += 1
    return body[i:]


def _acse_requirements(content, at, what):
    # ACSE-requirements ::= BIT STRING { authentication(0) }: first octet = unused bits
    if len(content) < 1 or content[0] > 7 or (len(content) == 1 and content[0] != 0):
        raise AcseError(at, "%s: bad BIT STRING" % what)
    return len(content) > 1 and bool(content[1] & 0x80)


def _enc_requirements(flag):
    return b"\x07\x80" if flag else b"\x07\x00"


def _protocol_version(content, at):
    if len(content) != 2:
        raise AcseError(at, "protocol-version: want 2 content bytes, got %d" % len(content))
    return (content[0] << 8) | content[1]


def _check_bytes(v, what):
    if not isinstance(v, (bytes, bytearray)):
        raise ValueError("%s must be bytes" % what)
    if len(v) > MAX_LENGTH - 8:
        raise ValueError("%s too long" % what)
    return bytes(v)


def _outer(buf, want_tag, name):
    if not isinstance(buf, (bytes, bytearray)):
        buf = bytes(buf)
    tag, c0, c1 = read_tlv(buf, 0, len(buf))
    if tag != bytes((want_tag,)):
        raise AcseError(0, "%s: expected tag 0x%02x, got 0x%s" % (name, want_tag, _hex(tag)))
    if c1 != len(buf):
        raise AcseError(c1, "%d trailing bytes after %s" % (len(buf) - c1, name))
    return buf, c0, c1


def _user_information(buf, c0, c1):
    # [30] EXPLICIT Association-information ::= OCTET STRING
    return _single(buf, c0, c1, 0x04, "user-information")


def _enc_user_information(ui):
    return ber_tlv(0xBE, ber_tlv(0x04, _check_bytes(ui, "user-information")))


def _enc_octets_field(tag, v, what):
    return ber_tlv(tag, ber_tlv(0x04, _check_bytes(v, what)))


def _enc_oid_field(tag, oid, what, explicit):
    oid = _check_bytes(oid, what)
    return ber_tlv(tag, ber_tlv(0x06, oid) if explicit else oid)


class Aarq(Record):
    """AARQ-apdu ::= [APPLICATION 0] IMPLICIT SEQUENCE (Green Book 9.4 / ISO 8650-1)."""

    FIELDS = ("protocol_version", "application_context_name", "called_ap_title",
              "called_ae_qualifier", "calling_ap_title", "calling_ae_qualifier",
              "sender_acse_requirements", "mechanism_name", "calling_authentication_value",
              "user_information")

    def __init__(self, application_context_name, called_ap_title=None, called_ae_qualifier=None,
                 calling_ap_title=None, calling_ae_qualifier=None,
                 sender_acse_requirements=None, mechanism_name=None,
                 calling_authentication_value=None, user_information=None,
                 protocol_version=None):
        self.protocol_version = protocol_version
        self.application_context_name = application_context_name
        self.called_ap_title = called_ap_title
        self.called_ae_qualifier = called_ae_qualifier
        self.calling_ap_title = calling_ap_title
        self.calling_ae_qualifier = calling_ae_qualifier
        self.sender_acse_requirements = sender_acse_requirements
        self.mechanism_name = mechanism_name
        self.calling_authentication_value = calling_authentication_value
        self.user_information = user_information

    def encode(self):
        out = bytearray()
        if self.protocol_version is not None:
            _check_pv(self.protocol_version)
            out.extend(ber_tlv(0x80, self.protocol_version.to_bytes(2, "big")))
        if self.application_context_name is None:
            raise ValueError("application-context-name is mandatory")
        out.extend(_enc_oid_field(0xA1, self.application_context_name,
                                  "application-context-name", True))
        if self.called_ap_title is not None:
            out.extend(_enc_octets_field(0xA2, self.called_ap_title, "called-AP-title"))
        if self.called_ae_qualifier is not None:
            out.extend(_enc_octets_field(0xA3, self.called_ae_qualifier, "called-AE-qualifier"))
        if self.calling_ap_title is not None:
            out.extend(_enc_octets_field(0xA6, self.calling_ap_title, "calling-AP-title"))
        if self.calling_ae_qualifier is not None:
            out.extend(_enc_octets_field(0xA7, self.calling_ae_qualifier,
                                         "calling-AE-qualifier"))
        if self.sender_acse_requirements is not None:
            out.extend(ber_tlv(0x8A, _enc_requirements(self.sender_acse_requirements)))
        if self.mechanism_name is not None:
            out.extend(_enc_oid_field(0x8B, self.mechanism_name, "mechanism-name", False))
        if self.calling_authentication_value is not None:
            out.extend(ber_tlv(0xAC, ber_tlv(0x80, _check_bytes(
                self.calling_authentication_value, "calling-authentication-value"))))
        if self.user_information is not None:
            out.extend(_enc_user_information(self.user_information))
        return ber_tlv(AARQ_TAG, out)

    @staticmethod
    def decode(buf):
        buf, c0, c1 = _outer(buf, AARQ_TAG, "AARQ")
        f = {}
        for tag, at, v0, v1 in _tlvs(buf, c0, c1):
            t = tag[0] if len(tag) == 1 else -1
            content = bytes(buf[v0:v1])
            if t == 0x80:
                f["protocol_version"] = _protocol_version(content, at)
            elif t == 0xA1:
                f["application_context_name"] = _single(buf, v0, v1, 0x06,
                                                        "application-context-name")
            elif t == 0xA2:
                f["called_ap_title"] = _single(buf, v0, v1, 0x04, "called-AP-title")
            elif t == 0xA3:
                f["called_ae_qualifier"] = _single(buf, v0, v1, 0x04, "called-AE-qualifier")
            elif t == 0xA6:
                f["calling_ap_title"] = _single(buf, v0, v1, 0x04, "calling-AP-title")
            elif t == 0xA7:
                f["calling_ae_qualifier"] = _single(buf, v0, v1, 0x04, "calling-AE-qualifier")
            elif t == 0x8A:
                f["sender_acse_requirements"] = _acse_requirements(
                    content, at, "sender-acse-requirements")
            elif t == 0x8B:
                f["mechanism_name"] = content
            elif t == 0xAC:
                f["calling_authentication_value"] = _single(
                    buf, v0, v1, 0x80, "calling-authentication-value")
            elif t == 0xBE:
                f["user_information"] = _user_information(buf, v0, v1)
            # any other tag (AP/AE invocation ids, implementation-information, ...) is skipped
        if "application_context_name" not in f:
            raise AcseError(c0, "AARQ without application-context-name")
        return _build(Aarq, f)


def _check_pv(pv):
    if not isinstance(pv, int) or pv < 0 or pv > 0xFFFF:
        raise ValueError("protocol-version must be a 16-bit int")


def _build(cls, f):
    return cls(**f)


class Aare(Record):
    """AARE-apdu ::= [APPLICATION 1] IMPLICIT SEQUENCE (Green Book 9.4 / ISO 8650-1)."""

    FIELDS = ("protocol_version", "application_context_name", "result", "diagnostic_source",
              "result_source_diagnostic", "responding_ap_title", "responder_acse_requirements",
              "mechanism_name", "responding_authentication_value", "user_information")

    def __init__(self, application_context_name, result, result_source_diagnostic,
                 diagnostic_source=ACSE_SERVICE_USER, responding_ap_title=None,
                 responder_acse_requirements=None, mechanism_name=None,
                 responding_authentication_value=None, user_information=None,
                 protocol_version=None):
        self.protocol_version = protocol_version
        self.application_context_name = application_context_name
        self.result = result
        self.diagnostic_source = diagnostic_source
        self.result_source_diagnostic = result_source_diagnostic
        self.responding_ap_title = responding_ap_title
        self.responder_acse_requirements = responder_acse_requirements
        self.mechanism_name = mechanism_name
        self.responding_authentication_value = responding_authentication_value
        self.user_information = user_information

    def encode(self):
        out = bytearray()
        if self.protocol_version is not None:
            _check_pv(self.protocol_version)
            out.extend(ber_tlv(0x80, self.protocol_version.to_bytes(2, "big")))
        out.extend(_enc_oid_field(0xA1, self.application_context_name,
                                  "application-context-name", True))
        # result [2] Associate-result (INTEGER)
        out.extend(ber_tlv(0xA2, ber_tlv(0x02, _enc_uint(self.result, "result"))))
        if self.diagnostic_source not in (ACSE_SERVICE_USER, ACSE_SERVICE_PROVIDER):
            raise ValueError("diagnostic-source must be 1 (user) or 2 (provider)")
        # result-source-diagnostic [3] CHOICE { acse-service-user [1], acse-service-provider [2] }
        diag = ber_tlv(0x02, _enc_uint(self.result_source_diagnostic,
                                       "result-source-diagnostic"))
        out.extend(ber_tlv(0xA3, ber_tlv(0xA0 | self.diagnostic_source, diag)))
        if self.responding_ap_title is not None:
            out.extend(_enc_octets_field(0xA4, self.responding_ap_title, "responding-AP-title"))
        if self.responder_acse_requirements is not None:
            out.extend(ber_tlv(0x88, _enc_requirements(self.responder_acse_requirements)))
        if self.mechanism_name is not None:
            out.extend(_enc_oid_field(0x89, self.mechanism_name, "mechanism-name", False))
        if self.responding_authentication_value is not None:
            out.extend(ber_tlv(0xAA, ber_tlv(0x80, _check_bytes(
                self.responding_authentication_value, "responding-authentication-value"))))
        if self.user_information is not None:
            out.extend(_enc_user_information(self.user_information))
        return ber_tlv(AARE_TAG, out)

    @staticmethod
    def decode(buf):
        buf, c0, c1 = _outer(buf, AARE_TAG, "AARE")
        f = {}
        for tag, at, v0, v1 in _tlvs(buf, c0, c1):
            t = tag[0] if len(tag) == 1 else -1
            content = bytes(buf[v0:v1])
            if t == 0x80:
                f["protocol_version"] = _protocol_version(content, at)
            elif t == 0xA1:
                f["application_context_name"] = _single(buf, v0, v1, 0x06,
                                                        "application-context-name")
            elif t == 0xA2:
                f["result"] = _ber_uint(_single(buf, v0, v1, 0x02, "result"), v0, "result")
            elif t == 0xA3:
                src, d0, d1 = read_tlv(buf, v0, v1)
                if d1 != v1 or src not in (b"\xa1", b"\xa2"):
                    raise AcseError(v0, "result-source-diagnostic: bad CHOICE")
                f["diagnostic_source"] = src[0] & 0x1F
                f["result_source_diagnostic"] = _ber_uint(
                    _single(buf, d0, d1, 0x02, "result-source-diagnostic"), d0,
                    "result-source-diagnostic")
            elif t == 0xA4:
                f["responding_ap_title"] = _single(buf, v0, v1, 0x04, "responding-AP-title")
            elif t == 0x88:
                f["responder_acse_requirements"] = _acse_requirements(
                    content, at, "responder-acse-requirements")
            elif t == 0x89:
                f["mechanism_name"] = content
            elif t == 0xAA:
                f["responding_authentication_value"] = _single(
                    buf, v0, v1, 0x80, "responding-authentication-value")
            elif t == 0xBE:
                f["user_information"] = _user_information(buf, v0, v1)
        for need in ("application_context_name", "result", "result_source_diagnostic"):
            if need not in f:
                raise AcseError(c0, "AARE without %s" % need.replace("_", "-"))
        return _build(Aare, f)


class _Release(Record):
    """RLRQ-apdu / RLRE-apdu: { reason [0] IMPLICIT INTEGER OPTIONAL,
    user-information [30] EXPLICIT Association-information OPTIONAL }"""

    TAG = 0
    FIELDS = ("reason", "user_information")

    def __init__(self, reason=None, user_information=None):
        self.reason = reason
        self.user_information = user_information

    def encode(self):
        out = bytearray()
        if self.reason is not None:
            out.extend(ber_tlv(0x80, _enc_uint(self.reason, "reason")))
        if self.user_information is not None:
            out.extend(_enc_user_information(self.user_information))
        return ber_tlv(self.TAG, out)

    @classmethod
    def decode(cls, buf):
        buf, c0, c1 = _outer(buf, cls.TAG, cls.__name__.upper())
        f = {}
        for tag, at, v0, v1 in _tlvs(buf, c0, c1):
            if tag == b"\x80":
                f["reason"] = _ber_uint(bytes(buf[v0:v1]), v0, "reason")
            elif tag == b"\xbe":
                f["user_information"] = _user_information(buf, v0, v1)
        return _build(cls, f)


class Rlrq(_Release):
    TAG = RLRQ_TAG


class Rlre(_Release):
    TAG = RLRE_TAG


_BY_TAG = {AARQ_TAG: Aarq, AARE_TAG: Aare, RLRQ_TAG: Rlrq, RLRE_TAG: Rlre}


def decode_acse(buf):
    """Decode one ACSE PDU; raises AcseError and nothing else."""
    if not isinstance(buf, (bytes, bytearray)):
        buf = bytes(buf)
    if len(buf) == 0:
        raise AcseError(0, "empty ACSE PDU")
    cls = _BY_TAG.get(buf[0])
    if cls is None:
        raise AcseError(0, "unknown ACSE tag 0x%02x" % buf[0])
    try:
        return cls.decode(buf)
    except AcseError:
        raise
    except (IndexError, ValueError, TypeError):
        raise AcseError(0, "malformed %s" % cls.__name__.upper())


# --- xDLMS Initiate PDUs (A-XDR, Green Book 9.5 "InitiateRequest", "InitiateResponse")

def _enc_conformance(c):
    # [APPLICATION 31] IMPLICIT BIT STRING (SIZE(24)), BER-encoded: 5F 1F 04 00 + 3 bytes
    if not isinstance(c, int) or c < 0 or c > 0xFFFFFF:
        raise ValueError("conformance is a 24-bit int")
    return b"\x5f\x1f\x04\x00" + c.to_bytes(3, "big")


def _dec_conformance(buf, pos):
    if pos + 7 > len(buf):
        raise AcseError(pos, "truncated conformance block")
    if bytes(buf[pos:pos + 4]) != b"\x5f\x1f\x04\x00":
        raise AcseError(pos, "conformance: want 5f 1f 04 00, got %s" % _hex(buf[pos:pos + 4]))
    return (buf[pos + 4] << 16) | (buf[pos + 5] << 8) | buf[pos + 6], pos + 7


def _need(buf, pos, n, what):
    if pos + n > len(buf):
        raise AcseError(pos, "truncated %s" % what)


def _flag(buf, pos, what):
    _need(buf, pos, 1, what)
    v = buf[pos]
    if v > 1:
        raise AcseError(pos, "%s: optional flag must be 0 or 1, got %d" % (what, v))
    return v == 1, pos + 1


def _enc_int8(v, what):
    if not isinstance(v, int) or v < -128 or v > 127:
        raise ValueError("%s out of range" % what)
    return v & 0xFF


def _dec_int8(b):
    return b - 256 if b > 127 else b


def _enc_u16(v, what):
    if not isinstance(v, int) or v < 0 or v > 0xFFFF:
        raise ValueError("%s out of range" % what)
    return bytes((v >> 8, v & 0xFF))


class InitiateRequest(Record):
    FIELDS = ("dedicated_key", "response_allowed", "proposed_quality_of_service",
              "proposed_dlms_version_number", "proposed_conformance",
              "client_max_receive_pdu_size")

    def __init__(self, dedicated_key=None, response_allowed=True,
                 proposed_quality_of_service=None, proposed_dlms_version_number=DLMS_VERSION,
                 proposed_conformance=0, client_max_receive_pdu_size=0xFFFF):
        self.dedicated_key = dedicated_key
        self.response_allowed = response_allowed
        self.proposed_quality_of_service = proposed_quality_of_service
        self.proposed_dlms_version_number = proposed_dlms_version_number
        self.proposed_conformance = proposed_conformance
        self.client_max_receive_pdu_size = client_max_receive_pdu_size

    def encode(self):
        out = bytearray((INITIATE_REQUEST,))
        if self.dedicated_key is None:
            out.append(0)
        else:
            key = _check_bytes(self.dedicated_key, "dedicated-key")
            out.append(1)
            out.extend(axdr.encode_length(len(key)))
            out.extend(key)
        # response-allowed BOOLEAN DEFAULT TRUE: A-XDR sends 00 for the default
        if self.response_allowed:
            out.append(0)
        else:
            out.extend(b"\x01\x00")
        if self.proposed_quality_of_service is None:
            out.append(0)
        else:
            out.append(1)
            out.append(_enc_int8(self.proposed_quality_of_service, "proposed-quality-of-service"))
        if not 0 <= self.proposed_dlms_version_number <= 255:
            raise ValueError("dlms-version-number out of range")
        out.append(self.proposed_dlms_version_number)
        out.extend(_enc_conformance(self.proposed_conformance))
        out.extend(_enc_u16(self.client_max_receive_pdu_size, "client-max-receive-pdu-size"))
        return bytes(out)

    @staticmethod
    def read(buf, pos):
        key = None
        present, pos = _flag(buf, pos, "dedicated-key")
        if present:
            try:
                n, p = axdr.decode_length(buf, pos)
            except axdr.AxdrError as e:
                raise AcseError(e.offset, "dedicated-key length: " + e.reason)
            _need(buf, p, n, "dedicated-key")
            key = bytes(buf[p:p + n])
            pos = p + n
        allowed = True
        present, pos = _flag(buf, pos, "response-allowed")
        if present:
            _need(buf, pos, 1, "response-allowed")
            if buf[pos] > 1:
                raise AcseError(pos, "response-allowed: boolean must be 0 or 1")
            allowed = buf[pos] == 1
            pos += 1
        qos = None
        present, pos = _flag(buf, pos, "proposed-quality-of-service")
        if present:
            _need(buf, pos, 1, "proposed-quality-of-service")
            qos = _dec_int8(buf[pos])
            pos += 1
        _need(buf, pos, 1, "proposed-dlms-version-number")
        version = buf[pos]
        conformance, pos = _dec_conformance(buf, pos + 1)
        _need(buf, pos, 2, "client-max-receive-pdu-size")
        size = (buf[pos] << 8) | buf[pos + 1]
        return InitiateRequest(key, allowed, qos, version, conformance, size), pos + 2


class InitiateResponse(Record):
    FIELDS = ("negotiated_quality_of_service", "negotiated_dlms_version_number",
              "negotiated_conformance", "server_max_receive_pdu_size", "vaa_name")

    def __init__(self, negotiated_quality_of_service=None,
                 negotiated_dlms_version_number=DLMS_VERSION, negotiated_conformance=0,
                 server_max_receive_pdu_size=0xFFFF, vaa_name=VAA_NAME_LN):
        self.negotiated_quality_of_service = negotiated_quality_of_service
        self.negotiated_dlms_version_number = negotiated_dlms_version_number
        self.negotiated_conformance = negotiated_conformance
        self.server_max_receive_pdu_size = server_max_receive_pdu_size
        self.vaa_name = vaa_name

    def encode(self):
        out = bytearray((INITIATE_RESPONSE,))
        if self.negotiated_quality_of_service is None:
            out.append(0)
        else:
            out.append(1)
            out.append(_enc_int8(self.negotiated_quality_of_service,
                                 "negotiated-quality-of-service"))
        if not 0 <= self.negotiated_dlms_version_number <= 255:
            raise ValueError("dlms-version-number out of range")
        out.append(self.negotiated_dlms_version_number)
        out.extend(_enc_conformance(self.negotiated_conformance))
        out.extend(_enc_u16(self.server_max_receive_pdu_size, "server-max-receive-pdu-size"))
        # vaa-name ObjectName ::= Integer16
        if not isinstance(self.vaa_name, int) or not -0x8000 <= self.vaa_name <= 0xFFFF:
            raise ValueError("vaa-name out of range")
        out.extend(_enc_u16(self.vaa_name & 0xFFFF, "vaa-name"))
        return bytes(out)

    @staticmethod
    def read(buf, pos):
        qos = None
        present, pos = _flag(buf, pos, "negotiated-quality-of-service")
        if present:
            _need(buf, pos, 1, "negotiated-quality-of-service")
            qos = _dec_int8(buf[pos])
            pos += 1
        _need(buf, pos, 1, "negotiated-dlms-version-number")
        version = buf[pos]
        conformance, pos = _dec_conformance(buf, pos + 1)
        _need(buf, pos, 4, "server-max-receive-pdu-size and vaa-name")
        size = (buf[pos] << 8) | buf[pos + 1]
        vaa = (buf[pos + 2] << 8) | buf[pos + 3]
        return InitiateResponse(qos, version, conformance, size, vaa), pos + 4


class ConfirmedServiceError(Record):
    """0E <confirmed-service CHOICE> <ServiceError CHOICE> <ENUMERATED value>."""

    FIELDS = ("confirmed_service", "service_error", "value")

    def __init__(self, confirmed_service, service_error, value):
        self.confirmed_service = confirmed_service
        self.service_error = service_error
        self.value = value

    def encode(self):
        for v, what in ((self.confirmed_service, "confirmed-service"),
                        (self.service_error, "service-error"), (self.value, "value")):
            if not isinstance(v, int) or v < 0 or v > 255:
                raise ValueError("%s out of range" % what)
        return bytes((CONFIRMED_SERVICE_ERROR, self.confirmed_service, self.service_error,
                      self.value))

    @staticmethod
    def read(buf, pos):
        _need(buf, pos, 3, "ConfirmedServiceError")
        return ConfirmedServiceError(buf[pos], buf[pos + 1], buf[pos + 2]), pos + 3


_XDLMS = {
    INITIATE_REQUEST: InitiateRequest,
    INITIATE_RESPONSE: InitiateResponse,
    CONFIRMED_SERVICE_ERROR: ConfirmedServiceError,
}


def decode_user_information(buf):
    """The xDLMS PDU inside user-information; AcseError on anything malformed.

    Offsets are relative to the start of ``buf`` (the OCTET STRING content).
    """
    if not isinstance(buf, (bytes, bytearray)):
        buf = bytes(buf)
    if len(buf) == 0:
        raise AcseError(0, "empty user-information")
    cls = _XDLMS.get(buf[0])
    if cls is None:
        raise AcseError(0, "unsupported xDLMS PDU 0x%02x in user-information" % buf[0])
    pdu, end = cls.read(buf, 1)
    if end != len(buf):
        raise AcseError(end, "%d trailing bytes after %s" % (len(buf) - end, cls.__name__))
    return pdu
