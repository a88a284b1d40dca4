"""Container detection from content, and opening the audio stream.

The container is recognised from its leading bytes (magic numbers), never from the declared
mime type or file name, and FFmpeg is then told which demuxer to use. Naming the demuxer
ourselves keeps FFmpeg's probing away from formats that are not media at all (images, text
"tty" files, HLS/concat playlists that would make FFmpeg open other files or URLs).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import av

from bot.errors import AudioTooLong, AudioUnreadable, NoAudioTrack, NotAudio

# Demuxers whose declared duration is exact (from a header or index), so a decode that falls
# clearly short of it means the file was cut off. For others (raw MP3, ADTS, Ogg) FFmpeg only
# estimates the duration, or computes it from the (already truncated) end of the file.
EXACT_DURATION_FORMATS = frozenset({"wav", "flac", "mov", "aiff", "caf", "w64"})

# How far the decoded duration may fall short of an exact declared one before the file counts
# as truncated: encoder priming and rounding make small differences normal.
TRUNCATION_TOLERANCE = 0.5  # seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeInfo:
    """What the container says about its audio stream (before any decoding)."""

    container: str
    codec: str
    sample_rate: int
    channels: int
    declared_duration: float | None


def sniff_format(head: bytes) -> str | None:
    """The FFmpeg demuxer name for these leading bytes, or ``None`` if no media container."""
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"#!AMR-WB\n"):
        return "amrwb"
    if head.startswith(b"#!AMR\n"):
        return "amrnb"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"  # also WebM
    if len(head) >= 12 and head.startswith(b"RIFF"):
        kind = head[8:12]
        if kind == b"WAVE":
            return "wav"
        if kind == b"AVI ":
            return "avi"
        return None
    if len(head) >= 12 and head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head.startswith(b"caff"):
        return "caf"
    if head.startswith(b"riff\x2e\x91\xcf\x11"):
        return "w64"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf"  # WMA / WMV
    if head.startswith(b"FLV\x01"):
        return "flv"
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mov"  # MP4, M4A, 3GP, QuickTime
    if head.startswith(b"ID3"):
        return "mp3"  # ID3v2 tag; FFmpeg's mp3 demuxer also reads AAC/ADTS after one rarely
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 0b11
        if layer == 0b00:
            return "aac"  # ADTS: the layer bits of an ADTS header are always 0
        return "mp3"  # MPEG audio frame sync
    if len(head) >= 4 * 188 + 1 and all(head[i * 188] == 0x47 for i in range(4)):
        return "mpegts"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg"
    return None


def open_input(data: bytes) -> tuple[Any, Any]:
    """Open ``data`` with the demuxer its content names; return ``(container, audio_stream)``.

    Raises :class:`NotAudio` when the content is no known media container,
    :class:`AudioUnreadable` when it looks like one but FFmpeg cannot open it (corrupt or cut
    off before its index), and :class:`NoAudioTrack` for a container without an audio stream.
    """
    fmt = sniff_format(data[:1024])
    if fmt is None:
        raise NotAudio("no known media container signature")
    try:
        # BytesIO over bytes shares the buffer until written to: no copy of the input.
        container = av.open(io.BytesIO(data), mode="r", format=fmt)
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise AudioUnreadable(f"cannot open as {fmt}: {type(exc).__name__}") from None
    try:
        streams = container.streams.audio
        if not streams:
            raise NoAudioTrack(f"{fmt} container without an audio stream")
        stream = streams[0]
        if not stream.codec_context or stream.codec_context.sample_rate <= 0:
            raise AudioUnreadable(f"{fmt}: audio stream without a sample rate")
    except BaseException:
        container.close()
        raise
    return container, stream


def probe_info(container: Any, stream: Any) -> ProbeInfo:
    """What the container declares about ``stream``; cheap, decodes nothing."""
    declared: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        declared = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        declared = container.duration / av.time_base
    if declared is not None and declared <= 0:
        declared = None
    ctx = stream.codec_context
    return ProbeInfo(
        container=container.format.name,
        codec=ctx.name,
        sample_rate=int(ctx.sample_rate),
        channels=int(ctx.channels),
        declared_duration=declared,
    )


def refuse_if_declared_too_long(info: ProbeInfo, *, max_seconds: float) -> None:
    """Raise :class:`AudioTooLong` before decoding when the header admits a long recording.

    A header that understates its length is caught later by the decode bound, which counts
    decoded samples instead of trusting the header.
    """
    # One second of slack: container durations include codec priming and padding.
    if info.declared_duration is not None and info.declared_duration > max_seconds + 1.0:
        raise AudioTooLong(
            f"declared duration {info.declared_duration:.1f} s", limit_seconds=max_seconds
        )
