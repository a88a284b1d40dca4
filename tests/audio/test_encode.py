"""The MP3 encoders: lameenc with our Info/LAME tag plays back exactly what went in."""

from __future__ import annotations

import io

import av
import numpy as np
import numpy.typing as npt
import pytest

from bot.audio.encode import (
    LameencMp3Encoder,
    PyAVMp3Encoder,
    encode_mp3,
    info_frame,
    mp3_encoder,
)


def _decode(data: bytes) -> tuple[npt.NDArray[np.float32], int, dict[str, str]]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(stream)]
        return np.concatenate(frames), stream.sample_rate, dict(stream.metadata)


def _tone_with_click(n: int, rate: int, click: int) -> npt.NDArray[np.int16]:
    t = np.arange(n) / rate
    samples = (np.sin(2 * np.pi * 440 * t) * 6000).astype(np.int16)
    samples[:click] = 0
    samples[click] = 30000
    return samples


@pytest.mark.parametrize("rate", [16_000, 22_050])
@pytest.mark.parametrize("seconds", [0.01, 1.0, 30.0])
def test_lameenc_clips_decode_to_exactly_the_samples_fed(rate: int, seconds: float) -> None:
    n = int(rate * seconds)
    click = n // 3
    samples = _tone_with_click(n, rate, click)
    encoder = mp3_encoder(rate=rate)
    assert isinstance(encoder, LameencMp3Encoder)
    data = encode_mp3(samples, rate=rate, check=lambda: None)
    decoded, decoded_rate, metadata = _decode(data)
    # Not one sample of LAME's priming or padding is played: a 30 s clip stays 30 s.
    assert decoded_rate == rate
    assert len(decoded) == n
    # And the audio is where it was: the click lands on its own sample, not 576 later.
    assert int(np.argmax(np.abs(decoded[: click + 1000]))) == click
    # FFmpeg checked the tag's CRC (it names the encoder only when the CRC matches).
    assert metadata.get("encoder", "").startswith("LAME3.100")


def test_the_tag_is_one_silent_frame_of_the_clips_own_format() -> None:
    samples = _tone_with_click(16_000, 16_000, 100)
    data = encode_mp3(samples, rate=16_000, check=lambda: None)
    tag_size = 72 * 32_000 // 16_000  # one MPEG-2 layer III frame at 32 kbit/s
    header = data[:4]
    assert header[:2] == b"\xff\xf3"  # MPEG-2, layer III, no CRC
    assert data[4 + 9 : 4 + 9 + 4] == b"Info"
    assert data[tag_size : tag_size + 2] == b"\xff\xf3"  # the audio follows at once
    frames = int.from_bytes(data[4 + 9 + 8 : 4 + 9 + 12], "big")
    assert int.from_bytes(data[4 + 9 + 12 : 4 + 9 + 16], "big") == len(data)
    assert (len(data) - tag_size) == frames * tag_size  # CBR without padding slots
    assert info_frame(data[tag_size:], samples=16_000, kbps=32, rate=16_000) == data[:tag_size]


@pytest.mark.parametrize("rate", [8_000, 24_000, 44_100, 48_000])
def test_rates_the_tag_writer_does_not_cover_use_pyavs_lame(rate: int) -> None:
    # At 24 kHz LAME would resample to 22.05 kHz; MPEG-1 rates have other frame layouts.
    assert isinstance(mp3_encoder(rate=rate), PyAVMp3Encoder)
    samples = _tone_with_click(rate, rate, 10)
    decoded, decoded_rate, _ = _decode(encode_mp3(samples, rate=rate, check=lambda: None))
    assert decoded_rate == rate
    assert abs(len(decoded) - rate) <= 1152  # PyAV writes its own (gapless) tag


def test_a_check_that_raises_stops_the_encoding() -> None:
    class Stop(Exception):
        pass

    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Stop

    with pytest.raises(Stop):
        encode_mp3(np.zeros(16_000 * 10, np.int16), rate=16_000, check=check)
