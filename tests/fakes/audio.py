"""Tiny generated audio clips for tests (no binary fixtures in the repo)."""

from __future__ import annotations

import io
import math
import struct
import wave

import av


def sine_wav(seconds: float, *, rate: int = 16000, freq: float = 440.0) -> bytes:
    """A mono 16-bit PCM WAV of a sine tone."""
    frames = int(seconds * rate)
    samples = (int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(frames))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buf.getvalue()


def sine_mp3(seconds: float, *, rate: int = 16000, freq: float = 440.0) -> bytes:
    """A mono MP3 of a sine tone, encoded in memory with PyAV."""
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        stream = out.add_stream("mp3", rate=rate)
        stream.layout = "mono"
        total = int(seconds * rate)
        t = np.arange(total) / rate
        pcm = (0.25 * np.sin(2 * np.pi * freq * t)).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


SPEECH_RATE = 24_000  # Hz: the s16le mono PCM Qwen-Omni streams (and the fake sends)


def pcm_seconds(pcm: bytes, *, rate: int = SPEECH_RATE) -> float:
    """How long s16le mono ``pcm`` lasts at ``rate``."""
    return len(pcm) / (2 * rate)


def decoded_seconds(ogg: bytes) -> float:
    """The duration of an OGG/Opus file as a decoder plays it (PyAV, every frame)."""
    with av.open(io.BytesIO(ogg), mode="r") as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        samples, rate = 0, 0
        for frame in container.decode(stream):
            samples += frame.samples
            rate = frame.sample_rate
    return samples / rate
