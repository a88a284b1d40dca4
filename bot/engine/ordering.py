"""Strict ordering of turns within one conversation.

One :class:`asyncio.Lock` per conversation key: ``asyncio.Lock`` wakes waiters in FIFO
order, so the turns of a conversation run one after another in the order they arrived
(a second voice note waits for the first reply), while different conversations run
concurrently. This is in-process state: it is enough for the single bot process a
deployment runs (Telegram polling and Slack Socket Mode are single-consumer anyway).
Several processes would need a database advisory lock instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class KeyedLocks:
    """A lock per key, created on demand and dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


def conversation_key(
    *, platform: str, chat_id: str, thread_key: str | None, conversation_id: int | None
) -> str:
    """The ordering key: an explicit conversation, else the chat and thread."""
    if conversation_id is not None:
        return f"conv:{conversation_id}"
    return f"{platform}:{chat_id}:{thread_key or ''}"
