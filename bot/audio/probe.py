"""Container detection from content, opening the audio stream, and where a file really ends.

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

from bot.errors import AudioUnreadable, NoAudioTrack, NotAudio

# Demuxers whose declared duration is exact (from a header or index), so a decode that falls
# clearly short of it means the file was cut off. For others (ADTS, AMR, Ogg, WAV) FFmpeg only
# estimates the duration, or computes it from the (already truncated) end of the file; MP3 is
# exact only with a Xing/Info/VBRI frame count (see :func:`stored_length`). Matroska declares
# a duration only when its muxer wrote one (browser recordings have none: ``None``).
EXACT_DURATION_FORMATS = frozenset({"flac", "mov", "aiff", "caf", "w64", "matroska"})

# How far decoded and declared lengths may differ before the file gets a note: encoder
# priming and padding (AAC 2112 samples, Opus pre-skip 312), MP3 frame rounding and
# millisecond timestamps make small differences normal; so does a 2% drift on long files.
LENGTH_TOLERANCE = 0.5  # seconds
LENGTH_TOLERANCE_SHARE = 0.02


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


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredLength:
    """What a file's own bytes say about where its audio ends, beside FFmpeg's duration.

    Read from the raw bytes because FFmpeg hides both cases: it computes a WAV's or an Ogg's
    duration from the data that is present, and its WAV demuxer stops at the data chunk's
    declared end whatever follows. Zero and ``False`` mean "nothing found".
    """

    exact_duration: bool  # ProbeInfo.declared_duration comes from a header or an index
    missing_seconds: float = 0.0  # WAV: the data chunk declares this much more than is there
    unread_seconds: float = 0.0  # WAV: this much follows the data chunk's end and is no chunk
    ends_early: bool = False  # Ogg: the last page is partial, or a stream has no last page


def stored_length(data: bytes, container: str) -> StoredLength:
    """Cheap checks of ``data`` as the ``container`` FFmpeg opened it as; decodes nothing."""
    demuxer = container.split(",")[0]
    if demuxer == "wav":
        return _wav_length(data)
    if demuxer == "ogg":
        return StoredLength(exact_duration=False, ends_early=_ogg_ends_early(data))
    if demuxer == "mp3":
        return StoredLength(exact_duration=_mp3_counts_frames(data))
    return StoredLength(exact_duration=demuxer in EXACT_DURATION_FORMATS)


def _u32le(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "little")


def _wav_length(data: bytes) -> StoredLength:
    """Compare the RIFF ``data`` chunk's declared size with the bytes around it."""
    none = StoredLength(exact_duration=False)
    pos, byte_rate = 12, 0
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], _u32le(data, pos + 4)
        if tag == b"fmt " and size >= 16:
            byte_rate = _u32le(data, pos + 16)  # nAvgBytesPerSec, after tag, channels, rate
        elif tag == b"data":
            # 0 and 0xFFFFFFFF are placeholders of writers that never came back to fill in
            # the size; FFmpeg then reads to the end of the file, so nothing goes unread.
            if byte_rate <= 0 or size in (0, 0xFFFFFFFF):
                return none
            start = pos + 8
            present = len(data) - start
            if size > present:
                return StoredLength(
                    exact_duration=False, missing_seconds=(size - present) / byte_rate
                )
            unread = _non_chunk_bytes(data, start + size + (size & 1))
            return StoredLength(exact_duration=False, unread_seconds=unread / byte_rate)
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    return none


def _non_chunk_bytes(data: bytes, pos: int) -> int:
    """Bytes from ``pos`` to the end, unless they are whole RIFF chunks (LIST, id3, cue…).

    All or nothing: samples past the declared end can look like a chunk header by chance,
    but a chain of them will not end exactly at the end of the file.
    """
    rest = len(data) - pos
    while pos + 8 <= len(data):
        tag = data[pos : pos + 4]
        if not all(0x20 <= b <= 0x7E for b in tag):  # chunk ids are printable ASCII
            return rest
        size = _u32le(data, pos + 4)
        pos += 8 + size + (size & 1)
    # A last chunk may lack its pad byte; a few stray bytes are no audio worth a note.
    return rest if pos > len(data) + 1 else 0


# RFC 3533: a page is "OggS", version 0, flags, granule (8), serial (4), sequence (4),
# checksum (4), the number of segments and their lacing values, then the segments.
_OGG_HEADER = 27
_OGG_EOS = 0x04


def _ogg_ends_early(data: bytes) -> bool:
    """Whether the last page is cut, or a logical stream never got its end-of-stream page.

    Every muxer marks a stream's last page (RFC 3533 section 6), so a file without one was
    cut off. Pages that cannot be followed (junk between them) give ``False``: unknown.
    """
    pos, open_streams = 0, set[int]()
    while pos < len(data):
        if len(data) - pos < _OGG_HEADER:
            return True
        if data[pos : pos + 4] != b"OggS" or data[pos + 4] != 0:
            return False
        segments = data[pos + 26]
        body = pos + _OGG_HEADER + segments
        end = body + sum(data[pos + _OGG_HEADER : body])
        if end > len(data):
            return True
        serial = _u32le(data, pos + 14)
        if data[pos + 5] & _OGG_EOS:
            open_streams.discard(serial)
        else:
            open_streams.add(serial)
        pos = end
    return bool(open_streams)


def _mp3_counts_frames(data: bytes) -> bool:
    """Whether the first MPEG frame is a Xing/Info or VBRI header with a frame count.

    FFmpeg takes the duration from that count; without one it estimates from the first
    bitrate and the file size, which is wrong for VBR and follows a cut-off file's size.
    """
    pos = 0
    if data.startswith(b"ID3") and len(data) >= 10:
        pos = 10 + int.from_bytes(bytes(b & 0x7F for b in data[6:10]), "big")  # synchsafe
    length = _mpeg_frame_length(data, pos)
    if not length:
        return False
    frame = data[pos : pos + length]
    if frame[36:40] == b"VBRI":  # always carries the frame count
        return True
    # Xing/Info sits after the side information: 9, 17 or 32 bytes by version and channels.
    for tag in (b"Xing", b"Info"):
        at = frame.find(tag, 4, 4 + 32 + 4)
        if at >= 0:
            return bool(int.from_bytes(frame[at + 4 : at + 8], "big") & 0x1)  # frames flag
    return False
