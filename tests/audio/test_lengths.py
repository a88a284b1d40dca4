"""Files that hold more or less audio than their container declares (issue #10, item 5).

They are answered with what was heard, and the report's ``mismatch`` says what could not be
read; each case asserts the note the user would see. Ordinary files never get one.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

import av
import numpy as np
import pytest

from bot.audio.pipeline import AudioPipeline
from bot.audio.report import format_duration, left_out_note
from bot.audio.types import AudioInput, AudioReport, LengthMismatch, MismatchKind
from bot.engine.requests import length_notes
from tests.audio import synth
from tests.audio.test_hostile import _faststart_mp4_cut_in_half, _strip_id3


def _speech(name: str, seconds: float) -> bytes:
    fmt = synth.FORMATS[name]
    return synth.encode(synth.speech_like(seconds, rate=fmt.rate), fmt)


def pcm_wav(
    samples: np.ndarray, *, rate: int, data_size: int | None = None, tail: bytes = b""
) -> bytes:
    """A 16-bit mono WAV whose data chunk declares ``data_size`` bytes (default: the truth)."""
    body = samples.astype("<i2").tobytes()
    declared = len(body) if data_size is None else data_size
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    riff = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", declared)
    riff += body + tail
    return b"RIFF" + struct.pack("<I", min(len(riff), 0xFFFFFFFF)) + riff


def lying_wav(*, claims: float, holds: float, rate: int = 8_000) -> bytes:
    """Its RIFF header says ``claims`` seconds; ``holds`` seconds of samples follow."""
    clip = (synth.speech_like(3.0, rate=rate)[0] * 32767).astype(np.int16)
    samples = np.tile(clip, int(np.ceil(holds / 3.0)))[: round(holds * rate)]
    return pcm_wav(samples, rate=rate, data_size=round(claims * rate) * 2)


def truncated_voice_note() -> bytes:
    """A 6 s Telegram voice note whose download stopped after about a second."""
    return _speech("voice.ogg", 6.0)[:5_000]


def flac_claiming(data: bytes, *, samples: int) -> bytes:
    """``data`` (a FLAC file) with STREAMINFO's total sample count set to ``samples``."""
    out = bytearray(data)
    assert out[:4] == b"fLaC"
    body = 8  # after "fLaC" and the metadata block header
    # Total samples: the low 4 bits of body byte 13 and bytes 14-17, big-endian (36 bits).
    out[body + 13] = (out[body + 13] & 0xF0) | ((samples >> 32) & 0x0F)
    out[body + 14 : body + 18] = (samples & 0xFFFFFFFF).to_bytes(4, "big")
    return bytes(out)


async def convert(pipeline: AudioPipeline, data: bytes) -> AudioReport:
    return (await pipeline.convert(AudioInput(data=data), segment_seconds=30.0)).report


def notes(report: AudioReport) -> list[str]:
    """What the reply says about the file, as the engine builds it for one recording."""
    return length_notes([report.mismatch])


# --- ordinary files ---------------------------------------------------------------------


async def test_every_format_at_30_s_gets_no_note(
    pipeline: AudioPipeline, formats: dict[str, bytes]
) -> None:
    for name, data in formats.items():
        report = await convert(pipeline, data)
        assert report.mismatch is None, (name, report.mismatch)


@pytest.mark.parametrize("seconds", [0.4, 1.0, 6.0])
@pytest.mark.parametrize("name", list(synth.FORMATS))
async def test_ordinary_files_get_no_note(
    pipeline: AudioPipeline, name: str, seconds: float
) -> None:
    """Priming, padding (AAC 2112 samples, Opus pre-skip) and rounding are no mismatch."""
    report = await convert(pipeline, _speech(name, seconds))
    assert report.mismatch is None, report.mismatch
    assert notes(report) == []


async def test_wav_with_trailing_chunks_or_placeholder_sizes_gets_no_note(
    pipeline: AudioPipeline,
) -> None:
    samples = (synth.speech_like(5.0, rate=8_000)[0] * 32767).astype(np.int16)
    info = b"INFOISFT" + struct.pack("<I", 14) + b"Lavf58.76.100\x00"
    listed = pcm_wav(samples, rate=8_000, tail=b"LIST" + struct.pack("<I", len(info)) + info)
    report = await convert(pipeline, listed)
    assert report.mismatch is None
    assert report.duration == pytest.approx(5.0, abs=0.01)
    # Streaming writers leave 0 or 0xFFFFFFFF in the size; FFmpeg then reads to the end.
    for placeholder in (0, 0xFFFFFFFF):
        report = await convert(pipeline, pcm_wav(samples, rate=8_000, data_size=placeholder))
        assert report.mismatch is None
        assert report.duration == pytest.approx(5.0, abs=0.01)


# --- cut off ------------------------------------------------------------------------------


async def test_truncated_ogg_opus_voice_note_is_heard_with_a_note(
    pipeline: AudioPipeline,
) -> None:
    report = await convert(pipeline, truncated_voice_note())
    assert report.duration == pytest.approx(1.0, abs=0.1)
    assert report.seconds_sent == pytest.approx(report.duration)
    assert report.mismatch is not None and report.mismatch.kind is MismatchKind.CUT_OFF
    assert notes(report) == ["The file seems cut off after 0:01."]


async def test_ogg_cut_inside_its_last_page_gets_a_note(pipeline: AudioPipeline) -> None:
    """The last page (end-of-stream flag) is lost: only a few ms, but the file is incomplete."""
    data = _speech("voice.ogg", 6.0)
    report = await convert(pipeline, data[:-10])
    assert notes(report) == ["The file seems cut off after 0:06."]


async def test_ogg_with_junk_after_its_pages_gets_no_note(pipeline: AudioPipeline) -> None:
    """Pages that cannot be followed to the end say nothing about where the audio ends."""
    report = await convert(pipeline, _speech("voice.ogg", 3.0) + bytes(300))
    assert report.mismatch is None


async def test_wav_whose_data_chunk_promises_more_than_is_there(
    pipeline: AudioPipeline,
) -> None:
    samples = (synth.speech_like(3.0, rate=8_000)[0] * 32767).astype(np.int16)
    report = await convert(pipeline, pcm_wav(samples, rate=8_000, data_size=6 * 8_000 * 2))
    assert report.duration == pytest.approx(3.0, abs=0.01)
    assert report.mismatch is not None and report.mismatch.kind is MismatchKind.CUT_OFF
    assert report.mismatch.declared == pytest.approx(6.0)
    assert notes(report) == ["The file seems cut off after 0:03."]


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("audio.wav", lambda: _speech("audio.wav", 6.0)[: 6 * 44_100]),
        ("audio.flac", lambda: _speech("audio.flac", 6.0)[:130_000]),
        ("audio.mp3", lambda: _speech("audio.mp3", 6.0)[:48_000]),  # Xing frame count: 6 s
        ("clip.webm", lambda: _speech("clip.webm", 6.0)[:19_000]),  # Matroska Duration: 6 s
        ("note.mp4, index first", _faststart_mp4_cut_in_half),
    ],
)
async def test_files_cut_off_before_their_declared_end_are_heard_with_a_note(
    pipeline: AudioPipeline, name: str, make: Callable[[], bytes]
) -> None:
    report = await convert(pipeline, make())
    assert 2.0 < report.duration < 3.5, name
    assert report.mismatch is not None and report.mismatch.kind is MismatchKind.CUT_OFF
    assert notes(report) == ["The file seems cut off after 0:03."]


async def test_cut_off_beside_left_out_audio_gets_both_notes(pipeline: AudioPipeline) -> None:
    data = _speech("audio.flac", 70.0)
    result = await pipeline.convert(
        AudioInput(data=data[: len(data) // 2]), segment_seconds=30.0, budget_seconds=30.0
    )
    report = result.report
    assert left_out_note(report) == f"I listened to the first 0:30 of 0:{round(report.duration)}."
    assert notes(report) == [f"The file seems cut off after 0:{round(report.duration)}."]


# --- more audio than the header says ---------------------------------------------------


async def test_wav_holding_1000_s_behind_a_3_s_header(pipeline: AudioPipeline) -> None:
    """FFmpeg's WAV demuxer stops where the data chunk says the audio ends (measured: 3.000 s
    decoded of 1,000 s), so the rest of the file could not be read, and the note says so."""
    data = lying_wav(claims=3.0, holds=1000.0)
    assert len(data) < pipeline.max_bytes
    with av.open(io.BytesIO(data), mode="r", format="wav") as c:
        assert c.duration is not None and c.duration / av.time_base == pytest.approx(3.0)
    report = await convert(pipeline, data)
    assert report.duration == pytest.approx(3.0, abs=0.01)
    assert report.seconds_sent == pytest.approx(3.0, abs=0.01)
    assert report.truncated is False
    assert report.mismatch is not None and report.mismatch.kind is MismatchKind.UNREAD_TAIL
    assert report.mismatch.unread == pytest.approx(997.0, abs=0.01)
    assert notes(report) == [
        "I could only read the first 0:03 of the file: its header says the audio ends there, "
        "but about 16:37 more follows."
    ]


async def test_flac_longer_than_its_header_is_read_to_the_end(pipeline: AudioPipeline) -> None:
    """FFmpeg's FLAC demuxer reads every frame whatever STREAMINFO counts: all is heard."""
    data = flac_claiming(_speech("audio.flac", 20.0), samples=5 * 44_100)
    report = await convert(pipeline, data)
    assert report.duration == pytest.approx(20.0, abs=0.05)
    assert report.seconds_sent == pytest.approx(20.0, abs=0.05)
    assert report.mismatch is not None
    assert report.mismatch.kind is MismatchKind.LONGER_THAN_HEADER
    assert notes(report) == ["The file's header says it lasts 0:05, but I heard 0:20."]


async def test_mp3_longer_than_its_xing_count_is_read_to_the_end(
    pipeline: AudioPipeline,
) -> None:
    head = synth.encode(
        synth.speech_like(5.0, rate=16_000), synth.Fmt("mp3", "libmp3lame", 16_000, 160_000)
    )
    tail = synth.encode(
        synth.speech_like(10.0, rate=16_000, seed=3), synth.Fmt("mp3", "libmp3lame", 16_000, 8_000)
    )
    report = await convert(pipeline, _strip_id3(head) + _strip_id3(tail))
    assert report.duration == pytest.approx(15.0, abs=0.2)
    # FFmpeg stretches the Xing count a little by the bytes it finds past it (5.6 s).
    assert report.mismatch is not None and report.mismatch.declared is not None
    assert 5.0 <= report.mismatch.declared < 7.0
    declared = format_duration(report.mismatch.declared)
    assert notes(report) == [f"The file's header says it lasts {declared}, but I heard 0:15."]


async def test_longer_than_header_is_still_bounded_by_max_seconds() -> None:
    """Decoded up to AUDIO_MAX_SECONDS only; the rest is measured without decoding it, and
    the note gives the real length (the header's 0:05 is beside the point then)."""
    short = AudioPipeline(
        max_bytes=20 * 1024 * 1024, max_seconds=10.0, output_format="mp3", workers=2, timeout=30
    )
    try:
        data = flac_claiming(_speech("audio.flac", 20.0), samples=5 * 44_100)
        report = await convert(short, data)
    finally:
        await short.aclose()
    assert report.duration == pytest.approx(10.0, abs=0.05)
    assert report.total_seconds == pytest.approx(20.0, abs=0.05)
    assert report.truncated is False
    assert report.mismatch is None
    assert left_out_note(report) == "I listened to the first 0:10 of 0:20."


# --- several recordings -------------------------------------------------------------------


def test_notes_name_the_file_when_several_were_sent() -> None:
    cut = LengthMismatch(kind=MismatchKind.CUT_OFF, heard=1.1)
    unread = LengthMismatch(kind=MismatchKind.UNREAD_TAIL, heard=3.0, declared=3.0, unread=997.0)
    longer = LengthMismatch(kind=MismatchKind.LONGER_THAN_HEADER, heard=20.0, declared=5.0)
    assert length_notes([None, cut, None, unread, longer]) == [
        "File 2 seems cut off after 0:01.",
        "I could only read the first 0:03 of file 4: its header says the audio ends there, "
        "but about 16:37 more follows.",
        "File 5's header says it lasts 0:05, but I heard 0:20.",
    ]
    assert length_notes([None, None]) == []
    assert length_notes([]) == []
