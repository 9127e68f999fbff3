"""The WAN's timer-driven ARQ (emulator/wan.py): requests in flight cost no task per frame
or per message, an ACK and the answer it comes with leave in one write, and a request
whose command cannot get through fails with the link's error."""

import asyncio

import pytest

from emulator.wan import RegionProfile, WanClient, WanError, WanServer, WanTimeout
from firmware.gbcs.envelope import CRA_COMMAND, CRA_RESPONSE, GbcsMessage, parse

ESME = bytes.fromhex("00db1234567890a0")
DCC = bytes.fromhex("90b3d51f30000002")
INSTANT = RegionProfile("instant", latency=0.0, jitter=0.0, loss=0.0)
GUARD = 60


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, GUARD))


def command(counter):
    return GbcsMessage(CRA_COMMAND, counter, DCC, ESME, 0x0027, b"\xd9" + bytes(20)).encode()


def answer(data):
    m = parse(data)
    return [GbcsMessage(CRA_RESPONSE, m.originator_counter, m.recipient, m.originator,
                        m.message_code, b"\xda").encode()]


async def pair(region, handler=answer, retries=6):
    server = WanServer(handler, region, 1, 1.0, retries=retries)
    port = await server.start()
    client = WanClient(region, 1, 1.0, retries=retries)
    await client.connect("127.0.0.1", port)
    await server.connected.wait()
    return server, client


def test_requests_in_flight_cost_no_task_per_frame():
    async def scenario():
        server, client = await pair(INSTANT)
        try:
            before = len(asyncio.all_tasks())
            requests = [asyncio.ensure_future(client.request(command(0x100 + i)))
                        for i in range(25)]
            await asyncio.sleep(0)
            peak = len(asyncio.all_tasks())
            answers = await asyncio.gather(*requests)
            after = len(asyncio.all_tasks())
        finally:
            await client.close()
            await server.close()
        assert peak - before <= 25          # the requests themselves, nothing per frame
        assert after == before
        assert [parse(a).originator_counter for a in answers] == [0x100 + i for i in range(25)]
    run(scenario())


def test_an_ack_and_its_answer_leave_in_one_write():
    async def scenario():
        server, client = await pair(INSTANT)
        writes = []
        try:
            link = server.links[0]
            original = link.writer.write
            link.writer.write = lambda data: (writes.append(data), original(data))[1]
            for i in range(10):
                await client.request(command(0x200 + i))
        finally:
            await client.close()
            await server.close()
        assert len(writes) == 10                                  # not 20
        for data in writes:                                       # ACK frame, then DATA
            assert data[4] == 0x02 and data[9 + 4] == 0x01
    run(scenario())


def test_a_command_that_never_gets_through_fails_the_request_with_the_links_error():
    dead = RegionProfile("dead", latency=0.01, jitter=0.0, loss=1.0)

    async def scenario():
        server, client = await pair(dead, retries=1)
        try:
            with pytest.raises(WanTimeout, match="not acknowledged after 2 tries"):
                await client.request(command(0x300))
            assert client.link.stats["send timeouts"] == 1
            await client.close()
            with pytest.raises(WanError):
                await client.request(command(0x301))
        finally:
            await client.close()
            await server.close()
    run(scenario())
