"""GBCS on the micropython DUT: the lab's head-end and DCC build, sign and MAC the use
cases host-side; the core inside the `micropython` binary (its ESME with `BoardCrypto`,
reached through the pipe's GBCS channel) verifies, acts and protects its answers, which
the head-end, the DCC and the lab's observer verify host-side. What it did is then read
back from the same core over DLMS on its pty, and the lab's own in-process ESME, no longer
on the HAN, is shown untouched."""

import shutil

import pytest

from firmware.cosem.disconnect import CONNECTED, DISCONNECTED
from firmware.gbcs import envelope
from hil.targets import Dut, Target

pytestmark = [
    pytest.mark.micropython,
    pytest.mark.skipif(shutil.which("micropython") is None,
                       reason="the micropython unix port is not on PATH"),
]

DISCONNECT_CONTROL = "0.0.96.3.10.255"
TOKEN_CREDIT = "0.0.19.10.0.255"


@pytest.fixture(scope="module")
def dut():
    target = Target("micropython:esme-single-phase").start()
    try:
        yield Dut(target)
    finally:
        target.stop()


def _control_state(dut):
    tag, state = dut.get(DISCONNECT_CONTROL, 3, class_id=70)
    dut.release()
    assert tag == 22                                      # enum (Blue Book class 70 attr 3)
    return state


def _verified(outcome, hop_name):
    """The checks the lab's observer made on the DUT's answer as it left the ESME."""
    hops = [h for h in outcome.hops if h.name == hop_name]
    assert hops, [h.name for h in outcome.hops]
    return {c["check"]: c["result"] for c in hops[-1].checks}


def test_the_micropython_dut_answers_gbcs_and_the_lab_esme_stays_out(dut):
    assert "gbcs" in dut.capabilities and "micropython" in dut.capabilities
    assert dut.target.resources["port"].describe().startswith("serial")
    lab = dut.gbcs.lab
    before = lab.esme_security.state()["counters"]

    outcome = dut.service_request("7.2", "ESME")          # ECS43, critical: signed both ways
    assert outcome.ok and outcome.response_code == "I0", outcome
    assert _verified(outcome, "ESME → hub")["signature"] == "verified"
    assert _control_state(dut) == DISCONNECTED            # the core did it, seen over DLMS
    assert lab.esme.supply_state == CONNECTED             # the lab's ESME never saw it
    assert lab.esme_security.state()["counters"] == before

    outcome = dut.service_request("7.1", "ESME")          # ECS42
    assert outcome.ok and _control_state(dut) != DISCONNECTED


def test_registers_read_by_gbcs_match_the_cores_dlms_registers(dut):
    outcome = dut.service_request("4.1.1", "ESME")        # ECS17b: MAC'd, GCM-encrypted
    assert outcome.ok, outcome
    assert _verified(outcome, "ESME → hub")["mac"] == "verified"
    _, [(_, scaler), _] = dut.get("1.0.1.8.0.255", 3)    # scaler_unit structure
    _, energy = dut.get("1.0.1.8.0.255", 2)
    dut.release()
    # the DLMS read comes a moment later on a meter that keeps metering: never less
    assert 0 < outcome.fields["import_wh"] <= energy * 10 ** scaler


def _token_credit(dut):
    """current_credit_amount of the token credit (class 112, attribute 2), which only the
    management client may read."""
    dut.associate("management")
    tag, amount = dut.get(TOKEN_CREDIT, 2, class_id=112)
    dut.release()
    assert tag == 5                                       # double-long
    return amount


def test_a_top_up_is_credited_once_and_its_replay_refused(dut):
    before = _token_credit(dut)
    first = dut.gbcs.top_up(1000, "ESME")
    assert first.ok and first.response_code == "I0", first
    assert _verified(first, "ESME → hub")["mac"] == "verified"
    assert _token_credit(dut) == before + 1000            # on the core, read over DLMS
    replay = dut.gbcs.top_up(0, "ESME", replay=True)
    assert replay.response_code == "E40" and not replay.ok
    assert _token_credit(dut) == before + 1000
    assert dut.gbcs.lab.esme.gbcs_objects.credits[0].amount == 0   # the lab's ESME: untouched


def test_after_a_power_cut_the_credit_stays_and_gbcs_goes_on(dut):
    credit = _token_credit(dut)
    taken = dut.service_request("7.1", "ESME")           # ECS42: its command, as delivered
    assert taken.ok, taken
    command = [h.gbcs for h in taken.hops if h.name == "hub → ESME" and h.gbcs][-1]
    dut.power_cycle()                         # SIGKILL: no final save
    assert _token_credit(dut) == credit
    # the originator counters came back with the state: the old command is a replay now
    answers = dut.target._served.receive_gbcs(command)
    assert answers and all(envelope.parse(a).cra_flag == envelope.CRA_ALERT for a in answers)
    outcome = dut.service_request("4.1.1", "ESME")
    assert outcome.ok and outcome.response_code == "I0", outcome
