"""The lab's premise on a ZigBee HAN driven by unmodified bellows: the hub on one EZSP
radio, each emulated HAN device on its own (virtual NCPs on ptys sharing a
`VirtualMedium`, or real dongles by path).

    rig = HanRig(lab, hub_path, band="868", channel=15, sub_ghz=(28, 3))
    await rig.start()                                 # form, (PHY 1), permit joining
    await rig.add_node("esme", esme_path)             # join + RequestTunnel
    await rig.add_node("ihd", ihd_path)
    outcome = await lab.request("A", "4.1.1", ESME_EUI)
    await rig.stop()

`virtual_radios(roles, ...)` makes the virtual NCPs and their pty host
(`emulator.ncp`), so the same code path up to the serial port runs in CI.
"""

from __future__ import annotations

import asyncio

from emulator.zigbee import PROFILES, ROLES  # noqa: F401  (re-exported)
from emulator.zigbee.clients import Cad, Ihd, NodeApplication, Ppmid, TunnelNode, node_config
from emulator.zigbee.hub import HubApplication, hub_config, ieee_of
from emulator.zigbee.lab import CAD_EUI, IHD_EUI, PPMID_EUI, ZigbeePremise
from emulator.zigbee.radio import CHANNELS_2_4, DEFAULT_PAGE, HAN_MAX_TRANSFER, start_sub_ghz

_CLASSES = {"esme": TunnelNode, "gsme": TunnelNode, "ihd": Ihd, "cad": Cad, "ppmid": Ppmid}


def role_eui(lab_module, role):
    return {"esme": lab_module.ESME_EUI, "gsme": lab_module.GSME_EUI, "ihd": IHD_EUI,
            "cad": CAD_EUI, "ppmid": PPMID_EUI}[role]


class HanRig:
    def __init__(self, lab, hub_path, band="2.4", channel=15, sub_ghz=(DEFAULT_PAGE, 0),
                 max_transfer=HAN_MAX_TRANSFER, baudrate=115200, wan_timeout=5.0,
                 start_timeout=30.0):
        if band not in ("2.4", "868"):
            raise ValueError("band is 2.4 or 868")
        if channel not in CHANNELS_2_4:
            raise ValueError("the 2.4 GHz channel is 11-26 (zigpy forms there first)")
        self.lab = lab
        self.band = band
        self.channel = channel
        self.sub_ghz = sub_ghz
        self.max_transfer = max_transfer
        self.baudrate = baudrate
        self.start_timeout = start_timeout
        self.premise = ZigbeePremise(
            lab, lambda server: HubApplication(
                hub_config(hub_path, server, channel=channel, baudrate=baudrate), server,
                clock=lambda: lab.now),
            max_incoming=max_transfer, wan_timeout=wan_timeout)
        self.app = self.premise.app
        self.nodes: dict[str, NodeApplication] = {}
        self._reports = None

    async def start(self, permit=254):
        _quiet_closed_ash_tasks(asyncio.get_running_loop())
        await asyncio.wait_for(self.app.startup(auto_form=True), self.start_timeout)
        if self.band == "868":
            try:
                await start_sub_ghz(self.app._ezsp, *self.sub_ghz)
            except Exception:
                await self.app.shutdown()
                raise
        await self.app.permit(permit)
        self._reports = asyncio.get_running_loop().create_task(self.app.report_loop())
        return self.app.state.network_info

    async def add_node(self, role, path, join_timeout=15.0):
        """An emulated HAN device on its own radio: joins on the rig's band, and (ESME,
        GSME) opens its GB-HRGP tunnel."""
        premise = self.premise
        makers = {"esme": lambda send: premise.esme_node(send, self.max_transfer),
                  "gsme": lambda send: premise.gsme_node(send, self.max_transfer),
                  "ihd": premise.ihd, "cad": premise.cad, "ppmid": premise.ppmid}
        node = NodeApplication(node_config(path, _CLASSES[role], baudrate=self.baudrate),
                               makers[role])
        info = self.app.state.network_info
        page, channel = (self.sub_ghz if self.band == "868" else (0, info.channel))
        await node.join(info.pan_id, info.extended_pan_id, channel, page=page,
                        timeout=join_timeout)
        self.nodes[role] = node
        if role in ("esme", "gsme"):
            await _retry(node.client.open)
        return node

    async def stop(self):
        if self._reports is not None:
            self._reports.cancel()
        await self.app.sender.drain()
        for node in self.nodes.values():
            await node.client.sender.drain()
        for node in self.nodes.values():
            node.client.close()
            await node.shutdown()
        await self.app.shutdown()


def _quiet_closed_ash_tasks(loop):
    """bellows leaves the task that sends an ASH DATA frame unawaited when the port closes
    under it (`AshProtocol._send_data_frame` -> "Connection has been closed"), and asyncio
    then logs it as never retrieved. That one message is expected at shutdown and dropped;
    everything else goes to the default handler."""
    previous = loop.get_exception_handler()

    def handler(loop, context):
        error = context.get("exception")
        if isinstance(error, RuntimeError) and str(error) == "Connection has been closed":
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)
    loop.set_exception_handler(handler)


async def _retry(action, attempts=3):
    for attempt in range(attempts):
        try:
            return await action()
        except asyncio.TimeoutError:
            if attempt == attempts - 1:
                raise


class VirtualRadios:
    """Virtual NCPs on ptys sharing one medium (`emulator.ncp`): the hub's radio with
    the bands asked for, one radio per HAN device."""

    def __init__(self, lab_module, roles, ezsp_version=13, hub_bands=("2.4", "868"),
                 node_bands=("2.4", "868"), seed=0, loss=0.0):
        from emulator.ncp.medium import VirtualMedium
        from emulator.ncp.ncp import VirtualNcp
        from emulator.ncp.pty_host import NcpHost
        self.medium = VirtualMedium(seed=seed)
        if loss:
            for band in ("2.4", "868"):
                self.medium.configure(band, loss=loss)
        self.host = NcpHost(self.medium)
        self.ncps = {"hub": VirtualNcp(ieee_of(lab_module.HUB_EUI), self.medium,
                                       band_support=tuple(hub_bands),
                                       ezsp_version=ezsp_version, seed=seed)}
        for i, role in enumerate(roles):
            self.ncps[role] = VirtualNcp(ieee_of(role_eui(lab_module, role)), self.medium,
                                         band_support=tuple(node_bands),
                                         ezsp_version=ezsp_version, seed=seed + 1 + i)
        self.paths = {role: self.host.add(ncp) for role, ncp in self.ncps.items()}

    def __enter__(self):
        self.host.start()
        return self

    def __exit__(self, *exc):
        stop = getattr(self.host, "stop", None) or getattr(self.host, "close")
        stop()
