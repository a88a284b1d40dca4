"""A strict fake DashScope written only from docs (dashscope-protocol.md and the seed pages).

It serves the native ``multimodal-generation/generation`` endpoint (SSE when
``X-DashScope-SSE: enable``) and the OpenAI-compatible ``chat/completions`` endpoint on
127.0.0.1, in a background thread, so a ``voicebot`` subprocess can reach it.

It is strict the way the real service is: a wrong key is 401, an audio item must be a
base64 data URL of at most 10 MB that decodes, and a request over the model's max input
tokens (25 tokens per audio second, first 30 s of each clip, at least 1 s) is a 400
``InvalidParameter``. Anything the docs forbid but the real service might silently accept
is recorded in :attr:`DashScopeFake.violations` and also answered with a 400, so a test
sees it either way.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import av
from aiohttp import web

API_KEY = "sk-dashscope-acceptance-7f3c9e21b4"
NATIVE_PATH = "/api/v1/services/aigc/multimodal-generation/generation"
COMPAT_PATH = "/compatible-mode/v1/chat/completions"
MAX_B64 = 10 * 1024 * 1024


@dataclass(frozen=True)
class DashscopeModel:
    kind: Literal["chat", "asr", "caption"]
    max_input: int | None
    clip_window: float | None  # seconds of each clip the model listens to (tokens counted)
    tokens_per_second: float
    max_clip_seconds: float | None = None  # the service refuses a longer clip


_CHAT_6144 = DashscopeModel("chat", 6144, 30.0, 25.0)
_CHAT_6000 = DashscopeModel("chat", 6000, 30.0, 25.0)
MODELS: dict[str, DashscopeModel] = {
    "qwen-audio-turbo-latest": _CHAT_6144,
    "qwen-audio-turbo-2024-12-04": _CHAT_6144,
    "qwen-audio-turbo": _CHAT_6000,
    "qwen-audio-turbo-2024-08-07": _CHAT_6000,
    "qwen2-audio-instruct": _CHAT_6000,
    "qwen-audio-chat": _CHAT_6000,
    # The intl doc says 12.5 tokens/s, the zh doc 25: count the stricter one.
    "qwen3-omni-30b-a3b-captioner": DashscopeModel("caption", 32768, None, 25.0, 40 * 60.0),
    "qwen3-asr-flash": DashscopeModel("asr", None, None, 25.0, 5 * 60.0),
    "qwen-audio-asr": DashscopeModel("asr", None, 30.0, 25.0),
}


@dataclass
class DashscopePlan:
    """How the fake answers one request.

    ``kind``: ``reply`` (stream ``chunks``), ``error`` (non-2xx before any byte; JSON body,
    or SSE-framed when ``sse_framed``), ``midstream_error`` (``chunks`` then an
    ``event:error`` frame inside the HTTP 200 stream) or ``drop`` (``chunks`` then the
    connection is cut). ``gate``: after the first chunk, wait for it before sending more.
    """

    kind: Literal["reply", "error", "midstream_error", "drop"] = "reply"
    chunks: tuple[str, ...] = ("Hello ", "from ", "the ", "fake ", "DashScope.")
    status: int = 200
    code: str = ""
    message: str = ""
    retry_after: str | None = None
    sse_framed: bool = False
    gate: threading.Event | None = None
    final_text: str = ""  # text carried by the last (finish_reason "stop") event
    finish_reason: str = "stop"
    piece_bytes: int | None = None  # write each frame in pieces this small (splits UTF-8)
    delay: float = 0.0  # seconds between stream events
    final_delay: float = 0.0  # seconds before the last (finish_reason) event


@dataclass
class DashscopeRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    audio_seconds: list[float] = field(default_factory=list)  # per audio item, in order
    answered: int = 0  # HTTP status answered
    finished_at: float | None = None  # time.monotonic() when the stream was complete


class _Reject(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _audio_seconds(data_url: str) -> float:
    """Validate a data URL audio item and return its decoded duration."""
    if not data_url.startswith("data:") or ";base64," not in data_url:
        raise _Reject(400, "InvalidParameter", "The audio must be a URL or a base64 data URL.")
    b64 = data_url.split(";base64,", 1)[1]
    if len(b64) > MAX_B64:
        raise _Reject(
            400, "InvalidParameter", "Exceeded limit on max bytes per data-uri item : 10485760"
        )
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Reject(400, "InvalidParameter", "The audio base64 is invalid.") from exc
    try:
        with av.open(io.BytesIO(raw)) as container:
            stream = container.streams.audio[0]
            samples = 0
            rate = 0
            for frame in container.decode(stream):
                samples += frame.samples
                rate = frame.sample_rate
    except Exception as exc:
        raise _Reject(
            400, "InvalidParameter", "The audio format is not supported or is corrupted."
        ) from exc
    if not rate or not samples:
        raise _Reject(400, "InvalidParameter", "The audio is empty.")
    return samples / rate


def _text_tokens(text: str) -> int:
    return len(text)  # at most one token per character: the strict side


class DashScopeFake:
    """The fake server. ``plans`` are consumed in order; then ``default`` answers."""

    def __init__(self) -> None:
        self.requests: list[DashscopeRequest] = []
        self.violations: list[str] = []
        self.plans: deque[DashscopePlan] = deque()
        self.default = DashscopePlan()
        # chooses the plan from the request body before ``plans``/``default`` (None: no choice)
        self.router: Callable[[dict[str, Any]], DashscopePlan | None] | None = None
        self.stream_finished = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    @property
    def compatible_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/compatible-mode/v1"

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake DashScope did not start")

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._route)
        self._runner = web.AppRunner(app)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        loop.run_until_complete(site.start())
        self.port = int(self._runner.addresses[0][1])  # the bound port (0 picks a free one)
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def reset(self) -> None:
        self.requests.clear()
        self.violations.clear()
        self.plans.clear()
        self.default = DashscopePlan()
        self.stream_finished.clear()

    # --- routing -----------------------------------------------------------------------

    async def _route(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == NATIVE_PATH:
            return await self._native(request)
        if request.method == "POST" and request.path == COMPAT_PATH:
            return await self._compat(request)
        self.violations.append(f"unexpected {request.method} {request.path}")
        return _native_error(404, "InvalidParameter", "url error, please check url!")

    def _next_plan(self, body: dict[str, Any] | None = None) -> DashscopePlan:
        if self.router is not None and body is not None:
            plan = self.router(body)
            if plan is not None:
                return plan
        return self.plans.popleft() if self.plans else self.default

    # --- native ------------------------------------------------------------------------

    async def _native(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        rec = DashscopeRequest(request.path, dict(request.headers), body)
        self.requests.append(rec)
        auth = request.headers.get("Authorization", "")
        if not auth:
            rec.answered = 401
            return _native_error(401, "InvalidApiKey", "No API-key provided.")
        if auth != f"Bearer {API_KEY}":
            rec.answered = 401
            return _native_error(401, "InvalidApiKey", "Invalid API-key provided.")
        sse = request.headers.get("X-DashScope-SSE") == "enable"
        try:
            model = self._check_native(body, rec)
        except _Reject as rej:
            rec.answered = rej.status
            return _native_error(rej.status, rej.code, rej.message)
        plan = self._next_plan(body)
        if plan.kind == "error":
            rec.answered = plan.status
            headers = {"Retry-After": plan.retry_after} if plan.retry_after else {}
            if plan.sse_framed:
                frame = _sse_frame(1, "error", plan.status, _err(plan.code, plan.message))
                return web.Response(
                    status=plan.status,
                    body=frame.encode(),
                    content_type="text/event-stream",
                    charset="UTF-8",
                    headers=headers,
                )
            return _native_error(plan.status, plan.code, plan.message, headers=headers)
        rec.answered = 200
        if not sse:
            self.violations.append("native request without X-DashScope-SSE: enable")
            text = "".join(plan.chunks)
            return web.json_response(
                {
                    "output": {"choices": [_native_choice(text, "stop")]},
                    "usage": self._native_usage(model, rec, len(plan.chunks)),
                    "request_id": str(uuid.uuid4()),
                }
            )
        return await self._native_stream(request, plan, model, rec)

    def _check_native(self, body: dict[str, Any], rec: DashscopeRequest) -> str:
        if not isinstance(body, dict) or not body:
            raise _Reject(400, "InvalidParameter", "Required body invalid, please check.")
        if "stream" in body:
            self._violate("'stream' in the native body (it is a header)")
        model = body.get("model")
        if not model:
            raise _Reject(400, "BadRequest.EmptyModel", 'Required parameter "model" missing.')
        spec = MODELS.get(model)
        if spec is None:
            raise _Reject(400, "InvalidParameter", "Model not exist.")
        params = body.get("parameters") or {}
        if params.get("result_format") != "message":
            self._violate("parameters.result_format is not 'message'")
        if params.get("incremental_output") is not True:
            self._violate("parameters.incremental_output is not true")
        if "asr_options" in params and spec.kind != "asr":
            self._violate(f"parameters.asr_options sent to {model}")
        messages = (body.get("input") or {}).get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Reject(400, "BadRequest.EmptyInput", 'Required input "messages" missing.')
        tokens = 0
        audio_items = 0
        for i, msg in enumerate(messages):
            role = msg.get("role")
            content = msg.get("content")
            if role not in ("system", "user", "assistant"):
                raise _Reject(
                    400, "InvalidParameter", f"Role must be in [user, assistant, system]: {role}"
                )
            if role == "system" and i != 0:
                self._violate("system message not first")
            if not isinstance(content, list) or not content:
                raise _Reject(400, "InvalidParameter", "The content field is a required field.")
            for item in content:
                if not isinstance(item, dict) or len(item) != 1:
                    raise _Reject(400, "InvalidParameter", f"Invalid content item: {item!r}")
                ((key, value),) = item.items()
                if key == "text" and isinstance(value, str):
                    if spec.kind == "caption":
                        self._violate("text sent to the captioner")
                    if spec.kind == "asr" and role != "system":
                        self._violate("text sent to an ASR model outside the system message")
                    tokens += _text_tokens(value)
                elif key == "audio" and isinstance(value, str):
                    if role != "user":
                        self._violate(f"audio in a {role} message")
                    seconds = _audio_seconds(value)
                    rec.audio_seconds.append(seconds)
                    audio_items += 1
                    if spec.max_clip_seconds is not None and seconds > spec.max_clip_seconds:
                        raise _Reject(
                            400, "InvalidParameter", "The audio is too long for this model."
                        )
                    counted = max(seconds, 1.0)
                    if spec.clip_window is not None:
                        counted = min(counted, spec.clip_window)
                    tokens += math.ceil(counted * spec.tokens_per_second)
                else:
                    raise _Reject(400, "InvalidParameter", f"Invalid content item: {key}")
        if audio_items == 0:
            self._violate("no audio item in the request")
        if spec.kind != "chat":
            roles = [m.get("role") for m in messages]
            if "assistant" in roles or roles.count("user") != 1:
                self._violate(f"history sent to single-turn model {model}")
            if audio_items != 1:
                self._violate(f"{audio_items} audio items sent to {model} (exactly one allowed)")
        if spec.max_input is not None and tokens > spec.max_input:
            raise _Reject(
                400, "InvalidParameter", f"Range of input length should be [1, {spec.max_input}]"
            )
        if self.violations:
            raise _Reject(400, "InvalidParameter", "; ".join(self.violations))
        return str(model)

    def _violate(self, what: str) -> None:
        self.violations.append(what)

    def _native_usage(self, model: str, rec: DashscopeRequest, out_tokens: int) -> dict[str, Any]:
        spec = MODELS[model]
        audio = sum(math.ceil(max(s, 1.0) * spec.tokens_per_second) for s in rec.audio_seconds)
        if spec.kind == "asr":
            return {
                "input_tokens_details": {"text_tokens": 0},
                "output_tokens_details": {"text_tokens": out_tokens},
                "seconds": math.ceil(sum(rec.audio_seconds)),
            }
        if spec.kind == "caption":
            return {
                "input_tokens_details": {"audio_tokens": audio, "text_tokens": 0},
                "total_tokens": audio + out_tokens,
                "output_tokens": out_tokens,
                "input_tokens": audio,
                "output_tokens_details": {"text_tokens": out_tokens},
            }
        return {"audio_tokens": audio, "output_tokens": out_tokens, "input_tokens": audio + 10}

    async def _native_stream(
        self, request: web.Request, plan: DashscopePlan, model: str, rec: DashscopeRequest
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream;charset=UTF-8"}
        )
        await resp.prepare(request)
        rid = str(uuid.uuid4())
        n = 0
        for i, chunk in enumerate(plan.chunks):
            n += 1
            data = {
                "output": {"choices": [_native_choice(chunk, "null")]},
                "usage": self._native_usage(model, rec, i + 1),
                "request_id": rid,
            }
            await _write(resp, _sse_frame(n, "result", 200, data).encode(), plan.piece_bytes)
            if plan.delay:
                await asyncio.sleep(plan.delay)
            if i == 0 and plan.gate is not None:
                await asyncio.get_running_loop().run_in_executor(None, plan.gate.wait, 30)
        if plan.kind == "midstream_error":
            n += 1
            frame = _sse_frame(n, "error", plan.status, _err(plan.code, plan.message, rid))
            await resp.write(frame.encode())
            self.stream_finished.set()
            return resp
        if plan.kind == "drop":
            await asyncio.sleep(0.05)
            if request.transport is not None:
                request.transport.close()
            self.stream_finished.set()
            return resp
        n += 1
        if plan.final_delay:
            await asyncio.sleep(plan.final_delay)
        data = {
            "output": {"choices": [_native_choice(plan.final_text, plan.finish_reason)]},
            "usage": self._native_usage(model, rec, len(plan.chunks)),
            "request_id": rid,
        }
        await _write(resp, _sse_frame(n, "result", 200, data).encode(), plan.piece_bytes)
        await resp.write_eof()
        rec.finished_at = time.monotonic()
        self.stream_finished.set()
        return resp

    # --- OpenAI-compatible -------------------------------------------------------------

    async def _compat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        rec = DashscopeRequest(request.path, dict(request.headers), body)
        self.requests.append(rec)
        if request.headers.get("Authorization", "") != f"Bearer {API_KEY}":
            rec.answered = 401
            return _compat_error(
                401, "Incorrect API key provided. ", "invalid_request_error", "invalid_api_key"
            )
        try:
            model = self._check_compat(body, rec)
        except _Reject as rej:
            rec.answered = rej.status
            return _compat_error(rej.status, rej.message, "invalid_request_error", rej.code)
        plan = self._next_plan(body)
        if plan.kind == "error":
            rec.answered = plan.status
            headers = {"Retry-After": plan.retry_after} if plan.retry_after else {}
            return _compat_error(
                plan.status, plan.message, "invalid_request_error", plan.code, headers
            )
        rec.answered = 200
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
            obj = {
                "model": model,
                "id": cid,
                "created": created,
                "object": "chat.completion.chunk",
                "usage": usage,
                "choices": choices,
            }
            return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()

        await resp.write(
            chunk([{"logprobs": None, "index": 0, "delta": {"content": "", "role": "assistant"}}])
        )
        for i, text in enumerate(plan.chunks):
            await resp.write(chunk([{"delta": {"content": text, "role": None}, "index": 0}]))
            if i == 0 and plan.gate is not None:
                await asyncio.get_running_loop().run_in_executor(None, plan.gate.wait, 30)
        await resp.write(chunk([{"delta": {"role": None}, "index": 0, "finish_reason": "stop"}]))
        spec = MODELS[model]
        audio = sum(math.ceil(max(s, 1.0) * spec.tokens_per_second) for s in rec.audio_seconds)
        usage = {
            "prompt_tokens": audio + 10,
            "completion_tokens": len(plan.chunks),
            "total_tokens": audio + 10 + len(plan.chunks),
            "prompt_tokens_details": {"audio_tokens": audio, "text_tokens": 10},
            "completion_tokens_details": {"text_tokens": len(plan.chunks)},
        }
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(chunk([], usage))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        self.stream_finished.set()
        return resp

    def _check_compat(self, body: dict[str, Any], rec: DashscopeRequest) -> str:
        model = body.get("model")
        spec = MODELS.get(model) if isinstance(model, str) else None
        if spec is None:
            raise _Reject(404, "model_not_found", f"The model `{model}` does not exist.")
        if body.get("stream") is not True:
            self._violate("compatible request without stream:true")
        if not (body.get("stream_options") or {}).get("include_usage"):
            self._violate("compatible request without stream_options.include_usage")
        if "asr_options" in body and spec.kind != "asr":
            self._violate(f"asr_options sent to {model}")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Reject(400, "invalid_parameter_error", "messages is required")
        tokens = 0
        for msg in messages:
            content = msg.get("content")
            if isinstance(content, str):
                tokens += _text_tokens(content)
                continue
            if not isinstance(content, list):
                raise _Reject(400, "invalid_parameter_error", "invalid content")
            for part in content:
                kind = part.get("type")
                if kind == "text":
                    tokens += _text_tokens(part.get("text", ""))
                elif kind == "input_audio":
                    if msg.get("role") != "user":
                        self._violate("input_audio outside a user message")
                    data = (part.get("input_audio") or {}).get("data", "")
                    seconds = _audio_seconds(data)
                    rec.audio_seconds.append(seconds)
                    counted = max(seconds, 1.0)
                    if spec.clip_window is not None:
                        counted = min(counted, spec.clip_window)
                    tokens += math.ceil(counted * spec.tokens_per_second)
                else:
                    self._violate(f"unknown content part type {kind!r}")
        if not rec.audio_seconds:
            self._violate("no input_audio part")
        if spec.max_input is not None and tokens > spec.max_input:
            raise _Reject(
                400,
                "invalid_parameter_error",
                f"Range of input length should be [1, {spec.max_input}]",
            )
        if self.violations:
            raise _Reject(400, "invalid_parameter_error", "; ".join(self.violations))
        return str(model)


async def _write(resp: web.StreamResponse, data: bytes, piece: int | None) -> None:
    if not piece:
        await resp.write(data)
        return
    for pos in range(0, len(data), piece):
        await resp.write(data[pos : pos + piece])
        await asyncio.sleep(0)


def _err(code: str, message: str, rid: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": rid or str(uuid.uuid4())}


def _native_error(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(_err(code, message), status=status, headers=headers)


def _compat_error(
    status: int,
    message: str,
    kind: str,
    code: str,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {
        "error": {"message": message, "type": kind, "param": None, "code": code},
        "request_id": str(uuid.uuid4()),
    }
    return web.json_response(body, status=status, headers=headers)


def _native_choice(text: str, finish: str) -> dict[str, Any]:
    return {
        "message": {"content": [{"text": text}], "role": "assistant"},
        "finish_reason": finish,
    }


def _sse_frame(n: int, event: str, status: int, data: dict[str, Any]) -> str:
    payload = json.dumps(data, ensure_ascii=False)
    return f"id:{n}\nevent:{event}\n:HTTP_STATUS/{status}\ndata:{payload}\n\n"
