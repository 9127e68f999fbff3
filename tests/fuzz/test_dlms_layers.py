"""The DLMS layers under 10,000 generated cases each (issue 6): HDLC, the TCP wrapper,
ACSE, xDLMS and A-XDR.

Each layer's cases go through both of its decoders (firmware and construct): each case
decodes in both, to the same thing, or raises each layer's own error with an offset in the
buffer (ARCHITECTURE.md principle 6). The same cases then go into an ESME (`MeterCore`,
the core the boards and the `micropython` DUT run) on the framing they belong to:
the device never raises, every well-framed request gets an answer that the host codecs
read, and the device's state (`Esme.save_state()`: registers, profiles, clock, credit,
supply, secrets) is what it was. The clients here are the public client (read-only by
its access rights, so any change would be a defect) and, for A-XDR, the management client
writing values that neither codec accepts.
"""

import json

from hypothesis import strategies as st

from emulator import profiles
from emulator.codec import acse as host_acse
from emulator.codec import axdr as host_axdr
from emulator.codec import hdlc as host_hdlc
from emulator.codec import wrapper as host_wrapper
from emulator.codec import xdlms as host_xdlms
from emulator.strategies import axdr as axdr_strategies
from emulator.strategies import hdlc as hdlc_strategies
from emulator.strategies import xdlms as xdlms_strategies
from firmware.board.meter import MeterCore
from firmware.dlms import acse as fw_acse
from firmware.dlms import apdu as fw_apdu
from firmware.dlms import axdr as fw_axdr
from firmware.hdlc import frame as fw_hdlc
from firmware import wrapper as fw_wrapper
from tests.fuzz.budget import run_cases

PROFILE = profiles.load_profile(profiles.profile_path("esme-single-phase"))
PUBLIC_SAP = PROFILE["clients"]["public"]["sap"]
MANAGEMENT_SAP = PROFILE["clients"]["management"]["sap"]
PASSWORD = PROFILE["clients"]["management"]["password"].encode()
WPORT = PROFILE["wrapper"]["wport"]
START = PROFILE["clock"]["start"]
HISTORY = 86400 + 600            # a day of metering behind it: profiles and logs not empty

LN_NO_CIPHERING = bytes.fromhex("60857405080101")
MECHANISM_LOW = bytes.fromhex("60857405080201")
CLOCK = (8, bytes((0, 0, 1, 0, 0, 255)), 2)
# writable by the management client in the shipped profile: the supplier's tariff label,
# a Data object whose value any A-XDR type may overwrite (checked by _writable below)
IAP = 0xC1


def _initiate():
    return host_acse.encode_user_information({
        "pdu": "initiate_request", "dedicated_key": None, "response_allowed": True,
        "proposed_quality_of_service": None, "proposed_dlms_version_number": 6,
        "proposed_conformance": 0x00FFFF, "client_max_receive_pdu_size": 0xFFFF})


def aarq(password=None):
    fields = {"pdu": "aarq", "application_context_name": LN_NO_CIPHERING,
              "user_information": _initiate()}
    if password is not None:
        fields.update(sender_acse_requirements=True, mechanism_name=MECHANISM_LOW,
                      calling_authentication_value=password)
    return host_acse.encode_acse(fields)


def get_request(class_id, obis, attribute):
    return host_xdlms.encode_apdu("GetRequestNormal", {
        "invoke_id_and_priority": IAP,
        "cosem_attribute_descriptor": {"class_id": class_id, "instance_id": obis,
                                       "attribute_id": attribute},
        "access_selection": None})


def set_request(class_id, obis, attribute, raw_value):
    """A SET-Request-Normal whose value is `raw_value` as it is, encoded or not."""
    head = host_xdlms.encode_apdu("SetRequestNormal", {
        "invoke_id_and_priority": IAP,
        "cosem_attribute_descriptor": {"class_id": class_id, "instance_id": obis,
                                       "attribute_id": attribute},
        "access_selection": None, "value": (fw_axdr.NULL_DATA, None)})
    return head[:-1] + raw_value           # the null-data value is the last octet


class FuzzedMeter:
    """One ESME core under fuzz, with the checks every case ends with."""

    def __init__(self):
        self.core = MeterCore(PROFILE, START)
        self.core.advance(START + HISTORY)
        self.next_conn = 0
        self.baseline = self.state()

    def state(self):
        return json.dumps(self.core.esme.save_state(), sort_keys=True)

    def assert_state_kept(self, case):
        assert self.state() == self.baseline, "state changed after %r" % (case,)

    def open(self, framing):
        self.next_conn += 1
        self.core.open(self.next_conn, framing)
        return self.next_conn

    def wrapped(self, conn, apdu, client_sap=PUBLIC_SAP):
        """One APDU over the wrapper: the answer's APDU (b"" when none came)."""
        out = self.core.receive(conn, fw_wrapper.encode_wpdu(client_sap, WPORT, apdu))
        if not out:
            return b""
        wpdu = host_wrapper.parse_wpdu(out)
        assert (wpdu.source_wport, wpdu.destination_wport) == (WPORT, client_sap)
        return wpdu.apdu

    def associate(self, conn, client_sap=PUBLIC_SAP, password=None):
        aare = host_acse.decode_acse(self.wrapped(conn, aarq(password), client_sap))
        assert aare["pdu"] == "aare" and aare["result"] == 0, aare

    def assert_alive(self):
        """A new association still reads the clock."""
        conn = self.open("wrapper")
        self.associate(conn)
        reply = host_xdlms.decode_apdu(self.wrapped(conn, get_request(*CLOCK)))
        assert reply[0] == "GetResponseNormal" and reply[1]["result"]["data"] is not None
        self.core.close(conn)


def _either(decode, errors, raw):
    """What a decoder makes of `raw`: its result, or None after its own layer's error
    (whose offset must lie in the buffer)."""
    try:
        return decode(raw)
    except errors as error:
        assert error.offset is None or 0 <= error.offset <= len(raw), error
        return None


# ---------------------------------------------------------------- HDLC

def test_hdlc_layer_10k_station_traffic():
    meter = FuzzedMeter()
    server = host_hdlc.server_address(1, 0x10, 2)
    client = host_hdlc.client_address(PUBLIC_SAP)
    frames = hdlc_strategies.malformed_hdlc_frames() | hdlc_strategies.hdlc_frames(max_info=80)

    def check(case):
        chunks, frame = case
        ours = _either(fw_hdlc.parse_frame, fw_hdlc.HdlcError, frame)
        theirs = _either(host_hdlc.parse_frame, host_hdlc.HdlcCodecError, frame)
        assert (ours is None) == (theirs is None)
        if ours is not None:
            assert bytes((ours.control,)) == host_hdlc.Control.build(theirs.control)
            assert bytes(ours.info) == theirs.info
        conn = meter.open("hdlc")
        for chunk in chunks + [frame]:
            out = meter.core.receive(conn, chunk)
            _assert_hdlc_replies(out)
        meter.core.close(conn)
        meter.assert_state_kept(chunks)
        if len(chunks) % 50 == 7:
            meter.assert_alive()

    traffic = hdlc_strategies.station_traffic(server, client, max_items=6)
    run_cases("hdlc", st.tuples(traffic, frames), check)
    meter.assert_alive()


def _assert_hdlc_replies(out):
    """Whatever the station sent is whole, well-formed frames (flags shared or not)."""
    data = bytes(out)
    while data:
        if data[0] != 0x7E:
            data = b"\x7e" + data            # a flag shared with the frame before
        while data[1:2] == b"\x7e":
            data = data[1:]                    # inter-frame fill
        size = fw_hdlc.frame_length(data, 1) + 2
        assert size > 2, data.hex()
        host_hdlc.parse_frame(data[:size])
        data = data[size:]


# ---------------------------------------------------------------- TCP wrapper

def test_wrapper_layer_10k_wrapper_traffic():
    meter = FuzzedMeter()

    def check(chunks):
        joined = b"".join(chunks)
        ours = _either(fw_wrapper.decode_wpdu, fw_wrapper.WrapperError, joined)
        theirs = _either(host_wrapper.parse_wpdu, host_wrapper.WrapperCodecError, joined)
        assert (ours is None) == (theirs is None)
        conn = meter.open("wrapper")
        for chunk in chunks:
            out = meter.core.receive(conn, chunk)
            while out:
                wpdu = host_wrapper.parse_wpdu(out[:8 + int.from_bytes(out[6:8], "big")])
                out = out[8 + len(wpdu.apdu):]
        meter.core.close(conn)
        meter.assert_state_kept(chunks)
        if len(joined) % 97 == 3:
            meter.assert_alive()

    run_cases("wrapper", hdlc_strategies.wrapper_traffic(), check)
    meter.assert_alive()


# ---------------------------------------------------------------- ACSE

def test_acse_layer_10k_mutated_association_requests():
    meter = FuzzedMeter()
    cases = st.one_of(xdlms_strategies.mutated(xdlms_strategies.acse_pdus().map(
        host_acse.encode_acse)), xdlms_strategies.mutated(st.just(aarq())),
        xdlms_strategies.mutated(st.just(aarq(PASSWORD))))

    def check(raw):
        ours = _either(lambda b: fw_acse.decode_acse(b).fields(), fw_acse.AcseError, raw)
        theirs = _either(host_acse.decode_acse, host_acse.AcseCodecError, raw)
        if theirs is not None:
            theirs = {k: v for k, v in theirs.items() if k != "pdu"}
        assert ours == theirs
        conn = meter.open("wrapper")
        reply = meter.wrapped(conn, raw)
        if reply:
            _decode_any(reply)
        if reply[:1] == b"\x61" and host_acse.decode_acse(reply)["result"] == 0:
            # it happened to be a good AARQ: the association it opened answers a GET (with
            # the clock, or a refusal when the negotiated conformance lacks GET)
            answer = meter.wrapped(conn, get_request(*CLOCK))
            assert answer and _decode_any(answer)
        meter.core.close(conn)
        meter.assert_state_kept(raw)
        if raw[-1:] == b"\x07":
            meter.assert_alive()

    run_cases("acse", cases, check)
    meter.assert_alive()


def _decode_any(apdu):
    """An answer of the device: an ACSE APDU or an xDLMS one, that the host reads."""
    if apdu[0] in (0x61, 0x63):
        return host_acse.decode_acse(apdu)
    return host_xdlms.decode_apdu(apdu)


# ---------------------------------------------------------------- xDLMS

def _valid_apdus():
    return xdlms_strategies.apdus().map(lambda s: host_xdlms.encode_apdu(*s))


def test_xdlms_layer_10k_apdus_in_a_public_association():
    meter = FuzzedMeter()
    conn = meter.open("wrapper")
    meter.associate(conn)
    cases = xdlms_strategies.mutated(_valid_apdus()) | _valid_apdus()

    def check(raw):
        nonlocal conn
        ours = _either(lambda b: _named(fw_apdu.decode_apdu(b)), fw_apdu.ApduError, raw)
        theirs = _either(host_xdlms.decode_apdu, host_xdlms.XdlmsCodecError, raw)
        assert ours == theirs
        reply = meter.wrapped(conn, raw)
        if reply:
            _decode_any(reply)
        elif raw[:1] in (b"\xc0", b"\xc1", b"\xc3"):
            # a confirmed request with a well-formed body must be answered
            assert theirs is None or theirs[0].endswith("Response"), (raw.hex(), theirs)
        meter.assert_state_kept(raw)
        if reply[:1] in (b"\x63", b"\x61") or raw[:1] in (b"\x62", b"\x60"):
            meter.core.close(conn)                 # released or re-associated: start over
            conn = meter.open("wrapper")
            meter.associate(conn)

    run_cases("xdlms", cases, check)
    meter.assert_alive()


def _named(apdu):
    return (type(apdu).__name__, apdu.fields())


# ---------------------------------------------------------------- A-XDR

def test_axdr_layer_10k_values_written_by_the_management_client():
    """Mutated A-XDR values: both codecs agree on each; as the value of a SET from the
    management client (who may write), one that neither codec accepts is refused by the
    device, which keeps its state."""
    meter = FuzzedMeter()
    conn = meter.open("wrapper")
    meter.associate(conn, MANAGEMENT_SAP, PASSWORD)
    targets = st.sampled_from([CLOCK, (1, bytes((0, 0, 96, 1, 0, 255)), 2),
                               (3, bytes((1, 0, 1, 8, 0, 255)), 2)])

    def check(case):
        (mutation, raw), (class_id, obis, attribute) = case
        ours = _either(fw_axdr.decode_all, fw_axdr.AxdrError, raw)
        theirs = _either(host_axdr.decode, host_axdr.AxdrCodecError, raw)
        assert (ours is None) == (theirs is None), (mutation, raw.hex())
        if ours is not None:
            return        # a value both read may legitimately be written: not bad input
        reply = host_xdlms.decode_apdu(meter.wrapped(
            conn, set_request(class_id, obis, attribute, raw), MANAGEMENT_SAP))
        assert reply[0] in ("SetResponseNormal", "ExceptionResponse"), reply
        if reply[0] == "SetResponseNormal":
            assert reply[1]["result"] != 0, (raw.hex(), reply)
        meter.assert_state_kept(raw)

    values = axdr_strategies.data_values(max_leaves=6)
    run_cases("axdr", st.tuples(axdr_strategies.mutated_encodings(values), targets), check)
    meter.assert_alive()
