"""``/voicebot`` sub-commands as core commands: parsing, and how Slack shows them.

``/voicebot help | new | model [NAME] | settings [KEY VALUE] | usage | forget``
(CONTRACT.md). The core (:mod:`bot.commands`) runs them; Slack's differences are data in
:data:`PROFILE`: its spelling of commands, its help intro, no buttons (so ``forget``
deletes at once), and ``new`` in a channel explaining that each thread is a conversation.
"""

from __future__ import annotations

from typing import Any

from bot import texts
from bot.adapters.slack.events import chat_ref
from bot.commands import ChatCommand, CommandProfile, CommandStyle
from bot.engine.ports import ChatRef

PREFIX = "/voicebot "
STYLE = CommandStyle(prefix=PREFIX)
PROFILE = CommandProfile(
    style=STYLE,
    help_intro=texts.SLACK_HELP_INTRO,
    # In channels every thread is its own conversation; a slash command has no thread,
    # so there is nothing to reset: say how to start afresh instead.
    group_new=texts.SLACK_NEW_IN_CHANNEL,
)


def parse(payload: dict[str, Any]) -> ChatCommand:
    """A slash command's payload: ``text="model qwen-audio-turbo"`` → ``model`` with args
    ``qwen-audio-turbo`` (empty text is ``help``, as the core decides)."""
    head, _, rest = str(payload.get("text") or "").strip().partition(" ")
    return ChatCommand(
        name=head.lower(),
        args=rest.strip(),
        chat=command_chat(payload),
        user_id=str(payload.get("user_id") or ""),
        thread_key=None,  # slash commands are never sent from a thread
    )


def command_chat(payload: dict[str, Any]) -> ChatRef:
    """The chat a slash command was typed in (the payload names no channel type)."""
    channel = str(payload.get("channel_id") or "")
    name = str(payload.get("channel_name") or "")
    if name == "directmessage" or channel.startswith("D"):
        kind = "im"
    elif name.startswith("mpdm-"):
        kind = "mpim"
    elif name == "privategroup" or channel.startswith("G"):
        kind = "group"
    else:
        kind = "channel"
    return chat_ref(channel, kind)
