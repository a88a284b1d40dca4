"""Encoding mono 16 kHz s16 samples into one clip: MP3 (LAME via PyAV) or 16-bit PCM WAV.

MP3 settings follow the measurements in the transcode reference: LAME's fastest mode
(``compression_level=9``). LAME needs frames of exactly its ``frame_size`` (576 samples at
16 kHz); PyAV cuts larger chunks into those in C, so they are fed in chunks of 64 frames.
WAV is written by the standard library: it is a header plus the samples, no codec needed.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Callable
from typing import Literal

import av
import numpy as np
import numpy.typing as npt

from bot.catalog import MAX_ENCODED_AUDIO_BYTES

OutputFormat = Literal["mp3", "wav"]

# 32 kbit/s MPEG-2 layer III is clear speech at 16 kHz mono (the ffmpeg baseline of the
# benchmark uses the same), 4 KB per second.
MP3_BITRATE = 32_000
WAV_BYTES_PER_SECOND = 16_000 * 2

# LAME's fastest setting; quality differences at speech bitrates are inaudible.
_LAME_COMPRESSION_LEVEL = "9"
# Samples handed to PyAV per call (64 LAME frames, 2.3 s at 16 kHz); the time limit is
# checked between calls.
_FEED_SAMPLES = 64 * 576


def bytes_per_second(fmt: OutputFormat) -> float:
    """Output bytes per second of audio for ``fmt`` (MP3: its constant bitrate)."""
    return MP3_BITRATE / 8 if fmt == "mp3" else float(WAV_BYTES_PER_SECOND)


def max_clip_seconds(fmt: OutputFormat, *, encoded_limit: int = MAX_ENCODED_AUDIO_BYTES) -> float:
    """The longest clip in ``fmt`` whose base64 data URL stays under ``encoded_limit``.

    At the defaults: about 32.7 minutes of MP3 (32 kbit/s) and 4 minutes of WAV. The engine
    should cut clips for the captioner (40 min window, one clip) at
    ``min(spec.clip_seconds, max_clip_seconds(fmt))``.
    """
    # Base64 turns 3 bytes into 4; keep 1 KB for the data URL prefix and container headers.
    raw = (encoded_limit - 1024) * 3 // 4
    return float(int(raw / bytes_per_second(fmt)))


def encode_clip(
    samples: npt.NDArray[np.int16],
    *,
    rate: int,
    fmt: OutputFormat,
    check: Callable[[], None],
) -> bytes:
    """Encode mono s16 ``samples`` at ``rate`` as ``fmt``; ``check`` may raise to abort."""
    if fmt == "wav":
        return encode_wav(samples, rate=rate)
    return encode_mp3(samples, rate=rate, check=check)


def encode_wav(samples: npt.NDArray[np.int16], *, rate: int) -> bytes:
    """16-bit PCM WAV, mono."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2", copy=False).tobytes())
    return buf.getvalue()


def encode_mp3(
    samples: npt.NDArray[np.int16],
    *,
    rate: int,
    check: Callable[[], None],
    bitrate: int = MP3_BITRATE,
) -> bytes:
    """Constant-bitrate MP3, mono, with a LAME/Xing header so decoders trim the priming."""
    encoder = Mp3Encoder(rate=rate, bitrate=bitrate)
    try:
        encoder.feed(samples, check=check)
        return encoder.finish()
    finally:
        encoder.close()


class Mp3Encoder:
    """An MP3 clip encoded incrementally: :meth:`feed` samples as they arrive, then
    :meth:`finish`.

    Samples go to PyAV in chunks of :data:`_FEED_SAMPLES`; PyAV cuts them into LAME's
    ``frame_size`` (576 at 16 kHz) in C, which costs less than one Python frame object per
    576 samples and gives byte-identical output. A chunk bounds the copy made per call.
    """

    def __init__(self, *, rate: int, bitrate: int = MP3_BITRATE) -> None:
        self._rate = rate
        self._buf = io.BytesIO()
        self._out = av.open(self._buf, mode="w", format="mp3")
        try:
            self._stream = self._out.add_stream("libmp3lame", rate=rate, layout="mono")
            ctx = self._stream.codec_context
            ctx.bit_rate = bitrate
            ctx.options = {"compression_level": _LAME_COMPRESSION_LEVEL}
            ctx.open()
        except BaseException:
            self._out.close()
            raise
        self._pts = 0
        self._closed = False

    def feed(self, samples: npt.NDArray[np.int16], *, check: Callable[[], None]) -> None:
        """Encode ``samples`` (mono s16) after those fed before; ``check`` may raise."""
        # LAME takes planar s16: one row per channel.
        planar = samples.reshape(1, -1)
        for pos in range(0, len(samples), _FEED_SAMPLES):
            check()
            frame = av.AudioFrame.from_ndarray(
                planar[:, pos : pos + _FEED_SAMPLES], format="s16p", layout="mono"
            )
            frame.sample_rate = self._rate
            frame.pts = self._pts
            self._pts += frame.samples
            for packet in self._stream.encode(frame):
                self._out.mux(packet)

    def finish(self) -> bytes:
        """Flush the encoder, write the trailer (Xing/LAME header) and return the clip."""
        for packet in self._stream.encode(None):
            self._out.mux(packet)
        self.close()
        return self._buf.getvalue()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._out.close()
