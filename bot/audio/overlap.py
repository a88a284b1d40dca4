"""The first segment's MP3 encoding, overlapped with decoding (:class:`FirstSpanFeed`).

Used by :class:`bot.audio.pipeline.AudioPipeline` when it has more than one worker: the
decoder thread, the analysis and an encoder thread meet here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from bot.audio.decode import SAMPLE_RATE
from bot.audio.encode import Mp3Encoder, mp3_encoder

# The first span's encoder wakes up once this many new samples are decoded (0.58 s).
_STREAM_CHUNK = 16 * 576


class FirstSpanFeed:
    """Hands decoded samples to the first span's MP3 encoder while decoding goes on.

    The decoder thread reports progress, the encoder thread encodes every sample that
    certainly belongs to the first span (:func:`~bot.audio.pauses.first_span_min_end`), and
    the analysis settles where the span really ends once the plan is made (``-1``: no first
    span is needed, the work is dropped). So on two cores LAME runs beside the decoder
    instead of after it, and only the last seconds of the span are encoded after the plan.
    """

    def __init__(self, *, safe_end: int) -> None:
        """``safe_end``: samples before it belong to the first span whatever the plan."""
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
                    encoder = mp3_encoder(rate=SAMPLE_RATE)
                encoder.feed(samples[pos:target], check=check)
                pos = target
                if end is not None:
                    return encoder.finish()
        finally:
            if encoder is not None:
                encoder.close()
