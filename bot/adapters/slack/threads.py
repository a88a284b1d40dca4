"""What a channel thread holds: whether the bot takes part, and a clip it has not heard.

Read with ``conversations.replies`` (Tier 3), remembered briefly: the bot's own replies
mark a thread as joined without another call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from cachetools import TTLCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack.events import is_bot_message, message_files
from bot.adapters.slack.files import is_audio_file

log = structlog.get_logger(__name__)

# Threads remembered as joined at once; the least recently used go first beyond it (a
# forgotten thread costs one conversations.replies call the next time it is asked about).
CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    bot_takes_part: bool
    # The newest clip before the asking message that no bot reply follows.
    unheard_clip: dict[str, Any] | None
    # The thread's first message, as read (saves reading it again to open the thread).
    parent: dict[str, Any] | None = None


class ThreadInspector:
    """Looks threads up, caching "the bot takes part" for ``ttl`` seconds.

    The cache is only touched by plain (non-async) code on the event loop, so it needs no
    lock.
    """

    def __init__(
        self, *, client: AsyncWebClient, ttl: float = 600.0, size: int = CACHE_SIZE
    ) -> None:
        self._client = client
        self._joined: TTLCache[tuple[str, str], bool] = TTLCache(maxsize=size, ttl=ttl)

    def mark_joined(self, channel: str, thread_ts: str) -> None:
        """Remember for ``ttl`` seconds (from now) that the bot takes part in the thread."""
        self._joined[(channel, thread_ts)] = True

    def known_joined(self, channel: str, thread_ts: str) -> bool:
        return (channel, thread_ts) in self._joined

    async def inspect(
        self,
        *,
        channel: str,
        thread_ts: str,
        before_ts: str,
        bot_user_id: str | None,
        bot_id: str | None,
    ) -> ThreadInfo:
        try:
            resp = await self._client.conversations_replies(
                channel=channel, ts=thread_ts, limit=200
            )
        except SlackApiError as exc:
            log.warning("slack.thread.unreadable", error=exc.response.get("error"))
            return ThreadInfo(
                bot_takes_part=self.known_joined(channel, thread_ts), unheard_clip=None
            )
        joined = False
        clip: dict[str, Any] | None = None
        parent: dict[str, Any] | None = None
        for message in resp.get("messages") or []:
            if message.get("ts") == thread_ts:
                parent = message
            if float(message.get("ts", 0)) >= float(before_ts):
                continue
            if is_bot_message(message, bot_user_id=bot_user_id, bot_id=bot_id):
                joined = True
                clip = None  # the bot answered after it: that clip is in the history
                continue
            audio = [f for f in message_files(message) if is_audio_file(f)]
            if audio:
                clip = audio[0]
        if joined:
            self.mark_joined(channel, thread_ts)
        return ThreadInfo(
            bot_takes_part=joined or self.known_joined(channel, thread_ts),
            unheard_clip=clip,
            parent=parent,
        )
