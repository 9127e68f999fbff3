"""ESME use cases with the real primitives: the DCC-side builders against RTDS 4.5.0, the
device's encrypted fields against RTDS, and every use case end to end at the device
level (built and protected as the supplier and the DCC would, answered by EsmeGbcs,
verified and read back), then the attacks.

RTDS does not publish the ESME's KA private key; it publishes the supplier's. ECDH is
symmetric, so the supplier's private key with the device's public key agrees the secret
the ESME used (the same stand-in as tests/emulator/test_device_security.py).
"""

import json
import pathlib

import pytest
from hypothesis import assume, given, settings, strategies as st

from emulator import smki
from emulator.crypto import HostCrypto, KeyStore
from emulator.profiles import load_profile
from emulator.usecases import USE_CASE_BUILDERS, BuildContext, UseCaseError
from firmware.cosem import data_protection as DP
from firmware.cosem.base import Context, CosemObject
from firmware.cosem.disconnect import CONNECTED, DISCONNECTED, READY_FOR_RECONNECTION
from firmware.devices import esme_gbcs as G
from firmware.devices.esme import Esme
from firmware.dlms import access as A
from firmware.dlms import axdr
from firmware.dlms import cosem_datetime as cdt
from firmware.dlms.apdu import decode_apdu
from firmware.gbcs import codes, envelope, security, utrn
from firmware.gbcs.anchors import TrustAnchors
from firmware.gbcs.device_security import DeviceSecurity
from firmware.sim.clock import SteppedClock

VECTORS = pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs"
RTDS = VECTORS / "rtds-4.5.0"
KEYSTORE = KeyStore(VECTORS / "keystore")
CRYPTO = HostCrypto()
SUPPLIER = bytes.fromhex("90B3D51F30010000")
ACB = bytes.fromhex("90B3D51F30000002")
ESME_EUI = bytes.fromhex("00DB1234567890A0")
ZIGBEE_EPOCH = 946684800


def _load(path):
    return envelope.parse(bytes.fromhex(path.read_text().strip()))


def _dt(text):
    return cdt.datetime_seconds(bytes.fromhex(text))


# -- the builders against RTDS -----------------------------------------------------------------

RTDS_PARAMS = {
    "ECS17b": {},
    "ECS22b": {"from": _dt("07de0c1fff000000008000ff"), "to": _dt("07df0101ff000000008000ff")},
    "ECS21a": {"from": _dt("07de0309ff000000008000ff"), "to": _dt("07de030bff000000008000ff")},
    "ECS70": {"validity_start": _dt("07de0c1fff173b0a008000ff"),
              "validity_end": _dt("07df0101ff00000a008000ff")},
    "ECS70Commission": {"validity_start": _dt("07de0c1fff173b0a008000ff"),
                        "validity_end": _dt("07df0101ff00000a008000ff")},
    "ECS42": {}, "ECS43": {}, "ECS44": {}, "ECS45": {}, "ECS04b": {},
    "CS01a": None,          # the UTRN is the command's own (two RTDS UTRNs)
}
RTDS_UTRNS = {0x300000000: "73946144332040217315", 0x500000000: "73948959061972833313"}


def _rtds_commands():
    for folder in sorted(RTDS.iterdir()):
        use_case = folder.name.split("_", 1)[1]
        if use_case in RTDS_PARAMS:
            for path in sorted(folder.glob("*_COMMAND_GBCS.HEX")):
                yield use_case, path


def test_every_rtds_esme_command_payload_is_rebuilt_byte_for_byte():
    rebuilt = set()
    for use_case, path in _rtds_commands():
        message = _load(path)
        uc = USE_CASE_BUILDERS[use_case]
        assert uc.message_code == message.message_code, path.name
        assert uc.critical == (message.signature is not None), path.name
        params = RTDS_PARAMS[use_case]
        if params is None:
            params = {"utrn": RTDS_UTRNS[message.originator_counter]}
        ctx = BuildContext(message.originator_counter, message.originator, message.recipient)
        assert uc.build(params, ctx) == message.payload, path.name
        rebuilt.add(use_case)
    assert rebuilt == set(RTDS_PARAMS)


def _supplier_side(response):
    """A read context as the recipient of an RTDS response: its KA private key."""
    return BuildContext(response.originator_counter, response.recipient, response.originator,
                        crypto=CRYPTO, ka_private=KEYSTORE.private_key(response.recipient, "ka"),
                        target_ka_public=KEYSTORE.public_key(response.originator, "ka"))


def _rtds_response(folder, name):
    return _load(RTDS / folder / name)


def test_rtds_encrypted_register_reads_open():
    single = _rtds_response("4.1.1_ECS17b", "ECS17b_4.1.1_SINGLE_SUCCESS_RESPONSE_GBCS.HEX")
    fields = USE_CASE_BUILDERS["ECS17b"].read_response(single.payload, _supplier_side(single))
    assert fields["ok"] and fields["counter"] == 0x3E8
    assert fields["import_wh"] == 10 and fields["import_scaler_unit"] == (0, 30)
    assert fields["reactive_import_varh"] == 10 and fields["reactive_scaler_unit"] == (0, 32)
    assert "secondary_import_wh" not in fields
    twin = _rtds_response("4.1.1_ECS17b", "ECS17b_4.1.1_TWIN_SUCCESS_RESPONSE_GBCS.HEX")
    fields = USE_CASE_BUILDERS["ECS17b"].read_response(twin.payload, _supplier_side(twin))
    assert fields["secondary_import_wh"] == 10
    error = _rtds_response("4.1.1_ECS17b", "ECS17b_4.1.1_ERROR_RESPONSE_GBCS.HEX")
    fields = USE_CASE_BUILDERS["ECS17b"].read_response(error.payload, _supplier_side(error))
    assert not fields["ok"] and fields["results"] == [(A.ACTION, 1)]


def test_rtds_hh_profile_and_daily_log_open():
    hh = _rtds_response("4.8.1_ECS22b", "ECS22b_4.8.1_SINGLE_SUCCESS_RESPONSE_GBCS.HEX")
    entries = USE_CASE_BUILDERS["ECS22b"].read_response(hh.payload, _supplier_side(hh))["entries"]
    start = _dt("07de0c1fff000000008000ff")
    # from and to both inclusive: 00:00 to 00:00 next day is 49 entries (Blue Book range)
    assert [t for t, _ in entries] == [start + 1800 * i for i in range(49)]
    assert entries[0][1] == 95 and entries[-1][1] == 139
    daily = _rtds_response("4.6.1_ECS21a", "ECS21a_4.6.1_SINGLE_SUCCESS_RESPONSE_GBCS.HEX")
    days = USE_CASE_BUILDERS["ECS21a"].read_response(daily.payload,
                                                      _supplier_side(daily))["days"]
    assert [d["time"] for d in days] == [_dt("07de0309ff000000008000ff") + 86400 * i
                                         for i in range(3)]
    assert [len(d["tou"]) for d in days] == [48] * 3
    assert [[len(b) for b in d["blocks"]] for d in days] == [[8, 8, 8, 8]] * 3
    assert days[0]["total"] == 10435000


def test_a_tampered_encrypted_field_does_not_open():
    single = _rtds_response("4.1.1_ECS17b", "ECS17b_4.1.1_SINGLE_SUCCESS_RESPONSE_GBCS.HEX")
    payload = bytearray(single.payload)
    payload[-10] ^= 0x01                  # inside the encrypted field's tag
    with pytest.raises(UseCaseError):
        USE_CASE_BUILDERS["ECS17b"].read_response(bytes(payload), _supplier_side(single))
    other = _supplier_side(single)
    other.ka_private = KEYSTORE.private_key(bytes.fromhex("90B3D51F30020000"), "ka")
    with pytest.raises(UseCaseError):
        USE_CASE_BUILDERS["ECS17b"].read_response(single.payload, other)


class _Fixed(CosemObject):
    """An object whose attribute 2 is a given value: stands for the RTDS meter's data."""

    def __init__(self, class_id, logical_name, value):
        CosemObject.__init__(self, logical_name)
        self.class_id = class_id
        self.attribute_count = 2
        self.value = value

    def selectors(self, attribute):
        return (1, 2)

    def get_attribute(self, attribute, ctx, selector, parameters):
        return self.value


@pytest.mark.parametrize("folder,name,protection", [
    ("4.1.1_ECS17b", "ECS17b_4.1.1_SINGLE_SUCCESS", G.DP_REGISTERS),
    ("4.1.1_ECS17b", "ECS17b_4.1.1_TWIN_SUCCESS", G.DP_REGISTERS),
    ("4.8.1_ECS22b", "ECS22b_4.8.1_SINGLE_SUCCESS", G.DP_HH_PROFILE),
    ("4.6.1_ECS21a", "ECS21a_4.6.1_TWIN_SUCCESS", G.DP_DAILY_LOG),
])
def test_device_data_protection_rebuilds_rtds_responses_byte_for_byte(folder, name, protection):
    """The ESME's get_protected_attributes, fed the values the RTDS meter held, answers
    with exactly the RTDS bytes: KDF mode 4, IV, AAD and field layout all agree."""
    command = _load(RTDS / folder / (name + "_COMMAND_GBCS.HEX"))
    response = _load(RTDS / folder / (name + "_RESPONSE_GBCS.HEX"))
    reader = _supplier_side(response)
    shared = CRYPTO.ecdh(reader.ka_private, reader.target_ka_public)
    params, field = DP.parse_response(A.decode_response(response.payload).data[0])
    key = security.derive_key(CRYPTO, shared, params.originator, 4, params.counter,
                              params.recipient)
    held = axdr.decode_all(DP.decrypt_field(CRYPTO, key, params.originator, field))[1][0]
    request = A.decode_request(command.payload)
    element = request.data[0][1][0][1][0][1]
    target = _Fixed(element[0][1], element[1][1], held)

    def key_for(requester, recipient, counter, ctx):    # the ESME's half, by symmetry
        return security.derive_key(CRYPTO, shared, recipient, 4, counter, requester)
    dp = DP.DataProtection(protection, lambda c, n: target, CRYPTO, key_for, ESME_EUI,
                           [(target.class_id, target.logical_name)])
    answer = dp.action(1, request.data[0], Context(0, 1))
    ours = A.AccessResponse(A.gbcs_long_invoke_id(command.originator_counter), b"", [answer],
                            [A.ResponseSpec(A.ACTION, 0)]).encode()
    assert ours == response.payload


def test_rtds_plain_responses_read():
    status = _rtds_response("7.4_ECS45", "ECS45_7.4_SUCCESS_RESPONSE_GBCS.HEX")
    fields = USE_CASE_BUILDERS["ECS45"].read_response(status.payload, None)
    assert fields["ok"] and fields["supply_state"] == CONNECTED
    clock = _rtds_response("6.11_ECS70", "ECS70_6.11_SUCCESS_RESPONSE_GBCS.HEX")
    fields = USE_CASE_BUILDERS["ECS70"].read_response(clock.payload, None)
    assert fields["clock"] == _dt("07df0101ff000000008000ff") and fields["clock_status"] == 0
    error = _rtds_response("1.5_ECS04b", "ECS04b_1.5_ERROR_RESPONSE_GBCS.HEX")
    fields = USE_CASE_BUILDERS["ECS04b"].read_response(error.payload, None)
    assert fields["results"] == [(3, 0), (3, 1), (3, 250)] and not fields["ok"]
    with pytest.raises(UseCaseError):
        USE_CASE_BUILDERS["ECS45"].read_response(b"\xda\x20", None)


def test_builders_check_their_parameters():
    ctx = BuildContext(0x3E8, SUPPLIER, ESME_EUI)
    with pytest.raises(UseCaseError):
        USE_CASE_BUILDERS["ECS22b"].build({"from": 0}, ctx)
    with pytest.raises(UseCaseError):
        USE_CASE_BUILDERS["CS01a"].build({"utrn": "73946144332040217315"}, ctx)
    with pytest.raises(UseCaseError):
        USE_CASE_BUILDERS["ECS70"].build({}, ctx)


# -- end to end at the device level -----------------------------------------------------------

@pytest.fixture(scope="module")
def pki():
    authority = smki.TestSmki(seed=21)
    authority.organisation(SUPPLIER, smki.ROLE_SUPPLIER, "SUPPLIER A")
    authority.organisation(ACB, smki.ROLE_ACB, "DCC")
    authority.device(ESME_EUI)
    return authority


class Premise:
    """One ESME with GBCS on the single-phase profile, and the supplier's and DCC's keys."""

    def __init__(self, pki):
        org = pki.organisations
        self.org = org
        self.device = pki.devices[ESME_EUI]
        anchors = TrustAnchors()
        anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER,
                    ds_public=org[SUPPLIER]["ds"].public_xy,
                    ka_public=org[SUPPLIER]["ka"].public_xy)
        anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, SUPPLIER,
                    ka_public=org[SUPPLIER]["pp-ka"].public_xy)
        anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB,
                    ds_public=org[ACB]["ds"].public_xy, ka_public=org[ACB]["ka"].public_xy)
        self.security = DeviceSecurity(ESME_EUI, self.device["ds"].private_key,
                                       self.device["ka"].private_key, CRYPTO, anchors)
        profile = load_profile("esme-single-phase")
        profile["objects"]["hh_profile"]["depth"] = 500
        self.start = profile["clock"]["start"]
        self.clock = SteppedClock(self.start)
        self.esme = Esme(profile, self.clock, seed=7)
        self.gbcs = G.EsmeGbcs(self.esme, self.security, CRYPTO)
        self.now = self.start + 3 * 86400 + 600
        self.clock.set(self.now)
        self.esme.advance(self.now)
        self.counter = 0x1000

    def context(self, counter):
        return BuildContext(counter, SUPPLIER, ESME_EUI, self.now, CRYPTO,
                            self.org[SUPPLIER]["ka"].private_key, self.device["ka"].public_xy)

    def command(self, use_case, params, counter=None, signer=None):
        """(GBCS bytes, BuildContext): signed by the supplier when critical, MAC'd by the
        DCC as ACB (firmware/gbcs/security.py)."""
        if counter is None:
            self.counter += 1
            counter = self.counter
        uc = USE_CASE_BUILDERS[use_case]
        ctx = self.context(counter)
        message = envelope.GbcsMessage(envelope.CRA_COMMAND, counter, SUPPLIER, ESME_EUI,
                                       uc.message_code, uc.build(params, ctx))
        if uc.critical:
            security.sign(CRYPTO, signer or self.org[SUPPLIER]["ds"].private_key, message)
        shared = CRYPTO.ecdh(self.org[ACB]["ka"].private_key, self.device["ka"].public_xy)
        security.protect_mac(CRYPTO, shared, message)
        return message.encode(), ctx

    def run(self, use_case, params, counter=None):
        data, ctx = self.command(use_case, params, counter)
        out = self.gbcs.receive_gbcs(data, self.now)
        assert out, use_case
        reply = envelope.parse(out[0])
        assert reply.cra_flag == envelope.CRA_RESPONSE
        assert reply.originator_counter == ctx.counter and reply.recipient == SUPPLIER
        if USE_CASE_BUILDERS[use_case].critical:
            assert not reply.mac_protected
            assert security.verify_signature(CRYPTO, self.device["ds"].public_xy, reply)
        else:
            shared = CRYPTO.ecdh(self.org[SUPPLIER]["ka"].private_key,
                                 self.device["ka"].public_xy)
            assert security.verify_mac(CRYPTO, shared, reply)
        return USE_CASE_BUILDERS[use_case].read_response(reply.payload, ctx), out

    def snapshot(self):
        gb = self.esme.gbcs_objects
        return json.dumps({"counters": self.security.state()["counters"],
                           "supply": self.esme.supply_state,
                           "import": self.esme.import_register.value[1],
                           "clock": self.esme.clock(),
                           "credits": [c.amount for c in gb.credits],
                           "utrns": gb.token_gateway.record.accepted,
                           "events": self.esme.event_log.ring.count})

    def utrn(self, counter_hi, value_class, value, target=ESME_EUI):
        shared = CRYPTO.ecdh(self.org[SUPPLIER]["pp-ka"].private_key, self.device["ka"].public_xy)
        return utrn.mint(CRYPTO, shared, SUPPLIER, target, counter_hi << 32, value_class, value)


def test_reads_end_to_end(pki):
    p = Premise(pki)
    fields, _ = p.run("ECS17b", {})
    assert fields["ok"] and fields["import_wh"] == p.esme.import_register.value[1]
    assert fields["import_scaler_unit"] == (0, 30)
    fields, _ = p.run("ECS22b", {"from": p.now - 86400, "to": p.now})
    ring = p.esme.hh_profile.ring
    stored = [(ring.time(k), axdr.decode_all(ring.entry(k))[1][1][1]) for k in range(ring.count)
              if p.now - 86400 <= ring.time(k) <= p.now]
    assert fields["entries"] == stored and len(stored) == 48
    fields, _ = p.run("ECS21a", {"from": p.start, "to": p.now})
    log = p.esme.daily_log.ring
    assert [d["time"] for d in fields["days"]] == [log.time(k) for k in range(log.count)]
    last = axdr.decode_all(log.entry(log.count - 1))[1]
    assert fields["days"][-1]["total"] == last[1][1]
    assert fields["days"][-1]["tou"][:4] == [v[1] for v in last[2:6]]
    fields, _ = p.run("ECS45", {})
    assert fields["supply_state"] == CONNECTED


def test_supply_top_up_reset_and_clock_end_to_end(pki):
    p = Premise(pki)
    for use_case, state in (("ECS43", DISCONNECTED), ("ECS44", READY_FOR_RECONNECTION),
                            ("ECS42", CONNECTED)):
        fields, _ = p.run(use_case, {})
        assert fields["ok"] and p.esme.supply_state == state, use_case
    credit = p.esme.gbcs_objects.credits[0]
    fields, out = p.run("CS01a", {"utrn": p.utrn(3, utrn.CLASS_POUNDS, 10)}, counter=3 << 32)
    assert fields["ok"] and len(out) == 1 and credit.amount == 1000
    fields, _ = p.run("CS01a", {"utrn": p.utrn(4, utrn.CLASS_PENCE, 1250)}, counter=4 << 32)
    assert credit.amount == 2250
    fields, _ = p.run("ECS04b", {}, counter=(4 << 32) + 1)
    assert fields["results"] == [(A.ACTION, 0)] * 3 and credit.amount == 0
    p.counter = (4 << 32) + 1
    target = p.now + 3600
    fields, _ = p.run("ECS70", {"validity_start": target - 50, "validity_end": target + 10})
    assert fields["ok"] and fields["clock"] == target - 20 == p.esme.clock()
    fields, _ = p.run("ECS70Commission", {"validity_start": p.now - 100,
                                          "validity_end": p.now + 100})
    assert fields["ok"] and p.esme.clock() == target - 20     # inside: left alone


# -- attacks at device level ---------------------------------------------------------------------

def _alert(p, raw, recipient=SUPPLIER):
    alert = envelope.parse(raw)
    assert alert.cra_flag == envelope.CRA_ALERT and alert.recipient == recipient
    assert security.verify_signature(CRYPTO, p.device["ds"].public_xy, alert)
    return decode_apdu(alert.payload).notification_body[1][0][1]


def test_attacks_are_refused_with_the_right_answer_and_no_state_change(pki):
    p = Premise(pki)
    p.run("ECS45", {})
    p.run("CS01a", {"utrn": p.utrn(3, utrn.CLASS_POUNDS, 5)}, counter=3 << 32)
    p.counter = (3 << 32) + 10
    disable, _ = p.command("ECS43", {})          # accepted once, then replayed
    p.gbcs.receive_gbcs(disable, p.now)
    assert p.esme.supply_state == DISCONNECTED
    before = p.snapshot()
    rogue = smki.TestSmki(seed=404).derive_key("rogue-ds")
    lower, _ = p.command("ECS42", {}, counter=(3 << 32) + 5)
    wrong, _ = p.command("ECS42", {})
    wrong = wrong.replace(ESME_EUI, bytes.fromhex("00DB1234567890A1"), 1)
    tampered = bytearray(p.command("ECS42", {})[0])
    tampered[-90] ^= 0x01       # inside the ACCESS payload (before signature and MAC)
    bad_mac = bytearray(p.command("ECS42", {})[0])
    bad_mac[-1] ^= 0x01
    forged, _ = p.command("ECS42", {}, signer=rogue)
    enable, _ = p.command("ECS42", {})
    absurd = enable[:7] + b"\x82\xff\xf0" + enable[9:]
    refused = [
        ("replayed counter", disable, codes.ALERT_FAILED_AUTHENTICATION_OTHER),
        ("lower counter", lower, codes.ALERT_FAILED_AUTHENTICATION_OTHER),
        ("wrong recipient", wrong, None),
        ("tampered payload", bytes(tampered), codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE),
        ("tampered MAC", bytes(bad_mac), codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE),
        ("signature not by the anchor", forged,
         codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE),
        ("truncated", enable[:-13], None),
        ("absurd length", absurd, None),
    ]
    for what, data, alert in refused:
        out = p.gbcs.receive_gbcs(data, p.now)
        if alert is None:
            assert out == [], what
        else:
            assert len(out) == 1 and _alert(p, out[0]) == alert, what
        assert p.snapshot() == before, what
    # an originator the device does not know: the alert goes to the ACB, not to it
    stranger = bytes.fromhex("90B3D51F300000FF")
    forged_origin = bytearray(enable)
    at = bytes(forged_origin).index(SUPPLIER)
    forged_origin[at:at + 8] = stranger
    message = envelope.parse(bytes(forged_origin))
    security.protect_mac(CRYPTO, CRYPTO.ecdh(p.org[ACB]["ka"].private_key,
                                             p.device["ka"].public_xy), message)
    out = p.gbcs.receive_gbcs(message.encode(), p.now)
    assert _alert(p, out[0], recipient=ACB) == codes.ALERT_SOURCE_NOT_AUTHORISED
    assert p.snapshot() == before
    # the genuine enable still works afterwards: nothing above moved the counter
    assert p.gbcs.receive_gbcs(enable, p.now) and p.esme.supply_state == CONNECTED


def test_replayed_utrn_is_refused_with_the_duplicate_alert(pki):
    p = Premise(pki)
    token = p.utrn(3, utrn.CLASS_POUNDS, 10)
    p.run("CS01a", {"utrn": token}, counter=3 << 32)
    before = json.loads(p.snapshot())
    fields, out = p.run("CS01a", {"utrn": token}, counter=4 << 32)
    assert fields["results"] == [(A.ACTION, 250)] and len(out) == 2
    assert _alert(p, out[1]) == codes.ALERT_DUPLICATE_UTRN
    after = json.loads(p.snapshot())
    assert after["credits"] == before["credits"] and after["utrns"] == before["utrns"]
    assert after["supply"] == before["supply"] and after["import"] == before["import"]
    other = p.utrn(5, utrn.CLASS_PENCE, 99, target=bytes.fromhex("00DB1234567890A1"))
    fields, out = p.run("CS01a", {"utrn": other}, counter=5 << 32)
    assert _alert(p, out[1]) == codes.ALERT_UTRN_NOT_AUTHENTIC
    assert json.loads(p.snapshot())["credits"] == before["credits"]


@pytest.fixture(scope="module")
def fuzz_premise(pki):
    return Premise(pki)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mangled_commands_never_raise_and_never_change_state(fuzz_premise, data):
    p = fuzz_premise
    use_case = data.draw(st.sampled_from(["ECS43", "ECS04b", "ECS45", "CS01a"]))
    counter = p.counter + 1 if use_case != "CS01a" else 0x7FF << 32
    params = {"utrn": p.utrn(0x7FF, utrn.CLASS_POUNDS, 1)} if use_case == "CS01a" else {}
    genuine, _ = p.command(use_case, params, counter=counter)
    mangled = bytearray(genuine)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(mangled) - 1))
        mangled[at] ^= data.draw(st.integers(1, 255))
    if data.draw(st.booleans()):
        del mangled[data.draw(st.integers(0, len(mangled))):]
    assume(bytes(mangled) != genuine)   # two flips of one byte can cancel out
    before = p.snapshot()
    out = p.gbcs.receive_gbcs(bytes(mangled), p.now)
    assert isinstance(out, list)
    for raw in out:                      # only alerts: a mangled command is never obeyed
        assert envelope.parse(raw).cra_flag == envelope.CRA_ALERT
    assert p.snapshot() == before


@pytest.mark.parametrize("folder,use_case,prepare", [
    ("7.2_ECS43", "ECS43", None),
    ("7.3_ECS44", "ECS44", "disable"),
    ("7.1_ECS42", "ECS42", "disable"),
    ("7.4_ECS45", "ECS45", None),
    ("1.5_ECS04b", "ECS04b", None),
])
def test_our_esme_answers_rtds_commands_with_the_rtds_response_payload(pki, folder, use_case,
                                                                       prepare):
    """The RTDS command payload (same counter) through our ESME: the ACCESS response is
    the RTDS SUCCESS response, byte for byte."""
    p = Premise(pki)
    if prepare == "disable":
        p.run("ECS43", {}, counter=1)
    command = _load(RTDS / folder / ("%s_%s_SUCCESS_COMMAND_GBCS.HEX"
                                     % (use_case, folder.split("_")[0])))
    expected = _load(RTDS / folder / ("%s_%s_SUCCESS_RESPONSE_GBCS.HEX"
                                      % (use_case, folder.split("_")[0])))
    message = envelope.GbcsMessage(envelope.CRA_COMMAND, command.originator_counter, SUPPLIER,
                                   ESME_EUI, command.message_code, command.payload)
    if command.signature is not None:
        security.sign(CRYPTO, p.org[SUPPLIER]["ds"].private_key, message)
    security.protect_mac(CRYPTO, CRYPTO.ecdh(p.org[ACB]["ka"].private_key,
                                             p.device["ka"].public_xy), message)
    out = p.gbcs.receive_gbcs(message.encode(), p.now)
    assert envelope.parse(out[0]).payload == expected.payload
