"""Which planned segments are sent, and how much of a recording must be decoded to know.

The model is sent the leading segments that fit the budget and the cap, so only the start
of a recording is ever needed: :func:`decode_window` says how much, and an hour-long note
costs the decoding of its first minutes, not of the hour.
"""

from __future__ import annotations

from bot.audio.decode import SAMPLE_RATE
from bot.audio.pauses import PAUSE_SEARCH_SECONDS, Span
from bot.audio.types import counted_seconds

# Decoded past what the chosen segments can reach: frame rounding at the cuts, and a window
# that ends exactly at a segment's limit would end the segment there rather than at a pause.
WINDOW_MARGIN = 1.0  # seconds


def decode_window(
    *,
    segment_seconds: float,
    budget_seconds: float | None,
    max_segments: int | None,
    max_seconds: float,
) -> float:
    """Seconds of a recording's start to decode so :func:`choose_spans` chooses the spans
    it would choose on the whole recording.

    Spans are taken from the start while their counted seconds (never fewer than the real
    ones) fit ``budget_seconds``, so every chosen span ends by the budget, and a span cut
    within the recording is at least ``segment_seconds`` minus the pause search window
    long (:func:`bot.audio.pauses.plan_segments`): the last chosen one starts that much
    before the budget, and its cut is decided by ``segment_seconds`` after its start. With
    ``max_segments``, the last one's cut is decided by that many full segments. The span
    cut short by the end of the window is never chosen: it would end past the budget.
    ``max_seconds`` bounds the work whatever the budget: with no budget and no cap, that
    much is decoded.
    """
    window = max_seconds
    if budget_seconds is not None:
        reach = min(PAUSE_SEARCH_SECONDS, segment_seconds)
        window = min(window, max(0.0, budget_seconds) + reach + WINDOW_MARGIN)
    if max_segments is not None:
        window = min(window, max_segments * segment_seconds + WINDOW_MARGIN)
    return window


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
