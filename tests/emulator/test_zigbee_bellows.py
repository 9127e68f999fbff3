"""The hub on unmodified bellows, over virtual EZSP NCPs on ptys sharing a virtual 802.15.4
medium (emulator/ncp): the hub forms, an IHD joins and reads the hub's SE endpoint, a GBCS
command travels head-end -> DCC -> hub -> ESME node through the ZigBee tunnel and back,
for an old, a middle and a current EZSP version; the same on the 868 MHz band; and a
radio without sub-GHz makes --band 868 fail with a clear message."""

import asyncio

import pytest

pytest.importorskip("emulator.ncp.ncp")

import emulator.lab as L  # noqa: E402
from emulator.lab import ESME_EUI, Lab  # noqa: E402
from emulator.zigbee import clusters as C  # noqa: E402
from emulator.zigbee.hub import ieee_of  # noqa: E402
from emulator.zigbee.radio import (  # noqa: E402
    SubGhzUnavailable,
    start_sub_ghz,
    sub_ghz_channel_number,
)
from emulator.zigbee.rig import HanRig, VirtualRadios  # noqa: E402


def _run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def _premise_round(version, band):
    lab = Lab(seed=0, wan="direct")
    with VirtualRadios(L, ["esme", "ihd"], ezsp_version=version,
                       node_bands=(band,)) as radios:
        rig = HanRig(lab, radios.paths["hub"], band=band, channel=15, sub_ghz=(28, 3))
        try:
            info = await rig.start()
            assert info.channel == 15
            ihd = (await rig.add_node("ihd", radios.paths["ihd"])).client
            shown = await ihd.refresh()
            assert shown["current_summ_delivered"] == lab.esme.import_register.value[1]
            assert shown["instantaneous_demand"] == lab.esme.power_register.value[1]
            assert shown["price"] == rig.premise.server.tariff.price
            price = await ihd.read(C.Price, ["no_tier_block1_price"])
            assert price["no_tier_block1_price"] == rig.premise.server.tariff.price
            esme = (await rig.add_node("esme", radios.paths["esme"])).client
            assert esme.hub_max == rig.max_transfer
            outcome = await lab.request("A", "4.1.1", ESME_EUI)
            assert outcome.ok, outcome.response_code
            assert outcome.fields["import_wh"] == lab.esme.import_register.value[1]
            outcome = await lab.run("A", lambda h: h.disable_supply(ESME_EUI), "7.2", "7.2",
                                    ESME_EUI)
            assert outcome.ok and lab.esme.supply_state == 0
        finally:
            await rig.stop()
        return radios


@pytest.mark.parametrize("version", [8, 13, 19])
def test_ihd_reads_and_gbcs_travels_the_tunnel_on_bellows(version):
    radios = _run(_premise_round(version, "2.4"))
    assert radios.ncps["hub"].host_version == version
    assert not radios.host.errors


def test_the_same_on_the_868_mhz_band():
    radios = _run(_premise_round(13, "868"))
    esme = radios.ncps["esme"].eui64
    on_air = [r for r in radios.medium.records if r.sender is radios.ncps["esme"]
              or getattr(r.sender, "eui64", None) == esme]
    assert on_air and {r.band for r in on_air} == {"868"}
    assert {(r.page, r.channel) for r in on_air} == {(28, 3)}
    hub_to_esme = [r for r in radios.medium.records if r.sender is radios.ncps["hub"]
                   and r.band == "868"]
    assert hub_to_esme                        # the hub answered on PHY 1


def test_band_868_on_a_radio_without_sub_ghz_fails_clearly():
    async def main():
        lab = Lab(seed=0, wan="direct")
        with VirtualRadios(L, [], hub_bands=("2.4",)) as radios:
            rig = HanRig(lab, radios.paths["hub"], band="868", sub_ghz=(28, 0))
            with pytest.raises(SubGhzUnavailable) as caught:
                await rig.start()
            text = str(caught.value)
            assert "--band 868" in text and "868 MHz" in text and "--band 2.4" in text
    _run(main())


def test_sub_ghz_needs_ezsp_multi_phy_commands():
    class OldEzsp:
        ezsp_version = 5

        class _protocol:
            COMMANDS = {"version": None}

    with pytest.raises(SubGhzUnavailable, match="EZSP v5 has no multi-PHY"):
        asyncio.run(start_sub_ghz(OldEzsp()))


def test_sub_ghz_channel_numbers_carry_the_page_in_the_top_bits():
    assert sub_ghz_channel_number(28, 0) == 0x80
    assert sub_ghz_channel_number(29, 3) == 0xA3
    assert sub_ghz_channel_number(31, 26) == 0xFA
    for page, channel in ((0, 11), (27, 0), (28, 27)):
        with pytest.raises(ValueError):
            sub_ghz_channel_number(page, channel)
    assert str(ieee_of(ESME_EUI)) == "00:db:12:34:56:78:90:a0"


def test_thirty_percent_loss_on_the_medium_completes_or_times_out_and_never_runs_twice():
    from firmware.gbcs import envelope

    async def main():
        lab = Lab(seed=0, wan="direct")
        with VirtualRadios(L, ["esme"], ezsp_version=13, seed=7) as radios:
            rig = HanRig(lab, radios.paths["hub"], wan_timeout=4.0)
            try:
                await rig.start()
                await rig.add_node("esme", radios.paths["esme"])
                radios.medium.configure("2.4", loss=0.3)
                executed = []
                original = lab.esme_gbcs.receive_gbcs

                def counting(data, now):
                    executed.append(envelope.parse(data).originator_counter)
                    return original(data, now)
                lab.esme_gbcs.receive_gbcs = counting
                codes = []
                for action in ("read", "disable", "read", "enable", "read"):
                    if action == "read":
                        outcome = await lab.request("A", "4.1.1", ESME_EUI)
                    else:
                        outcome = await lab.run("A", lambda h, a=action: getattr(
                            h, a + "_supply")(ESME_EUI), a_step(action), "", ESME_EUI)
                    codes.append(outcome.response_code)
                assert set(codes) <= {"I0", "E21"}, codes
                assert len(executed) == len(set(executed))      # no command ran twice
                lost = [r for r in radios.medium.records if r.fate == "lost"]
                assert lost                                      # the loss was real
                # the GBCS messages crossed as APS blocks (extended header), some lost
                assert any(r.psdu[0] & 7 == 1 and len(r.psdu) > 18 and r.psdu[17] & 0x80
                           for r in lost)
            finally:
                await rig.stop()
    _run(main(), timeout=120)


def a_step(action):
    return "%s supply" % action
