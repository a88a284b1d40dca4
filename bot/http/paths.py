"""The bot's webhook paths (CONTRACT.md), known before the platform adapters load."""

from __future__ import annotations

TELEGRAM_WEBHOOK = "/telegram/webhook"
SLACK_EVENTS = "/slack/events"
PLAYGROUND = "/"  # the browser voice playground (bot.web.playground)
