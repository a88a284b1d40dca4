"""Streaming replies into Telegram: the machinery both :class:`ReplySink` kinds share.

The two kinds, each in its own module:

- :class:`~bot.adapters.telegram.drafts.DraftReplier` (private chats): ``sendMessageDraft``
  previews while the model writes, then ``sendMessage`` with the final text, which Telegram
  requires to keep it.
- :class:`~bot.adapters.telegram.edits.EditReplier` (groups): one ``sendMessage``, then
  ``editMessageText`` at the chat's pace (``TELEGRAM_EDIT_INTERVAL``, slower after a 429).

Both show "typing…" until the first text, send Markdown as entities (no ``parse_mode``)
and fall back to plain text for the rest of the reply if Telegram refuses the entities,
ignore "message is not modified", and continue past 4096 characters in new messages.
``update`` never waits for Telegram: a background pump coalesces updates, so a slow or
rate-limited chat just sees fewer, larger steps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import Message, ReplyParameters

from bot import texts
from bot.adapters.telegram.formatting import Chunk, render, render_notice
from bot.adapters.telegram.pacing import Pacer
from bot.engine.ports import FinalReply
from bot.errors import BotError
from bot.metrics import Metrics

log = structlog.get_logger(__name__)

T = TypeVar("T")

TYPING_EVERY = 4.5  # a chat action lasts at most 5 s
FINAL_ATTEMPTS = 6
FINAL_SERVER_ATTEMPTS = 3  # 5xx / network errors on the final text: 0.5 s, then 1 s apart

_NOT_MODIFIED = "message is not modified"
# Words in a 400 that mean Telegram refused the entities (the text itself is fine).
ENTITY_ERRORS = ("can't parse entities", "entity", "entities")


class RateLimited(Exception):
    """A call was refused with 429 and not retried (progress updates only)."""


class Replier:
    """Typing indicator, the update pump, and careful Telegram calls; subclasses deliver."""

    keepalive: float | None = None  # re-push the same text after this many idle seconds

    def __init__(
        self,
        *,
        bot: Bot,
        chat_id: int,
        topic_id: int | None,
        reply_to: int | None,
        pacer: Pacer,
        metrics: Metrics,
    ) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.topic_id = topic_id
        self.reply_to = reply_to
        self._pacer = pacer
        self._metrics = metrics
        self._text = ""
        self._plain = False
        self._dirty = asyncio.Event()
        self._closing = asyncio.Event()
        self._has_text = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._typing_task: asyncio.Task[None] | None = None

    # --- ReplySink ---------------------------------------------------------------------

    async def start(self) -> None:
        self._typing_task = asyncio.create_task(self._typing())

    async def update(self, text: str, delta: str) -> None:
        self._text = text
        if text.strip():
            self._has_text.set()
        if self._pump_task is None:
            self._pump_task = asyncio.create_task(self._pump())
        self._dirty.set()

    async def finish(self, reply: FinalReply) -> list[str]:
        await self._settle()
        # The engine's notes already say "(stopped)" for a stopped reply.
        return await self._final(reply.render() or texts.EMPTY_REPLY)

    async def fail(self, error: BotError, partial_text: str) -> list[str]:
        await self._settle()
        ids = await self._final(partial_text) if partial_text.strip() else []
        notice = await self.send_notice(error.user_message)
        return [*ids, *notice]

    # --- subclass hooks -------------------------------------------------------------------

    async def _progress(self, chunks: list[Chunk]) -> None:
        raise NotImplementedError

    async def _final(self, markdown: str) -> list[str]:
        raise NotImplementedError

    # --- shared machinery -----------------------------------------------------------------

    def _render(self, markdown: str) -> list[Chunk]:
        return render(markdown, plain=self._plain)

    async def _typing(self) -> None:
        while not self._has_text.is_set() and not self._closing.is_set():
            try:
                await self.bot.send_chat_action(
                    chat_id=self.chat_id, action="typing", message_thread_id=self.topic_id
                )
            except TelegramAPIError as exc:
                self._count(exc)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._has_text.wait(), timeout=TYPING_EVERY)

    async def _pump(self) -> None:
        """Push the latest text whenever the chat's pace allows, until closing."""
        while not self._closing.is_set():
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=self.keepalive)
            except TimeoutError:
                self._dirty.set()  # nothing new for a while: show the same text again
            delay = self._pacer.delay(self.chat_id)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), timeout=delay)
            if self._closing.is_set():
                return  # the final delivery supersedes this progress step
            self._dirty.clear()
            chunks = self._render(self._text)
            if not chunks:
                continue
            try:
                await self._progress(chunks)
            except RateLimited:
                self._dirty.set()  # try again once the chat's penalty is over
            except Exception as exc:  # progress is best effort; the final text still goes
                log.warning(
                    "telegram.progress_failed", chat_id=self.chat_id, error=type(exc).__name__
                )

    async def _settle(self) -> None:
        """Stop typing and the pump (letting a call in progress finish)."""
        self._closing.set()
        self._has_text.set()
        self._dirty.set()  # wake the pump so it sees the closing flag
        for task in (self._pump_task, self._typing_task):
            if task is not None:
                with contextlib.suppress(Exception):
                    await task

    async def _call(self, make: Callable[[], Awaitable[T]], *, final: bool) -> T:
        """One paced call; 429s are waited out when ``final``, else raise :class:`RateLimited`.

        When ``final``, a 5xx or a network error is retried a couple of times too: the
        final text is the reply the user keeps (aiogram retries neither).
        """
        attempts = 0
        failures = 0
        while True:
            await self._pacer.wait(self.chat_id)
            try:
                result = await make()
            except (TelegramServerError, TelegramNetworkError) as exc:
                failures += 1
                if not final or failures >= FINAL_SERVER_ATTEMPTS:
                    raise
                self._count(exc)
                log.info("telegram.retrying", chat_id=self.chat_id, error=type(exc).__name__)
                await asyncio.sleep(0.5 * 2 ** (failures - 1))
                continue
            except TelegramRetryAfter as exc:
                self._count(exc)
                self._pacer.penalize(self.chat_id, exc.retry_after)
                attempts += 1
                log.info(
                    "telegram.rate_limited",
                    chat_id=self.chat_id,
                    retry_after=exc.retry_after,
                    final=final,
                )
                if not final or attempts >= FINAL_ATTEMPTS:
                    raise RateLimited from None
                continue
            self._pacer.relax(self.chat_id)
            return result

    async def _formatted(
        self, make: Callable[[Chunk], Awaitable[T]], chunk: Chunk, *, final: bool
    ) -> T | None:
        """Call with entities; on "can't parse entities" switch this reply to plain text.

        Returns ``None`` when Telegram says the message is not modified.
        """
        try:
            return await self._call(lambda: make(chunk), final=final)
        except TelegramBadRequest as exc:
            desc = exc.message.lower()
            if _NOT_MODIFIED in desc:
                return None
            if chunk.entities is None or not any(word in desc for word in ENTITY_ERRORS):
                raise
            self._count(exc)
            log.info("telegram.entities_refused", chat_id=self.chat_id)
            self._plain = True
        try:
            return await self._call(lambda: make(chunk.plain()), final=final)
        except TelegramBadRequest as exc:
            if _NOT_MODIFIED in exc.message.lower():
                return None
            raise

    def _reply_parameters(self) -> ReplyParameters | None:
        if self.reply_to is None:
            return None
        return ReplyParameters(message_id=self.reply_to, allow_sending_without_reply=True)

    async def _send_message(self, chunk: Chunk, *, final: bool, reply: bool) -> Message | None:
        async def make(c: Chunk) -> Message:
            return await self.bot.send_message(
                chat_id=self.chat_id,
                text=c.text,
                entities=c.entity_list(),
                message_thread_id=self.topic_id,
                reply_parameters=self._reply_parameters() if reply else None,
            )

        return await self._formatted(make, chunk, final=final)

    async def send_notice(self, text: str) -> list[str]:
        """A short text of ours (an error), as a reply to the user's message."""
        ids: list[str] = []
        for chunk in render_notice(text):
            try:
                msg = await self._send_message(chunk, final=True, reply=True)
            except (TelegramAPIError, RateLimited) as exc:
                self._count(exc)
                log.warning(
                    "telegram.notice_failed", chat_id=self.chat_id, error=type(exc).__name__
                )
                break
            if msg is not None:
                ids.append(str(msg.message_id))
        return ids

    def _count(self, exc: BaseException) -> None:
        kind = "retry_after" if isinstance(exc, TelegramRetryAfter) else type(exc).__name__
        self._metrics.platform_errors.labels(platform="telegram", error=kind).inc()
