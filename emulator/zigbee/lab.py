"""The lab's premise on a ZigBee HAN instead of the virtual one.

`emulator.lab.Lab` builds the devices, the DCC and the head-ends; `ZigbeePremise` takes
its HAN over: the `CommsHub`'s `han_send` becomes the hub application's Tunneling server
(`HubSeServer.han_send`) and the DCC's link to the hub becomes `HubApplication.exchange`
(the HAN is asynchronous here, where the virtual HAN settled in one call). The CHF, the
GPF, the ESME and the GSME are the lab's own objects, unchanged.

    lab = Lab(seed=0, wan="direct")
    premise = ZigbeePremise(lab, hub_app_factory)      # builds server + HubApplication
    await premise.attach_esme(send)                    # a TunnelNode for the ESME
    outcome = await lab.request("A", "4.1.1", ESME_EUI)
"""

from __future__ import annotations

import asyncio

from emulator.han.nodes import EsmeNode
from emulator.lab import DEVICE_NAMES, ESME_EUI, GSME_EUI, HUB_EUI, SleepingGsmeNode
from emulator.zigbee.clients import Cad, Ihd, Ppmid, TunnelNode
from emulator.zigbee.hub import (
    EsmePrepayment,
    EsmeMeter,
    GpfMeter,
    HubSeServer,
    Tariff,
    ieee_of,
)
from firmware.han import tunnel as T

IHD_EUI = bytes.fromhex("00DB1234567890B0")
CAD_EUI = bytes.fromhex("00DB1234567890B1")
PPMID_EUI = bytes.fromhex("00DB1234567890B2")


class ZigbeePremise:
    def __init__(self, lab, app_factory, tariff=None, max_incoming=T.MAX_TRANSFER,
                 wan_timeout=5.0):
        """`app_factory(server) -> HubApplication` (bellows on a port, or one for the
        in-process `Loopback`)."""
        self.lab = lab
        self.server = HubSeServer(lab.hub, meter=EsmeMeter(lab.esme), gas=GpfMeter(lab.gpf),
                                  tariff=tariff if tariff is not None else Tariff(),
                                  prepayment=EsmePrepayment(lab.esme),
                                  max_incoming=max_incoming)
        self.app = app_factory(self.server)
        self.wan_timeout = wan_timeout
        self.nodes: dict[bytes, object] = {}
        lab.hub.han_send = self._han_send
        receive_han = lab.hub.receive_han

        def recorded_receive_han(eui, frame, now):
            self._record(eui, HUB_EUI, frame, "up")
            return receive_han(eui, frame, now)
        lab.hub.receive_han = recorded_receive_han
        lab.dcc.hub_link = {HUB_EUI: self.wan_send}

    async def wan_send(self, data: bytes):
        """The DCC's link to the hub: the WAN message in, the hub's answers back, each
        recorded as a hop as the lab records them."""
        lab = self.lab
        lab._hop("DCC → hub", "down", "wan", data, data)
        answers = await self.app.exchange(bytes(data), timeout=self.wan_timeout)
        for answer in answers:
            lab._hop(lab._answered_by(answer) + " → DCC", "up", "wan", answer, answer)
        return answers

    def _han_send(self, eui, data):
        self._record(HUB_EUI, eui, data, "down")
        self.server.han_send(eui, data)

    def _record(self, source, destination, frame, direction):
        """A GB-HRGP frame between the CHF and a device, as the lab records HAN hops (the
        ZigBee pieces below it are the radio's business). A segment of a longer message
        is recorded without its GBCS reading, which only the whole message has."""
        lab = self.lab
        if not lab.record:
            return
        inner = None
        try:
            kind, _, payload = T.decode(frame)
            if kind == T.PUT and T.message_length(payload) == len(payload):
                inner = payload
        except T.TunnelError:
            pass
        names = DEVICE_NAMES
        lab._hop("%s → %s" % (names.get(bytes(source), bytes(source).hex().upper()),
                              names.get(bytes(destination), bytes(destination).hex().upper())),
                 direction, "han", frame, inner, note="zigbee tunnel")

    # -- the HAN's devices (each given the `send` of wherever it runs) -----------------
    def esme_node(self, send, max_incoming=T.MAX_TRANSFER):
        node = TunnelNode(send, ieee_of(ESME_EUI), EsmeNode(self.lab.esme_gbcs),
                          clock=self._clock, max_incoming=max_incoming)
        self.nodes[ESME_EUI] = node
        return node

    def gsme_node(self, send, max_incoming=T.MAX_TRANSFER):
        node = TunnelNode(send, ieee_of(GSME_EUI), SleepingGsmeNode(self.lab.gsme, self.lab.gpf),
                          clock=self._clock, max_incoming=max_incoming)
        self.nodes[GSME_EUI] = node
        return node

    def ihd(self, send):
        return self._client(Ihd, IHD_EUI, send)

    def cad(self, send):
        return self._client(Cad, CAD_EUI, send)

    def ppmid(self, send):
        return self._client(Ppmid, PPMID_EUI, send)

    def _client(self, cls, eui, send):
        client = cls(send, ieee_of(eui))
        self.nodes[eui] = client
        return client

    def _clock(self):
        return self.lab.now

    async def wake_gsme(self, timeout=5.0):
        """Run time to the GSME's next wake: it polls the hub over the tunnel (GET), takes
        queued commands and answers them; returns what the hub sent up the WAN."""
        lab = self.lab
        lab.now = max(lab.now, lab.gsme.next_wake)
        lab.clock.set(lab.now)
        node = self.nodes[GSME_EUI]
        queue = self.app._queue()
        node.poll()
        up = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                up.extend(await asyncio.wait_for(queue.get(), deadline - loop.time()))
            except asyncio.TimeoutError:
                break
            deadline = min(deadline, loop.time() + 0.2)
        return up
