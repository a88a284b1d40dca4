"""How long a recording is, and where its file disagrees with its own header.

Only the start of a long recording is decoded (:func:`bot.audio.spans.decode_window`), yet
the reply says how long the whole recording is ("I listened to the first 3:30 of 1:00:00.").
That length is never a header's word alone, since headers lie and files get cut off; it is
what the file holds, found without decoding the rest:

- decoded to the end: the samples counted (exact);
- Ogg: FFmpeg reads the granule position of the file's last page when it opens the file,
  so its duration is that of the audio really there;
- containers whose packets carry timestamps of their own (Matroska/WebM, MP4, FLAC, PCM in
  WAV/AIFF/CAF/W64): FFmpeg seeks past the end (by its index, or by reading clusters or
  frames in C) and the last packets are read: ~60 ms for an hour of WebM without cues;
- otherwise (raw MP3, ADTS, AMR…, whose timestamps after a seek are only estimates from
  the bitrate, and any seek that does not land where the file ends): the packets after the
  decoded part are read one by one to the end without decoding them (~2 µs a packet, an
  hour of 20 ms packets in ~0.4 s), at most :data:`SCAN_MAX_PACKETS` of them. Past that
  bound, the container's duration is taken if it is consistent with what was read, else
  the length is reported as a lower bound ("more than …").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av

from bot.audio.decode import Decoded
from bot.audio.probe import LENGTH_TOLERANCE, LENGTH_TOLERANCE_SHARE, ProbeInfo, StoredLength
from bot.audio.types import LengthMismatch, LengthSource, MismatchKind

# About 3 h 20 min of 20 ms packets (Opus, AMR) and ~1.5 s of reading on a slow core; only
# files of tiny packets near the size limit reach it.
SCAN_MAX_PACKETS = 600_000
# The conversion's deadline is checked this often while reading packets (~10 ms).
_CHECK_EVERY = 4096
# Demuxers whose packet timestamps stay true after a seek (see the module docstring).
_SEEK_TO_END = frozenset({"matroska", "mov", "flac", "wav", "aiff", "caf", "w64"})
# Past the end of any file under the size limit (~7 h of the lowest Opus bitrate).
_FAR_SECONDS = 100 * 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingLength:
    """How long a recording is, and how that is known."""

    seconds: float
    source: LengthSource
    at_least: bool = False  # ``seconds`` is a lower bound: the end was not found


@dataclass(frozen=True, slots=True, kw_only=True)
class Scan:
    """What reading the remaining packets found."""

    end: float | None  # seconds from the stream's start to the last packet's end
    packets: int
    complete: bool  # read to the end of the file (or to where it stops being readable)


def scan_rest(
    container: Any, stream: Any, *, check: Callable[[], None], max_packets: int = SCAN_MAX_PACKETS
) -> Scan:
    """Read the packets of ``stream`` left after decoding stopped, without decoding them."""
    start = stream.start_time or 0
    end: int | None = None
    packets = 0
    try:
        for packet in container.demux(stream):
            if not packet.size:
                continue  # the empty packet PyAV yields at the end to flush decoders
            packets += 1
            if packets % _CHECK_EVERY == 0:
                check()
            if packets > max_packets:
                return Scan(end=_seconds(end, start, stream), packets=packets, complete=False)
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:
                continue
            stop = pts + (packet.duration or 0)
            if end is None or stop > end:
                end = stop
    except av.FFmpegError:
        # Garbage or a cut where packets should be: the readable audio ends here, which is
        # what was measured (the decoder would stop at the same place).
        pass
    return Scan(end=_seconds(end, start, stream), packets=packets, complete=True)


def _seconds(end: int | None, start: int, stream: Any) -> float | None:
    if end is None or stream.time_base is None:
        return None
    return max(0.0, float((end - start) * stream.time_base))


def seek_to_end(container: Any, stream: Any, *, check: Callable[[], None]) -> Scan | None:
    """The end of ``stream`` from a seek past it and the packets read from there.

    ``None`` when the seek fails or finds no packet (a cut-off file whose index points
    past its end); the container is then positioned anywhere.
    """
    if stream.time_base is None:
        return None
    try:
        container.seek(int(_FAR_SECONDS / stream.time_base), stream=stream, backward=True)
    except (av.FFmpegError, OSError, ValueError):
        return None
    scan = scan_rest(container, stream, check=check)
    return scan if scan.complete and scan.end is not None else None


def recording_length(
    container: Any,
    stream: Any,
    info: ProbeInfo,
    decoded: Decoded,
    *,
    check: Callable[[], None],
    max_packets: int = SCAN_MAX_PACKETS,
) -> RecordingLength:
    """The length of the recording whose start ``decoded`` holds (see the module docstring).

    ``container`` is positioned where decoding stopped; it is read on from there.
    """
    heard = decoded.seconds
    if not decoded.truncated:
        return RecordingLength(seconds=heard, source=LengthSource.DECODED)
    declared = info.declared_duration
    # A duration shorter than what was already decoded is a header that lies.
    consistent = declared is not None and declared >= heard - LENGTH_TOLERANCE
    demuxer = info.container.split(",")[0]
    if consistent and demuxer == "ogg":
        assert declared is not None
        return RecordingLength(seconds=declared, source=LengthSource.CONTAINER)
    if demuxer in _SEEK_TO_END:
        found = seek_to_end(container, stream, check=check)
        # Never less than what was decoded: a seek that lands short was fooled.
        if found is not None and found.end is not None and found.end >= heard - LENGTH_TOLERANCE:
            return RecordingLength(seconds=max(heard, found.end), source=LengthSource.SCANNED)
        if not _seek_back(container, stream, heard):
            return _unknown(declared, heard, consistent)
    scan = scan_rest(container, stream, check=check, max_packets=max_packets)
    if scan.complete and (scan.end is not None or scan.packets == 0):
        # No packet left at all: decoding stopped inside the last one, a fraction of a
        # second from the end.
        return RecordingLength(seconds=max(heard, scan.end or 0.0), source=LengthSource.SCANNED)
    return _unknown(declared, max(heard, scan.end or 0.0), consistent)


def _seek_back(container: Any, stream: Any, seconds: float) -> bool:
    """Back to where decoding stopped (or before it: what is read is measured anyway)."""
    if stream.time_base is None:
        return False
    try:
        container.seek(int(seconds / stream.time_base), stream=stream, backward=True)
    except (av.FFmpegError, OSError, ValueError):
        return False
    return True


def _unknown(declared: float | None, reached: float, consistent: bool) -> RecordingLength:
    """The end was not found: the container's duration if it fits, else a lower bound."""
    if consistent and declared is not None and declared >= reached:
        return RecordingLength(seconds=declared, source=LengthSource.CONTAINER)
    return RecordingLength(seconds=reached, source=LengthSource.SCANNED, at_least=True)


def _noticeable(seconds: float, *, of: float) -> bool:
    """Whether ``seconds`` of difference on a recording of ``of`` seconds is worth a note."""
    return seconds >= max(LENGTH_TOLERANCE, LENGTH_TOLERANCE_SHARE * of)


def length_mismatch(
    info: ProbeInfo, length: RecordingLength, stored: StoredLength
) -> LengthMismatch | None:
    """How far the recording's length disagrees with what the file declares, or ``None``.

    A cut-off or mis-sized file is answered with what was heard; this says what could not
    be (the reply carries it as a note). Nothing is said when the end of the file was never
    found (``length.at_least``). A file longer than its header says is noted only when it
    was decoded whole: otherwise the reply's "I listened to the first … of …" already
    gives its real length, and the header's is beside the point.
    """
    if length.at_least:
        return None
    heard = length.seconds
    declared = info.declared_duration
    if stored.ends_early:
        return LengthMismatch(kind=MismatchKind.CUT_OFF, heard=heard)
    if _noticeable(stored.missing_seconds, of=heard + stored.missing_seconds):
        return LengthMismatch(
            kind=MismatchKind.CUT_OFF, heard=heard, declared=heard + stored.missing_seconds
        )
    if _noticeable(stored.unread_seconds, of=heard + stored.unread_seconds):
        return LengthMismatch(
            kind=MismatchKind.UNREAD_TAIL,
            heard=heard,
            declared=declared,
            unread=stored.unread_seconds,
        )
    if not stored.exact_duration or declared is None:
        return None
    if _noticeable(declared - heard, of=declared):
        return LengthMismatch(kind=MismatchKind.CUT_OFF, heard=heard, declared=declared)
    if length.source is LengthSource.DECODED and _noticeable(heard - declared, of=heard):
        return LengthMismatch(kind=MismatchKind.LONGER_THAN_HEADER, heard=heard, declared=declared)
    return None
