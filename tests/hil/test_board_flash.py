"""`smets-emu flash` against a virtual board (the unix MicroPython REPL on a pty): the
compiled firmware is copied and verified, the board resets into main.py and then answers
a DLMS request on its UART."""

import shutil
import subprocess
import sys

import pytest

from emulator import flash as flashing
from emulator.client import DlmsClient
from emulator.link import HdlcPrimary, LinkConnection
from emulator.profiles import load_profile, profile_json
from emulator.runtime import REPO_ROOT
from emulator.transport.streams import SerialStream
from emulator.virtual_board import VirtualBoard
from firmware.dlms import obis as O

PROFILE = "esme-single-phase"

pytestmark = [
    pytest.mark.micropython,
    pytest.mark.skipif(shutil.which("micropython") is None or shutil.which("mpy-cross") is None
                       or shutil.which("mpremote") is None,
                       reason="needs micropython, mpy-cross and mpremote on PATH"),
]


def read_import_register(board, profile):
    with SerialStream(board.uart_port) as stream:
        info = flashing.ping_board(stream, timeout=30)
        connection = LinkConnection(HdlcPrimary(client_address=16), stream, timeout=5)
        connection.open()
        client = DlmsClient(connection)
        client.associate(client_sap=16)
        value = client.get(3, O.IMPORT_ACTIVE_ENERGY, 2)
        client.release()
        connection.close()
    return info, value


def test_smets_emu_flash_deploys_and_the_board_answers_dlms_on_its_uart(tmp_path):
    profile = load_profile(PROFILE)
    with VirtualBoard(tmp_path / "flash") as board:
        done = subprocess.run(
            [sys.executable, "-m", "emulator.cli", "flash", "--port", board.repl_port,
             "--profile", PROFILE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        modules = len(flashing.firmware_modules())
        assert "compiled %d modules" % modules in done.stdout
        assert "verified %d files" % (modules + 2) in done.stdout
        # what is on the board is bytecode, not source: no firmware .py was copied
        lib = tmp_path / "flash" / "lib" / "firmware"
        assert len(list(lib.rglob("*.mpy"))) == modules and not list(lib.rglob("*.py"))
        board.wait_boot(2)                      # the reset rebooted it into main.py
        info, value = read_import_register(board, profile)
    assert info["implementation"] == "micropython" and info["restored"] is False
    assert value[0] == 6 and value[1] >= profile["objects"]["import_energy"]["initial_wh"]


def test_reflash_interrupts_the_running_loop_keeps_its_state_and_verify_catches_damage(tmp_path):
    profile = load_profile(PROFILE)
    text = profile_json(PROFILE)
    directory = tmp_path / "board"
    with VirtualBoard(directory) as board:
        flashing.flash(board.repl_port, text, timeout=30)
        board.wait_boot(2)
        read_import_register(board, profile)
        # main.py is running: mpremote's Ctrl-C stops it (it saves), the copy goes on
        flashing.flash(board.repl_port, text, reset=False, timeout=30)
        assert (directory / "state" / "state.json").exists()
        board.power_cut()                        # boots into main.py again
        info, _ = read_import_register(board, profile)
        assert info["restored"] is True

        build = tmp_path / "build"
        build.mkdir()
        result = flashing.flash(board.repl_port, text, build_dir=build, reset=False,
                                 timeout=30)
        damaged = directory / "lib" / "firmware" / "board" / "meter.mpy"
        data = damaged.read_bytes()
        damaged.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
        files = [(name, build / name) for name, _ in result.files]
        with pytest.raises(flashing.FlashError, match="lib/firmware/board/meter.mpy"):
            flashing.verify(flashing.Mpremote(board.repl_port), files)


def test_flash_names_the_failing_step_when_no_board_answers(tmp_path):
    with pytest.raises(flashing.FlashError, match="prepare the board"):
        flashing.flash("/dev/null-no-such-port", "{}")
