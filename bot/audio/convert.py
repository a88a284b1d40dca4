"""The worker-thread side of one conversion: the deadline, the analysis, the result.

:func:`analyse` (probe, decode, check, plan, choose) runs in
:class:`~bot.audio.pipeline.AudioPipeline`'s thread pool and checks a :class:`Deadline`
between packets and frames; the pipeline then encodes the chosen spans and
:func:`assemble` builds the :class:`~bot.audio.types.ConvertedAudio` from them.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.audio.decode import SAMPLE_RATE, Decoded, decode_mono16k
from bot.audio.overlap import FirstSpanFeed
from bot.audio.pauses import Span, frame_levels, is_silent, plan_segments
from bot.audio.probe import (
    LENGTH_TOLERANCE,
    LENGTH_TOLERANCE_SHARE,
    ProbeInfo,
    StoredLength,
    open_input,
    probe_info,
    refuse_if_declared_too_long,
    stored_length,
)
from bot.audio.spans import choose_spans
from bot.audio.types import (
    AudioReport,
    ConvertedAudio,
    LengthMismatch,
    MismatchKind,
    Segment,
)
from bot.errors import AudioEmpty, AudioSilent, AudioTimeout


class Deadline:
    """Raised into a worker once the conversion's time is up or it was abandoned."""

    def __init__(self, seconds: float) -> None:
        """Time is up ``seconds`` from now, or as soon as :attr:`abandoned` is set."""
        self._until = time.monotonic() + seconds
        self._seconds = seconds
        self.abandoned = threading.Event()

    def __call__(self) -> None:
        """Raise :class:`AudioTimeout` if the conversion should stop."""
        if self.abandoned.is_set() or time.monotonic() > self._until:
            raise AudioTimeout(f"conversion over {self._seconds:.0f} s")


@dataclass(frozen=True, slots=True, kw_only=True)
class Analysis:
    """What the analysis found: the input's header facts, its samples, the spans to send."""

    info: ProbeInfo
    decoded: Decoded
    chosen: list[Span]
    mismatch: LengthMismatch | None = None


def analyse(
    data: bytes,
    *,
    segment_seconds: float,
    budget_seconds: float | None,
    max_segments: int | None,
    max_seconds: float,
    check: Callable[[], None],
    feed: FirstSpanFeed | None = None,
) -> Analysis:
    """Probe, decode, check, plan and choose segments (runs in the pool).

    ``feed`` gets the samples as they are decoded, and the first span's end (``-1`` when
    there is none or the analysis fails).
    """
    try:
        analysis = _analyse_fed(
            data, segment_seconds, budget_seconds, max_segments, max_seconds, check, feed
        )
    except BaseException:
        if feed is not None:
            feed.settle(-1)
        raise
    if feed is not None:
        feed.settle(analysis.chosen[0].end if analysis.chosen else -1)
    return analysis


def _analyse_fed(
    data: bytes,
    segment_seconds: float,
    budget_seconds: float | None,
    max_segments: int | None,
    max_seconds: float,
    check: Callable[[], None],
    feed: FirstSpanFeed | None,
) -> Analysis:
    container, stream = open_input(data)
    with contextlib.closing(container):
        info = probe_info(container, stream)
        refuse_if_declared_too_long(info, max_seconds=max_seconds)
        decoded = decode_mono16k(
            container,
            stream,
            max_seconds=max_seconds,
            check=check,
            progress=feed.progress if feed is not None else None,
        )
    if len(decoded.samples) == 0:
        raise AudioEmpty(f"{info.container}/{info.codec}: no samples")
    mismatch = length_mismatch(info, decoded, stored_length(data, info.container))
    check()
    levels = frame_levels(decoded.samples, SAMPLE_RATE)
    if is_silent(levels):
        raise AudioSilent(f"{info.container}/{info.codec}: nothing above the silence level")
    spans = plan_segments(
        decoded.samples, SAMPLE_RATE, segment_seconds=segment_seconds, levels=levels
    )
    return Analysis(
        info=info,
        decoded=decoded,
        chosen=choose_spans(spans, budget_seconds=budget_seconds, max_segments=max_segments),
        mismatch=mismatch,
    )


def _noticeable(seconds: float, *, of: float) -> bool:
    """Whether ``seconds`` of difference on a recording of ``of`` seconds is worth a note."""
    return seconds >= max(LENGTH_TOLERANCE, LENGTH_TOLERANCE_SHARE * of)


def length_mismatch(
    info: ProbeInfo, decoded: Decoded, stored: StoredLength
) -> LengthMismatch | None:
    """How far what was decoded disagrees with what the file declares, or ``None``.

    A cut-off or mis-sized file is answered with what was heard; this says what could not
    be (the reply carries it as a note). Nothing is said when decoding stopped at the
    bound: the end of the file was never reached, and the report's ``truncated`` says so.
    """
    if decoded.truncated:
        return None
    heard = decoded.seconds
    declared = info.declared_duration
    if stored.ends_early:
        return LengthMismatch(kind=MismatchKind.CUT_OFF, heard=heard)
    if _noticeable(stored.missing_seconds, of=heard + stored.missing_seconds):
        return LengthMismatch(
            kind=MismatchKind.CUT_OFF, heard=heard, declared=heard + stored.missing_seconds
        )
    if _noticeable(stored.unread_seconds, of=heard + stored.unread_seconds):
        return LengthMismatch(
            kind=MismatchKind.UNREAD_TAIL,
            heard=heard,
            declared=declared,
            unread=stored.unread_seconds,
        )
    if not stored.exact_duration or declared is None:
        return None
    if _noticeable(declared - heard, of=declared):
        return LengthMismatch(kind=MismatchKind.CUT_OFF, heard=heard, declared=declared)
    if _noticeable(heard - declared, of=heard):
        return LengthMismatch(kind=MismatchKind.LONGER_THAN_HEADER, heard=heard, declared=declared)
    return None


def assemble(
    analysis: Analysis, encoded: list[bytes], *, fmt: str, bytes_in: int
) -> ConvertedAudio:
    """The clips (``encoded``, one per chosen span, in order) and the report on them."""
    segments = tuple(
        Segment(
            data=blob,
            format=fmt,
            start=span.start / SAMPLE_RATE,
            duration=(span.end - span.start) / SAMPLE_RATE,
            sha256=hashlib.sha256(blob).hexdigest(),
        )
        for span, blob in zip(analysis.chosen, encoded, strict=True)
    )
    info, decoded = analysis.info, analysis.decoded
    sent = sum(s.duration for s in segments)
    report = AudioReport(
        container=info.container,
        codec=info.codec,
        duration=decoded.seconds,
        sample_rate=info.sample_rate,
        channels=info.channels,
        bytes_in=bytes_in,
        bytes_out=sum(len(s.data) for s in segments),
        segments=len(segments),
        seconds_sent=sent,
        seconds_left_out=max(0.0, decoded.seconds - sent),
        truncated=decoded.truncated,
        mismatch=analysis.mismatch,
    )
    return ConvertedAudio(segments=segments, report=report)
