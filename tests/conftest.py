"""Root test configuration: shared fixtures live in tests/fixtures/ and are loaded here."""

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.fixtures.sandbox", "tests.fixtures.core"]

# Property-based tests of parsers and mappers: enough examples to find the odd value, bounded so
# `make test` stays fast on CI (HYPOTHESIS_PROFILE=thorough for a longer local hunt).
settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("thorough", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
