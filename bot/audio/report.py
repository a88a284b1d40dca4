"""Formatting the long-audio note the reply carries when part of a recording was left out."""

from __future__ import annotations

from bot import texts
from bot.audio.types import AudioReport
from bot.i18n import tr

# Less than this much left out is rounding, not worth a note.
_NOTE_THRESHOLD = 0.5  # seconds


def format_duration(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on, rounded to the second: 180 -> "3:00"."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def left_out_note(report: AudioReport) -> str | None:
    """E.g. "I listened to the first 3:00 of 7:42.", or ``None`` when nothing was left out."""
    sent, total = format_duration(report.seconds_sent), format_duration(report.total_seconds)
    if report.truncated:
        return tr(texts.AUDIO_LEFT_OUT_AT_LEAST).format(sent=sent, total=total)
    if report.seconds_left_out < _NOTE_THRESHOLD:
        return None
    return tr(texts.AUDIO_LEFT_OUT).format(sent=sent, total=total)
