"""Data access for the conversation engine: small functions over an ``AsyncSession``.

The engine owns transactions (it decides what is committed when); these functions only
read and write rows. Everything works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from bot.storage.tables import (
    AudioClip,
    Chat,
    ChatSettings,
    Conversation,
    ProcessedEvent,
    Turn,
    TurnRole,
    TurnStatus,
    UsageEntry,
    utcnow,
)

# --- chats and settings ----------------------------------------------------------------


async def find_chat(session: AsyncSession, *, platform: str, external_id: str) -> Chat | None:
    """The chat row, or ``None`` if the bot never stored anything for it."""
    return (
        await session.execute(
            select(Chat).where(Chat.platform == platform, Chat.external_id == external_id)
        )
    ).scalar_one_or_none()


async def get_or_create_chat(
    session: AsyncSession, *, platform: str, external_id: str, kind: str, title: str | None
) -> Chat:
    """The chat row, created on first use (safe against a concurrent first use)."""
    chat = await find_chat(session, platform=platform, external_id=external_id)
    if chat is not None:
        if title and chat.title != title:
            chat.title = title[:255]
        return chat
    try:
        # A savepoint: losing the insert race must not roll back the caller's work.
        async with session.begin_nested():
            chat = Chat(
                platform=platform, external_id=external_id, kind=kind, title=(title or None)
            )
            session.add(chat)
            await session.flush()
        return chat
    except IntegrityError:
        found = await find_chat(session, platform=platform, external_id=external_id)
        assert found is not None
        return found


async def get_chat_settings(session: AsyncSession, chat_id: int) -> ChatSettings | None:
    return await session.get(ChatSettings, chat_id)


async def get_or_create_chat_settings(session: AsyncSession, chat_id: int) -> ChatSettings:
    row = await session.get(ChatSettings, chat_id)
    if row is None:
        row = ChatSettings(chat_id=chat_id)
        session.add(row)
        await session.flush()
        await session.refresh(row)
    return row


# --- conversations ---------------------------------------------------------------------


async def find_open_conversation(
    session: AsyncSession, *, chat_id: int, thread_key: str
) -> Conversation | None:
    return (
        await session.execute(
            select(Conversation).where(
                Conversation.chat_id == chat_id,
                Conversation.thread_key == thread_key,
                Conversation.closed_at.is_(None),
            )
        )
    ).scalar_one_or_none()


async def open_conversation(
    session: AsyncSession, *, chat_id: int, thread_key: str
) -> Conversation:
    """The open conversation of a chat and thread, started if there is none.

    The partial unique index allows one open conversation per chat and thread; a second
    process losing the race reads the winner's row.
    """
    found = await find_open_conversation(session, chat_id=chat_id, thread_key=thread_key)
    if found is not None:
        return found
    try:
        async with session.begin_nested():
            conv = Conversation(chat_id=chat_id, thread_key=thread_key)
            session.add(conv)
            await session.flush()
        return conv
    except IntegrityError:
        again = await find_open_conversation(session, chat_id=chat_id, thread_key=thread_key)
        assert again is not None
        return again


async def close_open_conversations(session: AsyncSession, *, chat_id: int, thread_key: str) -> int:
    """Close the open conversation of a chat and thread (``/new``); returns how many."""
    result = await session.execute(
        update(Conversation)
        .where(
            Conversation.chat_id == chat_id,
            Conversation.thread_key == thread_key,
            Conversation.closed_at.is_(None),
        )
        .values(closed_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def get_conversation(
    session: AsyncSession, *, conversation_id: int, chat_id: int
) -> Conversation | None:
    """A conversation by id, only if it belongs to ``chat_id``."""
    conv = await session.get(Conversation, conversation_id)
    if conv is None or conv.chat_id != chat_id:
        return None
    return conv


# --- turns and clips -------------------------------------------------------------------


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


# --- recovery ------------------------------------------------------------------------


async def fail_interrupted_turns(session: AsyncSession) -> int:
    """Mark replies a crash left ``pending``/``streaming`` as ``failed`` ("interrupted").

    Called once at start-up, before any turn runs: one process serves a bot token, so no
    reply can legitimately be in flight then. Their text stays as stored (it may be partial).
    """
    result = await session.execute(
        update(Turn)
        .where(
            Turn.role == TurnRole.ASSISTANT.value,
            Turn.status.in_([TurnStatus.PENDING.value, TurnStatus.STREAMING.value]),
        )
        .values(status=TurnStatus.FAILED.value, error_code="interrupted", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- processed events ------------------------------------------------------------------


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


# --- usage -----------------------------------------------------------------------------


async def add_usage(
    session: AsyncSession,
    *,
    chat_id: int,
    turn_id: int | None,
    user_external_id: str | None,
    model: str,
    audio_seconds: float,
    input_tokens: int,
    output_tokens: int,
    audio_tokens: int,
    day: dt.date | None = None,
) -> None:
    session.add(
        UsageEntry(
            chat_id=chat_id,
            turn_id=turn_id,
            user_external_id=user_external_id,
            model=model,
            day=day or utcnow().date(),
            audio_seconds=audio_seconds,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            audio_tokens=audio_tokens,
        )
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRow:
    day: dt.date
    model: str
    turns: int
    audio_seconds: float
    input_tokens: int
    output_tokens: int
    audio_tokens: int


async def usage_rows(session: AsyncSession, *, chat_id: int) -> list[UsageRow]:
    """The chat's usage, summed by day and model, newest day first."""
    rows = await session.execute(
        select(
            UsageEntry.day,
            UsageEntry.model,
            func.count(UsageEntry.id),
            func.coalesce(func.sum(UsageEntry.audio_seconds), 0.0),
            func.coalesce(func.sum(UsageEntry.input_tokens), 0),
            func.coalesce(func.sum(UsageEntry.output_tokens), 0),
            func.coalesce(func.sum(UsageEntry.audio_tokens), 0),
        )
        .where(UsageEntry.chat_id == chat_id)
        .group_by(UsageEntry.day, UsageEntry.model)
        .order_by(UsageEntry.day.desc(), UsageEntry.model)
    )
    return [
        UsageRow(
            day=r[0],
            model=r[1],
            turns=int(r[2]),
            audio_seconds=float(r[3]),
            input_tokens=int(r[4]),
            output_tokens=int(r[5]),
            audio_tokens=int(r[6]),
        )
        for r in rows.all()
    ]


# --- forget ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetCounts:
    """What ``forget`` deleted."""

    conversations: int = 0
    turns: int = 0
    audio_clips: int = 0
    usage_entries: int = 0


async def forget_chat(session: AsyncSession, *, chat_id: int) -> ForgetCounts:
    """Delete a chat's conversations, turns, audio and usage detail (settings stay)."""
    conv_ids = select(Conversation.id).where(Conversation.chat_id == chat_id)
    turn_ids = select(Turn.id).where(Turn.conversation_id.in_(conv_ids))
    clips = await session.scalar(
        select(func.count(AudioClip.id)).where(AudioClip.turn_id.in_(turn_ids))
    )
    turns = await session.scalar(select(func.count(Turn.id)).where(Turn.id.in_(turn_ids)))
    usage = await session.scalar(
        select(func.count(UsageEntry.id)).where(UsageEntry.chat_id == chat_id)
    )
    # Explicit deletes child-first: no reliance on ON DELETE CASCADE being enabled.
    await session.execute(delete(UsageEntry).where(UsageEntry.chat_id == chat_id))
    await session.execute(delete(AudioClip).where(AudioClip.turn_id.in_(turn_ids)))
    await session.execute(delete(Turn).where(Turn.conversation_id.in_(conv_ids)))
    result = await session.execute(delete(Conversation).where(Conversation.chat_id == chat_id))
    return ForgetCounts(
        conversations=int(getattr(result, "rowcount", 0) or 0),
        turns=int(turns or 0),
        audio_clips=int(clips or 0),
        usage_entries=int(usage or 0),
    )


def is_user(turn: Turn) -> bool:
    return turn.role == TurnRole.USER.value
