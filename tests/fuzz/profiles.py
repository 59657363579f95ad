"""How hard the property-based tests try, by profile (``FINOPS_FUZZ_PROFILE``).

``bounded`` (the default, what ``make test`` runs): each target's own example count, derandomized
so a CI failure reproduces with the same examples, no example database. ``thorough`` (``make
fuzz``, for a scheduled run): twenty times the examples, randomized, and Hypothesis's example
database under ``.hypothesis/`` so a failure it finds is replayed first next time. Every fuzz
target runs in both; only the budget differs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

PROFILES = ("bounded", "thorough")
PROFILE = os.environ.get("FINOPS_FUZZ_PROFILE", "bounded")
if PROFILE not in PROFILES:
    raise RuntimeError(f"FINOPS_FUZZ_PROFILE={PROFILE!r}: expected one of {', '.join(PROFILES)}")
THOROUGH_FACTOR = 20


SLOW_FIXTURES = (HealthCheck.function_scoped_fixture, HealthCheck.too_slow)


def fuzz(max_examples: int, *, suppress=SLOW_FIXTURES) -> settings:
    """Settings for a target that tries ``max_examples`` examples in the bounded profile."""
    thorough = PROFILE == "thorough"
    return settings(
        max_examples=max_examples * (THOROUGH_FACTOR if thorough else 1),
        deadline=None,
        derandomize=not thorough,
        database=DirectoryBasedExampleDatabase(".hypothesis/examples") if thorough else None,
        suppress_health_check=list(suppress),
    )
