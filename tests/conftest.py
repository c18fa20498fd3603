"""Root test configuration: shared fixtures live in tests/fixtures/ and are loaded here."""

pytest_plugins = ["tests.fixtures.sandbox", "tests.fixtures.core"]
