"""Streaming one model reply into a sink, with a stop signal, and its metrics."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.engine.domain import TurnStatus
from bot.engine.ports import ReplySink
from bot.errors import BotError
from bot.llm.types import (
    AudioInfo,
    ChatMessage,
    Finished,
    GenerationParams,
    ModelClient,
    SpeechDelta,
    StreamEvent,
    TextDelta,
    Usage,
    UsageUpdate,
)
from bot.metrics import Metrics
from bot.storage.tables import utcnow
from bot.voice.reply import SpeechBuffer


class SinkBroken(BotError):
    """The adapter's sink raised while the reply streamed: the platform could not show it."""


@dataclass
class ReplyState:
    """What the stream produced so far (kept when it fails or is stopped)."""

    text: str = ""
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    request_id: str | None = None
    audio_info: AudioInfo | None = None
    started_at: dt.datetime | None = None
    first_token_at: dt.datetime | None = None
    first_token_mono: float | None = None
    # The spoken reply (Omni speech output): PCM kept apart from the text, never shown.
    speech: SpeechBuffer = field(default_factory=SpeechBuffer)

    def fold(self, event: StreamEvent) -> str:
        """Take one event of the model's stream in; returns the text it added ("" if none).

        The usage is the latest report; a ``Finished`` without one keeps what came before.
        """
        if isinstance(event, TextDelta):
            if event.text and self.first_token_at is None:
                self.first_token_at = utcnow()
                self.first_token_mono = time.monotonic()
            self.text += event.text
            return event.text
        if isinstance(event, SpeechDelta):
            self.speech.add(event.pcm)
        elif isinstance(event, AudioInfo):
            self.audio_info = event
        elif isinstance(event, UsageUpdate):
            self.usage = event.usage
        elif isinstance(event, Finished):
            self.finish_reason = event.finish_reason
            self.request_id = event.request_id
            if has_usage(event.usage) or event.usage.seconds is not None:
                self.usage = event.usage
        return ""


def has_usage(usage: Usage) -> bool:
    return any(v is not None for v in (usage.input_tokens, usage.output_tokens, usage.audio_tokens))


async def stream_reply(
    client: ModelClient,
    model: str,
    messages: list[ChatMessage],
    params: GenerationParams,
    sink: ReplySink,
    stop: asyncio.Event,
    state: ReplyState,
    on_text: Callable[[str], None] | None = None,
) -> bool:
    """Consume the model's stream into ``state``; ``True`` if it was stopped.

    ``on_text`` gets the reply's text so far after every delta, before the sink does (the
    TTS of a spoken reply starts on the first sentences while the model still writes)."""

    async def consume() -> None:
        async for event in client.stream(model=model, messages=messages, params=params):
            delta = state.fold(event)
            if delta:
                if on_text is not None:
                    on_text(state.text)
                try:
                    await sink.update(state.text, delta)
                except Exception as exc:
                    raise SinkBroken(type(exc).__name__) from exc

    consumer = asyncio.create_task(consume())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if consumer.done():
        consumer.result()  # re-raises the model's or the sink's error
        return False
    # Stopped: cancelling closes the HTTP stream (the generator's finally runs).
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await consumer
    return True


def observe(
    metrics: Metrics,
    labels: tuple[str, str, str],
    status: TurnStatus,
    state: ReplyState,
    began: float,
    audio_seconds: float,
) -> None:
    platform, model, kind = labels
    metrics.turns.labels(platform, model, kind, status.value).inc()
    if audio_seconds:
        metrics.audio_seconds.labels(model).inc(audio_seconds)
    usage = state.usage
    for direction, value in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("audio", usage.audio_tokens),
    ):
        if value:
            metrics.tokens.labels(model, direction).inc(value)
    if state.first_token_mono is not None:
        metrics.first_token.labels(model).observe(state.first_token_mono - began)
    metrics.turn_duration.labels(model).observe(time.monotonic() - began)
