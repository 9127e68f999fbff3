"""NewestKept: the lab's bounded memories keep their newest entries, the oldest going first."""

from emulator.newest import NewestKept


def test_keeps_the_newest_and_setting_a_key_again_makes_it_newest():
    kept = NewestKept(3)
    for key in "abcd":
        kept[key] = key.upper()
    assert list(kept.items()) == [("b", "B"), ("c", "C"), ("d", "D")]
    kept["b"] = "b2"                          # set again: now the newest
    kept["e"] = "E"
    assert list(kept) == ["d", "b", "e"] and kept["b"] == "b2"
    del kept["d"]
    assert list(kept) == ["b", "e"] and kept.get("d") is None


def test_a_long_run_stays_bounded():
    kept = NewestKept(64)
    for n in range(10_000):
        kept[n] = n
    assert len(kept) == 64 and list(kept) == list(range(10_000 - 64, 10_000))
