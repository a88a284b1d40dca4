"""Shared fixtures. Area fixtures live in tests/<area>/conftest.py and tests/fakes/."""

from __future__ import annotations

import pytest

from bot.config import Settings

pytest_plugins = ["tests.databases", "tests.fakes.dashscope"]


@pytest.fixture(autouse=True)
def hermetic_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's ``.env`` or a product variable of their shell.

    Every variable the bot reads is removed for the test, and in-process settings ignore
    ``.env`` files (tests/test_config.py turns them back on inside a temporary folder, to
    test them). Child processes get their environment from ``tests.process.clean_env``.
    """
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(Settings.model_config, "env_file", None)
