"""The native DashScope protocol: request bodies and answer parsing.

``POST {base}/services/aigc/multimodal-generation/generation`` with
``input.messages[].content`` as lists of ``{"audio": url}`` / ``{"text": str}`` items and
``parameters.result_format = "message"``. Streaming is asked for with the
``X-DashScope-SSE: enable`` header (never a body field) plus ``incremental_output: true``.
"""

from __future__ import annotations

from typing import Any

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

__all__ = ["PATH", "build_body", "headers", "parse_message", "parse_usage"]

PATH = "/services/aigc/multimodal-generation/generation"


def headers(*, api_key: str, stream: bool) -> dict[str, str]:
    """Request headers; streaming is switched on by ``X-DashScope-SSE``."""
    out = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json; charset=utf-8",
    }
    if stream:
        out["Accept"] = "text/event-stream"
        out["X-DashScope-SSE"] = "enable"
        out["X-Accel-Buffering"] = "no"
    else:
        out["Accept"] = "application/json; charset=utf-8"
    return out


def build_body(
    *, model: str, messages: list[ChatMessage], params: GenerationParams, stream: bool
) -> dict[str, Any]:
    """The JSON body. Audio items must have passed the size check already."""
    parameters: dict[str, Any] = {"result_format": "message"}
    if stream:
        parameters["incremental_output"] = True
    for name in ("temperature", "top_p", "top_k", "seed", "max_tokens"):
        value = getattr(params, name)
        if value is not None:
            parameters[name] = value
    asr = _asr_options(params)
    if asr:
        parameters["asr_options"] = asr
    return {
        "model": model,
        "input": {"messages": [_message(m) for m in messages]},
        "parameters": parameters,
    }


def _asr_options(params: GenerationParams) -> dict[str, Any]:
    asr: dict[str, Any] = {}
    if params.asr_language is not None:
        asr["language"] = params.asr_language
    if params.asr_enable_itn is not None:
        asr["enable_itn"] = params.asr_enable_itn
    return asr


def _message(message: ChatMessage) -> dict[str, Any]:
    content: list[dict[str, str]] = []
    for part in message.parts:
        if isinstance(part, AudioPart):
            content.append({"audio": audio_data_url(part)})
        elif isinstance(part, TextPart):
            content.append({"text": part.text})
    return {"role": message.role, "content": content}


def parse_message(obj: Any) -> Chunk:
    """Read one stream event's data, or the whole non-stream answer."""
    if not isinstance(obj, dict):
        return Chunk()
    chunk = Chunk(request_id=_str(obj.get("request_id")))
    usage = obj.get("usage")
    if isinstance(usage, dict):
        chunk.usage = parse_usage(usage)
    output = obj.get("output")
    if not isinstance(output, dict):
        return chunk
    choices = output.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        message = choice.get("message")
        if isinstance(message, dict):
            chunk.text = content_text(message.get("content"))
            chunk.audio_info = audio_info_from(message.get("annotations"))
        chunk.finish_reason = finish_reason_of(choice.get("finish_reason"))
    elif "text" in output:  # result_format=text, should a server ignore our choice
        text = output.get("text")
        chunk.text = text if isinstance(text, str) else None
        chunk.finish_reason = finish_reason_of(output.get("finish_reason"))
    return chunk


def parse_usage(usage: dict[str, Any]) -> Usage:
    """Normalise the native usage shapes (Qwen-Audio, ASR and captioner)."""
    in_details = usage.get("input_tokens_details")
    in_details = in_details if isinstance(in_details, dict) else {}
    out_details = usage.get("output_tokens_details")
    out_details = out_details if isinstance(out_details, dict) else {}
    audio = int_or_none(usage.get("audio_tokens"))
    if audio is None:
        audio = int_or_none(in_details.get("audio_tokens"))
    text = int_or_none(usage.get("text_tokens"))
    if text is None:
        text = int_or_none(in_details.get("text_tokens"))
    output = int_or_none(usage.get("output_tokens"))
    if output is None:
        output = int_or_none(out_details.get("text_tokens"))
    inputs = int_or_none(usage.get("input_tokens"))
    total = int_or_none(usage.get("total_tokens"))
    if total is None and inputs is not None and output is not None:
        total = inputs + output  # Qwen-Audio's usage has no total_tokens field
    return Usage(
        input_tokens=inputs,
        output_tokens=output,
        audio_tokens=audio,
        text_tokens=text,
        total_tokens=total,
        seconds=float_or_none(usage.get("seconds")),
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
