"""Which planned segments are sent: the leading ones that fit the budget and the cap."""

from __future__ import annotations

from bot.audio.decode import SAMPLE_RATE
from bot.audio.pauses import Span
from bot.audio.types import counted_seconds


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
