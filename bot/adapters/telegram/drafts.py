"""Replies in private chats: a streamed draft, then the final message(s) (:class:`DraftReplier`)."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import structlog
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramRetryAfter,
)

from bot.adapters.telegram.formatting import Chunk
from bot.adapters.telegram.pacing import Pacer
from bot.adapters.telegram.replier import ENTITY_ERRORS, RateLimited, Replier

log = structlog.get_logger(__name__)

# Seconds without new text before the draft is pushed again (a preview lasts ~30 s).
DRAFT_KEEPALIVE = 20.0


class DraftReplier(Replier):
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
            if chunk.entities and any(word in exc.message.lower() for word in ENTITY_ERRORS):
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
