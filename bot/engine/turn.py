"""One turn, start to finish, inside its conversation's lock.

Order of work, so that nothing is lost and the stored conversation stays consistent
whatever step fails:

1. load the chat, its settings and the conversation's turns; deliver the replies earlier
   turns of this thread could not (``undelivered``); decide the turn kind (a request the
   model cannot serve is answered here, before anything is stored);
2. ``sink.start()``; get the audio (stored clips of the same recording, or download and
   convert) — a failure stores the user turn as ``failed`` with no reply (a recording
   too short to hear, an accidental tap, stores nothing: it is no message); a thread's
   first turn then opens its conversation with the message the thread replies to
   (:mod:`bot.engine.seeding`, committed on its own: it is history whatever follows);
3. plan the request within the model's input budget;
4. commit the user turn, its clips and a ``pending`` assistant turn;
5. stream the model's reply (``streaming``) to the sink, until it finishes, fails or is
   stopped; then store the assistant turn (``delivering``, or ``failed``/``stopped``) with
   model, usage, finish reason and timings, and record usage;
6. deliver the final text: ``complete`` once the platform confirmed all of it, else
   ``undelivered`` (the text is kept and delivered at the thread's next message);
7. a spoken reply (:mod:`bot.engine.speech`): the speech the model streamed, encoded
   while the text goes out — or, for a model that cannot speak, the TTS of its text,
   started on the first sentences while it was still writing — is sent as a voice note
   after it, once (its id and duration stored with the reply, TTS characters in the
   usage ledger); a failure leaves the text and says so.

A turn whose job is run again (its process died mid-turn, see :mod:`bot.queue`) finds what
the earlier run stored: an answer the user already saw ends it there (never answered
twice); a reply generated whole is delivered from storage; otherwise it is answered again
in the same rows, from the stored clips (no second download or conversion), after the
half-streamed messages are removed, with a note that the answer was restarted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Literal

import structlog
from sqlalchemy.exc import SQLAlchemyError

from bot import texts
from bot.audio.types import AudioConverter, Segment
from bot.catalog import ModelKind, ModelSpec, get_tts_model
from bot.config import Settings
from bot.engine import chat_store, seeding, speech, store, transcripts
from bot.engine.domain import TranscriptMode, TurnStatus
from bot.engine.history import RequestPlan, audio_budget_seconds, plan_request
from bot.engine.ports import FinalReply, IncomingTurn, ReplySink, TurnOutcome, VoiceNoteSent
from bot.engine.recordings import PreparedAudio, prepare_recordings
from bot.engine.requests import (
    TurnKind,
    TurnShape,
    audio_info_note,
    build_messages,
    generation_params,
    left_out_note,
    length_notes,
    replay_instruction,
    shape_turn,
)
from bot.engine.streaming import ReplyState, SinkBroken, has_usage, observe, stream_reply
from bot.errors import (
    AudioError,
    AudioTooShort,
    BotError,
    ModelAccessDenied,
    ModelAuthError,
    ModelError,
    ModelNotFoundError,
    TurnAbandoned,
    Undelivered,
)
from bot.i18n import Msg, tr
from bot.llm.types import SPEECH_SAMPLE_RATE, ModelClient, SpeechSynthesizer
from bot.metrics import Metrics
from bot.storage.database import Database
from bot.storage.tables import utcnow

log = structlog.get_logger(__name__)

# The database failing mid-turn ends the run, not the turn: its job runs again (bot.queue)
# and resumes from what was stored, instead of telling the user something went wrong.
STORAGE_ERRORS = (SQLAlchemyError,)


@dataclass(kw_only=True)
class TurnDeps:
    """What running a turn needs (built once by the engine)."""

    settings: Settings
    database: Database
    model_client: ModelClient
    audio: AudioConverter
    metrics: Metrics
    transcriber: transcripts.Transcriber
    # Text to speech for models that cannot speak themselves (bot.engine.speech.synthesize)
    # with this TTS model; ``None``: such models answer in text only.
    synthesizer: SpeechSynthesizer | None = None
    tts_model: str | None = None
    # Until when (monotonic) the TTS is not tried: DashScope said the TTS model does not
    # exist or is not available to the key, which no retry of the next turn changes.
    tts_down_until: float = 0.0


# How long a TTS the key cannot use is left alone before it is tried again (an operator
# may fix the key or the model meanwhile); the replies are text only until then.
TTS_UNAVAILABLE_PAUSE = 600.0
# What DashScope answers when the TTS model is not there for this key.
_TTS_UNAVAILABLE = (ModelNotFoundError, ModelAuthError, ModelAccessDenied)


async def safe_fail(sink: ReplySink, error: BotError, partial: str) -> tuple[str, ...]:
    """``sink.fail`` that never raises (returns no message ids if the platform is down)."""
    try:
        return tuple(await sink.fail(error, partial))
    except Exception as exc:  # the platform is unreachable: nothing more to show
        log.warning("sink.fail_failed", error=type(exc).__name__)
        return ()


class _Ended(Exception):
    """A phase ended the turn early; ``outcome`` says how (never escapes this module)."""

    def __init__(self, outcome: TurnOutcome) -> None:
        super().__init__(outcome.status)
        self.outcome = outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class _Heard:
    """The current turn's audio as planned: what goes out and what the reply notes."""

    plan: RequestPlan
    prepared: PreparedAudio | None
    sent: tuple[Segment, ...]
    notes: tuple[str, ...]

    @property
    def sent_seconds(self) -> float:
        return sum(c.duration for c in self.sent)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Generated:
    state: ReplyState
    error: BotError | None
    stopped: bool
    voice: bool = False  # a spoken reply was wanted
    # The TTS speaking the reply as it was written (a model without speech output).
    synthesis: speech.Synthesis | None = None

    @property
    def status(self) -> TurnStatus:
        if self.error is not None:
            return TurnStatus.FAILED
        return TurnStatus.STOPPED if self.stopped else TurnStatus.COMPLETE


async def run_turn(
    deps: TurnDeps, turn: IncomingTurn, sink: ReplySink, stop: asyncio.Event
) -> TurnOutcome:
    """Run one turn; never raises for expected failures (the outcome says what happened)."""
    run = _TurnRun(deps=deps, turn=turn, sink=sink, stop=stop)
    try:
        return await run.execute()
    except _Ended as end:
        return end.outcome
    except BaseException:
        # Cancelled, or the database failed: its job runs again (bot.queue) and replaces
        # what was shown; nothing more is shown from here.
        sink.interrupt()
        raise


class _TurnRun:
    """One turn's phases, in the order of the module docstring."""

    def __init__(
        self, *, deps: TurnDeps, turn: IncomingTurn, sink: ReplySink, stop: asyncio.Event
    ) -> None:
        self.deps = deps
        self.turn = turn
        self.sink = sink
        self.stop = stop
        self.began = time.monotonic()
        self.platform = turn.chat.platform

    async def execute(self) -> TurnOutcome:
        ctx, shape = await self.admit()
        labels = (self.platform, ctx.spec.name, shape.kind.value)
        earlier = ctx.earlier
        if earlier is not None:
            if earlier.answered:
                log.info("turn.already_answered", assistant_turn_id=earlier.assistant_turn_id)
                return TurnOutcome(
                    status="duplicate",
                    conversation_id=ctx.conversation_id,
                    user_turn_id=earlier.user_turn_id,
                    assistant_turn_id=earlier.assistant_turn_id,
                )
            if earlier.generated:
                return await self.redeliver(ctx, earlier)
            log.info("turn.restarted", assistant_turn_id=earlier.assistant_turn_id)
            await self.sink.remove(earlier.message_ids)
        await self.show_working(ctx)
        prepared = await self.hear(ctx, shape, labels)
        ctx, opening = await self.open_thread(ctx, shape, prepared)
        heard = await self.plan(ctx, shape, prepared, labels)
        stored = await self.commit(ctx, shape, heard, labels)
        generated = await self.generate(ctx, heard, stored)
        restarted = (tr(texts.REPLY_RESTARTED),) if earlier is not None else ()
        retired = self.retired_note(ctx)
        notes = (*retired, *heard.notes, *opening, *self.reply_notes(generated), *restarted)
        await self.store_reply(ctx, heard, stored, generated)
        observe(
            self.deps.metrics,
            labels,
            generated.status,
            generated.state,
            self.began,
            heard.sent_seconds,
        )
        self.log_finished(ctx, shape, heard, stored, generated)
        base = TurnOutcome(
            status="failed",
            conversation_id=ctx.conversation_id,
            user_turn_id=stored.user_turn_id,
            assistant_turn_id=stored.assistant_turn_id,
            audio_seconds_sent=heard.sent_seconds if heard.prepared is not None else None,
        )
        durations = tuple(c.duration for c in heard.sent)
        voice = self.voice_phase(ctx, generated)
        try:
            outcome = await self.deliver(ctx, base, stored, generated, notes, durations, voice)
        finally:
            if voice is not None:
                voice.cancel()
            if generated.synthesis is not None:
                generated.synthesis.cancel()
        await self.note_availability(ctx, generated, outcome)
        if retired and outcome.status in ("complete", "stopped"):
            # Told once: only a reply the user saw with the note counts.
            assert ctx.view.retired_model is not None
            try:
                await chat_store.record_retired_notice(
                    self.deps.database, chat_row_id=ctx.chat_row_id, model=ctx.view.retired_model
                )
            except Exception as exc:  # the reply is delivered: at worst the note comes again
                log.warning("turn.retired_notice_not_stored", error=type(exc).__name__)
        return outcome

    async def note_availability(
        self, ctx: store.TurnContext, generated: _Generated, outcome: TurnOutcome
    ) -> None:
        """Remember for the admins' /settings that DashScope cannot serve the chat's model
        (it does not exist, or not for this key), or forget it once a turn on it worked."""
        model = ctx.spec.name
        unavailable = isinstance(generated.error, ModelNotFoundError)
        if not unavailable and (
            outcome.status != "complete" or ctx.view.model_unavailable != model
        ):
            return
        try:
            await chat_store.record_model_availability(
                self.deps.database,
                chat_row_id=ctx.chat_row_id,
                model=model,
                available=not unavailable,
            )
        except Exception as exc:  # a note for admins; the turn itself is done
            log.warning("turn.availability_not_stored", error=type(exc).__name__)

    def retired_note(self, ctx: store.TurnContext) -> tuple[str, ...]:
        """The once-per-chat note that the chat's stored model was retired and replaced."""
        view = ctx.view
        if not view.retired_notice_due or self.turn.model is not None:
            return ()
        text = tr(texts.MODEL_RETIRED_REPLACED).format(
            model=view.retired_model, replacement=view.model
        )
        return (text,)

    async def ended(
        self,
        status: Literal["refused", "failed"],
        ctx: store.TurnContext,
        labels: tuple[str, str, str],
        error: BotError,
    ) -> _Ended:
        """Tell the user why the turn ends here, count it, and say how it ended."""
        shown = await safe_fail(self.sink, error, "")
        self.deps.metrics.turns.labels(*labels, status).inc()
        return _Ended(
            TurnOutcome(
                status=status,
                conversation_id=ctx.conversation_id,
                error=error,
                message_ids=shown,
            )
        )

    async def redeliver(self, ctx: store.TurnContext, earlier: store.EarlierRun) -> TurnOutcome:
        """The earlier run stored the whole reply but died delivering it: deliver it."""
        assert earlier.assistant_turn_id is not None
        body = f"{earlier.text}\n\n_{tr(texts.REPLY_RESTARTED)}_"
        base = TurnOutcome(
            status="complete",
            conversation_id=ctx.conversation_id,
            user_turn_id=earlier.user_turn_id,
            assistant_turn_id=earlier.assistant_turn_id,
        )
        try:
            ids = tuple(
                await self.sink.deliver_late(
                    body, reply_to=self.turn.source_message_id, stale=earlier.message_ids
                )
            )
        except Exception as exc:
            undelivered = exc if isinstance(exc, Undelivered) else Undelivered(cause=exc)
            await _record_delivery(
                self.deps,
                earlier.assistant_turn_id,
                status=TurnStatus.UNDELIVERED,
                message_ids=undelivered.visible_ids,
                error_code=undelivered.code,
            )
            return replace(base, status="undelivered", error=undelivered)
        await _record_delivery(
            self.deps, earlier.assistant_turn_id, status=TurnStatus.COMPLETE, message_ids=ids
        )
        log.info("turn.redelivered", assistant_turn_id=earlier.assistant_turn_id)
        return replace(base, message_ids=ids)

    # --- 1. admit: context, pending deliveries, the turn's kind -------------------------

    async def admit(self) -> tuple[store.TurnContext, TurnShape]:
        deps, turn = self.deps, self.turn
        try:
            ctx = await store.load_context(deps.database, deps.settings, turn)
            if await _deliver_pending(deps, ctx, turn, self.sink):
                # The replies just delivered are history now.
                ctx = await store.load_context(deps.database, deps.settings, turn)
            shape = shape_turn(ctx.spec, text=turn.text, has_audio=bool(turn.recordings))
        except BotError as exc:
            await safe_fail(self.sink, exc, "")
            deps.metrics.turns.labels(self.platform, "-", "-", "refused").inc()
            raise _Ended(TurnOutcome(status="refused", error=exc)) from exc
        return ctx, shape

    async def show_working(self, ctx: store.TurnContext) -> None:
        try:
            await self.sink.start()
        except Exception as exc:
            log.warning("sink.start_failed", error=type(exc).__name__)
            self.deps.metrics.platform_errors.labels(self.platform, "start").inc()
            raise _Ended(
                TurnOutcome(status="failed", conversation_id=ctx.conversation_id, error=BotError())
            ) from exc

    # --- 2. hear: reuse stored clips, or fetch and convert ------------------------------

    async def hear(
        self, ctx: store.TurnContext, shape: TurnShape, labels: tuple[str, str, str]
    ) -> PreparedAudio | None:
        deps, turn = self.deps, self.turn
        if not turn.recordings:
            return None
        try:
            return await prepare_recordings(
                turn.recordings,
                spec=ctx.spec,
                converter=deps.audio,
                database=deps.database,
                chat_row_id=ctx.chat_row_id,
                max_bytes=deps.settings.AUDIO_MAX_BYTES,
                budget_seconds=audio_budget_seconds(
                    ctx.spec, system_prompt=ctx.view.system_prompt, current_text=shape.model_text
                ),
                metrics=deps.metrics,
            )
        except AudioTooShort as short:
            # A tap on the record button is no message: said so, and nothing stored.
            deps.metrics.audio_errors.labels(type(short).__name__).inc()
            raise await self.ended("refused", ctx, labels, short) from short
        except Exception as raw:
            error = raw if isinstance(raw, BotError) else BotError(type(raw).__name__)
            raise _Ended(
                await _audio_failed(deps, ctx, turn, self.sink, shape.kind, labels, error)
            ) from raw

    # --- 2b. a thread's first turn: start from the message it replies to ---------------

    async def open_thread(
        self, ctx: store.TurnContext, shape: TurnShape, prepared: PreparedAudio | None
    ) -> tuple[store.TurnContext, tuple[str, ...]]:
        """Open a new thread's conversation with its parent (bot.engine.seeding); returns
        the context with that history, and the notes for the reply."""
        if not seeding.wanted(ctx, self.turn):
            return ctx, ()
        deps = self.deps
        opening = await seeding.open_thread(
            seeding.SeedDeps(
                database=deps.database,
                converter=deps.audio,
                metrics=deps.metrics,
                max_bytes=deps.settings.AUDIO_MAX_BYTES,
            ),
            ctx,
            self.turn,
            current_text=shape.model_text,
            current=prepared,
        )
        if opening.seeded:
            ctx = await store.load_context(deps.database, deps.settings, self.turn)
        return ctx, opening.notes

    # --- 3. plan within the model's budget ------------------------------------------------

    async def plan(
        self,
        ctx: store.TurnContext,
        shape: TurnShape,
        prepared: PreparedAudio | None,
        labels: tuple[str, str, str],
    ) -> _Heard:
        clips = prepared.clips if prepared else ()
        try:
            plan = plan_request(
                ctx.spec,
                system_prompt=ctx.view.system_prompt,
                current_text=shape.model_text,
                current_clips=[c.duration for c in clips],
                history=ctx.history,
                instruction=replay_instruction(ctx.spec),
            )
        except BotError as exc:
            raise await self.ended("refused", ctx, labels, exc) from exc
        sent = tuple(clips[: plan.current_clips])
        notes = list(shape.notes)
        if prepared is not None:
            note = left_out_note(
                sent=sum(c.duration for c in sent),
                total=prepared.total_seconds,
                truncated=prepared.truncated,
            )
            if note:
                notes.append(note)
            # Cut-off or mis-sized files are answered with what was heard, never silently.
            notes.extend(length_notes(prepared.mismatches))
        return _Heard(plan=plan, prepared=prepared, sent=sent, notes=tuple(notes))

    # --- 4. commit the user turn first ------------------------------------------------------

    async def commit(
        self,
        ctx: store.TurnContext,
        shape: TurnShape,
        heard: _Heard,
        labels: tuple[str, str, str],
    ) -> store.StoredTurns:
        try:
            earlier = ctx.earlier
            if earlier is not None:
                return await store.reuse_turn_pair(
                    self.deps.database, ctx, earlier, plan=heard.plan
                )
            return await store.store_turn_pair(
                self.deps.database,
                ctx,
                self.turn,
                shape.kind,
                plan=heard.plan,
                prepared=heard.prepared,
                sent=heard.sent,
            )
        except STORAGE_ERRORS:
            raise  # the job runs again (bot.queue) and resumes from what was stored
        except Exception as exc:
            log.error("turn.store_failed", error=type(exc).__name__)
            raise await self.ended("failed", ctx, labels, BotError(type(exc).__name__)) from exc

    # --- 5. stream the model's reply --------------------------------------------------------

    async def generate(
        self, ctx: store.TurnContext, heard: _Heard, stored: store.StoredTurns
    ) -> _Generated:
        deps, spec = self.deps, ctx.spec
        messages = build_messages(
            heard.plan, spec=spec, current_audio=heard.sent, history_audio=stored.history_audio
        )
        voice = speech.voice_wanted(ctx.view, self.turn)
        params = generation_params(ctx.view, spec, speak=voice, voice=ctx.view.voice)
        state = ReplyState()
        error: BotError | None = None
        stopped = False
        turn_id = stored.assistant_turn_id
        synthesis = self.start_synthesis(ctx, state) if voice else None

        async def visible(ids: list[str]) -> None:
            await store.record_visible(deps.database, turn_id, ids)

        self.sink.track(visible)
        await store.mark_streaming(deps.database, stored.assistant_turn_id)
        deps.metrics.in_flight.inc()
        try:
            state.started_at = utcnow()
            stopped = await stream_reply(
                deps.model_client,
                spec.name,
                messages,
                params,
                self.sink,
                self.stop,
                state,
                on_text=synthesis.feed if synthesis is not None else None,
            )
        except ModelError as exc:
            error = exc
            deps.metrics.model_errors.labels(type(exc).__name__).inc()
        except SinkBroken as exc:
            error = exc
            deps.metrics.platform_errors.labels(self.platform, "update").inc()
        except Exception as exc:  # a bug: the user still gets an answer
            log.error("turn.stream_failed", error=type(exc).__name__)
            error = BotError(type(exc).__name__)
        finally:
            deps.metrics.in_flight.dec()
        if error is None and not stopped and not state.text.strip():
            error = ModelError("empty reply", user_message=texts.EMPTY_REPLY)
        if synthesis is not None and (error is not None or stopped):
            synthesis.cancel()  # only a complete reply is spoken
            synthesis = None
        return _Generated(
            state=state, error=error, stopped=stopped, voice=voice, synthesis=synthesis
        )

    def start_synthesis(self, ctx: store.TurnContext, state: ReplyState) -> speech.Synthesis | None:
        """The TTS of this reply, fed while the model writes (``None``: the model speaks
        itself, or no TTS is configured)."""
        deps = self.deps
        if not self._can_synthesize(ctx.spec):
            return None
        assert deps.synthesizer is not None and deps.tts_model is not None
        tts = get_tts_model(deps.tts_model)
        if tts is None or tts.sample_rate != SPEECH_SAMPLE_RATE:
            return None  # the voice note is encoded from 24 kHz PCM only
        chosen = ctx.view.voice
        return speech.Synthesis(
            deps.synthesizer,
            model=tts.name,
            voice=chosen if chosen in tts.voices else tts.voices[0],
            language=None,  # the service's Auto: it hears the text's language
            into=state.speech,
            limit=tts.max_chars,
            max_seconds=deps.settings.VOICE_REPLY_MAX_SECONDS,
        )

    @staticmethod
    def reply_notes(generated: _Generated) -> list[str]:
        notes: list[str] = []
        state = generated.state
        if state.finish_reason == "length" and generated.status is TurnStatus.COMPLETE:
            notes.append(tr(texts.REPLY_CUT_AT_LIMIT))
        info_note = audio_info_note(state.audio_info)
        if info_note:
            notes.append(info_note)
        if generated.stopped:
            notes.append(tr(texts.REPLY_STOPPED))
        return notes

    # --- 6. store the reply (then 7. show it) ---------------------------------------------

    async def store_reply(
        self,
        ctx: store.TurnContext,
        heard: _Heard,
        stored: store.StoredTurns,
        generated: _Generated,
    ) -> None:
        state, status = generated.state, generated.status
        # A reply is complete only once the platform confirmed all of it: until then it is
        # "delivering" (a crash leaves it "undelivered", to be delivered later).
        record = store.ReplyRecord(
            assistant_turn_id=stored.assistant_turn_id,
            status=TurnStatus.DELIVERING if status is TurnStatus.COMPLETE else status,
            text=state.text,
            model=ctx.spec.name,
            usage=state.usage,
            finish_reason=state.finish_reason,
            request_id=state.request_id,
            error=generated.error,
            # The reply's audio figure is everything the request carried, history included.
            request_audio_seconds=heard.sent_seconds
            + sum(c.duration for p in heard.plan.history for c in p.clips),
            user_audio_seconds=heard.sent_seconds,
            started_at=state.started_at,
            first_token_at=state.first_token_at,
            record_usage=status is not TurnStatus.FAILED or has_usage(state.usage),
        )
        try:
            await store.finish_assistant_turn(self.deps.database, ctx, self.turn, record)
        except Exception as exc:
            # The reply is not on record: the job runs again and answers it afresh,
            # replacing what this run showed (never a reply stored complete but empty).
            log.error(
                "turn.store_reply_failed",
                assistant_turn_id=stored.assistant_turn_id,
                error=type(exc).__name__,
            )
            raise

    def log_finished(
        self,
        ctx: store.TurnContext,
        shape: TurnShape,
        heard: _Heard,
        stored: store.StoredTurns,
        generated: _Generated,
    ) -> None:
        state, error = generated.state, generated.error
        log.info(
            "turn.finished",
            platform=self.platform,
            conversation_id=ctx.conversation_id,
            user_turn_id=stored.user_turn_id,
            assistant_turn_id=stored.assistant_turn_id,
            model=ctx.spec.name,
            kind=shape.kind.value,
            status=generated.status.value,
            clips=len(heard.sent),
            history_pairs=len(heard.plan.history),
            estimated_tokens=heard.plan.estimated_tokens,
            input_tokens=state.usage.input_tokens,
            output_tokens=state.usage.output_tokens,
            reply_chars=len(state.text),
            duration=round(time.monotonic() - self.began, 3),
            error=type(error).__name__ if error else None,
        )

    # --- 7. deliver: complete only once the platform confirmed all of it ------------------

    async def deliver(
        self,
        ctx: store.TurnContext,
        base: TurnOutcome,
        stored: store.StoredTurns,
        generated: _Generated,
        notes: tuple[str, ...],
        clips: tuple[float, ...],
        voice: speech.VoicePhase | None = None,
    ) -> TurnOutcome:
        state, status, error = generated.state, generated.status, generated.error
        if error is not None:
            shown = await safe_fail(self.sink, error, state.text)
            return replace(base, error=error, message_ids=shown)
        if voice is not None:
            cut = voice.cut_note()
            notes = (*notes, cut) if cut else notes
            voice.start_encoding()
        # A reply to a recording offers its transcript: a button, or (complete replies
        # in chats that chose "always") the transcript posted after it.
        offer = transcripts.offer(ctx.view, ctx.spec, clips)
        post = offer is TranscriptMode.ALWAYS and not generated.stopped
        reply = FinalReply(
            text=state.text,
            status="stopped" if generated.stopped else "complete",
            model=ctx.spec.name,
            finish_reason=state.finish_reason,
            notes=notes,
            audio_info=state.audio_info,
            usage=state.usage,
            transcript_of=stored.assistant_turn_id
            if offer is not TranscriptMode.OFF and not post
            else None,
        )
        try:
            message_ids = tuple(await self.sink.finish(reply))
        except Exception as exc:
            undelivered = exc if isinstance(exc, Undelivered) else Undelivered(cause=exc)
            log.warning(
                "turn.undelivered",
                platform=self.platform,
                assistant_turn_id=stored.assistant_turn_id,
                error=undelivered.code,
            )
            await _record_delivery(
                self.deps,
                stored.assistant_turn_id,
                status=TurnStatus.UNDELIVERED if status is TurnStatus.COMPLETE else status,
                message_ids=undelivered.visible_ids,  # replaced when it is delivered
                error_code=undelivered.code,
            )
            return replace(base, status="undelivered", error=undelivered, reply=reply)
        await _record_delivery(
            self.deps, stored.assistant_turn_id, status=status, message_ids=message_ids
        )
        spoken = await self.send_voice(ctx, stored, generated, voice)
        if post:
            await self.post_transcript(ctx, stored)
        return replace(
            base, status=reply.status, reply=reply, message_ids=message_ids, voice_note=spoken
        )

    # --- 7b. the spoken reply, after the text ---------------------------------------------

    def voice_phase(
        self, ctx: store.TurnContext, generated: _Generated
    ) -> speech.VoicePhase | None:
        """The voice note's phase if the reply is to be spoken (a complete reply only)."""
        if not generated.voice or generated.status is not TurnStatus.COMPLETE:
            return None
        state = generated.state
        if not len(state.speech) and generated.synthesis is None:
            return None
        return speech.VoicePhase(
            state.speech,
            max_seconds=self.deps.settings.VOICE_REPLY_MAX_SECONDS,
            pending=generated.synthesis is not None,
        )

    def _can_synthesize(self, spec: ModelSpec) -> bool:
        deps = self.deps
        # A chat model's reply only: a transcript or a caption is read, not listened to.
        return (
            spec.kind is ModelKind.CHAT
            and not spec.speech_output
            and deps.synthesizer is not None
            and bool(deps.tts_model)
            and time.monotonic() >= deps.tts_down_until
        )

    async def send_voice(
        self,
        ctx: store.TurnContext,
        stored: store.StoredTurns,
        generated: _Generated,
        voice: speech.VoicePhase | None,
    ) -> VoiceNoteSent | None:
        """Send the voice note once (never again on a resumed turn) and record it."""
        if voice is None:
            return None
        deps, turn_id = self.deps, stored.assistant_turn_id
        synthesis = generated.synthesis
        if synthesis is not None:
            if not await self.synthesize(ctx, generated, synthesis, turn_id):
                return None
            voice.speech_complete()
        note = await voice.note()
        if note is None:
            return None  # nothing was spoken: no voice note (never an empty one)
        if await store.voice_note_sent(deps.database, turn_id):
            return None
        message_id = await speech.VoicePhase.send(self.sink, note)
        if message_id is None:
            return None
        if (
            note.truncated or (synthesis is not None and synthesis.truncated)
        ) and not voice.cut_said:
            # TTS speech is measured only once it is made, after the text went out.
            await voice.say_cut(self.sink)
        await store.record_voice_note(
            deps.database,
            ctx,
            self.turn,
            assistant_turn_id=turn_id,
            model=ctx.spec.name,
            message_id=message_id,
            seconds=note.seconds,
        )
        log.info("turn.voice_sent", assistant_turn_id=turn_id, seconds=round(note.seconds, 2))
        return VoiceNoteSent(message_id=message_id, seconds=note.seconds)

    async def synthesize(
        self,
        ctx: store.TurnContext,
        generated: _Generated,
        synthesis: speech.Synthesis,
        turn_id: int,
    ) -> bool:
        """Wait for the TTS of the final text (started while the model wrote) and record
        the characters it billed. On failure the text stands and a short note says so;
        returns whether there is speech to send."""
        try:
            await synthesis.finish(generated.state.text)
        except BotError as exc:
            log.warning(
                "turn.tts_failed",
                error=type(exc).__name__,
                code=exc.code if isinstance(exc, ModelError) else None,
                requests=synthesis.requests,
            )
            if isinstance(exc, _TTS_UNAVAILABLE):
                # The deployment's key cannot use the TTS model: an operator's problem,
                # not the user's; replies are text only (and say nothing) for a while.
                self.deps.tts_down_until = time.monotonic() + TTS_UNAVAILABLE_PAUSE
                self.deps.metrics.model_errors.labels(type(exc).__name__).inc()
                return False
            await speech.VoicePhase.say_not_made(self.sink)
            return False
        finally:
            await self.record_tts(ctx, synthesis, turn_id)
        return True

    async def record_tts(
        self, ctx: store.TurnContext, synthesis: speech.Synthesis, turn_id: int
    ) -> None:
        """The TTS characters of this reply in the usage ledger (best effort)."""
        if not synthesis.chars or self.deps.tts_model is None:
            return
        try:
            await store.record_tts_usage(
                self.deps.database,
                ctx,
                self.turn,
                assistant_turn_id=turn_id,
                model=self.deps.tts_model,
                characters=synthesis.chars,
            )
        except Exception as exc:  # the reply is done; a lost count is only logged
            log.warning("turn.tts_usage_not_stored", error=type(exc).__name__)

    async def post_transcript(self, ctx: store.TurnContext, stored: store.StoredTurns) -> None:
        """``transcript always``: the transcript of the recording, after the reply. Best
        effort: the reply is delivered and stored whatever happens here."""
        transcriber = self.deps.transcriber
        message: str | BotError
        try:
            request = await transcriber.find_in(
                chat_row_id=ctx.chat_row_id, assistant_turn_id=stored.assistant_turn_id
            )
            made = await transcriber.transcribe(
                request, user_id=self.turn.user_id, platform=self.platform
            )
            if made is None:
                return
            message = made.text
        except BotError as exc:
            message = BotError(
                "transcript failed",
                user_message=Msg(texts.TRANSCRIPT_FAILED, reason=exc.message_text),
            )
        except Exception as exc:  # e.g. the database: the reply itself is done
            log.error(
                "turn.transcript_failed",
                assistant_turn_id=stored.assistant_turn_id,
                error=type(exc).__name__,
            )
            return
        try:
            await self.sink.follow_up(message)
        except Exception as exc:
            log.warning(
                "turn.transcript_undelivered",
                assistant_turn_id=stored.assistant_turn_id,
                error=exc.code if isinstance(exc, Undelivered) else type(exc).__name__,
            )


async def abandon_turn(deps: TurnDeps, turn: IncomingTurn, sink: ReplySink) -> TurnOutcome:
    """Every run of this turn's job crashed or stalled: end it with an apology, stored as
    ``failed`` (an answer the user already saw is left alone)."""
    error = TurnAbandoned()
    try:
        ctx = await store.load_context(deps.database, deps.settings, replace(turn, attempt=1))
    except STORAGE_ERRORS as exc:  # the apology needs no database
        log.warning("turn.abandoned", error=type(exc).__name__)
        return TurnOutcome(
            status="failed", error=error, message_ids=await safe_fail(sink, error, "")
        )
    earlier = ctx.earlier
    if earlier is not None and earlier.answered:
        return TurnOutcome(status="duplicate", conversation_id=ctx.conversation_id)
    if earlier is not None and earlier.assistant_turn_id is not None:
        await sink.remove(earlier.message_ids)
        await _record_delivery(
            deps, earlier.assistant_turn_id, status=TurnStatus.FAILED, error_code="abandoned"
        )
    log.warning("turn.abandoned", conversation_id=ctx.conversation_id)
    deps.metrics.turns.labels(turn.chat.platform, ctx.spec.name, "-", "failed").inc()
    shown = await safe_fail(sink, error, "")
    return TurnOutcome(
        status="failed", conversation_id=ctx.conversation_id, error=error, message_ids=shown
    )


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
        # The reply stays "delivering" with the messages it occupies on record: the job
        # runs again and replaces them (one answer shown), rather than a later start-up
        # delivering it a second time.
        log.error(
            "turn.store_delivery_failed",
            assistant_turn_id=assistant_turn_id,
            error=type(exc).__name__,
        )
        raise


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
        body = f"_{tr(texts.DELIVERED_LATE)}_\n\n{reply.text}"
        try:
            ids = await sink.deliver_late(
                body, reply_to=reply.source_message_id, stale=reply.message_ids
            )
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
