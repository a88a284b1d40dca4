"""Workspace admins and owners, from ``users.info``, cached briefly (implements AdminCheck)."""

from __future__ import annotations

import structlog
from cachetools import TTLCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.engine.ports import ChatRef

log = structlog.get_logger(__name__)

# Users remembered at once; the least recently used go first beyond it.
CACHE_SIZE = 4096


class SlackAdminCheck:
    """``is_admin`` is true for workspace admins, owners and primary owners.

    Results are kept for ``ttl`` seconds: ``users.info`` is Tier 4, but a burst of
    ``/voicebot`` commands should not cost one call each. BOT_ADMINS is the engine's job.
    The cache is only touched by plain (non-async) code on the event loop, so it needs no
    lock.
    """

    def __init__(
        self, *, client: AsyncWebClient, ttl: float = 60.0, size: int = CACHE_SIZE
    ) -> None:
        self._client = client
        self._cache: TTLCache[str, bool] = TTLCache(maxsize=size, ttl=ttl)

    async def is_admin(self, chat: ChatRef, user_id: str) -> bool:
        del chat  # Slack admin rights are per workspace, not per channel
        cached = self._cache.get(user_id)
        if cached is not None:
            return cached
        try:
            resp = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            # Unknown: deny, and do not cache, so the next try asks again.
            log.warning("slack.users_info.failed", error=exc.response.get("error"))
            return False
        user = resp.get("user") or {}
        admin = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
        self._cache[user_id] = admin
        return admin
