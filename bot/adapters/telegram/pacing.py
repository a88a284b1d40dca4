"""Per-chat pacing of Telegram calls, shared by every reply streaming into the chat.

Telegram allows about one message per second per chat (Bots FAQ) and answers floods with
429 ``retry_after``. Each chat gets slots at least ``interval`` apart; a 429 blocks the
chat for ``retry_after`` and doubles its interval, which relaxes again on success.

A reply's final text is *urgent*: the user is waiting for it and the previews it replaces
are already stale. An urgent call skips the queue at most once per interval (so a chat
still averages the pace), never while a 429's ``retry_after`` holds.

Telegram also limits a bot as a whole (about 30 messages a second, Bots FAQ). A
:class:`FairShare` splits one such budget evenly among the chats streaming now: with more
active chats than the budget serves at their own pace, every chat's previews are spaced
``active chats / rate`` apart, the same for all, so none starves behind the others (a
queue of previews would); the previews skipped meanwhile are simply newer text at the next
slot. Final texts keep their queue skip: they are one per reply.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

# At most this many times the configured interval: with the default 1 s pace that is one call
# per 4 s, already slower than Telegram's slowest documented pace (20 messages a minute in a
# group). A larger cap only made a late final message wait past DELIVERY_TIMEOUT for a slot.
_MAX_SLOWDOWN = 4.0
_RELAX = 0.8  # each successful call shrinks a raised interval by this factor


@dataclass
class _ChatPace:
    interval: float
    next_at: float = 0.0
    blocked_until: float = 0.0  # Telegram's retry_after: no call at all before then
    urgent_at: float = float("-inf")  # when an urgent call last skipped the queue


class FairShare:
    """One bot-wide budget of ``rate`` calls a second, split evenly among active chats.

    A chat is active while it took a slot within the last ``window`` seconds (or two of
    the current spacings, when that is longer: a chat waiting its turn stays counted).
    """

    def __init__(self, *, rate: float, window: float = 3.0) -> None:
        self.rate = rate
        self.window = window
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def note(self, key: Hashable, now: float) -> None:
        """``key`` took a slot at ``now``."""
        self._seen[key] = now
        self._seen.move_to_end(key)

    def spacing(self, now: float) -> float:
        """Seconds between two calls of one chat so that all of them fit the budget."""
        cutoff = now - max(self.window, 2 * len(self._seen) / self.rate)
        while self._seen and next(iter(self._seen.values())) < cutoff:
            self._seen.popitem(last=False)
        return len(self._seen) / self.rate


class Pacer:
    """Hands out call slots per key (a chat id), ``interval`` seconds apart at least, and
    further apart when a :class:`FairShare` ``share`` says the bot as a whole is busy."""

    def __init__(self, *, interval: float, share: FairShare | None = None) -> None:
        self.base = interval
        self._share = share
        self._chats: dict[Hashable, _ChatPace] = {}

    def _pace(self, key: Hashable) -> _ChatPace:
        pace = self._chats.get(key)
        if pace is None:
            if len(self._chats) > 10_000:  # forget idle chats
                now = time.monotonic()
                self._chats = {k: v for k, v in self._chats.items() if v.next_at > now}
            pace = self._chats[key] = _ChatPace(interval=self.base)
        return pace

    def delay(self, key: Hashable) -> float:
        """Seconds until the next slot, without taking it."""
        return max(0.0, self._pace(key).next_at - time.monotonic())

    async def wait(self, key: Hashable, *, urgent: bool = False) -> None:
        """Take the next slot of ``key`` and sleep until it comes.

        ``urgent`` (a final text): go now if the chat is not blocked by a 429 and no other
        urgent call went within the last interval; the calls after it keep their spacing.

        A waiter cancelled before its slot (a delivery that ran out of time, a draft
        superseded by the final text) gives the slot back when no one took a later one, so
        an abandoned wait does not push the next call further out.
        """
        pace = self._pace(key)
        now = time.monotonic()
        spacing = pace.interval
        if self._share is not None:
            spacing = max(spacing, self._share.spacing(now))
        if urgent and now >= pace.blocked_until and now - pace.urgent_at >= pace.interval:
            pace.urgent_at = now
            pace.next_at = max(pace.next_at, now + spacing)
            if self._share is not None:
                self._share.note(key, now)
            return
        at = max(now, pace.next_at, pace.blocked_until)
        taken = pace.next_at = at + spacing
        if self._share is not None:
            self._share.note(key, at)
        if at <= now:
            return
        try:
            await asyncio.sleep(at - now)
        except asyncio.CancelledError:
            if pace.next_at == taken:
                pace.next_at = at
            raise

    def penalize(self, key: Hashable, retry_after: float) -> None:
        """Telegram said "retry after N": nothing before then, and slower afterwards."""
        pace = self._pace(key)
        until = time.monotonic() + retry_after
        pace.next_at = max(pace.next_at, until)
        pace.blocked_until = max(pace.blocked_until, until)
        pace.interval = min(pace.interval * 2, self.base * _MAX_SLOWDOWN)

    def relax(self, key: Hashable) -> None:
        pace = self._pace(key)
        if pace.interval > self.base:
            pace.interval = max(self.base, pace.interval * _RELAX)
