"""The Slack :class:`~bot.delivery.surface.Surface`: native streaming, with a classic fallback.

In a thread the reply is streamed with ``chat.startStream`` / ``appendStream`` /
``stopStream``. Where there is no thread (a top-level DM message), or the streaming API is
unavailable or keeps failing, the reply is posted with ``chat.postMessage`` and edited with
``chat.update``. A message ends before ``limit`` characters and the reply continues in a
new message in the same place.

Idempotent by bookkeeping: the surface remembers what Slack *confirmed* for the current
message (``_shown``), so a retried call appends only what Slack does not have yet — a
rate-limited ``appendStream`` is never applied twice, and a rate-limited ``startStream``
never leaves a second message. If ``startStream`` keeps failing the reply is posted
instead; if ``stopStream`` keeps failing the stream's message is finished with
``chat.update``. The calls go through a client without slack-sdk's retry handlers: the
delivery sink is the one retry layer (it honours ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot import texts
from bot.adapters.slack.commands import blocks
from bot.adapters.slack.markup import escape, split_point
from bot.commands import ButtonRows
from bot.errors import (
    DeliveryError,
    DeliveryRateLimited,
    DeliveryTransient,
    MessageGone,
)
from bot.i18n import tr

log = structlog.get_logger(__name__)

# Slack shows about 4,000 characters of a message well (chat.postMessage docs: "limit the
# number of characters in the text field to 4,000"); streams take 12,000 per call. Staying
# under the smaller figure keeps every message readable and every call valid.
MESSAGE_LIMIT = 3_900
# Failed startStream / stopStream calls on one message before the classic way is taken.
STREAM_GIVE_UP = 3

_TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_GONE_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


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


def classify(exc: BaseException) -> DeliveryError:
    """slack-sdk's / aiohttp's exception as a delivery fault."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, SlackApiError):
        wait = retry_after(exc)
        if wait is not None:
            return DeliveryRateLimited(retry_after=wait, code="ratelimited")
        error = str(exc.response.get("error") or "")
        if exc.response.status_code >= 500 or error in _TRANSIENT_ERRORS:
            return DeliveryTransient(code=error or f"http_{exc.response.status_code}")
        if error in _GONE_ERRORS:
            return MessageGone(code=error)
        return DeliveryError(code=error or "api_error")
    if isinstance(exc, SlackClientError | aiohttp.ClientError | asyncio.TimeoutError):
        return DeliveryTransient(code=type(exc).__name__)
    if isinstance(exc, ConnectionError):
        return DeliveryTransient(code=type(exc).__name__)
    return DeliveryError(code=type(exc).__name__)


class MethodPauses:
    """Honouring ``Retry-After``: after a ``ratelimited`` answer, the method is not called
    again in that channel before then, by any reply (one instance per workspace).

    Slack counts its tiers per method and workspace; pausing per channel as well keeps a
    429 in one busy channel from stalling the others, which get their own 429 (and pause)
    if the workspace is really over its tier.
    """

    def __init__(self) -> None:
        self._until: dict[tuple[str, str], float] = {}

    def pause(self, method: str, channel: str, seconds: float) -> None:
        key = (method, channel)
        self._until[key] = max(self._until.get(key, 0.0), time.monotonic() + seconds)
        if len(self._until) > 10_000:  # forget pauses that are over
            now = time.monotonic()
            self._until = {k: t for k, t in self._until.items() if t > now}

    async def wait(self, method: str, channel: str) -> None:
        delay = self._until.get((method, channel), 0.0) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class SlackSurface:
    """One reply in a channel, thread or DM."""

    keepalive: float | None = None
    indicate_every: float | None = None  # a thread status stays until the reply
    _marked: str | None  # the message showing the buttons
    _followed: tuple[str, list[str]]  # follow(): its text, and the parts Slack confirmed

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str | None,
        recipient_team_id: str | None,
        recipient_user_id: str | None,
        status: str | None = None,  # a msgid of bot.texts, shown in the turn's language
        pauses: MethodPauses | None = None,
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
        self._pauses = pauses or MethodPauses()
        self._native = native_stream
        self.progress_interval = interval
        self.reply_to: str | None = None  # Slack threads have no reply-to
        self._limit = limit
        self._voice_id: str | None = None  # the voice note's file, once Slack confirmed it
        self.forget()

    # --- Surface -----------------------------------------------------------------------

    def ready_in(self) -> float:
        return 0.0

    async def indicate(self) -> None:
        """``assistant.threads.setStatus``; only assistant threads have it, so failures pass."""
        if self._status and self._thread_ts:
            await self.set_status(tr(self._status))

    async def set_status(self, status: str) -> None:
        if not self._thread_ts:
            return
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=self._channel, thread_ts=self._thread_ts, status=status
            )
        except Exception as exc:
            log.info("slack.status.unavailable", error=classify(exc).code)

    async def progress(self, text: str, *, plain: bool) -> None:
        del plain  # Slack renders any Markdown it gets
        await self._sync(text, final=False)

    async def final(self, text: str, *, plain: bool, buttons: ButtonRows = ()) -> list[str]:
        del plain
        # Buttons as Block Kit actions under the last message: appended by stopStream,
        # or beside the text (a markdown block) on chat.postMessage / chat.update.
        await self._sync(text, final=True, actions=blocks("", buttons) if buttons else None)
        return self.message_ids()

    async def follow(self, text: str) -> list[str]:
        """Plain text after the reply, in the same thread (or top-level DM)."""
        if self._followed[0] != text:
            self._followed = (text, [])
        done = self._followed[1]
        parts: list[str] = []
        rest = text
        while rest.strip():
            cut = split_point(rest, self._limit)
            parts.append(rest[:cut])
            rest = rest[cut:]
        for part in parts[len(done) :]:
            resp = await self._api(
                self._client.chat_postMessage,
                channel=self._channel,
                thread_ts=self._thread_ts,
                text=escape(part.strip()),
                mrkdwn=False,  # people's words, shown as said (no *bold* or _italics_)
            )
            done.append(str(resp["ts"]))
        return list(done)

    async def voice(self, ogg: bytes, seconds: float) -> str:
        """The voice note as an audio file in the reply's thread (``files_upload_v2``:
        getUploadURLExternal, the upload, completeUploadExternal with the thread)."""
        del seconds  # Slack reads the duration from the file
        if self._voice_id is None:
            resp = await self._api(
                self._client.files_upload_v2,
                channel=self._channel,
                thread_ts=self._thread_ts,
                file=ogg,
                filename="reply.ogg",
                title=tr(texts.VOICE_NOTE_TITLE),
            )
            file = resp.get("file") or {}
            self._voice_id = str(file.get("id") or "")
        return self._voice_id

    async def notice(self, text: str) -> list[str]:
        """A message of its own in the thread (error replies)."""
        body = text
        resp = await self._api(
            self._client.chat_postMessage,
            channel=self._channel,
            thread_ts=self._thread_ts,
            markdown_text=body,
        )
        ts = str(resp["ts"])
        self._ids.append(ts)
        return [ts]

    def message_ids(self) -> list[str]:
        ids = list(self._ids)
        if self._ts is not None and self._ts not in ids:
            ids.append(self._ts)
        return ids

    def forget(self) -> None:
        self._streaming = self._native and self._thread_ts is not None
        self._ids: list[str] = []  # finished messages of this reply
        self._seg_start = 0  # where the current message begins in the reply's text
        self._ts: str | None = None  # the current message
        self._shown = ""  # what Slack confirmed the current message holds (Markdown)
        self._stream_open = False
        self._by_update = False  # finish the current stream's message with chat.update
        self._start_failures = 0
        self._stop_failures = 0
        self._marked = None
        self._followed = ("", [])

    async def discard(self) -> None:
        await self.remove(self.message_ids())
        self.forget()

    async def remove(self, message_ids: Sequence[str]) -> None:
        for ts in message_ids:
            try:
                await self._api(self._client.chat_delete, channel=self._channel, ts=ts)
            except DeliveryError as exc:
                log.info("slack.reply.delete_failed", error=exc.code)

    # --- writing -----------------------------------------------------------------------

    async def _sync(
        self, text: str, *, final: bool, actions: list[dict[str, Any]] | None = None
    ) -> None:
        """Bring Slack up to date with ``text``, finishing messages at ``limit``; the last
        one of a final text gets ``actions``."""
        while True:
            seg = text[self._seg_start :]
            if len(seg) > self._limit:
                # Never cut before what the message already shows: a stream cannot take
                # text back, and the rest must not be shown twice.
                cut = max(split_point(seg, self._limit), len(self._shown))
                await self._put(seg[:cut], done=True)
                self._next_message()
                self._seg_start += cut
                while self._seg_start < len(text) and text[self._seg_start].isspace():
                    self._seg_start += 1
                continue
            if seg.strip():
                await self._put(seg, done=final, actions=actions if final else None)
            return

    def _next_message(self) -> None:
        if self._ts is not None and self._ts not in self._ids:
            self._ids.append(self._ts)
        self._ts = None
        self._shown = ""
        self._stream_open = False
        self._by_update = False
        self._stop_failures = 0

    async def _put(
        self, content: str, *, done: bool, actions: list[dict[str, Any]] | None = None
    ) -> None:
        if self._streaming and not self._by_update:
            await self._put_stream(content, done=done, actions=actions)
        else:
            await self._put_classic(content, actions=actions)

    async def _put_stream(
        self, content: str, *, done: bool, actions: list[dict[str, Any]] | None = None
    ) -> None:
        if self._ts is None:
            try:
                resp = await self._api(
                    self._client.chat_startStream,
                    channel=self._channel,
                    thread_ts=self._thread_ts,
                    recipient_team_id=self._team_id,
                    recipient_user_id=self._user_id,
                    markdown_text=content,
                )
            except DeliveryError as fault:
                self._start_failures += 1
                if self._retry_stream(fault, self._start_failures):
                    raise
                log.info("slack.stream.unavailable", error=fault.code)
                self._streaming = False  # post this reply the classic way from here on
                await self._put_classic(content, actions=actions if done else None)
                return
            self._ts = str(resp["ts"])
            self._shown = content
            self._stream_open = True
            if not done:
                return
        if not content.startswith(self._shown):
            # The text was rewritten, not only extended: a stream can only append.
            self._by_update = True
            await self._put_classic(content, actions=actions if done else None)
            return
        rest = content[len(self._shown) :]
        if not done:
            if rest:
                try:
                    await self._api(
                        self._client.chat_appendStream,
                        channel=self._channel,
                        ts=self._ts,
                        markdown_text=rest,
                    )
                except DeliveryError as fault:
                    if isinstance(fault, DeliveryTransient):
                        # Slack may have appended it before the answer was lost: appending
                        # again could show it twice, so this message ends with chat.update
                        # (which sets the whole text, whatever the stream holds).
                        log.info("slack.stream.append_uncertain", error=fault.code)
                        self._by_update = True
                        raise
                    if not self._retry_stream(fault, 0):
                        log.info("slack.stream.append_refused", error=fault.code)
                        self._by_update = True
                        await self._put_classic(content)
                        return
                    raise
                self._shown = content
            return
        if not self._stream_open:
            if actions and self._marked != self._ts:
                await self._put_classic(content, actions=actions)
            return
        try:
            await self._api(
                self._client.chat_stopStream,
                channel=self._channel,
                ts=self._ts,
                markdown_text=rest or None,
                blocks=actions,
            )
        except DeliveryError as fault:
            self._stop_failures += 1
            if self._retry_stream(fault, self._stop_failures):
                raise
            log.info("slack.stream.stop_failed", error=fault.code)
            self._by_update = True
            await self._put_classic(content, actions=actions)
            return
        self._shown = content
        self._stream_open = False
        if actions:
            self._marked = self._ts

    @staticmethod
    def _retry_stream(fault: DeliveryError, failures: int) -> bool:
        """Whether to keep to the streaming call (the sink retries) or take the classic way."""
        retryable = isinstance(fault, DeliveryRateLimited | DeliveryTransient)
        return retryable and failures < STREAM_GIVE_UP

    async def _put_classic(
        self, content: str, *, actions: list[dict[str, Any]] | None = None
    ) -> None:
        marked = not actions or (self._ts is not None and self._marked == self._ts)
        if self._ts is not None and content == self._shown and not self._stream_open and marked:
            return
        # Markdown as the model wrote it: chat.postMessage and chat.update render
        # markdown_text themselves (it replaces text; the two must not be sent together).
        # With buttons the text goes in a markdown block beside them (markdown_text takes
        # no blocks), and ``text`` is the notification's fallback.
        markdown = content.rstrip()
        body: dict[str, Any] = {"markdown_text": markdown}
        if actions:
            body = {
                "text": markdown,
                "blocks": [{"type": "markdown", "text": markdown}, *actions],
            }
        if self._ts is not None:
            try:
                await self._api(
                    self._client.chat_update, channel=self._channel, ts=self._ts, **body
                )
            except MessageGone:
                # Deleted, or a stream that cannot be edited: carry on in a fresh message
                # (a stream message that still shows part of the reply is removed first,
                # so nothing is shown twice).
                if self._stream_open:
                    try:
                        await self._api(
                            self._client.chat_delete, channel=self._channel, ts=self._ts
                        )
                    except DeliveryError as exc:
                        log.info("slack.stream.delete_failed", error=exc.code)
                self._ts = None
            else:
                self._shown = content
                self._stream_open = False
                if actions:
                    self._marked = self._ts
                return
        resp = await self._api(
            self._client.chat_postMessage, channel=self._channel, thread_ts=self._thread_ts, **body
        )
        self._ts = str(resp["ts"])
        self._shown = content
        self._stream_open = False
        if actions:
            self._marked = self._ts

    async def _api(
        self, method: Callable[..., Awaitable[AsyncSlackResponse]], **kwargs: Any
    ) -> AsyncSlackResponse:
        name = getattr(method, "__name__", "")
        await self._pauses.wait(name, self._channel)
        try:
            return await method(**kwargs)
        except Exception as exc:
            fault = classify(exc)
            if isinstance(fault, DeliveryRateLimited):
                self._pauses.pause(name, self._channel, fault.retry_after)
            raise fault from exc
