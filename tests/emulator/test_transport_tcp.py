"""DLMS over TCP: one TCP connection is one device connection, in both framings.

The byte moving is checked with the loopback core; the meter is then read through the
server with the project's host client, on the wrapper and on HDLC-over-TCP.
"""

import asyncio
import socket

import pytest

from emulator.runtime import CoreError, CPythonRuntime
from emulator.transport.clock import SimulatedTime
from emulator.transport.device import ServedDevice
from emulator.transport.streams import SocketStream
from emulator.transport.tcp import TcpServer

START = 1767225600   # 2026-01-01T00:00:00Z


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


class FakeMonotonic:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def read_exactly(stream, n):
    got = b""
    while len(got) < n:
        chunk = stream.read(n - len(got), 5)
        assert chunk, "no answer within 5 s"
        got += chunk
    return got


async def serve_loopback(framing="wrapper", time_source=None):
    runtime = await CPythonRuntime({}, START, core="loopback").start()
    device = ServedDevice(runtime, time_source)
    server = await TcpServer(device, framing, "127.0.0.1", 0).start()
    return runtime, device, server


def test_each_tcp_connection_is_its_own_device_connection():
    async def scenario():
        runtime, device, server = await serve_loopback()
        host, port = server.address
        assert port != 0

        def two_clients():
            with SocketStream(host, port) as a, SocketStream(host, port) as b:
                a.write(b"from a")
                b.write(b"from b " * 2000)             # more than one TCP read
                assert read_exactly(b, 14000) == b"from b " * 2000
                assert read_exactly(a, 6) == b"from a"
                return device.connection_count

        assert await asyncio.to_thread(two_clients) == 2
        for _ in range(50):                          # the server sees both closes
            if device.connection_count == 0:
                break
            await asyncio.sleep(0.02)
        assert device.connection_count == 0
        assert runtime._core.connections() == []
        await server.close()
        await runtime.stop()
    run(scenario())


def test_the_device_is_advanced_to_simulated_time_before_each_request():
    async def scenario():
        wall = FakeMonotonic()
        runtime, device, server = await serve_loopback(
            time_source=SimulatedTime(START, speed=60, monotonic=wall))
        host, port = server.address

        def exchange():
            with SocketStream(host, port) as s:
                s.write(b"x")
                read_exactly(s, 1)

        wall.t += 30                                  # 30 wall seconds at 60x: 30 minutes
        await asyncio.to_thread(exchange)
        assert runtime.now == START + 1800
        await server.close()
        await runtime.stop()
    run(scenario())


def test_the_clock_runs_between_requests():
    async def scenario():
        wall = FakeMonotonic()
        runtime = await CPythonRuntime({}, START, core="loopback").start()
        device = ServedDevice(runtime, SimulatedTime(START, speed=1000, monotonic=wall))
        ticker = asyncio.ensure_future(device.run_clock(period=0.01))
        wall.t += 3.6
        await asyncio.sleep(0.1)
        ticker.cancel()
        assert runtime.now == START + 3600
        await runtime.stop()
    run(scenario())


def test_simulated_time_scales_wall_time():
    wall = FakeMonotonic()
    clock = SimulatedTime(START, speed=2.5, monotonic=wall)
    assert clock() == START
    wall.t += 10
    assert clock() == START + 25
    with pytest.raises(ValueError):
        SimulatedTime(START, speed=0)


def test_a_refused_connection_is_closed_and_the_server_goes_on():
    class RefusingRuntime(CPythonRuntime):
        refuse = True

        async def open(self, conn_id, framing):
            if self.refuse:
                self.refuse = False
                raise CoreError("MeterError: no more links")
            await super().open(conn_id, framing)

    async def scenario():
        runtime = await RefusingRuntime({}, START, core="loopback").start()
        server = await TcpServer(ServedDevice(runtime), "hdlc", "127.0.0.1", 0).start()
        host, port = server.address

        def clients():
            with SocketStream(host, port) as refused:
                with pytest.raises(ConnectionError):
                    refused.read(10, 5)
            with SocketStream(host, port) as served:
                served.write(b"\x7e")
                return read_exactly(served, 1)

        assert await asyncio.to_thread(clients) == b"\x7e"
        await server.close()
        await runtime.stop()
    run(scenario())


def test_unknown_framing_is_refused_up_front():
    with pytest.raises(ValueError, match="unknown framing"):
        TcpServer(None, "iec62056-21")


def test_close_releases_the_port():
    async def scenario():
        runtime, device, server = await serve_loopback()
        host, port = server.address
        await server.close()
        with pytest.raises(OSError):
            socket.create_connection((host, port), timeout=1).close()
        await runtime.stop()
    run(scenario())


# ---------------------------------------------------------------------------- the meter


def esme_profile():
    from emulator.profiles import load_profile
    return load_profile("profiles/esme-single-phase.toml")


async def serve_meter(profile, framing, history=86400):
    start = profile["clock"]["start"]
    runtime = await CPythonRuntime(profile, start).start()
    now = await runtime.advance(start + history)
    device = ServedDevice(runtime, SimulatedTime(now, 1))
    server = await TcpServer(device, framing, "127.0.0.1", 0).start()
    return runtime, server, now


@pytest.mark.parametrize("framing", ["wrapper", "hdlc"])
def test_the_host_client_reads_the_meter_over_tcp(framing):
    from emulator.cli import dlms_client
    from firmware.dlms import obis as O

    profile = esme_profile()

    async def scenario():
        runtime, server, now = await serve_meter(profile, framing)
        host, port = server.address

        def read():
            with dlms_client(profile, framing, host, port) as client:
                name = client.get(1, O.LOGICAL_DEVICE_NAME, 2)
                energy = client.get(3, O.IMPORT_ACTIVE_ENERGY, 2)
                scaler_unit = client.get(3, O.IMPORT_ACTIVE_ENERGY, 3)
                rates = [client.get(3, ln, 2)[1] for ln in O.IMPORT_ACTIVE_ENERGY_TOU]
                clock = client.get(8, O.CLOCK, 2)
                rows = client.read_profile(O.HH_PROFILE, from_entry=1, to_entry=48)
                return name, energy, scaler_unit, rates, clock, rows

        name, energy, scaler_unit, rates, clock, rows = await asyncio.to_thread(read)
        await server.close()
        await runtime.stop()
        return now, name, energy, scaler_unit, rates, clock, rows

    now, name, energy, scaler_unit, rates, clock, rows = run(scenario())
    assert name[1] == profile["device"]["logical_device_name"].encode()
    assert energy[0] == 6 and energy[1] > 1250000          # a day on top of initial_wh
    assert sum(rates) == energy[1]                          # TOU rates add up to the total
    assert scaler_unit == (2, [(15, 0), (22, 30)])          # 10^0 Wh (Blue Book unit 30)
    year, month, day, hour = (clock[1][0] << 8 | clock[1][1]), clock[1][2], clock[1][3], clock[1][5]
    assert (year, month, day, hour) == (2026, 1, 2, 0)      # one simulated day after start
    assert len(rows) == 48                                  # the first 48 half-hours
    assert [stamp(rows[0][0]), stamp(rows[-1][0])] == [(1, 0, 30), (2, 0, 0)]


def stamp(value):
    """(day, hour, minute) of a COSEM date-time octet-string (Blue Book 4.1.6.1)."""
    octets = value[1]
    return octets[3], octets[5], octets[6]
