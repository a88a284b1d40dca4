"""Run the Alembic migrations in ``bot/migrations/`` programmatically (``voicebot migrate``)."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.storage.database import Database

# Package resource form: Alembic finds the folder inside the installed ``bot`` package, so
# this works from any working directory, editable install or not.
SCRIPT_LOCATION = "bot:migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` without an ``alembic.ini``."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    # Read by env.py before DATABASE_URL or alembic.ini's sqlalchemy.url (offline mode,
    # or if no connection is handed in). Kept out of the ConfigParser, whose interpolation
    # would choke on a "%" in a percent-encoded password.
    cfg.attributes["url"] = url
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


# Replicas starting together on one PostgreSQL take turns: the first migrates, the others
# wait for it and then find nothing to do (a transaction-scoped advisory lock).
MIGRATION_LOCK = 0x766F_6963_652D_6D69  # "voice-mi"; other advisory locks use other keys


async def _run(db: Database, fn: Any, revision: str) -> None:
    cfg = alembic_config(db.url)
    async with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})

        def _go(sync_conn: Connection) -> None:
            # env.py picks this connection up instead of opening its own.
            cfg.attributes["connection"] = sync_conn
            fn(cfg, revision)

        await conn.run_sync(_go)
