"""Encoding mono 16 kHz s16 samples into one clip: MP3 (LAME via PyAV) or 16-bit PCM WAV.

MP3 settings follow the measurements in the transcode reference: LAME's fastest mode
(``compression_level=9``) and frames of exactly the encoder's ``frame_size`` (576 samples
at 16 kHz), so the encoder never has to re-buffer. WAV is written by the standard library:
it is a header plus the samples, no codec needed.
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
# Check the time limit every this many encoder frames (about 2.3 s of audio at 16 kHz).
_CHECK_EVERY = 64


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
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="mono")
        ctx = stream.codec_context
        ctx.bit_rate = bitrate
        ctx.options = {"compression_level": _LAME_COMPRESSION_LEVEL}
        ctx.open()
        size = ctx.frame_size or 1152
        # LAME takes planar s16: one row per channel.
        planar = samples.reshape(1, -1)
        for n, pos in enumerate(range(0, len(samples), size)):
            if n % _CHECK_EVERY == 0:
                check()
            frame = av.AudioFrame.from_ndarray(
                planar[:, pos : pos + size], format="s16p", layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = pos
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
