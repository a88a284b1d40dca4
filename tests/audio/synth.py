"""Test-time audio fixtures: synthetic signals, and PyAV encoding into every input format.

Nothing binary is committed; everything here is generated in a fraction of a second.
"""

from __future__ import annotations

import functools
import io
import struct
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

Signal = npt.NDArray[np.float32]  # shape (channels, samples), range [-1, 1]


def speech_like(
    seconds: float,
    *,
    rate: int = 48_000,
    pauses: tuple[tuple[float, float], ...] = (),
    seed: int = 0,
) -> Signal:
    """A voiced, syllable-modulated harmonic signal with a -60 dBFS noise floor.

    Syllable dips last ~20 ms (shorter than a pause); ``pauses`` are ``(start, end)`` in
    seconds where only the noise floor remains.
    """
    n = round(seconds * rate)
    t = np.arange(n, dtype=np.float64) / rate
    f0 = 140.0 + 30.0 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 9))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4.0 * t))
    x = 0.25 * envelope * voiced / 2.0
    for start, end in pauses:
        x[int(start * rate) : int(end * rate)] = 0.0
    rng = np.random.default_rng(seed)
    x += rng.normal(0.0, 0.001, n)  # -60 dBFS floor
    return x.astype(np.float32).reshape(1, -1)


def noise(seconds: float, *, rate: int = 48_000, level: float = 0.1, seed: int = 1) -> Signal:
    """White noise at an RMS of ``level`` (no pauses anywhere)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0.0, level, round(seconds * rate))).astype(np.float32).reshape(1, -1)


def tone(seconds: float, *, rate: int = 48_000, freq: float = 440.0, amp: float = 0.3) -> Signal:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32).reshape(1, -1)


def silence(seconds: float, *, rate: int = 48_000) -> Signal:
    return np.zeros((1, round(seconds * rate)), dtype=np.float32)


def channels(x: Signal, count: int) -> Signal:
    """``x`` repeated on ``count`` channels, each slightly different."""
    return np.vstack([x[0] * (1.0 - 0.1 * i) for i in range(count)]).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Fmt:
    """How to write one input format with PyAV."""

    container: str
    codec: str
    rate: int
    bitrate: int | None = None
    video: bool = False  # add a small video stream (a video note, a screen recording)


FORMATS: dict[str, Fmt] = {
    "voice.ogg": Fmt("ogg", "libopus", 48_000, 32_000),  # Telegram voice note
    "audio.mp3": Fmt("mp3", "libmp3lame", 44_100, 128_000),
    "audio.m4a": Fmt("ipod", "aac", 44_100, 96_000),
    "audio.flac": Fmt("flac", "flac", 44_100),
    "audio.wav": Fmt("wav", "pcm_s16le", 44_100),
    "clip.webm": Fmt("webm", "libopus", 48_000, 48_000),  # Slack clip audio/webm
    "clip.m4a": Fmt("mp4", "aac", 48_000, 64_000),  # Slack clip audio/mp4
    "note.mp4": Fmt("mp4", "aac", 48_000, 64_000, video=True),  # Telegram video note
    "voice.amr": Fmt("amr", "libopencore_amrnb", 8_000, 12_200),
}

LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def encode(x: Signal, fmt: Fmt, *, rate: int | None = None) -> bytes:
    """Encode ``x`` (sampled at ``rate``, default ``fmt.rate``) into ``fmt``'s container."""
    src_rate = rate or fmt.rate
    layout = LAYOUTS[x.shape[0]]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt.container) as out:
        if fmt.video:
            vs = out.add_stream("mpeg4", rate=5)
            vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv420p"
        stream = out.add_stream(fmt.codec, rate=fmt.rate, layout=layout)
        if fmt.bitrate:
            stream.codec_context.bit_rate = fmt.bitrate
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name,
            layout=layout,
            rate=fmt.rate,
            frame_size=stream.codec_context.frame_size or 1024,
        )
        chunk = src_rate  # one second per input frame
        for pos in range(0, x.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(x[:, pos : pos + chunk]), format="fltp", layout=layout
            )
            frame.sample_rate = src_rate
            frame.pts = pos
            for rf in resampler.resample(frame):
                for packet in stream.encode(rf):
                    out.mux(packet)
        for rf in resampler.resample(None):
            for packet in stream.encode(rf):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if fmt.video:
            _write_video(out, vs, seconds=x.shape[1] / src_rate)
    return buf.getvalue()


def _write_video(out: av.container.OutputContainer, vs: av.VideoStream, *, seconds: float) -> None:
    img = np.zeros((64, 64, 3), dtype=np.uint8)
    for i in range(max(1, int(seconds * 5))):
        img[:, :, 0] = (i * 10) % 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        for packet in vs.encode(frame):
            out.mux(packet)
    for packet in vs.encode(None):
        out.mux(packet)


@functools.cache
def long_opus(seconds: float, *, container: str = "ogg", browser: bool = False) -> bytes:
    """A long 6 kbit/s Opus recording in 20 ms packets, made in well under a second.

    Ogg: a Telegram voice note, 2.7 MB an hour. ``container="webm"``: Matroska with a
    Duration and Cues; ``browser=True``: as a browser's MediaRecorder writes WebM (Slack
    clips recorded in a browser), with neither. Cached: each file is made once a session.
    """
    options = {"live": "1"} if browser else {}
    return _repeated(_encoded_chunk("libopus", 6_000), seconds, container, options)


@functools.cache
def long_aac(seconds: float, *, faststart: bool = False) -> bytes:
    """A long 16 kbit/s AAC recording in MP4 (7 MB an hour), its index at the end or, with
    ``faststart``, first (as streaming apps write it). Cached like :func:`long_opus`."""
    chunk = _encoded_chunk("aac", 16_000)
    if not faststart:
        return _repeated(chunk, seconds, "mp4", {})
    # faststart rewrites the file to move the index forward, so it needs a real file.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.mp4"
        _repeated(chunk, seconds, "mp4", {"movflags": "faststart"}, path=path)
        return path.read_bytes()


_CHUNK_SECONDS = 30.0


@functools.cache
def _encoded_chunk(codec: str, bitrate: int) -> bytes:
    """30 s of speech at 16 kHz, a pause every 10 s, encoded once (Ogg or ADTS)."""
    pauses = tuple((t - 0.5, t) for t in np.arange(10.0, _CHUNK_SECONDS, 10.0))
    x = speech_like(_CHUNK_SECONDS, rate=16_000, pauses=pauses)
    container = "ogg" if codec == "libopus" else "adts"
    return encode(x, Fmt(container, codec, 16_000, bitrate))


def _repeated(
    chunk: bytes,
    seconds: float,
    container: str,
    options: dict[str, str],
    *,
    path: Path | None = None,
) -> bytes:
    """``chunk``'s packets repeated with shifted timestamps for ``seconds`` (whole chunks),
    muxed as a recorder would write a recording that long."""
    with av.open(io.BytesIO(chunk), mode="r") as src:
        stream = src.streams.audio[0]
        packets = [p for p in src.demux(stream) if p.size]
        first = packets[0].pts
        assert first is not None and stream.time_base is not None
        step = round(_CHUNK_SECONDS / stream.time_base)
        # Exactly one chunk of packets, so the copies line up end to end.
        packets = [p for p in packets if p.pts is not None and p.pts < first + step]
        buf = io.BytesIO()
        target: io.BytesIO | str = buf if path is None else str(path)
        with av.open(target, mode="w", format=container, options=options) as out:
            copy = out.add_stream_from_template(stream)
            for i in range(int(seconds // _CHUNK_SECONDS)):
                for p in packets:
                    q = av.Packet(bytes(p))
                    assert p.pts is not None
                    q.pts = q.dts = p.pts + i * step
                    q.duration = p.duration
                    q.time_base = p.time_base
                    q.stream = copy
                    out.mux(q)
    return buf.getvalue()


def video_only(seconds: float = 1.0) -> bytes:
    """An MP4 with a video stream and no audio."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        vs = out.add_stream("mpeg4", rate=5)
        vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv420p"
        _write_video(out, vs, seconds=seconds)
    return buf.getvalue()


def wav_bytes(x: npt.NDArray[np.int16] | npt.NDArray[np.uint8], *, rate: int, width: int) -> bytes:
    """A WAV straight from integer samples (mono), without an encoder: instant for an hour."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(x.tobytes())
    return buf.getvalue()


def png_bytes() -> bytes:
    """A real 1x1 PNG image."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def zip_bytes() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("voice.ogg", b"not really")
    return buf.getvalue()


def decode_output(data: bytes) -> tuple[str, int, int, float]:
    """(codec, sample_rate, channels, seconds) of an output clip, by decoding all of it."""
    with av.open(io.BytesIO(data), mode="r") as c:
        s = c.streams.audio[0]
        n = 0
        for frame in c.decode(s):
            n += frame.samples
        return (
            s.codec_context.name,
            s.codec_context.sample_rate,
            s.codec_context.channels,
            n / (s.codec_context.sample_rate),
        )
