"""Shared pytest configuration: fixtures live in tests/fixtures, one module per part."""

pytest_plugins = [
    "tests.fixtures.mqtt",
    "tests.fixtures.pcsc",
    "tests.fixtures.modem",
    "tests.fixtures.registry",
    "tests.fixtures.cards",
    "tests.fixtures.eim",
]
