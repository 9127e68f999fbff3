"""The main loop of a MicroPython board: the meter served over HDLC on a UART.

A board's `/main.py` (written by `smets-emu flash`) is two lines: import this module and
call `main()`. Everything it reads is on the board's filesystem, relative to the
working directory (`/` on a board; the board directory on the unix port):

    profile.json   the device profile (JSON form of profiles/*.toml)
    board.json     optional wiring and timing, keys below (all optional)
    state/         the device state, written atomically by firmware/persist.py

board.json keys: `uart` (machine.UART id, default 1), `baudrate` (9600), `tx`, `rx`
(pin numbers), `uart_path` (unix port: a tty/pty path), `wdt_ms` (machine.WDT time-out;
no watchdog when absent), `tick_ms` (longest wait for input, 50), `start` (board time
at boot in seconds since 1970; default the profile's clock.start), `speed` (simulated
seconds per board second, 1), `seed`, `save_period`, `state_dir` ("state"),
`inter_octet_ms` (25), `inactivity_s` (120).

Where the meter's line comes from, first match: `machine.UART` on a board; on the unix
port (no machine.UART) `uart_path`, else the environment variable `SMETS_UART` (how
the virtual board wires its UART pty), else stdin/stdout.

The loop never blocks longer than a tick: it waits for input at most `tick_ms`, feeds
the watchdog on every turn, drops an incomplete HDLC frame after the inter-octet
time-out and closes the link after the inactivity time-out (IEC 62056-46 / Blue Book
IEC HDLC setup class 23, attributes 6 and 7: defaults 25 ms and 120 s).

Synchronisation (MICROPYTHON.md, HIL lessons): a host that opens the port cannot rely
on a boot banner (pyserial discards pending input), so it asks, with a nonce:

    host:  ENQ "PING " nonce LF                  nonce: 1..32 characters [0-9A-Za-z]
    board: ACK "PING " nonce " " info LF         info: JSON {"now", "restored", ...}

Neither line holds 0x7E, so to the HDLC readers on both ends they are line noise that
is skipped; the request is recognised anywhere in the byte stream, whatever the
chunking.
"""

import json
import sys
import time

from firmware.board.meter import DEFAULT_SAVE_PERIOD, FRAMING_HDLC, MeterCore

PROFILE_PATH = "profile.json"
BOARD_CONFIG_PATH = "board.json"
UART_ENVIRONMENT = "SMETS_UART"

DEFAULT_UART_ID = 1
DEFAULT_BAUDRATE = 9600
DEFAULT_TICK_MS = 50
INTER_OCTET_TIMEOUT_MS = 25        # Blue Book class 23 attr 6 default
INACTIVITY_TIMEOUT_S = 120         # Blue Book class 23 attr 7 default
READ_CHUNK = 256
LINK = 1                           # the one HDLC connection on the UART

ENQ = 0x05
ACK = 0x06
LF = 0x0A
PING_WORD = b"PING "
MAX_NONCE = 32


class BoardError(Exception):
    """The board cannot start: no profile, bad board.json."""


# -- time ------------------------------------------------------------------------------

if hasattr(time, "ticks_ms"):
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
else:   # CPython, for tests
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


class BoardClock:
    """Board seconds from `time.ticks_ms`: start + elapsed x speed.

    Elapsed time is accumulated tick by tick with ticks_diff, so the wrap of ticks_ms
    (2**30 ms on most ports) never shows.
    """

    def __init__(self, start, speed=1, ticks=ticks_ms, diff=ticks_diff):
        self.start = start
        self.speed = speed
        self._ticks = ticks
        self._diff = diff
        self._last = ticks()
        self._elapsed_ms = 0

    def ms(self):
        now = self._ticks()
        self._elapsed_ms += self._diff(now, self._last)
        self._last = now
        return self._elapsed_ms

    def __call__(self):
        return self.start + (self.ms() * self.speed) // 1000


# -- the line ----------------------------------------------------------------------------

class UartPort:
    """A `machine.UART`: non-blocking reads of what has arrived."""

    def __init__(self, uart):
        self._uart = uart
        try:
            import select
            self._poll = select.poll()
            self._poll.register(uart, select.POLLIN)
        except (ImportError, AttributeError, OSError, TypeError):
            self._poll = None

    def wait(self, ms):
        if self._poll is not None:
            return bool(self._poll.poll(ms))
        if self._uart.any():
            return True
        time.sleep_ms(ms)
        return bool(self._uart.any())

    def read(self):
        n = self._uart.any()
        if not n:
            return b""
        return self._uart.read(n) or b""

    def write(self, data):
        self._uart.write(data)


class StreamPort:
    """A file descriptor (a tty or pty on the unix port, or stdin/stdout).

    MicroPython's unix streams read until `n` bytes are in, so a byte is read only
    after poll says one is there, and reading stops when poll finds nothing more.
    """

    def __init__(self, rstream, wstream):
        import select
        self._read1 = rstream.read
        self._w = wstream
        self._poll = select.poll()
        self._poll.register(rstream, select.POLLIN)
        self._pollin = select.POLLIN

    def wait(self, ms):
        return bool(self._ready(ms))

    def _ready(self, ms):
        for _, event in self._poll.poll(ms):
            if event & self._pollin:
                return True
            raise OSError("the line hung up")
        return False

    def read(self):
        out = bytearray()
        while len(out) < READ_CHUNK and self._ready(0):
            byte = self._read1(1)
            if not byte:
                break
            out.extend(byte)
        return bytes(out)

    def write(self, data):
        self._w.write(data)
        flush = getattr(self._w, "flush", None)
        if flush is not None:
            try:
                flush()
            except OSError:
                pass      # MicroPython's unix FileIO flush is fsync: EINVAL on a tty


# -- PING ----------------------------------------------------------------------------------

def _nonce_byte(b):
    return 48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122


class PingScanner:
    """Finds `ENQ "PING " nonce LF` in a byte stream cut anywhere; yields the nonces."""

    def __init__(self):
        self._buf = None     # bytes after an ENQ, while they still fit the pattern

    def feed(self, data):
        nonces = []
        for b in data:
            if b == ENQ:
                self._buf = bytearray()
                continue
            buf = self._buf
            if buf is None:
                continue
            n = len(buf)
            if n < len(PING_WORD):
                ok = b == PING_WORD[n]
            elif b == LF and n > len(PING_WORD):
                nonces.append(bytes(buf[len(PING_WORD):]))
                self._buf = None
                continue
            else:
                ok = _nonce_byte(b) and n < len(PING_WORD) + MAX_NONCE
            if ok:
                buf.append(b)
            else:
                self._buf = None
        return nonces


def ping_reply(nonce, info):
    return bytes([ACK]) + PING_WORD + nonce + b" " + json.dumps(info).encode() + bytes([LF])


# -- the loop --------------------------------------------------------------------------

class BoardLoop:
    """One meter on one line. `step()` is one turn of the loop; `run()` turns forever."""

    def __init__(self, core, port, clock, tick_ms=DEFAULT_TICK_MS, wdt=None,
                 inter_octet_ms=INTER_OCTET_TIMEOUT_MS, inactivity_s=INACTIVITY_TIMEOUT_S):
        self.core = core
        self.port = port
        self.clock = clock
        self.tick_ms = tick_ms
        self.wdt = wdt
        self.inter_octet_ms = inter_octet_ms
        self.inactivity_ms = inactivity_s * 1000
        self.pings = PingScanner()
        self.errors = 0
        self._last_rx_ms = clock.ms()
        self._partial = False
        self._link_used = False
        core.open(LINK, FRAMING_HDLC)

    def info(self):
        info = {"now": self.core.now, "restored": self.core.restored,
                "implementation": sys.implementation.name, "errors": self.errors}
        try:
            import gc
            info["mem_free"] = gc.mem_free()
        except (ImportError, AttributeError):
            pass
        return info

    def step(self):
        if self.wdt is not None:
            self.wdt.feed()
        data = self.port.read() if self.port.wait(self.tick_ms) else b""
        now_ms = self.clock.ms()
        if data:
            self._last_rx_ms = now_ms
            self._on_data(data)
        else:
            self._on_silence(ticks_diff_ms(now_ms, self._last_rx_ms))
        try:
            self.core.advance(self.clock())
        except Exception as exc:     # e.g. flash full: report, keep serving
            self.errors += 1
            report(exc)

    def _on_data(self, data):
        for nonce in self.pings.feed(data):
            self.port.write(ping_reply(nonce, self.info()))
        try:
            out = self.core.receive(LINK, data)
        except Exception as exc:     # a device never dies of its input
            self.errors += 1
            report(exc)
            return
        self._partial = True
        self._link_used = True
        if out:
            self.port.write(out)

    def _on_silence(self, silent_ms):
        if self._partial and silent_ms >= self.inter_octet_ms:
            self.core.idle(LINK)
            self._partial = False
        if self._link_used and silent_ms >= self.inactivity_ms:
            self.core.close(LINK)          # back to NDM: the next client sends SNRM
            self.core.open(LINK, FRAMING_HDLC)
            self._link_used = False

    def run(self):
        try:
            while True:
                self.step()
        finally:          # Ctrl-C (mpremote), SystemExit: leave the state saved
            self.core.shutdown()


def ticks_diff_ms(a, b):
    return a - b


def report(exc):
    print_exception = getattr(sys, "print_exception", None)
    if print_exception is not None:
        print_exception(exc)
    else:
        print("%s: %s" % (type(exc).__name__, exc))


# -- start-up ----------------------------------------------------------------------------

def load_json(path, required):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        if required:
            raise BoardError("no %s on the board" % path)
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise BoardError("%s is not valid JSON" % path)
    if not isinstance(value, dict):
        raise BoardError("%s does not hold a JSON object" % path)
    return value


def open_port(config):
    try:
        import machine
        uart_class = getattr(machine, "UART", None)
    except ImportError:
        uart_class = None
    if uart_class is not None:
        kwargs = {"baudrate": config.get("baudrate", DEFAULT_BAUDRATE), "timeout": 0}
        for pin in ("tx", "rx"):
            if config.get(pin) is not None:
                kwargs[pin] = machine.Pin(config[pin])
        return UartPort(uart_class(config.get("uart", DEFAULT_UART_ID), **kwargs))
    path = config.get("uart_path")
    if path is None:
        getenv = getattr(__import__("os"), "getenv", None)
        path = getenv(UART_ENVIRONMENT) if getenv is not None else None
    if path:
        stream = open(path, "r+b")
        return StreamPort(stream, stream)
    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    return StreamPort(getattr(stdin, "raw", stdin), getattr(sys.stdout, "buffer", sys.stdout))


def open_watchdog(config):
    timeout = config.get("wdt_ms")
    if not timeout:
        return None
    try:
        import machine
        return machine.WDT(timeout=timeout)
    except (ImportError, AttributeError):
        return None      # the unix port has no watchdog


def build(config, profile):
    clock = BoardClock(config.get("start", (profile.get("clock") or {}).get("start", 0)),
                       config.get("speed", 1))
    core = MeterCore(profile, clock(), seed=config.get("seed", 0),
                     state_dir=config.get("state_dir", "state"),
                     save_period=config.get("save_period", DEFAULT_SAVE_PERIOD))
    return BoardLoop(core, open_port(config), clock,
                     tick_ms=config.get("tick_ms", DEFAULT_TICK_MS),
                     wdt=open_watchdog(config),
                     inter_octet_ms=config.get("inter_octet_ms", INTER_OCTET_TIMEOUT_MS),
                     inactivity_s=config.get("inactivity_s", INACTIVITY_TIMEOUT_S))


def main(config_path=BOARD_CONFIG_PATH, profile_path=PROFILE_PATH):
    config = load_json(config_path, False)
    profile = load_json(profile_path, True)
    build(config, profile).run()


if __name__ == "__main__":
    main()
