"""The alembic CLI with the root alembic.ini works on the database DATABASE_URL names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.config import Settings

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def _alembic(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_database_url_wins_over_alembic_ini(db_url: str, tmp_path: Path) -> None:
    up = _alembic("upgrade", "head", cwd=tmp_path, DATABASE_URL=db_url)
    assert up.returncode == 0, up.stderr
    current = _alembic("current", cwd=tmp_path, DATABASE_URL=db_url)
    assert current.returncode == 0, current.stderr
    assert "(head)" in current.stdout
    # alembic.ini's own URL (./data/bot.db) was never opened.
    assert not (tmp_path / "data").exists()


def test_database_url_from_dotenv_as_the_bot_reads_it(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.db"
    # A half-filled .env (Slack without its app token) would stop `voicebot run`; the
    # migrations need only DATABASE_URL from it.
    (tmp_path / ".env").write_text(
        f"DATABASE_URL=sqlite+aiosqlite:///{target}\nSLACK_BOT_TOKEN=xoxb-not-yet\n"
    )
    up = _alembic("upgrade", "head", cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    assert target.is_file()
    assert not (tmp_path / "data").exists()
