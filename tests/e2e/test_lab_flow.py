"""The demo sequence on the whole lab, values asserted against the devices themselves; the
`smets-emu demo` command (time, exit code, JSON hops) and its keystore round trip through
`smets-emu decode --keystore`."""

import asyncio
import json
import time

import pytest
from click.testing import CliRunner

from emulator.cli import main
from emulator.lab import (DEMO_TOP_UP_B, ESME_EUI, GSME_EUI, HUB_EUI, SUPPLIER_EUIS,
                          TRANSCOS_EUI, Lab, demo_sequence)
from firmware.devices.gsme import VALUE_PER_PENNY
from firmware.gbcs import codes
from firmware.cosem.disconnect import CONNECTED
from firmware.gbcs import envelope

GBCS_HOPS = ("DCC → hub", "hub → ESME", "ESME → hub", "hub → DCC")


@pytest.fixture(scope="module")
def demo():
    async def run():
        async with Lab(seed=0) as lab:
            return lab, await demo_sequence(lab)
    return asyncio.run(run())


def _step(steps, prefix):
    return next(s for s in steps if s.title.startswith(prefix))


def test_every_step_passes(demo):
    lab, steps = demo
    failed = [(s.title, s.expectations) for s in steps if not s.ok]
    assert not failed
    assert not [s.title for s in steps if s.skipped]
    assert len(steps) == 14


def test_values_come_from_the_devices(demo):
    lab, steps = demo
    registers = _step(steps, "Read instantaneous").outcome.fields
    assert registers["import_wh"] == lab.esme.import_register.value[1] > 0
    assert registers["import_scaler_unit"] == (0, 30)                 # Wh
    profile = _step(steps, "Read the half-hourly").outcome.fields["entries"]
    assert len(profile) == 48
    assert all(b - a == 1800 for (a, _), (b, _) in zip(profile, profile[1:]))
    top_up = _step(steps, "Top up").outcome.fields
    assert len(top_up["utrn"]) == 20 and top_up["ok"]
    # A's £10, then B's first top-up after the change of supplier
    b_top_up = _step(steps, "B's first UTRN top-up").outcome.fields
    assert b_top_up["ok"] and b_top_up["utrn"] != top_up["utrn"]
    assert lab.esme.gbcs_objects.credits[0].amount == 1000 + DEMO_TOP_UP_B
    assert len(lab.esme.gbcs_objects.token_gateway.record.accepted) == 2
    assert lab.esme.supply_state == CONNECTED


def test_each_request_takes_the_whole_path_and_every_hop_verifies(demo):
    lab, steps = demo
    read = _step(steps, "Read instantaneous").outcome
    assert [h.name for h in read.hops] == ["A head-end → DCC", *GBCS_HOPS, "DCC → A head-end"]
    for hop in read.hops[1:]:
        checks = {c["check"]: c["result"] for c in hop.checks}
        assert checks["mac"] == "verified" and checks["signature"] == "absent", hop.name
    disable = _step(steps, "Disable supply").outcome
    names = [h.name for h in disable.hops]
    # critical: the pre-command round trip, then the signed command down and its answer
    assert names == ["A head-end → DCC", "DCC → A head-end", "A head-end → DCC", *GBCS_HOPS,
                     "DCC → A head-end"]
    down = {c["check"]: c["result"] for c in disable.hops[3].checks}
    assert down == {"mac": "verified", "signature": "verified"}
    answer = {c["check"]: c["result"] for c in disable.hops[5].checks}
    assert answer == {"mac": "absent", "signature": "verified"}
    assert all(h.ok for h in lab.hops)
    for hop in lab.hops:
        if hop.layer == "duis" and hop.direction == "up":
            assert {"check": "duis signature", "result": "verified",
                    "detail": "the DCC's DS key"} in hop.checks


def test_hops_carry_the_bytes_that_crossed(demo):
    lab, steps = demo
    read = _step(steps, "Read instantaneous").outcome
    wan_down, han_down, han_up, wan_up = read.hops[1:5]
    assert wan_down.data == wan_down.gbcs == han_down.gbcs            # the hub forwards as is
    assert han_down.data[0] == 0x03 and han_down.data.endswith(han_down.gbcs)   # tunnel PUT
    command = envelope.parse(wan_down.gbcs)
    response = envelope.parse(wan_up.gbcs)
    assert command.recipient == ESME_EUI and response.originator == ESME_EUI
    assert response.originator_counter == command.originator_counter
    assert han_up.gbcs == wan_up.gbcs


def test_the_demo_command_exits_0_quickly_and_its_keystore_verifies_what_it_printed(tmp_path):
    keystore = tmp_path / "pki"
    started = time.monotonic()
    result = CliRunner().invoke(main, ["demo", "--json", "--keystore-out", str(keystore)])
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert elapsed < 30
    hops = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(hops) >= 40 and all(h["ok"] for h in hops)
    assert {h["layer"] for h in hops} == {"duis", "wan", "han"}
    assert (keystore / ("%s-ka.key" % ESME_EUI.hex())).is_file()
    assert (keystore / ("%s-ds.pem" % HUB_EUI.hex())).is_file()
    gbcs = [h for h in hops if h["gbcs"] and h["layer"] != "duis"]
    decoded = CliRunner().invoke(main, ["decode", "--json", "--keystore", str(keystore)]
                                 + [h["gbcs"] for h in gbcs])
    assert decoded.exit_code == 0, decoded.output
    objs = [json.loads(line) for line in decoded.stdout.splitlines()]
    assert len(objs) == len(gbcs)
    verified = 0
    for hop, obj in zip(gbcs, objs):
        assert obj["ok"], (hop["name"], obj)
        ours = {c["check"]: c["result"] for c in hop["checks"]}
        theirs = {c["check"]: c["result"] for c in obj["verification"]}
        assert ours == theirs, hop["name"]
        verified += list(theirs.values()).count("verified")
    assert verified >= len(gbcs)           # each message has its MAC or its signature


def test_the_demo_prints_each_hop_and_a_summary():
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    assert "DCC → hub" in result.stdout and "hub → ESME" in result.stdout
    assert "0 failed" in result.stdout


def test_a_lossy_long_range_radio_wan_still_carries_the_requests():
    async def run():
        async with Lab(seed=5, region="north", loss=0.3, time_scale=0.002) as lab:
            outcomes = [await lab.request("A", "4.1.1", ESME_EUI) for _ in range(5)]
            return lab, outcomes
    lab, outcomes = asyncio.run(run())
    assert all(o.ok for o in outcomes), [o.response_code for o in outcomes]
    counters = [envelope.parse(o.hops[1].gbcs).originator_counter for o in outcomes]
    assert counters == sorted(set(counters))          # each sent once, none replayed


def test_the_gas_meter_sleeps_through_a_read_the_gpf_answers(demo):
    lab, steps = demo
    step = _step(steps, "Gas registers")
    assert step.ok and not lab.gsme.awake
    names = [h.name for h in step.outcome.hops]
    assert names == ["A head-end → DCC", "DCC → hub", "hub (GPF) → DCC", "DCC → A head-end"]
    # radio off until the demo lets the GSME wake (for its change of supplier)
    woken = _step(steps, "Gas: change of supplier").outcome.hops[0].index
    assert not [h for h in lab.hops[:woken] if h.layer == "han" and "GSME" in h.name]
    assert [h for h in lab.hops[woken:] if h.layer == "han" and "GSME" in h.name]
    assert envelope.parse(step.outcome.hops[-2].gbcs).originator == GSME_EUI


def test_a_valve_command_waits_at_the_gpf_until_the_gsme_wakes():
    """GCS32 for the sleeping GSME, built and protected as the DCC would: the GPF checks and
    queues it (nothing goes up), the GSME closes the valve on its next wake and its signed
    response, carrying the GSME's EUI, goes up through the hub."""
    from emulator.lab import ACB_EUI, SUPPLIER_EUIS
    from emulator.usecases import USE_CASE_BUILDERS
    from firmware.gbcs import security
    from tests.fuzz.parties import InstalledDevice

    lab = Lab(seed=2, wan="direct")
    parties = InstalledDevice.in_lab(lab, GSME_EUI, SUPPLIER_EUIS["A"], ACB_EUI)
    device = parties.device
    counter = lab.headends["A"].next_counter()
    command = parties.command("GCS32", {}, counter, lab.now)
    wakes = lab.gsme.wakes
    assert lab.inject(command, "DCC → hub") == []                   # queued at the GPF
    assert lab.gsme.valve == "open" and len(lab.gpf.queue) == 1 and lab.gsme.wakes == wakes
    up = lab.wake_gsme()
    assert lab.gsme.wakes == wakes + 1 and lab.gsme.valve == "closed" and not lab.gpf.queue
    [raw] = up
    answer = envelope.parse(raw)
    assert answer.originator == GSME_EUI and answer.originator_counter == counter
    assert security.verify_signature(lab.crypto, device["ds"].public_xy, answer)
    reader = USE_CASE_BUILDERS["GCS32"]
    assert reader.read_response(answer.payload, parties.context(counter, lab.now))["ok"]
    names = [h.name for h in lab.hops]
    assert "GSME → hub" in names and "hub → GSME" in names and names[-1] == "hub → DCC"


def test_change_of_supplier_moves_the_esme_to_b_and_a_is_refused(demo):
    lab, steps = demo
    cos = _step(steps, "Change of supplier").outcome
    assert cos.ok and lab.routing.get(ESME_EUI).supplier == SUPPLIER_EUIS["B"]
    command = envelope.parse(cos.hops[1].gbcs)
    assert command.originator == TRANSCOS_EUI                 # signed by the TransCoS party
    assert [h.note for h in cos.hops if h.layer == "han"][:1] == ["segment"]  # > 1500 bytes
    refused = _step(steps, "The old supplier A").outcome
    assert refused.response_code == "E4"
    assert _step(steps, "The new supplier B").outcome.fields["import_wh"] == \
        lab.esme.import_register.value[1]


def test_the_demo_moves_the_gas_meter_to_b_through_the_gpf_and_its_wake(demo):
    """The GSME's 6.23: queued at the GPF (I99 at once), run at the wake, the GSME's late
    answer completes the change at the DCC and reaches B; then the GPF answers B and the
    DCC refuses A; B's CS01b credits the GSME at its next wake."""
    lab, steps = demo
    supplier_b = SUPPLIER_EUIS["B"]
    cos = _step(steps, "Gas: change of supplier")
    assert cos.ok and cos.outcome.response_code == "I99"
    names = [h.name for h in cos.outcome.hops]
    assert names[:3] == ["B head-end → DCC", "DCC → hub", "DCC → B head-end"]
    assert "hub → GSME" in names and names[-2:] == ["hub → DCC", "DCC → B head-end"]
    late = cos.outcome.hops[-1]
    assert {"check": "response code", "result": "I0", "detail": "late answer"} in late.checks
    answer = envelope.parse(late.gbcs)
    assert answer.originator == GSME_EUI and answer.recipient == TRANSCOS_EUI
    assert lab.routing.get(GSME_EUI).supplier == supplier_b
    for security in (lab.gsme_security, lab.gpf.security):
        assert security.anchors.get(codes.ROLE_SUPPLIER).eui == supplier_b
    read = _step(steps, "Gas: B reads")
    assert read.ok and [h.name for h in read.outcome.hops][:4] == [
        "B head-end → DCC", "DCC → hub", "hub (GPF) → DCC", "DCC → B head-end"]
    assert read.outcome.hops[-1].checks[1]["result"] == "E4"          # A, at the DCC
    top_up = _step(steps, "Gas: B tops up")
    assert top_up.ok
    assert lab.gsme.credit == DEMO_TOP_UP_B * VALUE_PER_PENNY          # nothing before
    assert not lab.gpf.queue
