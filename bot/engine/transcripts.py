"""Transcripts on demand: the stored clips of the turn a reply answers, through
``qwen3-asr-flash``, made once per clip and reused after.

Under a reply to a recording the bot offers a Transcript button (the chat setting
``transcript``: ``button``, ``always``, ``off``). A press names the reply (its assistant
turn id); :meth:`Transcriber.find` checks, with SQL only, that the reply is this chat's
and that the clips it answered are still stored, and :meth:`Transcriber.transcribe` sends
each clip without a stored transcript to the ASR model — the bytes exactly as stored, no
second download or conversion — stores what it heard (one row per clip: a second press
costs nothing), records the usage, and returns the text to post, with the detected
language. A model error stores nothing (the next press tries again).

Two presses at once in one process make one transcript (the second waits and posts
nothing); two replicas may both ask the model, and the unique clip id keeps one row.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import texts
from bot.audio.report import format_duration
from bot.catalog import CATALOG, ModelKind, ModelSpec
from bot.engine.domain import TranscriptMode
from bot.engine.ports import ChatRef
from bot.engine.settings import ChatSettingsView
from bot.engine.streaming import ReplyState
from bot.errors import BotError, ModelError, TranscriptUnavailable
from bot.i18n import Msg, tr
from bot.llm.types import (
    AudioPart,
    ChatMessage,
    GenerationParams,
    ModelClient,
    Usage,
)
from bot.metrics import Metrics
from bot.storage import repositories as repo
from bot.storage.database import Database

log = structlog.get_logger(__name__)

TRANSCRIPT_MODEL = "qwen3-asr-flash"
ASR_SPEC: ModelSpec = CATALOG[TRANSCRIPT_MODEL]
# Clips of one recording sent to the model at once (a 4-minute note is 8 clips of 30 s).
ASR_CONCURRENCY = 3
# A stored clip a little longer than the model's window is one it still accepts.
_WINDOW_TOLERANCE = 0.05
# Left-out audio shorter than this is rounding, not worth a note.
_NOTE_THRESHOLD = 0.5
# What a Transcript button's value may be: an assistant turn id.
_TURN_ID = re.compile(r"[0-9]{1,18}")


def offer(view: ChatSettingsView, spec: ModelSpec, durations: Sequence[float]) -> TranscriptMode:
    """What a reply of ``spec`` to clips of these ``durations`` gets: a button, the
    transcript posted after it, or nothing (a text-only turn, a reply that already is a
    transcript, clips too long for the ASR model, or the chat turned it off)."""
    if view.transcript is TranscriptMode.OFF or spec.kind is ModelKind.ASR or not durations:
        return TranscriptMode.OFF
    if not fits(durations):
        return TranscriptMode.OFF
    return view.transcript


def fits(durations: Sequence[float]) -> bool:
    """Whether every clip fits the ASR model's window (the captioner stores longer ones)."""
    return all(d <= ASR_SPEC.clip_seconds + _WINDOW_TOLERANCE for d in durations)


def parse_turn_id(value: str) -> int | None:
    """A Transcript button's value as the reply's turn id (``None``: not one of ours)."""
    return int(value) if _TURN_ID.fullmatch(value) else None


def language_name(code: str) -> str:
    """``en`` → ``English``; a code the bot has no name for is shown as it is."""
    name = texts.TRANSCRIPT_LANGUAGES.get(code.lower())
    return tr(name) if name is not None else code


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptRequest:
    """A reply whose recording can be transcribed: its clips, and how many are not yet."""

    chat_row_id: int
    assistant_turn_id: int
    clips: tuple[repo.ClipInfo, ...]
    missing: int  # clips without a stored transcript
    audio_seconds_total: float | None
    params: GenerationParams  # the chat's ASR options (language, number formatting)

    @property
    def cached(self) -> bool:
        """Every clip's transcript is stored: answering costs no model call."""
        return self.missing == 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcript:
    """What to post: ``text`` (header with the language, the words, a note)."""

    text: str
    languages: tuple[str, ...]
    clips: int
    transcribed: int  # clips the model was asked about now (0: all from storage)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Heard:
    text: str
    language: str | None
    usage: Usage


class Transcriber:
    """Makes and keeps transcripts of stored clips (one per process, built by the engine)."""

    def __init__(self, *, database: Database, model_client: ModelClient, metrics: Metrics) -> None:
        self._db = database
        self._client = model_client
        self._metrics = metrics
        # Replies whose transcript is being made now: a second press waits for the first.
        self._running: dict[int, asyncio.Event] = {}

    # --- which reply ---------------------------------------------------------------------

    async def find(self, chat: ChatRef, value: str) -> TranscriptRequest:
        """The reply a button's ``value`` names in ``chat``, ready to transcribe; raises
        :class:`TranscriptUnavailable` saying why not (never for another chat's reply)."""
        turn_id = parse_turn_id(value)
        if turn_id is None:
            raise TranscriptUnavailable(f"button value {value[:20]!r}")
        async with self._db.sessions() as session:
            row = await repo.find_chat(session, platform=chat.platform, external_id=chat.chat_id)
            if row is None:
                raise TranscriptUnavailable("chat never stored", user_message=_GONE)
            return await self._request(session, chat_row_id=row.id, assistant_turn_id=turn_id)

    async def find_in(self, *, chat_row_id: int, assistant_turn_id: int) -> TranscriptRequest:
        """As :meth:`find`, for a reply the engine just delivered."""
        async with self._db.sessions() as session:
            return await self._request(
                session, chat_row_id=chat_row_id, assistant_turn_id=assistant_turn_id
            )

    async def _request(
        self, session: AsyncSession, *, chat_row_id: int, assistant_turn_id: int
    ) -> TranscriptRequest:
        replied = await repo.replied_turn(
            session, chat_id=chat_row_id, assistant_turn_id=assistant_turn_id
        )
        if replied is None:
            raise TranscriptUnavailable("reply not in this chat", user_message=_GONE)
        spec = CATALOG.get(replied.reply_model or "")
        if spec is not None and spec.kind is ModelKind.ASR:
            raise TranscriptUnavailable("reply is a transcript")
        if not replied.clips:
            # A text-only turn has none; a failed or forgotten one lost them.
            raise TranscriptUnavailable("no stored clips", user_message=texts.TRANSCRIPT_NO_AUDIO)
        if not fits([c.duration for c in replied.clips]):
            limit = format_duration(ASR_SPEC.clip_seconds)
            raise TranscriptUnavailable(
                "clip too long", user_message=Msg(texts.TRANSCRIPT_TOO_LONG, limit=limit)
            )
        stored = await repo.clip_transcripts(session, [c.id for c in replied.clips])
        settings = await repo.get_chat_settings(session, chat_row_id)
        return TranscriptRequest(
            chat_row_id=chat_row_id,
            assistant_turn_id=replied.assistant_turn_id,
            clips=replied.clips,
            missing=sum(1 for c in replied.clips if c.id not in stored),
            audio_seconds_total=replied.audio_seconds_total,
            params=GenerationParams(
                asr_language=settings.asr_language if settings else None,
                asr_enable_itn=settings.asr_enable_itn if settings else None,
            ),
        )

    def in_progress(self, request: TranscriptRequest) -> bool:
        """This reply's transcript is being made right now (by an earlier press)."""
        return request.assistant_turn_id in self._running

    # --- making it -------------------------------------------------------------------------

    async def transcribe(
        self, request: TranscriptRequest, *, user_id: str, platform: str
    ) -> Transcript | None:
        """The transcript of the request's clips (stored ones reused); ``None`` when the
        same reply's transcript was being made already: that press posts it.

        Raises :class:`~bot.errors.ModelError` (nothing of the failed clips is stored) or
        :class:`TranscriptUnavailable` (the clips were deleted meanwhile)."""
        key = request.assistant_turn_id
        running = self._running.get(key)
        if running is not None:
            await running.wait()
            log.info("transcript.joined", assistant_turn_id=key)
            return None
        done = asyncio.Event()
        self._running[key] = done
        began = time.monotonic()
        try:
            made = await self._make(request, user_id=user_id)
        except BaseException as exc:
            outcome = "failed" if isinstance(exc, Exception) else "interrupted"
            self._metrics.transcripts.labels(platform, outcome).inc()
            log.info(
                "transcript.failed",
                platform=platform,
                assistant_turn_id=key,
                error=type(exc).__name__,
            )
            raise
        finally:
            self._running.pop(key, None)
            done.set()
        outcome = "transcribed" if made.transcribed else "cached"
        self._metrics.transcripts.labels(platform, outcome).inc()
        log.info(
            "transcript.done",
            platform=platform,
            assistant_turn_id=key,
            clips=made.clips,
            transcribed=made.transcribed,
            languages=list(made.languages),
            chars=len(made.text),
            duration=round(time.monotonic() - began, 3),
        )
        return made

    async def _make(self, request: TranscriptRequest, *, user_id: str) -> Transcript:
        ids = [c.id for c in request.clips]
        async with self._db.sessions() as session:
            stored = await repo.clip_transcripts(session, ids)
            missing = [c for c in request.clips if c.id not in stored]
            data = await repo.clip_data(session, [c.id for c in missing])
        if any(c.id not in data for c in missing):
            raise TranscriptUnavailable("clips deleted", user_message=texts.TRANSCRIPT_NO_AUDIO)
        heard: dict[int, _Heard] = {}
        error: BaseException | None = None
        if missing:
            limit = asyncio.Semaphore(ASR_CONCURRENCY)

            async def one(clip: repo.ClipInfo) -> _Heard:
                async with limit:
                    return await self._ask(AudioPart(*data[clip.id]), request.params)

            results = await asyncio.gather(*(one(c) for c in missing), return_exceptions=True)
            for clip, result in zip(missing, results, strict=True):
                if isinstance(result, _Heard):
                    heard[clip.id] = result
                elif not isinstance(result, Exception):
                    raise result  # cancelled: nothing more to do
                elif error is None:
                    error = result
            if heard:
                # What the model heard is kept (and paid for) even if another clip failed.
                stored.update(await self._store(request, missing, heard, user_id=user_id))
        if error is not None:
            if isinstance(error, ModelError):
                self._metrics.model_errors.labels(type(error).__name__).inc()
                raise error
            if isinstance(error, BotError):
                raise error
            raise BotError(type(error).__name__) from error
        return _render(request, stored, transcribed=len(heard))

    async def _ask(self, part: AudioPart, params: GenerationParams) -> _Heard:
        """One clip through the ASR model (the turn's DashScope client and protocol)."""
        state = ReplyState()
        messages = [ChatMessage(role="user", parts=(part,))]
        async for event in self._client.stream(
            model=TRANSCRIPT_MODEL, messages=messages, params=params
        ):
            state.fold(event)
        info = state.audio_info
        return _Heard(
            text=state.text.strip(), language=info.language if info else None, usage=state.usage
        )

    async def _store(
        self,
        request: TranscriptRequest,
        clips: Sequence[repo.ClipInfo],
        heard: dict[int, _Heard],
        *,
        user_id: str,
    ) -> dict[int, repo.StoredTranscript]:
        """The new transcripts and one usage entry for the model calls, in one transaction."""
        made = [c for c in clips if c.id in heard]
        seconds = sum(c.duration for c in made)
        usages = [heard[c.id].usage for c in made]
        try:
            async with self._db.sessions() as session, session.begin():
                out = {
                    clip.id: await repo.add_clip_transcript(
                        session,
                        clip_id=clip.id,
                        text=heard[clip.id].text,
                        language=heard[clip.id].language,
                        model=TRANSCRIPT_MODEL,
                    )
                    for clip in made
                }
                await repo.add_usage(
                    session,
                    chat_id=request.chat_row_id,
                    turn_id=request.assistant_turn_id,
                    user_external_id=user_id[:64],
                    model=TRANSCRIPT_MODEL,
                    audio_seconds=seconds,
                    input_tokens=sum(u.input_tokens or 0 for u in usages),
                    output_tokens=sum(u.output_tokens or 0 for u in usages),
                    audio_tokens=sum(u.audio_tokens or 0 for u in usages),
                )
        except IntegrityError as exc:
            # The clips (or the reply) were deleted while the model listened (/forget).
            raise TranscriptUnavailable(
                "clips deleted", user_message=texts.TRANSCRIPT_NO_AUDIO
            ) from exc
        metrics = self._metrics
        metrics.audio_seconds.labels(TRANSCRIPT_MODEL).inc(seconds)
        for direction, value in (
            ("input", sum(u.input_tokens or 0 for u in usages)),
            ("output", sum(u.output_tokens or 0 for u in usages)),
            ("audio", sum(u.audio_tokens or 0 for u in usages)),
        ):
            if value:
                metrics.tokens.labels(TRANSCRIPT_MODEL, direction).inc(value)
        return out


_GONE = texts.TRANSCRIPT_TURN_GONE


def _render(
    request: TranscriptRequest,
    stored: dict[int, repo.StoredTranscript],
    *,
    transcribed: int,
) -> Transcript:
    """The header with the detected language(s), the words (clips of one recording joined
    in order, recordings in paragraphs), and a note if the clips cover only the start."""
    clips = request.clips
    languages = tuple(
        dict.fromkeys(lang for c in clips if (lang := stored[c.id].language) is not None)
    )
    if languages:
        header = tr(texts.TRANSCRIPT_HEADER).format(
            language=", ".join(language_name(code) for code in languages)
        )
    else:
        header = tr(texts.TRANSCRIPT_HEADER_NO_LANGUAGE)
    paragraphs = [
        " ".join(words for c in group if (words := stored[c.id].text.strip()))
        for _, group in itertools.groupby(clips, key=lambda c: c.source_key)
    ]
    body = "\n\n".join(p for p in paragraphs if p) or tr(texts.TRANSCRIPT_NO_SPEECH)
    text = f"{header}\n{body}"
    sent = sum(c.duration for c in clips)
    total = request.audio_seconds_total
    if total is not None and total - sent >= _NOTE_THRESHOLD:
        note = tr(texts.TRANSCRIPT_LEFT_OUT).format(
            sent=format_duration(sent), total=format_duration(total)
        )
        text = f"{text}\n\n{note}"
    return Transcript(
        text=text,
        languages=languages,
        clips=len(clips),
        transcribed=transcribed,
    )
