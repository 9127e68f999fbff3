"""`smets-emu han` on virtual NCPs (the code path up to the serial port is bellows' own on
a pty), its errors, and the real-dongle run (marked hardware)."""

import json
import os
import struct
import subprocess
import sys

import pytest
from click.testing import CliRunner

pytest.importorskip("emulator.ncp.ncp")

from emulator.cli import main  # noqa: E402


def _han(*args):
    return CliRunner().invoke(main, ["han", *args], catch_exceptions=False)


def test_han_is_registered_and_documents_its_options():
    result = _han("--help")
    assert result.exit_code == 0
    for option in ("--radio", "--band", "--channel", "--profile", "--pcap", "--node"):
        assert option in result.output


def test_display_profile_on_virtual_radios_reads_the_hub():
    result = _han("--radio", "virtual", "--profile", "display", "--json", "--seed", "0")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["devices"] == ["ihd"] and report["ok"]
    shown = report["readings"]["ihd"]
    assert shown["current_summ_delivered"] == 1271300           # the lab's ESME, seed 0
    assert shown["price"] == 24500 and shown["divisor"] == 1000
    assert report["network"]["channel"] == 15


def test_electricity_profile_on_868_runs_the_demo_through_the_tunnel(tmp_path):
    pcap = tmp_path / "han.pcap"
    result = _han("--radio", "virtual", "--band", "868", "--sub-channel", "5",
                  "--profile", "electricity", "--pcap", str(pcap))
    assert result.exit_code == 0, result.output
    assert "868 MHz page 28 channel 5" in result.output
    assert "[ok] Read instantaneous import registers" in result.output
    assert "FAILED" not in result.output
    data = pcap.read_bytes()
    magic, _, _, _, _, _, link_type = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4 and link_type == 195             # IEEE 802.15.4 with FCS
    assert len(data) > 24 + 16 * 20


def test_band_868_on_a_radio_without_sub_ghz_is_a_clear_error():
    result = CliRunner().invoke(main, ["han", "--radio", "virtual", "--band", "868",
                                       "--virtual-bands", "2.4", "--profile", "display"])
    assert result.exit_code == 1
    assert "--band 868" in result.output and "does not support the 868 MHz band" in \
        result.output


def test_option_errors():
    result = CliRunner().invoke(main, ["han", "--radio", "/dev/ttyUSB0", "--pcap", "x.pcap"])
    assert result.exit_code == 2 and "sniffer" in result.output
    result = CliRunner().invoke(main, ["han", "--radio", "virtual", "--node", "meter=/dev/x"])
    assert result.exit_code == 2 and "ROLE=PORT" in result.output
    result = CliRunner().invoke(main, ["han", "--radio", "/dev/does-not-exist-smets",
                                       "--profile", "display"])
    assert result.exit_code == 1 and "did not come up" in result.output


def test_the_console_script_runs_as_a_process():
    done = subprocess.run([sys.executable, "-m", "emulator.cli", "han", "--radio", "virtual",
                           "--profile", "display"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "ihd shows current_summ_delivered=" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.hardware
@pytest.mark.skipif(not os.environ.get("SMETS_EMU_EZSP_PORT"),
                    reason="needs an EmberZNet NCP dongle: set SMETS_EMU_EZSP_PORT (and "
                           "SMETS_EMU_EZSP_IHD_PORT for a second one)")
def test_real_dongle_forms_the_han():
    args = ["--radio", os.environ["SMETS_EMU_EZSP_PORT"], "--json"]
    if os.environ.get("SMETS_EMU_EZSP_IHD_PORT"):
        args += ["--node", "ihd=" + os.environ["SMETS_EMU_EZSP_IHD_PORT"]]
    result = _han(*args)
    assert result.exit_code == 0, result.output
