"""A chat's usage report: by day and model, plus totals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.storage.repositories import UsageRow


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageTotals:
    turns: int = 0
    audio_seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    audio_tokens: int = 0
    speech_seconds: float = 0.0  # spoken replies delivered
    speech_tokens: int = 0  # audio output tokens of spoken (Omni) replies
    tts_characters: int = 0  # read aloud by a TTS model


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageReport:
    """Rows newest day first; ``totals`` sums them all."""

    rows: tuple[UsageRow, ...]
    totals: UsageTotals

    @classmethod
    def from_rows(cls, rows: Sequence[UsageRow]) -> UsageReport:
        return cls(
            rows=tuple(rows),
            totals=UsageTotals(
                turns=sum(r.turns for r in rows),
                audio_seconds=sum(r.audio_seconds for r in rows),
                input_tokens=sum(r.input_tokens for r in rows),
                output_tokens=sum(r.output_tokens for r in rows),
                audio_tokens=sum(r.audio_tokens for r in rows),
                speech_seconds=sum(r.speech_seconds for r in rows),
                speech_tokens=sum(r.speech_tokens for r in rows),
                tts_characters=sum(r.tts_characters for r in rows),
            ),
        )
