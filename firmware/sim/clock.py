"""Simulated time for the device core.

Time everywhere in the core is integer seconds since 1970-01-01 UTC, kept by one of
these clocks and injected (never the board's own epoch, which is 2000 on ESP32).

- `SimulatedClock` runs at `speed` times an injected millisecond tick source (the
  board's `time.ticks_ms` by default); `set()` re-bases it, e.g. when a client writes
  the COSEM clock.
- `SteppedClock` only moves when told to (`set()` / `step()`): for tests and for
  faster-than-real-time runs driven by a harness.

Both are callables returning the current seconds.
"""

# MicroPython's ticks_ms wraps (period 2**30 on most ports); ticks_diff is only valid
# for differences below half of that, so a clock must be read at least every ~6 days.
_TICKS_PERIOD = 1 << 30


def _default_ticks():
    """(ticks_ms, ticks_diff) of the running interpreter: the board edge."""
    import time
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms, time.ticks_diff
    return (lambda: time.monotonic_ns() // 1000000), _plain_diff


def _plain_diff(new, old):
    return new - old


def _check_seconds(seconds):
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise TypeError("clock seconds must be an int")
    if seconds < 0:
        raise ValueError("clock seconds before 1970")
    return seconds


class SimulatedClock:
    """Seconds = base + elapsed_ms * speed // 1000, elapsed read from `ticks_ms`.

    An injected `ticks_ms` must be a non-wrapping, non-decreasing integer
    millisecond counter (a test can drive it by hand); the default one is the
    board's wrapping `time.ticks_ms`, handled with `time.ticks_diff`.
    """

    def __init__(self, start_seconds, speed=1, ticks_ms=None):
        if not isinstance(speed, int) or isinstance(speed, bool) or speed < 0:
            raise ValueError("speed must be an int >= 0")
        if ticks_ms is None:
            ticks_ms, self._diff = _default_ticks()
        else:
            self._diff = _plain_diff
        self._ticks_ms = ticks_ms
        self.speed = speed
        self._base = _check_seconds(start_seconds)
        self._last_tick = ticks_ms()
        self._elapsed_ms = 0

    def __call__(self):
        tick = self._ticks_ms()
        delta = self._diff(tick, self._last_tick)
        if delta > 0:
            self._elapsed_ms += delta
        self._last_tick = tick
        return self._base + self._elapsed_ms * self.speed // 1000

    def set(self, seconds):
        """Re-base: from now on the clock counts on from `seconds`."""
        self._base = _check_seconds(seconds)
        self._last_tick = self._ticks_ms()
        self._elapsed_ms = 0


class SteppedClock:
    """A clock that stands still until `step()` or `set()` moves it."""

    def __init__(self, start):
        self._now = _check_seconds(start)
        self.speed = 0

    def __call__(self):
        return self._now

    def set(self, seconds):
        self._now = _check_seconds(seconds)

    def step(self, seconds=1):
        if not isinstance(seconds, int) or seconds < 0:
            raise ValueError("a stepped clock only steps forward by whole seconds")
        self._now += seconds
        return self._now
