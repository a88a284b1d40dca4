"""The ``/voicebot`` slash command: acknowledged at once, answered ephemerally after
(with Block Kit buttons where the answer has them)."""

from __future__ import annotations

import dataclasses
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
        locale = await deps.admins.locale(parsed.user_id)
        parsed = dataclasses.replace(parsed, user_language=locale)
        log.info("slack.command", sub=canonical_name(parsed.name))
        answer = await handler.run(parsed)
        # Buttons (forget's confirmation) as Block Kit; presses reach listeners.buttons.
        text = answer.text or ""
        await respond(
            text=escape(text),
            blocks=commands.blocks(text, answer.buttons) if answer.buttons else None,
            response_type="ephemeral" if answer.ephemeral else "in_channel",
        )

    app.command(COMMAND)(on_command)
