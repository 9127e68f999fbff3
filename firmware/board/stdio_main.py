"""The device core under the `micropython` binary, with stdin/stdout as a byte pipe.

    MICROPYPATH=.frozen:<repo> micropython -m firmware.board.stdio_main PROFILE.json \
        --now SECONDS [--seed N] [--state DIR] [--save-period SECONDS] [--core meter|loopback]
        [--gbcs CREDENTIALS.json]

The host (`emulator/runtime.py`, `MicroPythonRuntime`) never parses DLMS here: it moves
the bytes of every transport connection through this pipe, and the `MeterCore` inside
answers. With ``--gbcs`` the meter core also gets its ESME's GBCS port
(`MeterCore.enable_gbcs`): the JSON file holds the device's EUI, its DS and KA private
scalars (hex) and its trust anchors (`TrustAnchors.state()`); GBCS messages then travel
in GBCS frames, and the ESME verifies and protects them with `BoardCrypto`. The P-256
tables and the GBCS code need more heap than DLMS alone: start the binary with
``-X heapsize=2M`` (`emulator.runtime.GBCS_HEAPSIZE`) when GBCS is enabled.
The same module runs under CPython (`python -m firmware.board.stdio_main ...`).

Pipe protocol
-------------
Every frame, both directions::

    [kind:1][conn:2][len:2][payload:len]      integers big-endian

Host to device (one command per frame):

=====  ======  =====================================================================
kind   name    payload
=====  ======  =====================================================================
``O``  OPEN    framing name, ``hdlc`` or ``wrapper``: a new connection ``conn``
``D``  DATA    bytes the peer sent on ``conn`` (any chunking)
``C``  CLOSE   empty: the peer of ``conn`` went away
``G``  GBCS    one GBCS message for the ESME (from the hub; ``conn`` unused)
``T``  TIME    ``>q`` simulated seconds: run the device up to then (``conn`` unused)
``P``  PING    a nonce, echoed in the DONE: synchronises a fresh pipe
``Q``  QUIT    empty: close everything, save the state, exit 0
=====  ======  =====================================================================

Device to host:

=====  ======  =====================================================================
``R``  READY   once, first: JSON ``{"now", "restored", "mem_free", "gbcs", "implementation"}``
``D``  DATA    bytes for the peer of ``conn``; a long reply is split over several
``G``  GBCS    one GBCS message from the ESME (a response or an alert), one per frame
``K``  DONE    ends the reply to one command; TIME: ``>q`` device time; PING: nonce
``E``  ERROR   ends the reply to a failed command: UTF-8 reason; the device goes on.
               Before READY it means the core could not start, and the process exits 1.
=====  ======  =====================================================================

Every command gets zero or more DATA frames and then exactly one DONE or ERROR, so the
host can run the pipe as strict request/response. End of input acts as QUIT. A frame
that starts but does not complete within `PARTIAL_FRAME_TIMEOUT_MS` is dropped with an
ERROR instead of blocking the device forever. stdout carries only frames: diagnostics
go to stderr.
"""

import json
import select
import struct
import sys
import time

HEADER_FORMAT = ">BHH"
HEADER_SIZE = 5
MAX_PAYLOAD = 0xFFFF

OPEN = 0x4F    # 'O'
DATA = 0x44    # 'D'
CLOSE = 0x43   # 'C'
TIME = 0x54    # 'T'
GBCS = 0x47    # 'G'
PING = 0x50    # 'P'
QUIT = 0x51    # 'Q'
READY = 0x52   # 'R'
DONE = 0x4B    # 'K'
ERROR = 0x45   # 'E'

PARTIAL_FRAME_TIMEOUT_MS = 2000

if hasattr(time, "ticks_ms"):
    _ticks_ms = time.ticks_ms
    _ticks_diff = time.ticks_diff
else:   # CPython
    def _ticks_ms():
        return int(time.monotonic() * 1000)

    def _ticks_diff(a, b):
        return a - b


class PipeError(Exception):
    """A frame on the pipe that cannot be understood."""


class EndOfInput(Exception):
    """The host closed stdin at a frame boundary."""


def encode_frame(kind, conn, payload=b""):
    if len(payload) > MAX_PAYLOAD:
        raise PipeError("payload of %d bytes exceeds %d" % (len(payload), MAX_PAYLOAD))
    return struct.pack(HEADER_FORMAT, kind, conn, len(payload)) + payload


class FrameReader:
    """Reads whole frames from a blocking binary stream, one byte per poll.

    A blocking `read(n)` waits for all n bytes, so a frame cut short by a stalled host
    would hang the device; polling before every byte bounds that wait. Requests are
    small, so the per-byte cost (a few microseconds) does not matter.
    """

    def __init__(self, stream, timeout_ms=PARTIAL_FRAME_TIMEOUT_MS):
        self._read = stream.read
        self._poll = select.poll()
        self._poll.register(stream, select.POLLIN)
        self._timeout_ms = timeout_ms

    def read_frame(self):
        """-> (kind, conn, payload); raises EndOfInput or PipeError."""
        first = self._read(1)
        if not first:
            raise EndOfInput()
        deadline = _ticks_ms() + self._timeout_ms
        header = first + self._read_exactly(HEADER_SIZE - 1, deadline, 1)
        kind, conn, length = struct.unpack(HEADER_FORMAT, header)
        payload = self._read_exactly(length, deadline, HEADER_SIZE)
        return kind, conn, payload

    def _read_exactly(self, count, deadline, already):
        buf = bytearray()
        while len(buf) < count:
            remaining = _ticks_diff(deadline, _ticks_ms())
            if remaining <= 0:
                raise PipeError("partial frame: %d bytes, then nothing for %d ms"
                                % (already + len(buf), self._timeout_ms))
            if not self._poll.poll(remaining):
                continue
            byte = self._read(1)
            if not byte:
                raise PipeError("input ended inside a frame after %d bytes"
                                % (already + len(buf)))
            buf.extend(byte)
        return bytes(buf)


class FrameWriter:
    def __init__(self, stream):
        self._stream = stream

    def send(self, kind, conn, payload=b""):
        self._stream.write(encode_frame(kind, conn, payload))
        if hasattr(self._stream, "flush"):
            self._stream.flush()

    def send_data(self, conn, data):
        for start in range(0, len(data), MAX_PAYLOAD):
            self.send(DATA, conn, data[start:start + MAX_PAYLOAD])


def parse_args(argv):
    """argv (without the program name) -> dict; tiny, since MicroPython has no argparse."""
    if not argv or argv[0].startswith("--"):
        raise ValueError("usage: stdio_main PROFILE.json --now SECONDS [--seed N] "
                         "[--state DIR] [--save-period SECONDS] [--core meter|loopback] "
                         "[--gbcs CREDENTIALS.json]")
    options = {"profile": argv[0], "now": None, "seed": 0, "state": None,
               "save_period": None, "core": "meter", "gbcs": None}
    rest = argv[1:]
    if len(rest) % 2:
        raise ValueError("option %s has no value" % rest[-1])
    for i in range(0, len(rest), 2):
        name = rest[i][2:].replace("-", "_")
        if not rest[i].startswith("--") or name not in options or name == "profile":
            raise ValueError("unknown option %s" % rest[i])
        options[name] = rest[i + 1]
    if options["now"] is None:
        raise ValueError("--now SECONDS is required")
    for name in ("now", "seed", "save_period"):
        if options[name] is not None:
            options[name] = int(options[name])
    return options


def build_core(options):
    if options["core"] == "loopback":
        if options["gbcs"]:
            raise ValueError("--gbcs needs the meter core")
        from firmware.board.loopback import LoopbackCore
        return LoopbackCore(options["now"])
    if options["core"] != "meter":
        raise ValueError("unknown core %s" % options["core"])
    from firmware.board.meter import MeterCore, DEFAULT_SAVE_PERIOD
    with open(options["profile"]) as f:
        profile = json.load(f)
    period = options["save_period"]
    core = MeterCore(profile, options["now"], seed=options["seed"],
                     state_dir=options["state"],
                     save_period=DEFAULT_SAVE_PERIOD if period is None else period)
    if options["gbcs"]:
        with open(options["gbcs"]) as f:
            core.enable_gbcs(json.load(f))
    return core


def ready_payload(core):
    try:
        import gc
        gc.collect()
        mem_free = gc.mem_free()
    except (ImportError, AttributeError):
        mem_free = None      # CPython's gc has no mem_free
    return json.dumps({"now": core.now, "restored": getattr(core, "restored", False),
                       "mem_free": mem_free, "gbcs": getattr(core, "gbcs", None) is not None,
                       "implementation": sys.implementation.name}).encode()


def execute(core, kind, conn, payload, writer):
    """Run one command; returns the DONE payload. Raises on failure."""
    if kind == DATA:
        writer.send_data(conn, core.receive(conn, payload))
        return b""
    if kind == GBCS:
        for message in core.receive_gbcs(payload):
            writer.send(GBCS, conn, message)
        return b""
    if kind == OPEN:
        core.open(conn, payload.decode())
        return b""
    if kind == CLOSE:
        core.close(conn)
        return b""
    if kind == TIME:
        if len(payload) != 8:
            raise PipeError("TIME payload is %d bytes, not 8" % len(payload))
        core.advance(struct.unpack(">q", payload)[0])
        return struct.pack(">q", core.now)
    if kind == PING:
        return payload
    if kind == QUIT:
        core.shutdown()
        return b""
    raise PipeError("unknown frame kind 0x%02x" % kind)


def serve(core, reader, writer):
    while True:
        try:
            kind, conn, payload = reader.read_frame()
        except EndOfInput:
            core.shutdown()
            return 0
        except PipeError as exc:
            writer.send(ERROR, 0, str(exc).encode())
            continue
        try:
            done = execute(core, kind, conn, payload, writer)
        except Exception as exc:   # the device reports and goes on; it never dies of input
            report(exc)
            writer.send(ERROR, conn, describe(exc).encode())
            continue
        writer.send(DONE, conn, done)
        if kind == QUIT:
            return 0


def describe(exc):
    return "%s: %s" % (type(exc).__name__, exc)


def report(exc):
    print_exception = getattr(sys, "print_exception", None)
    if print_exception is not None:
        print_exception(exc, sys.stderr)
    else:
        sys.excepthook(type(exc), exc, exc.__traceback__)


def main(argv):
    stdin = sys.stdin.buffer
    stdin = getattr(stdin, "raw", stdin)   # CPython: unbuffered, so poll sees every byte
    writer = FrameWriter(sys.stdout.buffer)
    try:
        core = build_core(parse_args(argv))
    except Exception as exc:
        report(exc)
        writer.send(ERROR, 0, describe(exc).encode())
        return 1
    writer.send(READY, 0, ready_payload(core))
    return serve(core, FrameReader(stdin), writer)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
