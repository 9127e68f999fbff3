"""GBZ: the GBCS payload that carries ZigBee (ZCL) commands to and from a GSME.

Layout (GBCS v4 clause 7.3 "GBZ"; checked on every `01 09` payload of RTDS 4.5.0 and
against SmartDCCInnovation/gbcs-parser; all GBZ-level numbers are big-endian, the ZCL
inside is little-endian):

    01 09                      profile id (ZigBee Smart Energy)
    <count: 1>                 number of components
    per component:
      <control: 1>             0x01 last component, 0x02 encrypted, 0x10 from-date-time
      <cluster id: 2>
      <length: 2>              of what follows
      [<from date-time: 4>]    ZigBee UTC (seconds since 2000), when 0x10
      plain:      <ZCL frame>  header (frame control, seq, command id) + payload
      encrypted:  <additional header control: 1> <additional header frame counter: 1>
                  <ZCL header> <ciphered length: 2>
                  31 00000000 <ciphertext> <GCM tag: 12>     (GBCS encrypted field)

An alert (GBCS 7.3.x GBZ alert payload) has, after the count, the alert code (2) and a
time stamp (4, ZigBee UTC) where a component's control byte would be (alert codes have
the top bit set, control bytes never do); a future-dated alert (0x8F66/0x8F67) then
carries a length-prefixed {message code, originator counter, cluster id, ZCL frame
control, command id}, other alerts their components.

Encryption: AES-128-GCM, key from the KDF in payload-encryption mode (4) with the
response's originator, counter and recipient, IV = originator || 00000000, AAD 0x31
(GBCS 7.3.x; the same as DLMS encrypted fields, DOMAIN.md).
"""

import struct

from firmware.gbcs import security
from firmware.zcl import frame as zcl
from firmware.zcl.types import ZclError

PROFILE_ID = 0x0109
CONTROL_LAST = 0x01
CONTROL_ENCRYPTED = 0x02
CONTROL_FROM_DATE_TIME = 0x10
_CONTROL_BITS = CONTROL_LAST | CONTROL_ENCRYPTED | CONTROL_FROM_DATE_TIME
FUTURE_DATED_ALERTS = (0x8F66, 0x8F67)
FUTURE_DATED_LENGTH = 14
ENCRYPTED_FIELD_HEADER = b"\x31\x00\x00\x00\x00"
TAG_LENGTH = 12
MAX_COMPONENTS = 255


class GbzError(Exception):
    """A GBZ payload that cannot be parsed or built; `offset` is where the fault is."""

    def __init__(self, offset, reason):
        super().__init__("gbz: offset %s: %s" % (offset, reason))
        self.offset = offset
        self.reason = reason


class GbzComponent:
    """One component. Plain: `frame` is the whole ZCL frame. Encrypted: `frame` is the
    ZCL header only, `additional_header` the 2 bytes before it and `encrypted_field` the
    GBCS encrypted field (31 00000000 || ciphertext || tag) that replaces the payload."""

    def __init__(self, cluster_id, frame, from_date_time=None, additional_header=None,
                 encrypted_field=None):
        self.cluster_id = cluster_id
        self.frame = bytes(frame)
        self.from_date_time = from_date_time
        self.additional_header = additional_header
        self.encrypted_field = encrypted_field

    @property
    def encrypted(self):
        return self.encrypted_field is not None

    def control(self, last):
        out = CONTROL_LAST if last else 0
        if self.encrypted:
            out |= CONTROL_ENCRYPTED
        if self.from_date_time is not None:
            out |= CONTROL_FROM_DATE_TIME
        return out

    def zcl_frame(self):
        """The plain component's ZCL frame, decoded (firmware.zcl.frame.ZclFrame)."""
        if self.encrypted:
            raise GbzError(None, "the ZCL payload of an encrypted component is ciphertext")
        return zcl.decode(self.frame)

    def body(self):
        out = b""
        if self.from_date_time is not None:
            out += _uint32(self.from_date_time)
        if not self.encrypted:
            return out + self.frame
        header = bytes(self.additional_header or b"\x00\x00")
        if len(header) != 2:
            raise GbzError(None, "the additional header is 2 bytes")
        field = bytes(self.encrypted_field)
        return out + header + self.frame + _uint16(len(field)) + field

    def encode(self, last):
        if not 0 <= self.cluster_id <= 0xFFFF:
            raise GbzError(None, "cluster id out of range")
        body = self.body()
        return bytes((self.control(last),)) + _uint16(self.cluster_id) + _uint16(len(body)) + body

    def __eq__(self, other):
        return isinstance(other, GbzComponent) and self.encode(False) == other.encode(False)

    def __repr__(self):
        return "GbzComponent(cluster=0x%04X, %s)" % (
            self.cluster_id, "encrypted" if self.encrypted else self.frame.hex())


class FutureDatedAlert:
    """The body of a GBZ future-dated alert: which command ran (or did not)."""

    def __init__(self, message_code, originator_counter, cluster_id, frame_control,
                 command_id):
        self.message_code = message_code
        self.originator_counter = originator_counter
        self.cluster_id = cluster_id
        self.frame_control = frame_control
        self.command_id = command_id

    def encode(self):
        return (bytes((FUTURE_DATED_LENGTH,)) + _uint16(self.message_code)
                + struct.pack(">II", self.originator_counter >> 32,
                              self.originator_counter & 0xFFFFFFFF)
                + _uint16(self.cluster_id) + bytes((self.frame_control, self.command_id)))


class GbzPayload:
    """Components, or an alert (alert code, time stamp) with its components or its
    future-dated body. `count` is the header's component count, kept as read: in a
    future-dated alert it counts the future-dated body."""

    def __init__(self, components=(), alert_code=None, time_stamp=None, future_dated=None,
                 count=None):
        self.components = list(components)
        self.alert_code = alert_code
        self.time_stamp = time_stamp
        self.future_dated = future_dated
        self.count = count

    @property
    def is_alert(self):
        return self.alert_code is not None

    def encode(self):
        count = self.count
        if count is None:
            count = 1 if self.future_dated is not None else len(self.components)
        if not 0 <= count <= MAX_COMPONENTS:
            raise GbzError(None, "at most 255 components")
        out = _uint16(PROFILE_ID) + bytes((count,))
        if self.is_alert:
            if not 0x8000 <= self.alert_code <= 0xFFFF:
                raise GbzError(None, "a GBZ alert code has its top bit set")
            out += _uint16(self.alert_code) + _uint32(self.time_stamp or 0)
            if self.future_dated is not None:
                return out + self.future_dated.encode()
        last = len(self.components) - 1
        for i in range(len(self.components)):
            out += self.components[i].encode(i == last)
        return out


def decode(data):
    """Parse a GBZ payload; raises GbzError(offset, reason) at the first fault."""
    buf = bytes(data)
    if len(buf) < 3:
        raise GbzError(len(buf), "a GBZ payload starts with profile id and count")
    if buf[0:2] != b"\x01\x09":
        raise GbzError(0, "profile id must be 0109")
    count = buf[2]
    at = 3
    payload = GbzPayload(count=count)
    if at < len(buf) and buf[at] & 0x80:
        at = _alert_header(buf, at, payload)
        if payload.alert_code in FUTURE_DATED_ALERTS:
            payload.future_dated, at = _future_dated(buf, at)
            _expect_end(buf, at)
            return payload
    for i in range(count):
        start = at
        component, last, at = _component(buf, at)
        if last != (i == count - 1):
            raise GbzError(start, "the last-component flag must be on the last one only")
        payload.components.append(component)
    _expect_end(buf, at)
    return payload


def _expect_end(buf, at):
    if at != len(buf):
        raise GbzError(at, "%d bytes after the last component" % (len(buf) - at))


def _alert_header(buf, at, payload):
    _need(buf, at, 6, "alert code and time stamp")
    payload.alert_code, payload.time_stamp = struct.unpack_from(">HI", buf, at)
    return at + 6


def _future_dated(buf, at):
    _need(buf, at, 1, "future-dated alert length")
    if buf[at] != FUTURE_DATED_LENGTH:
        raise GbzError(at, "future-dated alert body is 14 bytes")
    _need(buf, at + 1, FUTURE_DATED_LENGTH, "future-dated alert body")
    code, hi, lo, cluster = struct.unpack_from(">HIIH", buf, at + 1)
    body = FutureDatedAlert(code, (hi << 32) | lo, cluster, buf[at + 13], buf[at + 14])
    return body, at + 1 + FUTURE_DATED_LENGTH


def _component(buf, at):
    _need(buf, at, 5, "component header")
    control = buf[at]
    if control & ~_CONTROL_BITS & 0xFF:
        raise GbzError(at, "control 0x%02X uses reserved bits" % control)
    cluster_id, length = struct.unpack_from(">HH", buf, at + 1)
    start = at + 5
    _need(buf, start, length, "component of %d bytes" % length)
    end = start + length
    body = buf[start:end]
    try:
        component = _component_body(control, cluster_id, body)
    except GbzError as e:
        raise GbzError(start + (e.offset or 0), e.reason)
    except ZclError as e:
        raise GbzError(start + (e.offset or 0), "ZCL: " + e.reason)
    return component, bool(control & CONTROL_LAST), end


def _component_body(control, cluster_id, body):
    at = 0
    from_date_time = None
    if control & CONTROL_FROM_DATE_TIME:
        _need(body, 0, 4, "from date-time")
        from_date_time = struct.unpack_from(">I", body, 0)[0]
        at = 4
    if not control & CONTROL_ENCRYPTED:
        zcl.decode_header(body, at)
        return GbzComponent(cluster_id, body[at:], from_date_time)
    _need(body, at, 2, "additional header")
    header = body[at:at + 2]
    zcl_end = zcl.decode_header(body, at + 2)[4]
    _need(body, zcl_end, 2, "ciphered information length")
    length = struct.unpack_from(">H", body, zcl_end)[0]
    field_at = zcl_end + 2
    if field_at + length != len(body):
        raise GbzError(zcl_end, "ciphered length %d does not fill the component" % length)
    field = body[field_at:]
    if len(field) < len(ENCRYPTED_FIELD_HEADER) + TAG_LENGTH:
        raise GbzError(field_at, "encrypted field shorter than its header and tag")
    if field[:5] != ENCRYPTED_FIELD_HEADER:
        raise GbzError(field_at, "encrypted field must start 31 00000000")
    return GbzComponent(cluster_id, body[at + 2:zcl_end], from_date_time, header, field)


def _need(buf, at, count, what):
    if at + count > len(buf):
        raise GbzError(at, "%s needs %d bytes, %d left" % (what, count, len(buf) - at))


def _uint16(n):
    if not 0 <= n <= 0xFFFF:
        raise GbzError(None, "%r does not fit 16 bits" % n)
    return struct.pack(">H", n)


def _uint32(n):
    if not 0 <= n <= 0xFFFFFFFF:
        raise GbzError(None, "%r does not fit 32 bits" % n)
    return struct.pack(">I", n)


# -- encrypted components ---------------------------------------------------------------

def payload_key(crypto, shared_secret, originator, counter, recipient):
    """The AES key of a message's encrypted GBZ components (KDF mode 4)."""
    return security.derive_key(crypto, shared_secret, originator,
                               security.KDF_MODE_PAYLOAD_ENCRYPTION, counter, recipient)


def encrypt_component(crypto, key, originator, cluster_id, frame, frame_counter=0,
                      header_control=0):
    """An encrypted component from a plain ZCL frame: header kept, payload ciphered."""
    frame = bytes(frame)
    split = zcl.header_length(frame)
    ciphertext, tag = crypto.gcm_encrypt(key, security.mac_iv(originator), frame[split:],
                                         bytes((security.ENCRYPTED_FIELD_TAG,)))
    field = ENCRYPTED_FIELD_HEADER + ciphertext + tag[:TAG_LENGTH]
    return GbzComponent(cluster_id, frame[:split], None,
                        bytes((header_control, frame_counter)), field)


def decrypt_component(crypto, key, originator, component):
    """The plain ZCL frame of an encrypted component; GbzError when the tag fails."""
    field = component.encrypted_field
    try:
        plaintext = crypto.gcm_decrypt(key, security.mac_iv(originator), field[5:-TAG_LENGTH],
                                       bytes((security.ENCRYPTED_FIELD_TAG,)),
                                       field[-TAG_LENGTH:])
    except ValueError:
        raise GbzError(None, "encrypted component does not verify")
    return component.frame + plaintext
