"""Shared fixtures. Area fixtures live in tests/<area>/conftest.py and tests/fakes/."""

pytest_plugins = ["tests.databases", "tests.fakes.dashscope"]
