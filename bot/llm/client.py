"""The DashScope model client: one pooled ``httpx.AsyncClient``, both wire protocols.

:class:`DashScopeClient` implements :class:`bot.llm.types.ModelClient`. A model the catalog
serves on one protocol only (Qwen-Omni: OpenAI-compatible) is always called on that one,
whatever ``DASHSCOPE_PROTOCOL`` says. With ``GenerationParams.voice`` set, a model with
``speech_output`` also speaks: the stream then carries :class:`~bot.llm.types.SpeechDelta`
events (PCM) beside the text. It validates audio
sizes before any network call, opens the request with retries (only before the first
byte of an answer, only for rate limits, 5xx and connection errors), then decodes the
stream into typed events with separate time-to-first-byte and idle timeouts.

Nothing here logs the API key, audio bytes or message text.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import structlog

from bot import errors, texts
from bot.catalog import get_model
from bot.i18n import Msg
from bot.llm import compatible, native
from bot.llm.errors import (
    map_error,
    request_id_from_headers,
    wire_error_from_json,
)
from bot.llm.retry import RetryPolicy, log_retry
from bot.llm.sse import SSEDecoder, SSEEvent
from bot.llm.state import StreamState, TextAccumulator
from bot.llm.transport import open_stream
from bot.llm.types import (
    AudioPart,
    ChatMessage,
    Finished,
    GenerationParams,
    StreamEvent,
    Usage,
)
from bot.llm.wire import check_audio_size

__all__ = ["DEFAULT_BASE_URL", "DashScopeClient", "TextAccumulator"]


log = structlog.get_logger(__name__)

DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com/api/v1"

WireProtocol = Literal["native", "openai"]


def derive_compatible_base_url(base_url: str) -> str:
    """``…/api/v1`` → ``…/compatible-mode/v1`` (the same rule as the settings)."""
    base = base_url.rstrip("/")
    if base.endswith("/api/v1"):
        return base[: -len("/api/v1")] + "/compatible-mode/v1"
    return base + "/compatible-mode/v1"


@dataclass(slots=True)
class _Opened:
    response: httpx.Response
    chunks: AsyncIterator[bytes]
    first: bytes
    request_id: str | None
    protocol: WireProtocol


class DashScopeClient:
    """Async client for DashScope's Qwen-Audio models (native SSE or OpenAI-compatible).

    One instance per process: it owns (or borrows, if ``http_client`` is given) a pooled
    ``httpx.AsyncClient``. ``backoff_base``/``backoff_max`` shape the retry delays and
    ``max_retry_after`` is the longest ``Retry-After`` worth waiting for inside one call.
    """

    def __init__(
        self,
        *,
        api_key: str,
        protocol: WireProtocol = "native",
        base_url: str = DEFAULT_BASE_URL,
        compatible_base_url: str | None = None,
        connect_timeout: float = 10.0,
        first_byte_timeout: float = 60.0,
        idle_timeout: float = 60.0,
        max_retries: int = 3,
        http_client: httpx.AsyncClient | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_retry_after: float = 60.0,
    ) -> None:
        if protocol not in ("native", "openai"):
            raise ValueError(f"protocol must be 'native' or 'openai', got {protocol!r}")
        self._api_key = api_key
        self.protocol: WireProtocol = protocol
        self.base_url = base_url.rstrip("/")
        self.compatible_base_url = (
            compatible_base_url or derive_compatible_base_url(self.base_url)
        ).rstrip("/")
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
            timeout=self._httpx_timeout(),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    def __repr__(self) -> str:  # never show the key
        return f"DashScopeClient(protocol={self.protocol!r}, base_url={self._endpoint()!r})"

    # --- public API ------------------------------------------------------------------

    async def stream(
        self, *, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[StreamEvent]:
        """Stream one reply: text deltas, audio info, usage, then :class:`Finished` last.

        With ``params.voice`` set and a model with ``speech_output``, speech comes too:
        :class:`~bot.llm.types.SpeechDelta` events of raw PCM (s16le, mono,
        :data:`~bot.llm.types.SPEECH_SAMPLE_RATE`), interleaved with the text, and the
        usage's ``audio_output_tokens``. Otherwise the request asks for text only.

        Raises a :class:`bot.errors.ModelError` subclass otherwise; after partial text that
        is :class:`~bot.errors.ModelConnectionLost` or :class:`~bot.errors.ModelTimeout`
        (or the service's own mid-stream error), and the caller keeps what it got. A model
        the service does not know (or the key may not use) is
        :class:`~bot.errors.ModelNotFoundError`, whose user message names the model.
        """
        try:
            # aclosing: a caller that stops early closes the request at once, not at GC.
            async with aclosing(self._stream(model=model, messages=messages, params=params)) as it:
                async for event in it:
                    yield event
        except errors.ModelNotFoundError as exc:
            exc.message_text = Msg(texts.MODEL_NOT_FOUND_NAMED, model=model)
            raise

    def protocol_for(self, model: str) -> WireProtocol:
        """The protocol ``model`` is called on: its only one, else ``DASHSCOPE_PROTOCOL``."""
        spec = get_model(model)
        if spec is not None and spec.protocol == "compatible":
            return "openai"
        return self.protocol

    async def _stream(
        self, *, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncGenerator[StreamEvent, None]:
        protocol = self.protocol_for(model)
        body = self._body(
            model=model, messages=messages, params=params, stream=True, protocol=protocol
        )
        opened = await self._open_with_retries(body, stream=True, model=model, protocol=protocol)
        decoder = SSEDecoder()
        state = StreamState(request_id=opened.request_id)
        response = opened.response
        reader = self._read(opened, state)
        try:
            async for raw in reader:
                for event in decoder.feed(raw):
                    for out in self._on_event(event, state, response.status_code, protocol):
                        yield out
                if state.done:
                    break
            if not state.done:
                for event in decoder.close():
                    for out in self._on_event(event, state, response.status_code, protocol):
                        yield out
        finally:
            await reader.aclose()
            await response.aclose()
        if state.finish_reason is None:
            log.warning("model_stream_incomplete", model=model, request_id=state.request_id)
            raise errors.ModelConnectionLost(
                "stream ended before the reply was finished",
                request_id=state.request_id,
                status=response.status_code,
            )
        log.info(
            "model_stream_finished",
            model=model,
            finish_reason=state.finish_reason,
            request_id=state.request_id,
            output_tokens=state.usage.output_tokens if state.usage else None,
            speech_bytes=state.speech_bytes or None,
        )
        yield Finished(
            finish_reason=state.finish_reason,
            request_id=state.request_id,
            usage=state.usage or Usage(),
        )

    async def aclose(self) -> None:
        """Close the pooled HTTP client (only if this instance created it)."""
        if self._owns_http:
            await self._http.aclose()

    # --- request building ------------------------------------------------------------

    def _endpoint(self, protocol: WireProtocol | None = None) -> str:
        if (protocol or self.protocol) == "native":
            return self.base_url + native.PATH
        return self.compatible_base_url + compatible.PATH

    def _body(
        self,
        *,
        model: str,
        messages: list[ChatMessage],
        params: GenerationParams,
        stream: bool,
        protocol: WireProtocol,
    ) -> bytes:
        # The size check runs before anything touches the network.
        for message in messages:
            for part in message.parts:
                if isinstance(part, AudioPart):
                    check_audio_size(part)
        if protocol == "native":
            obj = native.build_body(model=model, messages=messages, params=params, stream=stream)
        else:
            spec = get_model(model)
            speech = params.voice is not None and spec is not None and spec.speech_output
            obj = compatible.build_body(
                model=model,
                messages=messages,
                params=params,
                stream=stream,
                speech=speech,
                system_as_user=speech and spec is not None and not spec.system_with_speech,
            )
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _headers(self, *, stream: bool, protocol: WireProtocol) -> dict[str, str]:
        if protocol == "native":
            return native.headers(api_key=self._api_key, stream=stream)
        return compatible.headers(api_key=self._api_key, stream=stream)

    def _httpx_timeout(self) -> httpx.Timeout:
        # Reads are bounded by our own first-byte and idle deadlines, not httpx's.
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=None,
            write=max(self.first_byte_timeout, self.connect_timeout),
            pool=self.connect_timeout,
        )

    # --- opening, with retries ---------------------------------------------------------

    async def _open_with_retries(
        self, body: bytes, *, stream: bool, model: str, protocol: WireProtocol
    ) -> _Opened:
        async for attempt in self._retry.attempts(
            before_sleep=log_retry("model_retry", model=model)
        ):
            with attempt:
                return await self._open(
                    body,
                    stream=stream,
                    model=model,
                    protocol=protocol,
                    attempt=attempt.retry_state.attempt_number - 1,
                )
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _open(
        self, body: bytes, *, stream: bool, model: str, protocol: WireProtocol, attempt: int
    ) -> _Opened:
        """Send the request and wait for the first byte of a successful answer."""
        url = self._endpoint(protocol)
        log.debug("model_request", model=model, protocol=protocol, stream=stream, attempt=attempt)
        opened = await open_stream(
            self._http,
            lambda extensions: self._http.build_request(
                "POST",
                url,
                content=body,
                headers=self._headers(stream=stream, protocol=protocol),
                timeout=self._httpx_timeout(),
                extensions=extensions,
            ),
            connect_timeout=self.connect_timeout,
            first_byte_timeout=self.first_byte_timeout,
        )
        return _Opened(
            response=opened.response,
            chunks=opened.chunks,
            first=opened.first,
            request_id=request_id_from_headers(opened.response.headers),
            protocol=protocol,
        )

    # --- reading -------------------------------------------------------------------------

    async def _read(self, opened: _Opened, state: StreamState) -> AsyncGenerator[bytes, None]:
        """The body's raw chunks, each within the idle timeout of the previous one."""
        if opened.first:
            yield opened.first
        else:
            return
        while not state.done:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    raw = await anext(opened.chunks, None)
            except TimeoutError:
                if state.finish_reason is not None and opened.protocol == "native":
                    return  # the reply was complete; the server just did not close
                raise errors.ModelTimeout(
                    f"no data for {self.idle_timeout} s",
                    code="IdleTimeout",
                    request_id=state.request_id,
                ) from None
            except (httpx.TransportError, httpx.StreamError) as exc:
                if state.finish_reason is not None and opened.protocol == "native":
                    return  # dropped after the last event: nothing was lost
                raise errors.ModelConnectionLost(
                    f"connection lost mid-stream: {type(exc).__name__}",
                    code="ConnectionLost",
                    request_id=state.request_id,
                    status=opened.response.status_code,
                ) from exc
            if raw is None:
                return
            if raw:
                yield raw

    def _on_event(
        self, event: SSEEvent, state: StreamState, http_status: int, protocol: WireProtocol
    ) -> list[StreamEvent]:
        if protocol == "openai" and event.data.strip() == compatible.DONE:
            state.done = True
            return []
        try:
            obj: Any = json.loads(event.data)
        except ValueError:
            if event.is_error:
                raise map_error(
                    status=event.status or http_status,
                    code=None,
                    message=None,
                    request_id=state.request_id,
                    detail="error event",
                ) from None
            return []  # keep-alives and other non-JSON data carry nothing for us
        wire = wire_error_from_json(obj) if event.is_error or not _has_output(obj) else None
        if wire is not None:
            raise map_error(
                status=event.status or http_status,
                code=wire.code,
                message=wire.message,
                request_id=wire.request_id or state.request_id,
                detail="error in stream",
            )
        parse = native.parse_message if protocol == "native" else compatible.parse_chunk
        chunk = parse(obj)
        return state.apply(chunk)


def _has_output(obj: Any) -> bool:
    return isinstance(obj, dict) and ("output" in obj or "choices" in obj)
