"""Replies in groups: one message, then edits at the chat's pace (:class:`EditReplier`)."""

from __future__ import annotations

from typing import Any

import structlog
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import Message

from bot.adapters.telegram.formatting import Chunk
from bot.adapters.telegram.replier import RateLimited, Replier

log = structlog.get_logger(__name__)

# Words in a 400 that mean our message is gone (deleted), so edits must go to a new one.
_GONE = ("message to edit not found", "message can't be edited")


class EditReplier(Replier):
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
