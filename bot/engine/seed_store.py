"""The transactions that open a thread's conversation with the message it replies to.

The opening (:mod:`bot.engine.seeding`) is a user turn of kind ``thread_parent`` holding
the parent's text as the model got it and its clips, then, when the bot answered the
parent, a copy of that answer. Each transaction checks again that the conversation is
not opened yet, and the unique ``(conversation_id, seq)`` of turns makes a second,
concurrent opening of the same conversation fail (say, a stalled job run again on another
replica while the first run still goes on): a thread is opened once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Text, cast, insert, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.audio.types import Segment
from bot.engine.domain import THREAD_PARENT_KIND, TurnRole, TurnStatus
from bot.engine.store import clip_row, sent_text
from bot.storage import repositories as repo
from bot.storage.database import Database
from bot.storage.tables import AudioClip, Conversation, Turn

# The columns of a clip copied from one turn to another (all but its id and turn).
_CLIP_COLUMNS = (
    "position",
    "format",
    "sample_rate",
    "start_seconds",
    "duration",
    "size_bytes",
    "sha256",
    "source_key",
    "data",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredParent:
    """The parent message as this chat already stored it: its user turn, maybe answered."""

    user_turn_id: int
    text: str | None  # as the model got it
    clips: int
    answer_turn_id: int | None  # the bot's complete answer to it, if there is one

    @property
    def empty(self) -> bool:
        """Nothing to start from (e.g. a file that could not be used, sent without text)."""
        return not (self.text or "").strip() and not self.clips and self.answer_turn_id is None


async def opened(db: Database, *, conversation_id: int, message_id: str) -> bool:
    """Whether the conversation already starts from the parent (or holds the parent
    itself: a channel thread's first message is in its own conversation)."""
    async with db.sessions() as session:
        return await _opened(session, conversation_id, message_id)


async def _opened(session: AsyncSession, conversation_id: int, message_id: str) -> bool:
    found = await session.scalar(
        select(Turn.id)
        .where(
            Turn.conversation_id == conversation_id,
            or_(Turn.kind == THREAD_PARENT_KIND, Turn.source_message_id == message_id),
        )
        .limit(1)
    )
    return found is not None


async def find_parent(db: Database, *, chat_row_id: int, message_id: str) -> StoredParent | None:
    """The turn this chat stored for the message, found by the message it answered or,
    for a thread under one of the bot's replies, by the messages that reply occupies."""
    async with db.sessions() as session:
        in_chat = (
            select(Turn)
            .join(Conversation, Conversation.id == Turn.conversation_id)
            .where(
                Conversation.chat_id == chat_row_id,
                or_(Turn.kind.is_(None), Turn.kind != THREAD_PARENT_KIND),
            )
            .order_by(Turn.id.desc())
            .limit(1)
        )
        user = await session.scalar(
            in_chat.where(Turn.role == TurnRole.USER.value, Turn.source_message_id == message_id)
        )
        if user is None:
            # reply_message_ids is a JSON list of ids: its text holds the id in quotes on
            # SQLite and PostgreSQL alike.
            reply = await session.scalar(
                in_chat.where(
                    Turn.role == TurnRole.ASSISTANT.value,
                    cast(Turn.reply_message_ids, Text).contains(f'"{message_id}"', autoescape=True),
                )
            )
            if reply is not None:
                user = await _neighbour(session, reply, -1, TurnRole.USER)
        if user is None:
            return None
        answer = await _neighbour(session, user, +1, TurnRole.ASSISTANT)
        answered = (
            answer is not None
            and user.status == TurnStatus.COMPLETE.value
            and answer.status == TurnStatus.COMPLETE.value
            and bool((answer.text or "").strip())
        )
        return StoredParent(
            user_turn_id=user.id,
            text=sent_text(user),
            clips=len(user.clips),
            answer_turn_id=answer.id if answered and answer is not None else None,
        )


async def _neighbour(session: AsyncSession, turn: Turn, step: int, role: TurnRole) -> Turn | None:
    return await session.scalar(
        select(Turn).where(
            Turn.conversation_id == turn.conversation_id,
            Turn.seq == turn.seq + step,
            Turn.role == role.value,
        )
    )


async def copy_parent(
    db: Database, *, conversation_id: int, message_id: str, parent: StoredParent
) -> bool:
    """Open the conversation with a copy of the stored parent and its answer; the clips
    are copied row to row in SQL (no download, no conversion). ``False``: it was opened
    already (or the parent was forgotten meanwhile)."""
    try:
        async with db.sessions() as session, session.begin():
            if await _opened(session, conversation_id, message_id):
                return False
            original = await session.get(Turn, parent.user_turn_id)
            if original is None:
                return False
            seq = await repo.next_seq(session, conversation_id)
            user = _opening(
                conversation_id=conversation_id,
                seq=seq,
                message_id=message_id,
                text=parent.text,
                author_id=original.user_external_id,
                model=original.model,
            )
            user.audio_seconds_total = original.audio_seconds_total
            user.audio_seconds_sent = original.audio_seconds_sent
            session.add(user)
            await session.flush()
            columns = [getattr(AudioClip, name) for name in _CLIP_COLUMNS]
            await session.execute(
                insert(AudioClip).from_select(
                    ["turn_id", *_CLIP_COLUMNS],
                    select(literal(user.id, type_=AudioClip.turn_id.type), *columns).where(
                        AudioClip.turn_id == original.id
                    ),
                )
            )
            if parent.answer_turn_id is not None:
                answer = await session.get(Turn, parent.answer_turn_id)
                if answer is not None:
                    session.add(_answer(user, text=answer.text, model=answer.model))
            return True
    except IntegrityError:
        return False  # another run opened it first (the same turn seq)


async def store_parent(
    db: Database,
    *,
    conversation_id: int,
    message_id: str,
    text: str | None,
    author_id: str | None,
    model: str,
    clips: Sequence[Segment],
    total_seconds: float | None,
) -> bool:
    """Open the conversation with a parent read from the platform (nobody answered it
    here). ``False``: it was opened already."""
    try:
        async with db.sessions() as session, session.begin():
            if await _opened(session, conversation_id, message_id):
                return False
            seq = await repo.next_seq(session, conversation_id)
            user = _opening(
                conversation_id=conversation_id,
                seq=seq,
                message_id=message_id,
                text=text,
                author_id=author_id,
                model=model,
            )
            if clips:
                user.audio_seconds_total = total_seconds
                user.audio_seconds_sent = sum(c.duration for c in clips)
                user.clips = [clip_row(c, i) for i, c in enumerate(clips)]
            session.add(user)
            await session.flush()
            return True
    except IntegrityError:
        return False


def _opening(
    *,
    conversation_id: int,
    seq: int,
    message_id: str,
    text: str | None,
    author_id: str | None,
    model: str | None,
) -> Turn:
    return Turn(
        conversation_id=conversation_id,
        seq=seq,
        role=TurnRole.USER.value,
        kind=THREAD_PARENT_KIND,
        text=text,
        status=TurnStatus.COMPLETE.value,
        user_external_id=author_id[:64] if author_id else None,
        source_message_id=message_id[:64],
        model=model,
    )


def _answer(user: Turn, *, text: str | None, model: str | None) -> Turn:
    return Turn(
        conversation_id=user.conversation_id,
        seq=user.seq + 1,
        role=TurnRole.ASSISTANT.value,
        kind=THREAD_PARENT_KIND,
        text=text,
        status=TurnStatus.COMPLETE.value,
        source_message_id=user.source_message_id,
        model=model,
    )
