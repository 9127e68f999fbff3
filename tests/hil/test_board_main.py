"""The board main loop (firmware/board/main.py) on the MicroPython unix port over a pty.

The process runs exactly what a board's main.py runs; its UART is one end of a
null-modem pty pair, the test is a DLMS client on the other end through pyserial.
"""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from emulator.client import DlmsClient
from emulator.flash import ping_board
from emulator.link import HdlcPrimary, LinkConnection
from emulator.profiles import load_profile
from emulator.runtime import REPO_ROOT
from emulator.transport.streams import SerialStream
from emulator.virtual_board import NullModem
from firmware.board.main import ACK, ENQ, BoardClock, PingScanner, ping_reply
from firmware.dlms import obis as O

PROFILE = "esme-single-phase"
BOARD_MAIN = "from firmware.board.main import main\nmain()\n"

needs_micropython = pytest.mark.skipif(shutil.which("micropython") is None,
                                       reason="no micropython binary on PATH")


# -- the sans-IO parts, on CPython ---------------------------------------------------

def test_ping_is_found_whatever_the_chunking_and_noise():
    stream = b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e" + b"\x05PING a1B2\n" + b"\x05PINGx\n" \
        + b"\x05PING " + b"z" * 33 + b"\n" + b"\x05\x05PING q\n"
    for size in (1, 2, 3, 7, len(stream)):
        scanner = PingScanner()
        found = []
        for i in range(0, len(stream), size):
            found += scanner.feed(stream[i:i + size])
        assert found == [b"a1B2", b"q"], size


def test_ping_reply_carries_the_nonce_and_no_hdlc_flag():
    reply = ping_reply(b"n0nce", {"now": 5, "restored": True})
    assert reply[0] == ACK and reply.endswith(b"\n") and b"\x7e" not in reply
    assert reply.startswith(b"\x06PING n0nce ")
    assert json.loads(reply[len(b"\x06PING n0nce "):]) == {"now": 5, "restored": True}
    assert ENQ not in reply


def test_board_clock_runs_at_speed_across_a_ticks_wrap():
    period = 1 << 30
    ticks = [period - 500]

    def diff(a, b):                      # time.ticks_diff on a 30-bit tick counter
        return ((a - b + period // 2) % period) - period // 2

    clock = BoardClock(1000, speed=60, ticks=lambda: ticks[0], diff=diff)
    ticks[0] = (ticks[0] + 1500) % period      # wraps
    assert clock() == 1000 + 90
    ticks[0] = (ticks[0] + 500) % period
    assert clock.ms() == 2000 and clock() == 1000 + 120


# -- the loop under micropython ---------------------------------------------------------

class Board:
    """firmware/board/main.py under micropython, its UART on a null-modem pty."""

    def __init__(self, directory, profile, config=None, stdio=False):
        self.directory = directory
        (directory / "profile.json").write_text(json.dumps(profile))
        if config is not None:
            (directory / "board.json").write_text(json.dumps(config))
        env = dict(os.environ, MICROPYPATH=".frozen:%s" % REPO_ROOT)
        self.modem = NullModem()
        if stdio:
            env.pop("SMETS_UART", None)
            io = {"stdin": self.modem.board_fd, "stdout": self.modem.board_fd}
        else:
            env["SMETS_UART"] = self.modem.board_path
            io = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL}
        self.stderr_path = directory / "stderr.txt"
        self.proc = subprocess.Popen(["micropython", "-c", BOARD_MAIN], cwd=str(directory),
                                     env=env, stderr=open(self.stderr_path, "wb"),
                                     start_new_session=True, **io)
        self.stream = SerialStream(self.modem.host_path)

    def ping(self):
        return ping_board(self.stream, timeout=30)

    def client(self, profile, client="public"):
        config = profile["clients"][client]
        link = HdlcPrimary(client_address=config["sap"])
        connection = LinkConnection(link, self.stream, timeout=5)
        connection.open()
        session = DlmsClient(connection)
        password = config.get("password")
        session.associate(client_sap=config["sap"],
                          password=password.encode() if password else None)
        return connection, session

    def stop(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        code = self.proc.wait(20)
        self.stream.close()
        self.modem.close()
        return code


def _import_wh(session):
    tag, value = session.get(3, O.IMPORT_ACTIVE_ENERGY, 2)
    assert tag == 6
    return value


@pytest.mark.micropython
@needs_micropython
def test_main_loop_answers_ping_and_dlms_on_its_uart_and_saves_on_ctrl_c(tmp_path):
    profile = load_profile(PROFILE)
    start = profile["clock"]["start"]
    board = Board(tmp_path, profile, {"speed": 600, "tick_ms": 20})
    try:
        info = board.ping()
        assert info["implementation"] == "micropython" and info["restored"] is False
        assert start <= info["now"] < start + 600 * 60
        connection, session = board.client(profile)
        first = _import_wh(session)
        assert first >= profile["objects"]["import_energy"]["initial_wh"]
        second = _import_wh(session)
        assert second >= first                  # time runs 600x: the meter consumes
        session.release()
        connection.close()
    finally:
        code = board.stop(signal.SIGINT)        # KeyboardInterrupt: the loop saves
    assert code != 0                            # an uncaught KeyboardInterrupt, as on a board
    saved = json.loads((tmp_path / "state" / "state.json").read_text())
    assert saved["now"] == saved["ceiling"] >= info["now"]   # a clean stop: no ceiling ahead

    board = Board(tmp_path, profile, {"speed": 600, "tick_ms": 20})
    try:
        info = board.ping()
        assert info["restored"] is True and info["now"] >= saved["now"]
        connection, session = board.client(profile)
        assert _import_wh(session) >= second
        connection.close()
    finally:
        board.stop()


@pytest.mark.micropython
@needs_micropython
def test_an_acknowledged_set_survives_a_sigkill_of_the_board(tmp_path):
    from emulator.client import cosem_date_time
    from firmware.dlms.cosem_datetime import datetime_seconds

    profile = load_profile(PROFILE)
    june = 1781524800
    board = Board(tmp_path, profile, {"tick_ms": 20})
    try:
        board.ping()
        connection, session = board.client(profile, "management")
        session.set(8, O.CLOCK, 2, (9, cosem_date_time(june)))
    finally:
        board.stop(signal.SIGKILL)              # no goodbyes: the SET was saved before its answer
    board = Board(tmp_path, profile, {"tick_ms": 20})
    try:
        assert board.ping()["restored"] is True
        connection, session = board.client(profile)
        shown = datetime_seconds(session.get(8, O.CLOCK, 2)[1])
        # the clock resumes at the set time, at most one save period (900 s) ahead
        assert june <= shown <= june + 900 + 60
    finally:
        board.stop()


@pytest.mark.micropython
@needs_micropython
def test_main_loop_serves_stdin_stdout_when_no_uart_is_wired(tmp_path):
    profile = load_profile(PROFILE)
    board = Board(tmp_path, profile, stdio=True)
    try:
        assert board.ping()["now"] >= profile["clock"]["start"]
        connection, session = board.client(profile)
        assert _import_wh(session) >= profile["objects"]["import_energy"]["initial_wh"]
        connection.close()
    finally:
        board.stop()


@pytest.mark.micropython
@needs_micropython
def test_inactivity_time_out_drops_the_link_and_a_new_snrm_opens_it(tmp_path):
    from emulator.link import Disconnected, LinkFailure

    profile = load_profile(PROFILE)
    board = Board(tmp_path, profile, {"tick_ms": 20, "inactivity_s": 1})
    try:
        board.ping()
        connection, session = board.client(profile)
        _import_wh(session)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:       # stay silent past the time-out
            time.sleep(0.05)
        with pytest.raises(LinkFailure) as failure:
            _import_wh(session)
        assert failure.value.event == Disconnected("DM")   # back in NDM: the link is gone
        connection, session = board.client(profile)
        assert _import_wh(session) >= profile["objects"]["import_energy"]["initial_wh"]
    finally:
        board.stop()
