"""Turns and their audio clips; recordings reused by source key; crash recovery."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from bot.storage.tables import (
    AudioClip,
    Conversation,
    Turn,
    TurnRole,
    TurnStatus,
    utcnow,
)

# --- turns and clips ----------------------------------------------------------------------


async def conversation_turns(session: AsyncSession, conversation_id: int) -> list[Turn]:
    """Every turn of a conversation in order, clips' metadata loaded (not their bytes)."""
    rows = await session.execute(
        select(Turn).where(Turn.conversation_id == conversation_id).order_by(Turn.seq)
    )
    return list(rows.scalars().all())


async def next_seq(session: AsyncSession, conversation_id: int) -> int:
    current = await session.scalar(
        select(func.max(Turn.seq)).where(Turn.conversation_id == conversation_id)
    )
    return int(current or 0) + 1


async def clip_data(session: AsyncSession, clip_ids: Sequence[int]) -> dict[int, tuple[bytes, str]]:
    """Bytes and format of the given clips (loaded only for the clips a request carries)."""
    if not clip_ids:
        return {}
    rows = await session.execute(
        select(AudioClip.id, AudioClip.data, AudioClip.format).where(
            AudioClip.id.in_(list(clip_ids))
        )
    )
    return {int(row[0]): (bytes(row[1]), str(row[2])) for row in rows.all()}


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredRecording:
    """The clips an earlier user turn stored for one recording, with its whole length."""

    turn_id: int
    clips: list[AudioClip]
    total_seconds: float | None


async def find_recording(
    session: AsyncSession, *, chat_id: int, source_key: str
) -> StoredRecording | None:
    """The latest stored conversion of ``source_key`` in this chat, bytes included."""
    turn_id = await session.scalar(
        select(AudioClip.turn_id)
        .join(Turn, Turn.id == AudioClip.turn_id)
        .join(Conversation, Conversation.id == Turn.conversation_id)
        .where(AudioClip.source_key == source_key, Conversation.chat_id == chat_id)
        .order_by(AudioClip.turn_id.desc())
        .limit(1)
    )
    if turn_id is None:
        return None
    clips = (
        (
            await session.execute(
                select(AudioClip)
                .where(AudioClip.turn_id == turn_id, AudioClip.source_key == source_key)
                .order_by(AudioClip.position)
                .options(undefer(AudioClip.data))
            )
        )
        .scalars()
        .all()
    )
    turn = await session.get(Turn, turn_id)
    total = turn.audio_seconds_total if turn is not None else None
    others = await session.scalar(
        select(func.count(AudioClip.id)).where(
            AudioClip.turn_id == turn_id,
            or_(AudioClip.source_key != source_key, AudioClip.source_key.is_(None)),
        )
    )
    if others:
        # The turn held several recordings: its total is theirs together, not this one's.
        total = None
    return StoredRecording(turn_id=int(turn_id), clips=list(clips), total_seconds=total)


# --- delivery -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingReply:
    """A finished reply the platform never confirmed (``undelivered``)."""

    turn_id: int
    text: str
    source_message_id: str | None
    message_ids: tuple[str, ...] = ()  # messages that show part of it


async def undelivered_replies(
    session: AsyncSession, *, chat_id: int, thread_key: str, limit: int = 5
) -> list[PendingReply]:
    """The oldest undelivered replies of a chat's thread, across its conversations."""
    rows = await session.execute(
        select(Turn.id, Turn.text, Turn.source_message_id, Turn.reply_message_ids)
        .join(Conversation, Conversation.id == Turn.conversation_id)
        .where(
            Conversation.chat_id == chat_id,
            Conversation.thread_key == thread_key,
            Turn.role == TurnRole.ASSISTANT.value,
            Turn.status == TurnStatus.UNDELIVERED.value,
        )
        .order_by(Turn.id)
        .limit(limit)
    )
    return [
        PendingReply(
            turn_id=int(r[0]),
            text=str(r[1] or ""),
            source_message_id=r[2],
            message_ids=tuple(str(i) for i in (r[3] or ())),
        )
        for r in rows.all()
    ]


async def set_delivery(
    session: AsyncSession,
    *,
    turn_id: int,
    status: TurnStatus,
    message_ids: Sequence[str] | None = None,
    error_code: str | None = None,
) -> None:
    """Record how a reply's delivery ended (``complete`` with its messages, or not)."""
    values: dict[str, object] = {"status": status.value}
    if message_ids is not None:
        values["reply_message_ids"] = list(message_ids)
    if error_code is not None:
        values["error_code"] = error_code[:64]
    await session.execute(update(Turn).where(Turn.id == turn_id).values(**values))


# --- recovery -----------------------------------------------------------------------------


async def fail_interrupted_turns(session: AsyncSession, *, before: dt.datetime) -> int:
    """Mark replies created before ``before`` that were left ``pending``/``streaming`` as
    ``failed`` ("interrupted"), and those left ``delivering`` as ``undelivered``.

    Only old ones: a younger reply may be running on another replica, or its job will be
    run again by the turn queue. Their text stays as stored (it may be partial).
    """
    result = await session.execute(
        update(Turn)
        .where(
            Turn.role == TurnRole.ASSISTANT.value,
            Turn.status.in_([TurnStatus.PENDING.value, TurnStatus.STREAMING.value]),
            Turn.created_at < before,
        )
        .values(status=TurnStatus.FAILED.value, error_code="interrupted", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    # A reply whose text was complete but whose delivery a crash cut short is kept, and
    # delivered at the chat's next message.
    result = await session.execute(
        update(Turn)
        .where(
            Turn.role == TurnRole.ASSISTANT.value,
            Turn.status == TurnStatus.DELIVERING.value,
            Turn.created_at < before,
        )
        .values(status=TurnStatus.UNDELIVERED.value, error_code="interrupted")
        .execution_options(synchronize_session=False)
    )
    return count + int(getattr(result, "rowcount", 0) or 0)
