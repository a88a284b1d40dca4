"""Benchmark: the audio pipeline (PyAV in-process) against the ffmpeg command line.

Run: ``pip install -e '.[bench]' && python -m bench.transcode``

Inputs, generated in memory with PyAV: a 30 s Telegram-style voice note (OGG/Opus, 48 kHz
mono, 32 kbit/s) and a 3-minute M4A (AAC, 44.1 kHz stereo, 128 kbit/s), both speech-like.
Both paths produce the same output parameters: MP3, mono, 16 kHz, 32 kbit/s CBR.

- ``ffmpeg subprocess``: what peer bots do (pydub runs the ffmpeg CLI), here over pipes
  (pydub uses temp files, which would only make the baseline slower). The binary is the
  static one from the ``imageio-ffmpeg`` package; a system ``ffmpeg`` is used if present.
- ``pipeline``: :class:`bot.audio.pipeline.AudioPipeline.convert`, end to end through the
  event loop and the thread pool, with the cache off; the 3-minute file comes out as six
  30 s segments (what the model needs), encoded in parallel.
- ``pipeline, cache hit``: the same input converted a second time; reported separately and
  never part of the main ratio.

Prints medians of several runs, the speed-up against the subprocess in the same run, and
the realtime factor per core (audio seconds per CPU second: process CPU time for the
pipeline, child CPU time for the subprocess).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from bot.audio.encode import MP3_BITRATE
from bot.audio.pipeline import AudioPipeline
from bot.audio.types import AudioInput, ConvertedAudio


def ffmpeg_exe() -> str:
    """The ffmpeg binary for the baseline: system one, else imageio-ffmpeg's static build."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        raise SystemExit("install the bench extra: pip install -e '.[bench]'") from None
    return str(imageio_ffmpeg.get_ffmpeg_exe())


# --- inputs --------------------------------------------------------------------------


def speech_like(seconds: float, rate: int, channels: int) -> np.ndarray:
    """Voiced harmonics with a moving pitch, syllable rhythm, phrase pauses and room noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.3 * t) + 10 * rng.standard_normal(len(t)).cumsum() / rate
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) * np.exp(-k / 6) for k in range(1, 20))
    syllables = 0.5 * (1 - np.cos(2 * np.pi * 3.7 * t))
    phrases = (np.sin(2 * np.pi * t / 7.0) > -0.8).astype(float)  # ~1 s pause every 7 s
    x = 0.2 * voiced * syllables * phrases + 0.01 * rng.standard_normal(len(t))
    return np.vstack([x * (1 - 0.1 * c) for c in range(channels)]).astype(np.float32)


def encode_input(x: np.ndarray, *, rate: int, container: str, codec: str, bitrate: int) -> bytes:
    layout = {1: "mono", 2: "stereo"}[x.shape[0]]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        stream.codec_context.bit_rate = bitrate
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name,
            layout=layout,
            rate=rate,
            frame_size=stream.codec_context.frame_size or 1024,
        )
        frame = av.AudioFrame.from_ndarray(x, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = 0
        for rf in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(rf):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


# --- measurement ---------------------------------------------------------------------


@dataclass
class Timing:
    wall: list[float]
    cpu: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


def measure(fn: Callable[[], object], *, runs: int, child: bool = False) -> Timing:
    fn()  # warm-up: imports, pool threads, page cache
    wall, cpu = [], []
    for _ in range(runs):
        usage = resource.RUSAGE_CHILDREN if child else resource.RUSAGE_SELF
        r0 = resource.getrusage(usage)
        t0 = time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        r1 = resource.getrusage(usage)
        cpu.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
    return Timing(wall, cpu)


def ffmpeg_convert(exe: str, path: str, *, fast: bool) -> bytes:
    """The peers' path: one ffmpeg process per file, reading a file (MP4 needs seeking)."""
    cmd = [
        exe,
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        path,
        "-vn",
        "-ac",
        "1",
        "-ar",
        "16000",
        "-c:a",
        "libmp3lame",
        "-b:a",
        f"{MP3_BITRATE // 1000}k",
    ]
    if fast:
        cmd += ["-compression_level", "9"]
    cmd += ["-f", "mp3", "pipe:1"]
    done = subprocess.run(cmd, capture_output=True, check=True)
    return done.stdout


def pydub_convert(exe: str, path: str) -> bytes:
    """What the peers' code actually runs (n3d1117/chatgpt-telegram-bot, via pydub).

    ``AudioSegment.from_file`` probes with ffprobe and decodes to WAV in one ffmpeg
    process, pydub resamples and downmixes in Python, and ``export`` encodes in a second
    ffmpeg process. Same output parameters as every other row.
    """
    from pydub import AudioSegment

    AudioSegment.converter = exe
    segment = AudioSegment.from_file(path).set_channels(1).set_frame_rate(16_000)
    out = io.BytesIO()
    segment.export(out, format="mp3", bitrate=f"{MP3_BITRATE // 1000}k")
    return out.getvalue()


def have_pydub() -> bool:
    """pydub needs ffprobe next to ffmpeg (Debian's ``ffmpeg`` package has both)."""
    try:
        import pydub  # noqa: F401
    except ImportError:
        return False
    return shutil.which("ffprobe") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    exe = ffmpeg_exe()
    cores = os.cpu_count() or 1
    version = subprocess.run([exe, "-version"], capture_output=True, text=True).stdout.split("\n")[
        0
    ]
    print(f"cores: {cores}  PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})")
    print(f"baseline: {version}")
    print("output: MP3 mono 16 kHz 32 kbit/s CBR for every path\n")

    inputs = {
        "30 s voice note (OGG/Opus 48k mono)": (
            30.0,
            encode_input(
                speech_like(30, 48_000, 1),
                rate=48_000,
                container="ogg",
                codec="libopus",
                bitrate=32_000,
            ),
        ),
        "3 min M4A (AAC 44.1k stereo)": (
            180.0,
            encode_input(
                speech_like(180, 44_100, 2),
                rate=44_100,
                container="ipod",
                codec="aac",
                bitrate=128_000,
            ),
        ),
    }
    loop = asyncio.new_event_loop()
    pipelines = {
        n: AudioPipeline(
            max_bytes=20 << 20,
            max_seconds=900,
            output_format="mp3",
            workers=n,
            timeout=60,
            cache_bytes=0,
        )
        for n in (1, cores)
    }
    cached = AudioPipeline(
        max_bytes=20 << 20, max_seconds=900, output_format="mp3", workers=cores, timeout=60
    )

    def run(p: AudioPipeline, data: bytes) -> ConvertedAudio:
        return loop.run_until_complete(p.convert(AudioInput(data=data), segment_seconds=30.0))

    header = (
        f"{'path':<44}{'median':>9}{'speed-up':>10}{'RTF wall':>10}{'RTF/core':>10}{'bytes':>9}"
    )
    for label, (seconds, data) in inputs.items():
        print(f"{label}, {len(data) // 1024} KB in")
        print(header)
        rows: list[tuple[str, Timing, int]] = []
        # The input file is written once, outside the timing: in the baseline's favour
        # (pydub writes a temp file per call).
        with tempfile.NamedTemporaryFile(suffix=".bin") as tmp:
            tmp.write(data)
            tmp.flush()
            if have_pydub():
                out = pydub_convert(exe, tmp.name)
                t = measure(lambda: pydub_convert(exe, tmp.name), runs=args.runs, child=True)
                rows.append(("pydub, 2 ffmpeg processes (peers' code)", t, len(out)))
            else:
                print("(pydub row skipped: pip install pydub, and ffprobe on PATH)")
            for fast in (False, True):
                out = ffmpeg_convert(exe, tmp.name, fast=fast)
                name = "one ffmpeg subprocess" + (" -compression_level 9" if fast else "")
                t = measure(
                    lambda f=fast: ffmpeg_convert(exe, tmp.name, fast=f), runs=args.runs, child=True
                )
                rows.append((name, t, len(out)))
        for n, p in pipelines.items():
            res = run(p, data)
            t = measure(lambda p=p, d=data: run(p, d), runs=args.runs)
            rows.append((f"pipeline, {n} worker{'s' if n > 1 else ''}", t, res.report.bytes_out))
        startup = measure(
            lambda: subprocess.run([exe, "-version"], capture_output=True),
            runs=args.runs,
            child=True,
        )
        base = rows[0][1].median
        for name, t, size in rows:
            print(
                f"{name:<44}{t.median * 1000:>7.0f}ms{base / t.median:>9.2f}x"
                f"{seconds / t.median:>9.0f}x{seconds / t.cpu_median:>9.0f}x{size:>9}"
            )
        print(f"{'(ffmpeg -version: process start-up alone)':<44}{startup.median * 1000:>7.0f}ms")
        run(cached, data)
        hit = measure(lambda d=data: run(cached, d), runs=args.runs)
        print(
            f"{'pipeline, cache hit (not in the ratio)':<44}{hit.median * 1000:>7.2f}ms"
            f"{base / hit.median:>9.0f}x"
        )
        print()
    for p in (*pipelines.values(), cached):
        p.close()
    loop.close()


if __name__ == "__main__":
    main()
