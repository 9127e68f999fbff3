"""The comms hub with real keys: RTDS 8.11 answers rebuilt byte for byte, then a premise
(TestSmki, HostCrypto, DeviceSecurity on hub and ESME, EsmeGbcs behind the virtual HAN)
driven through CCS01, a command, CCS02 and the refusals; finally the same over the WAN.
"""

import asyncio
import json
import math
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import smki
from emulator.crypto import HostCrypto, KeyStore
from emulator.han.nodes import EsmeNode
from emulator.han.virtual import VirtualHan
from emulator.profiles import load_profile
from emulator.usecases import USE_CASE_BUILDERS, BuildContext
from emulator.wan import WanClient, WanServer, WanTimeout
from firmware.cosem.disconnect import CONNECTED
from firmware.devices import esme_gbcs as G
from firmware.devices.chf import CommsHub
from firmware.devices.esme import Esme
from firmware.dlms import access as A
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.gbcs import codes, envelope, security
from firmware.gbcs.anchors import TrustAnchors
from firmware.gbcs.device_security import DeviceSecurity
from firmware.sim.clock import SteppedClock

VECTORS = pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs"
RTDS = VECTORS / "rtds-4.5.0"
KEYSTORE = KeyStore(VECTORS / "keystore")
CRYPTO = HostCrypto()
ACB = bytes.fromhex("90B3D51F30000002")
SUPPLIER = bytes.fromhex("90B3D51F30010000")
HUB = bytes.fromhex("00DB1234567890A2")
ESME = bytes.fromhex("00DB1234567890A0")
STRANGER = bytes.fromhex("00DB1234567890A7")
ZNC = bytes((0, 0, 30, 3, 0, 255))


def _rtds(folder, name):
    return bytes.fromhex((RTDS / folder / name).read_text().strip())


# -- RTDS 8.11: the hub's answers, byte for byte --------------------------------------------

def _rtds_hub():
    """The hub's KA half stood in by the ACB's published private key (ECDH is symmetric:
    see tests/emulator/test_device_security.py); the ACB cell holds the hub's KA key."""
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB,
                ds_public=KEYSTORE.public_key(ACB, "ds"),
                ka_public=KEYSTORE.public_key(HUB, "ka"))
    sec = DeviceSecurity(HUB, None, KEYSTORE.private_key(ACB, "ka"), CRYPTO, anchors)
    sent = []
    return CommsHub(HUB, sec, lambda eui, data: sent.append((eui, data))), sent


def test_rtds_ccs01_and_ccs02_answers_rebuild_byte_for_byte():
    hub, sent = _rtds_hub()
    command = _rtds("8.11_CCS01", "CCS01_8.11_SUCCESS_COMMAND_GBCS.HEX")
    assert hub.receive_wan(command, 0) == [
        _rtds("8.11_CCS01", "CCS01_8.11_SUCCESS_RESPONSE_GBCS.HEX")]
    assert hub.knows(ESME) and hub.join_timeout == 90 and hub.joining
    saved = json.loads(json.dumps(hub.state()))

    hub, sent = _rtds_hub()
    hub.load_state(saved)
    assert hub.receive_wan(_rtds("8.11_CCS02", "CCS02_8.11_SUCCESS_COMMAND_GBCS.HEX"), 0) == [
        _rtds("8.11_CCS02", "CCS02_8.11_SUCCESS_RESPONSE_GBCS.HEX")]
    assert not hub.knows(ESME)
    # the ERROR command (next counter) asks to remove a device no longer in the log
    assert hub.receive_wan(_rtds("8.11_CCS02", "CCS02_8.11_ERROR_COMMAND_GBCS.HEX"), 0) == [
        _rtds("8.11_CCS02", "CCS02_8.11_ERROR_RESPONSE_GBCS.HEX")]
    assert sent == []


def test_rtds_command_for_the_esme_passes_through_unchanged():
    hub, sent = _rtds_hub()
    hub.add_device(ESME, 1)
    command = _rtds("7.4_ECS45", "ECS45_7.4_SUCCESS_COMMAND_GBCS.HEX")
    assert hub.receive_wan(command, 0) == []
    assert sent == [(ESME, b"\x03" + command)]


# -- a premise with TestSmki ------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki():
    authority = smki.TestSmki(seed=31)
    authority.organisation(SUPPLIER, smki.ROLE_SUPPLIER, "SUPPLIER A")
    authority.organisation(ACB, smki.ROLE_ACB, "DCC")
    authority.device(ESME)
    authority.device(HUB)
    return authority


def _anchors(pki):
    org = pki.organisations
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER,
                ds_public=org[SUPPLIER]["ds"].public_xy, ka_public=org[SUPPLIER]["ka"].public_xy)
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, SUPPLIER,
                ka_public=org[SUPPLIER]["pp-ka"].public_xy)
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB,
                ds_public=org[ACB]["ds"].public_xy, ka_public=org[ACB]["ka"].public_xy)
    return anchors


class Premise:
    """Hub + ESME on a virtual HAN; the DCC's and the supplier's keys."""

    def __init__(self, pki, **han_options):
        self.pki = pki
        self.org = pki.organisations
        hub_keys, esme_keys = pki.devices[HUB], pki.devices[ESME]
        self.hub_security = DeviceSecurity(HUB, hub_keys["ds"].private_key,
                                           hub_keys["ka"].private_key, CRYPTO, _anchors(pki))
        self.esme_security = DeviceSecurity(ESME, esme_keys["ds"].private_key,
                                            esme_keys["ka"].private_key, CRYPTO, _anchors(pki))
        profile = load_profile("esme-single-phase")
        self.now = profile["clock"]["start"] + 3600
        self.esme = Esme(profile, SteppedClock(self.now), seed=3)
        self.esme_gbcs = G.EsmeGbcs(self.esme, self.esme_security, CRYPTO)
        self.han = VirtualHan(seed=9, **han_options)
        self.hub = CommsHub(HUB, self.hub_security, self.han.send)
        self.han.attach_hub(self.hub)
        self.han.attach(ESME, EsmeNode(self.esme_gbcs))
        self.acb_counter = 0x100
        self.supplier_counter = 0x2000

    # the DCC, as ACB, MACs every command (and originates the hub's own)
    def _protect(self, message, recipient):
        if codes.is_critical(message.message_code):
            security.sign(CRYPTO, self.org[SUPPLIER]["ds"].private_key, message)
        shared = CRYPTO.ecdh(self.org[ACB]["ka"].private_key,
                             self.pki.devices[recipient]["ka"].public_xy)
        security.protect_mac(CRYPTO, shared, message)
        return message.encode()

    def hub_command(self, code, specs, data):
        self.acb_counter += 1
        payload = A.AccessRequest(A.gbcs_long_invoke_id(self.acb_counter), b"", specs,
                                  data).encode()
        message = envelope.GbcsMessage(envelope.CRA_COMMAND, self.acb_counter, ACB, HUB, code,
                                       payload)
        return self._protect(message, HUB)

    def ccs01(self, eui, device_type=1):
        specs = [A.RequestSpec.action(104, ZNC, 1), A.RequestSpec.set(104, ZNC, 3),
                 A.RequestSpec.set(104, ZNC, 2)]
        data = [(axdr.STRUCTURE, [(axdr.OCTET_STRING, eui), (axdr.ENUM, device_type),
                                  (axdr.OCTET_STRING, b"0123456789ABCDEF"), (axdr.ENUM, 0)]),
                (axdr.LONG_UNSIGNED, 90), (axdr.BOOLEAN, True)]
        return self.hub_command(codes.CCS01, specs, data)

    def ccs02(self, eui):
        return self.hub_command(codes.CCS02, [A.RequestSpec.action(104, ZNC, 2)],
                                [(axdr.OCTET_STRING, eui)])

    def esme_command(self, use_case, params=None, recipient=ESME):
        self.supplier_counter += 1
        uc = USE_CASE_BUILDERS[use_case]
        ctx = BuildContext(self.supplier_counter, SUPPLIER, recipient, self.now, CRYPTO,
                           self.org[SUPPLIER]["ka"].private_key,
                           self.pki.devices[ESME]["ka"].public_xy)
        message = envelope.GbcsMessage(envelope.CRA_COMMAND, self.supplier_counter, SUPPLIER,
                                       recipient, uc.message_code, uc.build(params or {}, ctx))
        return self._protect(message, ESME), ctx

    def wan(self, data):
        """What the DCC gets back: the hub's immediate answers, then the HAN's."""
        up = self.hub.receive_wan(data, self.now)
        more, settled = self.han.settle(self.now)
        self.now = math.ceil(settled)
        return up + more

    def hub_answer(self, out):
        assert len(out) == 1
        reply = envelope.parse(out[0])
        assert reply.originator == HUB and reply.recipient == ACB
        shared = CRYPTO.ecdh(self.org[ACB]["ka"].private_key, self.pki.devices[HUB]["ka"].public_xy)
        assert security.verify_mac(CRYPTO, shared, reply)
        return A.decode_response(reply.payload)

    def esme_answer(self, out, ctx, use_case):
        assert len(out) == 1
        reply = envelope.parse(out[0])
        assert reply.cra_flag == envelope.CRA_RESPONSE and reply.originator == ESME
        assert reply.originator_counter == ctx.counter
        if codes.is_critical(reply.message_code):
            assert security.verify_signature(CRYPTO, self.pki.devices[ESME]["ds"].public_xy,
                                             reply)
        else:
            shared = CRYPTO.ecdh(self.org[SUPPLIER]["ka"].private_key,
                                 self.pki.devices[ESME]["ka"].public_xy)
            assert security.verify_mac(CRYPTO, shared, reply)
        return USE_CASE_BUILDERS[use_case].read_response(reply.payload, ctx)


def test_ccs01_adds_the_esme_then_commands_reach_it_and_answers_return(pki):
    p = Premise(pki)
    command, _ = p.esme_command("ECS45")
    assert p.wan(command) == [] and p.han.log == []          # not in the log yet
    response = p.hub_answer(p.wan(p.ccs01(ESME)))
    assert [r.result for r in response.results] == [0, 0, 0]
    assert p.hub.knows(ESME)
    command, ctx = p.esme_command("ECS45")
    fields = p.esme_answer(p.wan(command), ctx, "ECS45")
    assert fields["supply_state"] == CONNECTED
    command, ctx = p.esme_command("ECS17b")
    fields = p.esme_answer(p.wan(command), ctx, "ECS17b")
    assert fields["import_wh"] == p.esme.import_register.value[1]
    assert p.hub.outstanding == {}
    assert p.esme_security.last_counter(SUPPLIER) == ctx.counter


def test_critical_commands_pass_the_hub_and_come_back_signed(pki):
    p = Premise(pki)
    p.wan(p.ccs01(ESME))
    command, ctx = p.esme_command("ECS43")
    assert p.esme_answer(p.wan(command), ctx, "ECS43")["ok"]
    assert p.esme.supply_state != CONNECTED


def test_ccs02_removes_the_esme_and_later_commands_are_refused(pki):
    p = Premise(pki)
    p.wan(p.ccs01(ESME))
    response = p.hub_answer(p.wan(p.ccs02(ESME)))
    assert [r.result for r in response.results] == [R.ACTION_SUCCESS]
    assert not p.hub.knows(ESME)
    frames = len(p.han.log)
    before = json.dumps(p.esme_security.state())
    command, _ = p.esme_command("ECS45")
    assert p.wan(command) == []
    assert len(p.han.log) == frames and json.dumps(p.esme_security.state()) == before
    response = p.hub_answer(p.wan(p.ccs02(ESME)))
    assert [r.result for r in response.results] == [R.ACTION_HARDWARE_FAULT]


def test_a_message_for_an_unknown_eui_is_not_forwarded(pki):
    p = Premise(pki)
    p.wan(p.ccs01(ESME))
    frames = len(p.han.log)
    command, _ = p.esme_command("ECS45", recipient=STRANGER)
    assert p.wan(command) == []
    assert len(p.han.log) == frames and p.hub.stats["unknown recipient"] == 1


def test_a_forged_hub_command_raises_the_signed_alert_and_changes_nothing(pki):
    p = Premise(pki)
    forged = bytearray(p.ccs01(ESME))
    forged[-1] ^= 0x01                                         # the MAC
    before = json.dumps(p.hub.state()), json.dumps(p.hub_security.state()["counters"])
    out = p.wan(bytes(forged))
    alert = envelope.parse(out[0])
    assert alert.cra_flag == envelope.CRA_ALERT and alert.recipient == ACB
    assert security.verify_signature(CRYPTO, pki.devices[HUB]["ds"].public_xy, alert)
    assert alert.payload[9:11] == codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE.to_bytes(2, "big")
    assert (json.dumps(p.hub.state()), json.dumps(p.hub_security.state()["counters"])) == before
    assert not p.hub.knows(ESME)


def test_segmented_answers_cross_the_han(pki):
    p = Premise(pki)
    p.wan(p.ccs01(ESME))
    p.now += 10 * 86400
    p.esme.advance(p.now)
    command, ctx = p.esme_command("ECS22b", {"from": p.now - 10 * 86400, "to": p.now})
    fields = p.esme_answer(p.wan(command), ctx, "ECS22b")
    assert len(fields["entries"]) >= 400
    sizes = [len(r.data) for r in p.han.log if r.source == ESME]
    assert max(sizes) == 1500 and len(sizes) > 2


def test_the_whole_path_over_the_wan(pki):
    p = Premise(pki, delay=0.05)

    async def scenario():
        server = WanServer(p.wan, "north", seed=4, time_scale=0.002)
        port = await server.start()
        dcc = WanClient("north", seed=4, time_scale=0.002)
        await dcc.connect("127.0.0.1", port)
        try:
            added = await dcc.request(p.ccs01(ESME))
            command, ctx = p.esme_command("ECS45")
            answer = await dcc.request(command)
            nobody, _ = p.esme_command("ECS45", recipient=STRANGER)
            with pytest.raises(WanTimeout):
                await dcc.request(nobody, timeout=0.5)
        finally:
            await dcc.close()
            await server.close()
        return added, answer, ctx

    added, answer, ctx = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [r.result for r in p.hub_answer([added]).results] == [0, 0, 0]
    assert p.esme_answer([answer], ctx, "ECS45")["supply_state"] == CONNECTED


@pytest.fixture(scope="module")
def fuzz_premise(pki):
    p = Premise(pki)
    p.wan(p.ccs01(ESME))
    return p


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_damaged_input_never_raises_and_never_changes_the_hub(fuzz_premise, data):
    p = fuzz_premise
    genuine = p.ccs02(ESME)            # would remove the ESME if it arrived intact
    p.acb_counter -= 1                 # (built, never sent: the counter stays free)
    damaged = bytearray(genuine)
    how = data.draw(st.sampled_from(["flip", "truncate", "extend", "readdress"]))
    if how == "readdress":
        damaged[genuine.index(HUB) + 7] ^= 0x02
    elif how == "flip":
        at = data.draw(st.integers(0, len(damaged) - 1))
        damaged[at] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        damaged = damaged[:data.draw(st.integers(0, len(damaged) - 1))]
    else:
        damaged += data.draw(st.binary(min_size=1, max_size=8))
    before = json.dumps(p.hub.state()), json.dumps(p.hub_security.state())
    esme_before = json.dumps(p.esme_security.state()["counters"])
    frames = len(p.han.log)
    out = p.hub.receive_wan(bytes(damaged), p.now)
    for message in out:                # at most the hub's own refusal alert
        assert envelope.parse(message).cra_flag == envelope.CRA_ALERT
    if _addressed_to(bytes(damaged), ESME):
        # one flipped bit turns HUB (..A2) into ESME (..A0): the hub routes it, and the
        # ESME refuses it on its MAC, changing nothing
        up, p.now = p.han.settle(p.now)
        assert len(p.han.log) > frames
        assert json.dumps(p.esme_security.state()["counters"]) == esme_before
        p.hub.outstanding.clear()
    else:
        assert len(p.han.log) == frames and json.dumps(p.hub.state()) == before[0]
    assert p.hub.knows(ESME)
    counters = p.hub_security.state()["counters"]
    assert counters == json.loads(before[1])["counters"]
    assert p.hub.receive_han(ESME, data.draw(st.binary(max_size=40)), p.now) == []


def _addressed_to(data, eui):
    try:
        message = envelope.parse(data)
    except envelope.GbcsError:
        return False
    return message.recipient == eui and message.cra_flag == envelope.CRA_COMMAND



def test_a_hub_command_readdressed_to_the_esme_is_routed_and_refused_there(pki):
    p = Premise(pki)
    p.wan(p.ccs01(ESME))
    genuine = p.ccs02(ESME)
    damaged = bytearray(genuine)
    damaged[genuine.index(HUB) + 7] ^= 0x02            # ..A2 -> ..A0: one bit
    counters = json.dumps(p.esme_security.state()["counters"])
    up = p.wan(bytes(damaged))
    alert = envelope.parse(up[0])
    assert len(up) == 1 and alert.cra_flag == envelope.CRA_ALERT and alert.originator == ESME
    assert alert.payload[9:11] == codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE.to_bytes(2, "big")
    assert json.dumps(p.esme_security.state()["counters"]) == counters and p.hub.knows(ESME)
