"""Buttons of ``/voicebot`` answers and the Transcript button under replies (Block Kit
``block_actions``): translation only.

A press of one of our buttons becomes a core :class:`~bot.commands.ButtonAction`. Bolt
authenticates the request like every other (the signing secret in HTTP mode; Socket Mode
requests arrive on the app-level connection), and the core checks access and admin
rights again, as for Telegram's buttons. The answer replaces the pressed message through
the action's ``response_url`` (command answers are ephemeral, which ``chat.update``
cannot edit); a refusal is a new ephemeral line for the presser alone. What a press makes
for everyone (a transcript) is posted where the pressed message is: its thread, or the
DM itself.
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
from bot.errors import Undelivered

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
        # A progress note ("Transcribing…") is a toast on Telegram; here it would stay.
        if answer.notice and (answer.alert or answer.later is None):
            await respond(
                text=escape(answer.notice), response_type="ephemeral", replace_original=False
            )
        if answer.later is None:
            return
        done = await answer.later()
        if done.post:
            await _post(deps, body, channel=str(channel["id"]), user=user, text=done.post)
        if done.notice:
            await respond(
                text=escape(done.notice), response_type="ephemeral", replace_original=False
            )

    app.action(ACTION_IDS)(on_press)


async def _post(
    deps: SlackDeps, body: dict[str, Any], *, channel: str, user: str, text: str
) -> None:
    """``text`` for everyone where the pressed message is: its thread, or the DM itself."""
    message = body.get("message") or {}
    container = body.get("container") or {}
    thread_ts = message.get("thread_ts") or container.get("thread_ts")
    sink = deps.replier(
        channel=channel,
        thread_ts=str(thread_ts) if thread_ts else None,
        team_id=(body.get("team") or {}).get("id"),
        user_id=user,
        listening=False,
    )
    try:
        await sink.follow_up(text)
    except Undelivered as exc:
        log.warning("slack.follow_up_undelivered", error=exc.code)
