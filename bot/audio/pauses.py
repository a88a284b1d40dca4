"""Energy-based silence and pause detection, and the segment plan built on it.

Frame energies are 20 ms RMS levels in dBFS. The pause threshold adapts to the recording:
well below its speech level and a little above its noise floor, so a quiet room recording
and a loud phone call both get pauses where people stop talking, and steady noise gets none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FRAME_SECONDS = 0.02
# Frames below this level (dBFS) are inaudible: digital silence, or hiss from a muted mic.
SILENCE_DBFS = -50.0
_AUDIBLE_FRAMES = 10  # 200 ms
# A pause is at least this long; shorter dips are stops inside words.
MIN_PAUSE_SECONDS = 0.15
# A trailing remainder shorter than this after a full segment is not made a segment.
MIN_TAIL_SECONDS = 0.5
# Where to look for a pause before a segment's limit.
PAUSE_SEARCH_SECONDS = 5.0

_FLOOR_DB = -100.0  # digital silence, instead of -inf
_LEVEL_BLOCK_FRAMES = 1500  # 30 s of frames at a time


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open range of samples ``[start, end)``."""

    start: int
    end: int


def frame_levels(samples: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.float64]:
    """RMS level in dBFS of each full 20 ms frame (a trailing partial frame is dropped)."""
    size = int(rate * FRAME_SECONDS)
    count = len(samples) // size
    if count == 0:
        return np.full(1, _rms_db(samples.astype(np.float64)))
    frames = samples[: count * size].reshape(count, size)
    sums = np.empty(count, dtype=np.float64)
    # In blocks: a float copy of the whole recording would be twice its own size.
    for at in range(0, count, _LEVEL_BLOCK_FRAMES):
        block = frames[at : at + _LEVEL_BLOCK_FRAMES].astype(np.float32)
        # Row-wise sum of squares in one pass, without the temporaries of mean(square(x / s)).
        sums[at : at + len(block)] = np.einsum("ij,ij->i", block, block, dtype=np.float64)
    power = sums / (size * 32768.0**2)
    with np.errstate(divide="ignore"):
        levels = 10.0 * np.log10(power)
    return np.maximum(levels, _FLOOR_DB)


def _rms_db(x: npt.NDArray[np.float64]) -> float:
    if len(x) == 0:
        return _FLOOR_DB
    power = float(np.mean(np.square(x / 32768.0)))
    return max(10.0 * float(np.log10(power)), _FLOOR_DB) if power > 0 else _FLOOR_DB


def is_silent(levels: npt.NDArray[np.float64]) -> bool:
    """Whether nothing in the recording is loud enough to be heard.

    Audible means at least 200 ms of frames above :data:`SILENCE_DBFS` (or half the frames
    of a shorter recording), so a single click in a silent file does not count as sound
    but a long pause around a short phrase does not hide the phrase.
    """
    audible = int(np.count_nonzero(levels > SILENCE_DBFS))
    needed = min(_AUDIBLE_FRAMES, max(1, len(levels) // 2))
    return audible < needed


def pause_threshold(levels: npt.NDArray[np.float64]) -> float:
    """The level (dBFS) under which a frame counts as part of a pause."""
    audible = levels[levels > SILENCE_DBFS]
    # Speech level from audible frames only: long pauses must not drag it down.
    speech = float(np.percentile(audible if len(audible) else levels, 95))
    floor = float(np.percentile(levels, 10))
    # 6 dB above the floor catches pauses in noisy rooms; never within 10 dB of speech, so
    # steady noise or music without gaps has no "pauses".
    return min(max(floor + 6.0, speech - 35.0), speech - 10.0)


def plan_segments(
    samples: npt.NDArray[np.int16],
    rate: int,
    *,
    segment_seconds: float,
    search_seconds: float = PAUSE_SEARCH_SECONDS,
    levels: npt.NDArray[np.float64] | None = None,
) -> list[Span]:
    """Cut ``samples`` into spans of at most ``segment_seconds``.

    A span longer than the limit ends in the middle of the longest pause that falls within
    the last ``search_seconds`` before the limit (the latest one on a tie); without such a
    pause it ends exactly at the limit. A last span shorter than :data:`MIN_TAIL_SECONDS`
    after a full one is dropped. ``levels`` are ``frame_levels(samples, rate)`` if the
    caller has them already.
    """
    total = len(samples)
    limit = int(segment_seconds * rate)
    if limit <= 0:
        raise ValueError("segment_seconds must be positive")
    if total <= limit:
        return [Span(0, total)] if total else []
    if levels is None:
        levels = frame_levels(samples, rate)
    quiet = levels < pause_threshold(levels)
    frame = int(rate * FRAME_SECONDS)
    min_frames = max(1, round(MIN_PAUSE_SECONDS / FRAME_SECONDS))
    search = min(int(search_seconds * rate), limit - frame)

    spans: list[Span] = []
    start = 0
    while total - start > limit:
        end = start + limit
        cut = _pause_cut(quiet, lo=(end - search) // frame, hi=end // frame, min_frames=min_frames)
        stop = cut * frame if cut is not None else end
        if stop <= start:
            stop = end
        spans.append(Span(start, stop))
        start = stop
    # A sliver after the last full segment (codec padding, a breath) is not worth a clip
    # that the service bills as a whole second; it is left out (and reported as such).
    if total - start >= int(MIN_TAIL_SECONDS * rate):
        spans.append(Span(start, total))
    return spans


def first_span_min_end(
    rate: int, *, segment_seconds: float, search_seconds: float = PAUSE_SEARCH_SECONDS
) -> int:
    """A sample index the first span of :func:`plan_segments` always reaches.

    Whatever the rest of the recording holds, the first span ends at the total length (when
    it fits the limit), at the limit, or at a pause cut within the search window, which
    starts here. Samples before this point belong to the first span before the plan is
    known, so they can be encoded while decoding goes on.
    """
    limit = int(segment_seconds * rate)
    frame = int(rate * FRAME_SECONDS)
    search = min(int(search_seconds * rate), limit - frame)
    return max(0, min(limit, (limit - search) // frame * frame))


def _pause_cut(quiet: npt.NDArray[np.bool_], *, lo: int, hi: int, min_frames: int) -> int | None:
    """Frame index in the middle of the longest quiet run within ``[lo, hi)``, if any."""
    window = quiet[max(lo, 0) : min(hi, len(quiet))]
    best: tuple[int, int] | None = None  # (length, middle)
    run_start: int | None = None
    for i, q in enumerate([*window.tolist(), False]):
        if q and run_start is None:
            run_start = i
        elif not q and run_start is not None:
            length = i - run_start
            if length >= min_frames and (best is None or length >= best[0]):
                best = (length, max(lo, 0) + (run_start + i) // 2)
            run_start = None
    return None if best is None else best[1]
