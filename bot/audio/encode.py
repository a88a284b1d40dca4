"""Encoding mono 16 kHz s16 samples into one clip: MP3 (LAME) or 16-bit PCM WAV.

MP3 comes from the ``lameenc`` wheel (a static LAME 3.100) where it can: the same encoder
PyAV's FFmpeg wraps, but built optimised, ~3-5x faster on this machine (bench/README.md).
``lameenc`` writes no Info/LAME tag, without which a decoder cannot trim LAME's priming and
padding (a 30 s clip decodes ~90 ms long, past the model's 30 s window), so
:func:`info_frame` writes one: no library writes that tag for raw frames (FFmpeg's muxer
only for its own encoder's packets). :class:`PyAVMp3Encoder` (LAME inside PyAV's wheel,
``compression_level=9``) is the fallback for sample rates the tag writer does not cover.
WAV is written by the standard library: it is a header plus the samples, no codec needed.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Callable
from typing import Literal, Protocol

import av
import lameenc
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
    """Constant-bitrate MP3, mono, with a LAME/Info header so decoders trim the priming."""
    encoder = mp3_encoder(rate=rate, bitrate=bitrate)
    try:
        encoder.feed(samples, check=check)
        return encoder.finish()
    finally:
        encoder.close()


class Mp3Encoder(Protocol):
    """An MP3 clip encoded incrementally: :meth:`feed` samples as they arrive, then
    :meth:`finish` (the clip's bytes); :meth:`close` releases it unfinished."""

    def feed(self, samples: npt.NDArray[np.int16], *, check: Callable[[], None]) -> None: ...

    def finish(self) -> bytes: ...

    def close(self) -> None: ...


# MPEG-2 layer III rates (576 samples a frame) that LAME keeps at 32 kbit/s.
_LAMEENC_RATES = frozenset({16_000, 22_050})  # at 24 kHz LAME resamples to 22.05
_TAG_BYTES = 4 + 9 + 16 + 36 + 2  # header, side info, Info fields, LAME extension, its CRC


def mp3_encoder(*, rate: int, bitrate: int = MP3_BITRATE) -> Mp3Encoder:
    """The fastest MP3 encoder for ``rate``: lameenc plus our Info tag, else PyAV's."""
    kbps = bitrate // 1000
    if (
        rate in _LAMEENC_RATES
        and bitrate % 8000 == 0
        and kbps in _MPEG2_L3_KBPS[1:-1]
        and 72 * bitrate // rate >= _TAG_BYTES  # the tag fits in one frame
    ):
        return LameencMp3Encoder(rate=rate, bitrate=bitrate)
    return PyAVMp3Encoder(rate=rate, bitrate=bitrate)


# LAME's ENCDELAY: the priming samples before the first input sample (LAME 3.100, layer III).
LAME_ENCODER_DELAY = 576
# What every MP3 decoder adds on top (the polyphase filterbank); the tag counts without it.
_DECODER_DELAY = 528 + 1


class LameencMp3Encoder:
    """MP3 from the ``lameenc`` wheel, then an Info/LAME tag frame in front (gapless)."""

    def __init__(self, *, rate: int, bitrate: int = MP3_BITRATE) -> None:
        self._rate = rate
        self._kbps = bitrate // 1000
        self._encoder = lameenc.Encoder()
        self._encoder.set_bit_rate(self._kbps)
        self._encoder.set_in_sample_rate(rate)
        self._encoder.set_channels(1)
        self._encoder.set_quality(7)  # lameenc's fastest (2 best, 7 fastest)
        self._parts: list[bytes] = []
        self._samples = 0

    def feed(self, samples: npt.NDArray[np.int16], *, check: Callable[[], None]) -> None:
        """Encode ``samples`` (mono s16) after those fed before; ``check`` may raise."""
        data = samples.astype("<i2", copy=False)
        for pos in range(0, len(data), _FEED_SAMPLES):
            check()
            chunk = data[pos : pos + _FEED_SAMPLES]
            self._parts.append(bytes(self._encoder.encode(chunk.tobytes())))
            self._samples += len(chunk)

    def finish(self) -> bytes:
        """Flush LAME and return the clip: the Info/LAME tag frame, then the audio."""
        self._parts.append(bytes(self._encoder.flush()))
        body = b"".join(self._parts)
        self._parts = []
        if not body:
            return body
        return info_frame(body, samples=self._samples, kbps=self._kbps, rate=self._rate) + body

    def close(self) -> None:
        self._parts = []


def info_frame(body: bytes, *, samples: int, kbps: int, rate: int) -> bytes:
    """A silent MPEG-2 layer III frame holding the Info (CBR Xing) and LAME tags for the
    frames in ``body``, so decoders skip LAME's priming and padding and play exactly
    ``samples`` samples (the layout FFmpeg's and mpg123's readers parse: Info, flags,
    frame count, byte count, then the 36-byte LAME extension and its CRC)."""
    first = int.from_bytes(body[:4], "big")
    header = first & ~(1 << 9)  # the same format as the audio, without a padding slot
    size = 72 * kbps * 1000 // rate  # MPEG-2 layer III: 576 samples a frame
    frames = _count_frames(body)
    total = frames * 576
    padding = max(0, min(0xFFF, total - LAME_ENCODER_DELAY - samples))
    frame = bytearray(size)
    frame[0:4] = header.to_bytes(4, "big")
    pos = 4 + 9  # the header, then MPEG-2 mono side information (zeros: silence)
    xing = b"Info" + (0x3).to_bytes(4, "big") + frames.to_bytes(4, "big")
    xing += (len(body) + size).to_bytes(4, "big")
    lame = b"LAME3.100" + bytes([0x01, 0x00])  # tag revision 0, CBR; no lowpass given
    lame += bytes(4 + 2 + 2)  # ReplayGain: peak, radio, audiophile (none)
    lame += bytes([0x00, min(kbps, 255)])  # encoding flags + ATH type; the bitrate
    lame += ((LAME_ENCODER_DELAY << 12) | padding).to_bytes(3, "big")
    lame += bytes(1 + 1 + 2)  # misc, MP3 gain, preset/surround
    lame += (len(body) + size).to_bytes(4, "big")  # music length: the whole file
    lame += bytes(2)  # music CRC (unchecked by decoders; not worth a pass over the audio)
    tag = xing + lame
    frame[pos : pos + len(tag)] = tag
    end = pos + len(tag)
    frame[end : end + 2] = _crc16(bytes(frame[:end])).to_bytes(2, "big")
    return bytes(frame)


def _count_frames(body: bytes) -> int:
    """The MPEG audio frames in ``body`` (CBR: each size is in its header's padding bit)."""
    count = pos = 0
    while pos + 4 <= len(body):
        header = int.from_bytes(body[pos : pos + 4], "big")
        if header >> 21 != 0x7FF:
            break  # not a frame: the end (LAME writes nothing after its frames)
        rate = _MPEG2_RATES[(header >> 10) & 3]
        kbps = _MPEG2_L3_KBPS[(header >> 12) & 15]
        if not rate or not kbps:
            break
        pos += 72 * kbps * 1000 // rate + ((header >> 9) & 1)
        count += 1
    return count


_MPEG2_RATES = (22_050, 24_000, 16_000, 0)
_MPEG2_L3_KBPS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0)


def _crc16(data: bytes) -> int:
    """CRC-16 (polynomial 0xA001, reflected, initial 0): the LAME tag's checksum."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class PyAVMp3Encoder:
    """An MP3 clip encoded incrementally with the LAME inside PyAV's FFmpeg.

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
