"""The message a Slack thread replies to, for the engine (a ``ThreadParent``).

Read only when the engine has not stored it (:mod:`bot.engine.seeding`), with
``conversations.replies`` (``ts`` = the thread, ``limit=1``: the parent comes first). That
needs the history scope of the conversation type (``im:history``, ``channels:history``,
``groups:history``, ``mpim:history``). A deleted parent that has replies stays as a
``tombstone``; one without replies is gone (``thread_not_found``): either way, or
without access, the thread starts without it. Its files become
:class:`~bot.adapters.slack.files.SlackAudioFile` objects, downloaded by the engine with
the same host checks as any clip.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack.events import instruction, message_files
from bot.adapters.slack.files import is_audio_file
from bot.engine.ports import AudioSource, ParentMessage

log = structlog.get_logger(__name__)

# What Slack leaves of a deleted message that has replies ("This message was deleted.").
_TOMBSTONE = "tombstone"


class SlackThreadParent:
    """The first message of a thread (implements ``ThreadParent``)."""

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str,
        bot_user_id: str | None,
        audio_source: Callable[[dict[str, Any]], Awaitable[AudioSource]],
        known: dict[str, Any] | None = None,
    ) -> None:
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self._bot_user_id = bot_user_id
        self._audio_source = audio_source
        self._known = known  # already read with the thread (channel mentions)

    @property
    def message_id(self) -> str:
        return self._thread_ts

    async def fetch(self) -> ParentMessage | None:
        message = self._known if self._known is not None else await self._read()
        if message is None:
            return None
        if message.get("subtype") == _TOMBSTONE:
            log.info("slack.thread_parent.deleted")
            return None
        audio = [f for f in message_files(message) if is_audio_file(f)]
        user = message.get("user")
        return ParentMessage(
            text=instruction(str(message.get("text") or ""), bot_user_id=self._bot_user_id),
            recordings=tuple([await self._audio_source(f) for f in audio]),
            author_id=str(user) if user else None,
        )

    async def _read(self) -> dict[str, Any] | None:
        try:
            resp = await self._client.conversations_replies(
                channel=self._channel, ts=self._thread_ts, limit=1
            )
        except SlackApiError as exc:
            # thread_not_found (deleted), missing_scope, not_in_channel, ratelimited…
            log.warning("slack.thread_parent.unreadable", error=exc.response.get("error"))
            return None
        messages = resp.get("messages") or []
        first = messages[0] if messages and isinstance(messages[0], dict) else None
        if first is None or first.get("ts") != self._thread_ts:
            log.warning("slack.thread_parent.missing")
            return None
        return first
