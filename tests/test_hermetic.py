"""The suite itself: no test sees the developer's .env or product variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.config import Settings


def test_a_developers_env_file_and_shell_do_not_leak_into_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql+asyncpg://dev@prod/db\n")
    monkeypatch.chdir(tmp_path)
    assert Settings.load().DATABASE_URL == "sqlite+aiosqlite:///./data/bot.db"
    assert not any(name in os.environ for name in Settings.model_fields)
