"""The durable turn queue: what the engine and the adapters see of it.

Every platform event the bot accepts becomes one :class:`Job` *before* the platform gets
its acknowledgement: :meth:`TurnQueue.accept` claims the event's ids (exactly once, in
SQL) and enqueues the job in one transaction, so a duplicate or a retried delivery
enqueues nothing, and a crash after the acknowledgement loses nothing.

Jobs that share a ``lock`` (a conversation key) run one at a time, in the order they were
accepted, on whichever process is free; jobs of different locks run concurrently. A job
whose process died while running it (``kill -9``) is run again: with the in-process queue
at the next start, with procrastinate on another replica once the dead worker's heartbeat
is ``JOB_STALL_SECONDS`` old. A handler therefore sees :attr:`RunningJob.attempt` and must
be idempotent (the engine reuses what the first attempt stored). After
:data:`MAX_ATTEMPTS` runs that crashed or raised, the job's ``give_up`` hook runs instead
(the user is told), never a loop.

Two implementations, chosen by ``DATABASE_URL`` in the composition root: ``inprocess``
(SQLite; one process) and ``procrastinate`` (PostgreSQL; any number of replicas).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Runs of one job (the first included) before it is given up.
MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One accepted platform event, as the queue stores it."""

    handler: str  # the registered handler that runs it ("telegram", "slack")
    payload: dict[str, Any]  # JSON-serialisable: the platform event as received
    lock: str | None = None  # jobs with one lock run one at a time, in accept order


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningJob:
    """A job handed to its handler."""

    id: int
    job: Job
    attempt: int = 0  # 0 on the first run; n after n runs crashed, stalled or raised

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    @property
    def resumed(self) -> bool:
        """An earlier run of this job may have stored or shown part of its answer."""
        return self.attempt > 0


#: Runs a job; raising makes the queue run it again (up to MAX_ATTEMPTS runs).
JobRun = Callable[[RunningJob], Awaitable[None]]
#: Ends a job that will not be run again; the exception (if any) is why.
JobGiveUp = Callable[[RunningJob, BaseException | None], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Handler:
    run: JobRun
    give_up: JobGiveUp


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueHealth:
    """For ``/readyz`` and ``voicebot check``."""

    backend: str  # "inprocess" | "procrastinate"
    connected: bool
    running: int  # jobs this process runs now
    details: dict[str, Any] = field(default_factory=dict)


class TurnQueue(Protocol):
    """The port (see the module docstring)."""

    backend: str

    def register(self, name: str, handler: Handler) -> None:
        """Route jobs whose ``handler`` is ``name`` to ``handler`` (before :meth:`start`)."""
        ...

    def accept(self, *, platform: str, keys: Sequence[str], job: Job) -> Awaitable[bool]:
        """Claim ``keys`` (the event's ids, in order) and enqueue ``job``, as one unit.

        ``False``: one of the keys was claimed before (a duplicate); nothing is enqueued.
        Ordering is decided when this is *called*, before the first ``await``: two events
        of one lock accepted one after the other run in that order.
        Raises :class:`bot.errors.QueueUnavailable` when nothing could be stored (the
        platform should then be told to deliver the event again).
        """
        ...

    async def start(self) -> None:
        """Begin running jobs (resuming those a dead process left unfinished)."""
        ...

    async def drain(self, *, grace: float) -> None:
        """Take no new jobs to run; give running ones ``grace`` seconds, then interrupt
        them (they are run again: elsewhere, or at the next start). Jobs not started stay
        queued. ``accept`` keeps working while the database does."""
        ...

    async def aclose(self) -> None:
        """Release connections (after :meth:`drain`)."""
        ...

    def health(self) -> QueueHealth: ...
