"""Input, output and report types of the audio pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioInput:
    """Audio as it arrived: bytes plus what the platform declared (never trusted alone)."""

    data: bytes
    mime_type: str | None = None
    file_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """One clip the model accepts: mono 16 kHz, encoded as ``format`` (mp3 or wav).

    The one clip type from the pipeline to the request: the engine stores these, replays
    them from storage, and turns them into the request's audio parts.
    """

    data: bytes
    format: str
    start: float  # seconds from the start of the recording
    duration: float  # seconds
    sha256: str
    source_key: str | None = None  # the recording it was cut from (e.g. telegram:<id>)


class MismatchKind(StrEnum):
    """How the audio in a file disagrees with the length its container declares."""

    # The file ends before the recording it declares does (an upload or download that
    # stopped early): everything in the file was heard, the rest is not there.
    CUT_OFF = "cut_off"
    # More audio follows where the header says the audio ends, and the demuxer stopped at
    # the header's end (FFmpeg's WAV demuxer does): the rest is in the file but unread.
    UNREAD_TAIL = "unread_tail"
    # The file holds more audio than its header declares and all of it was decoded.
    LONGER_THAN_HEADER = "longer_than_header"


@dataclass(frozen=True, slots=True, kw_only=True)
class LengthMismatch:
    """The part of a file that could not be heard as its header describes it."""

    kind: MismatchKind
    # Where the file's audio ends as read (decoded, or measured past the decoded part):
    # where the file (CUT_OFF) or the reading (UNREAD_TAIL) ended.
    heard: float
    declared: float | None = None  # seconds the header declares (always for LONGER_THAN_HEADER)
    unread: float | None = None  # UNREAD_TAIL: about this many seconds follow, never read


class LengthSource(StrEnum):
    """Where a report's ``total_seconds`` comes from."""

    DECODED = "decoded"  # the whole recording was decoded
    CONTAINER = "container"  # the container's own length, consistent with what was read
    # The packets past the decoded part, read without decoding them (those after a seek to
    # the end, where the container's timestamps allow one).
    SCANNED = "scanned"


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioReport:
    """What the pipeline saw and did, per input."""

    container: str  # as probed, e.g. "ogg", "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # input audio codec, e.g. "opus"
    # Seconds of audio decoded: the whole recording, or the part of its start the model
    # can be sent (plus a margin), never more than the pipeline's ``max_seconds``.
    duration: float
    # How long the recording is (``duration`` when it was decoded whole).
    total_seconds: float
    sample_rate: int
    channels: int
    bytes_in: int
    bytes_out: int
    segments: int
    seconds_sent: float
    seconds_left_out: float  # of ``total_seconds``
    # ``total_seconds`` is only a lower bound: the recording goes on past it by an unknown
    # amount (its container says less than was read, and measuring the rest hit its bound).
    truncated: bool = False
    # The file holds more or less audio than its container declares (never set together
    # with ``truncated``: where the file ends is unknown then).
    mismatch: LengthMismatch | None = None
    total_from: LengthSource = LengthSource.DECODED


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
        limit); the rest is reported as ``seconds_left_out`` and never encoded. Only as
        much of a long recording is decoded as those segments need; the report's
        ``total_seconds`` is the whole recording's length. Raises
        :class:`bot.errors.AudioError` subclasses.
        """
        ...
