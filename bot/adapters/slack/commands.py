"""``/voicebot`` sub-commands: parsing, and running them against the engine.

``/voicebot help | new | model [NAME] | settings [KEY VALUE] | usage | forget``
(CONTRACT.md). Every answer is text for the caller alone; changing settings and
forgetting are for workspace admins/owners and BOT_ADMINS (the engine decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot import texts
from bot.adapters.slack.events import chat_ref
from bot.engine import presenters
from bot.engine.ports import AdminCheck, ChatRef
from bot.engine.service import Engine
from bot.engine.settings import parse_setting_change
from bot.errors import BotError

PREFIX = "/voicebot "
SUBCOMMANDS = ("help", "new", "model", "settings", "usage", "forget")


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # a SUBCOMMANDS entry, or what the user typed if unknown
    arg: str  # the rest of the text, stripped


def parse(text: str | None) -> Command:
    """``"model qwen-audio-turbo"`` → ``Command("model", "qwen-audio-turbo")``; empty is help."""
    head, _, rest = (text or "").strip().partition(" ")
    name = head.lower().lstrip("/") or "help"
    if name in ("start", "?"):
        name = "help"
    return Command(name, rest.strip())


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


async def run(
    command: Command, *, engine: Engine, chat: ChatRef, user_id: str, admins: AdminCheck
) -> str:
    """The answer to show the caller; engine refusals become their ``user_message``."""
    if not engine.is_allowed(chat, user_id):
        return texts.ACCESS_DENIED
    try:
        answer = await _run(command, engine=engine, chat=chat, user_id=user_id, admins=admins)
    except BotError as exc:
        answer = exc.user_message
    return presenters.with_command_prefix(answer, PREFIX)


async def _run(
    command: Command, *, engine: Engine, chat: ChatRef, user_id: str, admins: AdminCheck
) -> str:
    name, arg = command.name, command.arg
    if name == "help":
        view = await engine.get_settings(chat)
        return presenters.help_text(model=view.model, prefix=PREFIX, intro=texts.SLACK_HELP_INTRO)
    if name == "new":
        if not chat.is_private:
            # In channels every thread is its own conversation; a slash command has no
            # thread, so there is nothing to reset: say how to start afresh instead.
            return texts.SLACK_NEW_IN_CHANNEL
        await engine.new_conversation(chat, None)
        return texts.NEW_CONVERSATION
    if name == "model":
        if not arg:
            view = await engine.get_settings(chat)
            return presenters.model_list(engine.allowed_models, current=view.model)
        view = await engine.update_settings(chat, user_id, admins, model=arg.split()[0])
        return texts.MODEL_CHANGED.format(model=view.model)
    if name == "settings":
        if not arg:
            return presenters.settings_summary(await engine.get_settings(chat))
        key, _, raw = arg.partition(" ")
        changes = parse_setting_change(key, raw)
        view = await engine.update_settings(chat, user_id, admins, **changes)
        return presenters.settings_summary(view)
    if name == "usage":
        return presenters.usage_summary(await engine.usage(chat))
    if name == "forget":
        return presenters.forget_summary(await engine.forget(chat, user_id, admins))
    return texts.SLACK_UNKNOWN_COMMAND.format(command=name)
