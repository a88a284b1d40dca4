"""HTTP mode: ``POST /slack/events`` on the bot's own aiohttp server, through Bolt.

Bolt 1.30 has no aiohttp request handler, only the two translation functions; this is the
small handler around them. Bolt verifies the signature (``v0=`` HMAC of
``v0:{timestamp}:{body}`` with SLACK_SIGNING_SECRET, 300 s window) and answers 401 itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp

from bot.http import paths

EVENTS_PATH = paths.SLACK_EVENTS


def events_handler(app: AsyncApp) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler dispatching events, commands and interactivity to ``app``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        bolt_request = await to_bolt_request(request)
        bolt_response = await app.async_dispatch(bolt_request)
        response: web.StreamResponse = await to_aiohttp_response(bolt_response)
        return response

    return handle
