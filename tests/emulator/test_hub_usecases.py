"""CCS01 / CCS02 (SRV 8.11, update the CHF device log): the DCC-side builders against RTDS
4.5.0 byte for byte, and both use cases through the DCC to the real comms hub
(firmware/devices/chf.py) in the in-process lab."""

import asyncio
import pathlib

import pytest

from emulator.lab import HUB_EUI, Lab
from emulator.usecases import USE_CASE_BUILDERS, BuildContext, UseCaseError
from firmware.gbcs import envelope

RTDS = pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs" / "rtds-4.5.0"
RTDS_DEVICE = bytes.fromhex("00DB1234567890A0")
RTDS_PARAMS = {
    # RTDS 8.11: install code "0123456789ABCDEF" (16 octets), join time 90 s
    "CCS01": {"device": RTDS_DEVICE, "install_code": b"0123456789ABCDEF", "join_time": 90},
    "CCS02": {"device": RTDS_DEVICE},
}
NEW_DEVICE = bytes.fromhex("00DB1234567890B7")


def _load(path):
    return envelope.parse(bytes.fromhex(path.read_text().strip()))


def _files(use_case, kind):
    return sorted((RTDS / ("8.11_" + use_case)).glob("*_%s_GBCS.HEX" % kind))


@pytest.mark.parametrize("use_case", ["CCS01", "CCS02"])
def test_rtds_commands_rebuilt_byte_for_byte(use_case):
    files = _files(use_case, "COMMAND")
    assert len(files) == 2
    for path in files:
        message = _load(path)
        builder = USE_CASE_BUILDERS[use_case]
        assert message.message_code == builder.message_code
        ctx = BuildContext(message.originator_counter, message.originator, message.recipient)
        assert builder.build(RTDS_PARAMS[use_case], ctx) == message.payload


@pytest.mark.parametrize("use_case", ["CCS01", "CCS02"])
def test_rtds_responses_read(use_case):
    for path in _files(use_case, "RESPONSE"):
        fields = USE_CASE_BUILDERS[use_case].read_response(_load(path).payload, None)
        assert fields["ok"] == ("SUCCESS" in path.name)
        codes = [code for _, code in fields["results"]]
        assert any(codes) == ("ERROR" in path.name)


def test_bad_parameters_are_refused():
    ctx = BuildContext(1, bytes(8), bytes(8))
    with pytest.raises(UseCaseError):
        USE_CASE_BUILDERS["CCS02"].build({"device": b"\x01\x02"}, ctx)
    with pytest.raises(UseCaseError):
        USE_CASE_BUILDERS["CCS01"].build({"device": NEW_DEVICE, "install_code": bytes(19)}, ctx)
    with pytest.raises(UseCaseError):
        USE_CASE_BUILDERS["CCS01"].build({"device": NEW_DEVICE, "join_time": 70000}, ctx)
    with pytest.raises(UseCaseError):
        USE_CASE_BUILDERS["CCS01"].read_response(b"\xda\x00", ctx)


def test_add_and_remove_a_han_device_through_the_dcc_to_the_hub():
    async def scenario():
        lab = Lab(seed=3, wan="direct", record=False)
        hub = lab.hub
        code = bytes.fromhex("83FED3407A939723A5C639B26916D505C3B5")    # 16 + CRC-16
        assert not hub.knows(NEW_DEVICE)
        added = await lab.run("A", lambda h: h.update_han_device_log(
            HUB_EUI, NEW_DEVICE, install_code=code, join_time=120), "add", "8.11", HUB_EUI)
        assert added.ok, added.response_code
        assert hub.knows(NEW_DEVICE)
        assert hub.device_log[NEW_DEVICE.hex()]["install_code"] == code.hex()
        assert hub.join_timeout == 120 and hub.joining

        removed = await lab.run("A", lambda h: h.update_han_device_log(
            HUB_EUI, NEW_DEVICE, remove=True), "remove", "8.11", HUB_EUI)
        assert removed.ok, removed.response_code
        assert not hub.knows(NEW_DEVICE)

        # removing it again: the hub answers hardware-fault (RTDS 8.11 CCS02 ERROR)
        again = await lab.run("A", lambda h: h.update_han_device_log(
            HUB_EUI, NEW_DEVICE, remove=True), "remove again", "8.11", HUB_EUI)
        assert again.response_code == "I0"
        assert again.fields.get("ok") is False
        assert again.fields["results"] == [(3, 1)]
    asyncio.run(scenario())
