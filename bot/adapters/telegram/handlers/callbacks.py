"""Inline buttons of /model, /settings and /forget; admin rights are checked again here."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Message

from bot import texts
from bot.adapters.telegram.handlers.common import edit
from bot.adapters.telegram.keyboards import (
    ForgetChoice,
    ModelChoice,
    PolicyChoice,
    models_keyboard,
    policy_keyboard,
)
from bot.adapters.telegram.turns import TelegramContext
from bot.adapters.telegram.updates import chat_ref
from bot.engine import presenters
from bot.engine.ports import ChatRef
from bot.engine.settings import ChatSettingsView
from bot.errors import BotError


def build_router() -> Router:
    router = Router(name="telegram-buttons")
    router.callback_query.register(on_model, ModelChoice.filter())
    router.callback_query.register(on_policy, PolicyChoice.filter())
    router.callback_query.register(on_forget, ForgetChoice.filter())
    return router


async def _admitted(query: CallbackQuery, tg: TelegramContext) -> tuple[Message, ChatRef] | None:
    message = query.message
    if not isinstance(message, Message):  # too old: Telegram no longer shows it to bots
        await query.answer(texts.TELEGRAM_BUTTON_EXPIRED, show_alert=True)
        return None
    chat = chat_ref(message.chat)
    if not tg.engine.is_allowed(chat, str(query.from_user.id)):
        await query.answer(texts.ACCESS_DENIED, show_alert=True)
        return None
    return message, chat


async def _change(
    query: CallbackQuery, tg: TelegramContext, **change: object
) -> tuple[Message, ChatSettingsView] | None:
    """Apply one settings change from a button (the engine re-checks admin rights)."""
    found = await _admitted(query, tg)
    if found is None:
        return None
    message, chat = found
    try:
        view = await tg.engine.update_settings(chat, str(query.from_user.id), tg.admins, **change)
    except BotError as exc:
        await query.answer(exc.user_message, show_alert=True)
        return None
    return message, view


async def on_model(
    query: CallbackQuery, callback_data: ModelChoice, bot: Bot, tg: TelegramContext
) -> None:
    changed = await _change(query, tg, model=callback_data.name)
    if changed is None:
        return
    message, view = changed
    text = presenters.model_list(tg.engine.allowed_models, current=view.model)
    await edit(
        bot,
        message,
        f"{text}\n\n{texts.TELEGRAM_MODEL_PICK}",
        markup=models_keyboard(tg.engine.allowed_models, view.model),
    )
    await query.answer(texts.MODEL_CHANGED.format(model=view.model))


async def on_policy(
    query: CallbackQuery, callback_data: PolicyChoice, bot: Bot, tg: TelegramContext
) -> None:
    changed = await _change(query, tg, group_policy=callback_data.value)
    if changed is None:
        return
    message, view = changed
    await edit(
        bot,
        message,
        presenters.settings_summary(view),
        markup=policy_keyboard(view.group_policy.value),
    )
    await query.answer(texts.TELEGRAM_SAVED)


async def on_forget(
    query: CallbackQuery, callback_data: ForgetChoice, bot: Bot, tg: TelegramContext
) -> None:
    found = await _admitted(query, tg)
    if found is None:
        return
    message, chat = found
    if callback_data.answer != "yes":
        await edit(bot, message, texts.TELEGRAM_FORGET_CANCELLED)
        await query.answer()
        return
    try:
        counts = await tg.engine.forget(chat, str(query.from_user.id), tg.admins)
    except BotError as exc:
        await query.answer(exc.user_message, show_alert=True)
        return
    await edit(bot, message, presenters.forget_summary(counts))
    await query.answer()
