"""Opening a streamed DashScope request: the one place that waits for the first byte of a
successful answer and maps httpx's failures into :class:`~bot.errors.ModelError`.

The chat client (:mod:`bot.llm.client`) and the TTS client (:mod:`bot.llm.tts`) both
call :func:`open_stream`: until the request is on the wire the budget allows for connecting
and uploading; once it is sent, the time-to-first-byte clock starts (reset from httpcore's
trace). A non-2xx answer is read whole and raised as the service's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bot import errors
from bot.llm.errors import error_from_body, parse_retry_after

#: Builds the request, given the httpx ``extensions`` to pass (the first-byte clock).
BuildRequest = Callable[[dict[str, Any]], httpx.Request]


@dataclass(slots=True)
class OpenStream:
    """A successful answer whose body is being read: its first non-empty chunk is in."""

    response: httpx.Response
    chunks: AsyncIterator[bytes]
    first: bytes


async def open_stream(
    http: httpx.AsyncClient,
    build: BuildRequest,
    *,
    connect_timeout: float,
    first_byte_timeout: float,
    what: str = "answer",
) -> OpenStream:
    """Send the request and wait for the first byte of a successful answer; raises
    :class:`~bot.errors.ModelError` subclasses (``what`` names the answer in messages)."""
    loop = asyncio.get_running_loop()
    response: httpx.Response | None = None
    try:
        async with asyncio.timeout(loop.time() + connect_timeout + first_byte_timeout) as deadline:
            request = build({"trace": _first_byte_clock(deadline, loop, first_byte_timeout)})
            response = await http.send(request, stream=True)
            if not response.is_success:
                payload = await response.aread()
                await response.aclose()
                raise error_from_body(
                    payload,
                    status=response.status_code,
                    headers=response.headers,
                    retry_after=parse_retry_after(response.headers),
                )
            chunks = response.aiter_raw()
            first: bytes | None = b""
            while first == b"":
                first = await anext(chunks, None)
            return OpenStream(response=response, chunks=chunks, first=first or b"")
    except TimeoutError:
        if response is not None:
            await response.aclose()
        raise errors.ModelTimeout(
            f"no {what} within {first_byte_timeout} s", code="FirstByteTimeout"
        ) from None
    except httpx.ConnectTimeout as exc:
        raise errors.ModelTimeout("connect timeout", code="ConnectTimeout") from exc
    except httpx.TimeoutException as exc:
        raise errors.ModelTimeout(f"timeout: {type(exc).__name__}") from exc
    except (httpx.TransportError, httpx.StreamError) as exc:
        if response is not None:
            await response.aclose()
        raise errors.ModelConnectionLost(
            f"connection failed: {type(exc).__name__}", code="ConnectionError"
        ) from exc


def _first_byte_clock(
    deadline: asyncio.Timeout, loop: asyncio.AbstractEventLoop, first_byte_timeout: float
) -> Callable[[str, dict[str, Any]], Any]:
    async def trace(name: str, info: dict[str, Any]) -> None:
        del info
        if name.endswith("send_request_body.complete"):
            deadline.reschedule(loop.time() + first_byte_timeout)

    return trace
