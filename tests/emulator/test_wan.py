"""The emulated WAN (emulator/wan.py): asyncio TCP on loopback, region profiles, ARQ."""

import asyncio
import struct

import pytest

from emulator.wan import (REGIONS, RegionProfile, WanClient, WanError, WanServer,
                          WanTimeout, region_profile)
from firmware.gbcs.envelope import CRA_ALERT, CRA_COMMAND, CRA_RESPONSE, GbcsMessage, parse

HUB = bytes.fromhex("00db1234567890a2")
ESME = bytes.fromhex("00db1234567890a0")
DCC = bytes.fromhex("90b3d51f30000002")
SCALE = 0.002          # 1.5 s of radio latency becomes 3 ms
GUARD = 60             # no test may hang: every run is bounded by this


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, GUARD))


def command(counter, recipient=ESME, size=20):
    return GbcsMessage(CRA_COMMAND, counter, DCC, recipient, 0x0027,
                       b"\xd9" + bytes(size)).encode()


class Device:
    """A hub stand-in: answers every command with its response, records what came."""

    def __init__(self, silent=False):
        self.got = []
        self.silent = silent

    def __call__(self, data):
        self.got.append(data)
        if self.silent:
            return []
        m = parse(data)
        return [GbcsMessage(CRA_RESPONSE, m.originator_counter, m.recipient, m.originator,
                            m.message_code, b"\xda" + m.payload[1:]).encode()]


async def pair(region, seed=1, device=None, retries=6, scale=SCALE):
    device = device or Device()
    server = WanServer(device, region, seed, scale, retries=retries)
    port = await server.start()
    client = WanClient(region, seed, scale, retries=retries)
    await client.connect("127.0.0.1", port)
    return server, client, device


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_round_trips_in_every_region(region):
    async def scenario():
        server, client, device = await pair(region)
        try:
            answers = await asyncio.gather(*[client.request(command(0x100 + i))
                                             for i in range(20)])
        finally:
            await client.close()
            await server.close()
        for i in range(20):
            reply = parse(answers[i])
            assert reply.cra_flag == CRA_RESPONSE and reply.originator_counter == 0x100 + i
            assert reply.originator == ESME and reply.recipient == DCC
        assert sorted(parse(d).originator_counter for d in device.got) == \
            [0x100 + i for i in range(20)]
        assert server.errors == []
    run(scenario())


def test_heavy_loss_is_retried_and_nothing_arrives_twice():
    lossy = RegionProfile("lossy", latency=1.0, jitter=1.0, loss=0.4)
    async def scenario():
        server, client, device = await pair(lossy, seed=5, retries=12)
        try:
            answers = await asyncio.gather(*[client.request(command(0x200 + i))
                                             for i in range(30)])
            stats = client.link.stats + server.links[0].stats
        finally:
            await client.close()
            await server.close()
        counters = [parse(d).originator_counter for d in device.got]
        assert sorted(counters) == [0x200 + i for i in range(30)]        # each once
        assert [parse(a).originator_counter for a in answers] == [0x200 + i for i in range(30)]
        assert stats["lost"] > 0 and stats["retransmissions"] > 0
        assert client.unsolicited == []
    run(scenario())


def test_a_dead_link_times_out_cleanly():
    dead = RegionProfile("dead", latency=0.1, jitter=0.0, loss=1.0)
    async def scenario():
        server, client, device = await pair(dead, retries=2)
        try:
            with pytest.raises(WanTimeout) as raised:
                await client.request(command(0x300))
        finally:
            await client.close()
            await server.close()
        assert "not acknowledged after 3 tries" in str(raised.value)
        assert device.got == []
    run(scenario())


def test_a_silent_device_times_out_naming_the_counter():
    async def scenario():
        server, client, device = await pair("central", device=Device(silent=True))
        try:
            with pytest.raises(WanTimeout) as raised:
                await client.request(command(0x4321), timeout=0.3)
        finally:
            await client.close()
            await server.close()
        assert "0x4321" in str(raised.value) and ESME.hex() in str(raised.value)
        assert len(device.got) == 1
    run(scenario())


def test_pushed_alerts_arrive_once_as_unsolicited():
    async def scenario():
        server, client, _ = await pair("north", seed=3)
        try:
            await server.connected.wait()
            alert = GbcsMessage(CRA_ALERT, 9, ESME, DCC, 0x1001, b"\x0f").encode()
            await server.push(alert)
            await asyncio.wait_for(client.unsolicited_event.wait(), 5)
            await asyncio.sleep(0.05)
        finally:
            await client.close()
            await server.close()
        assert client.unsolicited == [alert]
    run(scenario())


def test_requests_refuse_what_is_not_a_command():
    async def scenario():
        server, client, _ = await pair("south")
        try:
            with pytest.raises(WanError):
                await client.request(b"\x00\x01")
            reply = GbcsMessage(CRA_RESPONSE, 1, ESME, DCC, 0x27, b"\xda").encode()
            with pytest.raises(WanError):
                await client.request(reply)
            first = asyncio.ensure_future(client.request(command(0x500)))
            await asyncio.sleep(0)
            with pytest.raises(WanError):
                await client.request(command(0x500))
            await first
        finally:
            await client.close()
            await server.close()
    run(scenario())


def test_a_garbled_peer_is_cut_off_without_reaching_the_hub():
    async def scenario():
        device = Device()
        server = WanServer(device, "central", 1, SCALE)
        port = await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(struct.pack(">I", 2) + b"\x01\x00")       # shorter than any frame
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the hub side hangs up
        writer.close()
        await server.close()
        assert device.got == []
    run(scenario())


def test_loopback_only_and_known_regions():
    with pytest.raises(ValueError):
        WanServer(Device(), "central", host="0.0.0.0")
    async def connect_out():
        with pytest.raises(ValueError):
            await WanClient("central").connect("192.0.2.1", 1)
    run(connect_out())
    with pytest.raises(ValueError):
        region_profile("east")
    assert region_profile("north").latency > region_profile("central").latency
    assert region_profile("north").loss > region_profile("south").loss
