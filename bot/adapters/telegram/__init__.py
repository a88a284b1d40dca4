"""Telegram adapter (aiogram 3): translates updates into engine turns and streams replies."""
