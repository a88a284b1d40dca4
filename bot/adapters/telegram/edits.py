"""Replies in groups: one message, then edits at the chat's pace (:class:`EditSurface`)."""

from __future__ import annotations

import structlog
from aiogram.types import InlineKeyboardMarkup

from bot.adapters.telegram.formatting import Chunk
from bot.adapters.telegram.keyboards import keyboard
from bot.adapters.telegram.replier import TelegramSurface, chunk_text_equal
from bot.commands import ButtonRows
from bot.errors import MessageGone

log = structlog.get_logger(__name__)


class EditSurface(TelegramSurface):
    """Groups: send one message, then edit it; continue in new messages past 4096.

    Each message's confirmed content is remembered: an edit is sent only where it differs,
    so a retried final text repeats nothing Telegram already showed.
    """

    async def progress(self, text: str, *, plain: bool) -> None:
        await self._apply(self._render(text, plain=plain))

    async def final(self, text: str, *, plain: bool, buttons: ButtonRows = ()) -> list[str]:
        markup = keyboard(buttons)
        await self._apply(self._render(text, plain=plain), markup=markup, urgent=True)
        await self._mark_last(markup)
        return self.message_ids()

    async def _apply(
        self,
        chunks: list[Chunk],
        *,
        markup: InlineKeyboardMarkup | None = None,
        urgent: bool = False,
    ) -> None:
        """Show ``chunks``; ``urgent`` (the final text) may skip the chat's queue once."""
        for index, chunk in enumerate(chunks):
            # The buttons go under the last part only, with the call that shows it.
            keys = markup if index == len(chunks) - 1 else None
            if index >= len(self._sent):
                msg = await self._send(chunk, reply=index == 0, markup=keys, urgent=urgent)
                self._sent.append((msg.message_id, chunk))
                continue
            mid, shown = self._sent[index]
            if chunk_text_equal(shown, chunk):
                # Already shown: sending the text again only to add the buttons would show
                # the user the same message twice over (and count as a second send of it);
                # _mark_last adds them with editMessageReplyMarkup instead.
                continue
            try:
                # "Not modified" is raised on: the sink decides whether the message really
                # shows the text (and a preview step that got it confirms nothing).
                await self._edit(mid, chunk, markup=keys, urgent=urgent)
            except MessageGone:
                # Someone deleted our message: carry on in a fresh one.
                log.info("telegram.message_gone", chat_id=self.chat_id)
                msg = await self._send(chunk, reply=index == 0, markup=keys, urgent=urgent)
                mid = msg.message_id
            self._sent[index] = (mid, chunk)
        # Parts a shorter text no longer needs (the model's text only grows; notes do not
        # shrink it) are left as they are.

    async def _edit(
        self,
        message_id: int,
        chunk: Chunk,
        *,
        markup: InlineKeyboardMarkup | None = None,
        urgent: bool = False,
    ) -> None:
        await self._call(
            lambda: self.bot.edit_message_text(
                chat_id=self.chat_id,
                message_id=message_id,
                text=chunk.text,
                entities=chunk.entity_list(),
                reply_markup=markup,
            ),
            urgent=urgent,
        )
        if markup is not None:
            self._marked = message_id


__all__ = ["EditSurface"]
