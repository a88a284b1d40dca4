"""Small helpers the command and button handlers share."""

from __future__ import annotations

import contextlib

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardMarkup, Message, ReplyParameters

from bot.adapters.telegram.formatting import render_notice
from bot.adapters.telegram.updates import topic_id


def sender_id(message: Message) -> str:
    """Who sent it; a message with no sender (a channel post) counts as the chat."""
    user = message.from_user
    return str(user.id if user is not None else message.chat.id)


async def reply(message: Message, text: str, *, markup: InlineKeyboardMarkup | None = None) -> None:
    """Answer in the same chat and topic, as a reply, as plain text (split past 4096)."""
    chunks = render_notice(text)
    for index, chunk in enumerate(chunks):
        await message.bot.send_message(  # type: ignore[union-attr]
            chat_id=message.chat.id,
            text=chunk.text,
            message_thread_id=topic_id(message),
            reply_parameters=ReplyParameters(
                message_id=message.message_id, allow_sending_without_reply=True
            )
            if index == 0
            else None,
            reply_markup=markup if index == len(chunks) - 1 else None,
        )


async def edit(
    bot: Bot, message: Message, text: str, *, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Replace a button message's text and keyboard ("not modified" is fine)."""
    with contextlib.suppress(TelegramBadRequest):
        await bot.edit_message_text(
            chat_id=message.chat.id,
            message_id=message.message_id,
            text=render_notice(text)[0].text,
            reply_markup=markup,
        )
