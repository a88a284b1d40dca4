"""The hostile corpus: every input a user (or an attacker) might send that is not good audio.

Each case asserts the typed error and the text the user would see.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from bot import texts
from bot.audio.pipeline import AudioPipeline
from bot.audio.report import left_out_note
from bot.audio.types import AudioInput
from bot.errors import (
    AudioEmpty,
    AudioError,
    AudioSilent,
    AudioTimeout,
    AudioTooLarge,
    AudioUnreadable,
    NoAudioTrack,
    NotAudio,
)
from tests.audio import synth


def _speech(fmt_name: str, seconds: float = 6.0) -> bytes:
    fmt = synth.FORMATS[fmt_name]
    return synth.encode(synth.speech_like(seconds, rate=fmt.rate), fmt)


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _faststart_mp4_cut_in_half() -> bytes:
    """An MP4 with its index first (as streaming apps write it), cut off mid-media: the index
    promises 6 s, the data holds 3."""
    x = synth.speech_like(6.0, rate=48_000)
    # faststart rewrites the file to move the index forward, so it needs a real file.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "note.mp4"
        _write_faststart(path, x)
        data = path.read_bytes()
    assert data[4:8] == b"ftyp" and b"moov" in data[:4096]
    return data[: len(data) // 2]


def _write_faststart(path: Path, x: synth.Signal) -> None:
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("aac", rate=48_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(x, format="fltp", layout="mono")
        frame.sample_rate = 48_000
        frame.pts = 0
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=48_000, frame_size=1024)
        for rf in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(rf):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _garbage_after_magic(magic: bytes) -> Callable[[], bytes]:
    return lambda: magic + np.random.default_rng(7).bytes(4000)


def _silent_ogg() -> bytes:
    return synth.encode(synth.silence(5.0), synth.FORMATS["voice.ogg"])


def _hiss_ogg() -> bytes:
    return synth.encode(synth.noise(5.0, level=0.0005), synth.FORMATS["voice.ogg"])


def _text() -> bytes:
    return b"Hello, this is not a voice note at all.\n" * 50


def _m3u() -> bytes:
    return b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n"


CASES: list[tuple[str, Callable[[], bytes], type[AudioError], str]] = [
    ("zero bytes", lambda: b"", AudioEmpty, texts.AUDIO_EMPTY),
    ("random bytes", lambda: np.random.default_rng(1).bytes(50_000), NotAudio, texts.NOT_AUDIO),
    ("png image", synth.png_bytes, NotAudio, texts.NOT_AUDIO),
    ("jpeg header", lambda: b"\xff\xd8\xff\xe0" + bytes(2000), NotAudio, texts.NOT_AUDIO),
    ("zip archive", synth.zip_bytes, NotAudio, texts.NOT_AUDIO),
    ("text renamed .ogg", _text, NotAudio, texts.NOT_AUDIO),
    ("m3u playlist pointing at a local file", _m3u, NotAudio, texts.NOT_AUDIO),
    ("pdf", lambda: b"%PDF-1.4\n" + bytes(500), NotAudio, texts.NOT_AUDIO),
    ("video without audio", synth.video_only, NoAudioTrack, texts.NO_AUDIO_TRACK),
    (
        "ogg page header then garbage",
        _garbage_after_magic(b"OggS"),
        AudioUnreadable,
        texts.AUDIO_UNREADABLE,
    ),
    (
        "riff/wave header then garbage",
        _garbage_after_magic(b"RIFF\x00\x10\x00\x00WAVEfmt "),
        AudioUnreadable,
        texts.AUDIO_UNREADABLE,
    ),
    (
        "ftyp box then garbage",
        _garbage_after_magic(b"\x00\x00\x00\x18ftypM4A "),
        AudioUnreadable,
        texts.AUDIO_UNREADABLE,
    ),
    (
        "flac magic then garbage",
        _garbage_after_magic(b"fLaC"),
        AudioUnreadable,
        texts.AUDIO_UNREADABLE,
    ),
    (
        "truncated m4a (index lost)",
        lambda: _half(_speech("audio.m4a")),
        AudioUnreadable,
        texts.AUDIO_UNREADABLE,
    ),
    # A file cut off after its index (an MP4 with the index first, FLAC, WAV, Ogg) is
    # answered with what is there and a note: tests/audio/test_lengths.py.
    (
        "ogg cut after its headers",
        lambda: _speech("voice.ogg")[:120],
        AudioUnreadable,
        texts.AUDIO_UNREADABLE,
    ),
    ("digital silence", _silent_ogg, AudioSilent, texts.AUDIO_SILENT),
    ("faint hiss only", _hiss_ogg, AudioSilent, texts.AUDIO_SILENT),
    # An hour-long file is answered from its start: tests/audio/test_long_and_short.py.
]


@pytest.mark.parametrize(("label", "make", "error", "message"), CASES, ids=[c[0] for c in CASES])
async def test_hostile_input_raises_typed_error(
    pipeline: AudioPipeline,
    label: str,
    make: Callable[[], bytes],
    error: type[AudioError],
    message: str,
) -> None:
    with pytest.raises(error) as info:
        await pipeline.convert(
            AudioInput(data=make(), mime_type="audio/ogg", file_name="voice.ogg"),
            segment_seconds=30.0,
        )
    assert type(info.value) is error, label
    assert info.value.user_message == message


async def test_too_large_is_refused_before_download_and_before_decoding() -> None:
    pipeline = AudioPipeline(
        max_bytes=1000, max_seconds=900, output_format="mp3", workers=1, timeout=10
    )
    with pytest.raises(AudioTooLarge) as info:
        pipeline.check_size(20 * 1024 * 1024 + 1)
    assert info.value.user_message == "That file is too large for me (the limit is 0 MB)."
    pipeline.check_size(None)  # unknown size: the download itself must be capped
    pipeline.check_size(1000)
    with pytest.raises(AudioTooLarge):
        await pipeline.convert(AudioInput(data=bytes(1001)), segment_seconds=30)
    await pipeline.aclose()


async def test_default_size_limit_message() -> None:
    pipeline = AudioPipeline(
        max_bytes=20 * 1024 * 1024, max_seconds=900, output_format="mp3", workers=1, timeout=10
    )
    with pytest.raises(AudioTooLarge) as info:
        pipeline.check_size(25 * 1024 * 1024)
    assert info.value.user_message == "That file is too large for me (the limit is 20 MB)."
    await pipeline.aclose()


async def test_lying_duration_stops_at_the_decode_bound() -> None:
    """A headerless MP3 whose first frames are 160 kbit/s and the rest 8 kbit/s: FFmpeg
    estimates its length from the first bitrate (~7 s), but it holds 45 s. Decoding stops at
    the bound (counted samples), the rest is left out, and its length is measured from the
    packets, not taken from the header."""
    head = synth.encode(
        synth.speech_like(5.0, rate=16_000), synth.Fmt("mp3", "libmp3lame", 16_000, 160_000)
    )
    tail = synth.encode(
        synth.speech_like(40.0, rate=16_000), synth.Fmt("mp3", "libmp3lame", 16_000, 8_000)
    )
    lying = _strip_id3(head) + _strip_id3(tail)
    pipeline = AudioPipeline(
        max_bytes=20 * 1024 * 1024, max_seconds=20.0, output_format="mp3", workers=2, timeout=30
    )
    with av.open(io.BytesIO(lying), mode="r", format="mp3") as c:
        assert c.duration is not None
        assert c.duration / av.time_base < 20.0  # the header lies
    result = await pipeline.convert(AudioInput(data=lying), segment_seconds=30.0)
    assert result.report.duration == pytest.approx(20.0, abs=0.05)  # decoded
    assert result.report.total_seconds == pytest.approx(45.0, abs=0.2)
    assert result.report.truncated is False
    assert left_out_note(result.report) == "I listened to the first 0:20 of 0:45."
    await pipeline.aclose()


def _strip_id3(data: bytes) -> bytes:
    if data[:3] != b"ID3":
        return data
    return data[10 + int.from_bytes(bytes(b & 0x7F for b in data[6:10]), "big") :]


@pytest.mark.parametrize("name", ["voice.ogg", "audio.wav"])
async def test_truncated_stream_without_an_index_keeps_what_is_there(
    pipeline: AudioPipeline, name: str
) -> None:
    """Ogg and WAV lengths are computed from the data present, so a cut-off file is simply a
    shorter recording: accepted, not an error. (An Ogg page holds up to 1 s, and the page
    cut in half is dropped.)"""
    result = await pipeline.convert(AudioInput(data=_half(_speech(name, 6.0))), segment_seconds=30)
    assert result.report.duration == pytest.approx(3.0, abs=1.1)
    assert result.report.mismatch is not None  # the reply says it seems cut off


async def test_time_limit_raises_audio_timeout(formats: dict[str, bytes]) -> None:
    pipeline = AudioPipeline(
        max_bytes=20 * 1024 * 1024, max_seconds=900, output_format="mp3", workers=1, timeout=1e-6
    )
    with pytest.raises(AudioTimeout) as info:
        await pipeline.convert(AudioInput(data=formats["voice.ogg"]), segment_seconds=30.0)
    assert info.value.user_message == texts.AUDIO_TIMEOUT
    await pipeline.aclose()


async def test_corrupt_bytes_in_the_middle_of_an_mp3_are_skipped(pipeline: AudioPipeline) -> None:
    data = bytearray(_speech("audio.mp3", 10.0))
    mid = len(data) // 2
    data[mid : mid + 300] = np.random.default_rng(5).bytes(300)
    result = await pipeline.convert(AudioInput(data=bytes(data)), segment_seconds=30.0)
    assert result.report.duration == pytest.approx(10.0, abs=0.2)
