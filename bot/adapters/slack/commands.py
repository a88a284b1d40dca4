"""``/voicebot`` sub-commands as core commands: parsing, and how Slack shows them.

``/voicebot help | new | model [NAME] | settings [KEY VALUE] | usage | forget``
(CONTRACT.md). The core (:mod:`bot.commands`) runs them; Slack's differences are data in
:data:`PROFILE`: its spelling of commands, its help intro, menus as text but buttons to
confirm ``forget`` (Block Kit, :func:`blocks`), and ``new`` in a channel explaining that
each thread is a conversation.
"""

from __future__ import annotations

from typing import Any

from bot import texts
from bot.adapters.slack.events import chat_ref
from bot.adapters.slack.markup import escape, split_point
from bot.commands import ACTIONS, Button, ButtonRows, ChatCommand, CommandProfile, CommandStyle
from bot.engine.ports import ChatRef

PREFIX = "/voicebot "
STYLE = CommandStyle(prefix=PREFIX)
PROFILE = CommandProfile(
    style=STYLE,
    help_intro=texts.SLACK_HELP_INTRO,
    # In channels every thread is its own conversation; a slash command has no thread,
    # so there is nothing to reset: say how to start afresh instead.
    group_new=texts.SLACK_NEW_IN_CHANNEL,
    confirm_buttons=True,
    private_kinds=frozenset({"im"}),
    answers_in_private=True,  # slash command answers are ephemeral
)

# Block Kit: a section's text holds at most 3,000 characters.
SECTION_LIMIT = 3000
# The longest entity escape() writes ("&amp;"): a section never ends inside one.
_ENTITY = len("&amp;")


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
    return channel_chat(channel, str(payload.get("channel_name") or ""))


def channel_chat(channel: str, name: str) -> ChatRef:
    """The chat of a channel id and the name Slack gives it in command and interaction
    payloads (``directmessage``, ``mpdm-…``, ``privategroup``, or the channel's name)."""
    if name == "directmessage" or channel.startswith("D"):
        kind = "im"
    elif name.startswith("mpdm-"):
        kind = "mpim"
    elif name == "privategroup" or channel.startswith("G"):
        kind = "group"
    else:
        kind = "channel"
    return chat_ref(channel, kind)


def action_id(button: Button) -> str:
    """The Block Kit ``action_id`` of a button: ``ACTION:VALUE`` (``forget:yes``), unique
    within its message, as Slack requires."""
    return f"{button.action}:{button.value}"


def read_action(action: dict[str, Any]) -> tuple[str, str] | None:
    """A pressed Block Kit button → the core's ``(action, value)``; ``None`` if not ours."""
    name, sep, _ = str(action.get("action_id") or "").partition(":")
    if not sep or name not in ACTIONS:
        return None
    return name, str(action.get("value") or "")


def blocks(text: str, buttons: ButtonRows) -> list[dict[str, Any]]:
    """An answer as Block Kit: its text in ``mrkdwn`` sections, then one ``actions`` block
    per row of buttons."""
    out: list[dict[str, Any]] = []
    rest = escape(text)
    while rest:
        cut = split_point(rest, SECTION_LIMIT)
        amp = rest.rfind("&", max(0, cut - _ENTITY + 1), cut)
        if amp > 0 and ";" not in rest[amp:cut]:
            cut = amp
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": rest[:cut]}})
        rest = rest[cut:]
    for row in buttons:
        out.append({"type": "actions", "elements": [_button(button) for button in row]})
    return out


def _button(button: Button) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": button.label},
        "action_id": action_id(button),
        "value": button.value,
    }
    if button.danger:
        element["style"] = "danger"  # Slack's red button, for what can't be undone
    return element
