"""The draft's stop button (Bot API 10.3 ``stopped_message_generation``).

Telegram only stops showing the draft; the model request is cancelled here, and the
engine finalises the reply as stopped.
"""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.types import MessageGenerationStopped

from bot.adapters.telegram.turns import TelegramContext

log = structlog.get_logger(__name__)


def build_router() -> Router:
    router = Router(name="telegram-stop")
    router.stopped_message_generation.register(on_stopped)
    return router


async def on_stopped(event: MessageGenerationStopped, tg: TelegramContext) -> None:
    found = tg.stop_turn(event.chat.id, event.draft_id)
    log.info("telegram.stop_pressed", chat_id=event.chat.id, found=found)
