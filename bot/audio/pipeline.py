"""The audio pipeline: bytes in any common audio/video container -> clips the model accepts.

Policy, in the order it is applied:

1. **Size.** Inputs over ``max_bytes`` are refused (:class:`AudioTooLarge`); adapters call
   :meth:`AudioPipeline.check_size` with the platform's declared size *before* downloading.
2. **Content, not labels.** The container is recognised from its leading bytes; the declared
   mime type and file name are never trusted (:mod:`bot.audio.probe`).
3. **Long audio is answered, never refused.** Only the start of a recording that the
   model can be sent is decoded: ``budget_seconds`` (plus the few seconds in which the
   last cut may fall) or ``max_segments`` full segments
   (:func:`bot.audio.spans.decode_window`), and never more than ``max_seconds`` of
   *decoded samples*, which bounds the work (and the one sample buffer) whatever the
   header claims. The length of the rest is measured without decoding it: Ogg's last
   page, a seek to the end, or the remaining packets' timestamps (:mod:`bot.audio.length`);
   the report's ``total_seconds`` is the recording's length (``truncated`` when that is
   only a lower bound), so the reply can say "I listened to the first 3:30 of 1:00:00."
   A file that holds more or less audio than its container
   declares (cut off; a WAV whose data chunk ends before its samples do, where FFmpeg
   stops) is answered with what was heard, and the report's ``mismatch`` says what could
   not be read, beyond rounding, priming and padding
   (:func:`bot.audio.length.length_mismatch`). A recording under 0.3 s (a tap on the
   record button) is refused (:class:`AudioTooShort`), and so is one that is silent.
4. **Segments.** The decoded mono 16 kHz audio is cut into segments of at most
   ``segment_seconds``, at a pause within the last 5 s before each limit where there is one
   (:mod:`bot.audio.pauses`). Segments are taken in order while their
   :func:`~bot.audio.types.counted_seconds` fit ``budget_seconds`` and their number fits
   ``max_segments``; the rest is reported as ``seconds_left_out`` and never encoded (or,
   past the decoded start, never decoded).
5. **Work off the loop.** Decoding and every segment's encoding run in a bounded thread pool
   (PyAV releases the GIL inside FFmpeg's codec calls, so threads use all cores); segments of
   one recording are encoded in parallel, and with more than one worker the first segment's
   MP3 encoding starts while decoding is still going on (:mod:`bot.audio.overlap`). At most
   ``workers`` conversions are in flight at once, which bounds memory to that many decoded
   windows (32 KB per second decoded: 7.6 MB for the default model's 3:58). Each
   conversion has a time limit (:class:`AudioTimeout`), enforced both on the awaiting side
   and inside the workers, which check it between packets and frames and stop
   (:mod:`bot.audio.convert`).
6. **Repeats are free.** Finished conversions are kept in a small LRU cache keyed by the
   SHA-256 of the input bytes and the conversion parameters.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Literal, TypeVar

from bot.audio.cache import CacheKey, ConversionCache
from bot.audio.convert import Deadline, analyse, assemble
from bot.audio.decode import SAMPLE_RATE
from bot.audio.encode import encode_clip, max_clip_seconds
from bot.audio.overlap import FirstSpanFeed
from bot.audio.pauses import Span, first_span_min_end
from bot.audio.types import AudioInput, ConvertedAudio
from bot.errors import AudioEmpty, AudioTimeout, AudioTooLarge

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CACHE_BYTES = 32 * 1024 * 1024
# Hashing is done in the pool above this size, so a 20 MB upload does not stall the loop.
_HASH_INLINE_BYTES = 1024 * 1024


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
        self._active: set[Deadline] = set()
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
        """Decode the start of ``audio`` the clips need and cut it into clips of at most
        ``segment_seconds``; the report says how long the whole recording is.

        A clip is never longer than what fits the service's 10 MB base64 limit in this
        pipeline's output format (about 4 min of WAV, 32 min of MP3), whatever window the
        caller asked for. See the module docstring for the policy. Raises
        :class:`bot.errors.AudioError` subclasses, each with a ``user_message`` fit to show.
        """
        if self._closed:
            raise RuntimeError("AudioPipeline is closed")
        if segment_seconds <= 0:
            raise ValueError("segment_seconds must be positive")
        segment_seconds = min(segment_seconds, max_clip_seconds(self.output_format))
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
        deadline = Deadline(self.timeout)
        self._active.add(deadline)
        # With more than one worker, the first span's MP3 encoder runs beside the decoder.
        # It is queued after the analysis, so with one thread it never waits for samples.
        feed = (
            FirstSpanFeed(safe_end=first_span_min_end(SAMPLE_RATE, segment_seconds=segment_seconds))
            if self.output_format == "mp3" and self.workers > 1
            else None
        )
        try:
            async with asyncio.timeout(self.timeout):
                analysing = self._submit(
                    partial(
                        analyse,
                        data,
                        segment_seconds=segment_seconds,
                        budget_seconds=budget_seconds,
                        max_segments=max_segments,
                        max_seconds=self.max_seconds,
                        check=deadline,
                        feed=feed,
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

                def encoding(span: Span) -> Callable[[], bytes]:
                    return partial(
                        encode_clip,
                        samples[span.start : span.end],
                        rate=SAMPLE_RATE,
                        fmt=fmt,
                        check=deadline,
                    )

                # Segments are independent: encode them side by side on the pool.
                others = [self._submit(encoding(span)) for span in chosen[streamed:]]
                encoded = list(await asyncio.gather(*others))
                if streamed:
                    assert first is not None
                    blob = await first
                    if blob is None:
                        blob = await self._run(encoding(chosen[0]))
                    encoded.insert(0, blob)
        except TimeoutError:
            raise AudioTimeout(f"conversion over {self.timeout:.0f} s") from None
        finally:
            # Stops workers of an abandoned (timed out, failed or cancelled) conversion.
            deadline.abandoned.set()
            self._active.discard(deadline)

        result = assemble(analysis, encoded, fmt=self.output_format, bytes_in=len(data))
        r = result.report
        log.debug(
            "audio converted",
            extra={
                "container": r.container,
                "codec": r.codec,
                "duration": round(r.duration, 3),
                "total": round(r.total_seconds, 3),
                "total_from": r.total_from.value,
                "segments": r.segments,
                "seconds_sent": round(r.seconds_sent, 3),
                "seconds_left_out": round(r.seconds_left_out, 3),
                "truncated": r.truncated,
                "mismatch": r.mismatch.kind.value if r.mismatch else None,
                "bytes_in": r.bytes_in,
                "bytes_out": r.bytes_out,
                "ms": round((time.perf_counter() - started) * 1000),
            },
        )
        return result


def _quiet(future: asyncio.Future[bytes | None]) -> None:
    if not future.cancelled():
        future.exception()
