from firmware.devices.load_model import (
    INTERVAL, LoadModel, month_index, weekday, xorshift32,
)

JAN_1_2026 = 1767225600       # a Thursday
JUL_1_2026 = 1782864000       # a Wednesday
DAY = 86400
SINGLE = {"annual_kwh": 3100, "peak_w": 9000, "phases": 1}
TWIN = {"annual_kwh": 3100, "peak_w": 9000, "phases": 1,
        "secondary": {"rated_w": 3400, "window_start": 1800, "window_end": 27000,
                      "winter_intervals": 14, "summer_intervals": 2}}


def _raises(fn, exc):
    try:
        fn()
    except exc:
        return True
    return False


def _series(model, start, count):
    return [model.next_interval(start + i * INTERVAL) for i in range(count)]


def test_xorshift32_matches_marsaglia_reference():
    # Marsaglia, "Xorshift RNGs" (2003): y=2463534242, shifts 13/17/5 -> 723471715
    assert xorshift32(2463534242) == 723471715


def test_calendar_helpers():
    assert weekday(JAN_1_2026) == 3
    assert weekday(JAN_1_2026 + 2 * DAY) == 5          # Saturday
    assert month_index(JAN_1_2026) == 0
    assert month_index(JUL_1_2026) == 6
    assert month_index(1709164800) == 1                 # 2024-02-29
    assert month_index(1709251200) == 2                 # 2024-03-01
    assert month_index(JAN_1_2026 - 1) == 11            # 2025-12-31 23:59:59


def test_same_seed_same_sequence():
    a = _series(LoadModel(SINGLE, seed=7), JAN_1_2026, 480)
    b = _series(LoadModel(SINGLE, seed=7), JAN_1_2026, 480)
    assert a == b


def test_different_seeds_differ():
    a = _series(LoadModel(SINGLE, seed=1), JAN_1_2026, 96)
    b = _series(LoadModel(SINGLE, seed=2), JAN_1_2026, 96)
    assert a != b


def test_readings_do_not_disturb_the_energy_sequence():
    quiet = LoadModel(SINGLE, seed=3)
    busy = LoadModel(SINGLE, seed=3)
    for i in range(200):
        start = JAN_1_2026 + i * INTERVAL
        busy.voltage_dv(start + 17, 1)
        busy.power_w(250, start + 5)
        assert quiet.next_interval(start) == busy.next_interval(start)


def test_restored_state_continues_the_same_sequence():
    model = LoadModel(TWIN, seed=11)
    _series(model, JAN_1_2026, 333)
    saved = model.save_state()
    expected = _series(model, JAN_1_2026 + 333 * INTERVAL, 200)
    other = LoadModel(TWIN, seed=999)
    other.restore_state(saved)
    assert _series(other, JAN_1_2026 + 333 * INTERVAL, 200) == expected


def test_energy_bounded_by_peak_power_and_non_negative():
    params = {"annual_kwh": 20000, "peak_w": 2000, "phases": 1, "noise_permille": 900}
    model = LoadModel(params, seed=5)
    values = [p for p, _ in _series(model, JAN_1_2026, 48 * 28)]
    assert min(values) >= 0
    assert max(values) <= 1000                         # 2 kW for half an hour
    assert values.count(1000) > 0                      # the cap is reached and holds


def test_daily_shape_has_night_base_and_two_peaks():
    model = LoadModel(SINGLE, seed=9)
    slot_sum = [0] * 48
    start = JAN_1_2026 + 4 * DAY                       # Monday 5 January
    for day in range(0, 28):
        if weekday(start + day * DAY) >= 5:
            for i in range(48):
                model.next_interval(start + day * DAY + i * INTERVAL)
            continue
        for i in range(48):
            slot_sum[i] += model.next_interval(start + day * DAY + i * INTERVAL)[0]
    night = sum(slot_sum[4:8])                         # 02:00-04:00
    morning = sum(slot_sum[14:18])                     # 07:00-09:00
    midday = sum(slot_sum[20:24])                      # 10:00-12:00
    evening = sum(slot_sum[35:39])                     # 17:30-19:30
    assert morning > night * 2
    assert evening > night * 3
    assert evening > morning > midday


def test_weekend_mornings_are_later_than_weekdays():
    model = LoadModel(SINGLE, seed=4)
    weekday_sum = [0] * 48
    weekend_sum = [0] * 48
    for i in range(48 * 56):
        start = JAN_1_2026 + i * INTERVAL
        target = weekend_sum if weekday(start) >= 5 else weekday_sum
        target[i % 48] += model.next_interval(start)[0]
    # per day: 16 weekend days and 40 weekdays in 8 weeks from a Thursday
    assert weekend_sum[18] * 40 > weekday_sum[18] * 16 * 1.2     # 09:00
    assert weekday_sum[14] * 16 > weekend_sum[14] * 40 * 1.2     # 07:00


def test_annual_energy_close_to_profile_and_winter_above_summer():
    model = LoadModel(SINGLE, seed=21)
    total = 0
    january = 0
    july = 0
    for i in range(365 * 48):
        start = JAN_1_2026 + i * INTERVAL
        wh = model.next_interval(start)[0]
        total += wh
        month = month_index(start)
        if month == 0:
            january += wh
        elif month == 6:
            july += wh
    assert 3100 * 1000 * 95 // 100 <= total <= 3100 * 1000 * 105 // 100
    assert january > july * 13 // 10


def test_twin_element_charges_only_in_its_window_more_in_winter():
    model = LoadModel(TWIN, seed=2)
    per_interval = 3400 * INTERVAL // 3600
    winter_nights = 0
    summer_nights = 0
    for start_day, bucket in ((JAN_1_2026, "w"), (JUL_1_2026, "s")):
        model.reset()
        for i in range(48 * 14):
            start = start_day + i * INTERVAL
            _, wh = model.next_interval(start)
            assert wh in (0, per_interval)
            if wh:
                assert 1800 <= start % DAY < 27000
                if bucket == "w":
                    winter_nights += 1
                else:
                    summer_nights += 1
    assert winter_nights > summer_nights * 3
    assert summer_nights > 0


def test_single_element_has_no_secondary_energy():
    assert all(s == 0 for _, s in _series(LoadModel(SINGLE, seed=1), JAN_1_2026, 96))


def test_voltage_stays_near_nominal():
    model = LoadModel(SINGLE, seed=6)
    readings = [model.voltage_dv(JAN_1_2026 + i * 37, 1 + i % 3) for i in range(2000)]
    assert min(readings) >= 2300 - 45
    assert max(readings) <= 2300 + 45
    assert len(set(readings)) > 20


def test_power_follows_interval_energy():
    model = LoadModel(SINGLE, seed=6)
    for now in range(JAN_1_2026, JAN_1_2026 + 100):
        assert 950 * 95 // 100 <= model.power_w(475, now) <= 950 * 105 // 100
    assert model.power_w(0, JAN_1_2026) == 0


def test_bad_parameters_are_refused():
    assert _raises(lambda: LoadModel({"annual_kwh": 0, "peak_w": 1000}), ValueError)
    assert _raises(lambda: LoadModel({"annual_kwh": 3000, "peak_w": 1000, "phases": 2}),
                   ValueError)
    assert _raises(lambda: LoadModel({"annual_kwh": 3000.5, "peak_w": 1000}), ValueError)
    bad_window = {"annual_kwh": 3000, "peak_w": 1000,
                  "secondary": {"rated_w": 3000, "window_start": 1000}}
    assert _raises(lambda: LoadModel(bad_window), ValueError)
    model = LoadModel(SINGLE)
    assert _raises(lambda: model.restore_state([0, 0, 0]), ValueError)
    assert _raises(lambda: model.restore_state({"prng": 1}), ValueError)
