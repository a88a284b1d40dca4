"""The model catalog: Qwen-Audio (the DashScope seed documents, CONTRACT.md) and Qwen-Omni.

The catalog is data: which turn kinds a model accepts, how much audio and text fit into
one request, whether DashScope still serves it (its status and replacement), and what it
can answer with (text, or text and speech). The engine, the audio pipeline and the model
client read it; nothing here does I/O. Every name, limit and voice lives here, not in code.
Values marked UNVERIFIED are not confirmed by Alibaba-authored text
(``reference/omni-tts-facts.md``); they are chosen on the safe side.
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
    # Audio items one user message may hold (``None``: any). Qwen-Omni takes text plus one
    # other item per message, so a long note is one whole clip up to ``clip_seconds``.
    clips_per_message: int | None = None
    # Whether a system message may go with a request for speech output; where it may
    # not (older Qwen-Omni), it is sent as a leading user/assistant pair instead.
    system_with_speech: bool = True

    @property
    def choosable(self) -> bool:
        """Whether a chat may choose this model (a retired one keeps its row only)."""
        return self.status is not ModelStatus.RETIRED

    def voice_for(self, chosen: str | None) -> str | None:
        """The speaker for ``chosen``: itself if this model has it, else the model's first
        voice; ``None`` if the model has no voices."""
        if not self.voices:
            return None
        return chosen if chosen in self.voices else self.voices[0]


# Qwen-Audio is "free trial only, payment not supported … use Qwen-Omni" (Alibaba's audio
# model doc, 2026), Beijing only: every Qwen-Audio chat model is a trial, with Qwen-Omni as
# its successor. The dated snapshots, qwen2-audio-instruct and qwen-audio-chat are no
# longer listed; their retirement date is UNVERIFIED, so they stay choosable (if DashScope
# refuses them, the user is told to choose another model).
_AUDIO_SUCCESSOR = "qwen3-omni-flash"


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
        status=ModelStatus.TRIAL,
        replacement=_AUDIO_SUCCESSOR,
    )


# Qwen-Omni speakers. qwen3-omni-flash: the 17 voices its docs list for it and its
# 2025-09-15 snapshot (the 2025-12-01 snapshot it now points at lists 49, a superset).
_OMNI3_VOICES = (
    "Cherry",
    "Ethan",
    "Nofish",
    "Jennifer",
    "Ryan",
    "Katerina",
    "Elias",
    "Jada",
    "Dylan",
    "Sunny",
    "Li",
    "Marcus",
    "Roy",
    "Peter",
    "Rocky",
    "Kiki",
    "Eric",
)
# qwen3.5-omni: "Tina" is the official sample's voice; Ethan and Serena were accepted in a
# third-party test (Cherry, Chelsie refused). The official list is UNVERIFIED.
_OMNI35_VOICES = ("Tina", "Ethan", "Serena")


def _omni(
    name: str,
    *,
    clip_seconds: float,
    tokens_per_second: float,
    max_in: int,
    max_out: int,
    voices: tuple[str, ...],
    desc: str,
) -> ModelSpec:
    """A Qwen-Omni model: audio in, text and speech out, OpenAI-compatible streaming only."""
    return ModelSpec(
        name=name,
        kind=ModelKind.CHAT,
        voice_chat=True,
        instruction=True,
        multi_turn=True,  # history: assistant turns as text only (bot.llm.compatible)
        accepts_system=True,  # "Qwen3-Omni-Flash模型已支持设定System Message"
        clip_seconds=clip_seconds,
        max_clips=None,  # one per user message; the token budget limits the rest
        max_recording_seconds=clip_seconds,
        audio_tokens_per_second=tokens_per_second,
        max_input_tokens=max_in,
        max_output_tokens=max_out,
        description=desc,
        protocol="compatible",
        speech_output=True,
        voices=voices,
        clips_per_message=1,
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
            # Gone from the Qwen ASR docs (Mar 2026), which list only Qwen3-ASR-Flash; the
            # retirement date (2026-03-30) is UNVERIFIED.
            status=ModelStatus.RETIRED,
            replacement="qwen3-asr-flash",
        ),
        # "For speech output, use qwen3.5-omni-plus" (Alibaba, late 2026). Limits not in an
        # Alibaba table: UNVERIFIED, chosen on the safe side — 256k context is reported, the
        # budget assumes 65,536 in / 16,384 out; the clip window and the token rate are
        # qwen3-omni-flash's documented 20 min and the higher documented rate, 25 tokens/s,
        # so the bot never sends more than the service takes.
        _omni(
            "qwen3.5-omni-plus",
            clip_seconds=20 * 60.0,
            tokens_per_second=25.0,
            max_in=65536,
            max_out=16384,
            voices=_OMNI35_VOICES,
            desc="Qwen3.5-Omni Plus: hears audio, answers with text and speech",
        ),
        _omni(
            "qwen3.5-omni-flash",
            clip_seconds=20 * 60.0,
            tokens_per_second=25.0,
            max_in=65536,
            max_out=16384,
            voices=_OMNI35_VOICES,
            desc="Qwen3.5-Omni Flash: hears audio, answers with text and speech",
        ),
        # Documented (zh docs, Dec 2025): context 65,536, max input 49,152 without thinking
        # (the bot never enables thinking: it rules out speech), max output 16,384; one
        # audio file <= 100 MB (by URL) and <= 20 min; 12.5 audio tokens per second.
        # Late-2026 availability UNVERIFIED.
        _omni(
            "qwen3-omni-flash",
            clip_seconds=20 * 60.0,
            tokens_per_second=12.5,
            max_in=49152,
            max_out=16384,
            voices=_OMNI3_VOICES,
            desc="Qwen3-Omni Flash: hears audio, answers with text and speech",
        ),
    )
}

DEFAULT_MODEL = "qwen-audio-turbo-latest"

# Base64 data URL limit per audio item, as the service counts it (the encoded string).
MAX_ENCODED_AUDIO_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class TtsSpec:
    """A text-to-speech model: the voice of replies from models that cannot speak.

    Kept apart from :data:`CATALOG` on purpose: a TTS model is never a chat's model (it
    is not in ``ALLOWED_MODELS``, the model list or ``/model``); ``TTS_MODEL`` names it.
    """

    name: str
    voices: tuple[str, ...]  # the first is the default
    max_chars: int  # characters of text per request (the service refuses more)
    sample_rate: int  # Hz of the streamed PCM (s16le, mono)
    description: str = ""
    status: ModelStatus = ModelStatus.LIVE
    replacement: str | None = None


# qwen3-tts-flash (= qwen3-tts-flash-2025-11-27, native multimodal-generation endpoint):
# "other models: at most 600 characters" per request (Alibaba's Qwen-TTS API page).
# Its "17 expressive voices" are not listed in Alibaba text I read (UNVERIFIED); these
# are the Qwen3 speakers, with the SDK sample's Cherry first. 24 kHz PCM when streaming
# is reported by third parties only (UNVERIFIED), the same rate as Qwen-Omni's speech.
TTS_CATALOG: dict[str, TtsSpec] = {
    spec.name: spec
    for spec in (
        TtsSpec(
            name="qwen3-tts-flash",
            voices=_OMNI3_VOICES,
            max_chars=600,
            sample_rate=24_000,
            description="Qwen3-TTS Flash: speaks a reply's text",
        ),
    )
}

DEFAULT_TTS_MODEL = "qwen3-tts-flash"


def get_tts_model(name: str) -> TtsSpec | None:
    """The TTS catalog entry for ``name``, or ``None``."""
    return TTS_CATALOG.get(name)


def get_model(name: str) -> ModelSpec | None:
    """The catalog entry for ``name``, or ``None``."""
    return CATALOG.get(name)


def resolve_model(name: str) -> ModelSpec | None:
    """The model that answers for ``name``: itself, or for a retired model its replacement
    (followed while that is retired too); ``None`` if nothing choosable is found."""
    spec = CATALOG.get(name)
    seen: set[str] = set()
    while spec is not None and not spec.choosable:
        seen.add(spec.name)
        if spec.replacement is None or spec.replacement in seen:
            return None
        spec = CATALOG.get(spec.replacement)
    return spec


def turn_clip_cap(spec: ModelSpec) -> int | None:
    """Audio items the current turn may send: the request's cap and the message's."""
    caps = [c for c in (spec.max_clips, spec.clips_per_message) if c is not None]
    return min(caps) if caps else None


def audio_tokens(spec: ModelSpec, seconds: float) -> int:
    """Tokens the service counts for one clip: at least 1 s, at most the clip window."""
    counted = min(max(seconds, 1.0), spec.clip_seconds)
    return int(-(-counted * spec.audio_tokens_per_second // 1))
