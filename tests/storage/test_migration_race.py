"""Replicas started together on one PostgreSQL database migrate it once, without errors."""

from __future__ import annotations

import asyncio

from bot.storage import migrations
from bot.storage.database import Database
from tests.databases import _pg_url, _PgClones


async def test_three_replicas_migrating_at_once_all_end_at_head(
    pg_empty: _PgClones,
) -> None:
    name = pg_empty.take_now()
    url = _pg_url(name)
    replicas = [Database(url=url) for _ in range(3)]
    try:
        await asyncio.gather(*(migrations.upgrade(db) for db in replicas))
        revisions = {await migrations.current_revision(db) for db in replicas}
        assert len(revisions) == 1 and None not in revisions
    finally:
        for db in replicas:
            await db.dispose()
        pg_empty.drop(name)
