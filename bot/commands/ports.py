"""What the platform adapters and the command core exchange (platform-neutral).

In: a :class:`ChatCommand` (``/model NAME``, ``/voicebot model NAME``) or a
:class:`ButtonAction` (a button of an earlier answer was pressed). Out: an
:class:`Answer`: text, buttons as data, and flags. The adapter says once, in a
:class:`CommandProfile`, what its platform can show; the core decides everything else.

``Answer.text`` is plain text (no Markdown): adapters send it as is, escaping what their
platform would read as markup. The one exception is a command shown in backticks
(``Try `/voicebot help`.``): Slack shows it as code; it is only used on platforms that
route unknown commands to the core.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot import texts
from bot.commands.style import CommandStyle
from bot.engine.ports import ChatRef

ButtonRows = tuple[tuple["Button", ...], ...]

# What a button press may ask for (``Button.action``).
MODEL_ACTION = "model"  # value: the model's name
POLICY_ACTION = "policy"  # value: a GroupPolicy value
FORGET_ACTION = "forget"  # value: FORGET_YES (delete) or anything else (cancel)
TRANSCRIPT_ACTION = "transcript"  # value: the reply's turn id (under replies to voice)
ACTIONS: tuple[str, ...] = (MODEL_ACTION, POLICY_ACTION, FORGET_ACTION, TRANSCRIPT_ACTION)
FORGET_YES = "yes"
FORGET_NO = "no"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatCommand:
    """A command as the user typed it: ``name`` (without prefix) and the rest as ``args``."""

    name: str
    args: str
    chat: ChatRef
    user_id: str
    thread_key: str | None = None  # forum topic / thread: the conversation ``new`` resets
    user_language: str | None = None  # the platform's tag, as IncomingTurn.user_language


@dataclass(frozen=True, slots=True, kw_only=True)
class ButtonAction:
    """A pressed button: its ``action`` and ``value``, in the chat of its message."""

    action: str  # an ACTIONS entry (adapters pass nothing else)
    value: str
    chat: ChatRef
    user_id: str
    thread_key: str | None = None
    user_language: str | None = None  # the presser's, as IncomingTurn.user_language


@dataclass(frozen=True, slots=True, kw_only=True)
class Button:
    """One button: what it says and what pressing it asks for."""

    label: str
    action: str
    value: str
    # It does what can't be undone: platforms that can, show it as such (Slack's red
    # "danger" button).
    danger: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What the caller sees.

    For a command, ``text`` is a new message. For a button press, ``text`` replaces the
    pressed message (``None``: it stays as it is) and ``notice`` is the short note for the
    presser alone (Telegram's callback answer); ``alert`` asks for it to be acknowledged
    (a refusal). ``post`` is a new message for everyone, answering the pressed one in its
    place (thread, topic). ``later`` is work the press still needs (a transcript): the
    adapter shows this answer first (so the press is acknowledged at once), then awaits
    ``later()`` and shows that answer, whose ``notice`` can no longer be a callback answer
    (Telegram posts it; Slack shows it to the presser alone).
    """

    text: str | None = None
    buttons: ButtonRows = ()  # rows of buttons under ``text``
    notice: str | None = None
    alert: bool = False
    # For the caller alone where the platform can do that (Slack: ephemeral); elsewhere
    # it is shown in the chat like any message.
    ephemeral: bool = True
    # ``text`` asks the caller to confirm with one of ``buttons`` (nothing happened yet).
    confirm: bool = False
    post: str | None = None
    later: Callable[[], Awaitable[Answer]] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandProfile:
    """What differs between platforms, as data: spelling, wording, and which buttons it
    shows. With ``buttons`` the core offers menus as buttons (model choice; group policy
    outside private chats); with ``buttons`` or ``confirm_buttons``, ``forget`` asks for
    confirmation first (Yes / Cancel); with neither, ``forget`` deletes at once (there is
    nothing to confirm with)."""

    style: CommandStyle
    # The texts below are msgids of bot.texts: the core shows them in the reader's language.
    help_intro: str = texts.HELP_INTRO
    # Added to ``help`` outside private chats; ``{cmd:…}`` and ``{username}`` (the bot's).
    group_help: str | None = None
    bot_username: str | None = None
    # What ``new`` answers outside private chats instead of resetting anything (Slack:
    # a channel's conversations are its threads, and a command comes from no thread).
    group_new: str | None = None
    buttons: bool = False
    # Buttons only to confirm what can't be undone, on a platform that shows its menus
    # as text (Slack: menus stay text, ``forget`` still asks first).
    confirm_buttons: bool = False
    # The platform's words (ChatRef.kind) for one-to-one chats with the bot: the admin
    # console never lists someone else's.
    private_kinds: frozenset[str] = frozenset()
    # A command's answer reaches its caller alone, wherever it is typed (Slack: ephemeral),
    # so a sign-in link may be sent from a channel; elsewhere only in a private chat.
    answers_in_private: bool = False

    @property
    def confirms(self) -> bool:
        """``forget`` asks first, with buttons."""
        return self.buttons or self.confirm_buttons
