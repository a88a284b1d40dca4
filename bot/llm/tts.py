"""Qwen TTS over DashScope's native API: :class:`DashScopeTTS` speaks a reply's text.

``POST {base}/services/aigc/multimodal-generation/generation`` with
``{"model","input":{"text","voice","language_type"}}`` and ``X-DashScope-SSE: enable``
(``reference/omni-tts-facts.md`` §2): the answer is SSE chunks whose
``output.audio.data`` is base64 PCM (s16le, mono, the model's sample rate, no header),
the last one with ``output.finish_reason == "stop"``. A stream that ends with only an
``output.audio.url`` (the non-stream shape) is fetched from that URL, without the API key:
the key goes to the configured DashScope base URL only (the URL is pre-signed storage).

Retries follow the chat client's policy (:class:`bot.llm.retry.RetryPolicy`): only before
the first byte, only for rate limits, 5xx and connection errors. Errors are the
:class:`bot.errors.ModelError` tree (:mod:`bot.llm.errors`). Nothing here logs the key,
the text or the audio.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import wave
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
import structlog

from bot import errors
from bot.catalog import get_tts_model
from bot.llm import native
from bot.llm.client import DEFAULT_BASE_URL
from bot.llm.errors import (
    map_error,
    request_id_from_headers,
    wire_error_from_json,
)
from bot.llm.retry import RetryPolicy, log_retry
from bot.llm.sse import SSEDecoder, SSEEvent
from bot.llm.transport import open_stream

__all__ = ["LANGUAGE_TYPES", "DashScopeTTS"]

log = structlog.get_logger(__name__)

# ``input.language_type`` for a language code (the service's default is Auto; the value
# list is from a gateway doc, UNVERIFIED officially, so only these are ever sent).
LANGUAGE_TYPES = {
    "zh": "Chinese",
    "en": "English",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "es": "Spanish",
    "ja": "Japanese",
    "ko": "Korean",
    "fr": "French",
    "ru": "Russian",
}


class DashScopeTTS:
    """Async Qwen TTS client; implements :class:`bot.llm.types.SpeechSynthesizer`.

    One instance per process; it owns (or borrows, if ``http_client`` is given) a pooled
    ``httpx.AsyncClient`` that never follows redirects (the key stays on this host).
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        connect_timeout: float = 10.0,
        first_byte_timeout: float = 30.0,
        idle_timeout: float = 30.0,
        max_retries: int = 3,
        http_client: httpx.AsyncClient | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_retry_after: float = 30.0,
    ) -> None:
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.first_byte_timeout = first_byte_timeout
        self.idle_timeout = idle_timeout
        self._retry = RetryPolicy(
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=connect_timeout, read=None, write=first_byte_timeout, pool=connect_timeout
            ),
            follow_redirects=False,
        )

    def __repr__(self) -> str:  # never show the key
        return f"DashScopeTTS(base_url={self.base_url!r})"

    @property
    def endpoint(self) -> str:
        return self.base_url + native.PATH

    async def aclose(self) -> None:
        """Close the pooled HTTP client (only if this instance created it)."""
        if self._owns_http:
            await self._http.aclose()

    def body(self, *, model: str, text: str, voice: str, language: str | None) -> dict[str, Any]:
        """The request body (the SDK's ``MultiModalConversation`` TTS shape)."""
        payload: dict[str, Any] = {"text": text, "voice": voice}
        language_type = LANGUAGE_TYPES.get((language or "").split("-")[0].lower())
        if language_type is not None:
            payload["language_type"] = language_type
        return {"model": model, "input": payload}

    async def synthesize(
        self, *, model: str, text: str, voice: str, language: str | None = None
    ) -> AsyncIterator[bytes]:
        """Stream PCM for ``text``. Raises :class:`bot.errors.ModelError` subclasses; a
        text longer than the model's limit is refused before any network call."""
        spec = get_tts_model(model)
        if spec is not None and len(text) > spec.max_chars:
            raise errors.ModelBadRequest(
                f"TTS text of {len(text)} characters, limit {spec.max_chars}",
                code="TextTooLong",
            )
        content = json.dumps(
            self.body(model=model, text=text, voice=voice, language=language),
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        response, chunks, first = await self._open_with_retries(content, model=model)
        request_id = request_id_from_headers(response.headers)
        decoder = SSEDecoder()
        finished = False
        url: str | None = None
        spoken = 0
        try:
            async for raw in self._read(chunks, first, request_id):
                for event in decoder.feed(raw):
                    pcm, done, event_url = _parse(event, response.status_code, request_id)
                    url = event_url or url
                    finished = finished or done
                    if pcm:
                        spoken += len(pcm)
                        yield pcm
                if finished:
                    break
            if not finished:
                for event in decoder.close():
                    pcm, done, event_url = _parse(event, response.status_code, request_id)
                    url = event_url or url
                    finished = finished or done
                    if pcm:
                        spoken += len(pcm)
                        yield pcm
        finally:
            await response.aclose()
        if not finished:
            raise errors.ModelConnectionLost(
                "TTS stream ended before it finished", request_id=request_id
            )
        if not spoken and url:
            # The service answered with a file instead of chunks: fetch it (no key).
            pcm = await self._download(url, request_id)
            spoken = len(pcm)
            if pcm:
                yield pcm
        log.info("tts_finished", model=model, request_id=request_id, pcm_bytes=spoken)

    # --- opening, with retries -----------------------------------------------------------

    async def _open_with_retries(
        self, content: bytes, *, model: str
    ) -> tuple[httpx.Response, AsyncIterator[bytes], bytes]:
        async for attempt in self._retry.attempts(before_sleep=log_retry("tts_retry", model=model)):
            with attempt:
                return await self._open(content)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _open(self, content: bytes) -> tuple[httpx.Response, AsyncIterator[bytes], bytes]:
        opened = await open_stream(
            self._http,
            lambda extensions: self._http.build_request(
                "POST",
                self.endpoint,
                content=content,
                headers=native.headers(api_key=self._api_key, stream=True),
                extensions=extensions,
            ),
            connect_timeout=self.connect_timeout,
            first_byte_timeout=self.first_byte_timeout,
            what="TTS answer",
        )
        return opened.response, opened.chunks, opened.first

    async def _read(
        self, chunks: AsyncIterator[bytes], first: bytes, request_id: str | None
    ) -> AsyncGenerator[bytes, None]:
        """The body's raw chunks, each within the idle timeout of the previous one."""
        if first:
            yield first
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    raw = await anext(chunks, None)
            except TimeoutError:
                raise errors.ModelTimeout(
                    f"no TTS data for {self.idle_timeout} s",
                    code="IdleTimeout",
                    request_id=request_id,
                ) from None
            except (httpx.TransportError, httpx.StreamError) as exc:
                raise errors.ModelConnectionLost(
                    f"TTS connection lost: {type(exc).__name__}",
                    code="ConnectionLost",
                    request_id=request_id,
                ) from exc
            if raw is None:
                return
            if raw:
                yield raw

    async def _download(self, url: str, request_id: str | None) -> bytes:
        """The PCM of a WAV file at ``url`` (fetched without any credential)."""
        try:
            async with asyncio.timeout(self.connect_timeout + self.first_byte_timeout):
                response = await self._http.get(url)
        except (TimeoutError, httpx.HTTPError) as exc:
            raise errors.ModelConnectionLost(
                f"TTS audio download failed: {type(exc).__name__}", request_id=request_id
            ) from exc
        if not response.is_success:
            raise errors.ModelServerError(
                f"TTS audio download: HTTP {response.status_code}",
                status=response.status_code,
                request_id=request_id,
            )
        return _wav_pcm(response.content, request_id)


def _parse(
    event: SSEEvent, http_status: int, request_id: str | None
) -> tuple[bytes, bool, str | None]:
    """One event: (its PCM, whether it is the last, an audio URL if it gave one)."""
    try:
        obj: Any = json.loads(event.data)
    except ValueError:
        if event.is_error:
            raise map_error(
                status=event.status or http_status,
                code=None,
                message=None,
                request_id=request_id,
                detail="TTS error event",
            ) from None
        return b"", False, None  # keep-alives carry nothing
    output = obj.get("output") if isinstance(obj, dict) else None
    if event.is_error or not isinstance(output, dict):
        wire = wire_error_from_json(obj)
        if wire is not None or event.is_error:
            raise map_error(
                status=event.status or http_status,
                code=wire.code if wire else None,
                message=wire.message if wire else None,
                request_id=(wire.request_id if wire else None) or request_id,
                detail="TTS error in stream",
            )
        return b"", False, None
    audio = output.get("audio")
    pcm = b""
    url: str | None = None
    if isinstance(audio, dict):
        data = audio.get("data")
        if isinstance(data, str) and data:
            try:
                pcm = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise errors.ModelServerError(
                    "TTS chunk is not base64", code="BadAudio", request_id=request_id
                ) from None
        if isinstance(audio.get("url"), str) and audio["url"]:
            url = audio["url"]
    return pcm, output.get("finish_reason") == "stop", url


def _wav_pcm(data: bytes, request_id: str | None) -> bytes:
    try:
        with wave.open(io.BytesIO(data)) as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise errors.ModelServerError(
                    "TTS audio is not 16-bit mono", code="BadAudio", request_id=request_id
                )
            frames: bytes = wav.readframes(wav.getnframes())
            return frames
    except (wave.Error, EOFError) as exc:
        raise errors.ModelServerError(
            "TTS audio is not WAV", code="BadAudio", request_id=request_id
        ) from exc
