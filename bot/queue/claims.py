"""Claiming an event's ids and enqueueing its job: one SQL transaction, both backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from bot.retrying import retrying
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

    A claim that times out waiting for a pool connection is tried again (nothing was
    written: the transaction never began), for up to :data:`CLAIM_BUDGET` seconds, so a
    burst of updates larger than the pool is answered late rather than dropped.
    """
    async for attempt in retrying(retry_if=_pool_timeout, budget=CLAIM_BUDGET, base=0.2):
        with attempt:
            return await _claim_once(database, platform=platform, keys=keys, enqueue=enqueue)
    raise AssertionError("unreachable: retrying re-raises the last error")  # pragma: no cover


#: Seconds of retrying a claim that keeps timing out on the connection pool.
CLAIM_BUDGET = 600.0


def _pool_timeout(exc: BaseException) -> bool:
    return isinstance(exc, PoolTimeout)


async def _claim_once(
    database: Database, *, platform: str, keys: Sequence[str], enqueue: Enqueue
) -> int | None:
    try:
        async with database.sessions() as session, session.begin():
            for key in keys:
                if key and not await repo.claim_event(session, platform=platform, event_id=key):
                    raise _Duplicate
            return await enqueue(session)
    except _Duplicate:
        return None
