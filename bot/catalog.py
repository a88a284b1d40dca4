"""The Qwen-Audio model catalog (values from the DashScope seed documents, CONTRACT.md).

The catalog is data: which turn kinds a model accepts and how much audio and text fit into
one request. The engine and the audio pipeline read it; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ModelStatus(StrEnum):
    """Whether DashScope still serves a model (issue #15: the catalog lifecycle)."""

    LIVE = "live"
    TRIAL = "trial"  # served on a free trial quota only; payment not supported
    RETIRED = "retired"  # calls fail; the row stays so admins see it, with its replacement


class ModelKind(StrEnum):
    """What a model does with a request."""

    CHAT = "chat"  # audio understanding with text instructions and history
    ASR = "asr"  # transcription
    CAPTION = "caption"  # single-turn English description, no text accepted


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """What one model accepts.

    ``clip_seconds`` is how much of each audio item the model listens to; longer audio is
    cut into segments of at most that length. ``max_clips`` limits audio items per request
    (``None``: only the token budget limits them). ``max_input_tokens`` is the service's
    hard limit (it answers 400 above it); ``None`` means no documented limit.
    """

    name: str
    kind: ModelKind
    voice_chat: bool  # answers audio alone as a spoken message
    instruction: bool  # accepts a text instruction alongside audio
    multi_turn: bool  # accepts history
    accepts_system: bool
    clip_seconds: float
    max_clips: int | None
    max_recording_seconds: float | None  # the longest recording worth cutting into clips
    audio_tokens_per_second: float
    max_input_tokens: int | None
    max_output_tokens: int | None
    asr_options: bool = False  # accepts parameters.asr_options
    description: str = ""
    status: ModelStatus = ModelStatus.LIVE
    replacement: str | None = None  # the model to use instead once this one is retired
    # The only protocol the model is served on ("compatible" for Qwen-Omni); None: either,
    # as DASHSCOPE_PROTOCOL says.
    protocol: str | None = None
    speech_output: bool = False  # answers with speech in the same stream (Qwen-Omni)
    voices: tuple[str, ...] = ()  # speakers for speech output; the first is the default


def _turbo(name: str, *, voice_chat: bool, max_in: int, max_out: int, desc: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        kind=ModelKind.CHAT,
        voice_chat=voice_chat,
        instruction=True,
        multi_turn=True,
        accepts_system=True,
        clip_seconds=30.0,
        max_clips=None,
        max_recording_seconds=None,
        audio_tokens_per_second=25.0,
        max_input_tokens=max_in,
        max_output_tokens=max_out,
        description=desc,
    )


CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _turbo(
            "qwen-audio-turbo-latest",
            voice_chat=True,
            max_in=6144,
            max_out=2048,
            desc="Latest Qwen-Audio: voice chat and audio analysis",
        ),
        _turbo(
            "qwen-audio-turbo-2024-12-04",
            voice_chat=True,
            max_in=6144,
            max_out=2048,
            desc="Qwen-Audio snapshot 2024-12-04",
        ),
        _turbo(
            "qwen-audio-turbo",
            voice_chat=False,
            max_in=6000,
            max_out=1500,
            desc="Qwen-Audio stable: audio analysis",
        ),
        _turbo(
            "qwen-audio-turbo-2024-08-07",
            voice_chat=False,
            max_in=6000,
            max_out=1500,
            desc="Qwen-Audio snapshot 2024-08-07",
        ),
        _turbo(
            "qwen2-audio-instruct",
            voice_chat=True,
            max_in=6000,
            max_out=1500,
            desc="Open-source Qwen2-Audio",
        ),
        _turbo(
            "qwen-audio-chat",
            voice_chat=False,
            max_in=6000,
            max_out=1500,
            desc="Open-source Qwen-Audio chat",
        ),
        ModelSpec(
            name="qwen3-omni-30b-a3b-captioner",
            kind=ModelKind.CAPTION,
            voice_chat=False,
            instruction=False,
            multi_turn=False,
            accepts_system=False,
            clip_seconds=40 * 60.0,
            max_clips=1,
            max_recording_seconds=40 * 60.0,
            audio_tokens_per_second=12.5,
            max_input_tokens=32768,
            max_output_tokens=32768,
            description="Describes any audio in English",
        ),
        ModelSpec(
            name="qwen3-asr-flash",
            kind=ModelKind.ASR,
            voice_chat=False,
            instruction=False,
            multi_turn=False,
            accepts_system=True,
            clip_seconds=5 * 60.0,
            max_clips=1,
            max_recording_seconds=5 * 60.0,
            audio_tokens_per_second=25.0,
            max_input_tokens=None,
            max_output_tokens=None,
            asr_options=True,
            description="Transcribes speech (27 languages)",
        ),
        ModelSpec(
            name="qwen-audio-asr",
            kind=ModelKind.ASR,
            voice_chat=False,
            instruction=False,
            multi_turn=False,
            accepts_system=False,
            # Undocumented; it is built on Qwen-Audio, whose window is 30 s.
            clip_seconds=30.0,
            max_clips=1,
            max_recording_seconds=30.0,
            audio_tokens_per_second=25.0,
            max_input_tokens=None,
            max_output_tokens=None,
            description="Transcribes Chinese and English (beta)",
        ),
    )
}

DEFAULT_MODEL = "qwen-audio-turbo-latest"

# Base64 data URL limit per audio item, as the service counts it (the encoded string).
MAX_ENCODED_AUDIO_BYTES = 10 * 1024 * 1024


def get_model(name: str) -> ModelSpec | None:
    """The catalog entry for ``name``, or ``None``."""
    return CATALOG.get(name)


def audio_tokens(spec: ModelSpec, seconds: float) -> int:
    """Tokens the service counts for one clip: at least 1 s, at most the clip window."""
    counted = min(max(seconds, 1.0), spec.clip_seconds)
    return int(-(-counted * spec.audio_tokens_per_second // 1))
