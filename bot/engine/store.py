"""The engine's transactions for one turn (what is committed, and when)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from tenacity import RetryCallState

from bot.audio.types import Segment
from bot.catalog import ModelSpec
from bot.config import Settings
from bot.engine.chat_store import chat_row
from bot.engine.domain import THREAD_PARENT_KIND, TurnRole, TurnStatus
from bot.engine.history import ClipMeta, PastPair, RequestPlan
from bot.engine.ports import IncomingTurn
from bot.engine.recordings import SAMPLE_RATE, PreparedAudio
from bot.engine.requests import TurnKind
from bot.engine.settings import ChatSettingsView, check_model, effective
from bot.errors import BotError, ConversationNotFound, ModelError
from bot.llm.types import AudioPart, Usage
from bot.retrying import retrying
from bot.storage import repositories as repo
from bot.storage.database import Database
from bot.storage.tables import AudioClip, Turn, utcnow

log = structlog.get_logger(__name__)

# Replies in these kinds answered audio only; the user's text was not sent with it.
_TEXT_NOT_SENT = (TurnKind.TRANSCRIPTION.value, TurnKind.CAPTION.value)


# Turns of one conversation run one at a time within a process and, through the turn
# queue, across replicas; but two ``voicebot ask`` processes may continue one conversation
# at once. The later insert then collides on (conversation, seq) and takes the next places.
SEQ_ATTEMPTS = 3

# Where an earlier run of the same turn ended with something the user saw: nothing to redo.
_ANSWERED = frozenset(
    {TurnStatus.COMPLETE, TurnStatus.STOPPED, TurnStatus.FAILED, TurnStatus.UNDELIVERED}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class EarlierRun:
    """What an interrupted earlier run of this turn's job left stored (bot.queue)."""

    user_turn_id: int
    user_status: TurnStatus
    assistant_turn_id: int | None
    status: TurnStatus | None  # the reply's
    text: str | None
    message_ids: tuple[str, ...]  # the messages the user saw it in (to be replaced)

    @property
    def answered(self) -> bool:
        """The earlier run got as far as an answer the user saw (or will see late)."""
        return (
            self.user_status is TurnStatus.FAILED
            or self.assistant_turn_id is None
            or self.status in _ANSWERED
        )

    @property
    def generated(self) -> bool:
        """The model's reply is stored whole; only its delivery was cut short."""
        return self.status is TurnStatus.DELIVERING and bool((self.text or "").strip())


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnContext:
    chat_row_id: int
    conversation_id: int
    view: ChatSettingsView
    spec: ModelSpec
    history: tuple[PastPair, ...]
    earlier: EarlierRun | None = None


def earlier_run(turns: Sequence[Turn], source_message_id: str | None) -> EarlierRun | None:
    """The last stored run of the turn answering ``source_message_id``, if any."""
    if not source_message_id:
        return None
    user = next(
        (
            t
            for t in reversed(turns)
            if t.role == TurnRole.USER.value
            and t.source_message_id == source_message_id
            # A thread's opening copy of its parent names the parent, not this message.
            and t.kind != THREAD_PARENT_KIND
        ),
        None,
    )
    if user is None:
        return None
    reply = next(
        (t for t in turns if t.seq == user.seq + 1 and t.role == TurnRole.ASSISTANT.value), None
    )
    return EarlierRun(
        user_turn_id=user.id,
        user_status=TurnStatus(user.status),
        assistant_turn_id=reply.id if reply is not None else None,
        status=TurnStatus(reply.status) if reply is not None else None,
        text=reply.text if reply is not None else None,
        message_ids=tuple(reply.reply_message_ids or ()) if reply is not None else (),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredTurns:
    user_turn_id: int
    assistant_turn_id: int
    history_audio: dict[int, AudioPart]


def sent_text(user: Turn) -> str | None:
    """A user turn's text as the model got it (``None`` where its kind ignores text)."""
    return None if user.kind in _TEXT_NOT_SENT else user.text


def past_pairs(turns: Sequence[Turn]) -> tuple[PastPair, ...]:
    """Complete user/assistant pairs in order. Failed, stopped or unanswered turns (and
    replies interrupted by a crash, left ``pending``/``streaming``) are not history —
    except the parent a thread's conversation starts from, answered or not
    (:mod:`bot.engine.seeding`)."""
    pairs: list[PastPair] = []
    for user, reply in itertools.pairwise([*turns, None]):
        if user is None:
            break
        if user.kind == THREAD_PARENT_KIND:
            if user.role == TurnRole.USER.value and user.status == TurnStatus.COMPLETE.value:
                pairs.append(_parent_pair(user, reply))
            continue
        if reply is None:
            continue
        if (
            user.role != TurnRole.USER.value
            or reply.role != TurnRole.ASSISTANT.value
            or reply.seq != user.seq + 1
            or user.status != TurnStatus.COMPLETE.value
            or reply.status != TurnStatus.COMPLETE.value
            or not (reply.text or "").strip()
        ):
            continue
        pairs.append(
            PastPair(
                user_turn_id=user.id,
                user_text=sent_text(user),
                clips=tuple(ClipMeta(clip_id=c.id, duration=c.duration) for c in user.clips),
                assistant_text=reply.text or "",
            )
        )
    return tuple(pairs)


def _parent_pair(user: Turn, reply: Turn | None) -> PastPair:
    """A thread's parent, with the bot's answer to it if that was stored beside it."""
    answer: str | None = None
    if (
        reply is not None
        and reply.role == TurnRole.ASSISTANT.value
        and reply.seq == user.seq + 1
        and reply.status == TurnStatus.COMPLETE.value
        and (reply.text or "").strip()
    ):
        answer = reply.text
    return PastPair(
        user_turn_id=user.id,
        user_text=user.text,  # stored as the model got it (None: the text was not sent)
        clips=tuple(ClipMeta(clip_id=c.id, duration=c.duration) for c in user.clips),
        assistant_text=answer,
    )


async def load_context(db: Database, settings: Settings, turn: IncomingTurn) -> TurnContext:
    """Chat, settings, conversation and its history; committed (chat/conversation rows)."""
    chat = turn.chat
    thread_key = turn.thread_key or ""
    async with db.sessions() as session, session.begin():
        row = await chat_row(session, chat)
        view = effective(
            await repo.get_chat_settings(session, row.id),
            default_model=settings.DEFAULT_MODEL,
            allowed=settings.ALLOWED_MODELS,
            tts_model=settings.tts_model,
        )
        spec = view.spec
        if turn.model is not None:
            spec = check_model(turn.model, settings.ALLOWED_MODELS)
        if turn.conversation_id is not None:
            conv = await repo.get_conversation(
                session, conversation_id=turn.conversation_id, chat_id=row.id
            )
            if conv is None:
                raise ConversationNotFound(f"conversation {turn.conversation_id}")
        else:
            if turn.fresh_conversation:
                await repo.close_open_conversations(session, chat_id=row.id, thread_key=thread_key)
            conv = await repo.open_conversation(session, chat_id=row.id, thread_key=thread_key)
        turns = await repo.conversation_turns(session, conv.id)
        return TurnContext(
            chat_row_id=row.id,
            conversation_id=conv.id,
            view=view,
            spec=spec,
            history=past_pairs(turns),
            # Only a resumed job can find its own turn stored (bot.queue).
            earlier=earlier_run(turns, turn.source_message_id) if turn.attempt > 0 else None,
        )


def _user_turn(
    ctx: TurnContext, turn: IncomingTurn, kind: TurnKind, seq: int, status: TurnStatus
) -> Turn:
    return Turn(
        conversation_id=ctx.conversation_id,
        seq=seq,
        role=TurnRole.USER.value,
        kind=kind.value,
        text=turn.text,
        status=status.value,
        user_external_id=turn.user_id[:64],
        source_message_id=(turn.source_message_id or None),
        model=ctx.spec.name,
    )


async def store_failed_user_turn(
    db: Database, ctx: TurnContext, turn: IncomingTurn, kind: TurnKind, *, error: BotError
) -> int | None:
    """Keep a record of a message whose audio could not be used (no reply follows)."""
    try:
        async with db.sessions() as session, session.begin():
            seq = await repo.next_seq(session, ctx.conversation_id)
            row = _user_turn(ctx, turn, kind, seq, TurnStatus.FAILED)
            row.error_code = type(error).__name__[:64]
            session.add(row)
            await session.flush()
            return row.id
    except Exception as exc:  # the user still hears why their audio was refused
        log.error("turn.store_failed_user_turn_failed", error=type(exc).__name__)
        return None


def clip_row(clip: Segment, position: int, *, source_key: str | None = None) -> AudioClip:
    """The stored row of a clip (``source_key``: the recording's, when the clip has none)."""
    return AudioClip(
        position=position,
        format=clip.format,
        sample_rate=SAMPLE_RATE,
        start_seconds=clip.start,
        duration=clip.duration,
        size_bytes=len(clip.data),
        sha256=clip.sha256,
        source_key=(clip.source_key or source_key or None),
        data=clip.data,
    )


async def store_turn_pair(
    db: Database,
    ctx: TurnContext,
    turn: IncomingTurn,
    kind: TurnKind,
    *,
    plan: RequestPlan,
    prepared: PreparedAudio | None,
    sent: Sequence[Segment],
) -> StoredTurns:
    """Commit the user turn with its clips and a ``pending`` reply; load history audio."""

    def seq_taken(state: RetryCallState) -> None:
        log.info(
            "turn.seq_taken", conversation_id=ctx.conversation_id, attempt=state.attempt_number
        )

    # A short jittered wait, so the two processes do not collide on the next place again.
    async for attempt in retrying(
        retry_if=lambda exc: isinstance(exc, IntegrityError),
        attempts=SEQ_ATTEMPTS,
        base=0.01,
        cap=0.1,
        before_sleep=seq_taken,
    ):
        with attempt:
            return await _store_turn_pair(
                db, ctx, turn, kind, plan=plan, prepared=prepared, sent=sent
            )
    raise AssertionError("unreachable: tenacity re-raises the last error")


async def _store_turn_pair(
    db: Database,
    ctx: TurnContext,
    turn: IncomingTurn,
    kind: TurnKind,
    *,
    plan: RequestPlan,
    prepared: PreparedAudio | None,
    sent: Sequence[Segment],
) -> StoredTurns:
    async with db.sessions() as session, session.begin():
        seq = await repo.next_seq(session, ctx.conversation_id)
        user = _user_turn(ctx, turn, kind, seq, TurnStatus.COMPLETE)
        if prepared is not None:
            user.audio_seconds_total = prepared.total_seconds
            user.audio_seconds_sent = sum(c.duration for c in sent)
            user.clips = [
                clip_row(c, i, source_key=prepared.source_key) for i, c in enumerate(sent)
            ]
        reply = Turn(
            conversation_id=ctx.conversation_id,
            seq=seq + 1,
            role=TurnRole.ASSISTANT.value,
            kind=kind.value,
            status=TurnStatus.PENDING.value,
            model=ctx.spec.name,
            source_message_id=(turn.source_message_id or None),
        )
        session.add_all([user, reply])
        await session.flush()
        ids = [c.clip_id for p in plan.history for c in p.clips if c.clip_id is not None]
        data = await repo.clip_data(session, ids)
        return StoredTurns(
            user_turn_id=user.id,
            assistant_turn_id=reply.id,
            history_audio={i: AudioPart(*data[i]) for i in ids},
        )


async def reuse_turn_pair(
    db: Database, ctx: TurnContext, earlier: EarlierRun, *, plan: RequestPlan
) -> StoredTurns:
    """An interrupted run stored this turn already: answer it again in the same rows
    (the user turn and its clips as they are; the reply back to ``pending``)."""
    assert earlier.assistant_turn_id is not None
    async with db.sessions() as session, session.begin():
        await session.execute(
            update(Turn)
            .where(Turn.id == earlier.assistant_turn_id)
            .values(status=TurnStatus.PENDING.value, text=None, error_code=None)
        )
        ids = [c.clip_id for p in plan.history for c in p.clips if c.clip_id is not None]
        data = await repo.clip_data(session, ids)
        return StoredTurns(
            user_turn_id=earlier.user_turn_id,
            assistant_turn_id=earlier.assistant_turn_id,
            history_audio={i: AudioPart(*data[i]) for i in ids},
        )


async def record_visible(db: Database, assistant_turn_id: int, message_ids: Sequence[str]) -> None:
    """The messages a reply occupies while it streams (replaced if its run dies)."""
    async with db.sessions() as session, session.begin():
        await session.execute(
            update(Turn)
            .where(Turn.id == assistant_turn_id)
            .values(reply_message_ids=list(message_ids))
        )


async def mark_streaming(db: Database, assistant_turn_id: int) -> None:
    async with db.sessions() as session, session.begin():
        await session.execute(
            update(Turn)
            .where(Turn.id == assistant_turn_id)
            .values(status=TurnStatus.STREAMING.value, started_at=utcnow())
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyRecord:
    """Everything stored about a reply once the model is done with it."""

    assistant_turn_id: int
    status: TurnStatus
    text: str
    model: str
    usage: Usage
    finish_reason: str | None
    request_id: str | None
    error: BotError | None
    request_audio_seconds: float  # everything the request carried, history included
    user_audio_seconds: float  # this turn's own recording
    started_at: dt.datetime | None
    first_token_at: dt.datetime | None
    record_usage: bool


async def finish_assistant_turn(
    db: Database, ctx: TurnContext, turn: IncomingTurn, record: ReplyRecord
) -> None:
    """Store the reply's final state and, unless it failed unbilled, a usage entry."""
    error, usage = record.error, record.usage
    request_id = record.request_id
    error_code: str | None = None
    if error is not None:
        code = error.code if isinstance(error, ModelError) else None
        error_code = (code or type(error).__name__)[:64]
        request_id = request_id or (error.request_id if isinstance(error, ModelError) else None)
    values: dict[str, Any] = {
        "status": record.status.value,
        "text": record.text or None,
        "model": record.model,
        "finish_reason": record.finish_reason,
        "request_id": request_id,
        "error_code": error_code,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "audio_tokens": usage.audio_tokens,
        "audio_seconds_sent": record.request_audio_seconds,
        "first_token_at": record.first_token_at,
        "finished_at": utcnow(),
    }
    if record.started_at is not None:
        values["started_at"] = record.started_at
    async with db.sessions() as session, session.begin():
        await session.execute(
            update(Turn).where(Turn.id == record.assistant_turn_id).values(**values)
        )
        if record.record_usage:
            await repo.add_usage(
                session,
                chat_id=ctx.chat_row_id,
                turn_id=record.assistant_turn_id,
                user_external_id=turn.user_id[:64],
                model=record.model,
                audio_seconds=record.user_audio_seconds,
                input_tokens=usage.input_tokens or 0,
                output_tokens=usage.output_tokens or 0,
                audio_tokens=usage.audio_tokens or 0,
                speech_tokens=usage.audio_output_tokens,
            )


async def record_delivery(
    db: Database,
    assistant_turn_id: int,
    *,
    status: TurnStatus,
    message_ids: Sequence[str] | None = None,
    error_code: str | None = None,
) -> None:
    """How the reply's delivery ended: ``complete`` (or ``stopped``) with the messages
    holding it, or ``undelivered`` with the platform's error."""
    async with db.sessions() as session, session.begin():
        await repo.set_delivery(
            session,
            turn_id=assistant_turn_id,
            status=status,
            message_ids=message_ids,
            error_code=error_code,
        )


async def voice_note_sent(db: Database, assistant_turn_id: int) -> bool:
    """Whether the reply's voice note is on record (sent: never again)."""
    async with db.sessions() as session:
        found = await session.scalar(select(Turn.voice_note_id).where(Turn.id == assistant_turn_id))
    return found is not None


async def record_voice_note(
    db: Database,
    ctx: TurnContext,
    turn: IncomingTurn,
    *,
    assistant_turn_id: int,
    model: str,
    message_id: str,
    seconds: float,
) -> None:
    """The voice note the platform confirmed, on the reply's turn and in the usage ledger."""
    async with db.sessions() as session, session.begin():
        await session.execute(
            update(Turn)
            .where(Turn.id == assistant_turn_id)
            .values(voice_note_id=message_id[:128], voice_seconds=seconds)
        )
        await repo.add_speech(
            session,
            chat_id=ctx.chat_row_id,
            turn_id=assistant_turn_id,
            user_external_id=turn.user_id[:64],
            model=model,
            seconds=seconds,
        )


async def record_tts_usage(
    db: Database,
    ctx: TurnContext,
    turn: IncomingTurn,
    *,
    assistant_turn_id: int,
    model: str,
    characters: int,
) -> None:
    """Characters the TTS ``model`` read aloud for a reply (usage ledger)."""
    async with db.sessions() as session, session.begin():
        await repo.add_tts(
            session,
            chat_id=ctx.chat_row_id,
            turn_id=assistant_turn_id,
            user_external_id=turn.user_id[:64],
            model=model,
            characters=characters,
        )


async def undelivered(
    db: Database, ctx: TurnContext, turn: IncomingTurn
) -> list[repo.PendingReply]:
    """Replies of this chat's thread that were never delivered, oldest first."""
    async with db.sessions() as session:
        return await repo.undelivered_replies(
            session, chat_id=ctx.chat_row_id, thread_key=turn.thread_key or ""
        )
