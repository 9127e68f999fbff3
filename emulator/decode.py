"""Dissect a captured frame layer by layer with the host `construct` codecs.

    dissection = dissect(data)          # -> Dissection(layers, error)
    dissection.to_json()                # JSON-safe dict
    render_tree(dissection, title)      # a rich Tree

The outermost layer is detected from the first bytes: ``7E`` is an HDLC frame
(IEC 62056-46, type 3), ``00 01`` the TCP/UDP wrapper (IEC 62056-47 §5.3.2), ``DD 00 00``
or ``DF 09`` a GBCS message (GBCS v4 clause 7.2: envelope, then its payload as DLMS
ACCESS, Data-Notification, GBZ or ASN.1, then its MAC and signature checked against a
keystore: ``dissect(data, keystore, acb)``), anything else a bare APDU (ACSE in BER,
Green Book 9.4; xDLMS in A-XDR, Green Book 9.5). Each
layer hands its payload to the next, and every offset is relative to the start of the
input, so a bad frame names the layer, the byte and the reason.
"""

import binascii
import datetime
import pathlib
import re
import string

from rich.markup import escape
from rich.tree import Tree

from emulator.codec import access, acse, gbcs, gbcs_asn1, gbz, hdlc, wrapper, xdlms
from emulator.codec.errors import CodecError
from firmware.dlms import axdr as A
from firmware.gbcs import codes, envelope, security
from firmware.dlms import obis as O
from firmware.dlms import results as R

HDLC_FLAG = 0x7E
DEFAULT_ACB = bytes.fromhex("90B3D51F30000002")   # the DCC as Access Control Broker in RTDS
LLC_COMMAND = b"\xe6\xe6\x00"    # IEC 62056-46 §8.1 LLC sub-layer: destination/source LSAP
LLC_RESPONSE = b"\xe6\xe7\x00"
ACSE_TAGS = (0x60, 0x61, 0x62, 0x63)

# Blue Book 4.x interface classes, by class_id, for readable descriptors.
CLASS_NAMES = {
    1: "Data", 3: "Register", 4: "Extended register", 5: "Demand register",
    7: "Profile generic", 8: "Clock", 9: "Script table", 15: "Association LN",
    17: "SAP assignment", 70: "Disconnect control",
}
RESULT_FIELDS = ("data_access_result", "result", "action_result")


VERIFIED, FAILED, NOT_CHECKED, ABSENT = "verified", "failed", "not checked", "absent"


def is_gbcs(data):
    """A GBCS message: MAC header (DD 00 00...) or a bare general-signing header (DF 09),
    GBCS v4 clause 7.2."""
    return data[:3] == b"\xdd\x00\x00" or data[:2] == b"\xdf\x09"


class InputError(ValueError):
    """An argument that is neither hex nor a readable file."""


class Layer:
    def __init__(self, name, offset, length, summary, fields):
        self.name = name
        self.offset = offset
        self.length = length
        self.summary = summary
        self.fields = fields

    def to_json(self):
        return {"layer": self.name, "offset": self.offset, "length": self.length,
                "summary": self.summary, "fields": jsonable(self.fields)}


class Dissection:
    def __init__(self, data):
        self.data = data
        self.layers = []
        self.error = None          # (layer, absolute offset, reason)
        self.checks = []           # GBCS: [{"check", "result", "detail"}], see check()

    @property
    def ok(self):
        return self.error is None and not any(c["result"] == FAILED for c in self.checks)

    def check(self, what, result, detail=""):
        self.checks.append({"check": what, "result": result, "detail": detail})

    def fail(self, layer, offset, reason):
        self.error = (layer, offset, reason)

    def to_json(self):
        out = {"bytes": self.data.hex(), "ok": self.ok,
               "layers": [layer.to_json() for layer in self.layers], "error": None}
        if self.error:
            layer, offset, reason = self.error
            out["error"] = {"layer": layer, "offset": offset, "reason": reason}
        if self.checks:
            out["verification"] = list(self.checks)
        return out


# ------------------------------------------------------------------ inputs


def read_inputs(argument):
    """One command-line argument -> [(label, bytes)]: a hex string, or a file of hex
    lines (one frame per line, '#' comments) or of raw bytes."""
    path = pathlib.Path(argument)
    if _is_file(path):
        raw = path.read_bytes()
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            text = None
        if text is not None and _looks_like_hex_text(text):
            inputs = []
            for number, line in enumerate(text.splitlines(), 1):
                line = line.split("#", 1)[0].strip()
                if line:
                    inputs.append(("%s:%d" % (argument, number), parse_hex(line)))
            return inputs
        return [("%s[%d]" % (argument, i) if i else argument, frame)
                for i, frame in enumerate(split_hdlc_stream(raw))]
    try:
        return [(argument, parse_hex(argument))]
    except InputError:
        raise InputError("%r is neither hex nor a readable file" % argument)


def _is_file(path):
    try:
        return path.is_file()
    except OSError:           # a long hex argument is too long a file name: it is hex
        return False


def _looks_like_hex_text(text):
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return bool(body.strip()) and all(c in string.hexdigits or c in " \t\r\n:-" for c in body)


def parse_hex(text):
    cleaned = re.sub(r"[\s:\-]", "", text)
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    if not cleaned or len(cleaned) % 2 or not all(c in string.hexdigits for c in cleaned):
        raise InputError("not an even number of hex digits: %r" % text)
    return binascii.unhexlify(cleaned)


def split_hdlc_stream(raw):
    """Raw bytes captured off a line may hold several HDLC frames back to back; split
    them by their frame-length fields (IEC 62056-46 §6.4.1). Anything else is one input."""
    frames = []
    pos = 0
    while pos < len(raw):
        if raw[pos] != HDLC_FLAG or pos + 3 > len(raw):
            break
        end = pos + 2 + ((raw[pos + 1] & 0x07) << 8 | raw[pos + 2])
        if end > len(raw) or raw[end - 1] != HDLC_FLAG:
            break
        frames.append(raw[pos:end])
        pos = end
    if not frames or pos != len(raw):
        return [raw]
    return frames


# ------------------------------------------------------------------ layers


def dissect(data, keystore=None, acb=None):
    """Layers of one input. GBCS messages are checked (MAC, signature) with `keystore`
    (an `emulator.crypto.KeyStore`, optional); `acb` is the EUI-64 of the Access Control
    Broker whose KA key MACs commands from remote parties (RTDS: 90B3D51F30000002)."""
    data = bytes(data)
    dissection = Dissection(data)
    if not data:
        dissection.fail("input", 0, "no bytes")
    elif is_gbcs(data):
        _gbcs(dissection, data, keystore, acb)
    elif data[0] == HDLC_FLAG:
        _hdlc(dissection, data)
    elif data[:2] == b"\x00\x01":
        _wrapper(dissection, data)
    else:
        _apdu(dissection, data, 0)
    return dissection


def _hdlc(dissection, data):
    try:
        frame = hdlc.parse_frame(data)
    except CodecError as err:
        dissection.fail("hdlc", err.offset or 0, err.reason)
        return
    control = dict(frame.control)
    control.pop("_io", None)
    kind = control.get("kind")
    fields = {
        "segmented": frame.segmented,
        "destination": _hdlc_address(frame.destination),
        "source": _hdlc_address(frame.source),
        "control": control,
        "information_length": len(frame.info),
    }
    summary = "HDLC %s" % str(kind).upper()
    if control.get("ns") is not None:
        summary += " N(S)=%d" % control["ns"]
    if control.get("nr") is not None:
        summary += " N(R)=%d" % control["nr"]
    dissection.layers.append(Layer("hdlc", 0, len(data), summary, fields))
    info = bytes(frame.info)
    if not info:
        return
    info_offset = len(data) - 3 - len(info)      # the information field ends before FCS, flag
    if str(kind).lower() in ("snrm", "ua"):
        _hdlc_parameters(dissection, info, info_offset)
    elif str(kind).lower() in ("i", "ui"):
        _llc(dissection, info, info_offset, frame.segmented)
    else:
        dissection.layers.append(Layer("information", info_offset, len(info),
                                       "%d bytes" % len(info), {"bytes": info}))


def _hdlc_address(address):
    value, size = address.value, address.size
    out = {"value": value, "size": size}
    if size == 2:
        out.update(upper=value >> 7, lower=value & 0x7F)       # IEC 62056-46 §6.4.2.2
    elif size == 4:
        out.update(upper=value >> 14, lower=value & 0x3FFF)
    return out


def _hdlc_parameters(dissection, info, offset):
    try:
        parameters = hdlc.parse_parameters(info)
    except CodecError as err:
        dissection.fail("hdlc-parameters", offset + (err.offset or 0), err.reason)
        return
    dissection.layers.append(Layer("hdlc-parameters", offset, len(info),
                                   "link parameter negotiation", parameters))


def _llc(dissection, info, offset, segmented):
    header = info[:3]
    if header not in (LLC_COMMAND, LLC_RESPONSE):
        # Only the first segment of an APDU carries the LLC header (IEC 62056-46 §8.1),
        # so an I-frame without one continues an APDU begun in an earlier frame.
        dissection.layers.append(Layer("segment", offset, len(info),
                                       "APDU segment without LLC header (a continuation)",
                                       {"bytes": info}))
        return
    direction = "command" if header == LLC_COMMAND else "response"
    dissection.layers.append(Layer("llc", offset, 3, "LLC %s (E6 %s 00)"
                                   % (direction, header[1:2].hex().upper()),
                                   {"destination_lsap": 0xE6, "source_lsap": header[1],
                                    "quality": 0}))
    if segmented:
        dissection.layers.append(Layer("segment", offset + 3, len(info) - 3,
                                       "first APDU segment (more frames follow)",
                                       {"bytes": info[3:]}))
        return
    _apdu(dissection, info[3:], offset + 3)


def _wrapper(dissection, data):
    try:
        wpdu = wrapper.parse_wpdu(data)
    except CodecError as err:
        dissection.fail("wrapper", err.offset or 0, err.reason)
        return
    fields = {"version": wrapper.VERSION, "source_wport": wpdu.source_wport,
              "destination_wport": wpdu.destination_wport, "length": len(wpdu.apdu)}
    dissection.layers.append(Layer(
        "wrapper", 0, wrapper.HEADER_LENGTH,
        "wrapper wPort %d -> %d, %d APDU bytes" % (wpdu.source_wport, wpdu.destination_wport,
                                                   len(wpdu.apdu)), fields))
    _apdu(dissection, bytes(wpdu.apdu), wrapper.HEADER_LENGTH)


def _apdu(dissection, apdu, offset):
    if not apdu:
        dissection.fail("apdu", offset, "empty APDU")
        return
    if apdu[0] in ACSE_TAGS:
        _acse(dissection, apdu, offset)
        return
    try:
        name, fields = xdlms.decode_apdu(apdu)
    except CodecError as err:
        dissection.fail(err.layer, offset + (err.offset or 0), err.reason)
        return
    dissection.layers.append(Layer("xdlms", offset, len(apdu), _apdu_summary(name, fields),
                                   dict(fields, apdu=name)))


def _acse(dissection, apdu, offset):
    try:
        fields = acse.decode_acse(apdu)
    except CodecError as err:
        dissection.fail(err.layer, offset + (err.offset or 0), err.reason)
        return
    summary = fields["pdu"].upper()
    if fields.get("result") is not None:
        summary += " result %s" % fields["result"]
    dissection.layers.append(Layer("acse", offset, len(apdu), summary, fields))
    user_information = fields.get("user_information")
    if user_information:
        # user-information ([30], Green Book 9.4) is the last element of AARQ/AARE:
        # its OCTET STRING contents end the PDU
        start = offset + apdu.rfind(user_information)
        try:
            initiate = acse.decode_user_information(user_information)
        except CodecError as err:
            dissection.fail(err.layer, start + (err.offset or 0), err.reason)
            return
        dissection.layers.append(Layer("xdlms-initiate", start, len(user_information),
                                       initiate.get("pdu", "initiate"), initiate))


def _apdu_summary(name, fields):
    words = [name]
    descriptor = fields.get("cosem_attribute_descriptor") or fields.get("cosem_method_descriptor")
    if descriptor:
        words.append(_descriptor_text(descriptor))
    result = fields.get("result")
    scope = result if isinstance(result, dict) else fields
    for key in RESULT_FIELDS:
        code = scope.get(key)
        if isinstance(code, int) and not isinstance(code, bool):
            words.append("%s=%s" % (key, R.DATA_ACCESS_RESULT_NAMES.get(code, code)))
    return " ".join(words)


def _descriptor_text(descriptor):
    class_id = descriptor.get("class_id")
    ln = descriptor.get("instance_id")
    member = descriptor.get("attribute_id", descriptor.get("method_id"))
    kind = "attr" if "attribute_id" in descriptor else "method"
    return "%s %s %s %s" % (CLASS_NAMES.get(class_id, "class %s" % class_id),
                            _ln_text(ln), kind, member)


def _ln_text(ln):
    if isinstance(ln, (bytes, bytearray)) and len(ln) == 6:
        text = O.obis_text(bytes(ln))
        name = O.NAMES.get(bytes(ln))
        return "%s (%s)" % (text, name) if name else text
    return repr(ln)


# ------------------------------------------------------------------ GBCS


CRA_NAMES = {1: "command", 2: "response", 3: "alert"}


def _alert_message_names():
    """Names of the alert message codes, from the constants `firmware.gbcs.codes` gives
    them (the ones that name an alert first)."""
    names = {}
    for constant, value in sorted(vars(codes).items(), key=lambda kv: "ALERT" not in kv[0]):
        if constant.isupper() and isinstance(value, int) and value in codes.ALERT_MESSAGE_CRITICAL:
            names.setdefault(value, constant)
    return names


ALERT_MESSAGE_NAMES = _alert_message_names()


def _gbcs(dissection, data, keystore, acb):
    """GBCS v4 clause 7.2: MAC header, general-signing grouping header, payload, signature,
    MAC; then the payload by its first bytes, and the MAC and signature checks."""
    try:
        body = gbcs.decode(data)
    except CodecError as err:
        dissection.fail(err.layer, err.offset or 0, err.reason)
        return
    mac = body.mac
    mac_header = 0
    if mac is not None:
        # DD 00x6 <BER length: 1, or 1 + n when 0x8n> 11 00000000 (GBCS 7.2.x MAC header)
        length_octets = 1 + (data[7] & 0x7F if data[7] & 0x80 else 0)
        mac_header = 7 + length_octets + len(gbcs.SECURITY_HEADER)
        dissection.layers.append(Layer(
            "gbcs-mac-header", 0, mac_header,
            "MAC header: %d bytes protected, 12-byte MAC" % (len(data) - mac_header - 12),
            {"security_header": gbcs.SECURITY_HEADER, "mac": mac}))
    signature = body.signature
    tail = (0 if signature is None else 1 + len(signature)) + (12 if mac is not None else 0)
    payload_at = len(data) - tail - len(body.payload)
    fields = _grouping_fields(body)
    dissection.layers.append(Layer("gbcs", mac_header, len(data) - mac_header,
                                   _grouping_summary(fields), fields))
    _gbcs_payload(dissection, body, bytes(body.payload), payload_at, keystore)
    _verify(dissection, data, keystore, acb)


def _grouping_fields(body):
    other = body.other_information
    code = other.message_code
    name = codes.name_of(code) or ALERT_MESSAGE_NAMES.get(code)
    critical = codes.is_critical(code)
    fields = {
        "cra_flag": "%d (%s)" % (int(body.cra_flag), CRA_NAMES[int(body.cra_flag)]),
        "originator_counter": "%d (0x%016X)" % (body.originator_counter,
                                                body.originator_counter),
        "originator": body.originator.hex().upper(),
        "recipient": body.recipient.hex().upper(),
        "date_time": (_datetime_text(body.date_time) or body.date_time.hex())
        if len(body.date_time) == 12 else None,
        "message_code": "0x%04X" % code,
        "use_case": name,
        "critical": critical,
    }
    if other.supplementary is not None:
        fields["supplementary_remote_party"] = other.supplementary.remote_party.hex().upper()
        fields["supplementary_remote_counter"] = other.supplementary.remote_counter
    if other.tail:
        fields["other_information_tail"] = bytes(other.tail)
    fields["payload_length"] = len(body.payload)
    signature = body.signature
    fields["signature"] = ("absent (pre-command)" if signature is None
                           else "none (00)" if signature == b"" else bytes(signature))
    return fields


def _grouping_summary(fields):
    return "%s %s %s counter %s from %s to %s" % (
        fields["use_case"] or "unknown use case", fields["message_code"],
        fields["cra_flag"].split("(")[1].rstrip(")"), fields["originator_counter"].split()[0],
        fields["originator"], fields["recipient"])


def _gbcs_payload(dissection, body, payload, offset, keystore):
    """The payload by its first bytes (DOMAIN.md): D9/DA DLMS ACCESS, 0F DLMS
    Data-Notification, 01 09 GBZ, otherwise ASN.1 DER by message code and CRA flag."""
    if not payload:
        return
    if payload[0] in (access.ACCESS_REQUEST, access.ACCESS_RESPONSE):
        try:
            name, fields = access.decode_access(payload)
        except CodecError as err:
            dissection.fail(err.layer, offset + (err.offset or 0), err.reason)
            return
        fields = {k: v for k, v in fields.items() if k != "encodings"}
        dissection.layers.append(Layer("dlms-access", offset, len(payload), name, fields))
        _read_use_case(dissection, body, payload, offset, keystore)
    elif payload[:2] == b"\x01\x09":
        try:
            value = gbz.decode(payload)
        except CodecError as err:
            dissection.fail(err.layer, offset + (err.offset or 0), err.reason)
            return
        components = value.components or []
        summary = ("GBZ alert 0x%04X" % value.alert.alert_code if value.alert is not None
                   else "GBZ %d component(s)" % len(components))
        dissection.layers.append(Layer("gbz", offset, len(payload), summary,
                                       _container_fields(value)))
        _read_use_case(dissection, body, payload, offset, keystore)
    elif payload[:3] == b"\xdd\x00\x09":
        dissection.layers.append(Layer("segment", offset, len(payload),
                                       "segmented GBCS payload (routing header + GBT)",
                                       {"bytes": payload}))
    elif payload[0] == xdlms.DATA_NOTIFICATION:
        _apdu(dissection, payload, offset)
    else:
        kind = _asn1_kind(body)
        if kind is None:
            what = ("ASN.1 DER of a structure the host codecs do not describe"
                    if payload[0] == 0x30 else "a payload the host codecs do not describe")
            dissection.layers.append(Layer("payload", offset, len(payload), what,
                                           {"bytes": payload}))
            return
        try:
            value = gbcs_asn1.decode(kind, payload)
        except CodecError as err:
            dissection.fail(err.layer, offset + (err.offset or 0), err.reason)
            return
        dissection.layers.append(Layer("asn1", offset, len(payload), kind,
                                       _container_fields(value)))


def _asn1_kind(body):
    """Which GBCS section 13 structure an ASN.1 payload is, by message code and CRA flag."""
    code, cra = body.other_information.message_code, int(body.cra_flag)
    suffix = {1: "_command", 2: "_response"}.get(cra)
    if code == codes.FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT:
        return "cs02b_alert"
    if code == codes.FUTURE_DATED_FIRMWARE_ACTIVATION_ALERT:
        return "cs06_alert"
    if suffix is None:
        return None
    if code in codes.CS02B_CODES:
        return "cs02b" + suffix
    if code in (codes.CS03A1, codes.CS03A2, codes.CS03B, codes.CS03C):
        return "join" + suffix
    if code in (codes.CS04AC, codes.CS04B):
        return "unjoin" + suffix
    simple = {codes.CS02E: "cs02e", codes.CS06: "cs06", codes.GCS28: "gcs28"}
    return simple[code] + suffix if code in simple else None


def _container_fields(value):
    """A construct Container (or anything in it) as plain JSON-safe values."""
    if isinstance(value, dict):
        return {str(k): _container_fields(v) for k, v in value.items()
                if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_container_fields(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _read_use_case(dissection, body, payload, offset, keystore):
    """A response read as its use case reads it (DLMS or GBZ), encrypted fields opened
    when the keystore holds the recipient's KA private key."""
    from emulator.usecases import USE_CASE_BUILDERS, BuildContext, UseCaseError

    if int(body.cra_flag) != 2:
        return
    uc = USE_CASE_BUILDERS.get(codes.name_of(body.other_information.message_code) or "")
    if uc is None:
        return
    ctx = BuildContext(body.originator_counter, body.recipient, body.originator)
    if keystore is not None:
        ctx.crypto = _host_crypto()
        ctx.ka_private = keystore.private_key(body.recipient, "ka")
        ctx.target_ka_public = keystore.public_key(body.originator, "ka")
    try:
        fields = uc.read_response(payload, ctx)
    except UseCaseError as err:
        dissection.layers.append(Layer("use-case", offset, len(payload),
                                       "%s response not read: %s" % (uc.name, err), {}))
        return
    except Exception as err:    # a reader's own shape assumption broke: say so, go on
        dissection.layers.append(Layer("use-case", offset, len(payload),
                                       "%s response not read (reader failed: %s: %s)"
                                       % (uc.name, type(err).__name__, err), {}))
        return
    dissection.layers.append(Layer("use-case", offset, len(payload),
                                   "%s response%s" % (uc.name, "" if fields.get("ok", True)
                                                      else " (refused)"),
                                   _container_fields(fields)))


_CRYPTO = []


def _host_crypto():
    if not _CRYPTO:
        from emulator.crypto import HostCrypto
        _CRYPTO.append(HostCrypto())
    return _CRYPTO[0]


def _verify(dissection, data, keystore, acb):
    """MAC and signature with the keystore (GBCS 4.3.3): commands from a remote party
    are MAC'd by the ACB's KA key with the device's; responses and alerts by the
    originator's KA key with the recipient's. ECDH is symmetric, so either side's
    private key will do."""
    try:
        message = envelope.parse(data)
    except envelope.GbcsError as err:       # the two codecs disagree: say so, check nothing
        dissection.check("decode", FAILED, "firmware envelope parser: %s" % err)
        return
    crypto = _host_crypto()
    if not message.mac_protected:
        dissection.check("mac", ABSENT, "signed only, no MAC header")
    elif keystore is None:
        dissection.check("mac", NOT_CHECKED, "no keystore (--keystore DIR)")
    else:
        keys, why = _mac_keys(message, keystore, acb)
        if keys is None:
            dissection.check("mac", NOT_CHECKED, why)
        elif security.verify_mac(crypto, crypto.ecdh(*keys), message):
            dissection.check("mac", VERIFIED, why)
        else:
            dissection.check("mac", FAILED, why)
    if message.signature is None:
        dissection.check("signature", ABSENT, "pre-command: no signature field"
                         if not message.signature_field else "not signed (00)")
        return
    public = None if keystore is None else keystore.public_key(message.originator, "ds")
    who = "DS key of %s" % message.originator.hex().upper()
    if public is None:
        dissection.check("signature", NOT_CHECKED, "no keystore" if keystore is None
                         else "keystore has no " + who)
    elif security.verify_signature(crypto, public, message):
        dissection.check("signature", VERIFIED, who)
    else:
        dissection.check("signature", FAILED, who)


def _mac_keys(message, keystore, acb):
    """((private key, peer public x||y), description) or (None, why not)."""
    originator, recipient = message.originator, message.recipient
    if message.cra_flag == envelope.CRA_COMMAND and not keystore.is_device(originator):
        originator = acb if acb is not None else DEFAULT_ACB
    pair = "KA keys of %s and %s" % (originator.hex().upper(), recipient.hex().upper())
    for mine, theirs in ((originator, recipient), (recipient, originator)):
        private = keystore.private_key(mine, "ka")
        public = keystore.public_key(theirs, "ka")
        if private is not None and public is not None:
            return (private, public), pair
    return None, "keystore lacks a private key of the " + pair


# ------------------------------------------------------------------ values


def is_data(value):
    """A value of the A-XDR tuple model (docs/CORE_INTERFACES.md §1)?"""
    return (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int)
            and value[0] in A.TYPE_NAMES)


def data_json(value):
    tag, payload = value
    name = A.TYPE_NAMES[tag]
    if tag in (A.ARRAY, A.STRUCTURE):
        return {"type": name, "value": [data_json(v) for v in payload]}
    if tag == A.COMPACT_ARRAY:
        return {"type": name, "description": jsonable(payload[0]),
                "value": [data_json(v) for v in payload[1]]}
    if tag == A.BIT_STRING:
        return {"type": name, "bits": payload[0], "value": bytes(payload[1]).hex()}
    out = {"type": name, "value": jsonable(payload)}
    hint = _octets_hint(tag, payload)
    if hint:
        out["text"] = hint
    return out


def _octets_hint(tag, payload):
    """Readable text for octet-strings that are obviously a logical name or a date-time."""
    if tag == A.OCTET_STRING and isinstance(payload, bytes):
        if len(payload) == 12:
            return _datetime_text(payload)
        if len(payload) == 6:
            return O.obis_text(payload)
    if tag in (A.VISIBLE_STRING, A.UTF8_STRING) and isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    if tag == A.DATE_TIME and isinstance(payload, bytes):
        return _datetime_text(payload)
    return None


def _datetime_text(b12):
    """Blue Book 4.1.6.1 date-time: year(2) month day weekday hour min sec hundredths
    deviation(2) status; 0xFF/0xFFFF are 'not specified'."""
    year = b12[0] << 8 | b12[1]
    month, day, hour, minute, second = b12[2], b12[3], b12[5], b12[6], b12[7]
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    deviation = b12[9] << 8 | b12[10]
    suffix = "" if deviation == 0x8000 else " deviation %d" % (
        deviation - 0x10000 if deviation & 0x8000 else deviation)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + suffix + " status 0x%02x" % b12[11]


def jsonable(value):
    if is_data(value):
        return data_json(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# ------------------------------------------------------------------ rich rendering


def render_tree(dissection, title):
    tree = Tree("[bold]%s[/]  %d bytes" % (escape(title), len(dissection.data)))
    node = tree
    for layer in dissection.layers:
        node = node.add("[bold cyan]%s[/] @%d+%d  %s" % (layer.name, layer.offset, layer.length,
                                                        escape(layer.summary)))
        _add_fields(node, layer.fields)
    if dissection.error:
        layer, offset, reason = dissection.error
        node.add("[bold red]error[/] %s at offset %d: %s" % (escape(layer), offset, escape(reason)))
    for check in dissection.checks:
        colour = CHECK_COLOURS.get(check["result"], "yellow")
        tree.add("[bold]%s[/] [%s]%s[/]%s" % (escape(check["check"]), colour, check["result"],
                                               "  " + escape(check["detail"])
                                               if check["detail"] else ""))
    return tree


CHECK_COLOURS = {VERIFIED: "green", FAILED: "bold red", NOT_CHECKED: "yellow", ABSENT: "dim"}


def _add_fields(node, fields):
    for key, value in fields.items():
        if str(key).startswith("_"):
            continue
        _add_value(node, str(key), value)


def _add_value(node, label, value):
    if is_data(value):
        _add_data(node, label, value)
    elif isinstance(value, dict):
        _add_fields(node.add(escape(label)), value)
    elif isinstance(value, list):
        child = node.add("%s [dim](%d)[/]" % (escape(label), len(value)))
        for i, item in enumerate(value):
            _add_value(child, "[%d]" % i, item)
    else:
        node.add("%s: %s" % (escape(label), escape(_scalar_text(label, value))))


def _add_data(node, label, value):
    tag, payload = value
    name = A.TYPE_NAMES[tag]
    if tag in (A.ARRAY, A.STRUCTURE):
        child = node.add("%s: [green]%s[/] [dim](%d)[/]" % (escape(label), name, len(payload)))
        for i, item in enumerate(payload):
            _add_data(child, "[%d]" % i, item)
    elif tag == A.COMPACT_ARRAY:
        child = node.add("%s: [green]%s[/] [dim](%d)[/]" % (escape(label), name, len(payload[1])))
        for i, item in enumerate(payload[1]):
            _add_data(child, "[%d]" % i, item)
    else:
        text = jsonable(payload) if tag != A.BIT_STRING else "%d bits %s" % (
            payload[0], bytes(payload[1]).hex())
        hint = _octets_hint(tag, payload)
        node.add("%s: [green]%s[/] %s%s" % (escape(label), name, escape(str(text)),
                                            " [dim](%s)[/]" % escape(hint) if hint else ""))


def _scalar_text(label, value):
    if isinstance(value, (bytes, bytearray)):
        if label == "instance_id" and len(value) == 6:
            return _ln_text(bytes(value))
        return bytes(value).hex()
    if label == "class_id" and value in CLASS_NAMES:
        return "%d (%s)" % (value, CLASS_NAMES[value])
    if label in RESULT_FIELDS and isinstance(value, int):
        return "%d (%s)" % (value, R.DATA_ACCESS_RESULT_NAMES.get(value, "?"))
    return str(value)
