"""The chat commands, once for every platform (platform-neutral: no aiogram, no slack_*).

An adapter parses a platform event into a :class:`ChatCommand` (or a pressed button into
a :class:`ButtonAction`), hands it to its :class:`CommandHandler` and renders the
:class:`Answer`: text, :class:`Button` rows as data, and flags. What differs between
platforms is data in the adapter's :class:`CommandProfile`; commands in texts are spelt
by its :class:`CommandStyle`.
"""

from __future__ import annotations

from bot.commands.handler import CommandHandler, canonical_name
from bot.commands.ports import (
    ACTIONS,
    Answer,
    Button,
    ButtonAction,
    ButtonRows,
    ChatCommand,
    CommandProfile,
)
from bot.commands.style import COMMAND_NAMES, SLASH, CommandStyle

__all__ = [
    "ACTIONS",
    "COMMAND_NAMES",
    "SLASH",
    "Answer",
    "Button",
    "ButtonAction",
    "ButtonRows",
    "ChatCommand",
    "CommandHandler",
    "CommandProfile",
    "CommandStyle",
    "canonical_name",
]
