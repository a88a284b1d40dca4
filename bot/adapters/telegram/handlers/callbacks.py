"""Inline buttons of /model, /settings and /forget, and the Transcript button under
replies: translation only.

A press of one of our buttons becomes a core :class:`~bot.commands.ButtonAction` (the
core checks access and admin rights again); its answer edits the pressed message and
answers the callback query, as an alert for refusals. Work the press still needs (a
transcript) comes after the callback answer, so Telegram's spinner stops at once; what it
makes is posted as a reply to the pressed message, in its topic.
"""

from __future__ import annotations

import structlog
from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Message

from bot import texts
from bot.adapters.telegram.handlers.common import command_handler, edit
from bot.adapters.telegram.keyboards import keyboard, pressed
from bot.adapters.telegram.turns import TelegramContext
from bot.adapters.telegram.updates import chat_ref, thread_key
from bot.commands import ButtonAction
from bot.errors import Undelivered
from bot.i18n import from_tag, tr

log = structlog.get_logger(__name__)


def build_router() -> Router:
    router = Router(name="telegram-buttons")
    router.callback_query.register(on_button, pressed)
    return router


async def on_button(
    query: CallbackQuery, press: tuple[str, str], bot: Bot, tg: TelegramContext
) -> None:
    """Run one button press in the core; edit the message, then answer the query."""
    message = query.message
    if not isinstance(message, Message):  # too old: Telegram no longer shows it to bots
        expired = tr(texts.TELEGRAM_BUTTON_EXPIRED, from_tag(query.from_user.language_code))
        await query.answer(expired, show_alert=True)
        return
    action, value = press
    parsed = ButtonAction(
        action=action,
        value=value,
        chat=chat_ref(message.chat),
        user_id=str(query.from_user.id),
        thread_key=thread_key(message),
        user_language=query.from_user.language_code,
    )
    answer = await (await command_handler(bot, tg)).press(parsed)
    if answer.text is not None:
        await edit(bot, message, answer.text, markup=keyboard(answer.buttons))
    await query.answer(answer.notice, show_alert=answer.alert or None)
    if answer.later is None:
        return
    done = await answer.later()
    # The callback is answered: a late notice (a refusal) is posted like the result.
    text = done.post or done.notice
    if text:
        try:
            await tg.follow_sink(message, bot).follow_up(text)
        except Undelivered as exc:
            log.warning("telegram.follow_up_undelivered", chat_id=message.chat.id, error=exc.code)
