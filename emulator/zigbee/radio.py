"""Bringing the hub's HAN up on an EZSP radio: the 2.4 GHz network bellows forms, and the
GB 868 MHz band through EZSP's multi-PHY commands.

zigpy knows channels 11-26 only and bellows' `EmberNetworkParameters` has no channel
page, so the hub forms its network on 2.4 GHz (PHY 0) as bellows always does, and the
sub-GHz band is PHY 1, started with the raw EZSP command `multiPhyStart(phyIndex, page,
channel, power, bitmask)` (EZSP v6+, UG100 "Multi-PHY"). GB sub-GHz uses channel pages
28-31 (ZigBee R22 sub-GHz, 863-876 MHz); a HAN device on that band joins with the page in
the top three bits of its channel number, as EmberZNet numbers them:
`(page - 24) << 5 | channel`. Nothing in bellows calls these commands (ZIGBEE.md
"Sub-GHz"); an NCP whose firmware has no sub-GHz radio refuses them, and `start_sub_ghz`
says so in words.

Transfer sizes. A TransferData longer than one APS frame (127-octet PSDU less the MAC,
NWK, APS and ZCL headers: under 100 octets) goes as APS blocks: EZSP `sendUnicast` takes
one frame and bellows only reassembles what it receives, so the hub and the nodes
fragment it themselves (`emulator.zigbee.fragmentation`, EmberZNet's host
fragmentation). GB devices advertise a Tunneling MaximumIncomingTransferSize of 1500
(`GB_MAX_TRANSFER`, `firmware.han.tunnel`); a GB-HRGP frame longer than the peer's size
is cut into several TransferData, which a capture cannot show as one GBCS message
(Wireshark's `gbcs_tunnel` reassembles APS blocks, not the tunnel's byte stream). The
emulated hub and tunnel nodes advertise `HAN_MAX_TRANSFER` (4096, within ZSE's 16-bit
attribute and the 255 APS blocks of one message), which holds every GBCS message the
lab sends on the HAN (the largest, CS02b's new certificates, is about 1.9 kB), so each
crosses as one TransferData; a real GB meter still gets at most the 1500 it advertises.
"""

from __future__ import annotations

import asyncio

from firmware.han.tunnel import MAX_TRANSFER

SUB_GHZ_PHY = 1
GB_PAGES = (28, 29, 30, 31)
DEFAULT_PAGE = 28
GB_MAX_TRANSFER = MAX_TRANSFER            # 1500
HAN_MAX_TRANSFER = 4096
CHANNELS_2_4 = range(11, 27)


class SubGhzUnavailable(Exception):
    """The radio cannot run the 868 MHz band; the message says why and what to do."""


def sub_ghz_channel_number(page: int, channel: int) -> int:
    """EmberZNet's 8-bit channel number for a sub-GHz page and channel."""
    if page not in GB_PAGES:
        raise ValueError("GB sub-GHz channel pages are 28-31, not %d" % page)
    if not 0 <= channel <= 26:
        raise ValueError("sub-GHz channel %d is outside 0-26" % channel)
    return ((page - 24) << 5) | channel


async def start_sub_ghz(ezsp, page: int = DEFAULT_PAGE, channel: int = 0, power: int = 8,
                        timeout: float = 5.0):
    """Start PHY 1 on the GB sub-GHz band; raise SubGhzUnavailable with the reason."""
    import bellows.types as bt
    sub_ghz_channel_number(page, channel)           # range checks
    version = getattr(ezsp, "ezsp_version", None)
    commands = getattr(getattr(ezsp, "_protocol", None), "COMMANDS", {})
    if "multiPhyStart" not in commands:
        raise SubGhzUnavailable(
            "--band 868: EZSP v%s has no multi-PHY commands (EZSP v6 or later with a "
            "sub-GHz capable EmberZNet firmware is needed)" % version)
    try:
        (status, *_rest) = await asyncio.wait_for(ezsp.multiPhyStart(
            SUB_GHZ_PHY, page, channel, power, bt.EmberMultiPhyNwkConfig.BROADCAST_SUPPORT),
            timeout)
    except asyncio.TimeoutError:
        raise SubGhzUnavailable("--band 868: the NCP did not answer multiPhyStart within "
                                "%.0f s" % timeout) from None
    except Exception as e:            # bellows raises its own errors for unknown commands
        raise SubGhzUnavailable("--band 868: the NCP refused multiPhyStart (%s): its "
                                "firmware has no sub-GHz radio" % e) from None
    if bt.sl_Status.from_ember_status(status) != bt.sl_Status.OK:
        raise SubGhzUnavailable(
            "--band 868: the NCP answered multiPhyStart with %r: this radio or its "
            "firmware does not support the 868 MHz band (page %d channel %d); use a "
            "sub-GHz EFR32 (e.g. EFR32FG/MG with a 868 MHz front end) or --band 2.4"
            % (status, page, channel))
    return status
