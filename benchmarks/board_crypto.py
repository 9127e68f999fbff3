"""The board's crypto (firmware/crypto, pure Python) timed under CPython and under the
unix `micropython` binary, beside HostCrypto (`cryptography`, OpenSSL) for scale.

    python benchmarks/board_crypto.py            # the table
    python benchmarks/board_crypto.py --quick    # fewer repetitions
    python benchmarks/board_crypto.py --json
    MICROPYPATH=.frozen:. micropython benchmarks/board_crypto.py    # one JSON line

Operations, each the cost of one GBCS use of it:
- ECDSA sign (RFC 6979 nonce, fixed-base table of G already built);
- ECDSA verify against a known key (its odd-multiples table cached, as BoardCrypto does
  for trust anchors) and against a new key (table built in the call);
- ECDH with a new peer (no static-static cache hit: what a cache miss costs);
- AES-128-GCM encrypt of 256 bytes and GMAC of 256 bytes of AAD, each with a new key
  (GBCS derives a key per message, so the GHASH table is built every time).
Each is warmed up, then timed over several rounds; the best round's mean is reported.
CPython rows use CPU time (time.process_time, as benchmarks/run.py does); the MicroPython
rows use time.ticks_us (the process runs alone). `rows(quick)` gives benchmarks/run.py
its section.
"""

import json
import sys
import time

MICROPYTHON = sys.implementation.name == "micropython"
MP_TIMEOUT = 120
OPERATIONS = ("ECDSA sign", "ECDSA verify, known key", "ECDSA verify, new key",
              "ECDH, new peer", "AES-128-GCM encrypt 256 B", "GMAC 256 B")

if MICROPYTHON:
    def _now_us():
        return time.ticks_us()

    def _elapsed_us(start):
        return time.ticks_diff(time.ticks_us(), start)
else:
    import os
    REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if REPO not in sys.path:
        sys.path.insert(0, REPO)

    def _now_us():
        return time.process_time() * 1e6

    def _elapsed_us(start):
        return time.process_time() * 1e6 - start


def _best_mean_us(function, repeat, rounds):
    function()
    best = None
    for _ in range(rounds):
        start = _now_us()
        for _ in range(repeat):
            function()
        mean = _elapsed_us(start) / repeat
        best = mean if best is None or mean < best else best
    return best


def _cases(crypto, private_key, public_xy, peers, verify_key_of):
    """name -> zero-argument callable. `peers` yields a new x||y per call; the signature
    verified is checked once, so a verify that returns False cannot look fast."""
    data = bytes(range(256))
    key = bytes(range(16))
    iv = bytes(range(12))
    signature = crypto.ecdsa_sign(private_key, data)
    assert crypto.ecdsa_verify(public_xy, data, signature)
    counter = [0]

    def new_key():
        counter[0] += 1
        return bytes([counter[0] & 0xFF]) + key[1:]

    def verify_new():
        fresh = verify_key_of(counter[0])
        counter[0] += 1
        return fresh[0].ecdsa_verify(fresh[1], data, fresh[2])

    return {
        "ECDSA sign": lambda: crypto.ecdsa_sign(private_key, data),
        "ECDSA verify, known key": lambda: crypto.ecdsa_verify(public_xy, data, signature),
        "ECDSA verify, new key": verify_new,
        "ECDH, new peer": lambda: peers(),
        "AES-128-GCM encrypt 256 B": lambda: crypto.gcm_encrypt(new_key(), iv, data, b""),
        "GMAC 256 B": lambda: crypto.gmac(new_key(), iv, data),
    }


def measure_board(quick):
    """Microseconds per operation of BoardCrypto in this interpreter."""
    from firmware.crypto import p256
    from firmware.crypto.board import BoardCrypto, PrivateKey

    crypto = BoardCrypto()
    d = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
    key = PrivateKey(d)
    public = key.public_xy
    peer_keys = [PrivateKey(1000 + i).public_xy for i in range(4)]
    data = bytes(range(256))
    signed = [(PrivateKey(2000 + i).public_xy, p256.sign(2000 + i, data)) for i in range(4)]
    state = [0]

    def peers():
        state[0] += 1
        return p256.ecdh(d, peer_keys[state[0] % 4])       # p256 directly: no cache

    def verify_key_of(i):
        xy, sig = signed[i % 4]
        return BoardCrypto(), xy, sig                      # a new instance: no table cache

    cases = _cases(crypto, key, public, peers, verify_key_of)
    slow_repeat, fast_repeat, rounds = (2, 10, 2) if quick else (10, 50, 3)
    out = {}
    for name in OPERATIONS:
        fast = name.startswith("AES") or name.startswith("GMAC")
        out[name] = _best_mean_us(cases[name], fast_repeat if fast else slow_repeat, rounds)
    return out


def measure_host(quick):
    from cryptography.hazmat.primitives.asymmetric import ec
    from emulator.crypto import HostCrypto, public_xy

    crypto = HostCrypto()
    key = ec.derive_private_key(12345, ec.SECP256R1())
    public = public_xy(key.public_key())
    peer_keys = [public_xy(ec.derive_private_key(1000 + i, ec.SECP256R1()).public_key())
                 for i in range(4)]
    data = bytes(range(256))
    signers = [ec.derive_private_key(2000 + i, ec.SECP256R1()) for i in range(4)]
    signed = [(public_xy(k.public_key()), crypto.ecdsa_sign(k, data)) for k in signers]
    state = [0]

    def peers():
        state[0] += 1
        return HostCrypto().ecdh(key, peer_keys[state[0] % 4])   # a new cache each time

    def verify_key_of(i):
        xy, sig = signed[i % 4]
        return crypto, xy, sig          # cryptography has no per-key table to miss

    cases = _cases(crypto, key, public, peers, verify_key_of)
    repeat, rounds = (50, 2) if quick else (300, 3)
    return dict((name, _best_mean_us(cases[name], repeat, rounds)) for name in OPERATIONS)


def measure_micropython(quick):
    """Runs this file under the `micropython` binary; {} and the reason if it cannot."""
    import shutil
    import subprocess
    candidate = os.path.join(os.path.dirname(sys.executable), "micropython")
    binary = candidate if os.path.exists(candidate) else shutil.which("micropython")
    if binary is None:
        return {}, "not available: micropython binary"
    env = dict(os.environ, MICROPYPATH=".frozen:%s" % REPO)
    argv = [binary, os.path.abspath(__file__)] + (["--quick"] if quick else [])
    try:
        proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=MP_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {}, "timed out after %d s" % MP_TIMEOUT
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        said = (proc.stdout + proc.stderr).strip().splitlines()
        return {}, said[-1] if said else "exit %d" % proc.returncode
    result = json.loads(lines[-1])
    return result["us"], result["version"]


def _ms(us):
    if us is None:
        return "-"
    return ("%.1f us" % us) if us < 100 else ("%.2f ms" % (us / 1000.0))


def rows(quick):
    """(name, value, target, status, note) per operation, for benchmarks/run.py."""
    cpython = measure_board(quick)
    micro, mp_note = measure_micropython(quick)
    try:
        host = measure_host(quick)
    except ImportError:
        host = {}
    out = []
    for name in OPERATIONS:
        value = "MicroPython %s, CPython %s" % (_ms(micro.get(name)), _ms(cpython[name]))
        note = ("BoardCrypto: cryptolib AES on MicroPython, the pure-Python AES fallback on "
                "CPython; cryptography %s" % _ms(host.get(name)))
        if not micro:
            note += "; MicroPython: %s" % mp_note
        out.append((name, value, "", "info" if micro else "n/a", note))
    return out, cpython, micro, mp_note, host


def _table(cpython, micro, mp_note, host, quick):
    title = "BoardCrypto timings%s (per operation)" % (" (quick)" if quick else "")
    lines = [title, "",
             "%-28s %18s %18s %18s" % ("operation", "micropython unix", "CPython (board)",
                                       "CPython (host)")]
    for name in OPERATIONS:
        lines.append("%-28s %18s %18s %18s" % (name, _ms(micro.get(name)), _ms(cpython[name]),
                                              _ms(host.get(name))))
    lines.append("")
    lines.append("micropython: %s; CPython %s. Board = firmware/crypto (pure Python); host = "
                 "emulator/crypto.py (cryptography/OpenSSL)." % (
                     mp_note if micro else "(" + mp_note + ")", sys.version.split()[0]))
    return "\n".join(lines)


def main():
    quick = "--quick" in sys.argv
    if MICROPYTHON:
        us = measure_board(quick)
        print(json.dumps({"us": us, "version": "MicroPython %s" % ".".join(
            str(v) for v in sys.implementation.version[:3])}))
        return 0
    _, cpython, micro, mp_note, host = rows(quick)
    if "--json" in sys.argv:
        print(json.dumps({"quick": quick, "cpython_board_us": cpython,
                          "micropython_board_us": micro, "micropython": mp_note,
                          "cpython_host_us": host}, indent=2))
    else:
        print(_table(cpython, micro, mp_note, host, quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
