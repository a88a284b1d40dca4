"""Protocol-neutral request and event types of the model client.

The engine builds :class:`ChatMessage` lists and consumes :data:`StreamEvent` values; the
wire protocols (native SSE, OpenAI-compatible) translate both ways in ``bot.llm``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class AudioPart:
    """One audio item: encoded bytes (``format`` is ``mp3`` or ``wav``), sent as a data URL."""

    data: bytes
    format: str


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


Part = AudioPart | TextPart


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationParams:
    """Sampling and ASR options; ``None`` leaves the service default."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    max_tokens: int | None = None
    asr_language: str | None = None
    asr_enable_itn: bool | None = None
    # Ask for speech output with this speaker (models with ``speech_output`` only): the
    # stream then also carries :class:`SpeechDelta` events.
    voice: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token usage, normalised from the native and OpenAI-compatible shapes."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    audio_tokens: int | None = None
    text_tokens: int | None = None
    total_tokens: int | None = None
    seconds: float | None = None
    # Of ``output_tokens``, those spent on speech (Qwen-Omni's
    # ``completion_tokens_details.audio_tokens``); ``None``: no speech was asked for.
    audio_output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New text of the reply (always incremental, whatever the wire sent)."""

    text: str


@dataclass(frozen=True, slots=True)
class SpeechDelta:
    """More of the spoken reply: raw PCM, signed 16-bit little-endian, mono, 24 kHz."""

    pcm: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioInfo:
    """ASR annotations: detected language and emotion."""

    language: str | None = None
    emotion: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageUpdate:
    usage: Usage


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    """The last event of every successful stream."""

    finish_reason: str  # "stop" | "length" | other service value
    request_id: str | None = None
    usage: Usage = field(default_factory=Usage)


StreamEvent = TextDelta | SpeechDelta | AudioInfo | UsageUpdate | Finished


class ModelClient(Protocol):
    """What the engine needs from a model service client."""

    def stream(
        self, *, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[StreamEvent]:
        """Stream one reply. Raises :class:`bot.errors.ModelError` subclasses."""
        ...

    async def aclose(self) -> None: ...


SPEECH_SAMPLE_RATE = 24_000  # Hz, of every SpeechDelta and synthesized chunk


class SpeechSynthesizer(Protocol):
    """Text to speech (Qwen TTS over the native API; ``bot.llm.tts``)."""

    def synthesize(
        self, *, model: str, text: str, voice: str, language: str | None = None
    ) -> AsyncIterator[bytes]:
        """Stream PCM (s16le, mono, :data:`SPEECH_SAMPLE_RATE`) for ``text`` (<= 600 characters).

        Raises :class:`bot.errors.ModelError` subclasses.
        """
        ...
