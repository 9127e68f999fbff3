"""The device core inside the `micropython` binary, driven over the stdio pipe.

The pipe mechanics are checked with the loopback core (every byte comes straight back),
so a failure there is the pipe's, not DLMS's; the meter itself is then associated and
read through the same pipe, also with a board-sized heap.
"""

import asyncio
import os
import shutil
import struct
import subprocess
import sys

import pytest

from emulator.runtime import (CoreError, CPythonRuntime, MicroPythonRuntime, RuntimeFailure,
                              make_runtime)
from firmware.board import stdio_main as pipe

pytestmark = [
    pytest.mark.micropython,
    pytest.mark.skipif(shutil.which("micropython") is None,
                       reason="the micropython unix port is not on PATH"),
]

START = 1767225600   # 2026-01-01T00:00:00Z


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


async def _loopback(**options):
    return await MicroPythonRuntime({}, START, core="loopback", **options).start()


def test_ready_reports_the_interpreter_and_its_free_heap():
    async def scenario():
        runtime = await _loopback(heapsize="128K")
        try:
            assert runtime.now == START
            assert 0 < runtime.mem_free < 128 * 1024
            await runtime.ping(b"nonce-1")
        finally:
            await runtime.stop()
    run(scenario())


def test_connections_are_kept_apart_and_long_data_is_split_over_frames():
    async def scenario():
        runtime = await _loopback()
        try:
            await runtime.open(1, "hdlc")
            await runtime.open(7, "wrapper")
            big = bytes(range(256)) * 300          # 76800 bytes: more than one pipe frame
            assert len(big) > pipe.MAX_PAYLOAD
            assert await runtime.receive(7, big) == big
            assert await runtime.receive(1, b"\x7e\x00\x7e") == b"\x7e\x00\x7e"
            await runtime.close(1)
            with pytest.raises(CoreError, match="connection 1 is not open"):
                await runtime.receive(1, b"x")
            assert await runtime.receive(7, b"still here") == b"still here"
        finally:
            await runtime.stop()
    run(scenario())


def test_a_command_cancelled_at_any_point_leaves_the_pipe_in_step():
    """Ctrl-C cancels the serve loop's clock task wherever it is, possibly between a reply
    frame's header and its payload: the exchange still runs to its end, so the next
    command reads its own reply (it used to read half a frame as a header, and wait out
    the 30 s command timeout)."""
    async def scenario():
        runtime = await _loopback()
        try:
            await runtime.open(1, "hdlc")
            big = bytes(range(256)) * 300                   # replies over several frames
            for steps in range(40):
                task = asyncio.ensure_future(runtime.receive(1, big))
                for _ in range(steps):
                    await asyncio.sleep(0)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                nonce = b"after %d" % steps
                await asyncio.wait_for(runtime.ping(nonce), 5)
        finally:
            await runtime.stop()
    run(scenario())


def test_time_only_moves_forward():
    async def scenario():
        runtime = await _loopback()
        try:
            assert await runtime.advance(START + 1800) == START + 1800
            assert await runtime.advance(START + 10) == START + 1800
        finally:
            await runtime.stop()
    run(scenario())


def test_a_missing_binary_is_named():
    async def scenario():
        runtime = MicroPythonRuntime({}, START, binary="no-such-micropython-binary")
        with pytest.raises(RuntimeFailure, match="no-such-micropython-binary.*not found"):
            await runtime.start()
    run(scenario())


class _UnknownCoreRuntime(MicroPythonRuntime):
    def command_line(self, profile_path):
        return super().command_line(profile_path) + ["--core", "no-such-core"]


def test_a_core_that_cannot_start_reports_why_with_stderr():
    async def scenario():
        runtime = _UnknownCoreRuntime({}, START, core="loopback")
        with pytest.raises(RuntimeFailure, match="(?s)did not start: ValueError: unknown core"
                                                 ".*micropython stderr"):
            await runtime.start()
    run(scenario())


def test_a_child_that_dies_fails_the_next_command_with_its_exit_code():
    async def scenario():
        runtime = await _loopback()
        try:
            os.kill(runtime.pid, 9)
            with pytest.raises(RuntimeFailure, match="exited|gone"):
                await runtime.receive(0, b"hello")
        finally:
            await runtime.stop()
    run(scenario())


def _raw_child(*extra):
    return subprocess.Popen(
        ["micropython", "-m", "firmware.board.stdio_main", "unused.json", "--now", str(START),
         "--core", "loopback", *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=MicroPythonRuntime.environment())


def _read_frame(stream):
    kind, conn, length = struct.unpack(pipe.HEADER_FORMAT, stream.read(pipe.HEADER_SIZE))
    return kind, conn, stream.read(length)


def test_a_stalled_partial_frame_is_dropped_with_an_error_and_the_device_goes_on():
    child = _raw_child()
    try:
        assert _read_frame(child.stdout)[0] == pipe.READY
        child.stdin.write(pipe.encode_frame(pipe.PING, 0, b"abcdef")[:7])  # header + 2 bytes
        child.stdin.flush()
        kind, _, reason = _read_frame(child.stdout)      # arrives after the frame timeout
        assert kind == pipe.ERROR
        assert b"partial frame: 7 bytes" in reason
        child.stdin.write(pipe.encode_frame(pipe.PING, 0, b"again"))
        child.stdin.flush()
        assert _read_frame(child.stdout) == (pipe.DONE, 0, b"again")
    finally:
        child.stdin.close()
        assert child.wait(10) == 0


def test_an_unknown_frame_kind_is_an_error_not_a_crash():
    child = _raw_child()
    try:
        assert _read_frame(child.stdout)[0] == pipe.READY
        child.stdin.write(pipe.encode_frame(0x7A, 3, b"?") + pipe.encode_frame(pipe.QUIT, 0))
        child.stdin.flush()
        kind, conn, reason = _read_frame(child.stdout)
        assert (kind, conn) == (pipe.ERROR, 3) and b"unknown frame kind 0x7a" in reason
        assert _read_frame(child.stdout)[0] == pipe.DONE
    finally:
        child.stdin.close()
        assert child.wait(10) == 0


def test_the_same_pipe_module_runs_under_cpython():
    child = subprocess.Popen(
        [sys.executable, "-m", "firmware.board.stdio_main", "unused.json", "--now", "5",
         "--core", "loopback"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = child.communicate(pipe.encode_frame(pipe.OPEN, 2, b"wrapper")
                               + pipe.encode_frame(pipe.DATA, 2, b"abc"), timeout=20)
    frames = []
    while out:
        kind, conn, length = struct.unpack(pipe.HEADER_FORMAT, out[:5])
        frames.append((kind, conn, out[5:5 + length]))
        out = out[5 + length:]
    assert [f[0] for f in frames] == [pipe.READY, pipe.DONE, pipe.DATA, pipe.DONE]
    assert frames[2] == (pipe.DATA, 2, b"abc")
    assert child.returncode == 0


def test_make_runtime_names_both_runtimes():
    assert isinstance(make_runtime("cpython", {}, START, binary="x", heapsize="1K"),
                      CPythonRuntime)
    assert isinstance(make_runtime("micropython", {}, START), MicroPythonRuntime)
    with pytest.raises(ValueError, match="unknown runtime"):
        make_runtime("jython", {}, START)


# ---------------------------------------------------------------------------- the meter


def board_profile(hh_depth=None):
    from emulator.profiles import load_profile
    profile = load_profile("profiles/esme-single-phase.toml")
    if hh_depth is not None:
        # what profiles/esme-single-phase.toml advises for a small board: 30 days of HH
        profile["objects"]["hh_profile"]["depth"] = hh_depth
    return profile


def read_register_through_the_pipe(profile, framing, **runtime_options):
    """Serve the micropython core on TCP and read 1.0.1.8.0.255 with the host client."""
    from emulator.cli import dlms_client
    from emulator.transport.device import ServedDevice
    from emulator.transport.tcp import TcpServer
    from firmware.dlms import obis as O

    async def scenario():
        start = profile["clock"]["start"]
        runtime = await MicroPythonRuntime(profile, start, **runtime_options).start()
        try:
            now = await runtime.advance(start + 3 * 3600)
            server = await TcpServer(ServedDevice(runtime), framing, "127.0.0.1", 0).start()
            host, port = server.address

            def read():
                with dlms_client(profile, framing, host, port) as client:
                    return (client.get(3, O.IMPORT_ACTIVE_ENERGY, 2),
                            client.get(3, O.IMPORT_ACTIVE_ENERGY, 3),
                            client.read_profile(O.HH_PROFILE, from_entry=1, to_entry=0))
            try:
                return now, runtime.mem_free, await asyncio.to_thread(read)
            finally:
                await server.close()
        finally:
            await runtime.stop()
    return run(scenario())


def cpython_register(profile):
    from firmware.board.meter import MeterCore
    from firmware.dlms import obis as O
    core = MeterCore(profile, profile["clock"]["start"])
    core.advance(profile["clock"]["start"] + 3 * 3600)
    register = core.esme.logical_device.find(3, O.IMPORT_ACTIVE_ENERGY)
    return register.get(2, core.esme.context())


@pytest.mark.parametrize("framing", ["wrapper", "hdlc"])
def test_the_meter_in_micropython_answers_like_the_one_in_cpython(framing):
    profile = board_profile()
    now, _, (energy, scaler_unit, rows) = read_register_through_the_pipe(profile, framing)
    assert now == profile["clock"]["start"] + 3 * 3600
    assert energy == cpython_register(profile)              # same seed, same watt-hours
    assert scaler_unit == (2, [(15, 0), (22, 30)])
    assert len(rows) == 6                                   # six half-hours in three hours


def test_the_meter_runs_in_a_constrained_heap():
    # 640K: ~245 KB of imported bytecode, the profile rings, and room for a ring to grow
    # (it reallocates, so old and new copies coexist; 512K fails there on fragmentation)
    profile = board_profile(hh_depth=1440)
    _, mem_free, (energy, _, rows) = read_register_through_the_pipe(profile, "hdlc",
                                                                    heapsize="640K")
    assert mem_free < 640 * 1024
    assert energy == cpython_register(profile) and len(rows) == 6


@pytest.mark.xfail(strict=True, raises=RuntimeFailure,
                   reason="the unix port keeps every imported module's bytecode on the GC "
                          "heap (~245 KB for the ESME core); a board runs it frozen in flash")
def test_the_meter_runs_in_a_128k_heap():
    profile = board_profile(hh_depth=1440)
    _, _, (energy, _, _) = read_register_through_the_pipe(profile, "hdlc", heapsize="128K")
    assert energy == cpython_register(profile)


# ---------------------------------------------------------------------------- one API, two runtimes


def on_both_runtimes():
    runtimes = [CPythonRuntime]
    if shutil.which("micropython"):
        runtimes.append(MicroPythonRuntime)
    return runtimes


@pytest.mark.parametrize("runtime_class", on_both_runtimes())
def test_misuse_of_a_connection_is_a_core_error_and_the_core_goes_on(runtime_class):
    async def scenario():
        profile = board_profile(hh_depth=96)
        runtime = await runtime_class(profile, profile["clock"]["start"]).start()
        try:
            with pytest.raises(CoreError, match="unknown framing"):
                await runtime.open(1, "iec62056-21")
            await runtime.open(1, "wrapper")
            with pytest.raises(CoreError, match="already open"):
                await runtime.open(1, "hdlc")
            with pytest.raises(CoreError, match="not open"):
                await runtime.receive(2, b"\x00\x01")
            assert await runtime.receive(1, b"") == b""
            await runtime.close(1)
            await runtime.open(1, "hdlc")              # the id can be used again
        finally:
            await runtime.stop()
    run(scenario())


@pytest.mark.parametrize("runtime_class", on_both_runtimes())
def test_a_clock_set_by_a_client_runs_on_with_board_time_and_survives_a_restart(
        runtime_class, tmp_path):
    from emulator.client import cosem_date_time
    from firmware.dlms import obis as O

    profile = board_profile(hh_depth=96)
    board = profile["clock"]["start"]
    june = 1781524800                                      # 2026-06-15T12:00:00Z

    def set_june(client):
        client.set(8, O.CLOCK, 2, (9, cosem_date_time(june)))

    def session(boot, action=None):
        """Boot at board time `boot`, run a minute, act, run half an hour: meter clock
        read after the minute and after the half hour."""
        return run(_clock_session(runtime_class, profile, tmp_path, boot, action))

    assert session(board, set_june) == (june, june + 1800)  # the offset holds as time runs
    # Restart on the same time base (what `serve` does by default: the profile's start):
    # the meter resumes where it stopped, never earlier.
    assert session(board) == (june + 1800 + 60, june + 1800 + 60 + 1800)
    # Restart with board time that ran on meanwhile (`serve --start now`): the outage
    # passes on the meter's clock too, as on a battery-backed RTC.
    later_boot = board + 10 * 86400
    offset = (june + 1800 + 60 + 1800) - (board + 60 + 1800)
    assert session(later_boot)[0] == later_boot + 60 + offset


async def _clock_session(runtime_class, profile, state_dir, boot, action):
    from emulator.cli import dlms_client
    from emulator.transport.device import ServedDevice
    from emulator.transport.tcp import TcpServer

    runtime = await runtime_class(profile, boot, state_dir=state_dir).start()
    server = await TcpServer(ServedDevice(runtime), "wrapper", "127.0.0.1", 0).start()
    host, port = server.address

    def talk(action=None):
        with dlms_client(profile, "wrapper", host, port, client="management") as client:
            if action is not None:
                action(client)
            return _meter_seconds(client)
    try:
        await runtime.advance(boot + 60)
        first = await asyncio.to_thread(talk, action)
        await runtime.advance(boot + 60 + 1800)
        return first, await asyncio.to_thread(talk)
    finally:
        await server.close()
        await runtime.stop()


def _meter_seconds(client):
    """The meter's clock as UTC seconds (the date-time carries GB summer time's deviation)."""
    from firmware.dlms import obis as O
    from firmware.dlms.cosem_datetime import datetime_seconds
    return datetime_seconds(client.get(8, O.CLOCK, 2)[1])


# ---------------------------------------------------------------------------- the GBCS channel


def _gbcs_supplier():
    """The supplier/DCC of tests/emulator/test_board_crypto_micropython.py (host-side use
    case builders, signing and MAC over `cryptography`) and the ESME's credentials."""
    from tests.emulator.test_board_crypto_micropython import Supplier, _scalar
    from firmware.gbcs.anchors import TrustAnchors
    supplier = Supplier()
    anchors = TrustAnchors()
    for role, cell, eui, ds, ka in supplier.config([])["anchors"]:
        anchors.set(role, cell, bytes.fromhex(eui), ds_public=bytes.fromhex(ds),
                    ka_public=bytes.fromhex(ka))
    credentials = {"eui": "00db1234567890a0", "ds": _scalar(supplier.device["ds"]),
                   "ka": _scalar(supplier.device["ka"]), "anchors": anchors.state()}
    return supplier, credentials


@pytest.mark.parametrize("runtime_class", on_both_runtimes())
def test_gbcs_frames_reach_the_esme_and_its_protected_answers_come_back(runtime_class, tmp_path):
    import json
    from emulator.usecases import USE_CASE_BUILDERS
    from firmware.cosem.disconnect import DISCONNECTED
    from firmware.devices.esme import Esme
    from firmware.sim.clock import SteppedClock
    from firmware.gbcs import envelope, security
    from tests.emulator.test_board_crypto_micropython import HOST, SUPPLIER

    supplier, credentials = _gbcs_supplier()
    profile = supplier.profile
    disconnect, read = supplier.command("ECS43"), supplier.command("ECS17b")

    saved = []

    async def scenario():
        runtime = runtime_class(profile, supplier.start, gbcs_credentials=credentials,
                                state_dir=tmp_path / "state")
        await runtime.start()
        try:
            if runtime_class is MicroPythonRuntime:
                assert runtime.heapsize == "2M" and runtime.mem_free > 512 * 1024
            await runtime.advance(supplier.now)
            await runtime.open(1, "wrapper")            # DLMS goes on beside GBCS
            replies = [await runtime.receive_gbcs(bytes.fromhex(disconnect))]
            saved.append(json.loads((tmp_path / "state" / "state.json").read_text()))
            replies += [await runtime.receive_gbcs(bytes.fromhex(read)),
                       await runtime.receive_gbcs(b"\xdd\x00\x00")]   # not GBCS: dropped
            await runtime.close(1)
            return replies
        finally:
            await runtime.stop()

    signed, maced, nothing = run(scenario())
    assert nothing == []
    device = supplier.device
    assert len(signed) == 1
    reply = envelope.parse(signed[0])
    assert reply.recipient == SUPPLIER and security.verify_signature(HOST, device["ds"].public_xy,
                                                                     reply)
    assert USE_CASE_BUILDERS["ECS43"].read_response(reply.payload, supplier.contexts[0][1])["ok"]
    assert len(maced) == 1
    reply = envelope.parse(maced[0])
    shared = HOST.ecdh(supplier.org[SUPPLIER]["ka"].private_key, device["ka"].public_xy)
    assert security.verify_mac(HOST, shared, reply)
    fields = USE_CASE_BUILDERS["ECS17b"].read_response(reply.payload, supplier.contexts[1][1])
    assert fields["ok"] and fields["import_wh"] > 0
    # the disconnection was acknowledged, so it was on disk before the answer left
    esme = Esme(profile, SteppedClock(saved[0]["now"]), 0)
    esme.restore_state(saved[0]["esme"])
    assert esme.supply_state == DISCONNECTED


@pytest.mark.parametrize("runtime_class", on_both_runtimes())
def test_a_core_without_credentials_refuses_gbcs_and_goes_on(runtime_class):
    async def scenario():
        profile = board_profile(hh_depth=96)
        runtime = await runtime_class(profile, profile["clock"]["start"]).start()
        try:
            with pytest.raises(CoreError, match="GBCS is not enabled"):
                await runtime.receive_gbcs(b"\xdd\x00\x00")
            await runtime.open(1, "hdlc")
        finally:
            await runtime.stop()
    run(scenario())


@pytest.mark.parametrize("runtime_class", on_both_runtimes())
def test_a_gbcs_command_replayed_after_a_restart_is_refused(runtime_class, tmp_path):
    from firmware.gbcs import envelope

    supplier, credentials = _gbcs_supplier()
    disconnect = bytes.fromhex(supplier.command("ECS43"))

    async def boot():
        runtime = runtime_class(supplier.profile, supplier.now, gbcs_credentials=credentials,
                                state_dir=tmp_path / "state")
        await runtime.start()
        try:
            return [envelope.parse(m).cra_flag for m in await runtime.receive_gbcs(disconnect)]
        finally:
            await runtime.stop()

    assert run(boot()) == [envelope.CRA_RESPONSE]
    # the originator counter was saved with the state: the same command is now a replay
    assert run(boot()) == [envelope.CRA_ALERT]
