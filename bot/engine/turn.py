"""One turn, start to finish, inside its conversation's lock.

Order of work, so that nothing is lost and the stored conversation stays consistent
whatever step fails:

1. load the chat, its settings and the conversation's turns; deliver the replies earlier
   turns of this thread could not (``undelivered``); decide the turn kind (a request the
   model cannot serve is answered here, before anything is stored);
2. ``sink.start()``; get the audio (stored clips of the same recording, or download and
   convert) — a failure stores the user turn as ``failed`` with no reply;
3. plan the request within the model's input budget;
4. commit the user turn, its clips and a ``pending`` assistant turn;
5. stream the model's reply (``streaming``) to the sink, until it finishes, fails or is
   stopped; then store the assistant turn (``delivering``, or ``failed``/``stopped``) with
   model, usage, finish reason and timings, and record usage;
6. deliver the final text: ``complete`` once the platform confirmed all of it, else
   ``undelivered`` (the text is kept and delivered at the thread's next message).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

import structlog

from bot import texts
from bot.audio.types import AudioConverter
from bot.config import Settings
from bot.engine import store
from bot.engine.history import audio_budget_seconds, plan_request
from bot.engine.ports import FinalReply, IncomingTurn, ReplySink, TurnOutcome
from bot.engine.recordings import PreparedAudio, prepare_recordings
from bot.engine.requests import (
    AudioBytes,
    TurnKind,
    audio_info_note,
    build_messages,
    generation_params,
    left_out_note,
    length_notes,
    replay_instruction,
    shape_turn,
)
from bot.engine.streaming import SinkBroken, StreamState, has_usage, observe, stream_reply
from bot.errors import AudioError, BotError, ModelError, Undelivered
from bot.llm.types import ModelClient
from bot.metrics import Metrics
from bot.storage.database import Database
from bot.storage.tables import TurnStatus, utcnow

log = structlog.get_logger(__name__)


@dataclass(kw_only=True)
class TurnDeps:
    """What running a turn needs (built once by the engine)."""

    settings: Settings
    database: Database
    model_client: ModelClient
    audio: AudioConverter
    metrics: Metrics


async def safe_fail(sink: ReplySink, error: BotError, partial: str) -> tuple[str, ...]:
    """``sink.fail`` that never raises (returns no message ids if the platform is down)."""
    try:
        return tuple(await sink.fail(error, partial))
    except Exception as exc:  # the platform is unreachable: nothing more to show
        log.warning("sink.fail_failed", error=type(exc).__name__)
        return ()


async def run_turn(
    deps: TurnDeps, turn: IncomingTurn, sink: ReplySink, stop: asyncio.Event
) -> TurnOutcome:
    """Run one turn; never raises for expected failures (the outcome says what happened)."""
    began = time.monotonic()
    platform = turn.chat.platform
    try:
        ctx = await store.load_context(deps.database, deps.settings, turn)
        if await _deliver_pending(deps, ctx, turn, sink):
            # The replies just delivered are history now.
            ctx = await store.load_context(deps.database, deps.settings, turn)
        shape = shape_turn(ctx.spec, text=turn.text, has_audio=bool(turn.recordings))
    except BotError as exc:
        await safe_fail(sink, exc, "")
        deps.metrics.turns.labels(platform, "-", "-", "refused").inc()
        return TurnOutcome(status="refused", error=exc)
    spec = ctx.spec
    labels = (platform, spec.name, shape.kind.value)

    try:
        await sink.start()
    except Exception as exc:
        log.warning("sink.start_failed", error=type(exc).__name__)
        deps.metrics.platform_errors.labels(platform, "start").inc()
        return TurnOutcome(status="failed", conversation_id=ctx.conversation_id, error=BotError())

    # --- audio: reuse or fetch + convert ----------------------------------------------
    prepared: PreparedAudio | None = None
    if turn.recordings:
        try:
            prepared = await prepare_recordings(
                turn.recordings,
                spec=spec,
                converter=deps.audio,
                sessions=deps.database.sessions,
                chat_row_id=ctx.chat_row_id,
                max_bytes=deps.settings.AUDIO_MAX_BYTES,
                budget_seconds=audio_budget_seconds(
                    spec, system_prompt=ctx.view.system_prompt, current_text=shape.model_text
                ),
                metrics=deps.metrics,
            )
        except Exception as raw:
            audio_error = raw if isinstance(raw, BotError) else BotError(type(raw).__name__)
            return await _audio_failed(deps, ctx, turn, sink, shape.kind, labels, audio_error)

    # --- plan ------------------------------------------------------------------------
    clips = prepared.clips if prepared else ()
    try:
        plan = plan_request(
            spec,
            system_prompt=ctx.view.system_prompt,
            current_text=shape.model_text,
            current_clips=[c.duration for c in clips],
            history=ctx.history,
            instruction=replay_instruction(spec),
        )
    except BotError as exc:
        shown = await safe_fail(sink, exc, "")
        deps.metrics.turns.labels(*labels, "refused").inc()
        return TurnOutcome(
            status="refused", conversation_id=ctx.conversation_id, error=exc, message_ids=shown
        )
    sent = clips[: plan.current_clips]
    sent_seconds = sum(c.duration for c in sent)
    notes = list(shape.notes)
    if prepared is not None:
        note = left_out_note(
            sent=sent_seconds, total=prepared.total_seconds, truncated=prepared.truncated
        )
        if note:
            notes.append(note)
        # Cut-off or mis-sized files are answered with what was heard, never silently.
        notes.extend(length_notes(prepared.mismatches))

    # --- commit the user turn first ---------------------------------------------------
    try:
        stored = await store.store_turn_pair(
            deps.database, ctx, turn, shape.kind, plan=plan, prepared=prepared, sent=sent
        )
    except Exception as exc:
        log.error("turn.store_failed", error=type(exc).__name__)
        err = BotError(type(exc).__name__)
        shown = await safe_fail(sink, err, "")
        deps.metrics.turns.labels(*labels, "failed").inc()
        return TurnOutcome(
            status="failed", conversation_id=ctx.conversation_id, error=err, message_ids=shown
        )

    messages = build_messages(
        plan,
        spec=spec,
        current_audio=[AudioBytes(c.data, c.format) for c in sent],
        history_audio=stored.history_audio,
    )
    params = generation_params(ctx.view, spec)
    request_audio = sent_seconds + sum(c.duration for p in plan.history for c in p.clips)

    # --- stream ----------------------------------------------------------------------
    state = StreamState()
    deps.metrics.in_flight.inc()
    error: BotError | None = None
    stopped = False
    try:
        await store.mark_streaming(deps.database, stored.assistant_turn_id)
        state.started_at = utcnow()
        stopped = await stream_reply(
            deps.model_client, spec.name, messages, params, sink, stop, state
        )
    except ModelError as exc:
        error = exc
        deps.metrics.model_errors.labels(type(exc).__name__).inc()
    except SinkBroken as exc:
        error = BotError(f"sink: {exc}")
        deps.metrics.platform_errors.labels(platform, "update").inc()
    except Exception as exc:  # a bug or the database: the user still gets an answer
        log.error("turn.stream_failed", error=type(exc).__name__)
        error = BotError(type(exc).__name__)
    finally:
        deps.metrics.in_flight.dec()
    if error is None and not stopped and not state.text.strip():
        error = ModelError("empty reply", user_message=texts.EMPTY_REPLY)

    status = (
        TurnStatus.FAILED
        if error is not None
        else TurnStatus.STOPPED
        if stopped
        else TurnStatus.COMPLETE
    )
    if state.finish_reason == "length" and status is TurnStatus.COMPLETE:
        notes.append(texts.REPLY_CUT_AT_LIMIT)
    info_note = audio_info_note(state.audio_info)
    if info_note:
        notes.append(info_note)
    if stopped:
        notes.append(texts.REPLY_STOPPED)

    # --- store the reply, then show it -----------------------------------------------
    # A reply is complete only once the platform confirmed all of it: until then it is
    # "delivering" (a crash leaves it "undelivered", to be delivered later).
    try:
        await store.finish_assistant_turn(
            deps.database,
            ctx,
            turn,
            assistant_turn_id=stored.assistant_turn_id,
            status=TurnStatus.DELIVERING if status is TurnStatus.COMPLETE else status,
            text=state.text,
            model=spec.name,
            usage=state.usage,
            finish_reason=state.finish_reason,
            request_id=state.request_id,
            error=error,
            request_audio_seconds=request_audio,
            user_audio_seconds=sent_seconds,
            started_at=state.started_at,
            first_token_at=state.first_token_at,
            record_usage=status is not TurnStatus.FAILED or has_usage(state.usage),
        )
    except Exception as exc:
        # The user still gets the reply; the turn stays "streaming" until the next start-up
        # marks it failed, so it is never replayed as a complete answer.
        log.error(
            "turn.store_reply_failed",
            assistant_turn_id=stored.assistant_turn_id,
            error=type(exc).__name__,
        )
    observe(deps.metrics, labels, status, state, began, sent_seconds)
    log.info(
        "turn.finished",
        platform=platform,
        conversation_id=ctx.conversation_id,
        user_turn_id=stored.user_turn_id,
        assistant_turn_id=stored.assistant_turn_id,
        model=spec.name,
        kind=shape.kind.value,
        status=status.value,
        clips=len(sent),
        history_pairs=len(plan.history),
        estimated_tokens=plan.estimated_tokens,
        input_tokens=state.usage.input_tokens,
        output_tokens=state.usage.output_tokens,
        reply_chars=len(state.text),
        duration=round(time.monotonic() - began, 3),
        error=type(error).__name__ if error else None,
    )
    base = TurnOutcome(
        status="failed",
        conversation_id=ctx.conversation_id,
        user_turn_id=stored.user_turn_id,
        assistant_turn_id=stored.assistant_turn_id,
        audio_seconds_sent=sent_seconds if prepared is not None else None,
    )
    if error is not None:
        shown = await safe_fail(sink, error, state.text)
        return replace(base, error=error, message_ids=shown)

    reply = FinalReply(
        text=state.text,
        status="stopped" if stopped else "complete",
        model=spec.name,
        finish_reason=state.finish_reason,
        notes=tuple(notes),
        audio_info=state.audio_info,
        usage=state.usage,
    )
    try:
        message_ids = tuple(await sink.finish(reply))
    except Exception as exc:
        undelivered = exc if isinstance(exc, Undelivered) else Undelivered(cause=exc)
        log.warning(
            "turn.undelivered",
            platform=platform,
            assistant_turn_id=stored.assistant_turn_id,
            error=undelivered.code,
        )
        await _record_delivery(
            deps,
            stored.assistant_turn_id,
            status=TurnStatus.UNDELIVERED if status is TurnStatus.COMPLETE else status,
            error_code=undelivered.code,
        )
        return replace(base, status="undelivered", error=undelivered, reply=reply)
    await _record_delivery(deps, stored.assistant_turn_id, status=status, message_ids=message_ids)
    return replace(base, status=reply.status, reply=reply, message_ids=message_ids)


async def _record_delivery(
    deps: TurnDeps,
    assistant_turn_id: int,
    *,
    status: TurnStatus,
    message_ids: tuple[str, ...] | None = None,
    error_code: str | None = None,
) -> None:
    try:
        await store.record_delivery(
            deps.database,
            assistant_turn_id,
            status=status,
            message_ids=message_ids,
            error_code=error_code,
        )
    except Exception as exc:
        # The reply stays "delivering"; the next start-up marks it undelivered, so it is
        # delivered (again) rather than lost.
        log.error(
            "turn.store_delivery_failed",
            assistant_turn_id=assistant_turn_id,
            error=type(exc).__name__,
        )


async def _deliver_pending(
    deps: TurnDeps, ctx: store.TurnContext, turn: IncomingTurn, sink: ReplySink
) -> bool:
    """Deliver the replies earlier turns of this thread could not, before this one's.

    Returns whether any was delivered (history changed)."""
    try:
        pending = await store.undelivered(deps.database, ctx, turn)
    except Exception as exc:
        log.error("turn.load_undelivered_failed", error=type(exc).__name__)
        return False
    delivered = False
    for reply in pending:
        body = f"_{texts.DELIVERED_LATE}_\n\n{reply.text}"
        try:
            ids = await sink.deliver_late(body, reply_to=reply.source_message_id)
        except Exception as exc:
            code = exc.code if isinstance(exc, Undelivered) else type(exc).__name__
            log.warning("turn.late_delivery_failed", assistant_turn_id=reply.turn_id, error=code)
            break
        log.info("turn.delivered_late", assistant_turn_id=reply.turn_id, messages=len(ids))
        await _record_delivery(
            deps, reply.turn_id, status=TurnStatus.COMPLETE, message_ids=tuple(ids)
        )
        delivered = True
    return delivered


async def _audio_failed(
    deps: TurnDeps,
    ctx: store.TurnContext,
    turn: IncomingTurn,
    sink: ReplySink,
    kind: TurnKind,
    labels: tuple[str, str, str],
    error: BotError,
) -> TurnOutcome:
    """Download or conversion failed: keep the user turn (``failed``), tell the user."""
    if isinstance(error, AudioError):
        deps.metrics.audio_errors.labels(type(error).__name__).inc()
    log.info("turn.audio_failed", error=type(error).__name__)
    user_turn_id = await store.store_failed_user_turn(deps.database, ctx, turn, kind, error=error)
    shown = await safe_fail(sink, error, "")
    deps.metrics.turns.labels(*labels, "failed").inc()
    return TurnOutcome(
        status="failed",
        conversation_id=ctx.conversation_id,
        user_turn_id=user_turn_id,
        error=error,
        message_ids=shown,
    )
