"""Strict ordering of turns within one conversation.

Each conversation key has a FIFO line of places. The turns of a conversation run one
after another in the order they took their place (a second voice note waits for the
first reply), while different conversations run concurrently.

An adapter may take a place synchronously the moment an event arrives (:meth:`reserve`)
and hand it to the engine later: work it must await first (claiming the event in the
database, checking whether the message is addressed to the bot) then cannot reorder two
messages that arrived together, e.g. in one ``getUpdates`` batch.

This is in-process state. Across replicas the turn queue orders a conversation's turns
(procrastinate's per-job ``lock``, :mod:`bot.queue`); the queues use these lines for the
order in which one process accepts events, and the in-process queue (SQLite) for running
them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Place:
    """A place in a conversation's line; :meth:`release` it when done (idempotent)."""

    def __init__(self, line: KeyedLocks, key: str) -> None:
        self.key = key
        self._line = line
        self._turn = asyncio.get_running_loop().create_future()
        self._released = False

    async def wait(self) -> None:
        """Until every place ahead of this one was released."""
        await asyncio.shield(self._turn)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._line._release(self)

    def _admit(self) -> None:
        if not self._turn.done():
            self._turn.set_result(None)


class KeyedLocks:
    """A FIFO line of places per key, created on demand and dropped when empty."""

    def __init__(self) -> None:
        self._lines: dict[str, deque[Place]] = {}

    def reserve(self, key: str) -> Place:
        """Take the next place in ``key``'s line, without waiting (no ``await``)."""
        line = self._lines.setdefault(key, deque())
        place = Place(self, key)
        line.append(place)
        if len(line) == 1:
            place._admit()
        return place

    @asynccontextmanager
    async def hold(self, key: str, place: Place | None = None) -> AsyncIterator[None]:
        """Wait for ``place`` (or a new one at the end of the line), then hold it."""
        if place is not None and place.key != key:
            place.release()
            raise ValueError(f"place reserved for {place.key!r}, not {key!r}")
        place = place or self.reserve(key)
        try:
            await place.wait()
            yield
        finally:
            place.release()

    def _release(self, place: Place) -> None:
        line = self._lines[place.key]
        was_first = line[0] is place
        line.remove(place)
        if not line:
            del self._lines[place.key]
        elif was_first:
            line[0]._admit()

    def __len__(self) -> int:
        return len(self._lines)


def conversation_key(
    *, platform: str, chat_id: str, thread_key: str | None, conversation_id: int | None
) -> str:
    """The ordering key: an explicit conversation, else the chat and thread."""
    if conversation_id is not None:
        return f"conv:{conversation_id}"
    return f"{platform}:{chat_id}:{thread_key or ''}"
