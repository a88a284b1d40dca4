"""A turn's spoken reply: the PCM collected while the model streams, cut at the cap and
encoded once when the model ends.

The engine feeds every :class:`~bot.llm.types.SpeechDelta` of the stream to a
:class:`SpeechBuffer` (never to the text path) and asks it for the :class:`VoiceNote`
after the final text is delivered. A reply that spoke nothing has no voice note: an empty
or zero-length file is never sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.llm.types import SPEECH_SAMPLE_RATE
from bot.voice.encode import encode_voice_note, pcm_seconds, truncate_pcm


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceNote:
    """One encoded voice note (OGG/Opus) and what it holds."""

    ogg: bytes
    seconds: float  # its duration (after the cap)
    spoken_seconds: float  # what the model spoke, the cap aside
    truncated: bool  # cut at VOICE_REPLY_MAX_SECONDS


class SpeechBuffer:
    """The PCM of one reply (s16le, mono, 24 kHz), in arrival order."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, pcm: bytes) -> None:
        if pcm:
            self._chunks.append(pcm)
            self._size += len(pcm)

    def __len__(self) -> int:
        return self._size

    @property
    def pcm(self) -> bytes:
        """All the PCM collected so far, in order."""
        return b"".join(self._chunks)

    @property
    def seconds(self) -> float:
        """Seconds of speech collected so far."""
        return self._size // 2 / SPEECH_SAMPLE_RATE

    def note(self, *, max_seconds: float) -> VoiceNote | None:
        """The voice note, cut at ``max_seconds``; ``None`` if nothing was spoken."""
        pcm = b"".join(self._chunks)
        spoken = pcm_seconds(pcm)
        if spoken <= 0:
            return None
        truncated = spoken > max_seconds
        if truncated:
            pcm = truncate_pcm(pcm, max_seconds)
        return VoiceNote(
            ogg=encode_voice_note(pcm),
            seconds=pcm_seconds(pcm),
            spoken_seconds=spoken,
            truncated=truncated,
        )
