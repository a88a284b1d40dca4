"""Answer buttons as inline keyboards, and button presses back as core actions.

Callback data is ``ACTION:VALUE`` (``model:qwen-audio-chat``, ``policy:all_voice``,
``forget:yes``): the packing of aiogram's ``CallbackData(prefix=ACTION)`` with one field,
so keyboards sent by earlier versions keep working.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup

from bot.commands import ACTIONS, Button, ButtonRows

log = structlog.get_logger(__name__)

# Bot API: callback_data is 1-64 bytes.
MAX_CALLBACK_DATA = 64


def callback_data(button: Button) -> str:
    """The data Telegram sends back when ``button`` is pressed."""
    return f"{button.action}:{button.value}"


def keyboard(rows: ButtonRows) -> InlineKeyboardMarkup | None:
    """The inline keyboard of an answer's buttons (``None`` without buttons).

    A button whose data would not fit Telegram's 64 bytes is left out (and logged).
    """
    markup: list[list[InlineKeyboardButton]] = []
    for row in rows:
        buttons = []
        for button in row:
            data = callback_data(button)
            if len(data.encode()) > MAX_CALLBACK_DATA:
                log.warning("telegram.button_too_long", action=button.action, size=len(data))
                continue
            buttons.append(InlineKeyboardButton(text=button.label, callback_data=data))
        if buttons:
            markup.append(buttons)
    return InlineKeyboardMarkup(inline_keyboard=markup) if markup else None


def pressed(query: CallbackQuery) -> dict[str, Any] | bool:
    """aiogram filter: one of our buttons → ``{"press": (action, value)}`` for the handler."""
    action, sep, value = (query.data or "").partition(":")
    if not sep or action not in ACTIONS:
        return False
    return {"press": (action, value)}
