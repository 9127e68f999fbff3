"""The network operator (the lab's head-end "N"): devices are installed with its anchor, so
it reads the electricity meter in its own name (ECS17b lists the network operator among the
roles the ESME obeys), and is refused what its role may not ask (E2 at the DCC)."""

import asyncio

from emulator.lab import ESME_EUI, NETWORK_OPERATOR_EUI, Lab
from firmware.gbcs import codes, envelope


def run(coroutine):
    return asyncio.run(coroutine)


def test_the_network_operator_reads_the_esme_registers_in_its_own_name():
    lab = Lab(seed=3, wan="direct")
    outcome = run(lab.request("N", "4.1.1", ESME_EUI))
    assert outcome.ok, outcome.checks
    assert outcome.fields["import_wh"] == lab.esme.import_register.value[1]
    command = envelope.parse(next(h.gbcs for h in outcome.hops if h.layer == "wan"))
    assert command.originator == NETWORK_OPERATOR_EUI          # not the ACB on its behalf
    assert command.message_code == codes.use_case("ECS17b")[0]
    assert lab.esme_security.anchors.get(codes.ROLE_NETWORK_OPERATOR).eui \
        == NETWORK_OPERATOR_EUI


def test_supply_control_is_not_the_network_operators_to_ask():
    lab = Lab(seed=3, wan="direct")
    before = lab.snapshot()
    outcome = run(lab.request("N", "7.2", ESME_EUI))
    assert not outcome.ok and outcome.response_code == "E2"
    assert lab.snapshot() == before
