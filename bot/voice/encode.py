"""Spoken replies: raw PCM (s16le, mono, 24 kHz) → one OGG/Opus voice note, with PyAV.

libopus takes 24 kHz as it is (Opus runs at 8/12/16/24/48 kHz internally), so the PCM is
not resampled. The OGG muxer writes the encoder's pre-skip into the header and the last
page's granule position from the samples fed, so a decoder trims the priming and the
padding of the last 20 ms frame: the decoded note lasts as long as the PCM.
"""

from __future__ import annotations

import io

import av
import numpy as np

from bot.llm.types import SPEECH_SAMPLE_RATE

# 32 kbit/s Opus is transparent for speech (Telegram's own voice notes use less).
OPUS_BITRATE = 32_000
_BYTES_PER_SAMPLE = 2
# Opus frames are 20 ms; PyAV's encoder cuts what it is fed into frames in C.
_FEED_SAMPLES = SPEECH_SAMPLE_RATE * 10


def pcm_seconds(pcm: bytes, *, rate: int = SPEECH_SAMPLE_RATE) -> float:
    """The duration of ``pcm`` (s16le mono at ``rate``)."""
    return len(pcm) // _BYTES_PER_SAMPLE / rate


def truncate_pcm(pcm: bytes, seconds: float, *, rate: int = SPEECH_SAMPLE_RATE) -> bytes:
    """The first ``seconds`` of ``pcm`` (whole samples)."""
    return pcm[: int(seconds * rate) * _BYTES_PER_SAMPLE]


def encode_voice_note(pcm: bytes, *, rate: int = SPEECH_SAMPLE_RATE) -> bytes:
    """Encode ``pcm`` (s16le mono at ``rate``) as OGG/Opus.

    Raises :class:`ValueError` for no samples: a voice note is never empty.
    """
    usable = len(pcm) - len(pcm) % _BYTES_PER_SAMPLE
    if usable <= 0:
        raise ValueError("no speech to encode")
    samples = np.frombuffer(pcm[:usable], dtype="<i2").reshape(1, -1)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=rate, layout="mono")
        ctx = stream.codec_context
        ctx.bit_rate = OPUS_BITRATE
        ctx.options = {"application": "voip"}
        pts = 0
        for pos in range(0, samples.shape[1], _FEED_SAMPLES):
            frame = av.AudioFrame.from_ndarray(
                samples[:, pos : pos + _FEED_SAMPLES], format="s16", layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = pts
            pts += frame.samples
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
