"""/start, /help, /new, /model, /settings, /usage, /forget (CONTRACT.md)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot import texts
from bot.adapters.telegram.handlers.common import reply, sender_id
from bot.adapters.telegram.keyboards import forget_keyboard, models_keyboard, policy_keyboard
from bot.adapters.telegram.turns import TelegramContext
from bot.adapters.telegram.updates import chat_ref, thread_key
from bot.engine import presenters
from bot.engine.ports import ChatRef
from bot.engine.settings import parse_setting_change
from bot.errors import BotError


def build_router() -> Router:
    router = Router(name="telegram-commands")
    router.message.register(on_help, Command("start", "help"))
    router.message.register(on_new, Command("new"))
    router.message.register(on_model, Command("model"))
    router.message.register(on_settings, Command("settings"))
    router.message.register(on_usage, Command("usage"))
    router.message.register(on_forget, Command("forget"))
    return router


async def _admitted(message: Message, tg: TelegramContext) -> ChatRef | None:
    """The chat, if this user may use the bot here; else a polite refusal."""
    chat = chat_ref(message.chat)
    if not tg.engine.is_allowed(chat, sender_id(message)):
        await reply(message, texts.ACCESS_DENIED)
        return None
    return chat


async def on_help(message: Message, bot: Bot, tg: TelegramContext) -> None:
    """How to talk to the bot by voice, and its commands."""
    chat = await _admitted(message, tg)
    if chat is None:
        return
    view = await tg.engine.get_settings(chat)
    text = presenters.help_text(model=view.model)
    if not chat.is_private:
        me = await bot.me()
        text += "\n\n" + texts.TELEGRAM_GROUP_HELP.format(username=me.username)
    await reply(message, text)


async def on_new(message: Message, tg: TelegramContext) -> None:
    chat = await _admitted(message, tg)
    if chat is None:
        return
    await tg.engine.new_conversation(chat, thread_key(message))
    await reply(message, texts.NEW_CONVERSATION)


async def on_model(message: Message, command: CommandObject, tg: TelegramContext) -> None:
    """``/model`` lists the models with buttons; ``/model NAME`` chooses (admins)."""
    chat = await _admitted(message, tg)
    if chat is None:
        return
    name = (command.args or "").strip()
    if name:
        try:
            view = await tg.engine.update_settings(chat, sender_id(message), tg.admins, model=name)
        except BotError as exc:
            await reply(message, exc.user_message)
            return
        await reply(message, texts.MODEL_CHANGED.format(model=view.model))
        return
    view = await tg.engine.get_settings(chat)
    text = presenters.model_list(tg.engine.allowed_models, current=view.model)
    await reply(
        message,
        f"{text}\n\n{texts.TELEGRAM_MODEL_PICK}",
        markup=models_keyboard(tg.engine.allowed_models, view.model),
    )


async def on_settings(message: Message, command: CommandObject, tg: TelegramContext) -> None:
    """``/settings`` shows them; ``/settings KEY VALUE`` changes one (admins in groups)."""
    chat = await _admitted(message, tg)
    if chat is None:
        return
    args = (command.args or "").strip()
    if args:
        key, _, value = args.partition(" ")
        try:
            changes = parse_setting_change(key, value)
            view = await tg.engine.update_settings(chat, sender_id(message), tg.admins, **changes)
        except BotError as exc:
            await reply(message, exc.user_message)
            return
    else:
        view = await tg.engine.get_settings(chat)
    markup = None if chat.is_private else policy_keyboard(view.group_policy.value)
    await reply(message, presenters.settings_summary(view), markup=markup)


async def on_usage(message: Message, tg: TelegramContext) -> None:
    chat = await _admitted(message, tg)
    if chat is None:
        return
    await reply(message, presenters.usage_summary(await tg.engine.usage(chat)))


async def on_forget(message: Message, tg: TelegramContext) -> None:
    """Ask first: deleting a chat's history can't be undone."""
    chat = await _admitted(message, tg)
    if chat is None:
        return
    if not await tg.engine.can_manage(chat, sender_id(message), tg.admins):
        await reply(message, texts.NOT_ADMIN)
        return
    await reply(message, texts.TELEGRAM_FORGET_CONFIRM, markup=forget_keyboard())
