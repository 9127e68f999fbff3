"""Fuzz targets, one per protocol layer: feed one input, raise only on a finding.

Each codec layer hands the input to both of its decoders where two exist, the device's
(`firmware/`) and the host's (`emulator/codec/`, or the real peer library: zigpy for ZCL,
bellows for ASH and EZSP). A decoder raising its layer's own error (with an offset inside
the input and a reason) is the expected answer to bad input; any other exception is a
finding, and so is a disagreement: one accepts what the other rejects, or both accept
and read different things (ARCHITECTURE.md principles 3 and 6).

Device layers feed the input to a device core and demand that it never raises (its
catch-alls are watched, so a swallowed bug is a finding too), answers in its own
protocol, keeps its state after bad input, and still answers a valid request afterwards.

    from emulator.fuzz.targets import LAYERS
    LAYERS["hdlc"].run(data)       # None, or raises Finding (or the decoder's exception)

The same targets serve the atheris harness (`emulator.fuzz.coverage`), the corpus replay
tests and the DUT fuzzer.
"""

import json
import math
import struct

__all__ = ["Finding", "FuzzTarget", "LAYERS"]


class Finding(AssertionError):
    """A defect the input exposed: which layer, and what went wrong."""

    def __init__(self, layer, what):
        super().__init__("%s: %s" % (layer, what))
        self.layer = layer
        self.what = what


class FuzzTarget:
    """One layer: `run(data)` feeds one input and raises only on a finding.

    `errors` are the layer's own error classes (both decoders'); `setup` builds the
    decoders' imports (and a device) on first use, so importing this module is cheap and
    atheris instruments the codecs as they are imported."""

    def __init__(self, name, description, errors, check):
        self.name = name
        self.description = description
        self._errors = errors
        self._check = check
        self._resolved = None

    @property
    def errors(self):
        if self._resolved is None:
            self._resolved = tuple(self._errors())
        return self._resolved

    def run(self, data):
        self._check(self, bytes(data))

    def expect(self, condition, what, *details):
        if not condition:
            raise Finding(self.name, what % details if details else what)

    def outcome(self, decode, error, data):
        """(True, value) or (False, the layer error); the error must say where and why."""
        try:
            return True, decode(data)
        except error as e:
            offset = getattr(e, "offset", None)
            self.expect(offset is None or (isinstance(offset, int)
                                           and 0 <= offset <= len(data)),
                        "%s offset %r outside the %d-byte input", type(e).__name__,
                        offset, len(data))
            self.expect(str(getattr(e, "reason", e)), "%s without a reason", type(e).__name__)
            return False, e

    def agree(self, ours, theirs, data, same=None):
        """Both decoders' outcomes: the same verdict, and (when both accept) the same
        reading by `same(ours, theirs)` (default ==)."""
        self.expect(ours[0] == theirs[0], "verdicts differ on %s: firmware %s, host %s",
                    data.hex(), _verdict(ours), _verdict(theirs))
        if ours[0]:
            equal = same(ours[1], theirs[1]) if same else ours[1] == theirs[1]
            self.expect(equal, "readings differ on %s: firmware %r, host %r", data.hex(),
                        ours[1], theirs[1])


def _read(outcome, reading):
    """An outcome with `reading` applied to the decoded value, when there is one."""
    return (True, reading(outcome[1])) if outcome[0] else outcome


def _verdict(outcome):
    return "accepts" if outcome[0] else "rejects (%s)" % (outcome[1],)


LAYERS = {}


def layer(name, description, errors):
    def register(check):
        LAYERS[name] = FuzzTarget(name, description, errors, check)
        return check
    return register


# ---------------------------------------------------------------- HDLC

def _hdlc_errors():
    from emulator.codec.hdlc import HdlcCodecError
    from firmware.hdlc.frame import HdlcError
    return HdlcError, HdlcCodecError


def _hdlc_reading(frame):
    """The fields of a firmware HdlcFrame, as the host codec names them."""
    return (frame.segmented, tuple(frame.destination), tuple(frame.source), frame.control,
            bytes(frame.info))


def _host_hdlc_reading(parsed):
    from emulator.codec import hdlc
    control = hdlc.Control.build(parsed.control)
    return (parsed.segmented, (parsed.destination.value, parsed.destination.size),
            (parsed.source.value, parsed.source.size), control[0], parsed.info)


@layer("hdlc", "HDLC frames (IEC 62056-46): firmware parse_frame and FrameReader vs "
       "the construct codec, link parameters of SNRM/UA", _hdlc_errors)
def _hdlc(target, data):
    from emulator.codec import hdlc as host
    from firmware.hdlc import frame as fw
    from firmware.hdlc.parameters import decode_parameters
    from firmware.hdlc.reader import FrameReader
    ours = target.outcome(fw.parse_frame, fw.HdlcError, data)
    theirs = target.outcome(host.parse_frame, host.HdlcCodecError, data)
    target.agree(_read(ours, _hdlc_reading), _read(theirs, _host_hdlc_reading), data)
    if ours[0]:
        target.expect(ours[1].encode() == data, "HDLC %s does not rebuild", data.hex())
    if ours[0] and ours[1].info and ours[1].control & 0xEF in (fw.SNRM, fw.UA):
        info = bytes(ours[1].info)
        params = target.outcome(decode_parameters, fw.HdlcError, info)
        host_params = target.outcome(host.parse_parameters, host.HdlcCodecError, info)
        target.agree(_read(params, lambda p: (p.max_info_transmit, p.max_info_receive,
                                              p.window_transmit, p.window_receive)),
                     _read(host_params, lambda p: (p["max_info_transmit"],
                                                   p["max_info_receive"],
                                                   p["window_transmit"],
                                                   p["window_receive"])), info)
    # the stream reader, fed in pieces: every frame it finds is one both codecs read
    reader = FrameReader()
    step = 1 + (data[0] % 7 if data else 0)
    for at in range(0, len(data), step):
        reader.feed(data[at:at + step])
        while True:
            frame = reader.next_frame()
            if frame is None:
                break
            raw = frame.encode()
            target.expect(host.parse_frame(raw) is not None and fw.parse_frame(raw) == frame,
                          "reader frame %r does not round-trip", frame)


# ---------------------------------------------------------------- TCP wrapper

def _wrapper_errors():
    from emulator.codec.wrapper import WrapperCodecError
    from firmware.wrapper import WrapperError
    return WrapperError, WrapperCodecError


@layer("wrapper", "COSEM wrapper WPDUs (IEC 62056-47): firmware vs construct",
       _wrapper_errors)
def _wrapper(target, data):
    from emulator.codec import wrapper as host
    from firmware import wrapper as fw
    ours = target.outcome(fw.decode_wpdu, fw.WrapperError, data)
    theirs = target.outcome(host.parse_wpdu, host.WrapperCodecError, data)
    target.agree(_read(ours, tuple), _read(theirs, lambda w: (
        w.source_wport, w.destination_wport, w.apdu)), data)
    if not ours[0]:
        target.expect(ours[1].offset == theirs[1].offset,
                      "error offsets differ on %s: firmware %r, host %r", data.hex(),
                      ours[1].offset, theirs[1].offset)


# ---------------------------------------------------------------- ACSE

def _acse_errors():
    from emulator.codec.acse import AcseCodecError
    from firmware.dlms.acse import AcseError
    return AcseError, AcseCodecError


@layer("acse", "ACSE APDUs (AARQ, AARE, RLRQ, RLRE) and the xDLMS InitiateRequest/"
       "Response in user-information: firmware vs construct", _acse_errors)
def _acse(target, data):
    from emulator.codec import acse as host
    from firmware.dlms import acse as fw
    ours = target.outcome(lambda b: _named_pdu(fw.decode_acse(b)), fw.AcseError, data)
    theirs = target.outcome(lambda b: _named_fields(host.decode_acse(b)),
                            host.AcseCodecError, data)
    target.agree(ours, theirs, data)
    user_information = ours[1][1].get("user_information") if ours[0] else None
    if user_information:
        inner = target.outcome(lambda b: fw.decode_user_information(b).fields(),
                               fw.AcseError, user_information)
        host_inner = target.outcome(
            lambda b: _named_fields(host.decode_user_information(b))[1],
            host.AcseCodecError, user_information)
        target.agree(inner, host_inner, user_information)


def _named_pdu(pdu):
    return type(pdu).__name__.lower(), pdu.fields()


def _named_fields(fields):
    return fields["pdu"], {k: v for k, v in fields.items() if k != "pdu"}


# ---------------------------------------------------------------- xDLMS (and GBCS ACCESS)

def _xdlms_errors():
    from emulator.codec.access import AccessCodecError
    from emulator.codec.xdlms import XdlmsCodecError
    from firmware.dlms.access import AccessError
    from firmware.dlms.apdu import ApduError
    return ApduError, XdlmsCodecError, AccessError, AccessCodecError


ACCESS_TAGS = (0xD9, 0xDA)     # GBCS DLMS ACCESS request / response (GBCS 7.2.7)


@layer("xdlms", "xDLMS APDUs (GET/SET/ACTION, exception, data-notification) and the "
       "GBCS ACCESS request/response: firmware vs construct", _xdlms_errors)
def _xdlms(target, data):
    if data[:1] and data[0] in ACCESS_TAGS:
        from emulator.codec import access as host
        from firmware.dlms import access as fw
        ours = target.outcome(lambda b: _named_pdu(fw.decode(b)), fw.AccessError, data)
        theirs = target.outcome(host.decode_access, host.AccessCodecError, data)
        target.agree(ours, _read(theirs, _access_reading), data)
        if ours[0]:
            # both rebuild it alike, with minimal lengths (A-XDR reads a long-form length
            # the short form would do, and writes the short form back)
            rebuilt = fw.decode(data).encode()
            target.expect(rebuilt == host.encode_access(*theirs[1])
                          and _named_pdu(fw.decode(rebuilt)) == ours[1],
                          "ACCESS %s rebuilds as %s (firmware) and %s (host)", data.hex(),
                          rebuilt.hex(), host.encode_access(*theirs[1]).hex())
        return
    from emulator.codec import xdlms as host
    from firmware.dlms import apdu as fw
    ours = target.outcome(lambda b: _apdu_named(fw.decode_apdu(b)), fw.ApduError, data)
    theirs = target.outcome(host.decode_apdu, host.XdlmsCodecError, data)
    target.agree(ours, theirs, data, _same_values)


def _access_reading(named):
    name, fields = named
    return name.lower(), {k: v for k, v in fields.items() if k != "encodings"}


def _apdu_named(apdu):
    return type(apdu).__name__, apdu.fields()


# ---------------------------------------------------------------- A-XDR

def _axdr_errors():
    from emulator.codec.axdr import AxdrCodecError
    from firmware.dlms.axdr import AxdrError
    return AxdrError, AxdrCodecError


@layer("axdr", "A-XDR Data values (IEC 62056-6-2 / Green Book 9.5): firmware vs "
       "construct, decoded and re-encoded", _axdr_errors)
def _axdr(target, data):
    from emulator.codec import axdr as host
    from firmware.dlms import axdr as fw
    ours = target.outcome(fw.decode_all, fw.AxdrError, data)
    theirs = target.outcome(host.decode, host.AxdrCodecError, data)
    target.agree(ours, theirs, data, _same_values)
    if ours[0]:
        target.expect(fw.encode(ours[1]) == host.encode(theirs[1]),
                      "re-encodings differ for %s", data.hex())


def _same_values(a, b):
    return _bits(a) == _bits(b)


def _bits(value):
    """Floats compared by their bits (NaN != NaN), containers element by element."""
    if isinstance(value, float):
        return ("float", struct.pack(">d", value)) if math.isnan(value) else value
    if isinstance(value, (list, tuple)):
        return type(value)(_bits(v) for v in value)
    if isinstance(value, dict):
        return {k: _bits(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- GBCS envelope

def _gbcs_errors():
    from emulator.codec.gbcs import GbcsCodecError
    from firmware.gbcs.envelope import GbcsError
    return GbcsError, GbcsCodecError


@layer("gbcs", "GBCS message envelopes (GBCS clause 7.2, general and MAC headers, "
       "signature): firmware vs construct, decoded and rebuilt", _gbcs_errors)
def _gbcs(target, data):
    from emulator.codec import gbcs as host
    from firmware.gbcs import envelope as fw
    ours = target.outcome(fw.parse, fw.GbcsError, data)
    theirs = target.outcome(host.decode, host.GbcsCodecError, data)
    target.agree(_read(ours, fw.GbcsMessage.fields), _read(theirs, host.plain_fields), data)
    if ours[0]:
        # both rebuild it alike, with minimal BER lengths (a long-form length that the
        # short form would do is read, as BER allows, and not written back)
        rebuilt = ours[1].encode()
        target.expect(rebuilt == host.encode(theirs[1], theirs[1].mac)
                      and fw.parse(rebuilt).fields() == ours[1].fields(),
                      "GBCS %s rebuilds as %s (firmware) and %s (host)", data.hex(),
                      rebuilt.hex(), host.encode(theirs[1], theirs[1].mac).hex())


# ---------------------------------------------------------------- GBZ

def _gbz_errors():
    from emulator.codec.gbz import GbzCodecError
    from firmware.gbcs.gbz import GbzError
    from firmware.zcl.types import ZclError
    return GbzError, GbzCodecError, ZclError


def _gbz_reading(value):
    from firmware.zcl import frame as Z
    out = {"count": value.count, "alert": None, "future_dated": None, "components": []}
    if value.is_alert:
        out["alert"] = (value.alert_code, value.time_stamp)
    if value.future_dated is not None:
        d = value.future_dated
        out["future_dated"] = (d.message_code, d.originator_counter, d.cluster_id,
                               d.frame_control, d.command_id)
    for c in value.components:
        fc, manufacturer, tsn, command_id, at = Z.decode_header(c.frame)
        entry = {"cluster": c.cluster_id, "from": c.from_date_time, "encrypted": c.encrypted,
                 "header": (fc, manufacturer, tsn, command_id), "payload": c.frame[at:]}
        if c.encrypted:
            entry["additional"] = bytes(c.additional_header)
            entry["payload"] = bytes(c.encrypted_field)
        out["components"].append(entry)
    return out


def _host_gbz_reading(value, data):
    """The host's reading; a plain component's ZCL frame as the bytes the host delimited
    (zigpy's objects do not always serialise back to them: a character string that is
    not UTF-8 comes back with replacement characters), its command compared by
    `_zcl_agree`."""
    from emulator.codec import gbz as H
    out = H.plain_fields(value)
    for c, entry in zip(value.components or [], out["components"]):
        content = c.body.content
        if entry["encrypted"]:
            entry["additional"] = bytes((content.additional_header_control,
                                         content.frame_counter))
            entry["payload"] = H.ENCRYPTED_FIELD_HEADER + content.field.sealed
        else:
            start = c.offset + 5 + (4 if c.body.from_date_time is not None else 0)
            length = int.from_bytes(data[c.offset + 3:c.offset + 5], "big")
            frame = data[start:c.offset + 5 + length]
            entry["payload"] = frame[len(content.header.serialize()):]
    return out


def _zigpy_serialises_back(value, data):
    """Whether zigpy serialises every plain component's command back to its bytes. It does
    not where a character string is not ASCII: zigpy's CharacterString writes the count of
    characters as the length, not of octets (and undecodable octets come back as U+FFFD)."""
    host = _host_gbz_reading(value, data)["components"]
    for component, entry in zip(value.components or [], host):
        command = component.body.content.get("command")
        if command is not None and not isinstance(command, (bytes, bytearray)):
            if command.serialize() != entry["payload"]:
                return False
    return True


@layer("gbz", "GBZ payloads (GBCS 7.3) with their ZCL commands: firmware (GBZ + ZCL "
       "tables) vs construct + zigpy", _gbz_errors)
def _gbz(target, data):
    from emulator.codec import gbz as H
    from firmware.gbcs import gbz as F
    from firmware.zcl.types import ZclError
    ours = target.outcome(F.decode, F.GbzError, data)
    theirs = target.outcome(H.decode, H.GbzCodecError, data)
    if ours[0] and not theirs[0]:
        # The host also reads each ZCL command (zigpy); the firmware's GBZ layer keeps the
        # ZCL frames whole. Then the firmware's own ZCL layer must reject one of them.
        rejected = False
        for component in ours[1].components:
            if component.encrypted:
                continue
            verdict = target.outcome(lambda b: _zcl_reading(component.cluster_id, b),
                                     ZclError, component.frame)
            rejected = rejected or not verdict[0] or _zigpy_string_rule_explains(
                component.cluster_id, component.frame, (False, None))
        target.expect(rejected, "host rejects %s (%s) but every ZCL command reads in "
                      "the firmware", data.hex(), theirs[1])
        return
    target.agree(_read(ours, _gbz_reading),
                 _read(theirs, lambda value: _host_gbz_reading(value, data)), data)
    if ours[0]:
        target.expect(ours[1].encode() == data, "GBZ %s does not rebuild", data.hex())
        if _zigpy_serialises_back(theirs[1], data):
            target.expect(H.encode(theirs[1]) == data, "the host's GBZ %s rebuilds as %s",
                          data.hex(), H.encode(theirs[1]).hex())
        for component in ours[1].components:
            if not component.encrypted:
                _zcl_agree(target, component.cluster_id, component.frame)


# ---------------------------------------------------------------- GB-HRGP tunnel

def _tunnel_errors():
    from emulator.codec.tunnel import TunnelCodecError
    from firmware.han.tunnel import TunnelError
    return TunnelError, TunnelCodecError


@layer("tunnel", "GB-HRGP tunnel frames and the GBCS message length they carry "
       "(ZigBee SE Tunneling, GBCS 10.2): firmware vs construct", _tunnel_errors)
def _tunnel(target, data):
    from emulator.codec import tunnel as H
    from firmware.han import tunnel as F
    ours = target.outcome(F.decode, F.TunnelError, data)
    target.agree(ours, target.outcome(H.decode, H.TunnelCodecError, data), data)
    if ours[0]:
        kind, remaining, payload = ours[1]
        target.expect(H.encode(kind, payload, remaining) == data,
                      "tunnel frame %s does not rebuild", data.hex())
    for view in (data, data[1:]):
        target.agree(target.outcome(F.message_length, F.TunnelError, view),
                     target.outcome(H.message_length, H.TunnelCodecError, view), view)


# ---------------------------------------------------------------- ZCL

def _zcl_errors():
    from firmware.zcl.types import ZclError
    return ZclError, ValueError, KeyError


def _zcl_reading(cluster_id, frame_bytes):
    """The firmware's reading of one ZCL frame: header and, where its tables know the
    command, the command's fields; otherwise the payload bytes."""
    from firmware.zcl import frame as Z
    from firmware.zcl import se
    frame = Z.decode(frame_bytes)
    header = (frame.frame_control, frame.manufacturer_code, frame.tsn, frame.command_id)
    if frame.manufacturer_code is not None:
        return header, None, frame.payload
    if frame.cluster_specific:
        key = (cluster_id, frame.server_to_client, frame.command_id)
        if key not in se.COMMANDS:
            return header, None, frame.payload
        return header, se.COMMANDS[key][0], se.decode(*key, frame.payload)
    if frame.command_id == Z.READ_ATTRIBUTES:
        return header, "Read_Attributes", Z.decode_read_attributes(frame.payload)
    if frame.command_id == Z.READ_ATTRIBUTES_RESPONSE:
        records = Z.decode_read_attributes_response(frame.payload)
        return header, "Read_Attributes_rsp", [
            (r[0], r[1]) if r[1] else (r[0], r[1], _text(r[2], r[3])) for r in records]
    if frame.command_id == Z.DEFAULT_RESPONSE:
        return header, "Default_Response", Z.decode_default_response(frame.payload)
    return header, None, frame.payload


def _host_zcl_reading(cluster_id, frame_bytes):
    from emulator.codec import gbz as H
    parsed = H.parse_zcl(cluster_id, frame_bytes)
    h = parsed.header
    header = (h.frame_control.serialize()[0], h.manufacturer, h.tsn, h.command_id)
    command = parsed.command
    if parsed.name is None:
        return header, None, bytes(command)
    if parsed.name == "Read_Attributes":
        return header, parsed.name, list(command.attribute_ids)
    if parsed.name == "Read_Attributes_rsp":
        return header, parsed.name, [
            (r.attrid, r.status) if r.status else (r.attrid, r.status, _plain(r.value.value))
            for r in command.status_records]
    if parsed.name == "Default_Response":
        return header, parsed.name, (command.command_id, command.status)
    fields = {}
    for field in command.fields:
        value = getattr(command, field.name)
        fields[field.name] = list(value) if isinstance(value, list) else value
    return header, parsed.name, fields


def _zcl_agree(target, cluster_id, frame_bytes):
    from firmware.zcl.types import ZclError
    ours = target.outcome(lambda b: _zcl_reading(cluster_id, b), ZclError, frame_bytes)
    theirs = target.outcome(lambda b: _host_zcl_reading(cluster_id, b), (ValueError, KeyError),
                            frame_bytes)
    if not ours[0] and theirs[0] and _unsupported_type(ours[1]):
        return      # attribute data types the firmware never serves: zigpy knows more
    if ours != theirs and _zigpy_string_rule_explains(cluster_id, frame_bytes, theirs):
        return
    target.agree(ours, theirs, frame_bytes, _same_zcl)


def _unsupported_type(error):
    return "not supported" in str(getattr(error, "reason", ""))


def _zigpy_string_rule_explains(cluster_id, frame_bytes, theirs):
    """Whether the firmware, reading a string length 0xFF as zigpy does (255 octets)
    instead of as ZCL r7 2.6.2.10 says (an invalid string, no octets), reads the frame
    exactly as zigpy does: then that rule is the whole of the disagreement, a known
    deviation of zigpy's LVBytes and not a defect of ours."""
    from firmware.zcl import types as T
    from firmware.zcl.types import ZclError
    if b"\xff" not in frame_bytes:
        return False
    strict = T.read_lv

    def zigpy_rule(buf, offset):
        if offset < len(buf) and buf[offset] == 0xFF:
            if offset + 256 > len(buf):
                raise ZclError(offset, "string of 255 bytes runs past the frame")
            return bytes(buf[offset + 1:offset + 256]), offset + 256
        return strict(buf, offset)
    T.read_lv = zigpy_rule
    try:
        lenient = (True, _zcl_reading(cluster_id, frame_bytes))
    except ZclError as e:
        if theirs[0] and _unsupported_type(e):
            return True       # and then a data type the firmware never serves
        lenient = (False, None)
    finally:
        T.read_lv = strict
    if lenient[0] != theirs[0]:
        return False
    return not lenient[0] or _same_zcl(lenient[1], theirs[1])


def _text(type_id, value):
    """A character string as zigpy gives it: text, undecodable bytes replaced."""
    from firmware.zcl import types as T
    if type_id == T.CHARACTER_STRING:
        # ZCL r7 2.6.2.10's invalid string (length 0xFF): the firmware reads None, zigpy's
        # CharacterString an empty str marked `invalid`; the same reading
        return "" if value is None else bytes(value).decode("utf-8", "replace")
    return value


def _plain(value):
    """A zigpy attribute value as the firmware reads it: ints, bytes (strings), lists."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, int):
        return int(value)
    return value


def _same_zcl(ours, theirs):
    return ours[0] == theirs[0] and ours[1] == theirs[1] and ours[2] == theirs[2]


@layer("zcl", "ZCL frames (ZCL r7 2.4) of the SE Metering and Prepayment clusters: the "
       "firmware's tables vs zigpy; input: cluster id (2 bytes BE) then the frame",
       _zcl_errors)
def _zcl(target, data):
    if len(data) < 2:
        return
    _zcl_agree(target, data[0] << 8 | data[1], data[2:])


# ---------------------------------------------------------------- ASH

def _ash_errors():
    from emulator.ncp.ash import AshError
    return (AshError,)


@layer("ash", "ASH frames (UG101): the virtual NCP's decoder vs bellows, and the NCP's "
       "link state machine fed the bytes", _ash_errors)
def _ash(target, data):
    import bellows.ash as bellows_ash
    from emulator.ncp import ash
    for raw in data.split(b"\x7e"):
        unstuffed = target.outcome(ash.unstuff, ash.AshError, raw)
        if not unstuffed[0]:
            continue
        ours = target.outcome(ash.decode, ash.AshError, unstuffed[1])
        if not ours[0]:
            continue
        # bellows (the host's decoder) must read every frame the NCP accepts, alike
        try:
            theirs = bellows_ash.parse_frame(bellows_ash.AshProtocol._unstuff_bytes(raw))
        except (bellows_ash.ParsingError, ValueError) as e:
            raise Finding("ash", "bellows rejects %s (%s), the NCP reads %r"
                          % (raw.hex(), e, ours[1]))
        target.expect(_ash_reading(ours[1]) == _bellows_ash_reading(theirs),
                      "ASH readings differ on %s: NCP %r, bellows %r", raw.hex(), ours[1],
                      theirs)
    ncp = ash.AshNcp()
    ncp.receive(data, 0.0)
    ncp.poll(10.0)
    ncp.outgoing()


def _ash_reading(frame):
    return (frame.kind, frame.frm_num, frame.ack_num, bool(frame.re_tx),
            bool(frame.not_ready), bytes(frame.payload))


def _bellows_ash_reading(frame):
    import bellows.ash as b
    if isinstance(frame, b.DataFrame):
        return ("DATA", frame.frm_num, frame.ack_num, bool(frame.re_tx), False,
                bytes(frame.ezsp_frame))
    if isinstance(frame, (b.AckFrame, b.NakFrame)):
        kind = "ACK" if isinstance(frame, b.AckFrame) else "NAK"
        return (kind, None, frame.ack_num, False, bool(frame.ncp_ready), b"")
    if isinstance(frame, b.RstFrame):
        return ("RST", None, None, False, False, b"")
    kind = "RSTACK" if isinstance(frame, b.RStackFrame) else "ERROR"
    code = frame.reset_code
    return (kind, None, None, False, False, bytes((frame.version, int(code))))


# ---------------------------------------------------------------- EZSP

def _ezsp_errors():
    from emulator.ncp.ezsp import EzspError
    return (EzspError,)


@layer("ezsp", "EZSP request frames the virtual NCP decodes with bellows' command "
       "tables; input: version selector byte, then the frame. A decoded request must "
       "serialise back to its own parameter bytes", _ezsp_errors)
def _ezsp(target, data):
    import bellows.types as t
    from emulator.ncp import ezsp
    if not data:
        return
    versions = ezsp.SUPPORTED_VERSIONS
    version = versions[data[0] % len(versions)]
    frame = data[1:]
    table = _ezsp_table(version)
    decoded = target.outcome(table.decode_request, ezsp.EzspError, frame)
    if not decoded[0]:
        return
    seq, name, values, legacy = decoded[1]
    _seq, _frame_id, offset, _legacy = ezsp.split_header(frame, version)
    schema = ezsp.parameter_schema(table.commands[name][1])
    if isinstance(schema, dict):
        raw = t.deserialize_dict(frame[offset:], schema)[0]
        rebuilt = b"".join(schema[k](v).serialize() for k, v in raw.items())
    else:
        rebuilt = schema.deserialize(frame[offset:])[0].serialize()
    target.expect(rebuilt == frame[offset:], "EZSP v%d %s parameters %s re-serialise as %s",
                  version, name, frame[offset:].hex(), rebuilt.hex())
    _ncp_answers(target, version, frame)


def _ncp_answers(target, version, frame):
    """The virtual NCP (version negotiated, no radio) takes the request over ASH and
    answers it: its reply, or invalidCommand, with the request's sequence number.
    (A frame longer than an ASH DATA field, 128 bytes, cannot be sent to it.)"""
    from emulator.ncp import ash
    if len(frame) > ash.MAX_DATA_LEN:
        return
    from emulator.ncp.ncp import VirtualNcp
    ncp = VirtualNcp(bytes(range(8)), None, ezsp_version=version)
    ncp.receive(ash.encode(bytes((ash.RST,))), 0.0)
    ncp.outgoing()
    ncp.host_version = version
    ncp.receive(ash.encode(ash.data_frame(0, 0, frame)), 0.0)
    replies = []
    for raw in ncp.outgoing().split(b"\x7e"):
        if raw:
            decoded = ash.decode(ash.unstuff(raw))
            if decoded.kind == "DATA":
                replies.append(decoded.payload)
    target.expect(replies and replies[0][0] == frame[0], "the NCP answered %s with %r",
                  frame.hex(), replies)


_EZSP_TABLES = {}


def _ezsp_table(version):
    from emulator.ncp.ezsp import CommandTable
    if version not in _EZSP_TABLES:
        _EZSP_TABLES[version] = CommandTable(version)
    return _EZSP_TABLES[version]


# ---------------------------------------------------------------- devices

ESME_PROFILE = "esme-single-phase"
HISTORY = 3600                   # simulated seconds of metering before the fuzzing
LLC_REQUEST = b"\xe6\xe6\x00"     # IEC 62056-46 LLC header, client to server
LLC_RESPONSE = b"\xe6\xe7\x00"
CLOCK = (8, bytes((0, 0, 1, 0, 0, 255)), 2)
APDU_MODE = 0x01                 # first input byte, bit 0: the rest is an APDU in an
                                 # association; clear: the rest is raw link bytes


class _EsmeOnHdlc:
    """One MeterCore on HDLC links, a new link per input, with its checks."""

    def __init__(self):
        from emulator import profiles
        from firmware.board.meter import MeterCore
        self.profile = profiles.load_profile(profiles.profile_path(ESME_PROFILE))
        start = self.profile["clock"]["start"]
        self.core = MeterCore(self.profile, start)
        self.core.advance(start + HISTORY)
        self.sap = self.profile["clients"]["public"]["sap"]
        hdlc = self.profile.get("hdlc") or {}
        self.server = (hdlc.get("server_upper", 1) << 7 | hdlc.get("server_lower", 0x10), 2)
        self.baseline = self.state()
        self._conn = 0

    def state(self):
        return json.dumps(self.core.esme.save_state(), sort_keys=True)

    def open(self, target):
        """A new link, its swallowed errors watched (a device catches everything so it
        never dies; what it catches is a bug all the same)."""
        self._conn += 1
        conn = self._conn
        self.core.open(conn, "hdlc")
        link = self.core._link(conn)
        dispatch = link.session._dispatch

        def watched(apdu, client_sap):
            try:
                return dispatch(apdu, client_sap)
            except Exception as e:
                raise Finding(target.name, "the DLMS session raised %r on %s"
                              % (e, bytes(apdu).hex())) from e
        link.session._dispatch = watched
        return conn

    def send(self, target, conn, raw):
        out = self.core.receive(conn, raw)
        error = self.core._link(conn).endpoint.internal_error
        if isinstance(error, Finding):
            raise error
        target.expect(error is None, "the HDLC station raised %r on %s", error, raw.hex())
        return _hdlc_frames(target, out)

    def frame(self, control, info=b""):
        from firmware.hdlc import frame as fw
        return fw.HdlcFrame(control, self.server, (self.sap, 1), info).encode()

    def associate(self, target, conn):
        """SNRM, then the AARQ in I-frame 0: (the next N(S), the replies)."""
        from firmware.hdlc import frame as fw
        replies = self.send(target, conn, self.frame(fw.u_control(fw.SNRM, True)))
        target.expect([fw.KIND_NAMES[r.kind] for r in replies] == ["UA"],
                      "SNRM answered with %r", replies)
        replies = self.send(target, conn, self.frame(fw.i_control(0, 0, True),
                                                     LLC_REQUEST + _aarq()))
        target.expect(len(replies) == 1 and replies[0].info[3:4] == b"\x61",
                      "AARQ answered with %r", replies)
        return 1

    def apdu(self, target, conn, ns, apdu):
        from firmware.hdlc import frame as fw
        return self.send(target, conn, self.frame(fw.i_control(ns & 7, ns & 7, True),
                                                  LLC_REQUEST + apdu))

    def assert_alive(self, target):
        from emulator.codec import xdlms as host
        conn = self.open(target)
        ns = self.associate(target, conn)
        replies = self.apdu(target, conn, ns, _get_request(*CLOCK))
        target.expect(len(replies) == 1 and replies[0].info.startswith(LLC_RESPONSE),
                      "a GET of the clock after the case was answered with %r", replies)
        name, fields = host.decode_apdu(replies[0].info[3:])
        target.expect(name == "GetResponseNormal" and fields["result"]["data"] is not None,
                      "a GET of the clock after the case got %s %r", name, fields)
        self.core.close(conn)


def _polled_link_commands(station, raw):
    """How many SNRM and DISC frames with the poll bit, addressed to `station` from a
    client, `raw` holds: each must be answered (UA, DM or FRMR; IEC 62056-46 6.4.4)."""
    from firmware.hdlc import frame as fw
    from firmware.hdlc.reader import FrameReader
    reader = FrameReader()
    reader.feed(raw)
    count = 0
    while True:
        frame = reader.next_frame()
        if frame is None:
            return count
        if (frame.kind in (fw.SNRM, fw.DISC) and frame.poll and frame.source[1] == 1
                and frame.source[0] != fw.NO_STATION
                and frame.destination in station._addresses):
            count += 1


def _hdlc_frames(target, out):
    """The station's output as frames; each one both codecs read."""
    from emulator.codec import hdlc as host
    from firmware.hdlc import frame as fw
    frames = []
    data = bytes(out)
    while data:
        target.expect(data[0] == 0x7E and len(data) >= 3, "reply %s is not a frame",
                      data.hex())
        size = fw.frame_length(data, 1) + 2
        frames.append(fw.parse_frame(data[:size]))
        host.parse_frame(data[:size])
        data = data[size:]
    return frames


def _aarq():
    from emulator.codec import acse
    initiate = acse.encode_user_information({
        "pdu": "initiate_request", "dedicated_key": None, "response_allowed": True,
        "proposed_quality_of_service": None, "proposed_dlms_version_number": 6,
        "proposed_conformance": 0x00FFFF, "client_max_receive_pdu_size": 0xFFFF})
    return acse.encode_acse({"pdu": "aarq", "application_context_name":
                             bytes.fromhex("60857405080101"), "user_information": initiate})


def _get_request(class_id, obis, attribute):
    from emulator.codec import xdlms
    return xdlms.encode_apdu("GetRequestNormal", {
        "invoke_id_and_priority": 0xC1,
        "cosem_attribute_descriptor": {"class_id": class_id, "instance_id": obis,
                                       "attribute_id": attribute},
        "access_selection": None})


_DEVICES = {}


def _device(name, build):
    if name not in _DEVICES:
        _DEVICES[name] = build()
    return _DEVICES[name]


def _esme_hdlc_errors():
    from emulator.codec.acse import AcseCodecError
    from emulator.codec.xdlms import XdlmsCodecError
    return _hdlc_errors() + (AcseCodecError, XdlmsCodecError) + _acse_errors()[:1] + \
        _xdlms_errors()[:1]


def _esme_gbcs_errors():
    return _gbcs_errors() + _xdlms_errors()[2:]


@layer("esme-hdlc", "bytes into an ESME (MeterCore) HDLC link: first byte bit 0 clear, "
       "raw link bytes; set, an xDLMS/ACSE APDU in an I-frame of a public association. The "
       "ESME never raises, answers in HDLC/DLMS, keeps its state, still reads its clock",
       _esme_hdlc_errors)
def _esme_hdlc(target, data):
    from emulator.codec import acse as host_acse
    from emulator.codec import xdlms as host_xdlms
    esme = _device("esme-hdlc", _EsmeOnHdlc)
    conn = esme.open(target)
    if data[:1] and data[0] & APDU_MODE:
        ns = esme.associate(target, conn)
        replies = esme.apdu(target, conn, ns, data[1:])
        target.expect(len(replies) == 1, "APDU %s answered with %r", data[1:].hex(), replies)
        reply = replies[0]
        from firmware.hdlc import frame as fw
        if reply.kind == fw.I and not reply.segmented:
            target.expect(reply.info.startswith(LLC_RESPONSE), "reply %r has no LLC header",
                          reply)
            apdu = bytes(reply.info[3:])
            if apdu[:1] in (b"\x61", b"\x63"):
                host_acse.decode_acse(apdu)
            else:
                host_xdlms.decode_apdu(apdu)
    else:
        replies = esme.send(target, conn, data[1:])
        polled = _polled_link_commands(esme.core._link(conn).endpoint, data[1:])
        target.expect(len(replies) >= polled, "%d SNRM/DISC polls for the ESME in %s, %d "
                      "replies", polled, data[1:].hex(), len(replies))
    esme.core.close(conn)
    target.expect(esme.state() == esme.baseline, "the ESME's state changed after %s",
                  data.hex())
    esme.assert_alive(target)


class _EsmeOnGbcs:
    """A MeterCore with its GBCS port on the board's crypto (as on a board), keys and
    anchors from the lab's test SMKI (seed 0), so commands built by the lab's head-end
    and DCC verify on it."""

    def __init__(self):
        from emulator import profiles
        from emulator.lab import ESME_EUI, Lab
        from emulator.runtime import gbcs_credentials
        from firmware.board.meter import MeterCore
        lab = Lab(seed=0, wan="direct", record=False)
        profile = profiles.load_profile(profiles.profile_path(ESME_PROFILE))
        start = profile["clock"]["start"]
        self.core = MeterCore(profile, start)
        self.core.advance(start + HISTORY)
        self.core.enable_gbcs(gbcs_credentials(lab.pki, ESME_EUI, lab.anchors()))
        self.eui = ESME_EUI
        self.anchors = lab.anchors()
        self.baseline = self.state()
        self._baseline_state = self.core.esme.save_state()
        self._baseline_security = self.core.gbcs.security.state()

    def state(self):
        """The ESME's state and its GBCS security state, less the alert counter: every
        alert sent (a refusal included) takes the next one (GBCS 4.3.1.2)."""
        security = dict(self.core.gbcs.security.state())
        del security["alert_counter"]
        return json.dumps([self.core.esme.save_state(), security], sort_keys=True)

    def reset(self):
        """Back to the baseline, so every input meets the same device (replays hold)."""
        self.core.esme.restore_state(json.loads(json.dumps(self._baseline_state)))
        self.core.gbcs.security.load_state(json.loads(json.dumps(self._baseline_security)))


def _command_for(esme, data):
    """Whether `data` is a well-formed command to this ESME from a party it knows: one
    it must answer, with a response or an alert."""
    from firmware.gbcs import envelope
    try:
        message = envelope.parse(data)
    except envelope.GbcsError:
        return False
    return (message.cra_flag == envelope.CRA_COMMAND and message.recipient == esme.eui
            and bool(esme.anchors.find(message.originator)))


@layer("esme-gbcs", "bytes into an ESME's GBCS port (MeterCore.receive_gbcs): it never "
       "raises, answers every command from a known party to it, answers only with GBCS "
       "messages both codecs read (responses, or alerts to known parties), and its state "
       "changes only when it answers a command with a response", _esme_gbcs_errors)
def _esme_gbcs(target, data):
    from emulator.codec import gbcs as host
    from firmware.gbcs import envelope
    from firmware.gbcs.device_security import GbcsRefusal
    esme = _device("esme-gbcs", _EsmeOnGbcs)
    gbcs = esme.core.gbcs
    caught = []
    originals = {}
    for name in ("_run", "_credentials"):
        originals[name] = getattr(gbcs, name)

        def watched(*args, _inner=originals[name]):
            try:
                return _inner(*args)
            except Exception as e:
                caught.append(e)
                raise
        setattr(gbcs, name, watched)
    try:
        out = esme.core.receive_gbcs(data)
    finally:
        for name in originals:
            delattr(gbcs, name)
    if caught and not isinstance(caught[0], GbcsRefusal):
        raise Finding(target.name, "the GBCS port swallowed %r on %s" % (caught[0],
                                                                         data.hex()))
    if _command_for(esme, data):
        target.expect(out, "a command from a known party to the ESME went unanswered: %s",
                      data.hex())
    responded = False
    for answer in out:
        message = envelope.parse(answer)
        host.decode(answer)
        target.expect(message.originator == esme.eui, "answer from %s",
                      message.originator.hex())
        target.expect(message.recipient == bytes(8) or esme.anchors.find(message.recipient),
                      "answer to %s, not a known party", message.recipient.hex())
        responded = responded or message.cra_flag == envelope.CRA_RESPONSE
    if not responded:
        target.expect(esme.state() == esme.baseline, "the ESME's state changed after %s",
                      data.hex())
    esme.reset()
    target.expect(esme.state() == esme.baseline, "the ESME did not return to its baseline")
