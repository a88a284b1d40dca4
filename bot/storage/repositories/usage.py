"""The usage ledger, and forgetting a chat."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.tables import (
    AudioClip,
    ClipTranscript,
    Conversation,
    Turn,
    UsageEntry,
    utcnow,
)

# --- usage --------------------------------------------------------------------------------


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
    speech_tokens: int | None = None,
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
            speech_tokens=speech_tokens,
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
    speech_seconds: float = 0.0  # spoken replies delivered
    speech_tokens: int = 0  # audio output tokens of spoken (Omni) replies
    tts_characters: int = 0  # characters a TTS model read aloud (its own lines)


async def add_tts(
    session: AsyncSession,
    *,
    chat_id: int,
    turn_id: int,
    user_external_id: str | None,
    model: str,
    characters: int,
) -> None:
    """Characters the TTS ``model`` read aloud for a turn: a ledger line of its own (the
    TTS model bills apart from the chat model), not counted as a turn."""
    session.add(
        UsageEntry(
            chat_id=chat_id,
            turn_id=turn_id,
            user_external_id=user_external_id,
            model=model,
            day=utcnow().date(),
            tts_characters=characters,
        )
    )


async def add_speech(
    session: AsyncSession,
    *,
    chat_id: int,
    turn_id: int,
    user_external_id: str | None,
    model: str,
    seconds: float,
) -> None:
    """Seconds of speech a turn delivered, on its ledger line (a line of its own if the
    turn recorded no usage)."""
    result = await session.execute(
        update(UsageEntry)
        .where(UsageEntry.turn_id == turn_id)
        .values(speech_seconds=func.coalesce(UsageEntry.speech_seconds, 0.0) + seconds)
    )
    if not getattr(result, "rowcount", 0):
        session.add(
            UsageEntry(
                chat_id=chat_id,
                turn_id=turn_id,
                user_external_id=user_external_id,
                model=model,
                day=utcnow().date(),
                speech_seconds=seconds,
            )
        )


async def usage_rows(session: AsyncSession, *, chat_id: int) -> list[UsageRow]:
    """The chat's usage, summed by day and model, newest day first."""
    rows = await session.execute(
        select(
            UsageEntry.day,
            UsageEntry.model,
            func.coalesce(func.sum(case((UsageEntry.tts_characters.is_(None), 1), else_=0)), 0),
            func.coalesce(func.sum(UsageEntry.audio_seconds), 0.0),
            func.coalesce(func.sum(UsageEntry.input_tokens), 0),
            func.coalesce(func.sum(UsageEntry.output_tokens), 0),
            func.coalesce(func.sum(UsageEntry.audio_tokens), 0),
            func.coalesce(func.sum(UsageEntry.speech_seconds), 0.0),
            func.coalesce(func.sum(UsageEntry.tts_characters), 0),
            func.coalesce(func.sum(UsageEntry.speech_tokens), 0),
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
            speech_seconds=float(r[7] or 0.0),
            tts_characters=int(r[8] or 0),
            speech_tokens=int(r[9] or 0),
        )
        for r in rows.all()
    ]


# --- forget -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetCounts:
    """What ``forget`` deleted."""

    conversations: int = 0
    turns: int = 0
    audio_clips: int = 0
    usage_entries: int = 0


async def forget_chat(session: AsyncSession, *, chat_id: int) -> ForgetCounts:
    """Delete a chat's conversations, turns, audio (and its transcripts) and usage detail
    (settings stay)."""
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
    clip_ids = select(AudioClip.id).where(AudioClip.turn_id.in_(turn_ids))
    await session.execute(delete(UsageEntry).where(UsageEntry.chat_id == chat_id))
    await session.execute(delete(ClipTranscript).where(ClipTranscript.clip_id.in_(clip_ids)))
    await session.execute(delete(AudioClip).where(AudioClip.turn_id.in_(turn_ids)))
    await session.execute(delete(Turn).where(Turn.conversation_id.in_(conv_ids)))
    result = await session.execute(delete(Conversation).where(Conversation.chat_id == chat_id))
    return ForgetCounts(
        conversations=int(getattr(result, "rowcount", 0) or 0),
        turns=int(turns or 0),
        audio_clips=int(clips or 0),
        usage_entries=int(usage or 0),
    )
