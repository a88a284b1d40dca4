"""Run the Alembic migrations of ``migrations/`` programmatically (``voicebot migrate``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from bot.errors import ConfigError
from bot.storage.database import Database


def migrations_dir() -> Path:
    """The Alembic ``migrations/`` folder.

    VOICEBOT_MIGRATIONS if set; else the checkout's (beside the ``bot`` package, for
    editable installs); else the copy a regular install puts in ``<prefix>/share/voicebot``.
    """
    override = os.environ.get("VOICEBOT_MIGRATIONS")
    candidates = (
        [Path(override)]
        if override
        else [
            Path(__file__).resolve().parents[2] / "migrations",
            Path(sys.prefix) / "share" / "voicebot" / "migrations",
        ]
    )
    for folder in candidates:
        if (folder / "env.py").is_file():
            return folder
    raise ConfigError(
        "VOICEBOT_MIGRATIONS", f"no Alembic migrations at {candidates[0]} (set it to the folder)"
    )


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    # ConfigParser interpolation would choke on a "%" in a password.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(db: Database, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` on the process's own engine."""
    await _run(db, command.upgrade, revision)


async def downgrade(db: Database, revision: str = "base") -> None:
    await _run(db, command.downgrade, revision)


async def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with db.engine.connect() as conn:

        def _rev(sync_conn: Connection) -> str | None:
            return MigrationContext.configure(sync_conn).get_current_revision()

        return await conn.run_sync(_rev)


async def _run(db: Database, fn: Any, revision: str) -> None:
    cfg = alembic_config(db.url)
    async with db.engine.begin() as conn:

        def _go(sync_conn: Connection) -> None:
            # env.py picks this connection up instead of opening its own.
            cfg.attributes["connection"] = sync_conn
            fn(cfg, revision)

        await conn.run_sync(_go)
