"""Streaming replies into Telegram (the adapter's :class:`ReplySink` implementations).

- :class:`DraftReplier` (private chats): ``sendMessageDraft`` previews while the model
  writes, then ``sendMessage`` with the final text, which Telegram requires to keep it.
- :class:`EditReplier` (groups): one ``sendMessage``, then ``editMessageText`` at the
  chat's pace (``TELEGRAM_EDIT_INTERVAL``, slower after a 429).

Both show "typing…" until the first text, send Markdown as entities (no ``parse_mode``)
and fall back to plain text for the rest of the reply if Telegram refuses the entities,
ignore "message is not modified", and continue past 4096 characters in new messages.
``update`` never waits for Telegram: a background pump coalesces updates, so a slow or
rate-limited chat just sees fewer, larger steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
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
DRAFT_KEEPALIVE = 20.0  # 429s tolerated while delivering the final text

_NOT_MODIFIED = "message is not modified"
_ENTITY_ERRORS = ("can't parse entities", "entity", "entities")
_GONE = ("message to edit not found", "message can't be edited")


class RateLimited(Exception):
    """A call was refused with 429 and not retried (progress updates only)."""


class _Replier:
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
            if chunk.entities is None or not any(word in desc for word in _ENTITY_ERRORS):
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


class EditReplier(_Replier):
    """Groups: send one message, then edit it; continue in new messages past 4096."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sent: list[tuple[int, Chunk]] = []  # (message_id, what it shows now)

    async def _progress(self, chunks: list[Chunk]) -> None:
        await self._apply(chunks, final=False)

    async def _final(self, markdown: str) -> list[str]:
        chunks = self._render(markdown)
        try:
            await self._apply(chunks, final=True)
        except (TelegramAPIError, RateLimited) as exc:
            self._count(exc)
            log.warning("telegram.final_failed", chat_id=self.chat_id, error=type(exc).__name__)
        return [str(mid) for mid, _ in self._sent]

    async def _apply(self, chunks: list[Chunk], *, final: bool) -> None:
        for index, chunk in enumerate(chunks):
            if index < len(self._sent):
                mid, shown = self._sent[index]
                if shown == chunk or (self._plain and shown == chunk.plain()):
                    continue
                await self._edit(index, mid, chunk, final=final)
            else:
                msg = await self._send_message(chunk, final=final, reply=index == 0)
                if msg is not None:
                    self._sent.append((msg.message_id, self._shown(chunk)))

    async def _edit(self, index: int, message_id: int, chunk: Chunk, *, final: bool) -> None:
        async def make(c: Chunk) -> Message | bool:
            return await self.bot.edit_message_text(
                chat_id=self.chat_id,
                message_id=message_id,
                text=c.text,
                entities=c.entity_list(),
            )

        try:
            await self._formatted(make, chunk, final=final)
        except TelegramBadRequest as exc:
            if not any(word in exc.message.lower() for word in _GONE):
                raise
            # Someone deleted our message: carry on in a fresh one.
            msg = await self._send_message(chunk, final=final, reply=index == 0)
            if msg is None:
                return
            message_id = msg.message_id
        self._sent[index] = (message_id, self._shown(chunk))

    def _shown(self, chunk: Chunk) -> Chunk:
        return chunk.plain() if self._plain else chunk


class DraftReplier(_Replier):
    """Private chats: stream into a message draft, then send the final message(s).

    Parts of a long reply that are complete (all but the last 4096-unit chunk) are sent
    as messages as soon as they are, and the draft carries on with the rest.
    """

    # A draft is a preview of about 30 s; refresh it if the model pauses that long.
    keepalive = DRAFT_KEEPALIVE

    def __init__(self, *, draft_pacer: Pacer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._draft_pacer = draft_pacer
        # Any non-zero id; the stop button's update names it, so it must be unique enough.
        self.draft_id = random.randint(1, 2**31 - 1)
        self._sent: list[str] = []
        self._drafts_ok = True

    async def _progress(self, chunks: list[Chunk]) -> None:
        # Complete parts first, as real messages.
        while len(self._sent) < len(chunks) - 1:
            msg = await self._send_message(
                chunks[len(self._sent)], final=False, reply=not self._sent
            )
            if msg is None:
                return
            self._sent.append(str(msg.message_id))
        if self._drafts_ok:
            await self._draft(chunks[-1])

    async def _draft(self, chunk: Chunk) -> None:
        await self._draft_pacer.wait(self.chat_id)

        async def make(c: Chunk) -> bool:
            return await self.bot.send_message_draft(
                chat_id=self.chat_id,
                draft_id=self.draft_id,
                text=c.text,
                entities=c.entity_list(),
                message_thread_id=self.topic_id,
                can_stop=True,
            )

        try:
            await make(chunk if not self._plain else chunk.plain())
        except TelegramRetryAfter as exc:
            self._count(exc)
            self._draft_pacer.penalize(self.chat_id, exc.retry_after)
            raise RateLimited from None
        except TelegramBadRequest as exc:
            self._count(exc)
            if chunk.entities and any(word in exc.message.lower() for word in _ENTITY_ERRORS):
                self._plain = True
                with contextlib.suppress(TelegramAPIError):
                    await make(chunk.plain())
                return
            self._disable_drafts(exc)
        except (TelegramAPIError, ClientDecodeError) as exc:
            # E.g. a Bot API server without sendMessageDraft (404), or one that is failing:
            # stop previewing for this reply; the final message still comes.
            self._count(exc)
            self._disable_drafts(exc)

    def _disable_drafts(self, exc: Exception) -> None:
        log.info("telegram.drafts_disabled", chat_id=self.chat_id, error=type(exc).__name__)
        self._drafts_ok = False

    async def _final(self, markdown: str) -> list[str]:
        chunks = self._render(markdown)
        for chunk in chunks[len(self._sent) :]:
            try:
                msg = await self._send_message(chunk, final=True, reply=not self._sent)
            except (TelegramAPIError, RateLimited) as exc:
                self._count(exc)
                log.warning("telegram.final_failed", chat_id=self.chat_id, error=type(exc).__name__)
                break
            if msg is not None:
                self._sent.append(str(msg.message_id))
        return list(self._sent)
