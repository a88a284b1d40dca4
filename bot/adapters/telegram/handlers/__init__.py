"""aiogram routers: commands and buttons first, then voice and text, then the stop button."""

from __future__ import annotations

from aiogram import Router


def build_router() -> Router:
    """One root router; fresh per platform (an aiogram router can be attached only once)."""
    from bot.adapters.telegram.handlers.callbacks import build_router as buttons
    from bot.adapters.telegram.handlers.commands import build_router as commands
    from bot.adapters.telegram.handlers.messages import build_router as messages
    from bot.adapters.telegram.handlers.stop import build_router as stop

    root = Router(name="telegram")
    root.include_routers(commands(), buttons(), messages(), stop())
    return root
