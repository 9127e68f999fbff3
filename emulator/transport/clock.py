"""Simulated time for a served device: `--speed N` runs the meter N times wall time.

The device core never reads a clock (ARCHITECTURE.md principle 1); the serving edge
computes the simulated seconds from the host's monotonic clock and hands them in.
"""

import time


class SimulatedTime:
    """Integer seconds: `start` plus `speed` times the wall seconds since creation."""

    def __init__(self, start, speed=1.0, monotonic=time.monotonic):
        if speed <= 0:
            raise ValueError("speed must be positive, not %r" % speed)
        self.start = int(start)
        self.speed = speed
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self):
        # the epsilon keeps float noise (3.6 * 1000 = 3599.9999...) from losing a second
        return self.start + int((self._monotonic() - self._origin) * self.speed + 1e-6)

    def __call__(self):
        return self.now()
