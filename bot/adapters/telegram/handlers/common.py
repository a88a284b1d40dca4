"""What the command and button handlers share: the core's command handler for this bot,
and answering in the same chat and topic (with retries)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardMarkup, Message, ReplyParameters

from bot import texts
from bot.adapters.telegram.formatting import Chunk, render_notice
from bot.adapters.telegram.turns import TelegramContext
from bot.adapters.telegram.updates import topic_id
from bot.commands import CommandHandler, CommandProfile
from bot.commands.style import SLASH
from bot.retrying import retrying

T = TypeVar("T")

# A command's answer is worth a short wait: aiogram does not retry 429s or 5xx itself.
ATTEMPTS = 4
MAX_RETRY_AFTER = 30.0

STYLE = SLASH  # Telegram spells commands "/model"


def command_profile(username: str | None) -> CommandProfile:
    """The core's commands as Telegram shows them: slash commands, inline buttons (so
    ``/forget`` asks first), and a word on groups in ``/help`` naming the bot's @username."""
    return CommandProfile(
        style=STYLE,
        group_help=texts.TELEGRAM_GROUP_HELP,
        bot_username=username,
        buttons=True,
        private_kinds=frozenset({"private"}),
    )


async def command_handler(bot: Bot, tg: TelegramContext) -> CommandHandler:
    """The core's command handler for this bot (``bot.me()`` is cached by aiogram)."""
    me = await bot.me()
    return CommandHandler(engine=tg.engine, admins=tg.admins, profile=command_profile(me.username))


def _worth_retrying(exc: BaseException) -> bool:
    if isinstance(exc, TelegramRetryAfter):
        return exc.retry_after <= MAX_RETRY_AFTER
    return isinstance(exc, TelegramServerError | TelegramNetworkError)


async def persist(make: Callable[[], Awaitable[T]]) -> T:
    """``make()``, waiting out 429s (``retry_after``) and retrying 5xx/network errors."""
    async for attempt in retrying(retry_if=_worth_retrying, attempts=ATTEMPTS):
        with attempt:
            return await make()
    raise AssertionError("unreachable: tenacity re-raises the last error")


def sender_id(message: Message) -> str:
    """Who sent it; a message with no sender (a channel post) counts as the chat."""
    user = message.from_user
    return str(user.id if user is not None else message.chat.id)


async def reply(message: Message, text: str, *, markup: InlineKeyboardMarkup | None = None) -> None:
    """Answer in the same chat and topic, as a reply, as plain text (split past 4096)."""
    bot = message.bot
    assert bot is not None
    chunks = render_notice(text)
    for index, chunk in enumerate(chunks):
        first, last = index == 0, index == len(chunks) - 1

        async def send(chunk: Chunk = chunk, first: bool = first, last: bool = last) -> Message:
            return await bot.send_message(
                chat_id=message.chat.id,
                text=chunk.text,
                message_thread_id=topic_id(message),
                reply_parameters=ReplyParameters(
                    message_id=message.message_id, allow_sending_without_reply=True
                )
                if first
                else None,
                reply_markup=markup if last else None,
            )

        await persist(send)


async def edit(
    bot: Bot, message: Message, text: str, *, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Replace a button message's text and keyboard ("not modified" is fine)."""
    with contextlib.suppress(TelegramBadRequest):
        await persist(
            lambda: bot.edit_message_text(
                chat_id=message.chat.id,
                message_id=message.message_id,
                text=render_notice(text)[0].text,
                reply_markup=markup,
            )
        )
