"""Workspace admins and owners, and each user's locale, from ``users.info``, cached
briefly (implements AdminCheck)."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import structlog
from cachetools import TTLCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.engine.ports import ChatRef

log = structlog.get_logger(__name__)

# Users remembered at once; the least recently used go first beyond it.
CACHE_SIZE = 4096
# The longest a reply waits for a user's locale: past it, the reply goes out in English.
LOCALE_TIMEOUT = 2.0


class _User(NamedTuple):
    admin: bool
    locale: str | None  # e.g. "zh-CN", "en-US"


class SlackAdminCheck:
    """``is_admin`` is true for workspace admins, owners and primary owners; ``locale``
    is the user's Slack language (``users.info`` with ``include_locale``), which the bot
    speaks while the chat's ``language`` setting is ``auto``.

    One ``users.info`` answers both, kept for ``ttl`` seconds: it is Tier 4, but a burst
    of messages or ``/voicebot`` commands should not cost one call each. BOT_ADMINS is the
    engine's job. The cache is only touched by plain (non-async) code on the event loop,
    so it needs no lock.
    """

    def __init__(
        self, *, client: AsyncWebClient, ttl: float = 60.0, size: int = CACHE_SIZE
    ) -> None:
        self._client = client
        self._cache: TTLCache[str, _User] = TTLCache(maxsize=size, ttl=ttl)

    async def is_admin(self, chat: ChatRef, user_id: str) -> bool:
        del chat  # Slack admin rights are per workspace, not per channel
        user = await self._user(user_id)
        return user is not None and user.admin  # unknown: denied

    async def locale(self, user_id: str) -> str | None:
        """The user's Slack locale, or ``None`` (English) if Slack did not say in time:
        a reply never waits on it for long."""
        try:
            async with asyncio.timeout(LOCALE_TIMEOUT):
                user = await self._user(user_id)
        except TimeoutError:
            log.warning("slack.users_info.slow")
            return None
        return user.locale if user is not None else None

    async def _user(self, user_id: str) -> _User | None:
        cached = self._cache.get(user_id)
        if cached is not None:
            return cached
        try:
            resp = await self._client.users_info(user=user_id, include_locale=True)
        except SlackApiError as exc:
            # Unknown: not cached, so the next try asks again.
            log.warning("slack.users_info.failed", error=exc.response.get("error"))
            return None
        info = resp.get("user") or {}
        admin = info.get("is_admin") or info.get("is_owner") or info.get("is_primary_owner")
        user = _User(
            admin=bool(admin),
            locale=str(info["locale"]) if info.get("locale") else None,
        )
        self._cache[user_id] = user
        return user
