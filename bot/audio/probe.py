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


# Enough for two MPEG audio frames at the largest frame size (1441 bytes).
_SNIFF_BYTES = 4096


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
    # Headerless streams: one sync word proves nothing (1 in 2048 random files has one), so
    # two consecutive frames must parse.
    adts = _adts_frame_length(head, 0)
    if adts and _adts_frame_length(head, adts):
        return "aac"
    first = _mpeg_frame_length(head, 0)
    if first and _mpeg_frame_length(head, first):
        return "mp3"
    if len(head) >= 4 * 188 + 1 and all(head[i * 188] == 0x47 for i in range(4)):
        return "mpegts"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg"
    return None


_MPEG_BITRATES = {  # kbit/s by (MPEG-1?, layer III?) for bitrate index 1..14
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(data: bytes, pos: int) -> int:
    """Length of the MPEG audio frame whose header is at ``pos``, or 0 if none is there."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return 0
    version = (data[pos + 1] >> 3) & 0b11  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5, 1: reserved
    layer_bits = (data[pos + 1] >> 1) & 0b11  # 1: layer III, 2: II, 3: I, 0: reserved
    bitrate_index = data[pos + 2] >> 4
    rate_index = (data[pos + 2] >> 2) & 0b11
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return 0
    layer = 4 - layer_bits
    mpeg1 = version == 3
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _MPEG_RATES[version][rate_index]
    padding = (data[pos + 2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    per_frame = 144 if (mpeg1 or layer == 2) else 72
    return per_frame * bitrate // rate + padding


def _adts_frame_length(data: bytes, pos: int) -> int:
    """Length of the ADTS (AAC) frame whose header is at ``pos``, or 0 if none is there."""
    if pos + 7 > len(data):
        return 0
    if data[pos] != 0xFF or data[pos + 1] & 0xF6 != 0xF0:  # sync, layer 0
        return 0
    length = ((data[pos + 3] & 0b11) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
    return length if length >= 7 else 0


def open_input(data: bytes) -> tuple[Any, Any]:
    """Open ``data`` with the demuxer its content names; return ``(container, audio_stream)``.

    Raises :class:`NotAudio` when the content is no known media container,
    :class:`AudioUnreadable` when it looks like one but FFmpeg cannot open it (corrupt or cut
    off before its index), and :class:`NoAudioTrack` for a container without an audio stream.
    """
    fmt = sniff_format(data[:_SNIFF_BYTES])
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
