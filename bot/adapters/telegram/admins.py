"""Chat admins by ``getChatMember``, cached briefly (implements :class:`AdminCheck`)."""

from __future__ import annotations

import structlog
from aiogram import Bot
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.utils.chat_member import ADMINS
from cachetools import TTLCache

from bot.engine.ports import ChatRef

log = structlog.get_logger(__name__)

# Anonymous group admins post as the group through this service account; only admins can.
ANONYMOUS_ADMIN_ID = "1087968824"
# Short enough that a demoted admin loses rights quickly, long enough that a burst of
# button presses doesn't hit getChatMember each time.
DEFAULT_TTL = 60.0
# (chat, user) pairs remembered at once; the least recently used go first beyond it.
CACHE_SIZE = 4096


class TelegramAdmins:
    """The chat's creator and administrators; in a private chat, its one user.

    BOT_ADMINS are applied by the engine, not here. The cache is only touched by plain
    (non-async) code on the event loop, so it needs no lock; two checks at once may both
    ask Telegram.
    """

    def __init__(self, *, bot: Bot, ttl: float = DEFAULT_TTL, size: int = CACHE_SIZE) -> None:
        self._bot = bot
        self._cache: TTLCache[tuple[str, str], bool] = TTLCache(maxsize=size, ttl=ttl)

    async def is_admin(self, chat: ChatRef, user_id: str) -> bool:
        if chat.is_private:
            return chat.chat_id == user_id
        if user_id == ANONYMOUS_ADMIN_ID:
            return True
        key = (chat.chat_id, user_id)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        try:
            member = await self._bot.get_chat_member(
                chat_id=int(chat.chat_id), user_id=int(user_id)
            )
        except (TelegramAPIError, ClientDecodeError) as exc:
            # Not cached: a transient failure must not lock an admin out for a minute.
            log.warning(
                "telegram.admin_check_failed", chat_id=chat.chat_id, error=type(exc).__name__
            )
            return False
        result = isinstance(member, ADMINS)
        self._cache[key] = result
        return result
