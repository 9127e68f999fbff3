"""Hypothesis profiles for the whole suite: `ci` (default, derandomized, no example
database: CI is deterministic) and `nightly` (random, database kept). Pick one with
SMETS_FUZZ_PROFILE; tests/fuzz/budget.py scales the fuzz budgets with it."""

from hypothesis import settings

from tests.fuzz.budget import PROFILE

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("nightly", derandomize=False, print_blob=True)
settings.load_profile(PROFILE)
