"""DUIS-shaped service requests and responses, signed in an XMLDSig shape.

The DCC User Interface Specification (DUIS) carries service requests from a user (a
supplier's head-end) to the DCC as XML in the namespace
`http://www.dccinterface.co.uk/ServiceUserGateway`. The shapes below follow the DUIS XML
schema 5.4 (SmartDCCInnovation/dccboxed-signing-tool, `DUIS Schema V5.4.xsd`) and the DUIS
templates of SmartDCCInnovation/duis-templates; shared/design/DOMAIN.md "DUIS".

    Request  Header { RequestID, CommandVariant, ServiceReference, ServiceReferenceVariant }
             Body   { <one service element, e.g. TopUpDevice { UTRN }> }
             ds:Signature
    Response Header { RequestID?, ResponseID?, ResponseCode, ResponseDateTime }
             Body   { ResponseMessage { ServiceReference, ServiceReferenceVariant,
                                        GBCSPayload | PreCommand { GBCSVersion, GBCSPayload } }
                    | DeviceAlertMessage { AlertCode, GBCSPayload }
                    | DCCAlertMessage { DCCAlertCode, DCCAlert { ... } } }
             ds:Signature

RequestID = `originatorEUI:targetEUI:counter` with hyphenated EUIs (`90-B3-D5-1F-30-01-00-00`),
ResponseID = `target:originator:counter` (XSD RequestIDType/ResponseIDType patterns).

Signature (XMLDSig shape, what is simplified)
---------------------------------------------
Like DUIS: an enveloped signature (Reference URI="", transform enveloped-signature,
digest SHA-256, SignatureMethod ecdsa-sha256, CanonicalizationMethod exc-c14n named),
SignatureValue = raw r||s (XMLDSig 1.1 ECDSA), KeyInfo = X509IssuerSerial of the
organisation certificate, as DCC Boxed signs. The canonical form (`canonical`) is written
here, following Exclusive XML Canonicalization 1.0 (W3C, no InclusiveNamespaces) for what
DUIS documents contain: no XML declaration, comments or processing instructions; start and
end tag for every element; attributes sorted (no-namespace ones first, by name); a
namespace declaration on the first output element that visibly uses the prefix and not
again below it (so the document is declared `xmlns:sr` on its root and SignedInfo
`xmlns:ds` on itself); text escaped &amp; &lt; &gt; &#xD;, attributes &amp; &lt; &quot;
&#x9; &#xA; &#xD;. What is simplified against real XMLDSig: prefixes are rewritten to the
fixed `sr`/`ds` (nsN for any other namespace) instead of kept as written, so a document
re-prefixed by another tool still verifies here and a real verifier may disagree when the
signer used other prefixes; namespaced attributes and xml:* inheritance are not treated
specially; one Reference (the whole document) and the one transform only; no certificate
in KeyInfo, only issuer and serial. The enveloped-signature transform removes the
Signature element and keeps the text around it. tests/emulator/test_duis.py holds the
canonical form to the standard library's W3C C14N 2.0 on generated documents (where
exclusive c14n and C14N 2.0 coincide); interoperability with a full XMLDSig
implementation (DCC Boxed's Java tool, xmlsec) is not tested here.

Parsing is bounded (size, element count, depth; no DOCTYPE/ENTITY at all) and every
failure is a `DuisError` naming what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
import xml.etree.ElementTree as ET

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from emulator.crypto import HostCrypto, public_xy
from emulator.newest import NewestKept
from firmware.gbcs import codes

NS = "http://www.dccinterface.co.uk/ServiceUserGateway"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
SCHEMA_VERSION = "5.4"
GBCS_VERSION = "4.0"

C14N_EXC = "http://www.w3.org/2001/10/xml-exc-c14n#"
SIG_ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
DIGEST_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

MAX_XML_BYTES = 1 << 20        # a CS02b request with three certificates is ~5 KiB
MAX_ELEMENTS = 4096
MAX_DEPTH = 24

ET.register_namespace("sr", NS)
ET.register_namespace("ds", DS_NS)
_PREFIXES = {NS: "sr", DS_NS: "ds"}
_KNOWN_TAGS = {}                 # tag -> (namespace, prefix, name, "<name>", "</name>"); sr/ds/none
_C14N_TEXTS = {}                 # short text -> its escaped form (bounded memo)
_C14N_STARTS = {}                # (tag, declared, attributes) -> canonical start tag
_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_DECLARATION_BYTES = _DECLARATION.encode("ascii")
_MARK = "\x01"                   # where a value goes in a canonical template
_XML_TEXTS = {}

_CRYPTO = HostCrypto()
_NOT_XML_CHARACTER = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_EUI_TEXT = re.compile(r"^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){7}$")
_COUNTER_MAX = (1 << 64) - 1

# Command variants (DUIS 3.x; DOMAIN.md): 1-3 non-critical (WAN, local, both), 4 transform
# to a pre-command, 5-7 signed pre-command (WAN, local, both), 8 non-device request
CV_NON_CRITICAL = (1, 2, 3)
CV_TRANSFORM = 4
CV_SIGNED_PRE_COMMAND = (5, 6, 7)
CV_NON_DEVICE = 8

# Response codes whose meaning is public (DUIS "DCC Systems Response Codes")
I0_SUCCESS = "I0"
I99_ACKNOWLEDGED = "I99"


class DuisError(Exception):
    """A DUIS document that cannot be read or trusted; `reason` says what, `where` names
    the element (or 'xml' for the document itself)."""

    def __init__(self, reason, where="xml"):
        super().__init__("duis: %s: %s" % (where, reason))
        self.reason = reason
        self.where = where


# -- identifiers -------------------------------------------------------------------------
def eui_text(eui: bytes) -> str:
    """`90-B3-D5-1F-30-01-00-00`: the DUIS EUI-64 form (XSD type EUI)."""
    text = _EUI_TEXTS.get(eui)
    if text is None:
        if len(eui) != 8:
            raise ValueError("an EUI-64 is 8 bytes")
        text = eui.hex("-").upper()
        if len(_EUI_TEXTS) < 4096:               # a lab's parties and devices
            _EUI_TEXTS[bytes(eui)] = text
    return text


_EUI_TEXTS = {}


def parse_eui(text: str, where="EUI") -> bytes:
    if not _EUI_TEXT.match(text or ""):
        raise DuisError("not a hyphenated EUI-64: %r" % (text,), where)
    return bytes.fromhex(text.replace("-", ""))


class RequestId:
    """`originator:target:counter` (a ResponseID has the same shape, parties swapped)."""

    def __init__(self, originator: bytes, target: bytes, counter: int):
        if len(originator) != 8 or len(target) != 8:
            raise ValueError("RequestID EUIs are 8 bytes")
        if not 0 <= counter <= _COUNTER_MAX:
            raise ValueError("RequestID counter out of range")
        self.originator = bytes(originator)
        self.target = bytes(target)
        self.counter = counter

    def __str__(self):
        key = (self.originator, self.target, self.counter)
        if getattr(self, "_text", (None,))[0] != key:
            self._text = (key, "%s:%s:%d" % (eui_text(self.originator), eui_text(self.target),
                                             self.counter))
        return self._text[1]

    def __repr__(self):
        return "RequestId(%s)" % self

    def __eq__(self, other):
        return other is self or (isinstance(other, RequestId) and str(self) == str(other))

    def __hash__(self):
        return hash(str(self))

    def swapped(self) -> "RequestId":
        """The ResponseID of a response to this request: target:originator:counter."""
        return RequestId(self.target, self.originator, self.counter)

    @classmethod
    def parse(cls, text, where="RequestID"):
        parts = (text or "").strip().split(":")
        if len(parts) != 3:
            raise DuisError("expected originator:target:counter, got %r" % (text,), where)
        counter = parts[2]
        if not counter.isdigit() or (len(counter) > 1 and counter[0] == "0"):
            raise DuisError("counter is not a decimal number: %r" % counter, where)
        value = int(counter)
        if value > _COUNTER_MAX:
            raise DuisError("counter above 2^64-1", where)
        return cls(parse_eui(parts[0], where), parse_eui(parts[1], where), value)


# -- body parameters ---------------------------------------------------------------------
def _normalise(value):
    """Body parameters as they read back from XML: text, nested dicts, lists of repeats."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if _NOT_XML_CHARACTER.search(value):
            raise ValueError("text %r holds a character XML 1.0 cannot carry" % value)
        return value
    if isinstance(value, dict):
        if not value:
            return ""
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) < 2:
            raise ValueError("a repeated element needs two or more values; use the value itself")
        return [_normalise(v) for v in value]
    raise TypeError("body parameter of type %s: give text, int, bool, dict or list"
                    % type(value).__name__)


def _add_params(parent, params):
    for name, value in params.items():
        for one in (value if isinstance(value, list) else [value]):
            child = ET.SubElement(parent, _q(name))
            if isinstance(one, dict):
                _add_params(child, one)
            elif one:
                child.text = one


# The canonical form of a request or response, written straight from its fields (the
# signing hot path: no tree to build and walk; tests hold it to `_canonical_text(element())`):
# fixed markup with the leaf texts put in, each through `_c14n_value`.
_ROOT_START = '<sr:%%s xmlns:sr="%s" schemaVersion="%s">' % (NS, SCHEMA_VERSION)
_REQUEST_HEAD = (_ROOT_START % "Request" + "<sr:Header><sr:RequestID>%s</sr:RequestID>"
                 "<sr:CommandVariant>%s</sr:CommandVariant>"
                 "<sr:ServiceReference>%s</sr:ServiceReference>"
                 "<sr:ServiceReferenceVariant>%s</sr:ServiceReferenceVariant>"
                 "</sr:Header><sr:Body><sr:%s>")
_REQUEST_END = "</sr:%s></sr:Body></sr:Request>"
_RESPONSE_START = _ROOT_START % "Response" + "<sr:Header>"
_RESPONSE_CODE = ("<sr:ResponseCode>%s</sr:ResponseCode>"
                  "<sr:ResponseDateTime>%s</sr:ResponseDateTime></sr:Header><sr:Body><sr:%s>")
_SERVICE_REFERENCE = ("<sr:ServiceReference>%s</sr:ServiceReference>"
                      "<sr:ServiceReferenceVariant>%s</sr:ServiceReferenceVariant>")
_RESPONSE_END = "</sr:%s></sr:Body></sr:Response>"


def _c14n_value(text):
    """The canonical content of a leaf element holding `text` (what `_text` then `_c14n`
    give): the text escaped, nothing for None or ''."""
    return (_C14N_TEXTS.get(text) or _c14n_text(text)) if text else ""


def _c14n_id(request_id):
    """`_c14n_value(str(request_id))`: a RequestId's text (EUIs, a number) escapes to
    itself."""
    return str(request_id) if type(request_id) is RequestId else _c14n_value(str(request_id))


def _c14n_params(out, params):
    """Canonical form of what `_add_params` builds."""
    for name, value in params.items():
        for one in (value if isinstance(value, list) else [value]):
            if isinstance(one, dict):
                out.append("<sr:%s>" % name)
                _c14n_params(out, one)
                out.append("</sr:%s>" % name)
            else:
                out.append("<sr:%s>%s</sr:%s>" % (name, _c14n_value(one), name))


def _read_params(element):
    out = {}
    for child in element:
        name = _local(child, element)
        value = _read_params(child) if len(child) else (child.text or "").strip()
        if name in out:
            if not isinstance(out[name], list):
                out[name] = [out[name]]
            out[name].append(value)
        else:
            out[name] = value
    return out if out else ""


def base64_text(data: bytes) -> str:
    # what base64.b64encode returns, without its Python frame
    return binascii.b2a_base64(bytes(data), newline=False).decode("ascii")


def base64_bytes(text, where="base64") -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (ValueError, TypeError) as e:
        raise DuisError("not base64: %s" % e, where)


def date_time_text(seconds: int) -> str:
    """xs:dateTime in UTC from integer seconds since 1970 (simulated time)."""
    if _LAST_DATE_TIME[0] != seconds:           # every response stamps the same moment
        day, second = divmod(int(seconds), 86400)
        if _LAST_DAY[0] != day:                 # the date part changes once a simulated day
            moment = datetime.datetime.fromtimestamp(day * 86400, datetime.timezone.utc)
            _LAST_DAY[:] = [day, moment.strftime("%Y-%m-%dT")]
        hour, rest = divmod(second, 3600)
        _LAST_DATE_TIME[:] = [seconds, "%s%02d:%02d:%02dZ" % (_LAST_DAY[1], hour, rest // 60,
                                                             rest % 60)]
    return _LAST_DATE_TIME[1]


_LAST_DAY = [None, ""]
_LAST_DATE_TIME = [None, ""]


def parse_date_time(text, where="dateTime") -> int:
    """Integer seconds since 1970 from an xs:dateTime (fractions dropped; no zone = UTC)."""
    try:
        moment = datetime.datetime.fromisoformat((text or "").strip())
    except ValueError:
        raise DuisError("not an xs:dateTime: %r" % (text,), where)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp())


# -- requests ----------------------------------------------------------------------------
class DuisRequest:
    """One service request. `body` holds the service element's children as text, nested
    dicts and lists of repeats (what `from_xml` gives back); ints and bools are turned into
    their XML text on construction so a round trip compares equal."""

    def __init__(self, request_id: RequestId, command_variant: int, service_reference: str,
                 service_reference_variant: str, body_name: str, body=None):
        command_variant = int(command_variant)
        if not 1 <= command_variant <= 8:
            raise ValueError("CommandVariant is 1-8")
        self.request_id = request_id
        self.command_variant = command_variant
        self.service_reference = service_reference
        self.service_reference_variant = service_reference_variant
        self.body_name = body_name
        self.body = _normalise(body or {}) or {}
        self.key_info = None            # (issuer, serial) of the signer, after from_xml
        self.xml = None                 # the document it was read from, after from_xml
        self._root = None               # and its parsed root element (`root`: when asked)
        self._signed = None             # (digest text, signature value) when known unparsed

    def __eq__(self, other):
        return isinstance(other, DuisRequest) and self._fields() == other._fields()

    def __repr__(self):
        return "DuisRequest(%s, CV%d, SRV %s, %s)" % (
            self.request_id, self.command_variant, self.service_reference_variant,
            self.body_name)

    root = property(lambda self: _lazy_root(self), lambda self, root: _set_root(self, root))

    def _fields(self):  # what a request says (not where it was read from)
        return (self.request_id, self.command_variant, self.service_reference,
                self.service_reference_variant, self.body_name, self.body)

    @classmethod
    def signed_pre_command(cls, request_id, service_reference, service_reference_variant,
                           gbcs: bytes, command_variant=5):
        """CV 5-7: the body is SignedPreCommand { GBCSPayload } (XSD type SignedPreCommand)."""
        if command_variant not in CV_SIGNED_PRE_COMMAND:
            raise ValueError("a signed pre-command travels with command variant 5, 6 or 7")
        return cls(request_id, command_variant, service_reference, service_reference_variant,
                   "SignedPreCommand", {"GBCSPayload": base64_text(gbcs)})

    def element(self):
        root = ET.Element(_q("Request"), {"schemaVersion": SCHEMA_VERSION})
        header = ET.SubElement(root, _q("Header"))
        _text(header, "RequestID", str(self.request_id))
        _text(header, "CommandVariant", str(self.command_variant))
        _text(header, "ServiceReference", self.service_reference)
        _text(header, "ServiceReferenceVariant", self.service_reference_variant)
        body = ET.SubElement(ET.SubElement(root, _q("Body")), _q(self.body_name))
        if isinstance(self.body, dict):
            _add_params(body, self.body)
        return root

    def to_xml(self, signer: "XmlSigner | None" = None, pretty=False) -> bytes:
        """UTF-8 XML, signed when a signer is given; compact unless `pretty` (indented,
        as the DUIS templates are written; the signature covers the whitespace)."""
        if signer is not None and not pretty:
            return _remember(self, signer, *signer._sign(self.canonical_text()))
        return _document(self.element(), signer, pretty)

    def canonical_text(self) -> str:
        """`_canonical_text(self.element())`, written straight from the fields (the signing
        hot path: no tree to build and walk; tests hold the two equal)."""
        name = self.body_name
        head = _REQUEST_HEAD % (
            _c14n_id(self.request_id), _c14n_value(str(self.command_variant)),
            _c14n_value(self.service_reference), _c14n_value(self.service_reference_variant),
            name)
        if not isinstance(self.body, dict) or not self.body:
            return head + _REQUEST_END % name
        out = [head]
        _c14n_params(out, self.body)
        out.append(_REQUEST_END % name)
        return "".join(out)

    @classmethod
    def from_xml(cls, xml) -> "DuisRequest":
        known = _recalled(cls, xml)
        if known is not None:
            return known
        root = _parse(xml)
        if root.tag != _q("Request"):
            raise DuisError("root element is %s, not sr:Request" % root.tag, "Request")
        header = _one(root, "Header", root)
        request_id = RequestId.parse(_child_text(header, "RequestID"))
        variant = _child_text(header, "CommandVariant")
        if not variant.isdigit() or not 1 <= int(variant) <= 8:
            raise DuisError("must be 1-8, got %r" % variant, "CommandVariant")
        body = _one(root, "Body", root)
        if len(body) != 1:
            raise DuisError("must hold exactly one service element, holds %d" % len(body),
                            "Body")
        service = body[0]
        request = cls(request_id, int(variant), _child_text(header, "ServiceReference"),
                      _child_text(header, "ServiceReferenceVariant"), _local(service, body),
                      _read_params(service) or {})
        request.key_info = _key_info(root)
        request.xml = bytes(xml)
        request.root = root
        return request

    def gbcs_payload(self) -> bytes:
        """The GBCS message a SignedPreCommand body carries."""
        if self.body_name != "SignedPreCommand" or not isinstance(self.body, dict):
            raise DuisError("not a SignedPreCommand body", "Body")
        return base64_bytes(self.body.get("GBCSPayload"), "GBCSPayload")


# -- responses ---------------------------------------------------------------------------
RESPONSE_MESSAGE = "ResponseMessage"
DEVICE_ALERT = "DeviceAlertMessage"
DCC_ALERT = "DCCAlertMessage"


class DuisResponse:
    """A service response or alert (Response/Body choice). Exactly one of:
    `kind == RESPONSE_MESSAGE`: service_reference[_variant], then gbcs_payload, or
      pre_command (+ gbcs_version), or neither;
    `kind == DEVICE_ALERT`: alert_code, gbcs_payload;
    `kind == DCC_ALERT`: dcc_alert_code, dcc_alert (params of the DCCAlert choice)."""

    def __init__(self, response_code, response_date_time, kind=RESPONSE_MESSAGE,
                 request_id=None, response_id=None, service_reference=None,
                 service_reference_variant=None, gbcs_payload=None, pre_command=None,
                 gbcs_version=GBCS_VERSION, alert_code=None, dcc_alert_code=None,
                 dcc_alert=None):
        if kind not in (RESPONSE_MESSAGE, DEVICE_ALERT, DCC_ALERT):
            raise ValueError("unknown response body %r" % kind)
        self.response_code = response_code
        self.response_date_time = response_date_time
        self.kind = kind
        self.request_id = request_id
        self.response_id = response_id
        self.service_reference = service_reference
        self.service_reference_variant = service_reference_variant
        self.gbcs_payload = None if gbcs_payload is None else bytes(gbcs_payload)
        self.pre_command = None if pre_command is None else bytes(pre_command)
        self.gbcs_version = gbcs_version if pre_command is not None else None
        self.alert_code = alert_code
        self.dcc_alert_code = dcc_alert_code
        self.dcc_alert = _normalise(dcc_alert) if dcc_alert else None
        self.key_info = None
        self.xml = None
        self._root = None               # `root`, parsed from `xml` when asked
        self._signed = None

    root = property(lambda self: _lazy_root(self), lambda self, root: _set_root(self, root))

    @property
    def ok(self):
        return self.response_code in (I0_SUCCESS, I99_ACKNOWLEDGED)

    def __eq__(self, other):
        return isinstance(other, DuisResponse) and vars_of(self) == vars_of(other)

    def __repr__(self):
        return "DuisResponse(%s, %s, %s)" % (self.response_code, self.kind,
                                             self.request_id or self.response_id)

    def element(self):
        root = ET.Element(_q("Response"), {"schemaVersion": SCHEMA_VERSION})
        header = ET.SubElement(root, _q("Header"))
        if self.request_id is not None:
            _text(header, "RequestID", str(self.request_id))
        if self.response_id is not None:
            _text(header, "ResponseID", str(self.response_id))
        _text(header, "ResponseCode", self.response_code)
        _text(header, "ResponseDateTime", self.response_date_time)
        body = ET.SubElement(ET.SubElement(root, _q("Body")), _q(self.kind))
        if self.kind == RESPONSE_MESSAGE:
            _text(body, "ServiceReference", self.service_reference or "")
            _text(body, "ServiceReferenceVariant", self.service_reference_variant or "")
            if self.gbcs_payload is not None:
                _text(body, "GBCSPayload", base64_text(self.gbcs_payload))
            elif self.pre_command is not None:
                pre = ET.SubElement(body, _q("PreCommand"))
                _text(pre, "GBCSVersion", self.gbcs_version)
                _text(pre, "GBCSPayload", base64_text(self.pre_command))
        elif self.kind == DEVICE_ALERT:
            _text(body, "AlertCode", "%04X" % self.alert_code)
            _text(body, "GBCSPayload", base64_text(self.gbcs_payload or b""))
        else:
            _text(body, "DCCAlertCode", self.dcc_alert_code)
            _add_params(ET.SubElement(body, _q("DCCAlert")), self.dcc_alert or {})
        return root

    def to_xml(self, signer: "XmlSigner | None" = None, pretty=False) -> bytes:
        """UTF-8 XML, signed when a signer is given; compact unless `pretty` (indented,
        as the DUIS templates are written; the signature covers the whitespace)."""
        if signer is not None and not pretty:
            return _remember(self, signer, *signer._sign(self.canonical_text()))
        return _document(self.element(), signer, pretty)

    def canonical_text(self) -> str:
        """`_canonical_text(self.element())`, written straight from the fields."""
        kind = self.kind
        out = [_RESPONSE_START]
        if self.request_id is not None:
            out.append("<sr:RequestID>%s</sr:RequestID>" % _c14n_id(self.request_id))
        if self.response_id is not None:
            out.append("<sr:ResponseID>%s</sr:ResponseID>" % _c14n_id(self.response_id))
        out.append(_RESPONSE_CODE % (_c14n_value(self.response_code),
                                     _c14n_value(self.response_date_time), kind))
        if kind == RESPONSE_MESSAGE:            # (base64 has nothing canonical XML escapes)
            out.append(_SERVICE_REFERENCE % (_c14n_value(self.service_reference),
                                             _c14n_value(self.service_reference_variant)))
            if self.gbcs_payload is not None:
                out.append("<sr:GBCSPayload>%s</sr:GBCSPayload>" % base64_text(self.gbcs_payload))
            elif self.pre_command is not None:
                out.append("<sr:PreCommand><sr:GBCSVersion>%s</sr:GBCSVersion>"
                           "<sr:GBCSPayload>%s</sr:GBCSPayload></sr:PreCommand>"
                           % (_c14n_value(self.gbcs_version), base64_text(self.pre_command)))
        elif kind == DEVICE_ALERT:
            out.append("<sr:AlertCode>%s</sr:AlertCode><sr:GBCSPayload>%s</sr:GBCSPayload>"
                       % (_c14n_value("%04X" % self.alert_code),
                          base64_text(self.gbcs_payload or b"")))
        else:
            out.append("<sr:DCCAlertCode>%s</sr:DCCAlertCode><sr:DCCAlert>"
                       % _c14n_value(self.dcc_alert_code))
            _c14n_params(out, self.dcc_alert or {})
            out.append("</sr:DCCAlert>")
        out.append(_RESPONSE_END % kind)
        return "".join(out)

    @classmethod
    def from_xml(cls, xml) -> "DuisResponse":
        known = _recalled(cls, xml)
        if known is not None:
            return known
        root = _parse(xml)
        if root.tag != _q("Response"):
            raise DuisError("root element is %s, not sr:Response" % root.tag, "Response")
        header = _one(root, "Header", root)
        request_id = _optional(header, "RequestID", RequestId.parse)
        response_id = _optional(header, "ResponseID", RequestId.parse)
        body = _one(root, "Body", root)
        if len(body) != 1:
            raise DuisError("must hold exactly one element, holds %d" % len(body), "Body")
        inner = body[0]
        kind = _local(inner, body)
        common = (_child_text(header, "ResponseCode"), _child_text(header, "ResponseDateTime"))
        if kind == RESPONSE_MESSAGE:
            response = cls(*common, kind=kind, request_id=request_id, response_id=response_id,
                           service_reference=_child_text(inner, "ServiceReference"),
                           service_reference_variant=_child_text(inner,
                                                                 "ServiceReferenceVariant"),
                           gbcs_payload=_optional(inner, "GBCSPayload", base64_bytes))
            pre = inner.find(_q("PreCommand"))
            if pre is not None:
                response.pre_command = base64_bytes(_child_text(pre, "GBCSPayload"),
                                                    "PreCommand")
                response.gbcs_version = _child_text(pre, "GBCSVersion")
        elif kind == DEVICE_ALERT:
            code = _child_text(inner, "AlertCode")
            if not re.match(r"^[0-9A-Fa-f]{4}$", code):
                raise DuisError("not a 2-byte hexBinary: %r" % code, "AlertCode")
            response = cls(*common, kind=kind, request_id=request_id, response_id=response_id,
                           alert_code=int(code, 16),
                           gbcs_payload=base64_bytes(_child_text(inner, "GBCSPayload"),
                                                     "GBCSPayload"))
        elif kind == DCC_ALERT:
            response = cls(*common, kind=kind, request_id=request_id, response_id=response_id,
                           dcc_alert_code=_child_text(inner, "DCCAlertCode"),
                           dcc_alert=_read_params(_one(inner, "DCCAlert", inner)) or None)
        else:
            raise DuisError("unknown response body %s" % kind, "Body")
        response.key_info = _key_info(root)
        response.xml = bytes(xml)
        response.root = root
        return response


def vars_of(response):
    return {k: v for k, v in vars(response).items() if k not in ("key_info", "xml", "root", "_root", "_signed")}


# -- XMLDSig-shaped signature ------------------------------------------------------------
class XmlSigner:
    """Signs DUIS documents with an organisation's DS key; KeyInfo names its certificate
    by issuer and serial number (as DCC Boxed does)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate):
        self.private_key = private_key
        self.certificate = certificate
        self.key_info = issuer_serial(certificate)
        # what a reader parses from the KeyInfo written below; None when the issuer's text
        # would not read back as it is (its documents are then not remembered)
        self._read_back_key_info = self.key_info if _reads_back(self.key_info[0]) else None
        # the Signature and SignedInfo in canonical form, cut where the values go
        skeleton = _signature_skeleton(*self.key_info)
        signed_info = skeleton.find(_qd("SignedInfo"))
        signed_info.find(_qd("Reference")).find(_qd("DigestValue")).text = _MARK
        skeleton.find(_qd("SignatureValue")).text = _MARK
        self._signed_info = _canonical_text(signed_info).split(_MARK)
        self._signature = _canonical_text(skeleton).split(_MARK)
        self._signature_bytes = [part.encode("utf-8") for part in self._signature]

    def sign(self, root, pretty=False) -> bytes:
        """The document with its enveloped signature, serialised. Compact documents are
        written in their canonical form, the Signature (in canonical form too) last in the
        root, so the bytes signed are the bytes sent; a pretty one is laid out first and
        canonicalised as the verifier will parse it."""
        if not pretty:
            return self._sign_compact(root)
        signature = _signature_skeleton(*self.key_info)
        root.append(signature)
        ET.indent(root)
        signed_info = signature.find(_qd("SignedInfo"))
        digest = _CRYPTO.sha256(canonical(root, skip=signature))
        signed_info.find(_qd("Reference")).find(_qd("DigestValue")).text = base64_text(digest)
        value = _CRYPTO.ecdsa_sign(self.private_key, canonical(signed_info))
        signature.find(_qd("SignatureValue")).text = base64_text(value)
        return _serialise(root)

    def _sign_compact(self, root):
        return self.sign_canonical(_canonical_text(root))

    def sign_canonical(self, document: str) -> bytes:
        """The compact signed document from the canonical text of the unsigned one."""
        return self.sign_parts(document)[0]

    def sign_parts(self, document: str):
        """(signed document, DigestValue text, SignatureValue text) of `sign_canonical`."""
        return self._sign(document)[:3]

    def _sign(self, document):
        """`sign_parts` and what was signed: (document bytes digested, SignedInfo bytes
        signed, digest, signature value), which `_as_signed` cuts back out of the
        signed document (tests hold it)."""
        body = document.encode("utf-8")
        digest_bytes = _CRYPTO.sha256(body)
        digest = base64_text(digest_bytes)
        signed_info = digest.join(self._signed_info).encode("utf-8")
        value_bytes = _CRYPTO.ecdsa_sign(self.private_key, signed_info)
        value = base64_text(value_bytes)
        before, between, after = self._signature_bytes
        close = body.rindex(b"</")        # UTF-8 keeps ASCII where it was: the same cut
        xml = b"".join((_DECLARATION_BYTES, body[:close], before, digest.encode("ascii"),
                        between, value.encode("ascii"), after, body[close:]))
        return xml, digest, value, (body, signed_info, digest_bytes, value_bytes)


# -- documents this process signed, read back without parsing ------------------------------
# Parsing is a function of the bytes: when the bytes received are exactly a document signed
# here a moment ago, what `from_xml` would read from them is the object they were written
# from. Only objects whose every field reads back unchanged are remembered (`_reads_back`);
# the signature and digest are still checked every time (ECDSA on the SignedInfo bytes,
# SHA-256 of the document bytes), on the bytes `_as_signed` would cut from the bytes
# received, kept from when they were written; a single byte of difference is a miss:
# parsed and canonicalised in full. `RECALL = False` turns the memo off.
_RECENT_MAX = 64
_RECENT = NewestKept(_RECENT_MAX)  # signed bytes -> (class, fields, key_info, digest, value,
                                   #                  what was signed)
RECALL = True                    # False: every document is parsed from its bytes (what a
                                 # reader in another process does; benchmarks/gbcs.py)


def _remember(document, signer, xml, digest, value, signed=None):
    if not RECALL:
        return xml
    fields = _read_back_fields(document, signer)
    if fields is not None:
        _RECENT[xml] = (type(document), fields, digest, value, signed)
    return xml


def _recalled(cls, xml):
    if not isinstance(xml, (bytes, bytearray)):
        return None
    known = _RECENT.get(bytes(xml))
    if known is None or known[0] is not cls:
        return None
    _, fields, digest, value, signed = known
    # the object `from_xml` would build: its fields were checked when it was remembered
    document = cls.__new__(cls)
    document.__dict__.update(fields)
    if cls is DuisRequest:
        document.body = _copy_params(fields["body"])   # the reader's own, as parsing gives
    document.xml = raw = bytes(xml)
    document._signed = (digest, value, signed, raw)
    return document


def _read_back_fields(document, signer):
    """The instance fields (but `xml`, `_signed`) that `from_xml` would give the document
    back, or None when some field would not read back as it is (surrounding whitespace,
    CR, text XML cannot carry, a shape or type the reader does not return)."""
    key_info = signer._read_back_key_info
    if key_info is None:
        return None
    if type(document) is DuisRequest:
        variant, body = document.command_variant, document.body
        if not (type(variant) is int and 1 <= variant <= 8 and isinstance(body, dict)
                and _all_read_back((document.service_reference,
                                    document.service_reference_variant, document.body_name))
                and _params_read_back(body)):
            return None
        return {"request_id": document.request_id, "command_variant": variant,
                "service_reference": document.service_reference,
                "service_reference_variant": document.service_reference_variant,
                "body_name": document.body_name, "body": _copy_params(body),
                "key_info": key_info, "_root": None}
    if type(document) is not DuisResponse:
        return None
    payload, pre_command = document.gbcs_payload, document.pre_command
    if (document.kind != RESPONSE_MESSAGE or document.alert_code is not None
            or document.dcc_alert_code is not None or document.dcc_alert is not None
            or (payload is not None and pre_command is not None)
            or not _all_read_back((document.response_code, document.response_date_time,
                                   document.service_reference,
                                   document.service_reference_variant))
            or (pre_command is not None and not _reads_back(document.gbcs_version))):
        return None
    return {"response_code": document.response_code,
            "response_date_time": document.response_date_time, "kind": RESPONSE_MESSAGE,
            "request_id": document.request_id, "response_id": document.response_id,
            "service_reference": document.service_reference,
            "service_reference_variant": document.service_reference_variant,
            "gbcs_payload": None if payload is None else bytes(payload),
            "pre_command": None if pre_command is None else bytes(pre_command),
            "gbcs_version": None if pre_command is None else document.gbcs_version,
            "alert_code": None, "dcc_alert_code": None, "dcc_alert": None,
            "key_info": key_info, "_root": None}


def _reads_back(text):
    if not isinstance(text, str):
        return False
    known = _READS_BACK.get(text)
    if known is None:
        known = (text == text.strip() and "\r" not in text
                 and not _NOT_XML_CHARACTER.search(text))
        if len(text) <= 64 and len(_READS_BACK) < 4096:    # codes, SRVs, date-times
            _READS_BACK[text] = known
    return known


_READS_BACK = {}


def _all_read_back(texts):
    """`_reads_back` of every text; the memo is asked first, in one go."""
    try:
        if all(map(_READS_BACK.get, texts)):
            return True
    except TypeError:                   # unhashable: not text
        return False
    return all(map(_reads_back, texts))


def _params_read_back(params):
    """Whether a body reads back as it is: in the constructor's normal form (text, non-empty
    dicts with text names, lists of two or more) and its every text reads back."""
    for name, value in params.items():
        if type(name) is not str:
            return False
        if isinstance(value, list):
            if len(value) < 2:
                return False
        else:
            value = (value,)
        for one in value:
            if isinstance(one, dict):
                if not one or not _params_read_back(one):
                    return False
            elif not _reads_back(one):
                return False
    return True


def _copy_params(params):
    """A copy of a body (`_params_read_back`'s shape): its dicts and lists are new, the text
    in them is shared."""
    copy = dict(params)
    for name, value in copy.items():
        if isinstance(value, dict):
            copy[name] = _copy_params(value)
        elif isinstance(value, list):
            copy[name] = [_copy_params(one) if isinstance(one, dict) else one for one in value]
    return copy


def _lazy_root(document):
    if document._root is None and document.xml is not None:
        document._root = _parse(document.xml)
    return document._root


def _set_root(document, root):
    document._root = root


def issuer_serial(certificate: x509.Certificate):
    return certificate.issuer.rfc4514_string(), certificate.serial_number


def verify(document, public_key_xy: bytes) -> None:
    """Check the enveloped signature of a DUIS document (bytes, the root element parsed
    from them, or a DuisRequest/DuisResponse read by `from_xml`); raises DuisError if it is
    missing, malformed, names other algorithms, or does not verify with this public key."""
    raw = None
    if isinstance(document, (DuisRequest, DuisResponse)):
        if document._signed is not None and _verify_recalled(document, public_key_xy):
            return
        root, raw = document.root, document.xml
        if root is None:
            raise DuisError("not read from XML: nothing to verify", "Signature")
    elif isinstance(document, ET.Element):
        root = document
    else:
        root = _parse(document)
        raw = bytes(document.encode("utf-8") if isinstance(document, str) else document)
    signature = _signature_of(root)
    signed_info = _one(signature, "SignedInfo", signature, DS_NS)
    _algorithm(signed_info, "CanonicalizationMethod", C14N_EXC)
    _algorithm(signed_info, "SignatureMethod", SIG_ECDSA_SHA256)
    references = signed_info.findall(_qd("Reference"))
    if len(references) != 1 or references[0].get("URI") != "":
        raise DuisError("exactly one Reference to the whole document (URI=\"\")", "Signature")
    reference = references[0]
    transforms = [t.get("Algorithm") for t in reference.iter(_qd("Transform"))]
    if transforms != [ENVELOPED]:
        raise DuisError("only the enveloped-signature transform is supported", "Signature")
    _algorithm(reference, "DigestMethod", DIGEST_SHA256)
    digest = base64_bytes(_child_text(reference, "DigestValue", DS_NS), "DigestValue")
    value = base64_bytes(_child_text(signature, "SignatureValue", DS_NS), "SignatureValue")
    as_signed = _as_signed(raw, _child_text(reference, "DigestValue", DS_NS))
    signed_info_bytes = as_signed[1] if as_signed else canonical(signed_info)
    if not _CRYPTO.ecdsa_verify(public_key_xy, signed_info_bytes, value):
        raise DuisError("signature does not verify with the signer's key", "SignatureValue")
    # A compact document as XmlSigner writes it digests as it came (see _as_signed); any
    # other layout, or a digest that does not match that way, is canonicalised from the tree.
    if as_signed is None or digest != _CRYPTO.sha256(as_signed[0]):
        if digest != _CRYPTO.sha256(canonical(root, skip=signature)):
            raise DuisError("digest does not match the document", "DigestValue")


def _verify_recalled(document, public_key_xy):
    """True when a document `from_xml` recalled (bytes signed here, not parsed) verifies on
    the bytes received; False sends it through the parsed path (which raises)."""
    digest_text, value_text, signed, raw = document._signed
    if signed is not None and document.xml is raw:
        # the bytes received are the bytes signed here: what `_as_signed` would cut from
        # them was kept when they were written; the signature and digest are checked anew
        body, signed_info, digest, value = signed
        return (_CRYPTO.ecdsa_verify(public_key_xy, signed_info, value)
                and _CRYPTO.sha256(body) == digest)
    as_signed = _as_signed(document.xml, digest_text)
    if as_signed is None:
        return False
    value = base64_bytes(value_text, "SignatureValue")
    return (_CRYPTO.ecdsa_verify(public_key_xy, as_signed[1], value)
            and _CRYPTO.sha256(as_signed[0]) == base64_bytes(digest_text, "DigestValue"))


_SIGNATURE_START = ('<ds:Signature xmlns:ds="%s">' % DS_NS).encode("ascii")
_SIGNATURE_END = b"</ds:Signature>"
_SIGNATURE_STARTS = re.compile(rb"<ds:Signature[\s/>]")
_SIGNED_INFO_START = b"<ds:SignedInfo>"
_SIGNED_INFO_END = b"</ds:SignedInfo>"
_SIGNED_INFO_TEMPLATE = []     # canonical SignedInfo cut where the digest goes (lazily)


def _signed_info_template():
    if not _SIGNED_INFO_TEMPLATE:
        skeleton = _signature_skeleton("", 0).find(_qd("SignedInfo"))
        skeleton.find(_qd("Reference")).find(_qd("DigestValue")).text = _MARK
        _SIGNED_INFO_TEMPLATE.extend(p.encode("utf-8")
                                     for p in _canonical_text(skeleton).split(_MARK))
    return _SIGNED_INFO_TEMPLATE


def _as_signed(raw, digest_text):
    """(document bytes, SignedInfo bytes) as a compact XmlSigner wrote and signed them,
    cut straight from the received bytes, or None when `raw` is not laid out that way.

    Sound without re-canonicalising: the layout is the declaration, then the canonical
    document with one `<ds:Signature xmlns:ds=..>` element (the only one in the bytes)
    just before the root's end tag. Its SignedInfo is used only when its bytes are exactly
    the canonical template holding the parsed DigestValue, so the bytes verified are
    canonical(SignedInfo) of the parsed tree. The document bytes are used only if their
    SHA-256 equals that signed digest, i.e. they are byte for byte what the signer
    canonicalised; the parsed tree is theirs, so canonical(tree) gives the same bytes."""
    if raw is None or not raw.startswith(_DECLARATION_BYTES):
        return None
    start = raw.find(_SIGNATURE_START)
    end = raw.find(_SIGNATURE_END, start + 1)
    if (start < 0 or end < 0 or len(_SIGNATURE_STARTS.findall(raw)) != 1
            or raw.find(_SIGNATURE_END, end + 1) >= 0):
        return None
    end += len(_SIGNATURE_END)
    close = raw.rfind(b"</")
    if close != end or raw.find(b">", close) != len(raw) - 1:
        return None
    first, last = _signed_info_template()
    info_start = start + len(_SIGNATURE_START)
    raw_first = _SIGNED_INFO_START + first[first.index(b">") + 1:]
    expected = raw_first + digest_text.encode("utf-8") + last
    if raw[info_start:info_start + len(expected)] != expected:
        return None
    signed_info = first + digest_text.encode("utf-8") + last
    return raw[len(_DECLARATION_BYTES):start] + raw[end:], signed_info


def verify_with_certificate(document, certificate: x509.Certificate) -> None:
    verify(document, _certificate_key(certificate))


def _certificate_key(certificate):
    # by identity, the certificate held so its id is not reused (hashing a certificate
    # hashes its DER: it cost more than the look-up saved)
    known = _CERTIFICATE_KEYS.get(id(certificate))
    if known is None or known[0] is not certificate:
        known = _CERTIFICATE_KEYS[id(certificate)] = (certificate,
                                                      public_xy(certificate.public_key()))
    return known[1]


_CERTIFICATE_KEYS = NewestKept(256)


def canonical(element, skip=None) -> bytes:
    """The element's canonical bytes (module docstring), without its tail; `skip` (a child
    of `element`) is left out with the text around it kept: the enveloped-signature
    transform."""
    return _canonical_text(element, skip).encode("utf-8")


def _canonical_text(element, skip=None):
    out = []
    _c14n(element, out, {}, {}, skip)
    return "".join(out)


def _tag(tag, names):
    """(namespace, prefix, qualified name, "<name>", "</name>") of an element tag."""
    known = _KNOWN_TAGS.get(tag)
    if known is None:
        namespace, local = _split(tag)
        prefix = _prefix(namespace, names)
        name = prefix + ":" + local if prefix else local
        known = (namespace, prefix, name, "<" + name + ">", "</" + name + ">")
        if namespace is None or namespace in _PREFIXES:
            _KNOWN_TAGS[tag] = known
    return known


def _c14n(element, out, in_scope, names, skip):
    namespace, prefix, name, opened, closed = _tag(element.tag, names)
    attrib = element.attrib
    declared = namespace is None or in_scope.get(prefix) == namespace
    if not attrib and declared:
        out.append(opened)                      # the usual DUIS element: nothing to add
    else:
        key = (element.tag, declared, tuple(attrib.items()))
        start = _C14N_STARTS.get(key)           # SignedInfo's algorithm elements, the root
        if start is None or not declared:
            in_scope = _c14n_start(element, out, in_scope, names, namespace, prefix, name)
            if len(_C14N_STARTS) < 1024 and not any(k[:1] == "{" for k in attrib):
                _C14N_STARTS[key] = out[-1]
        else:
            out.append(start)
    text = element.text
    if text:
        out.append(_C14N_TEXTS.get(text) or _c14n_text(text))
    for child in element:
        if child is not skip:
            _c14n(child, out, in_scope, names, None)
        tail = child.tail
        if tail:
            out.append(_C14N_TEXTS.get(tail) or _c14n_text(tail))
    out.append(closed)


def _c14n_start(element, out, in_scope, names, namespace, prefix, name):
    """A start tag with namespace declarations and/or attributes; the scope below it."""
    declare = {}
    if namespace is not None and in_scope.get(prefix) != namespace:
        declare[prefix] = namespace
    attributes = []
    for key, value in element.attrib.items():
        attr_ns, attr_local = _split(key)
        if attr_ns is None:
            attributes.append(("", attr_local, attr_local, value))
            continue
        attr_prefix = _prefix(attr_ns, names)
        if in_scope.get(attr_prefix) != attr_ns:
            declare[attr_prefix] = attr_ns
        attributes.append((attr_ns, attr_local, attr_prefix + ":" + attr_local, value))
    attributes.sort()
    start = "<" + name
    if declare:
        in_scope = dict(in_scope)
        in_scope.update(declare)
        for declared in sorted(declare):
            start += ' xmlns:%s="%s"' % (declared, _c14n_attribute(declare[declared]))
    for _, _, qualified, value in attributes:
        start += ' %s="%s"' % (qualified, _c14n_attribute(value))
    out.append(start + ">")
    return in_scope


_C14N_ESCAPED = re.compile("[&<>\r]")    # what canonical XML text escapes


def _c14n_text(text):
    escaped = _C14N_TEXTS.get(text)
    if escaped is None:
        escaped = text              # RequestIDs, payloads: most text has nothing to escape
        if _C14N_ESCAPED.search(text) is not None:
            escaped = (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                       .replace("\r", "&#xD;"))
        if len(text) <= 32 and len(_C14N_TEXTS) < 4096:   # indentation, short values
            _C14N_TEXTS[text] = escaped
    return escaped


def _c14n_attribute(value):
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
            .replace("\t", "&#x9;").replace("\n", "&#xA;").replace("\r", "&#xD;"))


def _split(tag):
    if tag[:1] == "{":
        namespace, local = tag[1:].split("}", 1)
        return namespace, local
    return None, tag


def _prefix(namespace, names):
    if namespace is None:
        return ""
    prefix = _PREFIXES.get(namespace) or names.get(namespace)
    if prefix is None:
        prefix = names[namespace] = "ns%d" % len(names)
    return prefix


def _signature_skeleton(issuer, serial):
    signature = ET.Element(_qd("Signature"))
    signed_info = ET.SubElement(signature, _qd("SignedInfo"))
    ET.SubElement(signed_info, _qd("CanonicalizationMethod"), {"Algorithm": C14N_EXC})
    ET.SubElement(signed_info, _qd("SignatureMethod"), {"Algorithm": SIG_ECDSA_SHA256})
    reference = ET.SubElement(signed_info, _qd("Reference"), {"URI": ""})
    transforms = ET.SubElement(reference, _qd("Transforms"))
    ET.SubElement(transforms, _qd("Transform"), {"Algorithm": ENVELOPED})
    ET.SubElement(reference, _qd("DigestMethod"), {"Algorithm": DIGEST_SHA256})
    ET.SubElement(reference, _qd("DigestValue"))
    ET.SubElement(signature, _qd("SignatureValue"))
    data = ET.SubElement(ET.SubElement(signature, _qd("KeyInfo")), _qd("X509Data"))
    issuer_serial_ = ET.SubElement(data, _qd("X509IssuerSerial"))
    ET.SubElement(issuer_serial_, _qd("X509IssuerName")).text = issuer
    ET.SubElement(issuer_serial_, _qd("X509SerialNumber")).text = str(serial)
    return signature


def _signature_of(root):
    signatures = [c for c in root if c.tag == _qd("Signature")]
    if len(signatures) != 1:
        raise DuisError("expected one ds:Signature under the root, found %d" % len(signatures),
                        "Signature")
    return signatures[0]


def _key_info(root):
    signature = root.find(_qd("Signature"))
    if signature is None:
        return None
    node = signature.find("%s/%s/%s" % (_qd("KeyInfo"), _qd("X509Data"),
                                        _qd("X509IssuerSerial")))
    if node is None:
        return None
    serial = (node.findtext(_qd("X509SerialNumber")) or "").strip()
    if not serial.isdigit():
        raise DuisError("X509SerialNumber is not a number", "KeyInfo")
    return (node.findtext(_qd("X509IssuerName")) or "").strip(), int(serial)


def _algorithm(parent, name, expected):
    node = _one(parent, name, parent, DS_NS)
    if node.get("Algorithm") != expected:
        raise DuisError("unsupported algorithm %r" % node.get("Algorithm"), name)


# -- XML plumbing ------------------------------------------------------------------------
def _q(name):
    return "{%s}%s" % (NS, name)


def _qd(name):
    return "{%s}%s" % (DS_NS, name)


def _text(parent, name, text):
    child = ET.SubElement(parent, _q(name))
    child.text = text
    return child


def _local(element, parent):
    if not element.tag.startswith("{%s}" % NS):
        raise DuisError("element %s is not in the DUIS namespace" % element.tag,
                        _name(parent))
    return element.tag[len(NS) + 2:]


def _name(element):
    return element.tag.rsplit("}", 1)[-1]


def _one(parent, name, where, namespace=NS):
    found = parent.findall("{%s}%s" % (namespace, name))
    if len(found) != 1:
        raise DuisError("expected one %s, found %d" % (name, len(found)), _name(where))
    return found[0]


def _child_text(parent, name, namespace=NS):
    return (_one(parent, name, parent, namespace).text or "").strip()


def _optional(parent, name, convert):
    node = parent.find(_q(name))
    return None if node is None else convert((node.text or "").strip(), name)


def _serialise(root) -> bytes:
    """The document as UTF-8 XML, every namespace the tree uses declared on the root with
    its fixed prefix. Text and attributes are escaped so that parsing gives the same tree
    back (a carriage return in text survives as &#13;)."""
    names = {}
    used = {}
    for element in root.iter():
        namespace, prefix = _tag(element.tag, names)[:2]
        if namespace is not None:
            used[namespace] = prefix
        for key in element.attrib:
            namespace = _split(key)[0]
            if namespace is not None:
                used[namespace] = _prefix(namespace, names)
    out = [_DECLARATION]
    declarations = "".join(' xmlns:%s="%s"' % (used[ns], _xml_attribute(ns))
                           for ns in sorted(used, key=used.get))
    _write(root, out, names, declarations)
    return "".join(out).encode("utf-8")


def _write(element, out, names, declarations=""):
    name = _tag(element.tag, names)[2]
    out.append("<" + name + declarations)
    for key, value in element.attrib.items():
        attr_ns, attr_local = _split(key)
        qualified = attr_local if attr_ns is None else _prefix(attr_ns, names) + ":" + attr_local
        out.append(' %s="%s"' % (qualified, _xml_attribute(value)))
    if not element.text and not len(element):
        out.append(" />")
    else:
        out.append(">")
        if element.text:
            out.append(_xml_text(element.text))
        for child in element:
            _write(child, out, names)
        out.append("</" + name + ">")
    if element.tail:
        out.append(_xml_text(element.tail))


def _xml_text(text):
    escaped = _XML_TEXTS.get(text)
    if escaped is None:
        escaped = (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                   .replace("\r", "&#13;"))
        if len(text) <= 32 and len(_XML_TEXTS) < 4096:
            _XML_TEXTS[text] = escaped
    return escaped


def _xml_attribute(value):
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
            .replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;"))


def _document(root, signer, pretty):
    if signer is not None:
        return signer.sign(root, pretty)
    if pretty:
        ET.indent(root)
    return _serialise(root)


def _parse(xml):
    """Parse a bounded DUIS document; DuisError for anything else."""
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    if not isinstance(xml, (bytes, bytearray)):
        raise DuisError("expected bytes, got %s" % type(xml).__name__)
    if len(xml) > MAX_XML_BYTES:
        raise DuisError("document of %d bytes exceeds %d" % (len(xml), MAX_XML_BYTES))
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise DuisError("DOCTYPE and ENTITY declarations are not accepted")
    try:
        root = ET.fromstring(bytes(xml))
    except ET.ParseError as e:
        line, column = e.position
        raise DuisError("not well-formed XML (line %d, column %d)" % (line, column))
    _check_bounds(root)
    return root


def _check_bounds(root):
    """Element count and nesting depth, level by level (no recursion on hostile input)."""
    level = [root]
    depth = count = 1
    while level:
        if depth > MAX_DEPTH:
            raise DuisError("nested deeper than %d" % MAX_DEPTH, _name(level[0]))
        level = [child for element in level for child in element]
        count += len(level)
        if count > MAX_ELEMENTS:
            raise DuisError("more than %d elements" % MAX_ELEMENTS)
        depth += 1


# -- the service requests the lab serves (public DUIS request matrix) ----------------------
class ServiceRequest:
    """One DUIS service reference variant as the lab uses it.

    `critical` and `roles` (eligible DUIS user roles: IS import supplier, ES export supplier,
    GS gas supplier, ED electricity distributor, GT gas transporter, RSA registered supplier
    agent, OU other user) are copied from the public DUIS request matrix
    (SmartDCCInnovation/duis-parser `src/duis-request-matrix.json`); `use_cases` maps the
    target's device type to the GBCS use case (RTDS 4.5.0 folder names, e.g. 4.1.1_ECS17b,
    4.1.1_GCS13a; names and codes in `firmware.gbcs.codes`); `body` is the XSD 5.4 element
    of the Request/Body choice."""

    def __init__(self, variant, name, critical, roles, body, use_cases):
        self.variant = variant
        self.reference = variant if variant.count(".") < 2 else variant.rsplit(".", 1)[0]
        self.name = name
        self.critical = critical
        self.roles = tuple(roles)
        self.body = body
        self.use_cases = dict(use_cases)
        for use_case in self.use_cases.values():
            codes.use_case(use_case)             # KeyError here: not one source of truth

    def __repr__(self):
        return "ServiceRequest(%s %s)" % (self.variant, self.name)


_E, _G, _H = codes.ESME, codes.GSME, codes.CHF

SERVICE_REQUESTS = {s.variant: s for s in (
    ServiceRequest("1.5", "Update Meter Balance", True, ("IS", "GS"), "UpdateMeterBalance",
                   {_E: "ECS04b", _G: "GCS40b"}),
    ServiceRequest("2.2", "Top Up Device", False, ("IS", "GS"), "TopUpDevice",
                   {_E: "CS01a", _G: "CS01b"}),
    ServiceRequest("4.1.1", "Read Instantaneous Import Registers", False,
                   ("IS", "GS", "ED", "GT"), "ReadInstantaneousImportRegisters",
                   {_E: "ECS17b", _G: "GCS13a"}),
    ServiceRequest("4.6.1", "Retrieve Import Daily Read Log", False, ("IS", "GS"),
                   "RetrieveImportDailyReadLog", {_E: "ECS21a", _G: "GCS16a"}),
    ServiceRequest("4.8.1", "Read Active Import Profile Data", False,
                   ("IS", "GS", "ED", "GT", "OU"), "ReadActiveImportProfileData",
                   {_E: "ECS22b", _G: "GCS17"}),
    ServiceRequest("6.11", "Synchronise Clock", True, ("IS", "GS"), "SynchroniseClock",
                   {_E: "ECS70", _G: "GCS28"}),
    ServiceRequest("6.15.1", "Update Security Credentials (KRP)", True,
                   ("IS", "GS", "ED", "GT"), "UpdateSecurityCredentialsKRP",
                   {_E: "CS02bSupplierBySupplier", _G: "CS02bSupplierBySupplier"}),
    ServiceRequest("6.23", "Update Security Credentials (CoS)", False, ("IS", "GS"),
                   "UpdateSecurityCredentialsCoS",
                   {_E: "CS02bSupplierByTransCoS", _G: "CS02bSupplierByTransCoS"}),
    ServiceRequest("7.1", "Enable Supply", True, ("IS",), "EnableSupply", {_E: "ECS42"}),
    ServiceRequest("7.2", "Disable Supply", True, ("IS", "GS"), "DisableSupply",
                   {_E: "ECS43", _G: "GCS32"}),
    ServiceRequest("7.3", "Arm Supply", True, ("IS", "GS"), "ArmSupply",
                   {_E: "ECS44", _G: "GCS39"}),
    ServiceRequest("7.4", "Read Supply Status", False, ("IS", "ES", "GS", "RSA", "ED", "GT"),
                   "ReadSupplyStatus", {_E: "ECS45", _G: "GCS33"}),
    ServiceRequest("8.1.1", "Commission Device", True, ("IS", "GS"),
                   "CommissionDeviceSynchroniseClock",
                   {_E: "ECS70Commission", _G: "GCS28Commission"}),
    ServiceRequest("8.11", "Update HAN Device Log", False, ("IS", "GS", "OU"),
                   "UpdateHANDeviceLog", {_H: "CCS01"}),
)}
