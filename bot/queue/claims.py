"""Claiming an event's ids and enqueueing its job: one SQL transaction, both backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage import repositories as repo
from bot.storage.database import Database

#: Writes the job inside the claim's transaction; returns the job's id.
Enqueue = Callable[[AsyncSession], Awaitable[int]]


class _Duplicate(Exception):
    """Rolls the claim back: one of the keys was taken before."""


async def claim_and_enqueue(
    database: Database, *, platform: str, keys: Sequence[str], enqueue: Enqueue
) -> int | None:
    """The job's id, or ``None`` if any key was claimed before (then nothing is stored).

    Keys are claimed in the order given and the first one already taken rolls everything
    back: two deliveries of one message racing each other cannot take one key each and
    both lose, and a duplicate never enqueues a job. On PostgreSQL a second transaction
    inserting the same key waits for the first to commit, then sees the conflict.
    """
    try:
        async with database.sessions() as session, session.begin():
            for key in keys:
                if key and not await repo.claim_event(session, platform=platform, event_id=key):
                    raise _Duplicate
            return await enqueue(session)
    except _Duplicate:
        return None
