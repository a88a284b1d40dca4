"""The audio pipeline: bytes in any common audio/video container -> clips the model accepts.

Policy, in the order it is applied:

1. **Size.** Inputs over ``max_bytes`` are refused (:class:`AudioTooLarge`); adapters call
   :meth:`AudioPipeline.check_size` with the platform's declared size *before* downloading.
2. **Content, not labels.** The container is recognised from its leading bytes; the declared
   mime type and file name are never trusted (:mod:`bot.audio.probe`).
3. **Long audio.** If the header declares more than ``max_seconds``, the input is refused
   (:class:`AudioTooLong`) before anything is decoded. If the header understates the length
   (or has none), decoding stops after ``max_seconds`` of *decoded samples*; what was decoded
   is used and the report says ``truncated=True`` (the rest is unknown and never decoded).
4. **Segments.** The decoded mono 16 kHz audio is cut into segments of at most
   ``segment_seconds``, at a pause within the last 5 s before each limit where there is one
   (:mod:`bot.audio.pauses`). Segments are taken in order while their
   :func:`~bot.audio.types.counted_seconds` fit ``budget_seconds`` and their number fits
   ``max_segments``; the rest is reported as ``seconds_left_out`` and never encoded.
5. **Work off the loop.** Decoding and every segment's encoding run in a bounded thread pool
   (PyAV releases the GIL inside FFmpeg's codec calls, so threads use all cores); segments of
   one recording are encoded in parallel, and with more than one worker the first segment's
   MP3 encoding starts while decoding is still going on (:class:`_FirstSpanFeed`). At most
   ``workers`` conversions are in flight at once, which bounds memory to that many decoded
   recordings. Each conversion has a time limit (:class:`AudioTimeout`), enforced both on the
   awaiting side and inside the workers, which check it between packets and frames and stop.
6. **Repeats are free.** Finished conversions are kept in a small LRU cache keyed by the
   SHA-256 of the input bytes and the conversion parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

from bot.audio.cache import CacheKey, ConversionCache
from bot.audio.decode import SAMPLE_RATE, Decoded, decode_mono16k
from bot.audio.encode import Mp3Encoder, encode_clip
from bot.audio.pauses import Span, first_span_min_end, frame_levels, is_silent, plan_segments
from bot.audio.probe import (
    EXACT_DURATION_FORMATS,
    TRUNCATION_TOLERANCE,
    ProbeInfo,
    open_input,
    probe_info,
    refuse_if_declared_too_long,
)
from bot.audio.types import AudioInput, AudioReport, ConvertedAudio, Segment, counted_seconds
from bot.errors import AudioEmpty, AudioSilent, AudioTimeout, AudioTooLarge, AudioUnreadable

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CACHE_BYTES = 32 * 1024 * 1024
# Hashing is done in the pool above this size, so a 20 MB upload does not stall the loop.
_HASH_INLINE_BYTES = 1024 * 1024


class _Deadline:
    """Raised into a worker once the conversion's time is up or it was abandoned."""

    def __init__(self, seconds: float) -> None:
        self._until = time.monotonic() + seconds
        self._seconds = seconds
        self.abandoned = threading.Event()

    def __call__(self) -> None:
        if self.abandoned.is_set() or time.monotonic() > self._until:
            raise AudioTimeout(f"conversion over {self._seconds:.0f} s")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Analysis:
    info: ProbeInfo
    decoded: Decoded
    chosen: list[Span]


# The first span's encoder wakes up once this many new samples are decoded (0.58 s).
_STREAM_CHUNK = 16 * 576


class _FirstSpanFeed:
    """Hands decoded samples to the first span's MP3 encoder while decoding goes on.

    The decoder thread reports progress, the encoder thread encodes every sample that
    certainly belongs to the first span (:func:`first_span_min_end`), and the analysis
    settles where the span really ends once the plan is made (``-1``: no first span is
    needed, the work is dropped). So on two cores LAME runs beside the decoder instead of
    after it, and only the last seconds of the span are encoded after the plan.
    """

    def __init__(self, *, safe_end: int) -> None:
        self._cond = threading.Condition()
        self._samples: npt.NDArray[np.int16] | None = None
        self._filled = 0
        self._safe_end = safe_end
        self._end: int | None = None

    def progress(self, samples: npt.NDArray[np.int16], filled: int) -> None:
        """Decoder thread: the first ``filled`` samples of ``samples`` are final."""
        with self._cond:
            self._samples = samples
            self._filled = filled
            self._cond.notify()

    def settle(self, end: int) -> None:
        """Analysis thread: the first span ends at ``end`` (``-1``: not wanted)."""
        with self._cond:
            self._end = end
            self._cond.notify()

    def encode(self, check: Callable[[], None]) -> bytes | None:
        """Encoder thread: the first span as MP3, or ``None`` if it is not wanted.

        ``check`` is called at least every 0.1 s while waiting and raises to abort.
        """
        encoder: Mp3Encoder | None = None
        pos = 0
        try:
            while True:
                with self._cond:
                    while True:
                        check()
                        end = self._end
                        samples = self._samples
                        if end is not None:
                            target = end
                            break
                        target = min(self._filled, self._safe_end)
                        if samples is not None and target - pos >= _STREAM_CHUNK:
                            break
                        self._cond.wait(0.1)
                if end is not None and (end < pos or samples is None):
                    # Not wanted (or, defensively, ended before what was already encoded:
                    # the caller then encodes the span on its own).
                    return None
                assert samples is not None
                if encoder is None:
                    encoder = Mp3Encoder(rate=SAMPLE_RATE)
                encoder.feed(samples[pos:target], check=check)
                pos = target
                if end is not None:
                    return encoder.finish()
        finally:
            if encoder is not None:
                encoder.close()


class AudioPipeline:
    """Converts :class:`AudioInput` into model-ready clips; implements ``AudioConverter``.

    Build one per process (from ``AUDIO_*`` settings) and close it on shutdown. Nothing is
    started until the first conversion.
    """

    def __init__(
        self,
        *,
        max_bytes: int = 20 * 1024 * 1024,
        max_seconds: float = 15 * 60.0,
        output_format: Literal["mp3", "wav"] = "mp3",
        workers: int = 0,
        timeout: float = 60.0,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        """``workers=0`` means one per core; ``cache_bytes=0`` disables the cache."""
        if max_bytes <= 0 or max_seconds <= 0 or timeout <= 0 or workers < 0:
            raise ValueError("max_bytes, max_seconds and timeout must be positive, workers >= 0")
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.output_format: Literal["mp3", "wav"] = output_format
        self.workers = workers or os.cpu_count() or 1
        self.timeout = timeout
        self.cache = ConversionCache(max_bytes=cache_bytes)
        self._executor: ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._active: set[_Deadline] = set()
        self._closed = False

    # --- public ------------------------------------------------------------------------

    def check_size(self, declared_size: int | None) -> None:
        """Refuse a file the platform declares larger than ``max_bytes``, before download.

        ``None`` (size unknown) passes; the downloaded bytes are checked again by
        :meth:`convert`, so the adapter should also cap its download at ``max_bytes``.
        """
        if declared_size is not None and declared_size > self.max_bytes:
            raise AudioTooLarge(size=declared_size, limit=self.max_bytes)

    async def convert(
        self,
        audio: AudioInput,
        *,
        segment_seconds: float,
        budget_seconds: float | None = None,
        max_segments: int | None = None,
    ) -> ConvertedAudio:
        """Decode ``audio`` and cut it into clips of at most ``segment_seconds``.

        See the module docstring for the policy. Raises :class:`bot.errors.AudioError`
        subclasses, each with a ``user_message`` fit to show.
        """
        if self._closed:
            raise RuntimeError("AudioPipeline is closed")
        if segment_seconds <= 0:
            raise ValueError("segment_seconds must be positive")
        data = audio.data
        self.check_size(len(data))
        if not data:
            raise AudioEmpty("zero bytes")
        digest = (
            hashlib.sha256(data).hexdigest()
            if len(data) <= _HASH_INLINE_BYTES
            else await self._run(lambda: hashlib.sha256(data).hexdigest())
        )
        key = CacheKey(digest, self.output_format, segment_seconds, budget_seconds, max_segments)
        cached = self.cache.get(key)
        if cached is not None:
            log.debug("audio cache hit", extra={"segments": cached.report.segments})
            return cached

        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        async with self._slots:
            result = await self._convert(data, segment_seconds, budget_seconds, max_segments)
        self.cache.put(key, result)
        return result

    def close(self) -> None:
        """Stop the pool: queued work is dropped, running work stops at its next check."""
        self._closed = True
        for deadline in list(self._active):
            deadline.abandoned.set()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self.cache.clear()

    async def aclose(self) -> None:
        """:meth:`close` for async shutdown code."""
        self.close()

    # --- internals ---------------------------------------------------------------------

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix="audio"
            )
        return self._executor

    async def _run(self, fn: Callable[[], T]) -> T:
        return await self._submit(fn)

    def _submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``fn`` on the pool now (in submission order) and return its future."""
        return asyncio.get_running_loop().run_in_executor(self._pool(), fn)

    async def _convert(
        self,
        data: bytes,
        segment_seconds: float,
        budget_seconds: float | None,
        max_segments: int | None,
    ) -> ConvertedAudio:
        started = time.perf_counter()
        deadline = _Deadline(self.timeout)
        self._active.add(deadline)
        # With more than one worker, the first span's MP3 encoder runs beside the decoder.
        # It is queued after the analysis, so with one thread it never waits for samples.
        feed = (
            _FirstSpanFeed(
                safe_end=first_span_min_end(SAMPLE_RATE, segment_seconds=segment_seconds)
            )
            if self.output_format == "mp3" and self.workers > 1
            else None
        )
        try:
            async with asyncio.timeout(self.timeout):
                analysing = self._submit(
                    lambda: self._analyse(
                        data, segment_seconds, budget_seconds, max_segments, deadline, feed
                    )
                )
                first: asyncio.Future[bytes | None] | None = None
                if feed is not None:
                    first = self._submit(partial(feed.encode, deadline))
                    # Its error (the deadline, after a failed analysis) is not news.
                    first.add_done_callback(_quiet)
                analysis = await analysing
                samples = analysis.decoded.samples
                fmt = self.output_format
                chosen = analysis.chosen
                streamed = 1 if first is not None and chosen else 0
                # Segments are independent: encode them side by side on the pool.
                others = [
                    self._submit(
                        partial(
                            encode_clip,
                            samples[span.start : span.end],
                            rate=SAMPLE_RATE,
                            fmt=fmt,
                            check=deadline,
                        )
                    )
                    for span in chosen[streamed:]
                ]
                encoded = list(await asyncio.gather(*others))
                if streamed:
                    assert first is not None
                    blob = await first
                    if blob is None:
                        span = chosen[0]
                        blob = await self._run(
                            partial(
                                encode_clip,
                                samples[span.start : span.end],
                                rate=SAMPLE_RATE,
                                fmt=fmt,
                                check=deadline,
                            )
                        )
                    encoded.insert(0, blob)
        except TimeoutError:
            raise AudioTimeout(f"conversion over {self.timeout:.0f} s") from None
        finally:
            # Stops workers of an abandoned (timed out, failed or cancelled) conversion.
            deadline.abandoned.set()
            self._active.discard(deadline)

        result = _assemble(analysis, encoded, fmt=self.output_format, bytes_in=len(data))
        r = result.report
        log.debug(
            "audio converted",
            extra={
                "container": r.container,
                "codec": r.codec,
                "duration": round(r.duration, 3),
                "segments": r.segments,
                "seconds_sent": round(r.seconds_sent, 3),
                "seconds_left_out": round(r.seconds_left_out, 3),
                "truncated": r.truncated,
                "bytes_in": r.bytes_in,
                "bytes_out": r.bytes_out,
                "ms": round((time.perf_counter() - started) * 1000),
            },
        )
        return result

    def _analyse(
        self,
        data: bytes,
        segment_seconds: float,
        budget_seconds: float | None,
        max_segments: int | None,
        check: _Deadline,
        feed: _FirstSpanFeed | None = None,
    ) -> _Analysis:
        """Probe, decode, check, plan and choose segments (runs in the pool).

        ``feed`` gets the samples as they are decoded, and the first span's end (``-1`` when
        there is none or the analysis fails).
        """
        try:
            analysis = self._analyse_fed(
                data, segment_seconds, budget_seconds, max_segments, check, feed
            )
        except BaseException:
            if feed is not None:
                feed.settle(-1)
            raise
        if feed is not None:
            feed.settle(analysis.chosen[0].end if analysis.chosen else -1)
        return analysis

    def _analyse_fed(
        self,
        data: bytes,
        segment_seconds: float,
        budget_seconds: float | None,
        max_segments: int | None,
        check: _Deadline,
        feed: _FirstSpanFeed | None,
    ) -> _Analysis:
        container, stream = open_input(data)
        with contextlib.closing(container):
            info = probe_info(container, stream)
            refuse_if_declared_too_long(info, max_seconds=self.max_seconds)
            decoded = decode_mono16k(
                container,
                stream,
                max_seconds=self.max_seconds,
                check=check,
                progress=feed.progress if feed is not None else None,
            )
        if len(decoded.samples) == 0:
            raise AudioEmpty(f"{info.container}/{info.codec}: no samples")
        _refuse_if_cut_off(info, decoded)
        check()
        levels = frame_levels(decoded.samples, SAMPLE_RATE)
        if is_silent(levels):
            raise AudioSilent(f"{info.container}/{info.codec}: nothing above the silence level")
        spans = plan_segments(
            decoded.samples, SAMPLE_RATE, segment_seconds=segment_seconds, levels=levels
        )
        return _Analysis(
            info=info,
            decoded=decoded,
            chosen=choose_spans(spans, budget_seconds=budget_seconds, max_segments=max_segments),
        )


def _quiet(future: asyncio.Future[bytes | None]) -> None:
    if not future.cancelled():
        future.exception()


def choose_spans(
    spans: list[Span], *, budget_seconds: float | None, max_segments: int | None
) -> list[Span]:
    """The leading spans whose counted seconds fit the budget and whose number fits the cap.

    Strictly in order: once one span does not fit, no later (shorter) one is taken, so what
    the model hears is always the start of the recording.
    """
    chosen: list[Span] = []
    used = 0.0
    for span in spans:
        if max_segments is not None and len(chosen) >= max_segments:
            break
        cost = counted_seconds((span.end - span.start) / SAMPLE_RATE)
        if budget_seconds is not None and used + cost > budget_seconds + 1e-9:
            break
        chosen.append(span)
        used += cost
    return chosen


def _refuse_if_cut_off(info: ProbeInfo, decoded: Decoded) -> None:
    """Raise :class:`AudioUnreadable` when far less decoded than an exact header promised."""
    demuxer = info.container.split(",")[0]
    declared = info.declared_duration
    if demuxer not in EXACT_DURATION_FORMATS or declared is None or decoded.truncated:
        return
    if decoded.seconds < declared - max(TRUNCATION_TOLERANCE, 0.02 * declared):
        raise AudioUnreadable(
            f"truncated: decoded {decoded.seconds:.2f} s of declared {declared:.2f} s"
        )


def _assemble(
    analysis: _Analysis, encoded: list[bytes], *, fmt: str, bytes_in: int
) -> ConvertedAudio:
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
    )
    return ConvertedAudio(segments=segments, report=report)
