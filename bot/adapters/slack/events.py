"""Translation of Slack message events into engine terms, and who a message is for.

Rules: in a DM every message is for the bot. In a channel the bot answers a message that
mentions it, a message inside a thread it already takes part in, and (with the chat's
``group_policy`` at ``all_voice``) every clip. Conversations are threads: in a channel
the thread (a top-level message starts one); in a DM the thread if the message is in
one, else the DM itself. The text sent with a clip is the instruction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.adapters.slack.files import is_audio_file
from bot.engine.ports import ChatRef

PLATFORM = "slack"

# Message subtypes that are people talking; edits, joins, bot posts and the like are not.
_USER_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "me_message"})
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def channel_kind(channel_id: str, channel_type: str | None = None) -> str:
    """``im``, ``mpim``, ``channel`` or ``group`` (from the event, else the id's prefix)."""
    if channel_type in ("im", "mpim", "channel", "group"):
        return channel_type
    if channel_id.startswith("D"):
        return "im"
    if channel_id.startswith("G"):
        return "group"
    return "channel"


def chat_ref(channel_id: str, kind: str) -> ChatRef:
    return ChatRef(platform=PLATFORM, chat_id=channel_id, kind=kind, private=kind == "im")


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackMessage:
    """The parts of a message event the adapter works with."""

    channel: str
    kind: str
    user: str
    team: str | None
    ts: str
    thread_ts: str | None  # set for every message in a thread, the parent included
    text: str
    files: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    client_msg_id: str | None = None
    parent_user_id: str | None = None

    @property
    def in_thread(self) -> bool:
        """A reply inside a thread (not the thread's parent message)."""
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def is_dm(self) -> bool:
        return self.kind == "im"

    @property
    def chat(self) -> ChatRef:
        return chat_ref(self.channel, self.kind)

    def mentions(self, user_id: str | None) -> bool:
        return bool(user_id) and any(m == user_id for m in _MENTION.findall(self.text))

    def audio_files(self) -> list[dict[str, Any]]:
        return [f for f in self.files if is_audio_file(f)]

    @property
    def thread_key(self) -> str | None:
        """The conversation: the thread in channels; the thread or the DM itself in DMs."""
        if self.is_dm:
            return self.thread_ts
        return self.thread_ts or self.ts

    @property
    def reply_thread_ts(self) -> str | None:
        """Where the reply goes: the thread (a new one under a channel message); top-level
        DM messages are answered top-level, where their conversation is."""
        if self.is_dm:
            return self.thread_ts
        return self.thread_ts or self.ts

    def dedupe_keys(self) -> list[str]:
        """Ids that name this message whichever event delivered it (message, app_mention)."""
        keys = [f"msg:{self.channel}:{self.ts}"]
        if self.client_msg_id:
            keys.append(f"cmsg:{self.client_msg_id}")
        return keys


def read_message(event: dict[str, Any], *, bot_user_id: str | None) -> SlackMessage | None:
    """The message in a ``message``/``app_mention`` event, or ``None`` if nobody spoke."""
    if event.get("subtype") not in _USER_SUBTYPES or event.get("hidden"):
        return None
    user = event.get("user")
    if not user or event.get("bot_id") or user == bot_user_id:
        return None
    channel = str(event.get("channel") or "")
    if not channel or not event.get("ts"):
        return None
    files = tuple(f for f in event.get("files") or () if isinstance(f, dict))
    return SlackMessage(
        channel=channel,
        kind=channel_kind(channel, event.get("channel_type")),
        user=str(user),
        team=event.get("team") or event.get("user_team"),
        ts=str(event["ts"]),
        thread_ts=event.get("thread_ts"),
        text=str(event.get("text") or ""),
        files=files,
        client_msg_id=event.get("client_msg_id"),
        parent_user_id=event.get("parent_user_id"),
    )


def instruction(text: str, *, bot_user_id: str | None) -> str | None:
    """The user's words for the model: the bot's mention removed, others kept readable."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    text = _MENTION.sub(lambda m: f"@{m.group(1)}", text)
    # Slack escapes these three in message text.
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    text = re.sub(r"[ \t]+", " ", text).strip()
    return text or None


def message_files(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in message.get("files") or () if isinstance(f, dict)]


def is_bot_message(message: dict[str, Any], *, bot_user_id: str | None, bot_id: str | None) -> bool:
    return bool(
        (bot_id and message.get("bot_id") == bot_id)
        or (bot_user_id and message.get("user") == bot_user_id)
    )
