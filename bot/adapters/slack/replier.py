"""The Slack :class:`~bot.engine.ports.ReplySink`: native streaming, with a classic fallback.

In a thread the reply is streamed with ``chat.startStream``/``appendStream``/``stopStream``
(through slack-sdk's ``chat_stream`` helper). Where there is no thread (a top-level DM
message), or the streaming API is unavailable or fails, the reply is posted with
``chat.postMessage`` and edited with ``chat.update``.

Platform calls never run inside :meth:`SlackReplier.update`: a background flusher sends the
newest text at most once per ``interval``, so a slow or rate-limited Slack slows the
updates, never the model. A ``ratelimited`` answer pauses updates for ``Retry-After``
seconds; the final text always waits its turn and is sent. A message ends before
``limit`` characters and the reply continues in a new message in the same place.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import texts
from bot.adapters.slack.commands import PREFIX
from bot.adapters.slack.markup import split_point, to_mrkdwn
from bot.engine import presenters
from bot.engine.ports import FinalReply
from bot.errors import BotError
from bot.metrics import Metrics

log = structlog.get_logger(__name__)

# Slack shows about 4,000 characters of a message well (chat.postMessage docs: "limit the
# number of characters in the text field to 4,000"); streams take 12,000 per call. Staying
# under the smaller figure keeps every message readable and every call valid.
MESSAGE_LIMIT = 3_900
FINAL_ATTEMPTS = 4
_SlackErrors = (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError)


def retry_after(exc: BaseException) -> float | None:
    """Seconds Slack asked us to wait, if ``exc`` is a ``ratelimited`` answer."""
    if not isinstance(exc, SlackApiError):
        return None
    if exc.response.status_code != 429 and exc.response.get("error") != "ratelimited":
        return None
    headers = {k.lower(): v for k, v in (exc.response.headers or {}).items()}
    value = headers.get("retry-after", 1)
    if isinstance(value, list):
        value = value[0]
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 1.0


def error_code(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or "api_error")
    return type(exc).__name__


class SlackReplier:
    """Streams one reply into a channel, thread or DM (one instance per turn)."""

    def __init__(
        self,
        *,
        client: Any,
        channel: str,
        thread_ts: str | None,
        recipient_team_id: str | None,
        recipient_user_id: str | None,
        status: str | None = None,
        metrics: Metrics | None = None,
        native_stream: bool = True,
        interval: float = 1.0,
        limit: int = MESSAGE_LIMIT,
    ) -> None:
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self._team_id = recipient_team_id
        self._user_id = recipient_user_id
        self._status = status
        self._metrics = metrics
        self._interval = interval
        self._limit = limit
        # The streaming methods only post thread replies.
        self._streaming = native_stream and thread_ts is not None
        self._text = ""  # the whole reply so far
        self._seg_start = 0  # where the current message begins in _text
        self._stream: Any = None  # AsyncChatStream of the current message
        self._shown = ""  # the current message's text as Slack has it
        self._ts: str | None = None  # the current classic message
        self._ids: list[str] = []
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._paused_until = 0.0

    @property
    def message_ids(self) -> list[str]:
        return list(self._ids)

    # --- ReplySink ---------------------------------------------------------------------

    async def start(self) -> None:
        """Show the thread status ("is listening…"), where Slack offers one."""
        if self._status and self._thread_ts:
            await self.set_status(self._status)

    async def set_status(self, status: str) -> None:
        """``assistant.threads.setStatus``; only assistant threads have it, so failures pass."""
        if not self._thread_ts:
            return
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=self._channel, thread_ts=self._thread_ts, status=status
            )
        except _SlackErrors as exc:
            log.info("slack.status.unavailable", error=error_code(exc))

    async def update(self, text: str, delta: str) -> None:
        del delta  # the whole text is what Slack needs
        self._text = text
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="slack-reply-flusher")
        self._wake.set()

    async def finish(self, reply: FinalReply) -> list[str]:
        await self._stop_flusher()
        body = reply.text
        if self._text and self._text.strip() == body.strip():
            body = self._text  # keep exactly what was streamed, so the end only appends
        final = body.rstrip() + "".join(f"\n\n_{note}_" for note in reply.notes)
        if not final.strip():
            final = texts.SLACK_EMPTY_REPLY
        async with self._lock:
            self._text = final
            try:
                await self._sync(final=True)
            except _SlackErrors as exc:
                self._platform_error(exc, "finish")
        return self.message_ids

    async def fail(self, error: BotError, partial_text: str) -> list[str]:
        await self._stop_flusher()
        async with self._lock:
            shown = self._text or partial_text
            if shown.strip():
                self._text = shown
                try:
                    await self._sync(final=True)
                except _SlackErrors as exc:
                    self._platform_error(exc, "fail")
            # Shared texts name Telegram-style commands ("/model"); Slack's are "/voicebot …".
            await self._post_final(presenters.with_command_prefix(error.user_message, PREFIX))
        return self.message_ids

    # --- flushing ----------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        next_at = 0.0
        while not self._closing.is_set():
            await self._wake.wait()
            self._wake.clear()
            delay = max(next_at, self._paused_until) - time.monotonic()
            if delay > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
            if self._closing.is_set():
                return
            async with self._lock:
                try:
                    await self._sync(final=False)
                except Exception as exc:  # never kill the turn over a progress update
                    self._platform_error(exc, "update")
            next_at = time.monotonic() + self._interval

    async def _stop_flusher(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._flusher is not None:
            # An update in flight finishes (it may be waiting out a Retry-After).
            with contextlib.suppress(Exception):
                await self._flusher

    async def _sync(self, *, final: bool) -> None:
        """Bring Slack up to date with ``_text``, starting new messages past ``limit``."""
        text = self._text
        while True:
            seg = text[self._seg_start :]
            if len(seg) > self._limit:
                cut = split_point(seg, self._limit)
                await self._write(seg[:cut].rstrip(), final=True)
                self._next_message()
                self._seg_start += cut
                while self._seg_start < len(text) and text[self._seg_start].isspace():
                    self._seg_start += 1
                continue
            if seg.strip():
                await self._write(seg, final=final)
            return

    def _next_message(self) -> None:
        self._stream = None
        self._shown = ""
        self._ts = None

    async def _write(self, content: str, *, final: bool) -> None:
        if self._streaming:
            try:
                await self._call(lambda: self._write_stream(content, final=final), final=final)
                return
            except _SlackErrors as exc:
                if retry_after(exc) is not None and not final:
                    return  # still rate-limited: the next update carries this text too
                self._platform_error(exc, "stream")
                await self._abandon_stream()
        await self._call(lambda: self._write_classic(content), final=final)

    async def _call(self, send: Callable[[], Awaitable[None]], *, final: bool) -> None:
        """Run ``send``; on ``ratelimited`` pause updates, and for the final text wait and retry."""
        for attempt in range(FINAL_ATTEMPTS):
            try:
                await send()
                return
            except _SlackErrors as exc:
                wait = retry_after(exc)
                if wait is None:
                    raise
                self._paused_until = time.monotonic() + wait
                if not final or attempt == FINAL_ATTEMPTS - 1:
                    raise
                log.info("slack.reply.rate_limited", retry_after=wait)
                await asyncio.sleep(wait)

    async def _write_stream(self, content: str, *, final: bool) -> None:
        if self._stream is None:
            # buffer_size=1: this class does its own coalescing (by time, not size), so
            # every append is one Slack call.
            self._stream = await self._client.chat_stream(
                channel=self._channel,
                thread_ts=self._thread_ts,
                recipient_team_id=self._team_id,
                recipient_user_id=self._user_id,
                buffer_size=1,
            )
            self._shown = ""
        if not content.startswith(self._shown):
            # The text was rewritten (not only extended): a stream can only append.
            await self._stream.stop()
            self._remember(self._stream.ts)
            self._ts = self._stream.ts
            self._streaming = False
            await self._write_classic(content)
            return
        new = content[len(self._shown) :]
        if final:
            await self._stream.stop(markdown_text=new or None)
        elif new:
            await self._stream.append(markdown_text=new)
        self._shown = content
        self._remember(self._stream.ts)

    async def _abandon_stream(self) -> None:
        """Stop using the streaming API; continue the current message with chat.update."""
        self._streaming = False
        ts = self._stream.ts if self._stream is not None else None
        self._stream = None
        if ts:
            with contextlib.suppress(*_SlackErrors):
                await self._client.chat_stopStream(channel=self._channel, ts=ts)
            self._ts = ts

    async def _write_classic(self, content: str) -> None:
        text = to_mrkdwn(content)
        if self._ts is not None:
            if text == self._shown:
                return
            try:
                await self._client.chat_update(channel=self._channel, ts=self._ts, text=text)
                self._shown = text
                return
            except SlackApiError as exc:
                if retry_after(exc) is not None:
                    raise
                # The message cannot be edited (a stream that broke, msg_too_long, ...):
                # carry on in a fresh one rather than lose the text.
                self._platform_error(exc, "update")
        resp = await self._client.chat_postMessage(
            channel=self._channel, thread_ts=self._thread_ts, text=text
        )
        self._ts = str(resp["ts"])
        self._remember(self._ts)
        self._shown = text

    async def _post_final(self, text: str) -> None:
        """A message of its own in the thread (error replies)."""

        async def post() -> None:
            resp = await self._client.chat_postMessage(
                channel=self._channel, thread_ts=self._thread_ts, text=text
            )
            self._remember(str(resp["ts"]))

        try:
            await self._call(post, final=True)
        except _SlackErrors as exc:
            self._platform_error(exc, "post")

    def _remember(self, ts: str | None) -> None:
        if ts and ts not in self._ids:
            self._ids.append(ts)

    def _platform_error(self, exc: BaseException, action: str) -> None:
        code = error_code(exc)
        log.warning("slack.reply.error", action=action, error=code)
        if self._metrics is not None:
            self._metrics.platform_errors.labels(platform="slack", error=code).inc()
