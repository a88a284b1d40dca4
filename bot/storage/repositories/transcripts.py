"""Transcripts of stored clips (the Transcript button), and the reply they belong to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.repositories.unique import insert_or_read
from bot.storage.tables import AudioClip, ClipTranscript, Conversation, Turn, TurnRole


@dataclass(frozen=True, slots=True, kw_only=True)
class ClipInfo:
    """A stored clip's metadata (not its bytes)."""

    id: int
    position: int
    duration: float
    source_key: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RepliedTurn:
    """A reply of the bot and the user turn it answers, with that turn's clips in order."""

    assistant_turn_id: int
    reply_model: str | None
    reply_kind: str | None
    user_turn_id: int | None
    user_external_id: str | None
    clips: tuple[ClipInfo, ...]
    audio_seconds_total: float | None


async def replied_turn(
    session: AsyncSession, *, chat_id: int, assistant_turn_id: int
) -> RepliedTurn | None:
    """The reply ``assistant_turn_id`` of chat ``chat_id`` (``None``: no such reply in this
    chat, e.g. deleted by /forget) and the clips of the turn it answers."""
    reply = (
        await session.execute(
            select(Turn)
            .join(Conversation, Conversation.id == Turn.conversation_id)
            .where(
                Turn.id == assistant_turn_id,
                Turn.role == TurnRole.ASSISTANT.value,
                Conversation.chat_id == chat_id,
            )
        )
    ).scalar_one_or_none()
    if reply is None:
        return None
    user = (
        await session.execute(
            select(Turn).where(
                Turn.conversation_id == reply.conversation_id,
                Turn.seq == reply.seq - 1,
                Turn.role == TurnRole.USER.value,
            )
        )
    ).scalar_one_or_none()
    clips: tuple[ClipInfo, ...] = ()
    if user is not None:
        rows = await session.execute(
            select(AudioClip.id, AudioClip.position, AudioClip.duration, AudioClip.source_key)
            .where(AudioClip.turn_id == user.id)
            .order_by(AudioClip.position)
        )
        clips = tuple(
            ClipInfo(id=int(r[0]), position=int(r[1]), duration=float(r[2]), source_key=r[3])
            for r in rows.all()
        )
    return RepliedTurn(
        assistant_turn_id=reply.id,
        reply_model=reply.model,
        reply_kind=reply.kind,
        user_turn_id=user.id if user is not None else None,
        user_external_id=user.user_external_id if user is not None else None,
        clips=clips,
        audio_seconds_total=user.audio_seconds_total if user is not None else None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredTranscript:
    clip_id: int
    text: str
    language: str | None
    model: str


def _stored(row: ClipTranscript) -> StoredTranscript:
    return StoredTranscript(
        clip_id=row.clip_id, text=row.text, language=row.language, model=row.model
    )


async def clip_transcripts(
    session: AsyncSession, clip_ids: Sequence[int]
) -> dict[int, StoredTranscript]:
    """The stored transcripts of these clips (clips without one are absent)."""
    if not clip_ids:
        return {}
    rows = await session.execute(
        select(ClipTranscript).where(ClipTranscript.clip_id.in_(list(clip_ids)))
    )
    return {row.clip_id: _stored(row) for row in rows.scalars().all()}


async def add_clip_transcript(
    session: AsyncSession, *, clip_id: int, text: str, language: str | None, model: str
) -> StoredTranscript:
    """Store a clip's transcript, or return the one stored first: the unique clip id makes
    a concurrent second insert (another press, another replica) fail, and the loser reads
    the winner's row (in a savepoint, so the caller's work stays)."""

    async def stored_first() -> ClipTranscript | None:
        # None: no duplicate, the clip itself is gone (forgotten meanwhile): re-raised.
        query = select(ClipTranscript).where(ClipTranscript.clip_id == clip_id)
        return (await session.execute(query)).scalar_one_or_none()

    row = ClipTranscript(clip_id=clip_id, text=text, language=language, model=model)
    return _stored(await insert_or_read(session, row, stored_first))
