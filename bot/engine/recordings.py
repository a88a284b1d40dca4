"""The current turn's audio: reused from stored clips, or fetched and converted once."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from bot.audio.types import AudioConverter, AudioInput, LengthMismatch, Segment, counted_seconds
from bot.catalog import ModelSpec, turn_clip_cap
from bot.engine import chat_store
from bot.engine.ports import AudioSource
from bot.errors import AudioEmpty, AudioTooLarge
from bot.metrics import Metrics
from bot.storage.database import Database

log = structlog.get_logger(__name__)

SAMPLE_RATE = 16_000  # what the pipeline produces (mono 16 kHz)
# A stored clip a little longer than the model's window is still one the model accepts.
_WINDOW_TOLERANCE = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedAudio:
    """Clips in order, and how long the whole recording is."""

    clips: tuple[Segment, ...]
    total_seconds: float
    truncated: bool  # the recording is longer than ``total_seconds`` by an unknown amount
    source_key: str | None
    reused: bool
    # One entry per recording, in order: how its file disagreed with its own header
    # (cut off, unread tail…), ``None`` when it did not or the clips were reused (stored
    # clips keep no such record; the first answer already carried the note).
    mismatches: tuple[LengthMismatch | None, ...] = ()


async def prepare_audio(
    source: AudioSource,
    *,
    spec: ModelSpec,
    converter: AudioConverter,
    database: Database,
    chat_row_id: int,
    max_bytes: int,
    budget_seconds: float | None,
    metrics: Metrics,
    max_clips: int | None = None,
) -> PreparedAudio:
    """The recording as clips for ``spec``; raises :class:`bot.errors.BotError` subclasses.

    ``max_clips`` caps the clips (default: the model's own cap).

    A recording this chat already sent (same ``source_key``) is replayed from its stored
    clips when they suit the model's window, so it is neither downloaded nor converted
    again. Otherwise the declared size is checked before any download.
    """
    key = source.source_key
    if key:
        stored = await chat_store.stored_recording(
            database, chat_row_id=chat_row_id, source_key=key
        )
        if (
            stored is not None
            and stored.clips
            and all(c.duration <= spec.clip_seconds + _WINDOW_TOLERANCE for c in stored.clips)
        ):
            clips = tuple(
                Segment(
                    data=c.data,
                    format=c.format,
                    start=c.start_seconds,
                    duration=c.duration,
                    sha256=c.sha256,
                    source_key=key,
                )
                for c in stored.clips
            )
            total = stored.total_seconds or sum(c.duration for c in clips)
            log.info("audio.reused", turn_id=stored.turn_id, clips=len(clips))
            return PreparedAudio(
                clips=clips,
                total_seconds=total,
                truncated=False,
                source_key=key,
                reused=True,
                mismatches=(None,),
            )

    declared = source.declared_size
    if declared is not None and declared > max_bytes:
        raise AudioTooLarge(size=declared, limit=max_bytes)
    started = time.monotonic()
    data = await source.fetch()
    if not data:
        raise AudioEmpty("zero bytes downloaded")
    if len(data) > max_bytes:
        raise AudioTooLarge(size=len(data), limit=max_bytes)
    converted = await converter.convert(
        AudioInput(data=data, mime_type=source.mime_type, file_name=source.file_name),
        segment_seconds=spec.clip_seconds,
        budget_seconds=budget_seconds,
        max_segments=turn_clip_cap(spec) if max_clips is None else max_clips,
    )
    elapsed = time.monotonic() - started
    metrics.transcode.observe(elapsed)
    report = converted.report
    log.info(
        "audio.converted",
        bytes_in=report.bytes_in,
        bytes_out=report.bytes_out,
        segments=report.segments,
        duration=round(report.duration, 2),
        total=round(report.total_seconds, 2),
        total_from=report.total_from.value,
        seconds_sent=round(report.seconds_sent, 2),
        mismatch=report.mismatch.kind.value if report.mismatch else None,
        elapsed=round(elapsed, 3),
    )
    return PreparedAudio(
        clips=tuple(dataclasses.replace(s, source_key=key) for s in converted.segments),
        total_seconds=report.total_seconds,
        truncated=report.truncated,
        source_key=key,
        reused=False,
        mismatches=(report.mismatch,),
    )


async def prepare_recordings(
    sources: Sequence[AudioSource],
    *,
    spec: ModelSpec,
    converter: AudioConverter,
    database: Database,
    chat_row_id: int,
    max_bytes: int,
    budget_seconds: float | None,
    metrics: Metrics,
) -> PreparedAudio:
    """Every recording of a turn as one run of clips, in order, within one budget.

    Each recording is cut on its own (clips never span two files); later recordings get
    what the earlier ones left of the budget and of the model's clip count, and whatever
    does not fit is counted in ``total_seconds`` so the reply can say it was left out.
    """
    parts: list[PreparedAudio] = []
    remaining = budget_seconds
    # One message carries the turn's audio: the per-message cap counts as well.
    clips_left = turn_clip_cap(spec)
    for source in sources:
        part = await prepare_audio(
            source,
            spec=spec,
            converter=converter,
            database=database,
            chat_row_id=chat_row_id,
            max_bytes=max_bytes,
            budget_seconds=None if remaining is None else max(0.0, remaining),
            metrics=metrics,
            max_clips=clips_left,
        )
        parts.append(part)
        if remaining is not None:
            remaining -= sum(counted_seconds(c.duration) for c in part.clips)
        if clips_left is not None:
            clips_left = max(0, clips_left - len(part.clips))
    if len(parts) == 1:
        return parts[0]
    return PreparedAudio(
        clips=tuple(c for p in parts for c in p.clips),
        total_seconds=sum(p.total_seconds for p in parts),
        truncated=any(p.truncated for p in parts),
        source_key=parts[0].source_key if parts else None,
        reused=all(p.reused for p in parts),
        mismatches=tuple(m for p in parts for m in p.mismatches),
    )
