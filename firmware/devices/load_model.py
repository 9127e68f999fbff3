"""A seeded, deterministic household load model for the ESME.

Everything is integer arithmetic on a 32-bit xorshift generator, so the same seed gives
the same watt-hours on CPython and on MicroPython (whose `random` makes no seeding
promise and whose floats are 32-bit on boards).

Per half-hour interval the model yields the energy drawn by each metering element:

- primary element: the household. Expected energy = daily energy (annual kWh / 365)
  x the weight of the half-hour in a weekday or weekend daily shape (night base, morning
  and evening peaks) x a month factor (more in winter), times a correlated noise factor
  (an AR(1) walk, so busy half-hours cluster as they do in a real home), capped at the
  profile's peak power.
- secondary element (twin-element meters only): a storage heater on a restricted
  off-peak window that charges at its rated power for a number of half-hours per night
  that follows the season.

The generator is stepped a fixed number of times per interval and only by
`next_interval`, so reading instantaneous values (`power_w`, `voltage_dv`) never
changes the energy sequence; those readings are a hash of (seed, time), not draws.
"""

INTERVAL = 1800
SLOTS_PER_DAY = 48
DAY = 86400

# Relative weight of each half-hour from 00:00 UTC (normalised by their sum). Shaped after
# the GB domestic load profile (Elexon profile class 1), not copied from it: a low night
# base, a morning peak, a daytime plateau and the evening peak around 17:00-20:00.
WEEKDAY_SHAPE = (
    48, 44, 42, 40, 39, 38, 38, 38, 39, 40, 42, 45,          # 00:00-06:00
    58, 84, 122, 140, 136, 118, 96, 88, 84, 82, 80, 80,      # 06:00-12:00
    86, 88, 84, 80, 80, 82, 88, 98, 116, 138, 170, 190,      # 12:00-18:00
    196, 188, 172, 156, 144, 132, 120, 108, 94, 80, 66, 56,  # 18:00-24:00
)
WEEKEND_SHAPE = (
    52, 47, 44, 42, 40, 39, 38, 38, 38, 39, 40, 42,          # 00:00-06:00
    46, 54, 70, 92, 116, 134, 140, 136, 128, 122, 118, 118,  # 06:00-12:00
    122, 118, 110, 104, 100, 100, 104, 110, 124, 144, 170, 184,  # 12:00-18:00
    186, 176, 160, 146, 134, 122, 110, 100, 88, 76, 64, 56,  # 18:00-24:00
)

_WEEKDAY_TOTAL = sum(WEEKDAY_SHAPE)
_WEEKEND_TOTAL = sum(WEEKEND_SHAPE)

# Month factor in permille, January first; averages exactly 1000.
MONTH_FACTOR = (1220, 1150, 1060, 960, 890, 830, 810, 830, 910, 1010, 1130, 1200)

# Cumulative days before each month in a non-leap year (civil calendar).
_MONTH_START = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)

MASK32 = 0xFFFFFFFF

# Defaults for optional profile parameters.
DEFAULT_NOISE_PERMILLE = 350
DEFAULT_SEASONAL_PERMILLE = 1000
DEFAULT_VOLTAGE_DV = 2300
DEFAULT_VOLTAGE_NOISE_DV = 40
DEFAULT_SECONDARY_WINDOW = (1800, 27000)   # 00:30-07:30 UTC, an Economy 7 style window


def xorshift32(state):
    """One step of Marsaglia's xorshift32 (shifts 13, 17, 5); state must be non-zero."""
    state ^= (state << 13) & MASK32
    state ^= state >> 17
    state ^= (state << 5) & MASK32
    return state


def mix32(value):
    """A 32-bit avalanche hash (the MurmurHash3 finaliser): reading noise from time."""
    value &= MASK32
    value ^= value >> 16
    value = (value * 0x85EBCA6B) & MASK32
    value ^= value >> 13
    value = (value * 0xC2B2AE35) & MASK32
    value ^= value >> 16
    return value


def seed_state(seed):
    """The generator's first state for a seed (any int): never zero."""
    return mix32(seed ^ 0x9E3779B9) or 0x6C8E9CF5


def weekday(seconds):
    """Monday 0 .. Sunday 6 (1970-01-01 was a Thursday)."""
    return (seconds // DAY + 3) % 7


def month_index(seconds):
    """0 (January) .. 11 of the UTC civil date (days-to-civil, proleptic Gregorian)."""
    days = seconds // DAY + 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    return (mp + 2) % 12


def _param(params, key, default):
    value = params.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("load model parameter %s must be an integer" % key)
    return value


class LoadModel:
    """Energy per half-hour for one premise; see the module docstring.

    `params` is the profile's `load` table: `annual_kwh`, `peak_w`, `phases` (1 or 3),
    optional `noise_permille`, `seasonal_permille`, `voltage_dv`, `voltage_noise_dv`,
    and for a twin-element meter `secondary` = {`rated_w`, `window_start`,
    `window_end` (seconds of the UTC day), `winter_intervals`, `summer_intervals`}.
    """

    def __init__(self, params, seed=0):
        self.seed = seed & MASK32
        self.annual_kwh = _param(params, "annual_kwh", 0)
        self.peak_w = _param(params, "peak_w", 0)
        self.phases = _param(params, "phases", 1)
        if self.annual_kwh <= 0 or self.peak_w <= 0:
            raise ValueError("load model needs annual_kwh > 0 and peak_w > 0")
        if self.phases not in (1, 3):
            raise ValueError("load model phases must be 1 or 3")
        self.noise = _param(params, "noise_permille", DEFAULT_NOISE_PERMILLE)
        self.seasonal = _param(params, "seasonal_permille", DEFAULT_SEASONAL_PERMILLE)
        self.nominal_dv = _param(params, "voltage_dv", DEFAULT_VOLTAGE_DV)
        self.voltage_span_dv = _param(params, "voltage_noise_dv", DEFAULT_VOLTAGE_NOISE_DV)
        if not 0 <= self.noise <= 900 or not 0 <= self.seasonal <= 1000:
            raise ValueError("noise_permille must be 0..900 and seasonal_permille 0..1000")
        # mWh per day: integer throughout, rounding only at the end of each interval
        self._daily_mwh = self.annual_kwh * 1000000 // 365
        self._max_interval_wh = self.peak_w * INTERVAL // 3600
        self.secondary = None
        if params.get("secondary") is not None:
            self.secondary = _Secondary(params["secondary"])
        self.reset()

    def reset(self):
        self._state = seed_state(self.seed)
        self._walk = 0            # AR(1) noise, permille
        self._charge_left = 0     # secondary element: half-hours still to charge tonight

    # -- the energy sequence -------------------------------------------------------

    def next_interval(self, start):
        """(primary Wh, secondary Wh) for the half-hour starting at `start`.

        Steps the generator twice (and once more at the start of a secondary element's
        window), so the sequence depends only on the seed and the intervals drawn.
        """
        primary = self._primary_wh(start, self._draw(), self._draw())
        secondary = 0
        if self.secondary is not None:
            secondary = self._secondary_wh(start)
        return primary, secondary

    def expected_wh(self, start):
        """The noiseless expectation for the interval starting at `start` (mWh)."""
        shape = WEEKEND_SHAPE if weekday(start) >= 5 else WEEKDAY_SHAPE
        slot = (start % DAY) // INTERVAL
        month = MONTH_FACTOR[month_index(start)]
        season = 1000 + (month - 1000) * self.seasonal // 1000
        total = _WEEKEND_TOTAL if shape is WEEKEND_SHAPE else _WEEKDAY_TOTAL
        return self._daily_mwh * shape[slot] * season // (total * 1000)

    def _draw(self):
        self._state = xorshift32(self._state)
        return self._state

    def _primary_wh(self, start, r1, r2):
        # AR(1) walk: 80 % memory, fresh uniform innovation in [-noise, +noise]
        innovation = (r1 % (2 * self.noise + 1)) - self.noise if self.noise else 0
        self._walk = (self._walk * 4 + innovation) // 5
        factor = 1000 + self._walk * 2 + ((r2 % 201) - 100) * self.noise // 1000
        if factor < 150:
            factor = 150
        wh = (self.expected_wh(start) * factor + 500000) // 1000000
        if wh > self._max_interval_wh:
            wh = self._max_interval_wh
        return wh

    def _secondary_wh(self, start):
        sec = self.secondary
        day_seconds = start % DAY
        if day_seconds == sec.window_start:
            self._charge_left = sec.intervals_for(month_index(start), self._draw())
        if not sec.in_window(day_seconds) or self._charge_left <= 0:
            return 0
        self._charge_left -= 1
        return sec.rated_w * INTERVAL // 3600

    # -- instantaneous readings: hashed from time, never drawn ---------------------

    def power_w(self, interval_wh, now):
        """Active power at `now` given the current interval's energy, +/-5 %."""
        base = interval_wh * 3600 // INTERVAL
        jitter = mix32(self.seed ^ mix32(now)) % 101 - 50
        return base + base * jitter // 1000

    def voltage_dv(self, now, phase=1):
        """Phase voltage in decivolts: nominal plus slow drift plus small noise."""
        drift = mix32(self.seed ^ mix32(now // 300 + phase * 7919))
        noise = mix32(self.seed ^ mix32(now + phase * 104729))
        span = self.voltage_span_dv
        return (self.nominal_dv + (drift % (2 * span + 1)) - span
                + (noise % 11) - 5)

    # -- persistence: JSON-safe ----------------------------------------------------

    def save_state(self):
        return [self._state, self._walk, self._charge_left]

    def restore_state(self, state):
        if not isinstance(state, list) or len(state) != 3:
            raise ValueError("load model state must be [prng, walk, charge_left]")
        prng, walk, charge_left = state
        if not isinstance(prng, int) or not 0 < prng <= MASK32:
            raise ValueError("load model PRNG state must be a non-zero uint32")
        self._state = prng
        self._walk = int(walk)
        self._charge_left = int(charge_left)


class _Secondary:
    """The second element of a twin-element meter: an off-peak storage heater."""

    def __init__(self, params):
        self.rated_w = _param(params, "rated_w", 0)
        start, end = DEFAULT_SECONDARY_WINDOW
        self.window_start = _param(params, "window_start", start)
        self.window_end = _param(params, "window_end", end)
        window = self._window_intervals()
        self.winter = _param(params, "winter_intervals", window)
        self.summer = _param(params, "summer_intervals", 0)
        if self.rated_w <= 0:
            raise ValueError("secondary element needs rated_w > 0")
        for edge in (self.window_start, self.window_end):
            if not 0 <= edge < DAY or edge % INTERVAL:
                raise ValueError("secondary window edges must be half-hours of the day")
        if not 0 <= self.summer <= self.winter <= window:
            raise ValueError("secondary intervals must satisfy 0 <= summer <= winter <= window")

    def _window_intervals(self):
        return ((self.window_end - self.window_start) % DAY) // INTERVAL

    def in_window(self, day_seconds):
        offset = (day_seconds - self.window_start) % DAY
        return offset < (self.window_end - self.window_start) % DAY

    def intervals_for(self, month, draw):
        """Half-hours to charge tonight: winter..summer by month factor, +/-1 at random."""
        low = min(MONTH_FACTOR)
        high = max(MONTH_FACTOR)
        span = self.winter - self.summer
        count = self.summer + span * (MONTH_FACTOR[month] - low) // (high - low)
        count += draw % 3 - 1
        if count < 0:
            count = 0
        limit = self._window_intervals()
        if count > limit:
            count = limit
        return count
