"""HDLC on serial lines: the device on a pty read with pyserial, and the serial-port
server on a real tty device (the slave side of a pty we hold)."""

import asyncio
import os
import select
import tty

from emulator.runtime import CPythonRuntime
from emulator.transport.device import ServedDevice
from emulator.transport.pty import PtyServer
from emulator.transport.serial import SerialServer
from emulator.transport.streams import SerialStream

START = 1767225600


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def read_exactly(stream, n):
    got = b""
    while len(got) < n:
        chunk = stream.read(n - len(got), 5)
        assert chunk, "no answer within 5 s"
        got += chunk
    return got


class MasterStream:
    """The far end of a tty, in the client stream API of emulator/transport/streams.py."""

    def __init__(self, fd):
        self.fd = fd

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def read(self, n, timeout):
        ready, _, _ = select.select([self.fd], [], [], timeout)
        return os.read(self.fd, n) if ready else b""

    def close(self):
        pass


def test_pty_carries_every_byte_both_ways_and_survives_a_reopen():
    async def scenario():
        runtime = await CPythonRuntime({}, START, core="loopback").start()
        server = await PtyServer(ServedDevice(runtime)).start()
        assert server.path.startswith("/dev/")
        every_byte = bytes(range(256)) * 8            # XON/XOFF, CR, LF, 7E: all raw

        def client():
            with SerialStream(server.path, baudrate=115200) as port:
                port.write(every_byte)
                first = read_exactly(port, len(every_byte))
            with SerialStream(server.path, baudrate=115200) as port:   # close, reopen
                port.write(b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e")
                second = read_exactly(port, 9)
            return first, second

        first, second = await asyncio.to_thread(client)
        assert first == every_byte
        assert second == b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e"
        assert runtime._core.connections() == [1]     # one line, one connection
        await server.close()
        assert runtime._core.connections() == []
        await runtime.stop()
    run(scenario())


def test_serial_server_serves_a_tty_device():
    async def scenario():
        master, slave = os.openpty()
        tty.setraw(master)
        runtime = await CPythonRuntime({}, START, core="loopback").start()
        server = await SerialServer(ServedDevice(runtime), os.ttyname(slave), 115200).start()
        try:
            def client():
                stream = MasterStream(master)
                stream.write(b"hello over a uart")
                return read_exactly(stream, 17)
            assert await asyncio.to_thread(client) == b"hello over a uart"
        finally:
            await server.close()
            await runtime.stop()
            os.close(master)
            os.close(slave)
    run(scenario())


def test_a_serial_port_that_does_not_exist_is_named():
    async def scenario():
        runtime = await CPythonRuntime({}, START, core="loopback").start()
        try:
            server = SerialServer(ServedDevice(runtime), "/dev/no-such-uart")
            try:
                await server.start()
            except ConnectionError as exc:
                return str(exc)
        finally:
            await runtime.stop()
    assert "/dev/no-such-uart" in run(scenario())


# ---------------------------------------------------------------------------- the meter


def hdlc_client(profile, stream):
    from emulator.client import DlmsClient
    from emulator.link import HdlcPrimary, LinkConnection
    link = HdlcPrimary(client_address=profile["clients"]["public"]["sap"],
                       server_upper=profile["hdlc"]["server_upper"],
                       server_lower=profile["hdlc"]["server_lower"])
    return LinkConnection(link, stream), DlmsClient


def read_meter_over(profile, stream):
    from firmware.dlms import obis as O
    connection, DlmsClient = hdlc_client(profile, stream)
    with connection:
        client = DlmsClient(connection)
        client.associate(client_sap=profile["clients"]["public"]["sap"])
        name = client.get(1, O.LOGICAL_DEVICE_NAME, 2)
        energy = client.get(3, O.IMPORT_ACTIVE_ENERGY, 2)
        client.release()
    return name, energy


def esme_profile():
    from emulator.profiles import load_profile
    return load_profile("profiles/esme-single-phase.toml")


def test_a_pyserial_client_reads_the_meter_on_the_pty_twice():
    profile = esme_profile()

    async def scenario():
        runtime = await CPythonRuntime(profile, profile["clock"]["start"]).start()
        server = await PtyServer(ServedDevice(runtime)).start()

        def client():
            readings = []
            for _ in range(2):            # SNRM ... DISC, then a new link on the same line
                with SerialStream(server.path, baudrate=9600) as port:
                    readings.append(read_meter_over(profile, port))
            return readings

        try:
            return await asyncio.to_thread(client)
        finally:
            await server.close()
            await runtime.stop()

    first, second = run(scenario())
    assert first == second
    assert first[0][1] == profile["device"]["logical_device_name"].encode()
    assert first[1] == (6, 1250000)       # initial_wh: no simulated time has passed


def test_the_serial_server_speaks_hdlc_to_the_far_end_of_the_line():
    profile = esme_profile()

    async def scenario():
        master, slave = os.openpty()
        tty.setraw(master)
        runtime = await CPythonRuntime(profile, profile["clock"]["start"]).start()
        server = await SerialServer(ServedDevice(runtime), os.ttyname(slave)).start()
        try:
            return await asyncio.to_thread(read_meter_over, profile, MasterStream(master))
        finally:
            await server.close()
            await runtime.stop()
            os.close(master)
            os.close(slave)

    name, energy = run(scenario())
    assert name[1] == profile["device"]["logical_device_name"].encode()
    assert energy == (6, 1250000)
