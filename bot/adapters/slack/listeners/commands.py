"""The ``/voicebot`` slash command: acknowledged at once, answered ephemerally after."""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.app.async_app import AsyncApp

from bot.adapters.slack import commands
from bot.adapters.slack.deps import SlackDeps
from bot.adapters.slack.markup import escape
from bot.commands import CommandHandler, canonical_name

log = structlog.get_logger(__name__)

COMMAND = "/voicebot"


def register(app: AsyncApp, deps: SlackDeps) -> None:
    handler = CommandHandler(engine=deps.engine, admins=deps.admins, profile=commands.PROFILE)

    async def on_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        # Slack shows an error if the ack takes over 3 s; the database work comes after.
        await ack()
        parsed = commands.parse(command)
        log.info("slack.command", sub=canonical_name(parsed.name))
        answer = await handler.run(parsed)
        # Slack has no buttons here (PROFILE.buttons is off): the answer is its text.
        await respond(
            text=escape(answer.text or ""),
            response_type="ephemeral" if answer.ephemeral else "in_channel",
        )

    app.command(COMMAND)(on_command)
