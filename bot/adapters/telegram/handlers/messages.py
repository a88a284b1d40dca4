"""Voice notes, audio files, video notes, audio documents and text: turns for the engine."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.types import Message

from bot import texts
from bot.adapters.telegram.turns import TelegramContext, answer
from bot.adapters.telegram.updates import addressed, chat_ref, has_audio
from bot.engine.domain import GroupPolicy
from bot.engine.intake import Arrival
from bot.i18n import tr


def build_router() -> Router:
    router = Router(name="telegram-messages")
    router.message.register(on_message, F.voice | F.audio | F.video_note | F.document | F.text)
    return router


async def on_message(message: Message, bot: Bot, tg: TelegramContext, arrival: Arrival) -> None:
    """Answer the message if it is addressed to the bot (see :mod:`..updates`).

    ``arrival`` is the update on its way into the engine (claimed, its place taken).
    """
    me = await bot.me()
    sender = message.from_user
    if sender is not None and sender.id == me.id:
        return
    if message.text is not None and message.text.startswith("/"):
        return  # a command that isn't ours (or for another bot): not a question
    private = message.chat.type == "private"
    what = addressed(message, me=me, all_voice=False)
    if what is None and not private and has_audio(message):
        # Only now read the chat's settings: most group traffic never gets this far.
        view = await tg.engine.get_settings(chat_ref(message.chat))
        what = addressed(message, me=me, all_voice=view.group_policy == GroupPolicy.ALL_VOICE)
    if what is None:
        if private and message.document is not None:
            code = sender.language_code if sender is not None else None
            lang = await tg.engine.language(chat_ref(message.chat), code)
            await message.reply(tr(texts.NOT_AUDIO, lang))
        return
    await answer(tg, bot, message, what, arrival=arrival)
