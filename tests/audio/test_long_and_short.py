"""Hour-long recordings are answered from their start; taps on the record button are not
messages (issue #14, items 1 and 2).

A long recording is decoded only as far as the model can be sent, its total length comes
from the container or from reading the rest of its packets without decoding them, and the
note says how much was heard of how long. Each case asserts that note, or the refusal.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable

import numpy as np
import pytest

from bot import texts
from bot.audio.decode import decode_mono16k
from bot.audio.length import recording_length
from bot.audio.pipeline import AudioPipeline
from bot.audio.probe import open_input, probe_info
from bot.audio.report import left_out_note
from bot.audio.spans import decode_window
from bot.audio.types import AudioInput, AudioReport, LengthSource, MismatchKind
from bot.catalog import CATALOG
from bot.engine.history import audio_budget_seconds
from bot.engine.requests import length_notes
from bot.errors import AudioError, AudioSilent, AudioTooShort, AudioUnreadable
from tests.audio import synth
from tests.audio.test_hostile import _strip_id3

# What the default model (qwen-audio-turbo-latest, 6,144 tokens) can be sent of one
# recording without a system prompt or text: 232 counted seconds.
TURBO_BUDGET = audio_budget_seconds(
    CATALOG["qwen-audio-turbo-latest"], system_prompt=None, current_text=None
)
# The synthetic speech pauses every 10 s, so 30 s clips end at pauses: 7 fit the budget.
HEARD_OF_AN_HOUR = "I listened to the first 3:30 of 1:00:00."


def hour(container: str = "ogg") -> bytes:
    """An hour of 6 kbit/s Opus: 2.6 MB of Ogg (a Telegram voice note), or WebM."""
    return synth.long_opus(3600.0, container=container)


async def convert(pipeline: AudioPipeline, data: bytes, **limits: float | None) -> AudioReport:
    """``data`` converted as the engine does for the default model (30 s clips, its budget)."""
    result = await pipeline.convert(
        AudioInput(data=data),
        segment_seconds=30.0,
        budget_seconds=limits.get("budget_seconds", TURBO_BUDGET),
    )
    clips = result.segments
    assert [c.start for c in clips] == pytest.approx(
        [sum(c.duration for c in clips[:i]) for i in range(len(clips))], abs=0.001
    )  # from the start, without gaps
    assert all(c.duration <= 30.0 for c in clips)
    return result.report


# --- long recordings ----------------------------------------------------------------------


async def test_an_hour_long_voice_note_is_answered_from_its_start(
    pipeline: AudioPipeline,
) -> None:
    report = await convert(pipeline, hour())
    # Decoded: the budget, plus the 5 s in which the last clip's cut may fall and a second
    # of margin; not the hour.
    assert report.duration == pytest.approx(TURBO_BUDGET + 6.0, abs=0.01)
    assert report.total_seconds == pytest.approx(3600.0, abs=0.05)
    assert report.total_from is LengthSource.CONTAINER  # Ogg's last page, read at open
    assert (report.segments, report.seconds_sent) == (7, pytest.approx(210.0, abs=0.05))
    assert left_out_note(report) == HEARD_OF_AN_HOUR
    assert report.mismatch is None


# Where the output format is beside the point, clips are written as WAV (no encoder): the
# length is what these tests are about.


@pytest.mark.parametrize(
    ("name", "make"),
    [
        # Browsers (MediaRecorder) write no Duration and no Cues: FFmpeg reads the clusters.
        ("browser WebM", lambda: synth.long_opus(3600.0, container="webm", browser=True)),
        # A Slack clip's container: the index gives the last packet.
        ("M4A", lambda: synth.long_aac(3600.0)),
    ],
)
async def test_an_hour_is_measured_to_its_end_without_decoding_it(
    wav_pipeline: AudioPipeline, name: str, make: Callable[[], bytes]
) -> None:
    report = await convert(wav_pipeline, make())
    assert report.total_seconds == pytest.approx(3600.0, abs=0.05), name
    assert report.total_from is LengthSource.SCANNED
    assert left_out_note(report) == HEARD_OF_AN_HOUR
    assert report.mismatch is None


async def test_an_hour_of_8_bit_wav_is_answered_too(wav_pipeline: AudioPipeline) -> None:
    # 8-bit 4 kHz: an hour in 14 MB, under the 20 MB limit, written without an encoder.
    period = (128 + 60 * np.sin(2 * np.pi * np.arange(40) / 40)).astype(np.uint8)  # 100 Hz
    data = synth.wav_bytes(np.tile(period, 3600 * 100), rate=4000, width=1)
    report = await convert(wav_pipeline, data)
    assert report.total_seconds == pytest.approx(3600.0, abs=0.01)
    # A steady tone has no pauses: cut every 30 s, 7 clips fit (0:22 short of the budget).
    assert left_out_note(report) == HEARD_OF_AN_HOUR


@pytest.mark.parametrize(
    ("name", "make", "total"),
    [
        # Ogg: the last complete page's position is where the audio ends.
        ("Ogg", lambda: synth.long_opus(3600.0), "23:59"),
        # WebM: its Duration (1:00:00) against the last cluster that is there (the Cues,
        # written at the end, are gone with it).
        ("WebM", lambda: synth.long_opus(3600.0, container="webm"), "24:06"),
        # MP4 with its index first: the index promises an hour, the seek to its end finds
        # nothing there, and the packets are read one by one to where the file stops.
        ("MP4, index first", lambda: synth.long_aac(3600.0, faststart=True), "22:52"),
    ],
)
async def test_an_hour_cut_off_after_its_first_minutes_says_so(
    wav_pipeline: AudioPipeline, name: str, make: Callable[[], bytes], total: str
) -> None:
    data = make()
    report = await convert(wav_pipeline, data[: len(data) * 2 // 5])
    assert left_out_note(report) == f"I listened to the first 3:30 of {total}.", name
    assert report.mismatch is not None and report.mismatch.kind is MismatchKind.CUT_OFF
    assert length_notes([report.mismatch]) == [f"The file seems cut off after {total}."]


async def test_the_decode_bound_limits_the_work_not_the_answer() -> None:
    """AUDIO_MAX_SECONDS=60, and no token budget (the captioner's case): 1:00 is decoded
    and sent, and the reply still gives the hour."""
    bounded = AudioPipeline(
        max_bytes=20 * 1024 * 1024, max_seconds=60.0, output_format="wav", workers=2, timeout=30
    )
    try:
        report = await convert(bounded, hour(), budget_seconds=None)
    finally:
        await bounded.aclose()
    assert report.duration == pytest.approx(60.0, abs=0.01)
    assert report.seconds_sent == pytest.approx(60.0, abs=0.01)
    assert left_out_note(report) == "I listened to the first 1:00 of 1:00:00."


def test_the_window_covers_what_the_model_can_be_sent() -> None:
    window = {"segment_seconds": 30.0, "max_seconds": 900.0}
    assert decode_window(**window, budget_seconds=232.0, max_segments=None) == 238.0
    assert decode_window(**window, budget_seconds=0.0, max_segments=None) == 6.0
    assert decode_window(**window, budget_seconds=None, max_segments=1) == 31.0
    assert decode_window(**window, budget_seconds=None, max_segments=None) == 900.0
    # qwen3-asr-flash: one clip of 5 minutes; the captioner: one clip of 32 min (10 MB of
    # MP3), bounded by the work bound.
    asr = {"segment_seconds": 300.0, "budget_seconds": None, "max_segments": 1}
    assert decode_window(**asr, max_seconds=900.0) == 301.0
    caption = {"segment_seconds": 1962.0, "budget_seconds": 2536.0, "max_segments": 1}
    assert decode_window(**caption, max_seconds=900.0) == 900.0


def _mp3(seconds: float, bitrate: int, seed: int = 0) -> bytes:
    """MPEG-2 layer III at 16 kHz (36 ms frames), its first frame counting the frames."""
    x = synth.speech_like(seconds, rate=16_000, seed=seed)
    return _strip_id3(synth.encode(x, synth.Fmt("mp3", "libmp3lame", 16_000, bitrate)))


@pytest.mark.parametrize(
    ("name", "make", "total", "source", "note"),
    [
        # The header's frame count agrees with all that was read: it is taken.
        ("true", lambda: _mp3(25.0, 32_000), 25.0, LengthSource.CONTAINER, "of 0:25."),
        # Two files end to end: the first one's count (~5.6 s) is less than was decoded, a
        # header that lies; what was read is a lower bound, and the note says so.
        (
            "lying",
            lambda: _mp3(5.0, 160_000) + _mp3(20.0, 8_000, seed=3),
            19.3,
            LengthSource.SCANNED,
            "of more than 0:19.",
        ),
    ],
)
def test_reading_the_rest_stops_at_its_bound(
    name: str, make: Callable[[], bytes], total: float, source: LengthSource, note: str
) -> None:
    """MP3 is read packet by packet (after a seek, its timestamps are only estimates); only
    a file of tiny packets near the size limit reaches the real bound (600,000 packets),
    here it is 250 frames of 36 ms (9 s) past a 10 s decode."""
    data = make()
    container, stream = open_input(data)
    with contextlib.closing(container):
        info = probe_info(container, stream)
        decoded = decode_mono16k(container, stream, max_seconds=10.0, check=lambda: None)
        length = recording_length(
            container, stream, info, decoded, check=lambda: None, max_packets=250
        )
    assert length.seconds == pytest.approx(total, abs=0.5), name
    assert length.source is source
    assert length.at_least is (name == "lying")
    report = AudioReport(
        container=info.container,
        codec=info.codec,
        duration=decoded.seconds,
        total_seconds=length.seconds,
        sample_rate=info.sample_rate,
        channels=info.channels,
        bytes_in=len(data),
        bytes_out=0,
        segments=1,
        seconds_sent=decoded.seconds,
        seconds_left_out=length.seconds - decoded.seconds,
        truncated=length.at_least,
    )
    assert left_out_note(report) == f"I listened to the first 0:10 {note}"


# --- accidental taps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "seconds"),
    [("voice.ogg", 0.2), ("clip.m4a", 0.2), ("clip.webm", 0.1), ("audio.mp3", 0.25)],
)
async def test_a_tap_is_too_short_to_answer(
    pipeline: AudioPipeline, name: str, seconds: float
) -> None:
    fmt = synth.FORMATS[name]
    data = synth.encode(synth.speech_like(seconds, rate=fmt.rate), fmt)
    with pytest.raises(AudioTooShort) as info:
        await pipeline.convert(AudioInput(data=data), segment_seconds=30.0)
    assert info.value.user_message == (
        "That voice note was too short for me to hear anything — hold the button a bit longer."
    )
    assert info.value.user_message == texts.AUDIO_TOO_SHORT


async def test_a_silent_tap_is_a_tap_and_a_long_silence_is_silence(
    pipeline: AudioPipeline,
) -> None:
    fmt = synth.FORMATS["voice.ogg"]
    errors: list[type[AudioError]] = []
    for seconds in (0.2, 3.0):
        with pytest.raises(AudioError) as info:
            await pipeline.convert(
                AudioInput(data=synth.encode(synth.silence(seconds), fmt)), segment_seconds=30.0
            )
        errors.append(type(info.value))
    assert errors == [AudioTooShort, AudioSilent]


async def test_just_over_the_threshold_is_answered(pipeline: AudioPipeline) -> None:
    fmt = synth.FORMATS["voice.ogg"]
    data = synth.encode(synth.speech_like(0.35, rate=fmt.rate), fmt)
    result = await pipeline.convert(AudioInput(data=data), segment_seconds=30.0)
    assert result.report.segments == 1
    assert result.report.seconds_sent == pytest.approx(0.35, abs=0.01)


async def test_a_recording_cut_off_within_its_first_tenths_is_damaged_not_a_tap(
    pipeline: AudioPipeline,
) -> None:
    """A WAV whose data chunk promises 6 s and holds 0.2 s: the user sent a recording."""
    samples = (synth.speech_like(0.2, rate=8_000)[0] * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 8_000, 16_000, 2, 16)
    riff = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 6 * 16_000)
    data = b"RIFF" + struct.pack("<I", len(riff) + len(samples)) + riff + samples
    with pytest.raises(AudioUnreadable) as info:
        await pipeline.convert(AudioInput(data=data), segment_seconds=30)
    assert info.value.user_message == texts.AUDIO_UNREADABLE
