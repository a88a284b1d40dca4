"""Every input format the platforms send converts to the promised output parameters."""

from __future__ import annotations

import hashlib

import pytest

from bot.audio.pipeline import AudioPipeline
from bot.audio.types import AudioInput
from tests.audio import synth

TOLERANCE = 0.05  # seconds


@pytest.mark.parametrize("name", list(synth.FORMATS))
async def test_each_format_converts_to_mono_16k_mp3(
    pipeline: AudioPipeline, formats: dict[str, bytes], name: str
) -> None:
    data = formats[name]
    # The declared type is deliberately useless: detection goes by content.
    result = await pipeline.convert(
        AudioInput(data=data, mime_type="application/octet-stream", file_name="x.bin"),
        segment_seconds=30.0,
    )
    report = result.report
    assert report.duration == pytest.approx(30.0, abs=0.2)  # codec padding of the input
    assert report.segments == len(result.segments) == 1
    assert report.bytes_in == len(data)
    assert report.bytes_out == sum(len(s.data) for s in result.segments)
    assert report.seconds_sent + report.seconds_left_out == pytest.approx(report.duration)
    seg = result.segments[0]
    assert seg.format == "mp3"
    assert seg.sha256 == hashlib.sha256(seg.data).hexdigest()
    codec, rate, channels, seconds = synth.decode_output(seg.data)
    assert (codec.startswith("mp3"), rate, channels) == (True, 16_000, 1)
    assert seconds == pytest.approx(seg.duration, abs=TOLERANCE)
    assert seg.duration == pytest.approx(30.0, abs=TOLERANCE)


@pytest.mark.parametrize(
    ("name", "container", "codec", "rate"),
    [
        ("voice.ogg", "ogg", "opus", 48_000),
        ("audio.mp3", "mp3", "mp3", 44_100),
        ("audio.m4a", "mov,mp4,m4a,3gp,3g2,mj2", "aac", 44_100),
        ("audio.flac", "flac", "flac", 44_100),
        ("audio.wav", "wav", "pcm_s16le", 44_100),
        ("clip.webm", "matroska,webm", "opus", 48_000),
        ("note.mp4", "mov,mp4,m4a,3gp,3g2,mj2", "aac", 48_000),
        ("voice.amr", "amr", "amrnb", 8_000),
    ],
)
async def test_report_names_what_came_in(
    pipeline: AudioPipeline,
    formats: dict[str, bytes],
    name: str,
    container: str,
    codec: str,
    rate: int,
) -> None:
    report = (await pipeline.convert(AudioInput(data=formats[name]), segment_seconds=30.0)).report
    assert report.container.startswith(container.split(",")[0])
    assert report.codec.startswith(codec)
    assert (report.sample_rate, report.channels) == (rate, 1)


async def test_wav_output_is_16bit_pcm(
    wav_pipeline: AudioPipeline, formats: dict[str, bytes]
) -> None:
    result = await wav_pipeline.convert(AudioInput(data=formats["voice.ogg"]), segment_seconds=30.0)
    seg = result.segments[0]
    assert seg.format == "wav"
    assert synth.decode_output(seg.data)[:3] == ("pcm_s16le", 16_000, 1)
    assert synth.decode_output(seg.data)[3] == pytest.approx(30.0, abs=TOLERANCE)
    assert len(seg.data) == pytest.approx(30.0 * 32_000 + 44, abs=0.05 * 32_000)


@pytest.mark.parametrize(
    ("label", "channels", "rate"),
    [("48 kHz stereo", 2, 48_000), ("5.1 channels", 6, 48_000), ("8 kHz mono", 1, 8_000)],
)
async def test_multichannel_and_odd_rates_are_downmixed(
    pipeline: AudioPipeline, label: str, channels: int, rate: int
) -> None:
    x = synth.channels(synth.speech_like(5.0, rate=rate), channels)
    data = synth.encode(x, synth.Fmt("flac", "flac", rate))
    result = await pipeline.convert(AudioInput(data=data), segment_seconds=30.0)
    assert (result.report.channels, result.report.sample_rate) == (channels, rate), label
    _, out_rate, out_channels, seconds = synth.decode_output(result.segments[0].data)
    assert (out_rate, out_channels) == (16_000, 1)
    assert seconds == pytest.approx(5.0, abs=TOLERANCE)


async def test_wrong_extension_and_mime_are_ignored(
    pipeline: AudioPipeline, formats: dict[str, bytes]
) -> None:
    """An MP3 sent as "voice.ogg, audio/ogg" is read as the MP3 it is."""
    result = await pipeline.convert(
        AudioInput(data=formats["audio.mp3"], mime_type="audio/ogg", file_name="voice.ogg"),
        segment_seconds=30.0,
    )
    assert result.report.container == "mp3"


async def test_the_shortest_recording_answered_is_one_short_clip(pipeline: AudioPipeline) -> None:
    """0.3 s, the shortest that is not taken for a tap (tests/audio/test_long_and_short.py)."""
    data = synth.encode(synth.tone(0.3, rate=16_000), synth.Fmt("wav", "pcm_s16le", 16_000))
    result = await pipeline.convert(AudioInput(data=data), segment_seconds=30.0)
    assert result.report.duration == pytest.approx(0.3, abs=TOLERANCE)
    assert len(result.segments) == 1
    assert synth.decode_output(result.segments[0].data)[3] == pytest.approx(0.3, abs=TOLERANCE)


async def test_adts_aac_and_raw_mp3_without_header_are_read(pipeline: AudioPipeline) -> None:
    x = synth.speech_like(3.0, rate=44_100)
    for fmt in (synth.Fmt("adts", "aac", 44_100, 64_000), synth.Fmt("mp3", "libmp3lame", 44_100)):
        result = await pipeline.convert(AudioInput(data=synth.encode(x, fmt)), segment_seconds=30)
        assert result.report.duration == pytest.approx(3.0, abs=0.1)
