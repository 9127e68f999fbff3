"""Fuzzing the GBCS layers (issue 6): the envelope, GBZ and the GB-HRGP tunnel through
both of their decoders, then GBCS commands that must be refused through the ESME, the
GSME and the GPF (ARCHITECTURE.md principle 6).

Decoder layers ("gbcs", "gbz", "tunnel"): `CASES_PER_LAYER` cases each, from
`emulator.strategies.gbcs`. Every case goes through the firmware decoder and the host
(construct) codec, tunnel frames also through the firmware's segment reassembly: each
either decodes or raises its layer's error with an offset inside the input and a
reason, never anything else; both give the same verdict and, when they decode, the same
fields; a valid case decodes to what was built; the strategies' guarantees hold (a
protected command verifies, a wrong MAC or signature does not, a tampered command is
refused by the parser or the MAC, a malformed one by the parser).

Devices ("esme", "gsme", "gpf"): DEVICE_CASES each (2,000 in ci: with the three decoder
layers this file must stay within 100 s of CI; the nightly profile runs the full
budget), commands with a wrong MAC or signature, from an unknown party, with replayed
counters, for another device, tampered bytes and absurd lengths. Each is refused with
the protocol's own answer (one signed alert that verifies, with the expected code, to
the expected party; or silence for bytes that do not parse or are not addressed to the
device), changes no state but the alert counter, and every LIVENESS_EVERY cases a
valid command is still answered and its counter recorded.
"""

import pytest
from hypothesis import strategies as st

from emulator.codec import gbcs as host_gbcs
from emulator.codec import gbz as host_gbz
from emulator.codec import tunnel as host_tunnel
from emulator.profiles import load_profile
from emulator.strategies import gbcs as S
from firmware.devices import gpf
from firmware.devices.esme import Esme as EsmeDevice
from firmware.devices.esme_gbcs import EsmeGbcs
from firmware.devices.gsme import Gsme as GsmeDevice
from firmware.dlms import access
from firmware.dlms.apdu import decode_apdu
from firmware.gbcs import codes, envelope, gbz, security
from firmware.han import tunnel
from firmware.sim.clock import SteppedClock
from firmware.zcl import frame as Z
from firmware.zcl import se
from firmware.zcl import types as zcl_types
from firmware.zcl.types import ZclError
from tests.fuzz.budget import CASES_PER_LAYER, PROFILE, run_cases


def _layer_error(error, data, layer):
    assert isinstance(error.offset, int) and 0 <= error.offset <= len(data), error
    assert isinstance(error.reason, str) and error.reason, error
    if hasattr(error, "layer"):
        assert error.layer == layer


# -- the envelope ------------------------------------------------------------------------

def decode_gbcs(data):
    """The firmware's GbcsMessage, or None when both decoders refuse `data`."""
    firmware = host = None
    try:
        firmware = envelope.parse(data)
    except envelope.GbcsError as error:
        _layer_error(error, data, "gbcs")
    try:
        host = host_gbcs.decode(data)
    except host_gbcs.GbcsCodecError as error:
        _layer_error(error, data, "gbcs")
    assert (firmware is None) == (host is None), (data.hex(), firmware, host)
    if firmware is not None:
        assert firmware.fields() == host_gbcs.plain_fields(host), data.hex()
    return firmware


def _authentic(message):
    """Would the device it is addressed to take its MAC (and signature when critical)?"""
    if message.recipient not in (S.ESME_EUI, S.GSME_EUI):
        return False
    signature, mac = S.parties().verifies(message)
    return mac and (signature or not codes.is_critical(message.message_code))


def _tag(name, strategy):
    return strategy.map(lambda value: (name, value))


GBCS_CASES = st.one_of(
    _tag("protected", S.protected_commands("ESME")),
    _tag("protected", S.protected_commands("GSME")),
    # the builders' parameters are drawn above; the wrong ones pick from the pools
    _tag("wrong mac", S.wrong_mac_commands(commands=st.one_of(
        S.pooled_commands("ESME"), S.pooled_commands("GSME")))),
    _tag("wrong signature", S.wrong_signature_commands(commands=st.one_of(
        S.pooled_commands("ESME", S.use_cases("ESME", critical=True)),
        S.pooled_commands("GSME", S.use_cases("GSME", critical=True))))),
    _tag("built", S.gbcs_fields().map(lambda f: envelope.GbcsMessage(**f))),
    _tag("tampered", S.tampered_commands()),
    _tag("absurd", S.absurd_lengths()),
    _tag("mutated", S.mutated(S.gbcs_messages())),
    _tag("noise", S.malformed_gbcs_messages()),
)


def check_gbcs_case(case):
    kind, value = case
    if kind in ("protected", "wrong mac", "wrong signature", "built"):
        reason, message = value if isinstance(value, tuple) else (None, value)
        data = message.encode()
        parsed = decode_gbcs(data)
        assert parsed is not None and parsed.fields() == message.fields()
        assert parsed.encode() == data
        if kind != "built":
            assert _authentic(parsed) == (kind == "protected"), (kind, reason)
        return
    parsed = decode_gbcs(value)
    if kind == "absurd":
        assert parsed is None
    elif kind == "tampered":
        assert parsed is None or not _authentic(parsed)


def test_gbcs_envelope_layer():
    assert run_cases("gbcs", GBCS_CASES, check_gbcs_case) >= CASES_PER_LAYER


# -- GBZ ---------------------------------------------------------------------------------

_GENERAL = {Z.READ_ATTRIBUTES: Z.decode_read_attributes,
            Z.READ_ATTRIBUTES_RESPONSE: Z.decode_read_attributes_response,
            Z.DEFAULT_RESPONSE: Z.decode_default_response}


def _firmware_gbz(data):
    """The firmware's reading, with the ZCL commands the host codec reads decoded too
    (the firmware GBZ layer leaves them to the device), or None when it refuses."""
    try:
        value = gbz.decode(data)
    except gbz.GbzError as error:
        _layer_error(error, data, "gbz")
        return None
    view = {"count": value.count, "alert": None, "future_dated": None, "components": []}
    if value.is_alert:
        view["alert"] = (value.alert_code, value.time_stamp)
    if value.future_dated is not None:
        d = value.future_dated
        view["future_dated"] = (d.message_code, d.originator_counter, d.cluster_id,
                                d.frame_control, d.command_id)
    for c in value.components:
        fc, manufacturer, tsn, command_id, at = Z.decode_header(c.frame)
        entry = {"cluster": c.cluster_id, "from": c.from_date_time, "encrypted": c.encrypted,
                 "header": (fc, manufacturer, tsn, command_id)}
        if c.encrypted:
            entry["payload"] = (bytes(c.additional_header), bytes(c.encrypted_field))
        else:
            entry["payload"] = c.frame[at:]
            try:
                _zcl_command(c.cluster_id, fc, manufacturer, command_id, c.frame[at:])
            except ZclError as error:
                return UNSUPPORTED_TYPE if "not supported" in error.reason else None
        view["components"].append(entry)
    return view


def _zcl_command(cluster, fc, manufacturer, command_id, payload):
    if manufacturer is not None:
        return None
    if fc & 0x03 == Z.FRAME_TYPE_GENERAL:
        reader = _GENERAL.get(command_id)
        return None if reader is None else reader(payload)
    key = (cluster, bool(fc & Z.SERVER_TO_CLIENT), command_id)
    return se.decode(*key, payload) if key in se.COMMANDS else None


def _host_gbz(data):
    """(view, construct value), or (None, None) when the host codec refuses."""
    try:
        value = host_gbz.decode(data)
    except host_gbz.GbzCodecError as error:
        _layer_error(error, data, "gbz")
        return None, None
    view = host_gbz.plain_fields(value)
    for c, entry in zip(value.components or [], view["components"]):
        content = c.body.content
        if entry["encrypted"]:
            entry["payload"] = (bytes((content.additional_header_control,
                                       content.frame_counter)),
                                host_gbz.ENCRYPTED_FIELD_HEADER + content.field.sealed)
        else:
            command = content.command
            entry["payload"] = (bytes(command) if isinstance(command, (bytes, bytearray))
                                else command.serialize())
    return view, value


UNSUPPORTED_TYPE = "a ZCL data type the firmware does not implement"


def decode_gbz(data):
    """Both readings agree; except that the firmware implements the ZCL data types the
    GSME uses, zigpy all of them: an attribute record of another type (RTDS has none)
    is refused by the firmware, and refused by the host too or read as that type."""
    firmware, (host, value) = _firmware_gbz(data), _host_gbz(data)
    if firmware is UNSUPPORTED_TYPE:
        assert host is None or _host_record_types(value) - ZCL_TYPES, data.hex()
        return None
    assert firmware == host, data.hex()
    return value


def _host_record_types(value):
    types = set()
    for component in value.components or []:
        content = component.body.content
        if not host_gbz.is_encrypted(component) and content.name == "Read_Attributes_rsp":
            types.update(int(r.value.type) for r in content.command.status_records
                         if r.value is not None)
    return types


ZCL_TYPES = {t for t in range(256) if zcl_types.is_known(t)}


GBZ_CASES = st.one_of(
    _tag("valid", S.gbz_payloads()),
    _tag("malformed", S.malformed_gbz_payloads()),
    _tag("mutated", S.mutated_gbz_payloads()),
    _tag("noise", st.binary(max_size=40).map(lambda b: b"\x01\x09" + b)),
)


def check_gbz_case(case):
    kind, value = case
    if kind == "valid":
        data = value.encode()
        host = decode_gbz(data)
        assert host is not None and host_gbz.encode(host) == data
        assert gbz.decode(data).encode() == data
        return
    host = decode_gbz(value)
    if kind == "malformed":
        assert host is None, value.hex()


def test_gbz_layer():
    assert run_cases("gbz", GBZ_CASES, check_gbz_case) >= CASES_PER_LAYER


# -- GB-HRGP tunnel ----------------------------------------------------------------------

def decode_tunnel(data):
    firmware = host = None
    try:
        firmware = tunnel.decode(data)
    except tunnel.TunnelError as error:
        _layer_error(error, data, "tunnel")
    try:
        host = host_tunnel.decode(data)
    except host_tunnel.TunnelCodecError as error:
        _layer_error(error, data, "tunnel")
    assert firmware == host, data.hex()
    if firmware is not None and firmware[2]:
        _message_length(firmware[2])
    return firmware


def _message_length(payload):
    """Where each side says the GBCS message in `payload` ends: the same, or both refuse."""
    firmware = host = "refused"
    try:
        firmware = tunnel.message_length(payload)
    except tunnel.TunnelError as error:
        _layer_error(error, payload, "tunnel")
    try:
        host = host_tunnel.message_length(payload)
    except host_tunnel.TunnelCodecError as error:
        _layer_error(error, payload, "tunnel")
    assert firmware == host, payload.hex()
    return firmware


TUNNEL_CASES = st.one_of(
    _tag("valid", S.transfer_data()),
    _tag("malformed", S.malformed_transfer_data()),
    _tag("mutated", S.mutated(S.transfer_data().map(lambda t: t[3]))),
    _tag("noise", st.binary(max_size=60)),
)


SEGMENT = 48                     # a small maximum transfer: most messages segment


def reassemble(frame):
    """Feed `frame` cut into SEGMENT-byte TransferData payloads to a receiver: what each
    feed gave (None while incomplete, the frame's fields, or "refused")."""
    receiver = tunnel.Reassembler(max_transfer=SEGMENT)
    out = []
    for part in tunnel.segments(frame, SEGMENT):
        try:
            out.append(receiver.feed(part, 0))
        except tunnel.TunnelError as error:
            assert isinstance(error.offset, int) and error.reason
            out.append("refused")
    return out


def check_tunnel_case(case):
    kind, value = case
    if kind == "valid":
        expected = value[:3]
        assert decode_tunnel(value[3]) == expected
        if value[2]:
            assert _message_length(value[2]) == len(value[2])
        fed = reassemble(value[3])
        assert fed[-1] == expected and set(fed[:-1]) <= {None}
        return
    got = decode_tunnel(value)
    reassemble(value)
    if kind == "malformed":
        assert got is None


def test_tunnel_layer():
    assert run_cases("tunnel", TUNNEL_CASES, check_tunnel_case) >= CASES_PER_LAYER


def test_host_gbz_codec_refuses_a_cut_alert_header():
    """Found by this fuzzing: the host codec's compiled alert header and future-dated
    body raised struct.error on a payload cut inside them; now GbzCodecError."""
    for data in (b"\x01\x09\x00\x80", b"\x01\x09\x01\x8f\x66\x00\x00\x00\x00\x0e\x00\x01"):
        with pytest.raises(host_gbz.GbzCodecError) as refused:
            host_gbz.decode(data)
        _layer_error(refused.value, data, "gbz")
        with pytest.raises(gbz.GbzError):
            gbz.decode(data)


# -- devices -----------------------------------------------------------------------------

DEVICE_CASES = 2_000 if PROFILE == "ci" else CASES_PER_LAYER
LIVENESS_EVERY = 100
REPLAY_POOL = 1                  # counters 1.. : below what each device has accepted
LIVENESS_FIRST = 1_000           # the first counter a device accepts (setup)
REFUSAL_ALERTS = (codes.ALERT_INTEGRITY_CHECK_FAILED, codes.ALERT_SOURCE_NOT_AUTHORISED,
                  codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE,
                  codes.ALERT_FAILED_AUTHENTICATION_OTHER)


class DeviceUnderTest:
    """One device's GBCS port at a fixed time, with the checks every case makes."""

    eui = None
    liveness_use_case = None

    def __init__(self):
        self.parties = S.parties()
        self.counter = LIVENESS_FIRST - 1
        self.cases = 0

    def receive(self, data):
        raise NotImplementedError

    def state(self):
        raise NotImplementedError

    def alert_code(self, alert):
        raise NotImplementedError

    def read_ok(self, reply):
        raise NotImplementedError

    def security_state(self):
        state = dict(self.security.state())
        return state, state.pop("alert_counter")

    def refused(self, data, expected_codes, alert_to=None):
        """`data` changes nothing but the alert counter, and is answered with one signed
        alert whose code is one of `expected_codes` (empty: nothing at all), to
        `alert_to` (default: the supplier, or the ACB for an unknown originator)."""
        before, alerts_before = self.state()
        out = self.receive(data)
        after, alerts_after = self.state()
        assert after == before, data.hex()
        if not expected_codes:
            assert out == [] and alerts_after == alerts_before, data.hex()
            return
        assert len(out) == 1, (data.hex(), out)
        assert alerts_after == alerts_before + 1
        alert = envelope.parse(out[0])
        assert alert.cra_flag == envelope.CRA_ALERT and alert.originator == self.eui
        assert alert.originator_counter == alerts_after
        assert alert.recipient in ((alert_to,) if alert_to else (S.SUPPLIER_EUI, S.ACB_EUI))
        assert security.verify_signature(self.parties.crypto,
                                           self.parties.public(self.eui, "ds"), alert)
        assert self.alert_code(alert) in expected_codes, (data.hex(), hex(self.alert_code(alert)))

    def live(self):
        """A valid command with the next counter is answered with a response that
        verifies and reads successfully."""
        self.counter += 1
        name, params = self.liveness_use_case
        command = S.protect(S.build_command(name, params, self.counter, self.eui))
        out = self.receive(command.encode())
        assert len(out) == 1, out
        reply = envelope.parse(out[0])
        assert reply.cra_flag == envelope.CRA_RESPONSE and reply.recipient == S.SUPPLIER_EUI
        assert reply.originator_counter == self.counter
        shared = self.parties.shared_secret(S.SUPPLIER_EUI, self.eui)
        assert security.verify_mac(self.parties.crypto, shared, reply)
        assert self.read_ok(reply)
        assert self.security.last_counter(S.SUPPLIER_EUI) == self.counter

    def check(self, case):
        kind, value = case
        if kind in ("wrong mac", "wrong signature"):
            self.refused(value[1].encode(), (codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE,),
                         S.SUPPLIER_EUI)
        elif kind == "unknown party":
            self.refused(value.encode(), (codes.ALERT_SOURCE_NOT_AUTHORISED,), S.ACB_EUI)
        elif kind == "replayed":
            self.refused(value.encode(), (codes.ALERT_FAILED_AUTHENTICATION_OTHER,),
                         S.SUPPLIER_EUI)
        elif kind == "not for me":
            self.refused(value.encode(), ())
        else:                            # tampered, absurd lengths
            try:
                message = envelope.parse(value)
            except envelope.GbcsError:
                message = None
            addressed = message is not None and message.recipient == self.eui
            self.refused(value, REFUSAL_ALERTS if addressed else ())
        self.cases += 1
        if self.cases % LIVENESS_EVERY == 0:
            self.live()


def device_cases(device, other):
    fresh = S.pooled_commands(device)
    protected = S.pooled_protected_commands(device)
    return st.one_of(
        _tag("wrong mac", S.wrong_mac_commands(commands=fresh)),
        _tag("wrong signature", S.wrong_signature_commands(
            commands=S.pooled_commands(device, S.use_cases(device, critical=True)))),
        _tag("unknown party", S.unknown_party_commands(commands=fresh)),
        _tag("replayed", S.pooled_protected_commands(device, first_counter=REPLAY_POOL)),
        _tag("not for me", S.pooled_protected_commands(other)),
        _tag("tampered", S.tampered_commands(protected)),
        _tag("absurd", S.absurd_lengths(protected)),
    )


class Esme(DeviceUnderTest):
    eui = S.ESME_EUI
    liveness_use_case = ("ECS45", {})

    def __init__(self):
        DeviceUnderTest.__init__(self)
        profile = load_profile("esme-single-phase")
        start = profile["clock"]["start"]
        self.now = start + 2 * 86400 + 600
        clock = SteppedClock(start)
        self.esme = EsmeDevice(profile, clock, seed=0)
        clock.set(self.now)
        self.esme.advance(self.now)
        self.security = self.parties.device_security(self.eui)
        self.port = EsmeGbcs(self.esme, self.security, self.parties.crypto)
        self.live()

    def receive(self, data):
        return self.port.receive_gbcs(data, self.now)

    def state(self):
        security, alerts = self.security_state()
        gb = self.esme.gbcs_objects
        return (security, self.esme.supply_state, self.esme.import_register.value,
                self.esme.clock(), [c.amount for c in gb.credits],
                list(gb.token_gateway.record.accepted), self.port.clock_window), alerts

    def alert_code(self, alert):
        return decode_apdu(alert.payload).notification_body[1][0][1]

    def read_ok(self, reply):
        response = access.decode_response(reply.payload)
        return [r.result for r in response.results] == [0]


class Gsme(DeviceUnderTest):
    eui = S.GSME_EUI
    liveness_use_case = ("GCS33", {})

    def __init__(self):
        DeviceUnderTest.__init__(self)
        self.now = 1714521600
        clock = SteppedClock(self.now - 2 * 86400)
        self.security = self.parties.device_security(self.eui)
        self.device = GsmeDevice({"clock": {"start": self.now - 2 * 86400}}, clock, 0,
                                 self.security, self.parties.crypto)
        clock.set(self.now)
        self.device.advance(self.now)
        self.live()

    def receive(self, data):
        return self.device.receive_gbcs(data, self.now)

    def state(self):
        state = dict(self.device.state())
        security, alerts = self.security_state()
        state["security"] = security
        return state, alerts

    def alert_code(self, alert):
        return gbz.decode(alert.payload).alert_code

    def read_ok(self, reply):
        component = gbz.decode(reply.payload).components[0]
        records = Z.decode_read_attributes_response(component.zcl_frame().payload)
        return [r[1] for r in records] == [0, 0]


class Gpf(Gsme):
    """The GPF answers reads from its mirror of the GSME and queues the rest: a refused
    command never takes a queue slot."""

    def __init__(self):
        DeviceUnderTest.__init__(self)
        gsme = Gsme()
        self.now = gsme.now
        self.security = self.parties.device_security(self.eui)
        self.device = gpf.GasProxyFunction(self.eui, self.security, self.parties.crypto)
        self.device.receive_mirror(gsme.device.mirror_report(self.now), self.now)
        self.live()

    def state(self):
        state = dict(self.device.state())
        security, alerts = self.security_state()
        state["security"] = security
        return state, alerts


@pytest.mark.parametrize("device, other, under_test", [
    ("ESME", "GSME", Esme), ("GSME", "ESME", Gsme), ("GPF", "ESME", Gpf)])
def test_devices_refuse_bad_commands_and_stay_live(device, other, under_test):
    """DEVICE_CASES per device (fewer than a decoder layer: each case verifies a
    signature and signs an alert), a valid command every LIVENESS_EVERY cases."""
    dut = under_test()
    commands = device_cases("GSME" if device == "GPF" else device, other)
    assert run_cases(device.lower(), commands, dut.check, DEVICE_CASES) >= DEVICE_CASES
    dut.live()
