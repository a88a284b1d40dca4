"""How a platform event enters the engine: one flow for every adapter.

1. **Arrive** (synchronously, before any ``await``): the event takes its place in its
   conversation's line, so events that arrive together are answered in arrival order
   however long the next steps take for each.
2. **Claim** its ids (the platform's event id, the message's own ids): exactly once, also
   across restarts. A duplicate gives up its place and goes no further.
3. **Answer**: the turn runs when its place comes up.

Adapters only translate: they call :meth:`Engine.arrive`, :meth:`Arrival.claim` and
:meth:`Arrival.answer`, and release the arrival if they end up not answering.

With the durable turn queue (:mod:`bot.queue`) steps 1 and 2 happen when the event is
accepted (``TurnQueue.accept`` claims the ids and stores the job in one transaction, in
arrival order per conversation); the job's run then gets an arrival from
:meth:`Engine.arrive_job`, already claimed and in its place, which carries the job's
attempt to the turn.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog

from bot.engine.ordering import Place
from bot.engine.ports import IncomingTurn, ReplySink, TurnOutcome

log = structlog.get_logger(__name__)


class _Runs(Protocol):
    async def handle_turn(
        self,
        turn: IncomingTurn,
        sink: ReplySink,
        *,
        stop: asyncio.Event | None = None,
        place: Place | None = None,
    ) -> TurnOutcome: ...


class Arrival:
    """One platform event on its way in (see the module docstring)."""

    def __init__(
        self,
        *,
        platform: str,
        place: Place | None,
        claim_one: Callable[[str, str], Awaitable[bool]] | None,
        runner: _Runs,
        attempt: int = 0,
    ) -> None:
        self.platform = platform
        self._place = place
        self._claim_one = claim_one  # None: claimed already (a queued job's run)
        self._runner = runner
        self.attempt = attempt

    async def claim(self, keys: Sequence[str]) -> bool:
        """``True`` if none of the ids naming this event was seen before.

        Keys are claimed in the order given (the event id, then the message's own ids) and
        the first one already taken stops the rest: two deliveries of one message racing
        each other cannot take one key each and both lose.
        """
        if self._claim_one is None:
            return True
        for key in keys:
            if key and not await self._claim_one(self.platform, key):
                log.info("intake.duplicate", platform=self.platform)
                self.release()
                return False
        return True

    async def answer(
        self, turn: IncomingTurn, sink: ReplySink, *, stop: asyncio.Event | None = None
    ) -> TurnOutcome:
        """Run the turn in this event's place (the place is released when it ends)."""
        place, self._place = self._place, None
        if self.attempt:
            turn = dataclasses.replace(turn, attempt=self.attempt)
        return await self._runner.handle_turn(turn, sink, stop=stop, place=place)

    def release(self) -> None:
        """Give the place up (the event will not be answered); harmless twice."""
        if self._place is not None:
            self._place.release()
            self._place = None
