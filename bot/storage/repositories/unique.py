"""Insert-or-read: the one way a row guarded by a unique index is created."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.tables import Base

R = TypeVar("R", bound=Base)


async def insert_or_read(
    session: AsyncSession, row: R, read: Callable[[], Awaitable[R | None]]
) -> R:
    """Insert ``row``, or return what ``read`` finds when a unique index says another
    transaction (a second process or replica) stored it first.

    The insert runs in a savepoint, so the caller's transaction carries on after a lost
    race. An ``IntegrityError`` that is no such race (``read`` finds nothing, e.g. a foreign
    key whose row was deleted meanwhile) is re-raised.
    """
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
        return row
    except IntegrityError:
        found = await read()
        if found is None:
            raise
        return found
