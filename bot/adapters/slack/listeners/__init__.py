"""Bolt listeners: each translates one kind of Slack request and calls the engine."""

from __future__ import annotations

from slack_bolt.app.async_app import AsyncApp

from bot.adapters.slack.deps import SlackDeps
from bot.adapters.slack.listeners.buttons import register as register_buttons
from bot.adapters.slack.listeners.commands import register as register_commands
from bot.adapters.slack.listeners.messages import register as register_messages
from bot.adapters.slack.listeners.shortcuts import register as register_shortcuts


def register(app: AsyncApp, deps: SlackDeps) -> None:
    """Attach every listener to the Bolt ``AsyncApp``."""
    register_messages(app, deps)
    register_commands(app, deps)
    register_buttons(app, deps)
    register_shortcuts(app, deps)
