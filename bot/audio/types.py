"""Input, output and report types of the audio pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioInput:
    """Audio as it arrived: bytes plus what the platform declared (never trusted alone)."""

    data: bytes
    mime_type: str | None = None
    file_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """One clip the model accepts: mono 16 kHz, encoded as ``format`` (mp3 or wav)."""

    data: bytes
    format: str
    start: float  # seconds from the start of the recording
    duration: float  # seconds
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioReport:
    """What the pipeline saw and did, per input."""

    container: str  # as probed, e.g. "ogg", "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # input audio codec, e.g. "opus"
    duration: float  # seconds of audio decoded (up to the decode bound)
    sample_rate: int
    channels: int
    bytes_in: int
    bytes_out: int
    segments: int
    seconds_sent: float
    seconds_left_out: float
    # Decoding stopped at the duration bound although the header promised less: the real
    # recording is longer than ``duration``, by an unknown amount (not in seconds_left_out).
    truncated: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvertedAudio:
    segments: tuple[Segment, ...]
    report: AudioReport

    @property
    def seconds_sent(self) -> float:
        return self.report.seconds_sent


def counted_seconds(duration: float) -> float:
    """Seconds the service bills for one clip: anything under 1 s counts as 1 s."""
    return max(duration, 1.0)


class AudioConverter(Protocol):
    """What the engine needs from the audio pipeline."""

    async def convert(
        self,
        audio: AudioInput,
        *,
        segment_seconds: float,
        budget_seconds: float | None = None,
        max_segments: int | None = None,
    ) -> ConvertedAudio:
        """Decode ``audio`` and cut it into clips of at most ``segment_seconds``.

        Segments are encoded in order while the sum of their :func:`counted_seconds` stays
        within ``budget_seconds`` and their number within ``max_segments`` (``None``: no
        limit); the rest is reported as ``seconds_left_out`` and never encoded. Raises
        :class:`bot.errors.AudioError` subclasses.
        """
        ...
