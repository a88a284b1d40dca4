"""The voicebot console script: migrate on both databases, run's start-up refusals."""

from __future__ import annotations

import os
import subprocess
import sysconfig
from pathlib import Path

import pytest
from sqlalchemy import inspect

from bot.config import Settings
from bot.storage.database import Database
from tests import zygote


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.update(extra)
    return env


def _voicebot(
    args: list[str], *, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    # Forked warm (tests/zygote.py); the console-script tests below start it cold.
    return zygote.run(args, env=env, cwd=cwd)


async def test_migrate_creates_the_schema(db_url: str, tmp_path: Path) -> None:
    result = _voicebot(["migrate"], env=_env(tmp_path, DATABASE_URL=db_url), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Database is at revision" in result.stdout

    db = Database(url=db_url)
    try:
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"chats", "turns", "audio_clips", "processed_events", "alembic_version"} <= tables
    finally:
        await db.dispose()

    # Running it again is a no-op, not an error.
    again = _voicebot(["migrate"], env=_env(tmp_path, DATABASE_URL=db_url), cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_default_database_is_created_under_data(tmp_path: Path) -> None:
    result = _voicebot(["migrate"], env=_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "bot.db").is_file()


def test_migrate_reports_an_unreachable_database(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    result = _voicebot(["migrate"], env=_env(tmp_path, DATABASE_URL=url), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("voicebot: cannot reach the database")


def test_run_without_platform_credentials_exits_2_with_one_line(tmp_path: Path) -> None:
    # With the browser playground off (its default would serve it on the loopback host).
    env = _env(tmp_path, DASHSCOPE_API_KEY="sk-x", WEB_PLAYGROUND="false")
    result = _voicebot(["run"], env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "TELEGRAM_BOT_TOKEN" in lines[0] and "SLACK_BOT_TOKEN" in lines[0]


def test_run_without_api_key_exits_2(tmp_path: Path) -> None:
    result = _voicebot(["run"], env=_env(tmp_path, TELEGRAM_BOT_TOKEN="1:abc"), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DASHSCOPE_API_KEY" in lines[0]


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_console_script_basics(tmp_path: Path, argv: list[str]) -> None:
    # The console script installed with this interpreter, not whichever one PATH finds.
    script = Path(sysconfig.get_path("scripts")) / "voicebot"
    assert script.is_file(), f"no console script at {script} (pip install -e .)"
    result = subprocess.run(
        [str(script), *argv],
        env=_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "voicebot" in result.stdout
