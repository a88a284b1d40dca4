"""How a platform event's job reaches the engine: one flow for every adapter.

An event is *accepted* by the turn queue (:mod:`bot.queue`): ``TurnQueue.accept`` takes
its place in its conversation's line, claims its ids (exactly once, in SQL) and stores it
as a job, in one transaction, before the platform is answered. The job's run, on any
replica, translates the event and answers it through an :class:`Arrival` from
:meth:`Engine.arrive_job`, which carries the job's attempt to the turn (a resumed turn
reuses what an earlier run stored; see :mod:`bot.engine.turn`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Protocol

from bot.engine.ports import IncomingTurn, ReplySink, TurnOutcome


class _Runs(Protocol):
    async def handle_turn(
        self, turn: IncomingTurn, sink: ReplySink, *, stop: asyncio.Event | None = None
    ) -> TurnOutcome: ...


class Arrival:
    """A queued job's event on its way into the engine (see the module docstring)."""

    def __init__(self, *, platform: str, runner: _Runs, attempt: int = 0) -> None:
        self.platform = platform
        self._runner = runner
        self.attempt = attempt  # runs of this event's job before this one

    async def answer(
        self, turn: IncomingTurn, sink: ReplySink, *, stop: asyncio.Event | None = None
    ) -> TurnOutcome:
        """Run the turn (the queue already ordered it within its conversation)."""
        if self.attempt:
            turn = dataclasses.replace(turn, attempt=self.attempt)
        return await self._runner.handle_turn(turn, sink, stop=stop)
