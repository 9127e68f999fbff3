"""How much fuzzing a run does: the CI budget, or the nightly one.

`SMETS_FUZZ_PROFILE` picks it (default `ci`); `tests/conftest.py` loads the hypothesis
profile of the same name, so `SMETS_FUZZ_PROFILE=nightly python -m pytest tests/fuzz`
is the long run. docs/FUZZING.md documents both.

- ci: derandomized (the same cases every run, no example database), 10,000 generated
  cases per layer, a bounded number of stateful runs.
- nightly: random seeds, the example database kept in .hypothesis/, 20x the cases.
"""

import os
from collections import Counter

from hypothesis import HealthCheck, given, settings

PROFILE = os.environ.get("SMETS_FUZZ_PROFILE", "ci")
if PROFILE not in ("ci", "nightly"):
    raise RuntimeError("SMETS_FUZZ_PROFILE=%r: expected ci or nightly" % PROFILE)

CASES_PER_LAYER = {"ci": 10_000, "nightly": 200_000}[PROFILE]
# a quick local run while writing a test (never set in CI): SMETS_FUZZ_CASES=200
CASES_PER_LAYER = int(os.environ.get("SMETS_FUZZ_CASES", CASES_PER_LAYER))
STATEFUL_RUNS = {"ci": 60, "nightly": 2_000}[PROFILE]
STATEFUL_STEPS = {"ci": 40, "nightly": 120}[PROFILE]

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def layer_settings(cases=None):
    """Settings for one layer's fuzz test: the profile's case budget, no deadline
    (a slow case is not a failure; a hang is caught by the DUT fuzzer instead)."""
    return settings(max_examples=cases or CASES_PER_LAYER, deadline=None,
                    suppress_health_check=_QUIET)


def stateful_settings():
    return settings(max_examples=STATEFUL_RUNS, stateful_step_count=STATEFUL_STEPS,
                    deadline=None, suppress_health_check=_QUIET)


def run_cases(layer, strategy, check, cases=None):
    """Run `check(case)` on `cases` generated cases (default: the profile's budget) and
    prove they ran: returns the count, fails if hypothesis ran fewer than asked.

    Hypothesis counts a case only when it completes (a filtered draw does not), so the
    count is of cases the layer really received."""
    budget = cases or CASES_PER_LAYER
    ran = Counter()

    @layer_settings(budget)
    @given(strategy)
    def case(value):
        check(value)
        ran[layer] += 1

    case()
    assert ran[layer] >= budget, "%s: only %d of %d cases ran" % (layer, ran[layer], budget)
    print("%s: %d cases" % (layer, ran[layer]))
    return ran[layer]
