"""The ``/voicebot`` slash command: acknowledged at once, answered ephemerally after."""

from __future__ import annotations

from typing import Any

import structlog

from bot.adapters.slack import commands
from bot.adapters.slack.deps import SlackDeps
from bot.adapters.slack.markup import escape

log = structlog.get_logger(__name__)

COMMAND = "/voicebot"


def register(app: Any, deps: SlackDeps) -> None:
    async def on_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        # Slack shows an error if the ack takes over 3 s; the database work comes after.
        await ack()
        parsed = commands.parse(command.get("text"))
        log.info("slack.command", sub=parsed.name)
        answer = await commands.run(
            parsed,
            engine=deps.engine,
            chat=commands.command_chat(command),
            user_id=str(command.get("user_id") or ""),
            admins=deps.admins,
        )
        await respond(text=escape(answer), response_type="ephemeral")

    app.command(COMMAND)(on_command)
