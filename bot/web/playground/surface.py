"""The playground's :class:`~bot.delivery.surface.Surface`: a reply's events for the page.

Each reply the page asks for has a *channel* (:class:`ReplyChannels`), opened by the
request that posted the recording and read by it as a server-sent event stream. The job
that answers the recording (run by the turn queue) streams through the one delivery sink
into a :class:`WebSurface`, which puts each call on that channel as an event:
``working``, ``progress`` (the whole text so far), ``final`` (with the Transcript
button), ``follow``, ``voice`` (the voice note as a data URL), ``notice`` (an error),
``discard``, and ``done`` once the turn is over. Putting an event never waits and never
fails: a page that went away (or a turn run on another replica) only misses the events.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.commands.ports import ButtonRows


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: its name and its JSON data."""

    name: str
    data: dict[str, Any]


class ReplyChannels:
    """The open channels of this process, by reply id."""

    def __init__(self) -> None:
        self._channels: dict[str, asyncio.Queue[Event]] = {}

    def open(self, reply: str) -> asyncio.Queue[Event]:
        """A channel for ``reply``'s events (the caller reads it, then :meth:`close`\\s)."""
        channel: asyncio.Queue[Event] = asyncio.Queue()
        self._channels[reply] = channel
        return channel

    def close(self, reply: str) -> None:
        self._channels.pop(reply, None)

    def put(self, reply: str, name: str, **data: Any) -> None:
        """Send an event to ``reply``'s page, if it is still listening here."""
        channel = self._channels.get(reply)
        if channel is not None:
            channel.put_nowait(Event(name, data))


class WebSurface:
    """One reply's place in the page (see the module docstring)."""

    # A local stream costs nothing: show the text as often as the sink coalesces it.
    progress_interval = 0.1
    keepalive: float | None = None
    indicate_every: float | None = None

    def __init__(self, *, channels: ReplyChannels, reply: str) -> None:
        self._channels = channels
        self._reply = reply
        self.reply_to: str | None = reply
        self._shown: list[str] = []  # ids of the page's messages this reply occupies
        self._count = 0
        self._voice: str | None = None

    def _emit(self, name: str, **data: Any) -> None:
        self._channels.put(self._reply, name, **data)

    def _id(self) -> str:
        self._count += 1
        return f"{self._reply}:{self._count}"

    def ready_in(self) -> float:
        return 0.0

    async def indicate(self) -> None:
        self._emit("working")

    async def progress(self, text: str, *, plain: bool) -> None:
        if not self._shown:
            self._shown.append(self._id())
        self._emit("progress", text=text, plain=plain)

    async def final(self, text: str, *, plain: bool, buttons: ButtonRows = ()) -> list[str]:
        if not self._shown:
            self._shown.append(self._id())
        shown = [
            {"label": b.label, "action": b.action, "value": b.value} for row in buttons for b in row
        ]
        self._emit("final", text=text, plain=plain, buttons=shown)
        return list(self._shown)

    async def follow(self, text: str) -> list[str]:
        self._emit("follow", text=text)
        return [self._id()]

    async def voice(self, ogg: bytes, seconds: float) -> str:
        if self._voice is None:
            self._voice = self._id()
            src = "data:audio/ogg;base64," + base64.b64encode(ogg).decode("ascii")
            self._emit("voice", src=src, seconds=round(seconds, 2))
        return self._voice

    async def notice(self, text: str) -> list[str]:
        self._emit("notice", text=text)
        return [self._id()]

    async def discard(self) -> None:
        self._emit("discard")
        self._shown = []

    async def remove(self, message_ids: Sequence[str]) -> None:
        # An interrupted earlier run's messages were in a page that is gone or reloaded.
        del message_ids

    def message_ids(self) -> list[str]:
        return list(self._shown)

    def forget(self) -> None:
        self._shown = []
