"""Workspace admins and owners, from ``users.info``, cached briefly (implements AdminCheck)."""

from __future__ import annotations

import time
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError

from bot.engine.ports import ChatRef

log = structlog.get_logger(__name__)


class SlackAdminCheck:
    """``is_admin`` is true for workspace admins, owners and primary owners.

    Results are kept for ``ttl`` seconds: ``users.info`` is Tier 4, but a burst of
    ``/voicebot`` commands should not cost one call each. BOT_ADMINS is the engine's job.
    """

    def __init__(self, *, client: Any, ttl: float = 60.0) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[str, tuple[float, bool]] = {}

    async def is_admin(self, chat: ChatRef, user_id: str) -> bool:
        del chat  # Slack admin rights are per workspace, not per channel
        now = time.monotonic()
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            resp = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            # Unknown: deny, and do not cache, so the next try asks again.
            log.warning("slack.users_info.failed", error=exc.response.get("error"))
            return False
        user = resp.get("user") or {}
        admin = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
        self._cache[user_id] = (now + self._ttl, admin)
        return admin
