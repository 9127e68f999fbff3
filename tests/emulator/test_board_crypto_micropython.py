"""GBCS critical commands through `EsmeGbcs` on `BoardCrypto` inside the real `micropython`
binary: the host (HostCrypto, `cryptography`) builds, signs and MACs the commands as the
supplier and the DCC would; the ESME in MicroPython verifies them with its pure-Python
P-256 and AES-GCM over `cryptolib`, acts, and signs or MACs its answers, which the host
verifies. The device script is written to a temporary file and run as a subprocess with
a time-out. The heap is 1 MB because the .py sources compile onto it here; a board runs
mpy-cross bytecode from flash (benchmarks/run.py section c measures that on 128 KB).
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emulator import smki
from emulator.crypto import HostCrypto
from emulator.profiles import load_profile
from emulator.usecases import USE_CASE_BUILDERS, BuildContext
from firmware.cosem.disconnect import CONNECTED, DISCONNECTED
from firmware.gbcs import codes, envelope, security

pytestmark = pytest.mark.micropython

ROOT = Path(__file__).resolve().parent.parent.parent
TIMEOUT = 120
HEAP = "1M"
ACB = bytes.fromhex("90B3D51F30000002")
SUPPLIER = bytes.fromhex("90B3D51F30010000")
ESME_EUI = bytes.fromhex("00DB1234567890A0")
HOST = HostCrypto()

DEVICE_SCRIPT = textwrap.dedent('''
    import gc, json, sys, time
    from binascii import hexlify, unhexlify
    from firmware.crypto.board import BoardCrypto, PrivateKey
    from firmware.devices.esme import Esme
    from firmware.devices.esme_gbcs import EsmeGbcs
    from firmware.gbcs.anchors import TrustAnchors
    from firmware.gbcs.device_security import DeviceSecurity
    from firmware.sim.clock import SteppedClock

    with open(sys.argv[1]) as f:
        config = json.load(f)
    anchors = TrustAnchors()
    for role, cell, eui, ds, ka in config["anchors"]:
        anchors.set(role, cell, unhexlify(eui), ds_public=unhexlify(ds), ka_public=unhexlify(ka))
    crypto = BoardCrypto()
    security = DeviceSecurity(unhexlify(config["eui"]), PrivateKey(int(config["ds"], 16)),
                              PrivateKey(int(config["ka"], 16)), crypto, anchors)
    clock = SteppedClock(config["start"])
    esme = Esme(config["profile"], clock, seed=1)
    gbcs = EsmeGbcs(esme, security, crypto)
    clock.set(config["now"])
    esme.advance(config["now"])
    steps = []
    for command in config["commands"]:
        started = time.ticks_ms()
        out = gbcs.receive_gbcs(unhexlify(command), config["now"])
        steps.append({"out": [hexlify(o).decode() for o in out],
                      "ms": time.ticks_diff(time.ticks_ms(), started),
                      "supply": esme.supply_state})
    gc.collect()
    print(json.dumps({"implementation": sys.implementation.name, "steps": steps,
                      "mem_free": gc.mem_free()}))
''')


def _micropython():
    candidate = Path(sys.executable).parent / "micropython"
    path = str(candidate) if candidate.exists() else shutil.which("micropython")
    assert path, "micropython not found: pip install the test extra (see pyproject.toml)"
    return path


def _scalar(credential):
    return "%064x" % credential.private_key.private_numbers().private_value


class Supplier:
    def __init__(self):
        authority = smki.TestSmki(seed=55)
        authority.organisation(SUPPLIER, smki.ROLE_SUPPLIER, "SUPPLIER A")
        authority.organisation(ACB, smki.ROLE_ACB, "DCC")
        authority.device(ESME_EUI)
        self.org = authority.organisations
        self.device = authority.devices[ESME_EUI]
        profile = load_profile("esme-single-phase")
        profile["objects"]["hh_profile"]["depth"] = 96
        self.profile = profile
        self.start = profile["clock"]["start"]
        self.now = self.start + 86400
        self.counter = 0x3000
        self.contexts = []

    def command(self, use_case, signer=None):
        self.counter += 1
        uc = USE_CASE_BUILDERS[use_case]
        ctx = BuildContext(self.counter, SUPPLIER, ESME_EUI, self.now, HOST,
                           self.org[SUPPLIER]["ka"].private_key, self.device["ka"].public_xy)
        message = envelope.GbcsMessage(envelope.CRA_COMMAND, self.counter, SUPPLIER, ESME_EUI,
                                       uc.message_code, uc.build({}, ctx))
        if uc.critical:
            security.sign(HOST, signer or self.org[SUPPLIER]["ds"].private_key, message)
        security.protect_mac(HOST, HOST.ecdh(self.org[ACB]["ka"].private_key,
                                             self.device["ka"].public_xy), message)
        self.contexts.append((use_case, ctx))
        return message.encode().hex()

    def config(self, commands):
        anchors = []
        for role, eui in ((codes.ROLE_SUPPLIER, SUPPLIER), (codes.ROLE_ACB, ACB)):
            anchors.append([role, codes.CELL_MANAGEMENT, eui.hex(),
                            self.org[eui]["ds"].public_xy.hex(),
                            self.org[eui]["ka"].public_xy.hex()])
        return {"eui": ESME_EUI.hex(), "ds": _scalar(self.device["ds"]),
                "ka": _scalar(self.device["ka"]), "anchors": anchors, "profile": self.profile,
                "start": self.start, "now": self.now, "commands": commands}


def _run_on_micropython(config, tmp_path):
    (tmp_path / "device.py").write_text(DEVICE_SCRIPT)
    (tmp_path / "config.json").write_text(json.dumps(config))
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([".frozen", str(ROOT)]))
    proc = subprocess.run([_micropython(), "-X", "heapsize=%s" % HEAP, str(tmp_path / "device.py"),
                           str(tmp_path / "config.json")], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["implementation"] == "micropython"
    return result


def test_critical_and_macd_commands_through_esme_gbcs_on_board_crypto_in_micropython(tmp_path):
    s = Supplier()
    rogue = smki.TestSmki(seed=404).derive_key("rogue-ds")
    commands = [s.command("ECS43"),                 # disconnect: signed + MAC'd, signed reply
                s.command("ECS42", signer=rogue),   # a signature not by the anchor: refused
                s.command("ECS17b")]                # MAC'd read, registers GCM-encrypted
    result = _run_on_micropython(s.config(commands), tmp_path)
    disconnect, forged, read = result["steps"]
    device_ds = s.device["ds"].public_xy

    assert len(disconnect["out"]) == 1 and disconnect["supply"] == DISCONNECTED
    reply = envelope.parse(bytes.fromhex(disconnect["out"][0]))
    assert reply.cra_flag == envelope.CRA_RESPONSE and reply.recipient == SUPPLIER
    assert security.verify_signature(HOST, device_ds, reply)
    fields = USE_CASE_BUILDERS["ECS43"].read_response(reply.payload, s.contexts[0][1])
    assert fields["ok"]

    assert forged["supply"] == DISCONNECTED != CONNECTED          # nothing changed
    assert len(forged["out"]) == 1
    alert = envelope.parse(bytes.fromhex(forged["out"][0]))
    assert alert.cra_flag == envelope.CRA_ALERT
    assert security.verify_signature(HOST, device_ds, alert)

    assert len(read["out"]) == 1
    reply = envelope.parse(bytes.fromhex(read["out"][0]))
    shared = HOST.ecdh(s.org[SUPPLIER]["ka"].private_key, s.device["ka"].public_xy)
    assert security.verify_mac(HOST, shared, reply)
    fields = USE_CASE_BUILDERS["ECS17b"].read_response(reply.payload, s.contexts[2][1])
    assert fields["ok"] and fields["import_wh"] > 0
    print("\nMicroPython GBCS steps (ms): %s; heap free after: %d bytes of %s"
          % ([step["ms"] for step in result["steps"]], result["mem_free"], HEAP))
