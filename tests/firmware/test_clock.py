from firmware.sim.clock import SimulatedClock, SteppedClock

START = 1767225600  # 2026-01-01T00:00:00Z


class FakeTicks:
    def __init__(self):
        self.ms = 5000

    def __call__(self):
        return self.ms


def _raises(fn, exc):
    try:
        fn()
    except exc:
        return True
    return False


def test_simulated_clock_starts_at_start():
    ticks = FakeTicks()
    clock = SimulatedClock(START, ticks_ms=ticks)
    assert clock() == START


def test_simulated_clock_follows_ticks_at_speed_one():
    ticks = FakeTicks()
    clock = SimulatedClock(START, ticks_ms=ticks)
    ticks.ms += 999
    assert clock() == START
    ticks.ms += 1
    assert clock() == START + 1
    ticks.ms += 60000
    assert clock() == START + 61


def test_simulated_clock_speed_multiplies_elapsed_time():
    ticks = FakeTicks()
    clock = SimulatedClock(START, speed=3600, ticks_ms=ticks)
    ticks.ms += 500
    assert clock() == START + 1800
    ticks.ms += 500
    assert clock() == START + 3600


def test_simulated_clock_keeps_sub_second_remainder_between_reads():
    ticks = FakeTicks()
    clock = SimulatedClock(START, ticks_ms=ticks)
    for _ in range(10):
        ticks.ms += 300
        clock()
    assert clock() == START + 3


def test_simulated_clock_set_rebases():
    ticks = FakeTicks()
    clock = SimulatedClock(START, speed=10, ticks_ms=ticks)
    ticks.ms += 1000
    assert clock() == START + 10
    clock.set(START + 86400)
    assert clock() == START + 86400
    ticks.ms += 100
    assert clock() == START + 86401


def test_simulated_clock_speed_zero_is_frozen():
    ticks = FakeTicks()
    clock = SimulatedClock(START, speed=0, ticks_ms=ticks)
    ticks.ms += 10 ** 6
    assert clock() == START


def test_simulated_clock_ignores_ticks_going_backwards():
    ticks = FakeTicks()
    clock = SimulatedClock(START, ticks_ms=ticks)
    ticks.ms += 2000
    assert clock() == START + 2
    ticks.ms -= 1000
    assert clock() == START + 2
    ticks.ms += 2000
    assert clock() == START + 4


def test_simulated_clock_default_tick_source_runs():
    clock = SimulatedClock(START)
    first = clock()
    assert START <= first <= START + 5
    assert clock() >= first


def test_simulated_clock_rejects_bad_arguments():
    assert _raises(lambda: SimulatedClock(START, speed=-1, ticks_ms=FakeTicks()), ValueError)
    assert _raises(lambda: SimulatedClock(-1, ticks_ms=FakeTicks()), ValueError)
    assert _raises(lambda: SimulatedClock("x", ticks_ms=FakeTicks()), TypeError)
    clock = SimulatedClock(START, ticks_ms=FakeTicks())
    assert _raises(lambda: clock.set(-5), ValueError)


def test_stepped_clock_moves_only_when_told():
    clock = SteppedClock(START)
    assert clock() == START
    assert clock() == START
    assert clock.step(1800) == START + 1800
    assert clock() == START + 1800
    clock.step()
    assert clock() == START + 1801
    clock.set(START)
    assert clock() == START


def test_stepped_clock_refuses_backward_step():
    clock = SteppedClock(START)
    assert _raises(lambda: clock.step(-1), ValueError)
    assert clock() == START
