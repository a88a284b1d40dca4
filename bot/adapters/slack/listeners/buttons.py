"""Buttons of ``/voicebot`` answers (Block Kit ``block_actions``): translation only.

A press of one of our buttons becomes a core :class:`~bot.commands.ButtonAction`. Bolt
authenticates the request like every other (the signing secret in HTTP mode; Socket Mode
requests arrive on the app-level connection), and the core checks access and admin
rights again, as for Telegram's buttons. The answer replaces the pressed message through
the action's ``response_url`` (command answers are ephemeral, which ``chat.update``
cannot edit); a refusal is a new ephemeral line for the presser alone.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from slack_bolt.app.async_app import AsyncApp

from bot.adapters.slack import commands
from bot.adapters.slack.deps import SlackDeps
from bot.adapters.slack.markup import escape
from bot.commands import ACTIONS, ButtonAction, CommandHandler

log = structlog.get_logger(__name__)

# The action ids commands.action_id writes, and only those.
ACTION_IDS = re.compile(rf"^(?:{'|'.join(map(re.escape, ACTIONS))}):")


def register(app: AsyncApp, deps: SlackDeps) -> None:
    handler = CommandHandler(engine=deps.engine, admins=deps.admins, profile=commands.PROFILE)

    async def on_press(
        ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        await ack()  # within Slack's 3 s; the database work comes after
        pressed = commands.read_action(action)
        channel = body.get("channel") or {}
        user = str((body.get("user") or {}).get("id") or "")
        if pressed is None or not channel.get("id") or not user:
            return
        log.info("slack.button", action=pressed[0])
        answer = await handler.press(
            ButtonAction(
                action=pressed[0],
                value=pressed[1],
                chat=commands.channel_chat(str(channel["id"]), str(channel.get("name") or "")),
                user_id=user,
                user_language=await deps.admins.locale(user),
            )
        )
        if answer.text is not None:
            await respond(
                text=escape(answer.text),
                blocks=commands.blocks(answer.text, answer.buttons) if answer.buttons else None,
                replace_original=True,
            )
        if answer.notice:
            await respond(
                text=escape(answer.notice), response_type="ephemeral", replace_original=False
            )

    app.action(ACTION_IDS)(on_press)
