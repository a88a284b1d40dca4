"""The turn queue on PostgreSQL: procrastinate jobs, run by every replica.

A job is a row of procrastinate's ``procrastinate_jobs``, inserted in the transaction that
claims its event (:func:`~bot.queue.claims.claim_and_enqueue`, on the bot's SQLAlchemy
session), so claiming and enqueueing are one unit. A replica's procrastinate worker
fetches jobs in id order, at most one ``doing`` job per lock (a unique index), so the jobs
of one conversation run one at a time in acceptance order, on whichever replica is free.

What this module adds to procrastinate:

* a freed lock wakes the workers (procrastinate only notifies on insert; the next job of
  a lock would wait for the next poll): :class:`_Worker`;
* stalled jobs (their worker's heartbeat is ``JOB_STALL_SECONDS`` old) are queued again,
  by one replica at a time (an advisory lock), keeping their ids and so their places;
* a job interrupted by :meth:`PostgresQueue.drain` goes back to ``todo``: :class:`_Retry`;
* a worker that dies of a database error is started again.

procrastinate is pinned (``==3.10.0``): :class:`_Worker` overrides a private method and the
migration ``0003`` applies this version's schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Final

import structlog
from procrastinate import App, JobContext, PsycopgConnector
from procrastinate import jobs as pjobs
from procrastinate import sql as psql
from procrastinate.connector import Notify
from procrastinate.exceptions import ConnectorException
from procrastinate.job_context import JobResult
from procrastinate.retry import BaseRetryStrategy, RetryDecision
from procrastinate.worker import Worker
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.engine.ordering import KeyedLocks, Place
from bot.errors import QueueUnavailable
from bot.metrics import Metrics
from bot.queue.claims import claim_and_enqueue
from bot.queue.pgurl import conninfo_from_url
from bot.queue.port import MAX_ATTEMPTS, Handler, Job, QueueHealth, RunningJob
from bot.storage.database import Database

log = structlog.get_logger(__name__)

BACKEND: Final = "procrastinate"
QUEUE: Final = "turns"
TASK: Final = "voicebot.event"

# The composite type and function of procrastinate 3.10's schema (sql/schema.sql).
_DEFER = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW("
    "CAST(:queue AS varchar), CAST(:task AS varchar), 0, CAST(:lock AS text), NULL, "
    "CAST(:args AS jsonb), NULL)::procrastinate_job_to_defer_v1])) AS id"
)
# The payload procrastinate's insert trigger sends, on the channel a worker of QUEUE
# listens to; sent only if a job of the lock (or the job itself) can run now.
_WAKE: Final = """
SELECT pg_notify(%(channel)s, json_build_object('type', 'job_inserted', 'job_id', id)::text)
  FROM procrastinate_jobs
 WHERE status = 'todo' AND (id = %(job_id)s OR lock = %(lock)s)
   AND (scheduled_at IS NULL OR scheduled_at <= now())
 LIMIT 1
"""
_CHANNEL: Final = f"procrastinate_queue_v1#{QUEUE}"
_DEPTH: Final = (
    "SELECT count(*) AS depth FROM procrastinate_jobs WHERE queue_name = %(queue)s"
    " AND status = 'todo'"
)
# Key of the advisory lock one replica at a time holds to queue stalled jobs again.
_RECOVERY_LOCK: Final = 0x766F_6963_6562_6F74  # "voicebot"


class PostgresQueue:
    """:class:`~bot.queue.port.TurnQueue` on procrastinate (PostgreSQL; any replicas).

    ``worker_name`` names this replica's worker in procrastinate's logs; ``retry_wait``
    is the pause (seconds) before a job that raised runs again.
    """

    backend = BACKEND

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        metrics: Metrics,
        worker_name: str | None = None,
        retry_wait: float = 1.0,
    ) -> None:
        self._db = database
        self._settings = settings
        self._metrics = metrics
        self._worker_name = worker_name
        self._connector = _Connector(
            conninfo=conninfo_from_url(settings.DATABASE_URL),
            min_size=1,
            # Listening, fetching, heartbeats and finishing jobs: a few connections do.
            max_size=5,
            json_loads=_load_args,
        )
        self._app = App(connector=self._connector)
        self._app.task(name=TASK, queue=QUEUE, pass_context=True, retry=_Retry(retry_wait))(
            self._run_job
        )
        self._handlers: dict[str, Handler] = {}
        self._accepting = KeyedLocks()  # this process's accept order, per lock
        self._worker: _Worker | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._opened = False
        self._draining = False
        self._stopping = asyncio.Event()  # set with _draining: ends the loops' pauses
        self._connected = True
        self._running = 0
        self._depth: int | None = None

    def register(self, name: str, handler: Handler) -> None:
        """Route jobs whose ``handler`` is ``name`` to ``handler`` (before :meth:`start`)."""
        self._handlers[name] = handler

    def accept(self, *, platform: str, keys: Sequence[str], job: Job) -> Awaitable[bool]:
        """See :meth:`bot.queue.port.TurnQueue.accept`; await the result."""
        # Job ids follow insert order, and ids are the run order. Two accepts of one lock
        # awaited together could insert (or commit) in either order: this process's
        # line for the lock, taken now, makes the second insert wait for the first commit.
        place = self._accepting.reserve(job.lock) if job.lock is not None else None
        args = json.dumps(
            {"handler": job.handler, "payload": job.payload, "accepted_at": time.time()}
        )
        return self._accept(platform, list(keys), job.lock, args, place)

    async def _accept(
        self, platform: str, keys: list[str], lock: str | None, args: str, place: Place | None
    ) -> bool:
        async def enqueue(session: AsyncSession) -> int:
            params = {"queue": QUEUE, "task": TASK, "lock": lock, "args": args}
            return int((await session.execute(_DEFER, params)).scalar_one())

        try:
            if place is not None:
                await place.wait()
            job_id = await claim_and_enqueue(
                self._db, platform=platform, keys=keys, enqueue=enqueue
            )
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            self._connected = False
            log.warning("queue.accept_failed", platform=platform, error=type(exc).__name__)
            raise QueueUnavailable(type(exc).__name__) from exc
        finally:
            if place is not None:
                place.release()
        self._connected = True
        if job_id is None:
            self._metrics.duplicate_events.labels(platform).inc()
            return False
        return True

    async def start(self) -> None:
        """Open the pool and run this replica's worker and upkeep loop in the background."""
        await self._app.open_async()
        self._opened = True
        self._draining = False
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._supervise(), name="queue.worker"),
            asyncio.create_task(self._upkeep(), name="queue.upkeep"),
        ]
        log.info("queue.started", backend=BACKEND, worker=self._worker_name)

    async def drain(self, *, grace: float) -> None:
        """Fetch no more jobs; give running ones ``grace`` seconds, then interrupt them.

        An interrupted job goes back to ``todo`` (its run counted) for another replica or
        the next start; jobs not started stay queued. :meth:`accept` keeps working.
        """
        self._stop()
        interrupted = self._running
        worker = self._worker
        if worker is not None:
            worker.shutdown_graceful_timeout = grace
            worker.stop()  # type: ignore[no-untyped-call]
        supervisor = self._tasks[0] if self._tasks else None
        if supervisor is not None:
            # The worker's own shutdown: wait for jobs, cancel them, persist, unregister.
            done, _ = await asyncio.wait([supervisor], timeout=grace + 30)
            if not done:
                log.warning("queue.drain_timeout", grace=grace)
        await self._cancel_tasks()
        log.info("queue.drained", running=interrupted)

    async def aclose(self) -> None:
        """Stop what still runs and close the connection pool (the database is the caller's)."""
        self._stop()
        if self._worker is not None:
            self._worker.shutdown_graceful_timeout = 0
            self._worker.stop()  # type: ignore[no-untyped-call]
        await self._cancel_tasks()
        if self._opened:
            self._opened = False
            with contextlib.suppress(ConnectorException):
                await self._app.close_async()

    def health(self) -> QueueHealth:
        worker_id = self._worker.worker_id if self._worker is not None else None
        return QueueHealth(
            backend=BACKEND,
            connected=self._connected,
            running=self._running,
            details={"worker_id": worker_id, "depth": self._depth},
        )

    # --- the worker -----------------------------------------------------------------

    async def _supervise(self) -> None:
        """Run the worker; start a new one if it dies (a database error stops it)."""
        stall = self._settings.JOB_STALL_SECONDS
        pause = self._settings.JOB_POLL_INTERVAL
        while not self._draining:
            began = time.monotonic()
            self._worker = _Worker(
                app=self._app,
                queues=[QUEUE],
                name=self._worker_name,
                concurrency=self._settings.WORKER_CONCURRENCY,
                fetch_job_polling_interval=self._settings.JOB_POLL_INTERVAL,
                listen_notify=True,
                install_signal_handlers=False,
                update_heartbeat_interval=max(1.0, stall / 3),
                stalled_worker_timeout=stall,
                delete_jobs=pjobs.DeleteJobCondition.SUCCESSFUL,  # failed ones stay, to inspect
            )
            try:
                await self._worker.run()  # type: ignore[no-untyped-call]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._connected = False
                log.warning("queue.worker_failed", error=type(exc).__name__)
            if time.monotonic() - began > 60:  # it had been working: not a failing restart
                pause = self._settings.JOB_POLL_INTERVAL
            await self._pause(pause)
            pause = min(pause * 2, 30.0)

    async def _run_job(
        self, context: JobContext, *, handler: str, payload: dict[str, Any], accepted_at: float
    ) -> None:
        """The procrastinate task: one run of a job (raising makes procrastinate retry it)."""
        queued = context.job
        assert queued.id is not None
        attempt = queued.attempts
        running = RunningJob(
            id=queued.id,
            job=Job(handler=handler, payload=dict(payload), lock=queued.lock),
            attempt=attempt,
        )
        hooks = self._handlers.get(handler)
        if hooks is None:
            log.error("queue.unknown_handler", job_id=running.id, handler=handler)
            self._metrics.jobs.labels("given_up").inc()
            return
        if attempt == 0:
            self._metrics.job_latency.labels(BACKEND).observe(max(0.0, time.time() - accepted_at))
        self._running += 1
        self._metrics.jobs_running.inc()
        try:
            if attempt >= MAX_ATTEMPTS:  # its runs crashed, stalled or were interrupted
                await self._give_up(hooks, running, None)
                return
            try:
                await hooks.run(running)
            except Exception as exc:
                if attempt + 1 >= MAX_ATTEMPTS:
                    await self._give_up(hooks, running, exc)
                    return
                self._metrics.jobs.labels("retried").inc()
                log.warning(
                    "queue.retry", job_id=running.id, attempt=attempt, error=type(exc).__name__
                )
                raise
            self._metrics.jobs.labels("done").inc()
        except asyncio.CancelledError:
            # drain's grace ran out (procrastinate cancels the task): _Retry requeues it.
            self._metrics.jobs.labels("interrupted").inc()
            log.info("queue.interrupted", job_id=running.id, handler=handler)
            raise
        finally:
            self._running -= 1
            self._metrics.jobs_running.dec()

    async def _give_up(
        self, hooks: Handler, running: RunningJob, exc: BaseException | None
    ) -> None:
        log.warning(
            "queue.given_up",
            job_id=running.id,
            attempt=running.attempt,
            error=type(exc).__name__ if exc else "crashed",
        )
        try:
            await hooks.give_up(running, exc)
        except Exception:
            log.exception("queue.give_up_failed", job_id=running.id)
        # The task returns normally even if the hook failed: a job given up never returns.
        self._metrics.jobs.labels("given_up").inc()

    # --- upkeep: stalled jobs, depth ------------------------------------------------

    async def _upkeep(self) -> None:
        every = min(5.0, self._settings.JOB_STALL_SECONDS / 3)
        while not self._draining:
            try:
                await self._recover_stalled()
                row = await self._connector.execute_query_one_async(_DEPTH, queue=QUEUE)
                self._depth = int(row["depth"])
                self._metrics.queue_depth.set(self._depth)
                self._connected = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._connected = False
                log.warning("queue.upkeep_failed", error=type(exc).__name__)
            await self._pause(every)

    def _stop(self) -> None:
        self._draining = True
        self._stopping.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _recover_stalled(self) -> None:
        """Queue again the jobs of workers whose heartbeat is ``JOB_STALL_SECONDS`` old."""
        manager = self._app.job_manager
        async with self._connector.pool.connection() as conn, conn.transaction():
            # One replica at a time: two could otherwise both read a stalled job, one
            # requeue it, a worker fetch it, and the other requeue it while it runs.
            cursor = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_RECOVERY_LOCK,))
            got = await cursor.fetchone()
            if not got or not got[0]:
                return
            stalled = await manager.get_stalled_jobs(
                queue=QUEUE,
                task_name=TASK,
                seconds_since_heartbeat=self._settings.JOB_STALL_SECONDS,
            )
            for job in stalled:
                # Same id, attempts + 1: it stays first in its lock's line.
                await manager.retry_job(job)
                self._metrics.stalled_recovered.inc()  # before the job can run again
                await _wake(self._connector, job)
                log.warning("queue.stalled_recovered", job_id=job.id)

    async def _cancel_tasks(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Connector(PsycopgConnector):
    """procrastinate's psycopg connector, plus one catch-up wake-up each time its listener
    has (re)subscribed: a job inserted while the worker started, or while the listening
    connection was down, notified nobody and would otherwise wait for the next poll.

    Follows ``PsycopgConnector.listen_notify`` of the pinned 3.10 (its private helpers).
    """

    async def listen_notify(self, on_notification: Notify, channels: Iterable[str]) -> None:
        names = list(channels)
        while True:
            async with self._get_standalone_connection() as connection:
                for name in names:
                    await connection.execute(
                        query=self._make_dynamic_query(
                            query=psql.queries["listen_queue"], channel_name=name
                        ),
                    )
                for name in names[:1]:
                    await on_notification(channel=name, payload=_CATCH_UP)
                await self._loop_notify(on_notification=on_notification, connection=connection)


# What procrastinate's insert trigger sends; job 0 names no job, it only wakes a worker.
_CATCH_UP: Final = json.dumps({"type": "job_inserted", "job_id": 0})


class _Worker(Worker):
    """procrastinate's worker, plus a wake-up of all workers when a job's lock frees, and
    no lost wake-ups: procrastinate clears its "new job" flag after every fetch, so a
    notification that arrived while a fetch was in flight (too early to see the job) was
    dropped and the job waited for the next poll. A wake-up seen during a fetch round
    now makes another round."""

    wake_on_release = True  # off only to measure the hand-off without it
    _wakes = 0

    async def _handle_notification(self, *, channel: str, notification: pjobs.Notification) -> None:
        if notification["type"] == "job_inserted":
            self._wakes += 1
        await super()._handle_notification(channel=channel, notification=notification)

    async def _fetch_and_process_jobs(self) -> None:
        while True:
            seen = self._wakes
            await super()._fetch_and_process_jobs()  # type: ignore[no-untyped-call]
            if self._wakes == seen or self._stop_event.is_set():
                return

    async def _persist_job_status(
        self,
        job: pjobs.Job,
        status: pjobs.Status,
        retry_decision: RetryDecision | None,
        context: JobContext,
        job_result: JobResult | None,
    ) -> None:
        await super()._persist_job_status(job, status, retry_decision, context, job_result)
        if self.wake_on_release and (job.lock is not None or retry_decision is not None):
            try:
                await _wake(self.app.connector, job)
            except Exception as exc:  # the poll picks the next job up anyway
                log.warning("queue.wake_failed", job_id=job.id, error=type(exc).__name__)


async def _wake(connector: Any, job: pjobs.Job) -> None:
    # As if the lock's next job had just been inserted; the workers then fetch at once.
    await connector.execute_query_async(_WAKE, channel=_CHANNEL, job_id=job.id, lock=job.lock)


class _Retry(BaseRetryStrategy):
    """Retry what :meth:`PostgresQueue._run_job` re-raises, and jobs drain interrupted.

    The task gives a job up itself on its last run, so an exception reaching here is one
    to retry; the cap only stops a task that cannot even be called (bad arguments).
    """

    def __init__(self, wait: float) -> None:
        self.wait = wait

    def get_retry_decision(
        self, *, exception: BaseException, job: pjobs.Job
    ) -> RetryDecision | None:
        now = dt.datetime.now(dt.UTC)
        if isinstance(exception, asyncio.CancelledError):
            # procrastinate marks a cancelled job "aborted" unless retried: back to todo,
            # at once, for another replica (or this one after its restart).
            return RetryDecision(retry_at=now)
        if job.attempts + 1 >= MAX_ATTEMPTS:
            return None
        return RetryDecision(retry_at=now + dt.timedelta(seconds=self.wait))


class _Payload(dict[str, Any]):
    """A job's payload: its repr hides the contents (procrastinate logs a job's args)."""

    def __repr__(self) -> str:
        return f"<payload: {len(self)} keys>"


def _load_args(raw: str | bytes) -> Any:
    value = json.loads(raw)
    if isinstance(value, dict) and isinstance(value.get("payload"), dict) and "handler" in value:
        value["payload"] = _Payload(value["payload"])
    return value
