"""Long audio: cuts at pauses, the token budget, and the note about what was left out."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from bot.audio.encode import max_clip_seconds
from bot.audio.pauses import Span, plan_segments
from bot.audio.pipeline import AudioPipeline
from bot.audio.report import format_duration, left_out_note
from bot.audio.spans import choose_spans
from bot.audio.types import AudioInput, AudioReport
from bot.catalog import MAX_ENCODED_AUDIO_BYTES
from tests.audio import synth

TOLERANCE = 0.05
# Pauses at 27.0-27.6 (inside the last 5 s before 30 s), 40.0-40.4 (outside any window),
# and 54.0-54.4 (within 5 s of the second limit, 27.3 + 30 = 57.3).
PAUSES_70S = ((27.0, 27.6), (40.0, 40.4), (54.0, 54.4))


@pytest.fixture(scope="module")
def paused_70s() -> bytes:
    x = synth.speech_like(70.0, rate=48_000, pauses=PAUSES_70S)
    return synth.encode(x, synth.FORMATS["voice.ogg"])


async def test_long_recording_is_cut_at_pauses(pipeline: AudioPipeline, paused_70s: bytes) -> None:
    result = await pipeline.convert(AudioInput(data=paused_70s), segment_seconds=30.0)
    starts = [s.start for s in result.segments]
    assert len(starts) == 3
    assert starts[1] == pytest.approx(27.3, abs=TOLERANCE)  # middle of the 27.0-27.6 pause
    assert starts[2] == pytest.approx(54.2, abs=TOLERANCE)  # middle of the 54.0-54.4 pause
    for seg in result.segments:
        assert seg.duration <= 30.0
        assert synth.decode_output(seg.data)[3] == pytest.approx(seg.duration, abs=TOLERANCE)
    assert sum(s.duration for s in result.segments) == pytest.approx(70.0, abs=TOLERANCE)
    assert result.report.seconds_left_out == pytest.approx(0.0, abs=TOLERANCE)


async def test_without_a_pause_the_cut_is_at_the_limit(pipeline: AudioPipeline) -> None:
    data = synth.encode(synth.noise(65.0, rate=16_000), synth.Fmt("flac", "flac", 16_000))
    result = await pipeline.convert(AudioInput(data=data), segment_seconds=30.0)
    assert [round(s.start, 3) for s in result.segments] == [0.0, 30.0, 60.0]
    assert [round(s.duration, 3) for s in result.segments] == [30.0, 30.0, 5.0]


async def test_budget_takes_leading_segments_and_reports_the_rest(pipeline: AudioPipeline) -> None:
    # 7:42 of noise (no pauses: cuts land exactly every 30 s), written as a WAV (instant).
    rng = np.random.default_rng(3)
    samples = (rng.normal(0, 3000, 462 * 16_000)).astype(np.int16)
    data = synth.wav_bytes(samples, rate=16_000, width=2)
    result = await pipeline.convert(AudioInput(data=data), segment_seconds=30.0, budget_seconds=200)
    report = result.report
    assert report.segments == 6
    assert report.seconds_sent == pytest.approx(180.0, abs=TOLERANCE)
    assert report.seconds_left_out == pytest.approx(282.0, abs=TOLERANCE)
    assert left_out_note(report) == "I listened to the first 3:00 of 7:42."


async def test_max_segments_caps_the_clips(pipeline: AudioPipeline, paused_70s: bytes) -> None:
    result = await pipeline.convert(
        AudioInput(data=paused_70s), segment_seconds=300.0, max_segments=1
    )
    assert len(result.segments) == 1
    assert result.report.seconds_left_out == pytest.approx(0.0, abs=TOLERANCE)
    first = await pipeline.convert(
        AudioInput(data=paused_70s), segment_seconds=30.0, max_segments=1
    )
    assert first.report.seconds_sent == pytest.approx(27.3, abs=TOLERANCE)
    assert left_out_note(first.report) == "I listened to the first 0:27 of 1:10."


def test_choose_spans_counts_short_clips_as_one_second() -> None:
    rate = 16_000
    spans = [Span(0, rate // 2), Span(rate // 2, rate), Span(rate, 2 * rate)]
    assert len(choose_spans(spans, budget_seconds=2.0, max_segments=None)) == 2
    assert len(choose_spans(spans, budget_seconds=None, max_segments=None)) == 3
    assert choose_spans(spans, budget_seconds=0.5, max_segments=None) == []


def test_a_sliver_after_the_last_full_segment_is_dropped() -> None:
    rate = 16_000
    samples = np.full(30 * rate + rate // 10, 3000, dtype=np.int16)
    assert plan_segments(samples, rate, segment_seconds=30.0) == [Span(0, 30 * rate)]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00"), (59.6, "1:00"), (180, "3:00"), (462, "7:42"), (3723, "1:02:03")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def _report(**kw: object) -> AudioReport:
    base: dict[str, object] = dict(
        container="ogg",
        codec="opus",
        duration=20.0,
        total_seconds=20.0,
        sample_rate=48_000,
        channels=1,
        bytes_in=1,
        bytes_out=1,
        segments=1,
        seconds_sent=20.0,
        seconds_left_out=0.0,
    )
    base.update(kw)
    return AudioReport(**base)  # type: ignore[arg-type]


def test_no_note_when_everything_was_heard() -> None:
    assert left_out_note(_report()) is None
    assert left_out_note(_report(seconds_left_out=0.2)) is None


def test_note_when_the_end_of_the_recording_was_not_found() -> None:
    report = _report(
        duration=900.0,
        total_seconds=900.0,
        seconds_sent=180.0,
        seconds_left_out=720.0,
        truncated=True,
    )
    assert left_out_note(report) == "I listened to the first 3:00 of more than 15:00."


async def test_clips_always_fit_the_10_mb_base64_limit(wav_pipeline: AudioPipeline) -> None:
    # 5 minutes as WAV is ~12.8 MB in base64: over the service's limit for one clip, even
    # though qwen3-asr-flash listens to 5 minutes. The clip is cut to what fits.
    # The input's format is beside the point: a WAV needs no encoder to make (seconds
    # saved against five minutes of Opus).
    x = synth.speech_like(300.0, rate=16_000, seed=5)[0]
    five_minutes = synth.wav_bytes(
        (x * 32767).clip(-32768, 32767).astype(np.int16), rate=16_000, width=2
    )
    out = await wav_pipeline.convert(
        AudioInput(data=five_minutes), segment_seconds=300.0, max_segments=1
    )
    (clip,) = out.segments
    assert len(base64.b64encode(clip.data)) <= MAX_ENCODED_AUDIO_BYTES
    assert clip.duration == pytest.approx(max_clip_seconds("wav"), abs=5.0)
    # What did not fit is reported, so the reply can say so.
    assert out.report.seconds_left_out == pytest.approx(300.0 - clip.duration, abs=0.1)
