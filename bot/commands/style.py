"""How a platform spells its commands, and the texts that name them.

Shared texts never spell a command themselves: they write ``{cmd:NAME}`` (a
``str.format`` field ``cmd`` with the command's name as its format spec), and the core
fills it with the platform's :class:`CommandStyle`::

    style.format("Choose another with {cmd:model}.")
    # Telegram (prefix "/"):          "Choose another with /model."
    # Slack (prefix "/voicebot "):    "Choose another with /voicebot model."

A misspelt name (``{cmd:modle}``) raises ``ValueError`` instead of showing a command that
does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot import texts
from bot.i18n import tr

COMMAND_NAMES: tuple[str, ...] = tuple(name for name, _ in texts.HELP_COMMANDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandStyle:
    """A platform's spelling of commands: ``prefix`` + name (``/new``, ``/voicebot new``).

    ``controls`` name the commands a platform offers as controls instead (the browser
    playground's "Model" menu): command name → the msgid of the control's label, shown
    quoted in the reader's language.
    """

    prefix: str
    controls: tuple[tuple[str, str], ...] = ()

    def command(self, name: str) -> str:
        """The command ``name`` as a user types (or finds) it on this platform."""
        if name not in COMMAND_NAMES:
            raise ValueError(f"unknown command {name!r} in a text")
        for command, label in self.controls:
            if command == name:
                return f"“{tr(label)}”"
        return f"{self.prefix}{name}"

    def format(self, template: str, **fields: Any) -> str:
        """``template`` with its ``{cmd:NAME}`` mentions spelt for this platform and the
        other ``str.format`` ``fields`` filled in."""
        return template.format(cmd=self, **fields)

    def __format__(self, spec: str) -> str:
        # str.format calls this for "{cmd:NAME}" with spec == "NAME".
        return self.command(spec)


SLASH = CommandStyle(prefix="/")
"""Plain slash commands (``/model``): Telegram's spelling, and the default."""
