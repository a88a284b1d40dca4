"""Pieces both wire protocols share: data URLs, the size check, and the parsed-chunk type."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from bot import errors
from bot.catalog import MAX_ENCODED_AUDIO_BYTES
from bot.llm.types import AudioInfo, AudioPart, Usage

__all__ = [
    "Chunk",
    "audio_data_url",
    "audio_info_from",
    "check_audio_size",
    "encoded_size",
    "float_or_none",
    "int_or_none",
]

_MIME = {"mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg", "m4a": "audio/mp4"}


@dataclass(slots=True, kw_only=True)
class Chunk:
    """What one wire message (stream event or whole answer) says, protocol-neutral.

    ``text`` is the text as sent: a delta or the cumulative text, the caller decides.
    ``finish_reason`` is ``None`` while the reply goes on (native sends the string "null").
    """

    text: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    audio_info: AudioInfo | None = None
    request_id: str | None = None
    speech: bytes | None = None  # decoded PCM of the spoken reply (Qwen-Omni delta.audio)


def encoded_size(raw_len: int) -> int:
    """Length of the base64 encoding of ``raw_len`` bytes (with padding)."""
    return 4 * ((raw_len + 2) // 3)


def check_audio_size(part: AudioPart, *, limit: int = MAX_ENCODED_AUDIO_BYTES) -> None:
    """Refuse a clip whose base64 form is over the service's per-item limit."""
    size = encoded_size(len(part.data))
    if size > limit:
        raise errors.ModelPayloadTooLarge(
            f"audio clip is {size} bytes as base64, over the {limit} byte limit",
            code="PayloadTooLarge",
            message=f"encoded audio {size} > {limit}",
        )


def audio_data_url(part: AudioPart) -> str:
    """The clip as a ``data:audio/…;base64,…`` URL."""
    mime = _MIME.get(part.format.lower(), f"audio/{part.format.lower()}")
    return f"data:{mime};base64,{base64.b64encode(part.data).decode('ascii')}"


def int_or_none(value: Any) -> int | None:
    """An int from a JSON number, else ``None`` (bool is not a number here)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return None


def float_or_none(value: Any) -> float | None:
    """A float from a JSON number, else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def audio_info_from(annotations: Any) -> AudioInfo | None:
    """The ``audio_info`` annotation of a message or delta, if there is one."""
    if not isinstance(annotations, list):
        return None
    for item in annotations:
        if isinstance(item, dict) and item.get("type", "audio_info") == "audio_info":
            language = item.get("language")
            emotion = item.get("emotion")
            if language is None and emotion is None:
                continue
            return AudioInfo(
                language=str(language) if language is not None else None,
                emotion=str(emotion) if emotion is not None else None,
            )
    return None


def finish_reason_of(value: Any) -> str | None:
    """A finish reason, or ``None`` while the reply goes on (streams send the *string*
    "null" until the last event)."""
    if value is None or value == "null" or value == "":
        return None
    return str(value)


def content_text(content: Any) -> str | None:
    """The text of a message ``content``: a string, or the text items of a list."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    texts = [
        item["text"]
        for item in content
        if isinstance(item, dict) and isinstance(item.get("text"), str)
    ]
    return "".join(texts) if texts else None
