"""A virtual EmberZNet NCP (ASH + EZSP) on a pty, on a shared virtual 802.15.4 medium.

Unmodified bellows drives it (tested for EZSP v8, v13, v18; bellows' tables give every
version from v5 to v19):

    from emulator.ncp import NcpHost, VirtualMedium, VirtualNcp
    medium = VirtualMedium(seed=1)                      # bands "2.4" and "868"
    with NcpHost(medium) as host:
        hub_path = host.add(VirtualNcp("00:12:4b:00:00:00:00:01", medium,
                                       band_support=("2.4", "868"), ezsp_version=13))
        # bellows / zigpy: {"device": {"path": hub_path}, ...}; set "network": {"channel"}
        # to skip zigpy's 4 s startup energy scan, which the NCP times as silicon would

Modules: ``ash`` (UG101 framing, NCP side), ``ezsp`` (bellows' per-version tables),
``ncp`` (the handlers and the radio: MAC association, APS with MAC/APS retries and
duplicate rejection, stack-answered ZDO, scans, multi-PHY), ``medium`` (airtime, loss,
delay, corruption per band), ``frames`` (MAC/NWK/APS bytes), ``zdo``, ``pty_host``
(ptys + one thread), ``sim`` (the same NCPs in simulated time, host side built on
bellows' own frames) and ``emulator.pcap`` (DLT 195 captures; ``VirtualMedium(sink=)``).

How a HAN node joins: the coordinator's host opens ``permitJoining``; the node's host
calls EZSP ``joinNetwork(ROUTER, params)`` (bellows' ``EZSP`` object does it). The NCPs
associate over the medium (IEEE 802.15.4 §7.5.3.1), the coordinator's host gets
``childJoinHandler`` + ``trustCenterJoinHandler``, the node's ``stackStatusHandler
NETWORK_UP``, and the node's stack broadcasts Device_annce.

Sub-GHz (GB 868 MHz): ``multiPhyStart(phyIndex=1, page=28..31, channel=0..26, ...)``
adds a sub-GHz PHY to a formed network when ``"868" in band_support``; a node forms or
joins directly on sub-GHz with EmberZNet's channel numbering ``(page - 24) << 5 |
channel`` (page 28 channel 5 is 0x85). Without sub-GHz support the multi-PHY commands
answer NOT_SUPPORTED (EmberStatus INVALID_CALL before EZSP v14), joins and forms
on such a channel too.

APS fragmentation as EmberZNet runs it with host fragmentation: ``sendUnicast`` with
``APS_OPTION_FRAGMENT`` and ``groupId = count << 8 | block`` puts one block on the air
with the extended APS header; the receiving NCP hands blocks up with the same option
and groupId and sends the APS ack when its host calls ``sendReply`` (see ``ncp.py``).
An unfragmented payload over 100 bytes is refused with MESSAGE_TOO_LONG
(``maximumPayloadLength`` says 100).

Not modelled: NWK/APS security (frames travel and are captured unencrypted; keys are
kept and reported), routing beyond one hop (a star HAN around the coordinator), a
fragment window above one block, sub-GHz duty-cycle limits, multicast groups (sent as
broadcasts), CBKE.
"""

from emulator.ncp.medium import VirtualMedium
from emulator.ncp.ncp import VirtualNcp
from emulator.ncp.pty_host import NcpHost, run_on_pty

__all__ = ["NcpHost", "VirtualMedium", "VirtualNcp", "run_on_pty"]
