"""The worker-thread side of one conversion: the deadline, the analysis, the result.

:func:`analyse` (probe, decode the start, measure the length, check, plan, choose) runs
in :class:`~bot.audio.pipeline.AudioPipeline`'s thread pool and checks a :class:`Deadline`
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
from bot.audio.length import RecordingLength, length_mismatch, recording_length
from bot.audio.overlap import FirstSpanFeed
from bot.audio.pauses import Span, frame_levels, is_silent, plan_segments
from bot.audio.probe import ProbeInfo, open_input, probe_info, stored_length
from bot.audio.spans import choose_spans, decode_window
from bot.audio.types import AudioReport, ConvertedAudio, LengthMismatch, MismatchKind, Segment
from bot.errors import AudioEmpty, AudioSilent, AudioTimeout, AudioTooShort, AudioUnreadable

# Shorter than this is a tap on the record button, not a message: no word fits in it.
MIN_RECORDING_SECONDS = 0.3


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
    decoded: Decoded  # the recording's start (or all of it)
    length: RecordingLength  # of the whole recording
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
    """Probe, decode what the model can be sent, measure the rest, plan and choose segments
    (runs in the pool).

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
    window = decode_window(
        segment_seconds=segment_seconds,
        budget_seconds=budget_seconds,
        max_segments=max_segments,
        max_seconds=max_seconds,
    )
    with contextlib.closing(container):
        info = probe_info(container, stream)
        decoded = decode_mono16k(
            container,
            stream,
            max_seconds=window,
            check=check,
            progress=feed.progress if feed is not None else None,
        )
        # Reads on from where decoding stopped (without decoding), so inside the ``with``.
        length = recording_length(container, stream, info, decoded, check=check)
    if len(decoded.samples) == 0:
        raise AudioEmpty(f"{info.container}/{info.codec}: no samples")
    mismatch = length_mismatch(info, length, stored_length(data, info.container))
    if not decoded.truncated and decoded.seconds < MIN_RECORDING_SECONDS:
        if mismatch is not None and mismatch.kind is MismatchKind.CUT_OFF:
            # A longer recording whose file broke off at once: damaged, not a tap.
            raise AudioUnreadable(f"cut off after {decoded.seconds:.3f} s")
        raise AudioTooShort(f"{info.container}/{info.codec}: {decoded.seconds:.3f} s")
    check()
    levels = frame_levels(decoded.samples, SAMPLE_RATE)
    # Only a recording heard whole can be called silent: a long one may start quietly.
    if not decoded.truncated and is_silent(levels):
        raise AudioSilent(f"{info.container}/{info.codec}: nothing above the silence level")
    spans = plan_segments(
        decoded.samples, SAMPLE_RATE, segment_seconds=segment_seconds, levels=levels
    )
    return Analysis(
        info=info,
        decoded=decoded,
        length=length,
        chosen=choose_spans(spans, budget_seconds=budget_seconds, max_segments=max_segments),
        mismatch=mismatch,
    )


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
    info, decoded, length = analysis.info, analysis.decoded, analysis.length
    sent = sum(s.duration for s in segments)
    report = AudioReport(
        container=info.container,
        codec=info.codec,
        duration=decoded.seconds,
        total_seconds=length.seconds,
        sample_rate=info.sample_rate,
        channels=info.channels,
        bytes_in=bytes_in,
        bytes_out=sum(len(s.data) for s in segments),
        segments=len(segments),
        seconds_sent=sent,
        seconds_left_out=max(0.0, length.seconds - sent),
        truncated=length.at_least,
        mismatch=analysis.mismatch,
        total_from=length.source,
    )
    return ConvertedAudio(segments=segments, report=report)
