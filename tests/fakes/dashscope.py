"""A faithful fake DashScope server (native SSE and OpenAI-compatible), for tests and by hand.

It follows /work/shared/reference/dashscope-protocol.md: the native endpoint
``POST /api/v1/services/aigc/multimodal-generation/generation`` (JSON, or SSE with
``X-DashScope-SSE: enable`` in the exact no-space framing, ``:HTTP_STATUS/…`` comments,
``finish_reason`` the string ``"null"`` while streaming, no ``[DONE]``), and the compatible
endpoint ``POST /compatible-mode/v1/chat/completions`` (``data: `` framing, ``[DONE]``,
``stream_options.include_usage``). Per-model rules come from :mod:`bot.catalog`; audio is
decoded with PyAV and every request is recorded.

Use in tests (registered from ``tests/conftest.py``)::

    def test_something(dashscope_fake):
        client = DashScopeClient(api_key=dashscope_fake.api_key,
                                 base_url=dashscope_fake.native_base_url, ...)
        dashscope_fake.queue_reply(chunks=["Hel", "lo"], chunk_delay=0.01)
        dashscope_fake.queue_error(429, "Throttling.RateQuota", headers={"Retry-After": "0.1"})
        dashscope_fake.queue_reply(chunks=["par"], error=StreamError("DataInspectionFailed"))
        dashscope_fake.queue_reply(chunks=["par"], drop=True)      # connection dies
        ...
        req = dashscope_fake.requests[-1]
        assert req.audio_durations == pytest.approx([1.0], abs=0.1)

Qwen-Omni models (``protocol="compatible"`` in the catalog) follow
``reference/omni-tts-facts.md``: OpenAI-compatible and streaming only, one audio item per
user message, text-only assistant history; asked for ``modalities: ["text","audio"]`` they
stream base64 PCM (s16le, mono, 24 kHz, no header) in ``delta.audio.data`` beside the text
deltas — a deterministic tone (:func:`speech_tone`), whose bytes are recorded in
``RecordedRequest.speech`` — and count it in the final usage chunk's
``completion_tokens_details.audio_tokens``.

Qwen TTS (``qwen3-tts-flash``, ``TTS_CATALOG``) on the native endpoint follows §2 of the
same file: ``{"model","input":{"text","voice","language_type"}}``; more than the model's
``max_chars`` (600) or an unknown voice is refused with 400 ``InvalidParameter``; without
SSE the answer is ``output.audio.url`` + ``expires_at`` (the WAV is served from that URL,
``GET /tts-audio/…``, recorded in ``downloads``), with ``X-DashScope-SSE: enable`` it is SSE
chunks of base64 PCM in ``output.audio.data``, the last with ``finish_reason "stop"``, and
``usage.characters``. Speech is :func:`speech_tone` of 60 ms per character unless scripted
(:class:`TtsReply` via :meth:`FakeDashScope.queue_tts`, ``tts_script`` or ``tts_default``);
``tts_started`` is set at every TTS request and ``RecordedRequest.finished_at`` says when an
answer was complete, so tests can order the model's end and the TTS's start.

With nothing queued (and no :meth:`FakeDashScope.script` hook) the reply is derived from
the request, so a test can check what the model "heard": for example
``Heard 2 audio clip(s): 1.00 s, 2.50 s. Prompt: “what is this”.``

The server runs on its own thread and event loop, so it serves sync code (the official
SDKs) and async code alike. By hand::

    python -m tests.fakes.dashscope --port 8765 [--api-key sk-fake]

then ``DASHSCOPE_BASE_URL=http://127.0.0.1:8765/api/v1 DASHSCOPE_API_KEY=sk-fake voicebot ask …``.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import av
import pytest
from aiohttp import web

from bot.catalog import (
    CATALOG,
    MAX_ENCODED_AUDIO_BYTES,
    TTS_CATALOG,
    ModelKind,
    ModelSpec,
    TtsSpec,
    audio_tokens,
)

__all__ = [
    "AudioItem",
    "Fail",
    "FakeDashScope",
    "RecordedRequest",
    "Reply",
    "StreamError",
    "TtsReply",
    "count_text_tokens",
    "dashscope_fake",
    "model_answers",
    "request_audio",
    "speech_tone",
]

NATIVE_PATH = "/api/v1/services/aigc/multimodal-generation/generation"
COMPAT_PATH = "/compatible-mode/v1/chat/completions"
DEFAULT_API_KEY = "sk-fake-dashscope-key"

# Native wire code → the compatible mode's spelling, for scripted errors.
_COMPAT_CODES = {
    "InvalidApiKey": "invalid_api_key",
    "InvalidParameter": "invalid_parameter_error",
    "DataInspectionFailed": "data_inspection_failed",
    "ModelNotFound": "model_not_found",
    "Arrearage": "Arrearage",
    "InternalError": "internal_error",
}

SPEECH_RATE = 24_000  # Hz, s16le mono: what Qwen-Omni streams
# The fake's own rule for speech output tokens (DashScope's rate is not documented; the
# doc's sample bills 83 audio tokens for a short sentence).
SPEECH_TOKENS_PER_SECOND = 12.5
_TONE_PERIOD = 60  # samples: 400 Hz at 24 kHz, a whole number of samples per period


def speech_tone(seconds: float) -> bytes:
    """``seconds`` of a 400 Hz tone as s16le mono 24 kHz PCM (deterministic: tests compare
    what the bot got with what the fake sent)."""
    period = b"".join(
        int(8000 * math.sin(2 * math.pi * i / _TONE_PERIOD)).to_bytes(2, "little", signed=True)
        for i in range(_TONE_PERIOD)
    )
    samples = round(seconds * SPEECH_RATE)
    whole, rest = divmod(samples, _TONE_PERIOD)
    return period * whole + period[: 2 * rest]


_CJK_RANGES = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF))


def count_text_tokens(text: str) -> int:
    """The fake's text token count: one per CJK character, one per 4 other characters.

    Real tokenizers differ; this is deliberately simple and documented so the bot's own
    (more cautious) estimate can be checked against it. Replace ``fake.text_tokens`` to
    change it for a test.
    """
    cjk = sum(1 for ch in text if any(lo <= ord(ch) <= hi for lo, hi in _CJK_RANGES))
    other = len(text) - cjk
    return cjk + math.ceil(other / 4)


# --- scripting ---------------------------------------------------------------------------


@dataclass
class StreamError:
    """An error the server sends *inside* a 200 stream (native ``event:error`` frame).

    ``status`` is what the frame's ``:HTTP_STATUS/…`` comment says; message and status
    default to the service's usual ones for ``code``.
    """

    code: str = "InternalError"
    message: str | None = None
    status: int | None = None

    def __post_init__(self) -> None:
        if self.message is None:
            self.message = _DEFAULT_MESSAGES.get(self.code, "Error.")
        if self.status is None:
            self.status = _DEFAULT_STATUS.get(self.code, 400)


@dataclass(kw_only=True)
class Reply:
    """A scripted successful answer.

    ``chunks`` are the text pieces, one stream event each (default: derived from the
    request). ``first_byte_delay`` delays the response headers, ``first_token_delay`` the
    first event after them, ``chunk_delay`` each following event. After the chunks, the
    stream ends normally, or with ``error`` (an in-stream error frame, HTTP 200), or is
    cut (``drop=True``: the connection is aborted without finishing the body).
    """

    chunks: list[str] | None = None
    finish_reason: str = "stop"
    first_byte_delay: float = 0.0
    first_token_delay: float = 0.0
    chunk_delay: float = 0.0
    language: str | None = None  # ASR annotations (default for ASR models: en / neutral)
    emotion: str | None = None
    usage: dict[str, Any] | None = None  # replaces the computed usage object
    error: StreamError | None = None
    drop: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    # Send the text so far in every event instead of deltas. None: native follows the
    # request's incremental_output (the service default is cumulative); compatible sends
    # deltas. True imitates a server that ignores incremental_output.
    cumulative: bool | None = None
    # Qwen-Omni speech, when the request asks for audio: how long (default: 0.05 s per
    # character of the text, at least 0.5 s), in chunks of ``speech_chunk_seconds``;
    # ``speech_transcript`` also sends ``delta.audio.transcript`` (seen through a proxy,
    # UNVERIFIED for DashScope itself, so off by default).
    speech_seconds: float | None = None
    speech_chunk_seconds: float = 0.2
    speech_transcript: bool = False
    # Before the event of chunk ``hold_at``, wait until the test sets ``hold`` (the model
    # "thinking" for exactly as long as the test needs, instead of a guessed delay).
    hold: threading.Event | None = None
    hold_at: int = 1


async def _held(reply: Reply, index: int) -> None:
    if reply.hold is not None and index == reply.hold_at:
        await asyncio.to_thread(reply.hold.wait, 60.0)  # never hang the fake for good


@dataclass(kw_only=True)
class Fail:
    """A scripted HTTP error answer before any stream (or a dropped connection).

    ``sse=True`` frames the body as a native ``event:error`` SSE event, as the real service
    sometimes does; ``drop=True`` closes the connection without any answer.
    """

    status: int = 500
    code: str = "InternalError"
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sse: bool = False
    drop: bool = False
    delay: float = 0.0


@dataclass(kw_only=True)
class TtsReply:
    """A scripted Qwen TTS answer (``qwen3-tts-flash``).

    The speech is :func:`speech_tone` of ``seconds`` (default :data:`TTS_SECONDS_PER_CHAR`
    per character of the text), streamed in chunks of ``chunk_seconds`` with
    ``chunk_delay`` between them; ``drop=True`` cuts the connection after the first
    chunk; ``url_only=True`` streams no data, only a last chunk with ``output.audio.url``.
    """

    seconds: float | None = None
    chunk_seconds: float = 0.2
    chunk_delay: float = 0.0
    first_byte_delay: float = 0.0
    drop: bool = False
    url_only: bool = False


# The fake's speaking rate: 60 ms of speech per character (about 15 characters a second,
# a calm reading pace).
TTS_SECONDS_PER_CHAR = 0.06

Script = Reply | Fail
TtsScript = TtsReply | Fail


def model_answers(model: str, *scripts: Script) -> Callable[[RecordedRequest], Script | None]:
    """A :meth:`FakeDashScope.script` hook: requests for ``model`` get ``scripts`` in turn
    (the last one from then on); other models answer as the fake does by default."""
    queue = list(scripts)

    def hook(request: RecordedRequest) -> Script | None:
        if request.model != model:
            return None
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return hook


def request_audio(request: RecordedRequest) -> list[bytes]:
    """The audio bytes a request carried (its data URLs, decoded), in order."""
    found: list[bytes] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.startswith("data:"):
            found.append(base64.b64decode(value.split(",", 1)[1]))

    walk(request.body)
    return found


# --- recording ---------------------------------------------------------------------------


@dataclass(kw_only=True)
class AudioItem:
    """One audio item of a request, as the fake decoded it."""

    message_index: int
    role: str
    encoded_size: int  # length of the base64 payload
    size: int | None  # decoded bytes
    mime: str | None
    duration: float | None  # seconds of decoded audio; None if not decodable
    codec: str | None = None
    sample_rate: int | None = None


@dataclass(kw_only=True)
class RecordedRequest:
    """Everything about one request the fake received."""

    protocol: str  # "native" | "openai"
    path: str
    headers: dict[str, str]
    body: Any
    model: str | None = None
    stream: bool = False
    audio: list[AudioItem] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (role, text)
    roles: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    status: int | None = None  # what the fake answered
    error_code: str | None = None
    speech: bytes = b""  # the PCM the fake streamed back (Qwen-Omni, Qwen TTS)
    received_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None  # time.monotonic() when the answer was complete

    @property
    def audio_durations(self) -> list[float | None]:
        return [a.duration for a in self.audio]

    @property
    def parameters(self) -> dict[str, Any]:
        """Native ``parameters`` or the compatible top-level options."""
        if not isinstance(self.body, dict):
            return {}
        if self.protocol == "native":
            params = self.body.get("parameters")
            return params if isinstance(params, dict) else {}
        return {k: v for k, v in self.body.items() if k not in ("model", "messages")}

    @property
    def wants_speech(self) -> bool:
        """The request asked for ``modalities: ["text","audio"]``."""
        return isinstance(self.body, dict) and "audio" in (self.body.get("modalities") or [])

    @property
    def voice(self) -> str | None:
        """The ``audio.voice`` asked for, if any."""
        audio = self.body.get("audio") if isinstance(self.body, dict) else None
        return audio.get("voice") if isinstance(audio, dict) else None


class _Rejected(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


_DEFAULT_MESSAGES = {
    "InvalidApiKey": "Invalid API-key provided.",
    "InvalidParameter": (
        "Required parameter(s) missing or invalid, please check the request parameters."
    ),
    "DataInspectionFailed": "Output data may contain inappropriate content.",
    "Arrearage": "Access denied, plesase make sure your account is in good standing.",
    "AccessDenied": "Access denied.",
    "AllocationQuota.FreeTierOnly": "The free tier of the model has been exhausted.",
    "Throttling": "Requests throttling triggered.",
    "Throttling.RateQuota": "Requests rate limit exceeded, please try again later.",
    "Throttling.AllocationQuota": "Allocated quota exceeded, please increase your quota limit.",
    "InternalError": "An internal error has occured, please try again later.",
    "ServiceUnavailable": "Service unavailable, please try again later.",
}
_DEFAULT_STATUS = {
    "InvalidApiKey": 401,
    "AccessDenied": 403,
    "AllocationQuota.FreeTierOnly": 403,
    "Throttling": 429,
    "Throttling.RateQuota": 429,
    "Throttling.AllocationQuota": 429,
    "InternalError": 500,
    "ServiceUnavailable": 503,
}


# --- the server ----------------------------------------------------------------------------


class FakeDashScope:
    """The fake service. Start with :meth:`start` (own thread) or :meth:`serve_forever`."""

    def __init__(self, *, api_key: str = DEFAULT_API_KEY, host: str = "127.0.0.1", port: int = 0):
        self.api_key = api_key
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self.text_tokens: Callable[[str], int] = count_text_tokens
        self.models: dict[str, ModelSpec] = dict(CATALOG)
        self.tts_models: dict[str, TtsSpec] = dict(TTS_CATALOG)
        self._tts_queue: deque[TtsScript] = deque()
        self.tts_default = TtsReply()  # the answer when nothing is queued (or scripted)
        self.tts_script: Callable[[str], TtsScript | None] | None = None  # by the text
        self._tts_files: dict[str, bytes] = {}  # id → WAV, served at /tts-audio/{id}.wav
        self.downloads: list[RecordedRequest] = []  # GETs of those URLs
        # Set at every TTS request (a chat stream may ``hold`` on it: "the model is still
        # writing when the TTS starts", without a guessed delay).
        self.tts_started = threading.Event()
        self._queue: deque[Script] = deque()
        self._script: Callable[[RecordedRequest], Script | None] | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # --- addresses ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def native_base_url(self) -> str:
        """For ``DASHSCOPE_BASE_URL`` (``…/api/v1``)."""
        return f"{self.url}/api/v1"

    @property
    def compatible_base_url(self) -> str:
        """For ``DASHSCOPE_COMPATIBLE_BASE_URL`` (``…/compatible-mode/v1``)."""
        return f"{self.url}/compatible-mode/v1"

    # --- scripting -----------------------------------------------------------------------

    def queue(self, *items: Script) -> None:
        """Answer the next requests (that pass validation) with these, in order."""
        with self._lock:
            self._queue.extend(items)

    def queue_reply(self, **kwargs: Any) -> Reply:
        """Queue a :class:`Reply` built from ``kwargs``; return it."""
        reply = Reply(**kwargs)
        self.queue(reply)
        return reply

    def queue_error(
        self, status: int, code: str, message: str | None = None, **kwargs: Any
    ) -> Fail:
        """Queue an HTTP error answer (see :class:`Fail`); return it."""
        fail = Fail(status=status, code=code, message=message, **kwargs)
        self.queue(fail)
        return fail

    def queue_tts(self, *items: TtsScript) -> None:
        """Answer the next TTS requests (that pass validation) with these, in order."""
        with self._lock:
            self._tts_queue.extend(items)

    @property
    def tts_requests(self) -> list[RecordedRequest]:
        """The TTS requests received, in order."""
        return [r for r in self.requests if r.model in self.tts_models]

    def script(self, hook: Callable[[RecordedRequest], Script | None] | None) -> None:
        """Decide answers per request when the queue is empty (``None`` = default reply)."""
        self._script = hook

    def reset(self) -> None:
        """Forget queued answers, the hook and recorded requests."""
        with self._lock:
            self._queue.clear()
            self._tts_queue.clear()
            self.requests.clear()
            self.downloads.clear()
        self.tts_started.clear()
        self._script = None

    @property
    def last_request(self) -> RecordedRequest:
        return self.requests[-1]

    # --- lifecycle -----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(NATIVE_PATH, self._native)
        app.router.add_post(COMPAT_PATH, self._compat)
        app.router.add_get("/api/v1/uploads", self._uploads)
        app.router.add_get("/tts-audio/{name}", self._tts_file)
        return app

    def start(self) -> None:
        """Serve on a background thread; returns once the port is bound."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._bind())
            except BaseException as exc:  # report bind errors to the starting thread
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            assert self._runner is not None
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-dashscope", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            raise failure[0]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    async def _bind(self) -> None:
        self._runner = web.AppRunner(
            self.app(), handle_signals=False, access_log=None, shutdown_timeout=0.05
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]

    # --- handlers --------------------------------------------------------------------------

    async def _uploads(self, request: web.Request) -> web.StreamResponse:
        # The SDK's file:// upload flow is not supported: tests send data URLs.
        return _json(
            400, {"code": "InvalidParameter", "message": "uploads are not supported by the fake"}
        )

    async def _native(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "native")

    async def _compat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "openai")

    async def _handle(self, request: web.Request, protocol: str) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        rec = RecordedRequest(
            protocol=protocol, path=request.path, headers=dict(request.headers), body=body
        )
        with self._lock:
            self.requests.append(rec)
        if protocol == "native" and isinstance(body, dict) and body.get("model") in self.tts_models:
            return await self._tts(request, rec, request_id)
        try:
            await self._validate(request, rec)
        except _Rejected as rej:
            rec.status, rec.error_code = rej.status, rej.code
            return _error_response(protocol, rej.status, rej.code, rej.message, request_id)
        with self._lock:
            item = self._queue.popleft() if self._queue else None
        if item is None and self._script is not None:
            item = self._script(rec)
        if item is None:
            item = Reply()
        if isinstance(item, Fail):
            return await self._fail(request, rec, item, request_id)
        rec.status = 200
        if protocol == "native":
            return await self._native_answer(request, rec, item, request_id)
        return await self._compat_answer(request, rec, item, request_id)

    # --- Qwen TTS (reference/omni-tts-facts.md §2) ------------------------------------------

    async def _tts(
        self, request: web.Request, rec: RecordedRequest, request_id: str
    ) -> web.StreamResponse:
        self.tts_started.set()
        try:
            text = self._validate_tts(request, rec)
        except _Rejected as rej:
            rec.status, rec.error_code = rej.status, rej.code
            return _error_response("native", rej.status, rej.code, rej.message, request_id)
        with self._lock:
            item = self._tts_queue.popleft() if self._tts_queue else None
        if item is None and self.tts_script is not None:
            item = self.tts_script(text)
        item = item or self.tts_default
        if isinstance(item, Fail):
            return await self._fail(request, rec, item, request_id)
        rec.status = 200
        seconds = item.seconds if item.seconds is not None else TTS_SECONDS_PER_CHAR * len(text)
        speech = speech_tone(seconds)
        usage = {
            # ``characters`` per a gateway's schema (UNVERIFIED officially).
            "characters": len(text),
            "input_tokens": self.text_tokens(text),
            "output_tokens": math.ceil(seconds * 50),  # 50 tokens/s, as Qwen-TTS Realtime
            "total_tokens": self.text_tokens(text) + math.ceil(seconds * 50),
        }
        audio_id = f"audio_{uuid.uuid4().hex}"
        expires_at = int(time.time()) + 24 * 3600  # "expires after 24 hours"
        if item.first_byte_delay:
            await asyncio.sleep(item.first_byte_delay)
        if not rec.stream or item.url_only:
            self._tts_files[audio_id] = _wav(speech)
            rec.speech = speech
            url = f"{self.url}/tts-audio/{audio_id}.wav"
            audio = {"data": "", "url": url, "id": audio_id, "expires_at": expires_at}
            answer = {
                "output": {"finish_reason": "stop", "audio": audio},
                "usage": usage,
                "request_id": request_id,
            }
            if not rec.stream:
                rec.finished_at = time.monotonic()
                return _json(200, answer)
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream;charset=UTF-8"}
        )
        await resp.prepare(request)
        event_id = 0
        if not item.url_only:
            step = max(2, 2 * round(item.chunk_seconds * SPEECH_RATE))
            for i in range(0, len(speech), step):
                if i and item.chunk_delay:
                    await asyncio.sleep(item.chunk_delay)
                piece = speech[i : i + step]
                event_id += 1
                data = {
                    "output": {
                        "finish_reason": "null",
                        "audio": {
                            "data": base64.b64encode(piece).decode("ascii"),
                            "id": audio_id,
                            "expires_at": expires_at,
                        },
                    },
                    "usage": usage,
                    "request_id": request_id,
                }
                await resp.write(_native_frame(event_id, "result", 200, data))
                rec.speech += piece
                if item.drop:
                    _abort(request)
                    return resp
            audio = {"data": "", "id": audio_id, "expires_at": expires_at}
            answer = {
                "output": {"finish_reason": "stop", "audio": audio},
                "usage": usage,
                "request_id": request_id,
            }
        await resp.write(_native_frame(event_id + 1, "result", 200, answer))
        await resp.write_eof()
        rec.finished_at = time.monotonic()
        return resp

    def _validate_tts(self, request: web.Request, rec: RecordedRequest) -> str:
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}":
            raise _Rejected(401, "InvalidApiKey", "Invalid API-key provided.")
        body = rec.body
        assert isinstance(body, dict)
        rec.model = str(body["model"])
        rec.stream = request.headers.get("X-DashScope-SSE", "").lower() == "enable"
        spec = self.tts_models[rec.model]
        payload = body.get("input")
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise _Rejected(
                400, "BadRequest.EmptyInput", "Required input parameter missing from request."
            )
        rec.texts.append(("user", text))
        # The exact refusal text is UNVERIFIED; the limit is documented (600 characters).
        if len(text) > spec.max_chars:
            raise _Rejected(
                400, "InvalidParameter", f"Range of input length should be [1, {spec.max_chars}]"
            )
        voice = payload.get("voice") if isinstance(payload, dict) else None
        if voice not in spec.voices:
            raise _Rejected(400, "InvalidParameter", f"Voice '{voice}' is not supported.")
        return text

    async def _tts_file(self, request: web.Request) -> web.StreamResponse:
        rec = RecordedRequest(
            protocol="download", path=request.path, headers=dict(request.headers), body=None
        )
        with self._lock:
            self.downloads.append(rec)
        name = request.match_info["name"].removesuffix(".wav")
        wav = self._tts_files.get(name)
        if wav is None:
            return web.Response(status=404, text="NoSuchKey")
        return web.Response(status=200, body=wav, headers={"Content-Type": "audio/wav"})

    # --- validation -------------------------------------------------------------------------

    async def _validate(self, request: web.Request, rec: RecordedRequest) -> None:
        native = rec.protocol == "native"
        auth = request.headers.get("Authorization", "")
        if not auth:
            raise _Rejected(401, "InvalidApiKey", "No API-key provided.")
        if auth != f"Bearer {self.api_key}":
            raise _Rejected(401, "InvalidApiKey", "Invalid API-key provided.")
        body = rec.body
        if not isinstance(body, dict):
            raise _Rejected(400, "InvalidParameter", "Request body is not valid JSON.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _Rejected(
                400, "BadRequest.EmptyModel", 'Required parameter "model" missing from request.'
            )
        rec.model = model
        if native:
            rec.stream = request.headers.get("X-DashScope-SSE", "").lower() == "enable" or (
                "text/event-stream" in request.headers.get("Accept", "")
            )
        else:
            rec.stream = body.get("stream") is True
            if body.get("stream_options") is not None and not rec.stream:
                raise _Rejected(
                    400,
                    "InvalidParameter",
                    "The parameter stream_options is only allowed when stream is true.",
                )
        spec = self.models.get(model)
        if spec is not None and spec.protocol == "compatible" and native:
            # OpenAI-compatible only; what the native endpoint answers is UNVERIFIED.
            raise _Rejected(400, "InvalidParameter", "Model not exist.")
        if spec is None:
            if native:
                raise _Rejected(400, "InvalidParameter", "Model not exist.")
            raise _Rejected(
                404,
                "ModelNotFound",
                f"The model `{model}` does not exist or you do not have access to it.",
            )
        if spec.protocol == "compatible":
            _check_omni_options(spec, rec)
        messages = _messages(body, native)
        if not messages:
            raise _Rejected(
                400, "BadRequest.EmptyInput", "Required input parameter missing from request."
            )
        oss_ok = request.headers.get("X-DashScope-OssResourceResolve", "").lower() == "enable"
        for index, (role, items) in enumerate(messages):
            rec.roles.append(role)
            for kind, value in items:
                if kind == "text":
                    rec.texts.append((role, value))
                else:
                    rec.audio.append(await _audio_item(index, role, value, oss_ok=oss_ok))
        _check_model_rules(spec, rec, messages)
        audio_tok = sum(audio_tokens(spec, a.duration or 0.0) for a in rec.audio)
        text_tok = sum(self.text_tokens(t) for _, t in rec.texts)
        rec.input_tokens = audio_tok + text_tok
        limit = spec.max_input_tokens
        if limit is not None and rec.input_tokens > limit:
            raise _Rejected(
                400, "InvalidParameter", f"Range of input length should be [1, {limit}]"
            )

    # --- answers --------------------------------------------------------------------------

    async def _fail(
        self, request: web.Request, rec: RecordedRequest, fail: Fail, request_id: str
    ) -> web.StreamResponse:
        if fail.delay:
            await asyncio.sleep(fail.delay)
        if fail.drop:
            rec.status, rec.error_code = None, "dropped"
            _abort(request)
            raise ConnectionResetError("fake: dropped")
        rec.status, rec.error_code = fail.status, fail.code
        message = fail.message or _DEFAULT_MESSAGES.get(fail.code, "Error.")
        if fail.sse and rec.protocol == "native":
            resp = web.Response(
                status=fail.status,
                body=_native_frame(
                    1,
                    "error",
                    fail.status,
                    {"code": fail.code, "message": message, "request_id": request_id},
                ),
                headers={"Content-Type": "text/event-stream;charset=UTF-8", **fail.headers},
            )
            return resp
        resp = _error_response(rec.protocol, fail.status, fail.code, message, request_id)
        resp.headers.update(fail.headers)
        return resp

    def _plan(self, rec: RecordedRequest, reply: Reply) -> tuple[list[str], str]:
        """The chunks to send and the finish reason, honouring ``max_tokens``."""
        chunks = reply.chunks if reply.chunks is not None else _split(self.default_reply_text(rec))
        finish = reply.finish_reason
        max_tokens = rec.parameters.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens > 0:
            kept: list[str] = []
            used = 0
            for chunk in chunks:
                used += self.text_tokens(chunk)
                if used > max_tokens:
                    finish = "length"
                    break
                kept.append(chunk)
            chunks = kept
        return chunks, finish

    def default_reply_text(self, rec: RecordedRequest) -> str:
        """What the fake "heard": the number and durations of the last turn's audio items."""
        last = len(rec.roles) - 1
        while last >= 0 and rec.roles[last] != "user":
            last -= 1
        audio = [a for a in rec.audio if a.message_index == last]
        durations = ", ".join(f"{a.duration:.2f} s" for a in audio if a.duration is not None)
        text = f"Heard {len(audio)} audio clip(s)"
        text += f": {durations}." if durations else "."
        prompts = [t for role, t in rec.texts if role == "user"]
        if prompts:
            text += f" Prompt: “{prompts[-1]}”."
        history = sum(1 for r in rec.roles if r == "assistant")
        if history:
            text += f" History: {history} earlier repl(ies)."
        return text

    def _usage_native(self, rec: RecordedRequest, out_text: str) -> dict[str, Any]:
        spec = self.models[rec.model or ""]
        audio_tok = sum(audio_tokens(spec, a.duration or 0.0) for a in rec.audio)
        text_tok = sum(self.text_tokens(t) for _, t in rec.texts)
        out_tok = self.text_tokens(out_text)
        if spec.kind is ModelKind.ASR:
            seconds = math.ceil(sum(a.duration or 0.0 for a in rec.audio))
            return {
                "input_tokens_details": {"text_tokens": text_tok},
                "output_tokens_details": {"text_tokens": out_tok},
                "seconds": seconds,
            }
        if spec.kind is ModelKind.CAPTION:
            return {
                "input_tokens_details": {"audio_tokens": audio_tok, "text_tokens": text_tok},
                "total_tokens": audio_tok + text_tok + out_tok,
                "output_tokens": out_tok,
                "input_tokens": audio_tok + text_tok,
                "output_tokens_details": {"text_tokens": out_tok},
            }
        return {"audio_tokens": audio_tok, "output_tokens": out_tok, "input_tokens": text_tok}

    def _usage_compat(
        self, rec: RecordedRequest, out_text: str, speech_seconds: float = 0.0
    ) -> dict[str, Any]:
        spec = self.models[rec.model or ""]
        audio_tok = sum(audio_tokens(spec, a.duration or 0.0) for a in rec.audio)
        text_tok = sum(self.text_tokens(t) for _, t in rec.texts)
        out_tok = self.text_tokens(out_text)
        usage: dict[str, Any] = {
            "prompt_tokens": audio_tok + text_tok,
            "completion_tokens": out_tok,
            "total_tokens": audio_tok + text_tok + out_tok,
            "prompt_tokens_details": {"audio_tokens": audio_tok, "text_tokens": text_tok},
            "completion_tokens_details": {"text_tokens": out_tok},
        }
        if spec.kind is ModelKind.ASR:
            usage["seconds"] = math.ceil(sum(a.duration or 0.0 for a in rec.audio))
        if speech_seconds:
            speech_tok = math.ceil(speech_seconds * SPEECH_TOKENS_PER_SECOND)
            usage["completion_tokens"] = out_tok + speech_tok
            usage["total_tokens"] = audio_tok + text_tok + out_tok + speech_tok
            usage["completion_tokens_details"] = {
                "audio_tokens": speech_tok,
                "text_tokens": out_tok,
            }
        return usage

    def _annotations(self, rec: RecordedRequest, reply: Reply) -> list[dict[str, Any]] | None:
        spec = self.models[rec.model or ""]
        if spec.kind is not ModelKind.ASR and reply.language is None and reply.emotion is None:
            return None
        return [
            {
                "type": "audio_info",
                "language": reply.language or "en",
                "emotion": reply.emotion or "neutral",
            }
        ]

    async def _native_answer(
        self, request: web.Request, rec: RecordedRequest, reply: Reply, request_id: str
    ) -> web.StreamResponse:
        chunks, finish = self._plan(rec, reply)
        full = "".join(chunks)
        usage = reply.usage or self._usage_native(rec, full)
        annotations = self._annotations(rec, reply)
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if not rec.stream:
            if reply.first_token_delay:
                await asyncio.sleep(reply.first_token_delay)
            message: dict[str, Any] = {"role": "assistant", "content": [{"text": full}]}
            if annotations:
                message["annotations"] = annotations
            return _json(
                200,
                {
                    "output": {"choices": [{"finish_reason": finish, "message": message}]},
                    "usage": usage,
                    "request_id": request_id,
                },
                headers=reply.headers,
            )
        incremental = rec.parameters.get("incremental_output") is True
        if reply.cumulative is not None:
            incremental = not reply.cumulative
        headers = {"Content-Type": "text/event-stream;charset=UTF-8", **reply.headers}
        if reply.error is not None:
            headers["x-dashscope-finished"] = "true"  # as observed with in-stream errors
        resp = web.StreamResponse(status=200, headers=headers)
        await resp.prepare(request)
        if reply.first_token_delay:
            await asyncio.sleep(reply.first_token_delay)
        sent = ""
        event_id = 0
        for i, chunk in enumerate(chunks):
            await _held(reply, i)
            if i and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            sent += chunk
            event_id += 1
            message = {"content": [{"text": chunk if incremental else sent}], "role": "assistant"}
            if annotations and i == 0:
                message["annotations"] = annotations
            data = {
                "output": {"choices": [{"message": message, "finish_reason": "null"}]},
                "usage": reply.usage or self._usage_native(rec, sent),
                "request_id": request_id,
            }
            await resp.write(_native_frame(event_id, "result", 200, data))
        if chunks and reply.chunk_delay:
            await asyncio.sleep(reply.chunk_delay)
        if reply.drop:
            _abort(request)
            return resp
        event_id += 1
        if reply.error is not None:
            err = reply.error
            await resp.write(
                _native_frame(
                    event_id,
                    "error",
                    err.status,
                    {"code": err.code, "message": err.message, "request_id": request_id},
                )
            )
            await resp.write_eof()
            return resp
        message = {"content": [{"text": "" if incremental else sent}], "role": "assistant"}
        if annotations and not chunks:
            message["annotations"] = annotations
        data = {
            "output": {"choices": [{"message": message, "finish_reason": finish}]},
            "usage": usage,
            "request_id": request_id,
        }
        await resp.write(_native_frame(event_id, "result", 200, data))
        rec.finished_at = time.monotonic()
        await resp.write_eof()
        return resp

    async def _compat_answer(
        self, request: web.Request, rec: RecordedRequest, reply: Reply, request_id: str
    ) -> web.StreamResponse:
        chunks, finish = self._plan(rec, reply)
        full = "".join(chunks)
        speech = b""
        if rec.wants_speech:
            seconds = reply.speech_seconds
            if seconds is None:
                seconds = max(0.5, 0.05 * len(full))
            speech = speech_tone(seconds)
        usage = reply.usage or self._usage_compat(rec, full, len(speech) / (2 * SPEECH_RATE))
        annotations = self._annotations(rec, reply)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        headers = {"x-request-id": request_id, **reply.headers}
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if not rec.stream:
            if reply.first_token_delay:
                await asyncio.sleep(reply.first_token_delay)
            message: dict[str, Any] = {"role": "assistant", "content": full}
            if annotations:
                message["annotations"] = annotations
            return _json(
                200,
                {
                    "choices": [
                        {"message": message, "finish_reason": finish, "index": 0, "logprobs": None}
                    ],
                    "object": "chat.completion",
                    "usage": usage,
                    "created": created,
                    "system_fingerprint": None,
                    "model": rec.model,
                    "id": completion_id,
                },
                headers=headers,
            )
        include_usage = bool((rec.body.get("stream_options") or {}).get("include_usage"))

        def frame(
            choices: list[dict[str, Any]], chunk_usage: dict[str, Any] | None = None
        ) -> bytes:
            obj = {
                "model": rec.model,
                "id": completion_id,
                "created": created,
                "object": "chat.completion.chunk",
                "usage": chunk_usage,
                "choices": choices,
            }
            return b"data: " + _dumps(obj) + b"\n\n"

        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream;charset=UTF-8", **headers}
        )
        await resp.prepare(request)
        if reply.first_token_delay:
            await asyncio.sleep(reply.first_token_delay)
        await resp.write(
            frame([{"logprobs": None, "index": 0, "delta": {"content": "", "role": "assistant"}}])
        )
        sent = ""
        audio_id = f"audio_{uuid.uuid4()}"

        def speech_choice(piece: bytes, transcript: str) -> dict[str, Any]:
            audio: dict[str, Any] = {
                "data": base64.b64encode(piece).decode("ascii"),
                "expires_at": created + 3600,
                "id": audio_id,
            }
            if reply.speech_transcript:
                audio["transcript"] = transcript
            rec.speech += piece
            return {"delta": {"audio": audio}, "finish_reason": None, "index": 0, "logprobs": None}

        pieces = _speech_pieces(speech, reply.speech_chunk_seconds, max(1, len(chunks)))
        for i, chunk in enumerate(chunks):
            await _held(reply, i)
            if i and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            sent += chunk
            delta: dict[str, Any] = {"content": sent if reply.cumulative else chunk, "role": None}
            if annotations and i == 0:
                delta["annotations"] = annotations
            await resp.write(frame([{"delta": delta, "index": 0}]))
            # Speech follows the text it speaks, in several chunks (the doc's shape).
            for piece in pieces[i] if i < len(pieces) else []:
                await resp.write(frame([speech_choice(piece, chunk)]))
        for group in pieces[len(chunks) :]:  # a reply with no text still speaks
            for piece in group:
                await resp.write(frame([speech_choice(piece, "")]))
        if chunks and reply.chunk_delay:
            await asyncio.sleep(reply.chunk_delay)
        if reply.drop:
            _abort(request)
            return resp
        if reply.error is not None:
            err = reply.error
            # [UNVERIFIED] upstream: the compat shape of an in-stream error. The fake sends
            # the compat error object as a data line and ends without [DONE].
            body = {
                "error": {
                    "message": err.message,
                    "type": "invalid_request_error" if err.status < 500 else "server_error",
                    "param": None,
                    "code": _COMPAT_CODES.get(err.code, err.code),
                },
                "request_id": request_id,
            }
            await resp.write(b"data: " + _dumps(body) + b"\n\n")
            await resp.write_eof()
            return resp
        await resp.write(frame([{"delta": {"role": None}, "index": 0, "finish_reason": finish}]))
        if include_usage:
            await resp.write(frame([], usage))
        await resp.write(b"data: [DONE]\n\n")
        rec.finished_at = time.monotonic()
        await resp.write_eof()
        return resp


# --- request parsing ----------------------------------------------------------------------


def _messages(body: dict[str, Any], native: bool) -> list[tuple[str, list[tuple[str, str]]]]:
    """``[(role, [(kind, value), …]), …]`` with kind ``text`` or ``audio``."""
    if native:
        inp = body.get("input")
        raw = inp.get("messages") if isinstance(inp, dict) else None
    else:
        raw = body.get("messages")
    if not isinstance(raw, list):
        return []
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for message in raw:
        if not isinstance(message, dict):
            raise _Rejected(400, "InvalidParameter", "Each message must be an object.")
        role = message.get("role")
        if role not in ("system", "user", "assistant"):
            raise _Rejected(400, "InvalidParameter", f"Invalid role: {role!r}.")
        content = message.get("content")
        items: list[tuple[str, str]] = []
        if isinstance(content, str):
            items.append(("text", content))
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    raise _Rejected(400, "InvalidParameter", "Content items must be objects.")
                if native:
                    if "audio" in part:
                        items.append(("audio", str(part["audio"])))
                    elif "text" in part:
                        items.append(("text", str(part["text"])))
                    else:
                        raise _Rejected(
                            400, "InvalidParameter", f"Unsupported content item: {sorted(part)}."
                        )
                else:
                    kind = part.get("type")
                    if kind == "text":
                        items.append(("text", str(part.get("text", ""))))
                    elif kind == "input_audio":
                        audio = part.get("input_audio")
                        data = audio.get("data") if isinstance(audio, dict) else None
                        if not isinstance(data, str):
                            raise _Rejected(
                                400, "InvalidParameter", "input_audio.data is required."
                            )
                        items.append(("audio", data))
                    else:
                        raise _Rejected(
                            400, "InvalidParameter", f"Unsupported content type: {kind!r}."
                        )
        else:
            raise _Rejected(400, "InvalidParameter", "Message content is missing.")
        out.append((role, items))
    return out


async def _audio_item(index: int, role: str, value: str, *, oss_ok: bool) -> AudioItem:
    if value.startswith("oss://"):
        if not oss_ok:
            raise _Rejected(
                400, "InvalidParameter", "The provided URL does not appear to be valid."
            )
        return AudioItem(
            message_index=index, role=role, encoded_size=0, size=None, mime=None, duration=None
        )
    if not value.startswith("data:"):
        # The fake cannot fetch http(s) URLs; tests send data URLs as the bot does.
        raise _Rejected(400, "InvalidURL", "The fake accepts only data: URLs for audio.")
    header, sep, payload = value.partition(",")
    if not sep or not header.endswith(";base64"):
        raise _Rejected(400, "InvalidParameter", "The audio data URL must be base64 encoded.")
    if len(payload) > MAX_ENCODED_AUDIO_BYTES:
        raise _Rejected(
            400,
            "InvalidParameter",
            f"Exceeded limit on max bytes per data-uri item : {MAX_ENCODED_AUDIO_BYTES}",
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _Rejected(400, "InvalidParameter", "The audio data is not valid base64.") from None
    mime = header[len("data:") : -len(";base64")] or None
    probe = await asyncio.to_thread(_decode, data)
    if probe is None:
        raise _Rejected(
            400, "InvalidParameter", "The audio format is illegal and cannot be opened."
        )
    duration, codec, rate = probe
    return AudioItem(
        message_index=index,
        role=role,
        encoded_size=len(payload),
        size=len(data),
        mime=mime,
        duration=duration,
        codec=codec,
        sample_rate=rate,
    )


def _decode(data: bytes) -> tuple[float, str, int] | None:
    """(seconds, codec, sample rate) of the first audio stream, by decoding every frame."""
    if not data:
        return None
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            samples = 0
            rate = 0
            for frame in container.decode(stream):
                samples += frame.samples
                rate = frame.sample_rate or rate
            if not rate or not samples:
                return None
            return samples / rate, stream.codec_context.name, rate
    except (av.FFmpegError, ValueError, OSError):
        return None


def _check_omni_options(spec: ModelSpec, rec: RecordedRequest) -> None:
    """Qwen-Omni's request rules (omni-tts-facts.md): streaming only, ``modalities`` and
    ``audio`` as documented, a voice of the model's own."""
    body = rec.body
    if not rec.stream:
        # The doc: "stream参数必须设置为True，否则会报错"; the body is DashScope's generic
        # stream-only answer (UNVERIFIED for Omni).
        raise _Rejected(
            400,
            "InvalidParameter",
            "This model only support stream mode, please enable the stream parameter to "
            "access the model. ",
        )
    modalities = body.get("modalities", ["text"])
    if modalities not in (["text"], ["text", "audio"]):
        raise _Rejected(400, "InvalidParameter", f"Invalid modalities: {modalities!r}.")
    audio = body.get("audio")
    if "audio" in modalities:
        if not spec.speech_output:
            raise _Rejected(400, "InvalidParameter", f"{spec.name} does not output audio.")
        if not isinstance(audio, dict) or audio.get("format") != "wav":
            raise _Rejected(400, "InvalidParameter", 'audio.format must be "wav".')
        if audio.get("voice") not in spec.voices:
            # The text seen through a proxy for an unknown voice (UNVERIFIED upstream).
            raise _Rejected(
                400, "InvalidParameter", f"Voice '{audio.get('voice')}' is not supported"
            )
    elif audio is not None:
        raise _Rejected(400, "InvalidParameter", "audio is only allowed with audio output.")


def _check_omni_messages(
    spec: ModelSpec, rec: RecordedRequest, messages: list[tuple[str, list[tuple[str, str]]]]
) -> None:
    for index, (role, items) in enumerate(messages):
        kinds = [kind for kind, _ in items]
        if role == "assistant" and any(kind != "text" for kind in kinds):
            raise _Rejected(400, "InvalidParameter", "Assistant messages may contain text only.")
        limit = spec.clips_per_message
        if limit is not None and kinds.count("audio") > limit:
            # "A user message's content may hold text + one other modality"; the error
            # text is UNVERIFIED.
            raise _Rejected(
                400,
                "InvalidParameter",
                f"Message {index} contains {kinds.count('audio')} audio items; "
                f"at most {limit} is supported.",
            )
    if rec.wants_speech and not spec.system_with_speech and rec.roles.count("system"):
        raise _Rejected(
            400, "InvalidParameter", "System message is not supported with audio output."
        )


def _check_model_rules(
    spec: ModelSpec, rec: RecordedRequest, messages: list[tuple[str, list[tuple[str, str]]]]
) -> None:
    if spec.protocol == "compatible":
        _check_omni_messages(spec, rec, messages)
    roles = [role for role, _ in messages]
    if roles[-1] != "user":
        raise _Rejected(400, "InvalidParameter", "The last message must be from the user.")
    if "system" in roles and not spec.accepts_system:
        raise _Rejected(
            400, "InvalidParameter", f"The model {spec.name} does not accept a system message."
        )
    if not spec.multi_turn and ("assistant" in roles or roles.count("user") > 1):
        raise _Rejected(
            400, "InvalidParameter", f"The model {spec.name} supports single-turn input only."
        )
    if spec.kind is ModelKind.CAPTION and any(role == "user" for role, _ in rec.texts):
        raise _Rejected(
            400, "InvalidParameter", f"The model {spec.name} does not accept text input."
        )
    last = len(messages) - 1
    clips = [a for a in rec.audio if a.message_index == last]
    if spec.kind in (ModelKind.ASR, ModelKind.CAPTION) and not clips:
        raise _Rejected(400, "InvalidParameter", f"The model {spec.name} requires audio input.")
    if spec.max_clips is not None and len(rec.audio) > spec.max_clips:
        raise _Rejected(
            400,
            "InvalidParameter",
            f"The model {spec.name} accepts at most {spec.max_clips} audio item(s).",
        )
    if not any(items for _, items in messages[-1:]):
        raise _Rejected(
            400, "BadRequest.EmptyInput", "Required input parameter missing from request."
        )
    if spec.max_recording_seconds is not None:
        for item in rec.audio:
            if item.duration is not None and item.duration > spec.max_recording_seconds + 0.5:
                raise _Rejected(
                    400,
                    "InvalidParameter",
                    f"The audio is too long: at most {spec.max_recording_seconds:g} s"
                    f" for {spec.name}.",
                )


# --- response helpers ---------------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json(status: int, obj: Any, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=_dumps(obj),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _native_frame(event_id: int, event: str, status: int, data: Any) -> bytes:
    # Byte-exact native framing: no space after the colons, one JSON line, blank line.
    return (
        f"id:{event_id}\nevent:{event}\n:HTTP_STATUS/{status}\ndata:".encode()
        + _dumps(data)
        + b"\n\n"
    )


def _error_response(
    protocol: str, status: int, code: str, message: str, request_id: str
) -> web.Response:
    if protocol == "native":
        return _json(status, {"code": code, "message": message, "request_id": request_id})
    body = {
        "error": {
            "message": message,
            "type": "invalid_request_error" if status < 500 else "server_error",
            "param": None,
            "code": _COMPAT_CODES.get(code, code),
        },
        "request_id": request_id,
    }
    return _json(status, body, headers={"x-request-id": request_id})


def _wav(pcm: bytes) -> bytes:
    """``pcm`` (s16le mono 24 kHz) as a WAV file, as the TTS's URL serves it."""
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SPEECH_RATE)
        wav.writeframes(pcm)
    return out.getvalue()


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _speech_pieces(speech: bytes, chunk_seconds: float, groups: int) -> list[list[bytes]]:
    """``speech`` in chunks of ``chunk_seconds``, spread over ``groups`` text chunks."""
    step = max(2, 2 * round(chunk_seconds * SPEECH_RATE))
    pieces = [speech[i : i + step] for i in range(0, len(speech), step)]
    per = max(1, math.ceil(len(pieces) / groups))
    return [pieces[i : i + per] for i in range(0, len(pieces), per)] if pieces else []


def _split(text: str, size: int = 3) -> list[str]:
    """Split into chunks of a few words, keeping the spaces, as a model streams."""
    words = text.split(" ")
    chunks = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [c + (" " if i < len(chunks) - 1 else "") for i, c in enumerate(chunks)]


# --- pytest fixture and command line ------------------------------------------------------


@pytest.fixture
def dashscope_fake() -> Iterator[FakeDashScope]:
    """A running :class:`FakeDashScope` on 127.0.0.1 with a free port (one per test)."""
    fake = FakeDashScope()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.fakes.dashscope --port N``: serve until interrupted."""
    parser = argparse.ArgumentParser(
        description="Fake DashScope server (native + OpenAI-compatible)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    args = parser.parse_args(argv)
    fake = FakeDashScope(api_key=args.api_key, host=args.host, port=args.port)
    print(f"fake DashScope on {fake.url}")
    print(f"  DASHSCOPE_BASE_URL={fake.native_base_url}")
    print(f"  DASHSCOPE_COMPATIBLE_BASE_URL={fake.compatible_base_url}")
    print(f"  DASHSCOPE_API_KEY={fake.api_key}")
    web.run_app(fake.app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
