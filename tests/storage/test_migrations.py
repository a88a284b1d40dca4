"""Migrations upgrade, downgrade to base and match the models, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from bot.storage import migrations
from bot.storage.database import Database
from bot.storage.tables import Base

TABLES = {
    "chats",
    "chat_settings",
    "conversations",
    "turns",
    "audio_clips",
    "clip_transcripts",
    "processed_events",
    "usage_ledger",
    "queued_jobs",
    "console_keys",
    "console_links",
    "settings_audit",
}


def _ours(name: str | None) -> bool:
    """procrastinate's objects (migration 0003, PostgreSQL) are not in our models."""
    return not (name or "").startswith("procrastinate_")


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_name": lambda name, type_, parents: type_ != "table" or _ours(name),
        },
    )
    return list(compare_metadata(ctx, Base.metadata))


def _tables(conn: Connection) -> set[str]:
    return {n for n in inspect(conn).get_table_names() if _ours(n)} - {"alembic_version"}


async def test_upgrade_matches_models_and_downgrades_to_base(db_url: str) -> None:
    db = Database(url=db_url)
    try:
        await migrations.upgrade(db)
        assert await migrations.current_revision(db) is not None
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == TABLES
            # Alembic's autogenerate comparison finds no drift between models and schema.
            assert await conn.run_sync(_diff) == []

        await migrations.downgrade(db, "base")
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == set()
        assert await migrations.current_revision(db) is None

        # And up again: downgrade left nothing behind that breaks a fresh upgrade.
        await migrations.upgrade(db)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == TABLES
    finally:
        await db.dispose()
