"""/start, /help, /new, /model, /settings, /usage, /forget (CONTRACT.md): translation only.

``/cmd args`` (or ``/cmd@thisbot args``; aiogram's ``Command`` filter drops commands for
other bots) becomes a core :class:`~bot.commands.ChatCommand`; the answer is sent as a
reply in the same chat and topic, with its buttons as an inline keyboard.
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.adapters.telegram.handlers.common import command_handler, reply, sender_id
from bot.adapters.telegram.keyboards import keyboard
from bot.adapters.telegram.turns import TelegramContext
from bot.adapters.telegram.updates import chat_ref, thread_key
from bot.commands import COMMAND_NAMES, ChatCommand

# /start is what Telegram sends when someone first opens the bot: the core answers help.
COMMANDS = ("start", *COMMAND_NAMES)


def build_router() -> Router:
    router = Router(name="telegram-commands")
    router.message.register(on_command, Command(*COMMANDS))
    return router


async def on_command(
    message: Message, command: CommandObject, bot: Bot, tg: TelegramContext
) -> None:
    """Run one command in the core and show its answer."""
    parsed = ChatCommand(
        name=command.command,
        args=(command.args or "").strip(),
        chat=chat_ref(message.chat),
        user_id=sender_id(message),
        thread_key=thread_key(message),
        user_language=message.from_user.language_code if message.from_user else None,
    )
    answer = await (await command_handler(bot, tg)).run(parsed)
    if answer.text:
        await reply(message, answer.text, markup=keyboard(answer.buttons))
