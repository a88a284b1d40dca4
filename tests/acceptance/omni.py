"""Qwen-Omni over DashScope's OpenAI-compatible endpoint, for the black-box fakes.

Written from the public Qwen-Omni documentation as summarised in
``reference/omni-tts-facts.md`` (not from the product or its own fakes):
``POST /compatible-mode/v1/chat/completions`` with a Bearer key; ``stream`` must be true
(else HTTP 400 ``invalid_parameter_error``); a user message holds at most one audio item;
assistant messages are text only; ``modalities: ["text","audio"]`` with
``audio: {"voice", "format": "wav"}`` asks for speech, which streams as base64 raw PCM
(s16le, mono, 24 kHz, no header) in ``delta.audio.data`` (with ``expires_at`` and ``id``)
beside the text in ``delta.content``; the usage chunk (``choices: []``) counts it in
``completion_tokens_details.audio_tokens``; the stream ends with ``data: [DONE]``.

:class:`OmniFake` is mounted by ``telegram_server.FakeDashScope`` and
``slack_server.SlackDashScopeFake``; each request and the PCM sent back is recorded, so a
test compares the voice note the chat got with the speech the model produced.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

COMPAT_PATH = "/compatible-mode/v1/chat/completions"
SPEECH_RATE = 24_000  # Hz, s16le mono


def tone(seconds: float, *, freq: float = 300.0) -> bytes:
    """``seconds`` of a sine tone as s16le mono PCM at 24 kHz."""
    n = round(seconds * SPEECH_RATE)
    return b"".join(
        int(7000 * math.sin(2 * math.pi * freq * i / SPEECH_RATE)).to_bytes(
            2, "little", signed=True
        )
        for i in range(n)
    )


@dataclass
class OmniCall:
    """One request to the compatible endpoint and what the fake streamed back."""

    body: dict[str, Any]
    speech: bytes = b""  # the PCM sent in delta.audio.data, in order

    @property
    def wants_speech(self) -> bool:
        return "audio" in (self.body.get("modalities") or [])

    @property
    def voice(self) -> str | None:
        audio = self.body.get("audio")
        return audio.get("voice") if isinstance(audio, dict) else None


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {
            "error": {
                "code": code,
                "param": None,
                "message": message,
                "type": "invalid_request_error",
            },
            "request_id": f"req-{uuid.uuid4().hex[:8]}",
        },
        status=status,
    )


@dataclass
class OmniFake:
    """The Omni endpoint: every accepted request answers ``chunks`` (and, when speech is
    asked for, ``speech_seconds`` of tone spread over them)."""

    api_key: str
    chunks: tuple[str, ...] = ("Here is ", "my spoken ", "answer.")
    speech_seconds: float = 1.6
    chunk_delay: float = 0.05
    calls: list[OmniCall] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def reply_text(self) -> str:
        return "".join(self.chunks)

    def snapshot(self) -> list[OmniCall]:
        with self.lock:
            return list(self.calls)

    def mount(self, app: web.Application) -> None:
        app.router.add_post(COMPAT_PATH, self.handle)

    @staticmethod
    def _check(body: dict[str, Any]) -> web.Response | None:
        """The service's refusals (None: the request is fine)."""
        if not body.get("model") or not isinstance(body.get("messages"), list):
            return _error(400, "invalid_parameter_error", "model and messages are required.")
        if body.get("stream") is not True:
            return _error(
                400,
                "invalid_parameter_error",
                "This model only support stream mode, please enable the stream parameter "
                "to access the model. ",
            )
        modalities = body.get("modalities") or ["text"]
        if modalities not in (["text"], ["text", "audio"]):
            return _error(400, "invalid_parameter_error", "modalities is invalid.")
        if "audio" in modalities:
            audio = body.get("audio")
            if not isinstance(audio, dict) or not audio.get("voice"):
                return _error(400, "invalid_parameter_error", "audio.voice is required.")
            if audio.get("format") != "wav":
                return _error(400, "invalid_parameter_error", "audio.format must be wav.")
        for message in body["messages"]:
            content = message.get("content")
            parts = content if isinstance(content, list) else []
            kinds = [p.get("type") for p in parts if isinstance(p, dict)]
            if message.get("role") == "assistant" and any(k != "text" for k in kinds):
                return _error(
                    400, "invalid_parameter_error", "Assistant messages may hold text only."
                )
            if kinds.count("input_audio") > 1:
                return _error(
                    400, "invalid_parameter_error", "Only one audio file is allowed per message."
                )
            for part in parts:
                if isinstance(part, dict) and part.get("type") == "input_audio":
                    data = str((part.get("input_audio") or {}).get("data", ""))
                    if not data.startswith(("data:", "http")):
                        return _error(400, "invalid_parameter_error", "The audio is invalid.")
                    if data.startswith("data:"):
                        try:
                            base64.b64decode(data.split(",", 1)[1], validate=True)
                        except (IndexError, ValueError):
                            return _error(400, "invalid_parameter_error", "The audio is invalid.")
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid_api_key", "Incorrect API key provided.")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid_parameter_error", "The body is not JSON.")
        if not isinstance(body, dict):
            return _error(400, "invalid_parameter_error", "The body is not a JSON object.")
        call = OmniCall(body)
        with self.lock:
            self.calls.append(call)
        refused = self._check(body)
        if refused is not None:
            return refused
        created = int(time.time())
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        audio_id = f"audio_{uuid.uuid4()}"
        speech = tone(self.speech_seconds) if call.wants_speech else b""
        # Speech follows the text it speaks: an equal share after each text chunk.
        share = math.ceil(len(speech) / max(1, len(self.chunks)) / 2) * 2

        def frame(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
            obj = {
                "choices": choices,
                "object": "chat.completion.chunk",
                "usage": usage,
                "created": created,
                "system_fingerprint": None,
                "model": body["model"],
                "id": cid,
            }
            return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"delta": delta, "finish_reason": finish, "index": 0, "logprobs": None}

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream;charset=UTF-8"})
        await resp.prepare(request)
        await resp.write(frame([choice({"content": "", "role": "assistant"})]))
        for i, chunk in enumerate(self.chunks):
            if i and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            await resp.write(frame([choice({"content": chunk})]))
            piece = speech[i * share : (i + 1) * share]
            for at in range(0, len(piece), 9600):  # 0.2 s per audio chunk
                data = piece[at : at + 9600]
                call.speech += data
                audio = {
                    "data": base64.b64encode(data).decode("ascii"),
                    "expires_at": created + 3600,
                    "id": audio_id,
                }
                await resp.write(frame([choice({"audio": audio})]))
        await resp.write(frame([choice({"content": ""}, "stop")]))
        if (body.get("stream_options") or {}).get("include_usage"):
            text_tokens = len(self.reply_text.split())
            audio_tokens = math.ceil(len(call.speech) / (2 * SPEECH_RATE) * 12.5)
            usage = {
                "prompt_tokens": 60,
                "completion_tokens": text_tokens + audio_tokens,
                "total_tokens": 60 + text_tokens + audio_tokens,
                "completion_tokens_details": {
                    "audio_tokens": audio_tokens,
                    "text_tokens": text_tokens,
                },
                "prompt_tokens_details": {"text_tokens": 60},
            }
            await resp.write(frame([], usage))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
