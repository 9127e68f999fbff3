"""The supplier head-end (emulator/headend.py) through the DCC to a real ESME: each service
it offers, the pre-command it checks and signs, what it verifies coming back, alerts, the
UTRN it mints, and change of supplier between two head-ends."""

import asyncio

import pytest

from emulator import duis
from emulator.duis import DuisResponse, XmlSigner
from emulator.headend import HeadEnd, HeadEndError
from firmware.cosem.disconnect import CONNECTED, DISCONNECTED, READY_FOR_RECONNECTION
from firmware.dlms import cosem_datetime as cdt
from firmware.gbcs import codes, security
from firmware.gbcs.envelope import parse
from tests.emulator.test_dcc import (ACB, CRYPTO, ESME, GSME, NOW, ORGS, SMKI, SUPPLIER_A,
                                     SUPPLIER_B, Lab, _DER, key, public)


def run(coroutine):
    return asyncio.run(coroutine)


def head_end(lab, eui=SUPPLIER_A, dcc=None, dcc_certificate=None, counter=1000):
    he = HeadEnd(eui, ORGS[eui], dcc or lab.dcc,
                 dcc_certificate=dcc_certificate or ORGS[ACB]["ds"].certificate,
                 crypto=CRYPTO, clock=lab.clock, counter=counter,
                 path_certificates=[SMKI.organisation_ca.certificate.public_bytes(_DER)])
    he.add_device(ESME, codes.ESME, public(ESME, "ds"), public(ESME, "ka"))
    he.add_device(GSME, codes.GSME, public(GSME, "ds"), public(GSME, "ka"))
    return he


def checks_of(result):
    return [what for _, what, passed in result.checks if passed]


def test_read_registers_verified_hop_by_hop_and_decoded():
    lab = Lab()
    he = head_end(lab)
    result = run(he.read_registers(ESME))
    assert result.ok and result.code == "I0"
    assert result.fields["import_wh"] == lab.premise.esme.import_register.value[1]
    assert checks_of(result) == ["DUIS response signed by the DCC",
                                 "response answers this request",
                                 "GBCS response answers the command",
                                 "device MAC verifies with our KA key"]
    assert result.request_id.counter == 1001 and he.counter == 1001


def test_profile_and_daily_log_reads_decrypt_with_the_head_end_key():
    lab = Lab()
    he = head_end(lab)
    profile = run(he.read_profile(ESME, NOW - 6 * 3600, NOW))
    assert profile.ok and len(profile.fields["entries"]) >= 6
    times = [t for t, _ in profile.fields["entries"]]
    assert times == sorted(times) and all(NOW - 6 * 3600 <= t <= NOW for t in times)
    daily = run(he.read_daily_log(ESME, NOW - 3 * 86400, NOW))
    assert daily.ok and daily.fields["days"]


def test_supply_disable_arm_enable_through_signed_pre_commands():
    lab = Lab()
    he = head_end(lab)
    disabled = run(he.disable_supply(ESME))
    assert disabled.ok and lab.premise.supply_state() == DISCONNECTED
    assert "pre-command is the command asked for" in checks_of(disabled)
    assert "device signature verifies" in checks_of(disabled)
    signed = parse(disabled.signed_pre_command)
    assert security.verify_signature(CRYPTO, public(SUPPLIER_A, "ds"), signed)
    assert parse(disabled.pre_command).signed_part() == signed.signed_part()
    assert run(he.read_supply_status(ESME)).fields["supply_state"] == DISCONNECTED
    assert run(he.arm_supply(ESME)).ok
    assert lab.premise.supply_state() == READY_FOR_RECONNECTION
    assert run(he.enable_supply(ESME)).ok
    assert lab.premise.supply_state() == CONNECTED
    assert run(he.read_supply_status(ESME)).fields["supply_state"] == CONNECTED


def test_clock_commission_and_meter_balance_reset():
    lab = Lab()
    he = head_end(lab)
    assert run(he.set_clock(ESME)).ok
    assert run(he.commission(ESME, NOW, 60)).ok
    assert run(he.reset_meter_balance(ESME)).ok


def test_top_up_mints_a_utrn_the_meter_accepts_once():
    lab = Lab()
    he = head_end(lab)
    credit = lab.premise.port.objects.credits[0]
    before = credit.amount
    result = run(he.top_up(ESME, 1250))
    assert result.ok and len(result.fields["utrn"]) == 20
    assert he.top_up_counter == 1 << 32 and he.top_up_counter % (1 << 32) == 0
    assert credit.amount == before + 1250
    # the ordinary counter is untouched by a top-up, so the next read is not stale
    assert run(he.read_registers(ESME)).ok
    # the same UTRN again (fresh top-up counter): the meter refuses it, credit unchanged
    after = credit.amount
    replay = run(he.request("2.2", ESME, {"UTRN": result.fields["utrn"]},
                            counter=he.next_top_up_counter()))
    assert not replay.ok and credit.amount == after
    alerts = run(he.collect_alerts())
    assert [a.alert_code for a in alerts] == [codes.ALERT_DUPLICATE_UTRN]
    assert alerts[0].verified
    second = run(he.top_up(ESME, 500 * 100))            # pounds class: £500
    assert second.ok and he.top_up_counter == 3 << 32
    with pytest.raises(HeadEndError):
        run(he.top_up(ESME, 0))


def test_head_end_refuses_to_sign_a_pre_command_it_did_not_ask_for():
    lab = Lab()
    dcc_signer = XmlSigner(key(ACB, "ds"), ORGS[ACB]["ds"].certificate)

    class MeddlingDcc:
        """A DCC that turns a disable into an enable before asking for the signature."""

        async def handle(self, xml):
            response = await lab.dcc.submit(xml)
            if response.pre_command is not None:
                message = parse(response.pre_command)
                message.message_code = codes.ECS42
                response.pre_command = message.encode()
            return response.to_xml(dcc_signer)

        def take_alerts(self, eui):
            return lab.dcc.take_alerts(eui)

    he = head_end(lab, dcc=MeddlingDcc())
    result = run(he.disable_supply(ESME))
    assert not result.ok and result.signed_pre_command is None
    assert ("head-end", "pre-command is the command asked for", False) in result.checks
    assert lab.premise.seen == [] and lab.premise.supply_state() == CONNECTED


def test_a_response_not_signed_by_the_dcc_is_not_trusted():
    lab = Lab()
    he = head_end(lab, dcc_certificate=ORGS[SUPPLIER_B]["ds"].certificate)
    result = run(he.read_registers(ESME))
    assert not result.ok and result.fields == {}
    assert result.checks[0][2] is False


def test_the_dcc_certificate_defaults_to_the_in_process_dcc_signer():
    lab = Lab()
    he = HeadEnd(SUPPLIER_A, ORGS[SUPPLIER_A], lab.dcc)
    assert he.dcc_certificate is ORGS[ACB]["ds"].certificate
    with pytest.raises(ValueError):
        HeadEnd(SUPPLIER_A, ORGS[SUPPLIER_A], lambda xml: xml)


def test_han_device_log_request_is_shaped_for_the_hub():
    lab = Lab()
    he = head_end(lab)
    hub = bytes.fromhex("00DB1234567890A2")
    he.add_device(hub, codes.CHF, public(ESME, "ds"), public(ESME, "ka"))
    lab.routing.add(hub, codes.CHF, hub, SUPPLIER_A, public(ESME, "ds"), public(ESME, "ka"))
    result = run(he.update_han_device_log(hub, GSME, bytes(range(16))))
    # The DCC passes every check, builds CCS01 and sends it to the hub; this setup has no
    # hub on the WAN, so the request ends as "no response from the device" (E21).
    assert result.code == "E21"
    sent = [e for e in lab.dcc.events if e.kind == "sent"]
    assert sent and sent[-1].detail["hub"] == hub.hex()
    message = parse(bytes.fromhex(sent[-1].detail["gbcs"]))
    assert message.message_code == codes.CCS01
    assert message.recipient == hub
    refused = [e for e in lab.dcc.events if e.kind == "refused"]
    assert [e.detail["reason"] for e in refused] == ["no_response"]
    with pytest.raises(HeadEndError):
        run(he.update_han_device_log(ESME, GSME, b""))    # 8.11 goes to a hub only


def test_refusals_come_back_as_duis_codes():
    lab = Lab()
    he = head_end(lab)
    result = run(he.read_registers(GSME))          # no GSME builder here, or no GSME answer
    assert not result.ok and result.code in ("E11", "E21")
    stranger = head_end(lab, eui=SUPPLIER_B)
    refused = run(stranger.read_registers(ESME))
    assert refused.code == "E4" and not refused.ok
    with pytest.raises(HeadEndError):
        run(he.read_registers(bytes(8)))


def test_change_of_supplier_between_two_head_ends():
    lab = Lab()
    old = head_end(lab)
    new = head_end(lab, eui=SUPPLIER_B, counter=50)
    assert run(old.read_registers(ESME)).ok
    lab.routing.register_change_of_supplier(ESME, SUPPLIER_B)
    cos = run(new.change_of_supplier(ESME))
    assert cos.ok and cos.fields["outcomes"] and all(o[3] == 0 for o in cos.fields["outcomes"])
    assert "device signature verifies" in checks_of(cos)
    assert run(old.read_registers(ESME)).code == "E4"
    read = run(new.read_registers(ESME))
    assert read.ok and "import_wh" in read.fields     # the meter now encrypts for B
    assert run(new.disable_supply(ESME)).ok and lab.premise.supply_state() == DISCONNECTED


def test_alerts_reach_their_head_end_verified():
    lab = Lab()
    he = head_end(lab)
    stamp = cdt.datetime_bytes(NOW)
    critical = lab.premise.security.dlms_alert(codes.ALERT_SUPPLY_ARMED, SUPPLIER_A, stamp)
    mac_only = lab.premise.security.dlms_alert(codes.ALERT_SMART_METER_INTEGRITY_WARNING,
                                               SUPPLIER_A, stamp)
    run(lab.dcc.receive_alert(critical))
    run(lab.dcc.receive_alert(mac_only))
    alerts = run(he.collect_alerts())
    assert [a.alert_code for a in alerts] == [codes.ALERT_SUPPLY_ARMED,
                                              codes.ALERT_SMART_METER_INTEGRITY_WARNING]
    assert all(a.verified and a.device == ESME for a in alerts)
    assert [c[1] for c in alerts[1].checks][-1] == "device MAC verifies with our KA key"
    assert run(he.collect_alerts()) == []
    # an alert whose DUIS wrapper is not the DCC's is not believed
    forged = DuisResponse(duis.I0_SUCCESS, "2026-01-03T01:00:00Z", kind=duis.DEVICE_ALERT,
                          alert_code=codes.ALERT_SUPPLY_ARMED, gbcs_payload=critical)
    lab.dcc._alerts[SUPPLIER_A] = [forged]
    lab.dcc.xml_signer = XmlSigner(key(SUPPLIER_B, "ds"), ORGS[SUPPLIER_B]["ds"].certificate)
    refused = run(he.collect_alerts())
    assert len(refused) == 1 and not refused[0].verified
