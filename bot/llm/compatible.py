"""The OpenAI-compatible protocol: request bodies and answer parsing.

``POST {compatible_base}/chat/completions`` with ``input_audio`` content parts, ``stream``
plus ``stream_options.include_usage``, and DashScope's ``asr_options`` as a top-level
extension field. Streams are ``data: {json}`` lines ending with ``data: [DONE]``.

Qwen-Omni (``reference/omni-tts-facts.md``) speaks when asked with ``modalities:
["text","audio"]`` and ``audio: {"voice", "format": "wav"}`` ("wav" is the only format,
and what streams is raw PCM, s16le mono 24 kHz, with no RIFF header): text comes in
``choices[0].delta.content``, speech as base64 in ``choices[0].delta.audio.data``, and the
final usage chunk counts the speech in ``completion_tokens_details.audio_tokens``.
Assistant history is text only.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from bot import errors
from bot.llm.types import AudioPart, ChatMessage, GenerationParams, TextPart, Usage
from bot.llm.wire import (
    Chunk,
    audio_data_url,
    audio_info_from,
    content_text,
    finish_reason_of,
    float_or_none,
    int_or_none,
)

__all__ = [
    "DONE",
    "PATH",
    "build_body",
    "headers",
    "parse_chunk",
    "parse_completion",
    "parse_usage",
]

PATH = "/chat/completions"
DONE = "[DONE]"
SPEECH_FORMAT = "wav"  # the only value Qwen-Omni takes; the stream carries headerless PCM


def headers(*, api_key: str, stream: bool) -> dict[str, str]:
    """Request headers."""
    return {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }


def build_body(
    *,
    model: str,
    messages: list[ChatMessage],
    params: GenerationParams,
    stream: bool,
    speech: bool = False,
    system_as_user: bool = False,
) -> dict[str, Any]:
    """The JSON body. Audio items must have passed the size check already.

    ``speech`` asks for a spoken reply in ``params.voice`` besides the text;
    ``system_as_user`` sends a system message as a leading user/assistant pair (models
    that take no system message when they speak).
    """
    wire = [_message(m) for m in messages]
    if system_as_user:
        wire = _system_as_pair(wire)
    body: dict[str, Any] = {"model": model, "messages": wire}
    if speech and params.voice is not None:
        body["modalities"] = ["text", "audio"]
        body["audio"] = {"voice": params.voice, "format": SPEECH_FORMAT}
    if stream:
        body["stream"] = True
        # The docs forbid stream_options on non-stream requests.
        body["stream_options"] = {"include_usage": True}
    for name in ("temperature", "top_p", "top_k", "seed", "max_tokens"):
        value = getattr(params, name)
        if value is not None:
            body[name] = value
    asr: dict[str, Any] = {}
    if params.asr_language is not None:
        asr["language"] = params.asr_language
    if params.asr_enable_itn is not None:
        asr["enable_itn"] = params.asr_enable_itn
    if asr:
        body["asr_options"] = asr
    return body


def _system_as_pair(wire: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The workaround Alibaba gives for Qwen-Omni without system messages: the
    instructions as the first user message, acknowledged by the assistant."""
    out: list[dict[str, Any]] = []
    for message in wire:
        if message["role"] == "system":
            text = {"type": "text", "text": message["content"]}
            out.append({"role": "user", "content": [text]})
            out.append({"role": "assistant", "content": "OK."})
        else:
            out.append(message)
    return out


def _message(message: ChatMessage) -> dict[str, Any]:
    has_audio = any(isinstance(p, AudioPart) for p in message.parts)
    if message.role == "assistant" or (not has_audio and message.role != "user"):
        # Assistant history is text only (Qwen-Omni takes nothing else there).
        # Plain strings are what every OpenAI-compatible server understands for these roles.
        return {"role": message.role, "content": "".join(_texts(message))}
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, AudioPart):
            content.append(
                {
                    "type": "input_audio",
                    "input_audio": {"data": audio_data_url(part), "format": part.format},
                }
            )
        elif isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
    return {"role": message.role, "content": content}


def _texts(message: ChatMessage) -> list[str]:
    return [p.text for p in message.parts if isinstance(p, TextPart)]


def parse_chunk(obj: Any) -> Chunk:
    """Read one ``chat.completion.chunk`` (its text is in ``choices[0].delta``)."""
    return _parse(obj, "delta")


def parse_completion(obj: Any) -> Chunk:
    """Read a whole ``chat.completion`` (its text is in ``choices[0].message``)."""
    return _parse(obj, "message")


def _parse(obj: Any, field: str) -> Chunk:
    if not isinstance(obj, dict):
        return Chunk()
    chunk = Chunk(request_id=_request_id(obj))
    usage = obj.get("usage")
    if isinstance(usage, dict):
        chunk.usage = parse_usage(usage)
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        body = choice.get(field)
        if isinstance(body, dict):
            chunk.text = content_text(body.get("content"))
            chunk.audio_info = audio_info_from(body.get("annotations"))
            chunk.speech = _speech(body.get("audio"))
        chunk.finish_reason = finish_reason_of(choice.get("finish_reason"))
    return chunk


def _speech(audio: Any) -> bytes | None:
    """The PCM of one ``delta.audio`` (``data``, base64; ``expires_at``, ``id`` ignored)."""
    if not isinstance(audio, dict):
        return None
    data = audio.get("data")
    if not isinstance(data, str) or not data:
        return None
    try:
        # Padding restored: each chunk is its own base64 string.
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise errors.ModelServerError("speech chunk is not base64", code="BadSpeechChunk") from None


def parse_usage(usage: dict[str, Any]) -> Usage:
    """Normalise OpenAI-style usage (with DashScope's ``seconds`` for ASR and Qwen-Omni's
    speech tokens in ``completion_tokens_details.audio_tokens``)."""
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    out_details = usage.get("completion_tokens_details")
    out_details = out_details if isinstance(out_details, dict) else {}
    return Usage(
        input_tokens=int_or_none(usage.get("prompt_tokens")),
        output_tokens=int_or_none(usage.get("completion_tokens")),
        audio_tokens=int_or_none(details.get("audio_tokens")),
        text_tokens=int_or_none(details.get("text_tokens")),
        total_tokens=int_or_none(usage.get("total_tokens")),
        seconds=float_or_none(usage.get("seconds")),
        audio_output_tokens=int_or_none(out_details.get("audio_tokens")),
    )


def _request_id(obj: dict[str, Any]) -> str | None:
    for key in ("request_id", "id"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return None
