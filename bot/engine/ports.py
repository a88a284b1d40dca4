"""What the platform adapters and the engine exchange (platform-neutral).

Adapters translate platform events into :class:`IncomingTurn` and implement
:class:`ReplySink`, :class:`AudioSource` and :class:`AdminCheck`; the engine does the rest.
Nothing here imports a platform SDK.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from bot.engine.domain import VoiceReply
from bot.errors import BotError
from bot.llm.types import AudioInfo, Usage


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRef:
    """A chat on a platform: a Telegram chat, a Slack channel or DM."""

    platform: str  # the adapter's name, e.g. "telegram"
    chat_id: str  # the platform's id, as text
    kind: str  # the platform's word for the chat (stored and shown, never interpreted)
    title: str | None = None
    private: bool = False  # one-to-one with the bot: the user is its chat's admin
    operator: bool = False  # the operator's own terminal: access lists do not apply

    @property
    def is_private(self) -> bool:
        """A one-to-one chat, where the user is the admin of their own chat."""
        return self.private or self.operator


class AudioSource(Protocol):
    """A recording the engine may fetch (lazily, after access and size checks)."""

    @property
    def declared_size(self) -> int | None:
        """Bytes as the platform declares them, for the refusal before any download."""
        ...

    @property
    def mime_type(self) -> str | None: ...

    @property
    def file_name(self) -> str | None: ...

    @property
    def source_key(self) -> str | None:
        """A stable id of the recording (e.g. ``telegram:<file_unique_id>``), so the same
        audio analysed again is neither downloaded nor converted twice."""
        ...

    async def fetch(self) -> bytes:
        """Download the bytes. Raises :class:`bot.errors.BotError` subclasses."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentMessage:
    """The message a thread replies to, as the platform holds it now."""

    text: str | None  # its words for the model (the bot's mention removed), if any
    recordings: tuple[AudioSource, ...] = ()  # its audio files, in order
    author_id: str | None = None


class ThreadParent(Protocol):
    """The message a thread replies to: the thread's conversation starts from it
    (:mod:`bot.engine.seeding`). Fetched lazily, and only when the bot has not stored it."""

    @property
    def message_id(self) -> str:
        """The platform's id of the message (the ``source_message_id`` of its turn)."""
        ...

    async def fetch(self) -> ParentMessage | None:
        """The message from the platform, or ``None`` when it can't be read (deleted, no
        access, the platform unreachable)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingTurn:
    """One message for the bot: audio and/or text, in a chat and (maybe) a thread."""

    chat: ChatRef
    user_id: str
    thread_key: str | None = None  # forum topic / Slack thread_ts: one conversation each
    text: str | None = None  # the instruction, or a follow-up question
    audio: AudioSource | None = None
    # Further recordings sent with the same message (e.g. several files in one Slack
    # message): heard together with ``audio``, in order, within the same budget.
    more_audio: tuple[AudioSource, ...] = ()
    source_message_id: str | None = None  # the platform message this turn answers
    # The CLI names conversations explicitly: continue this one (``voicebot ask
    # --conversation``), or always start a fresh one.
    conversation_id: int | None = None
    fresh_conversation: bool = False
    # A one-turn model override (``voicebot ask --model``); must be in ALLOWED_MODELS.
    model: str | None = None
    # Runs of this turn's job before this one (bot.queue): an earlier run may have stored
    # the turn and shown part of its answer, which this run reuses or finalises.
    attempt: int = 0
    # A reply inside a thread: the message the thread hangs off, which a new thread's
    # conversation starts from (its audio, text and the bot's answer to it).
    parent: ThreadParent | None = None
    # The sender's language as the platform tags it (Telegram ``language_code``, Slack
    # ``locale``, the terminal's ``LANG``): what the bot speaks while the chat's
    # ``language`` setting is ``auto`` (bot.i18n.choose).
    user_language: str | None = None
    # A one-turn ``voice_reply`` override (``voicebot ask --voice-reply``); ``None``: the
    # chat's setting.
    voice_reply: VoiceReply | None = None

    @property
    def recordings(self) -> tuple[AudioSource, ...]:
        """Every recording of the turn, in order (empty for a text-only turn)."""
        return (self.audio, *self.more_audio) if self.audio is not None else self.more_audio


@dataclass(frozen=True, slots=True, kw_only=True)
class FinalReply:
    """The finished reply, as the user should see it."""

    text: str
    status: Literal["complete", "stopped"]
    model: str
    finish_reason: str | None = None  # "stop", "length"
    notes: tuple[str, ...] = ()  # e.g. "I listened to the first 3:00 of 7:42."
    audio_info: AudioInfo | None = None  # ASR: detected language / emotion
    usage: Usage = field(default_factory=Usage)
    # The reply's own turn id when it offers a Transcript button of the recording it
    # answers (shown on its last message; bot.engine.transcripts).
    transcript_of: int | None = None

    def render(self) -> str:
        """Text plus notes, as one message body (adapters may format notes differently)."""
        parts = [self.text.strip()] if self.text.strip() else []
        parts.extend(self.notes)
        return "\n\n".join(parts)


class ReplySink(Protocol):
    """Where a reply is streamed: implemented by each adapter.

    Call order: ``start`` once, then ``update`` any number of times, then exactly one of
    ``finish`` or ``fail``. The engine never calls ``update`` after ``finish``/``fail``.
    Adapters throttle platform calls themselves; ``update`` must not block for long.
    A turn refused before it is accepted (access, rate limit, a request the model cannot
    serve) gets ``fail`` without ``start``.
    """

    async def start(self) -> None:
        """The turn is accepted: show "typing…" / a thread status."""
        ...

    async def update(self, text: str, delta: str) -> None:
        """``text`` is the whole reply so far, ``delta`` what is new since the last call."""
        ...

    async def finish(self, reply: FinalReply) -> list[str]:
        """Finalise the reply; return the platform message ids it occupies.

        Returns only once the platform confirmed the whole final text; raises
        :class:`bot.errors.Undelivered` when it could not be delivered in time.
        """
        ...

    async def fail(self, error: BotError, partial_text: str) -> list[str]:
        """Show ``error.user_message`` (keeping ``partial_text`` if any was shown)."""
        ...

    def track(self, on_visible: Callable[[list[str]], Awaitable[None]]) -> None:
        """Have ``on_visible`` called with the ids of the messages the reply occupies
        whenever they change while it streams (a record for crash recovery)."""
        ...

    def interrupt(self) -> None:
        """The turn was cancelled mid-way (it will be run again): stop at once, show
        nothing more."""
        ...

    async def remove(self, message_ids: Sequence[str]) -> None:
        """Delete messages an earlier, interrupted run of this turn showed (best effort)."""
        ...

    async def deliver_late(
        self, text: str, *, reply_to: str | None, stale: Sequence[str] = ()
    ) -> list[str]:
        """Before this turn's reply: deliver ``text``, a reply an earlier turn could not
        deliver, in messages of its own (answering ``reply_to`` where the platform can),
        after removing the ``stale`` messages that showed part of it.
        Raises :class:`bot.errors.Undelivered` if it fails again."""
        ...

    async def follow_up(self, message: str | BotError) -> list[str]:
        """After the reply: post ``message`` in messages of its own, in the same place,
        answering the reply where the platform can (a transcript). A ``str`` is shown as
        plain text, exactly; an error as its ``user_message``, commands spelt for the
        platform. Raises :class:`bot.errors.Undelivered` if it can't be delivered."""
        ...

    async def voice(self, ogg: bytes, seconds: float) -> str:
        """After the final text: the spoken reply as a voice note (OGG/Opus, never empty,
        ``seconds`` long) answering the user's message, in the reply's place. Returns the
        platform's id of the note; raises :class:`bot.errors.Undelivered` if it could not
        be sent in time. Called at most once per reply."""
        ...


class AdminCheck(Protocol):
    """The platform's own admin check (BOT_ADMINS is applied by the engine)."""

    async def is_admin(self, chat: ChatRef, user_id: str) -> bool: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleScope:
    """Whom a console sign-in is for, and what they may manage: ``chats`` (``chats.id``;
    ``None``: every chat, a BOT_ADMINS member)."""

    platform: str
    user_id: str
    chats: tuple[int, ...] | None


class ConsoleLinks(Protocol):
    """Makes one-time sign-in links to the admin console (bot.web.console)."""

    async def issue(self, scope: ConsoleScope) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceNoteSent:
    """A spoken reply the platform confirmed: the note's id there and its duration."""

    message_id: str
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnOutcome:
    """What became of a turn (for adapters' bookkeeping and tests)."""

    status: Literal["complete", "stopped", "failed", "refused", "duplicate", "undelivered"]
    conversation_id: int | None = None
    user_turn_id: int | None = None
    assistant_turn_id: int | None = None
    reply: FinalReply | None = None
    error: BotError | None = None
    message_ids: tuple[str, ...] = ()
    # Seconds of this turn's own recording that the request carried (history not counted).
    audio_seconds_sent: float | None = None
    voice_note: VoiceNoteSent | None = None  # the spoken reply, if one was sent
