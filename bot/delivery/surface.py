"""What a chat platform implements so that :class:`~bot.delivery.sink.StreamingSink` can
stream a reply into it: a *surface* is one reply's place on the platform (a Telegram draft
or group message, a Slack thread stream or a posted DM message).

A surface only talks to its platform. It keeps what the platform *confirmed* (the message
ids and the text each one shows), so calling :meth:`Surface.final` again after a failure
continues where the platform stopped, never showing a part twice. It translates its SDK's
exceptions into :class:`~bot.errors.DeliveryError` subclasses (its error classification);
pacing, coalescing, retries and the truth about what was delivered live in the sink.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.commands.ports import ButtonRows


class Surface(Protocol):
    """One reply's place on a chat platform."""

    #: The smallest gap, in seconds, between two progress calls (the platform's tier).
    progress_interval: float
    #: Show the same text again after this many idle seconds (a draft expires), or never.
    keepalive: float | None
    #: Repeat :meth:`indicate` this often until the first text (a chat action lasts 5 s).
    indicate_every: float | None
    #: The platform message the reply answers (Telegram replies to it; Slack ignores it).
    reply_to: str | None

    def ready_in(self) -> float:
        """Seconds until the platform's pacing allows the next progress call (0: now)."""
        ...

    async def indicate(self) -> None:
        """Show that the bot is working ("typing…", a thread status). Best effort."""
        ...

    async def progress(self, text: str, *, plain: bool) -> None:
        """Show ``text`` (Markdown), the whole reply so far, as a preview."""
        ...

    async def final(self, text: str, *, plain: bool, buttons: ButtonRows = ()) -> list[str]:
        """Show exactly ``text`` for good and return the ids of the messages holding it,
        with ``buttons`` under the last one.

        Returns only once the platform confirmed every part; raises a ``DeliveryError``
        otherwise, keeping what was confirmed so a later call continues from there.
        """
        ...

    async def follow(self, text: str) -> list[str]:
        """``text`` (plain, exactly) in messages of its own after the reply, in its place,
        answering its last message (or ``reply_to``) where the platform can. A call again
        with the same text after a failure sends only the parts not yet confirmed."""
        ...

    async def voice(self, ogg: bytes, seconds: float) -> str:
        """The spoken reply as a voice note (OGG/Opus, ``seconds`` long) after the reply,
        in its place, answering ``reply_to`` where the platform can; returns the note's
        id. Once confirmed, a call again returns that id without sending it twice."""
        ...

    async def notice(self, text: str) -> list[str]:
        """A short text of ours (an error) in its own message, as plain text."""
        ...

    async def discard(self) -> None:
        """Remove what this reply showed so far (best effort) and start afresh: the next
        call posts new messages."""
        ...

    async def remove(self, message_ids: Sequence[str]) -> None:
        """Delete these messages of an earlier reply (best effort: failures pass)."""
        ...

    def message_ids(self) -> list[str]:
        """The ids of the messages this reply occupies now, in order."""
        ...

    def forget(self) -> None:
        """Start afresh without removing anything: the next call posts new messages."""
        ...
