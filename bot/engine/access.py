"""Who may talk to the bot, who may manage a chat, and how fast one user may go."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from bot.engine.ports import AdminCheck, ChatRef
from bot.errors import UserRateLimited


class AccessPolicy:
    """ALLOWED_USERS / ALLOWED_CHATS / BOT_ADMINS, all as ``platform:id`` entries.

    Empty lists restrict nothing. When a list is set, a turn is allowed if the user or the
    chat is on a set list (so an operator can open one team channel to everyone and also
    let a few people talk in private). BOT_ADMINS are always allowed. The terminal
    (``voicebot ask``, platform ``cli``) is the operator's own and always allowed.
    """

    def __init__(
        self, *, allowed_users: list[str], allowed_chats: list[str], bot_admins: list[str]
    ) -> None:
        self._users = frozenset(allowed_users)
        self._chats = frozenset(allowed_chats)
        self._admins = frozenset(bot_admins)

    def is_bot_admin(self, platform: str, user_id: str) -> bool:
        return f"{platform}:{user_id}" in self._admins

    def is_allowed(self, chat: ChatRef, user_id: str) -> bool:
        if chat.operator or self.is_bot_admin(chat.platform, user_id):
            return True
        if not self._users and not self._chats:
            return True
        return (
            f"{chat.platform}:{user_id}" in self._users
            or f"{chat.platform}:{chat.chat_id}" in self._chats
        )

    async def can_manage(self, chat: ChatRef, user_id: str, admin: AdminCheck) -> bool:
        """BOT_ADMINS anywhere; anyone in their own private chat; else the platform says."""
        if self.is_bot_admin(chat.platform, user_id) or chat.is_private:
            return True
        return await admin.is_admin(chat, user_id)


class RateLimiter:
    """A sliding-window limit per user: at most ``limit`` turns per ``window`` seconds.

    In-process state: with several replicas each counts the turns it runs, so a user may
    get up to ``limit`` per replica (README, Limits). ``limit=0`` switches it off.
    """

    def __init__(
        self, *, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def check(self, key: str) -> None:
        """Count one turn for ``key``, or raise :class:`UserRateLimited`."""
        if self.limit <= 0:
            return
        now = self._clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            retry_after = hits[0] + self.window - now
            raise UserRateLimited(f"over {self.limit}/{self.window:g}s", retry_after=retry_after)
        hits.append(now)
        if len(self._hits) > 10_000:
            self._prune(now)

    def _prune(self, now: float) -> None:
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= now - self.window]:
            del self._hits[key]
