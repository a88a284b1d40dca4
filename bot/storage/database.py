"""Async engine and session factory for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bot.config import data_dir_for


class Database:
    """One engine and session factory for the process."""

    def __init__(self, *, url: str, echo: bool = False, concurrency: int | None = None) -> None:
        folder = data_dir_for(url)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            # A writer waits for the lock instead of failing with "database is locked".
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size_for(concurrency))
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


#: Connections kept open however many turns run at once; the rest are overflow.
POOL_BASE = 5
#: The most connections opened beyond POOL_BASE, however many turns run at once.
MAX_OVERFLOW = 25
#: Seconds a session waits for a free connection before ``sqlalchemy.exc.TimeoutError``.
POOL_TIMEOUT = 30.0


def pool_size_for(concurrency: int | None) -> dict[str, Any]:
    """SQLAlchemy pool arguments for ``concurrency`` turns at once (``WORKER_CONCURRENCY``).

    Turns hold a connection only inside short transactions, so far fewer connections than
    turns are busy at any instant: 5 kept, plus one overflow connection per turn up to
    :data:`MAX_OVERFLOW` (at the default of 50 turns: 5 + 25 here, 5 for the queue and 1
    for the polling leader, so three replicas still fit PostgreSQL's default
    max_connections of 100). A session that still waits past ``pool_timeout`` raises, and
    the claim of an update is then retried (bot.queue.claims), never dropped.
    ``None`` keeps 5 + 15.
    """
    overflow = 15 if concurrency is None else max(15, min(concurrency, MAX_OVERFLOW))
    return {"pool_size": POOL_BASE, "max_overflow": overflow, "pool_timeout": POOL_TIMEOUT}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite,
    # and without them ON DELETE CASCADE (used by /forget) does nothing.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
