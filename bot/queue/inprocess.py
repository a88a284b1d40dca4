"""The embedded turn queue: jobs stored in SQL (``queued_jobs``), run by this one process.

A job's row is written in the transaction that claims its event and deleted when the job
ends (done or given up), so the rows found at :meth:`InProcessQueue.start` are exactly
what a dead or drained process left unfinished. Ordering per lock is the in-process line
of :class:`~bot.engine.ordering.KeyedLocks`: enough for the single process a SQLite
deployment runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from bot.config import Settings
from bot.engine.ordering import KeyedLocks, Place
from bot.errors import QueueUnavailable
from bot.metrics import Metrics
from bot.queue.claims import claim_and_enqueue
from bot.queue.port import MAX_ATTEMPTS, Handler, Job, QueueHealth, RunningJob
from bot.storage.database import Database
from bot.storage.tables import QueuedJob, as_utc, utcnow

log = structlog.get_logger(__name__)

BACKEND = "inprocess"

_Accepted = tuple[int, Job, float, Place | None]  # job id, job, when accepted, its place


class InProcessQueue:
    """:class:`~bot.queue.port.TurnQueue` on the bot's own database, run in this process.

    Call :meth:`start` before the adapters accept events: the jobs a dead process left
    then take their places in their locks' lines ahead of anything new.
    """

    backend = BACKEND

    def __init__(
        self, *, database: Database, settings: Settings, metrics: Metrics, retry_pause: float = 0.5
    ) -> None:
        self._db = database
        self._metrics = metrics
        self._retry_pause = retry_pause  # seconds × runs so far, before a job is run again
        self._slots = asyncio.Semaphore(settings.WORKER_CONCURRENCY)
        self._locks = KeyedLocks()
        self._handlers: dict[str, Handler] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}  # job id → its task, waiting or running
        self._running: set[int] = set()
        self._open = False  # started and not draining: accepted jobs get a task
        self._loading: list[_Accepted] | None = None  # during start(): accepted meanwhile

    def register(self, name: str, handler: Handler) -> None:
        """Route jobs whose ``handler`` is ``name`` to ``handler`` (before :meth:`start`)."""
        self._handlers[name] = handler

    def accept(self, *, platform: str, keys: Sequence[str], job: Job) -> Awaitable[bool]:
        """See :meth:`bot.queue.port.TurnQueue.accept`. Await the result: until then the
        job holds its place in its lock's line."""
        # Taken now, before the claim's first await: this call's order is the run order.
        place = self._locks.reserve(job.lock) if job.lock is not None else None
        return self._accept(platform, keys, job, place, time.monotonic())

    async def _accept(
        self, platform: str, keys: Sequence[str], job: Job, place: Place | None, accepted: float
    ) -> bool:

        async def enqueue(session: AsyncSession) -> int:
            row = QueuedJob(handler=job.handler, lock=job.lock, payload=job.payload)
            session.add(row)
            await session.flush()
            return row.id

        try:
            job_id = await claim_and_enqueue(
                self._db, platform=platform, keys=keys, enqueue=enqueue
            )
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            _release(place)
            log.warning("queue.accept_failed", platform=platform, error=_name(exc))
            raise QueueUnavailable(_name(exc)) from exc
        except BaseException:
            _release(place)
            raise
        if job_id is None:
            _release(place)
            self._metrics.duplicate_events.labels(platform).inc()
            return False
        if self._open and job_id not in self._tasks:
            self._spawn(job_id, job, attempt=0, accepted=accepted, place=place)
        elif self._loading is not None:  # start() may have read the rows before this one
            self._loading.append((job_id, job, accepted, place))
        else:  # not started, or draining: the row stays stored for the next start
            _release(place)
        return True

    async def start(self) -> None:
        """Resume the jobs left unfinished (in acceptance order), then run new ones."""
        loading: list[_Accepted] = []
        self._loading = loading
        try:
            async with self._db.sessions() as session:
                rows = (await session.scalars(select(QueuedJob).order_by(QueuedJob.id))).all()
        except BaseException:
            for *_, place in loading:
                _release(place)  # their rows stay stored, for the next start
            raise
        finally:
            self._loading = None
        now, wall = time.monotonic(), utcnow()
        for row in rows:
            if row.id not in self._tasks:
                job = Job(handler=row.handler, payload=row.payload, lock=row.lock)
                place = self._locks.reserve(job.lock) if job.lock is not None else None
                waited = (wall - as_utc(row.accepted_at)).total_seconds()
                self._spawn(row.id, job, attempt=row.attempts, accepted=now - waited, place=place)
        # Accepted while the rows were read (no await since): run those the read missed.
        for job_id, job, accepted, place in loading:
            if job_id in self._tasks:
                _release(place)
            else:
                self._spawn(job_id, job, attempt=0, accepted=accepted, place=place)
        self._open = True
        log.info("queue.resumed", count=len(rows))

    async def drain(self, *, grace: float) -> None:
        """Start no more jobs; give running ones ``grace`` seconds, then interrupt them.

        Their rows stay (with the runs counted), as do those of jobs not started: the
        next :meth:`start` runs them.
        """
        self._open = False
        running = [self._tasks[i] for i in self._running]
        if running:
            await asyncio.wait(running, timeout=grace)
        interrupted = len(self._running)
        await self._cancel_all()
        log.info("queue.drained", interrupted=interrupted)

    async def aclose(self) -> None:
        """Cancel whatever is left (the database is the caller's to dispose)."""
        self._open = False
        await self._cancel_all()

    def health(self) -> QueueHealth:
        waiting = len(self._tasks) - len(self._running)
        return QueueHealth(
            backend=BACKEND, connected=True, running=len(self._running), details={"queued": waiting}
        )

    def _spawn(
        self, job_id: int, job: Job, *, attempt: int, accepted: float, place: Place | None
    ) -> None:
        task = asyncio.create_task(self._job(job_id, job, attempt, accepted, place))
        self._tasks[job_id] = task
        self._gauges()

    async def _job(
        self, job_id: int, job: Job, attempt: int, accepted: float, place: Place | None
    ) -> None:
        try:
            if place is not None:
                await place.wait()
            async with self._slots:
                if not self._open:
                    return  # draining: the row stays for the next start
                self._running.add(job_id)
                self._gauges()
                await self._runs(job_id, job, attempt, accepted)
        except asyncio.CancelledError:
            if job_id in self._running:
                self._metrics.jobs.labels("interrupted").inc()
                log.info("queue.interrupted", job_id=job_id, handler=job.handler)
            raise
        except Exception:
            # The handler's hooks contain their own errors; this is the database failing.
            log.exception("queue.job_failed", job_id=job_id, handler=job.handler)
        finally:
            self._running.discard(job_id)
            self._tasks.pop(job_id, None)
            self._gauges()
            # Released only now: the next job of this lock waits for this one's end.
            _release(place)

    async def _runs(self, job_id: int, job: Job, runs: int, accepted: float) -> None:
        handler = self._handlers.get(job.handler)
        if handler is None:
            log.error("queue.unknown_handler", job_id=job_id, handler=job.handler)
            await self._delete(job_id)
            return
        if runs == 0:
            self._metrics.job_latency.labels(BACKEND).observe(time.monotonic() - accepted)
        error: Exception | None = None
        attempt = runs  # a resumed job goes on from the runs stored
        for attempt in range(runs, MAX_ATTEMPTS):
            if error is not None:
                self._metrics.jobs.labels("retried").inc()
                log.warning("queue.retry", job_id=job_id, attempt=attempt, error=_name(error))
                # The place stays held through the pause: the lock's next job still waits.
                await asyncio.sleep(self._retry_pause * attempt)
                if not self._open:
                    return  # draining: the row, its runs counted, waits for the next start
            try:
                # Counted before the run, so a run that takes the process down counts too.
                await self._write(
                    update(QueuedJob)
                    .where(QueuedJob.id == job_id)
                    .values(attempts=attempt + 1, started_at=utcnow())
                )
                await handler.run(RunningJob(id=job_id, job=job, attempt=attempt))
            except Exception as exc:
                error = exc
            else:
                await self._delete(job_id)
                self._metrics.jobs.labels("done").inc()
                return
        # Every run raised, or (no error) earlier runs took the process down with them.
        running = RunningJob(id=job_id, job=job, attempt=attempt)
        log.warning("queue.given_up", job_id=job_id, attempt=attempt, error=_name(error))
        try:
            await handler.give_up(running, error)
        except Exception:
            log.exception("queue.give_up_failed", job_id=job_id)
        # Deleted even if the hook failed (a job given up must not come back); not if it
        # was interrupted: its runs are counted, so the next start gives it up again.
        await self._delete(job_id)
        self._metrics.jobs.labels("given_up").inc()

    async def _delete(self, job_id: int) -> None:
        await self._write(delete(QueuedJob).where(QueuedJob.id == job_id))

    async def _write(self, statement: Executable) -> None:
        async with self._db.sessions() as session, session.begin():
            await session.execute(statement)

    async def _cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _gauges(self) -> None:
        self._metrics.jobs_running.set(len(self._running))
        self._metrics.queue_depth.set(len(self._tasks) - len(self._running))


def _release(place: Place | None) -> None:
    if place is not None:
        place.release()


def _name(error: BaseException | None) -> str:
    return type(error).__name__ if error else "crashed"
