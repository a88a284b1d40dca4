"""What a channel thread holds: whether the bot takes part, and a clip it has not heard.

Read with ``conversations.replies`` (Tier 3), remembered briefly: the bot's own replies
mark a thread as joined without another call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError

from bot.adapters.slack.events import is_bot_message, message_files
from bot.adapters.slack.files import is_audio_file

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    bot_takes_part: bool
    # The newest clip before the asking message that no bot reply follows.
    unheard_clip: dict[str, Any] | None


class ThreadInspector:
    """Looks threads up, caching "the bot takes part" for ``ttl`` seconds."""

    def __init__(self, *, client: Any, ttl: float = 600.0) -> None:
        self._client = client
        self._ttl = ttl
        self._joined: dict[tuple[str, str], float] = {}

    def mark_joined(self, channel: str, thread_ts: str) -> None:
        self._joined[(channel, thread_ts)] = time.monotonic() + self._ttl

    def known_joined(self, channel: str, thread_ts: str) -> bool:
        until = self._joined.get((channel, thread_ts))
        return until is not None and until > time.monotonic()

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
        for message in resp.get("messages") or []:
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
            bot_takes_part=joined or self.known_joined(channel, thread_ts), unheard_clip=clip
        )
