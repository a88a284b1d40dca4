"""Processed platform events, for exactly-once handling across restarts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.tables import (
    ProcessedEvent,
)

# --- processed events ---------------------------------------------------------------------


async def claim_event(session: AsyncSession, *, platform: str, event_id: str) -> bool:
    """Record an event id; ``False`` if it was already recorded (by anyone, ever)."""
    try:
        async with session.begin_nested():
            session.add(ProcessedEvent(platform=platform, event_id=event_id[:128]))
            await session.flush()
    except IntegrityError:
        return False
    return True


async def prune_events(session: AsyncSession, *, before: dt.datetime) -> int:
    """Forget processed-event ids recorded before ``before``; returns how many."""
    result = await session.execute(
        delete(ProcessedEvent)
        .where(ProcessedEvent.processed_at < before)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
