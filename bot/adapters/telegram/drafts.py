"""Replies in private chats: a streamed draft, then the final message(s) (:class:`DraftSurface`)."""

from __future__ import annotations

import random
from typing import Any

import structlog
from aiogram.types import InlineKeyboardMarkup

from bot.adapters.telegram.formatting import Chunk
from bot.adapters.telegram.keyboards import keyboard
from bot.adapters.telegram.pacing import Pacer
from bot.adapters.telegram.replier import TelegramSurface, classify
from bot.commands import ButtonRows
from bot.errors import DeliveryRateLimited, FormattingRejected

log = structlog.get_logger(__name__)

# Seconds without new text before the draft is pushed again (a preview lasts ~30 s).
DRAFT_KEEPALIVE = 20.0


class DraftSurface(TelegramSurface):
    """Private chats: stream into a message draft, then send the final message(s).

    Parts of a long reply that are complete (all but the last 4096-unit chunk) are sent
    as messages as soon as they are, and the draft carries on with the rest. Each message
    Telegram confirmed is remembered, so a retried final text sends only what is missing.
    """

    # A draft is a preview of about 30 s; refresh it if the model pauses that long.
    keepalive: float | None = DRAFT_KEEPALIVE

    def __init__(self, *, draft_pacer: Pacer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._draft_pacer = draft_pacer
        # Any non-zero id; the stop button's update names it, so it must be unique enough.
        self.draft_id = random.randint(1, 2**31 - 1)
        self._drafts_ok = True

    def ready_in(self) -> float:
        return max(self._draft_pacer.delay(self.chat_id), 0.0)

    async def progress(self, text: str, *, plain: bool) -> None:
        chunks = self._render(text, plain=plain)
        if not chunks:
            return
        await self._send_missing(chunks[:-1])  # complete parts first, as real messages
        if self._drafts_ok:
            await self._draft(chunks[-1])

    async def final(self, text: str, *, plain: bool, buttons: ButtonRows = ()) -> list[str]:
        markup = keyboard(buttons)
        await self._send_missing(self._render(text, plain=plain), markup=markup, urgent=True)
        await self._mark_last(markup)
        return self.message_ids()

    async def _send_missing(
        self,
        chunks: list[Chunk],
        *,
        markup: InlineKeyboardMarkup | None = None,
        urgent: bool = False,
    ) -> None:
        for index, chunk in enumerate(chunks):
            if index < len(self._sent):
                continue  # confirmed before (possibly with entities the plain retry drops)
            last = index == len(chunks) - 1
            msg = await self._send(
                chunk, reply=index == 0, markup=markup if last else None, urgent=urgent
            )
            self._sent.append((msg.message_id, chunk))

    async def _draft(self, chunk: Chunk) -> None:
        await self._draft_pacer.wait(self.chat_id)
        try:
            await self.bot.send_message_draft(
                chat_id=self.chat_id,
                draft_id=self.draft_id,
                text=chunk.text,
                entities=chunk.entity_list(),
                message_thread_id=self.topic_id,
                can_stop=True,
            )
        except Exception as exc:
            fault = classify(exc)
            if isinstance(fault, DeliveryRateLimited):
                self._draft_pacer.penalize(self.chat_id, fault.retry_after)
                raise fault from exc
            if isinstance(fault, FormattingRejected):
                raise fault from exc
            # E.g. a Bot API server without sendMessageDraft (404), or one that is failing:
            # stop previewing for this reply; the final message still comes.
            log.info("telegram.drafts_disabled", chat_id=self.chat_id, error=fault.code)
            self._drafts_ok = False


__all__ = ["DraftSurface"]
