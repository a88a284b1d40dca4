"""Telegram surfaces for :class:`~bot.delivery.sink.StreamingSink`: the calls both kinds share.

The two kinds, each in its own module:

- :class:`~bot.adapters.telegram.drafts.DraftSurface` (private chats): ``sendMessageDraft``
  previews while the model writes, then ``sendMessage`` with the final text, which Telegram
  requires to keep it.
- :class:`~bot.adapters.telegram.edits.EditSurface` (groups): one ``sendMessage``, then
  ``editMessageText`` at the chat's pace (``TELEGRAM_EDIT_INTERVAL``, slower after a 429).

Both send Markdown as entities (no ``parse_mode``) and continue past 4096 characters in
new messages. This module translates aiogram's exceptions into the delivery faults
(:func:`classify`); what to do about them (plain text, waiting, retrying, giving up) is
the sink's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

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
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message, ReplyParameters

from bot.adapters.telegram.formatting import Chunk, render, render_notice
from bot.adapters.telegram.pacing import Pacer
from bot.errors import (
    DeliveryError,
    DeliveryRateLimited,
    DeliveryTransient,
    FormattingRejected,
    MessageGone,
    NotModified,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

TYPING_EVERY = 5.0  # a chat action lasts at most 5 s: one per 5 s per chat (#13, P4)

_NOT_MODIFIED = "message is not modified"
# Words in a 400 that mean Telegram refused the entities (the text itself is fine).
_ENTITY_ERRORS = ("can't parse entities", "entity", "entities")
# Words in a 400 that mean our message is gone (deleted), so edits must go to a new one.
_GONE = ("message to edit not found", "message can't be edited", "message to delete not found")


def classify(exc: BaseException) -> DeliveryError:
    """aiogram's exception as a delivery fault (the sink decides what follows)."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, TelegramRetryAfter):
        return DeliveryRateLimited(retry_after=float(exc.retry_after), code="retry_after")
    if isinstance(exc, TelegramServerError | TelegramNetworkError | ClientDecodeError):
        return DeliveryTransient(code=type(exc).__name__)
    if isinstance(exc, asyncio.TimeoutError | ConnectionError):
        return DeliveryTransient(code=type(exc).__name__)
    if isinstance(exc, TelegramBadRequest):
        desc = exc.message.lower()
        if _NOT_MODIFIED in desc:
            return NotModified(code="not_modified")
        if any(word in desc for word in _ENTITY_ERRORS):
            return FormattingRejected(code="entities_refused")
        if any(word in desc for word in _GONE):
            return MessageGone(code="message_gone")
        return DeliveryError(code="bad_request")
    if isinstance(exc, TelegramAPIError):
        return DeliveryError(code=type(exc).__name__)
    return DeliveryError(code=type(exc).__name__)


class TelegramSurface:
    """Paced, classified Telegram calls for one reply; subclasses deliver."""

    progress_interval: float = 0.0  # the chat's pacer spaces the calls
    keepalive: float | None = None
    indicate_every: float | None = TYPING_EVERY

    def __init__(
        self,
        *,
        bot: Bot,
        chat_id: int,
        topic_id: int | None,
        reply_to: str | None,
        pacer: Pacer,
    ) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.topic_id = topic_id
        self.reply_to = reply_to
        self._pacer = pacer
        self._notice_sent = 0
        # The reply's messages Telegram confirmed, in order, with what each one shows.
        self._sent: list[tuple[int, Chunk]] = []
        self._marked: int | None = None  # the message Telegram shows the buttons under
        self._followed: tuple[str, list[int]] = ("", [])  # follow(): text, parts confirmed
        self._voice_id: int | None = None  # the voice note Telegram confirmed

    def message_ids(self) -> list[str]:
        return [str(mid) for mid, _ in self._sent]

    def forget(self) -> None:
        self._sent = []
        self._notice_sent = 0
        self._marked = None
        self._followed = ("", [])

    async def discard(self) -> None:
        await self._delete([mid for mid, _ in self._sent])
        self.forget()

    def ready_in(self) -> float:
        return self._pacer.delay(self.chat_id)

    async def indicate(self) -> None:
        try:
            await self.bot.send_chat_action(
                chat_id=self.chat_id, action="typing", message_thread_id=self.topic_id
            )
        except Exception as exc:
            raise classify(exc) from exc

    async def notice(self, text: str) -> list[str]:
        """Our short text (an error), as a reply to the user's message, plain."""
        ids: list[str] = []
        for chunk in render_notice(text)[self._notice_sent :]:
            msg = await self._send(chunk, reply=not ids, urgent=True)
            self._notice_sent += 1
            ids.append(str(msg.message_id))
        return ids

    async def follow(self, text: str) -> list[str]:
        """Plain text after the reply, as a reply to its last message (or ``reply_to``)."""
        if self._followed[0] != text:
            self._followed = (text, [])
        done = self._followed[1]
        target = self._sent[-1][0] if self._sent else _message_id(self.reply_to)
        for chunk in render_notice(text)[len(done) :]:
            first = not done and target is not None
            params = (
                ReplyParameters(message_id=target, allow_sending_without_reply=True)
                if first and target is not None
                else None
            )
            msg = await self._call(
                partial(
                    self.bot.send_message,
                    chat_id=self.chat_id,
                    text=chunk.text,
                    message_thread_id=self.topic_id,
                    reply_parameters=params,
                )
            )
            done.append(msg.message_id)
        return [str(mid) for mid in done]

    async def voice(self, ogg: bytes, seconds: float) -> str:
        """``sendVoice`` (multipart upload), answering the user's message, in the topic."""
        if self._voice_id is None:
            msg = await self._call(
                partial(
                    self.bot.send_voice,
                    chat_id=self.chat_id,
                    voice=BufferedInputFile(ogg, filename="reply.ogg"),
                    # Whole seconds (the Bot API's type); Telegram shows it before playing.
                    duration=max(1, round(seconds)),
                    message_thread_id=self.topic_id,
                    reply_parameters=self._reply_parameters(),
                )
            )
            self._voice_id = msg.message_id
        return str(self._voice_id)

    async def _mark_last(self, markup: InlineKeyboardMarkup | None) -> None:
        """Put ``markup`` under the reply's last message, if no call of this final text
        did (a retried final text that had nothing else left to send)."""
        if markup is None or not self._sent:
            return
        last = self._sent[-1][0]
        if self._marked == last:
            return
        with contextlib.suppress(NotModified):  # it shows them already
            await self._call(
                partial(
                    self.bot.edit_message_reply_markup,
                    chat_id=self.chat_id,
                    message_id=last,
                    reply_markup=markup,
                )
            )
        self._marked = last

    # --- shared machinery ---------------------------------------------------------------

    @staticmethod
    def _render(markdown: str, *, plain: bool) -> list[Chunk]:
        return render(markdown, plain=plain)

    async def _call(self, make: Callable[[], Awaitable[T]], *, urgent: bool = False) -> T:
        """One call in the chat's next slot (``urgent``: a final text, which may skip the
        queue once per interval); failures come out classified."""
        await self._pacer.wait(self.chat_id, urgent=urgent)
        try:
            result = await make()
        except TelegramRetryAfter as exc:
            self._pacer.penalize(self.chat_id, exc.retry_after)
            raise classify(exc) from exc
        except Exception as exc:
            raise classify(exc) from exc
        self._pacer.relax(self.chat_id)
        return result

    def _reply_parameters(self) -> ReplyParameters | None:
        if self.reply_to is None:
            return None
        return ReplyParameters(message_id=int(self.reply_to), allow_sending_without_reply=True)

    async def _send(
        self,
        chunk: Chunk,
        *,
        reply: bool,
        markup: InlineKeyboardMarkup | None = None,
        urgent: bool = False,
    ) -> Message:
        msg = await self._call(
            lambda: self.bot.send_message(
                chat_id=self.chat_id,
                text=chunk.text,
                entities=chunk.entity_list(),
                message_thread_id=self.topic_id,
                reply_parameters=self._reply_parameters() if reply else None,
                reply_markup=markup,
            ),
            urgent=urgent,
        )
        if markup is not None:
            self._marked = msg.message_id
        return msg

    async def remove(self, message_ids: Sequence[str]) -> None:
        await self._delete([int(mid) for mid in message_ids if mid.lstrip("-").isdigit()])

    async def _delete(self, message_ids: list[int]) -> None:
        """Best effort: a message we could not remove stays (the reply follows anyway)."""
        for mid in message_ids:
            with contextlib.suppress(DeliveryError):
                await self._call(
                    partial(self.bot.delete_message, chat_id=self.chat_id, message_id=mid)
                )


def _message_id(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def chunk_text_equal(a: Chunk, b: Chunk) -> bool:
    """Whether two chunks show the same thing (text and, unless plain, entities)."""
    return a.text == b.text and (a.entities or None) == (b.entities or None)


__all__ = ["TelegramSurface", "chunk_text_equal", "classify"]
