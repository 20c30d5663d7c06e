"""Test harness: real broker and real PostgreSQL for every test that needs them.

Fixture modules are registered here; each part's tests add theirs under tests/fixtures/.
"""

pytest_plugins = [
    "tests.fixtures.env",
    "tests.fixtures.database",
    "tests.fixtures.kafka",
    "tests.fixtures.model",
    "tests.fixtures.stream",
    "tests.fixtures.api",
    "tests.fixtures.scraper",
]
