"""A thread's conversation starts from the message the thread replies to.

Someone who starts a thread under a voice note (or under the bot's answer to it) and asks
"what did I just ask you?" expects the bot to know the note. So the first turn of a
thread's conversation opens it with the parent message: its audio and text, and the
bot's answer to it if there was one. From then on that opening is ordinary history, sent
within the input budget like any other pair (an unanswered parent goes, framed, with the
next user message), and dropped first when the thread grows past the budget.

Where the parent comes from:

- stored: the bot already answered it (a DM's top-level conversation, or anywhere in
  the chat): its turn is copied with its stored clips, so the audio is neither downloaded
  nor converted again, and with the stored answer;
- read from the platform (:class:`~bot.engine.ports.ThreadParent`): a message the bot
  never answered (posted before the bot was added, someone else's message in a channel,
  a message the bot was not asked about); its audio is fetched and converted like a
  turn's, within what the first request can still carry.

A parent that can't be read (deleted, no access) leaves the thread starting empty, as a
conversation of its own; a parent whose audio can't be used is noted under the reply.

Once per thread: it runs inside the conversation's turn order (one turn at a time), only
while the conversation has no history, never for a turn an earlier run already stored,
and its transaction re-checks (:mod:`bot.engine.seed_store`); an opening committed by a
run that then crashed is found by the next run, which does not open it again.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy.exc import SQLAlchemyError

from bot import texts
from bot.audio.report import format_duration
from bot.audio.types import AudioConverter
from bot.engine import seed_store
from bot.engine.history import parent_audio_budget_seconds
from bot.engine.ports import AudioSource, IncomingTurn, ParentMessage, ThreadParent
from bot.engine.recordings import PreparedAudio, prepare_recordings
from bot.engine.store import TurnContext
from bot.errors import BotError
from bot.i18n import tr
from bot.metrics import Metrics
from bot.storage.database import Database

log = structlog.get_logger(__name__)

# Left-out parent audio shorter than this is rounding, not worth a note.
_NOTE_THRESHOLD = 0.5
# Less room than one counted clip second: the parent's audio can't go at all.
_MIN_SECONDS = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Opening:
    """What opening the thread did: ``seeded`` when the history changed (reload it)."""

    seeded: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedDeps:
    """What reading and converting a parent's audio needs (the engine's own parts)."""

    database: Database
    converter: AudioConverter
    metrics: Metrics
    max_bytes: int


def wanted(ctx: TurnContext, turn: IncomingTurn) -> bool:
    """Whether this turn may open its thread: a first turn, on a model that hears history.

    A conversation with history went on without an opening (e.g. begun before the bot
    had this), and one added now would come after what it answered.
    """
    return (
        turn.parent is not None
        and ctx.earlier is None
        and not ctx.history
        and ctx.spec.multi_turn
        and turn.conversation_id is None
        and not turn.fresh_conversation
    )


async def open_thread(
    deps: SeedDeps,
    ctx: TurnContext,
    turn: IncomingTurn,
    *,
    current_text: str | None,
    current: PreparedAudio | None,
) -> Opening:
    """Open the turn's thread with its parent, unless that happened already.

    ``current_text`` and ``current`` are the turn's own text and audio as the model gets
    them: they come first in the request, the parent's audio gets what room is left.
    """
    parent = turn.parent
    if parent is None:
        return Opening()
    message_id = parent.message_id
    db = deps.database
    if await seed_store.opened(db, conversation_id=ctx.conversation_id, message_id=message_id):
        return Opening()
    stored = await seed_store.find_parent(db, chat_row_id=ctx.chat_row_id, message_id=message_id)
    if stored is not None:
        if stored.empty:
            return Opening()
        seeded = await seed_store.copy_parent(
            db, conversation_id=ctx.conversation_id, message_id=message_id, parent=stored
        )
        log.info(
            "thread.opened",
            source="stored",
            conversation_id=ctx.conversation_id,
            clips=stored.clips,
            answered=stored.answer_turn_id is not None,
            seeded=seeded,
        )
        return Opening(seeded=seeded)
    message = await _read(parent)
    if message is None:
        log.info("thread.parent_unavailable", conversation_id=ctx.conversation_id)
        return Opening()
    return await _open_from(
        deps, ctx, message_id, message, current_text=current_text, current=current
    )


async def _read(parent: ThreadParent) -> ParentMessage | None:
    try:
        return await parent.fetch()
    except Exception as exc:  # the thread is answered anyway, as a conversation of its own
        log.warning("thread.parent_read_failed", error=type(exc).__name__)
        return None


async def _open_from(
    deps: SeedDeps,
    ctx: TurnContext,
    message_id: str,
    message: ParentMessage,
    *,
    current_text: str | None,
    current: PreparedAudio | None,
) -> Opening:
    """Open the thread with a parent read from the platform."""
    # A clip the turn itself analyses (a mention under someone's clip) is heard once.
    own = {c.source_key for c in (current.clips if current else ()) if c.source_key}
    recordings = tuple(r for r in message.recordings if not (r.source_key and r.source_key in own))
    text = (message.text or "").strip() or None
    notes: list[str] = []
    audio: PreparedAudio | None = None
    if recordings:
        budget = parent_audio_budget_seconds(
            ctx.spec,
            system_prompt=ctx.view.system_prompt,
            current_text=current_text,
            current_clips=[c.duration for c in current.clips] if current else [],
            parent_text=text,
        )
        if budget is not None and budget < _MIN_SECONDS:
            notes.append(tr(texts.THREAD_PARENT_NO_ROOM))
        else:
            audio = await _hear(deps, ctx, recordings, budget)
            notes.extend(_heard_notes(audio))
    clips = audio.clips if audio is not None else ()
    if text is None and not clips:
        return Opening(notes=tuple(notes))
    seeded = await seed_store.store_parent(
        deps.database,
        conversation_id=ctx.conversation_id,
        message_id=message_id,
        text=text,
        author_id=message.author_id,
        model=ctx.spec.name,
        clips=clips,
        total_seconds=audio.total_seconds if audio is not None else None,
    )
    log.info(
        "thread.opened",
        source="platform",
        conversation_id=ctx.conversation_id,
        clips=len(clips),
        seeded=seeded,
    )
    return Opening(seeded=seeded, notes=tuple(notes))


async def _hear(
    deps: SeedDeps,
    ctx: TurnContext,
    recordings: tuple[AudioSource, ...],
    budget: float | None,
) -> PreparedAudio | None:
    """The parent's audio as clips, or ``None`` when it can't be used (said in a note)."""
    try:
        return await prepare_recordings(
            recordings,
            spec=ctx.spec,
            converter=deps.converter,
            database=deps.database,
            chat_row_id=ctx.chat_row_id,
            max_bytes=deps.max_bytes,
            budget_seconds=budget,
            metrics=deps.metrics,
        )
    except SQLAlchemyError:
        raise  # the run ends; its job runs again (bot.queue)
    except Exception as exc:
        # Too large, deleted, not audio…: the reply says the parent's audio was not used.
        error = type(exc).__name__
        log.info("thread.parent_audio_failed", error=error, expected=isinstance(exc, BotError))
        return None


def _heard_notes(audio: PreparedAudio | None) -> list[str]:
    if audio is None:
        return [tr(texts.THREAD_PARENT_AUDIO_FAILED)]
    if not audio.clips:  # not even its first segment fits (clips are cut at pauses)
        return [tr(texts.THREAD_PARENT_NO_ROOM)]
    sent = sum(c.duration for c in audio.clips)
    if audio.total_seconds - sent < _NOTE_THRESHOLD:
        return []
    return [
        tr(texts.THREAD_PARENT_LEFT_OUT).format(
            sent=format_duration(sent), total=format_duration(audio.total_seconds)
        )
    ]
