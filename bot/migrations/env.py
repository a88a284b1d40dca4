"""Alembic environment: async engines, or a connection handed in by bot.storage.migrations.

The database is, in this order: the connection or URL the bot's runner hands in
(``voicebot migrate``, ``AUTO_MIGRATE``); else ``DATABASE_URL`` read the way the bot reads
it (the environment, then ``.env`` in the working directory); else ``sqlalchemy.url`` from
``alembic.ini`` (the alembic CLI's fallback, the default SQLite file).
"""

from __future__ import annotations

import asyncio

from alembic import context
from pydantic_settings import BaseSettings
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import Settings
from bot.storage.tables import Base

config = context.config
target_metadata = Base.metadata


class _DatabaseUrl(BaseSettings):
    """DATABASE_URL alone, with Settings' sources and rules (environment, then ``.env``).

    Not ``Settings.load()``: its cross-checks (platform tokens, models) would make the
    alembic CLI fail on a half-filled ``.env`` that has nothing to do with the database.
    """

    model_config = Settings.model_config

    DATABASE_URL: str | None = None


def _url() -> str:
    given = config.attributes.get("url")
    if given:
        return str(given)
    from_env = _DatabaseUrl().DATABASE_URL
    if from_env:
        return from_env
    return config.get_main_option("sqlalchemy.url") or ""


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave procrastinate's tables (migration 0003, not in the models) out of autogenerate."""
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=_include_name,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as conn:
        await conn.run_sync(_configure)
        await conn.commit()
    await engine.dispose()


def run() -> None:
    if context.is_offline_mode():
        context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
    else:
        asyncio.run(_run_async(_url()))


run()
