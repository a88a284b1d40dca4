"""The in-process turn queue: exactly-once acceptance, order per lock, retries, give-up,
resuming after a crash or a drain. On SQLite and PostgreSQL (``db``), except the crash."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.metrics import Metrics
from bot.queue.inprocess import InProcessQueue
from bot.queue.port import MAX_ATTEMPTS, Handler, Job, RunningJob
from bot.storage.database import Database
from bot.storage.tables import QueuedJob
from tests.process import clean_env, patience

ROOT = Path(__file__).resolve().parents[2]
Event = tuple[str, int, int]  # ("run" | "give_up", payload n, attempt)


class Script:
    """A handler recording its runs and give-ups; ``behave`` (if any) decides each run."""

    def __init__(self, behave: Callable[[RunningJob], Awaitable[None]] | None = None) -> None:
        self.behave = behave
        self.events: list[Event] = []
        self.reasons: list[BaseException | None] = []
        self._changed = asyncio.Condition()

    @property
    def handler(self) -> Handler:
        return Handler(run=self._run, give_up=self._give_up)

    def runs(self) -> list[tuple[int, int]]:
        return [(n, attempt) for kind, n, attempt in self.events if kind == "run"]

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), patience(10))

    async def _note(self, event: Event) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def _run(self, job: RunningJob) -> None:
        assert job.resumed == (job.attempt > 0)
        await self._note(("run", job.payload["n"], job.attempt))
        if self.behave is not None:
            await self.behave(job)

    async def _give_up(self, job: RunningJob, exc: BaseException | None) -> None:
        self.reasons.append(exc)
        await self._note(("give_up", job.payload["n"], job.attempt))


Make = Callable[..., InProcessQueue]


@pytest.fixture
async def make(db: Database) -> AsyncIterator[Make]:
    """Queues on ``db`` (retries without a pause), closed after the test."""
    made: list[InProcessQueue] = []

    def build(database: Database = db, concurrency: int = 8) -> InProcessQueue:
        queue = InProcessQueue(
            database=database,
            settings=Settings(WORKER_CONCURRENCY=concurrency),
            metrics=Metrics(),
            retry_pause=0.0,
        )
        made.append(queue)
        return queue

    yield build
    for queue in made:
        await queue.aclose()


def job(n: int, lock: str | None = "a", handler: str = "t") -> Job:
    return Job(handler=handler, payload={"n": n}, lock=lock)


async def rows(db: Database) -> list[tuple[int, int]]:
    """(payload n, attempts) of the stored jobs, in id order."""
    async with db.sessions() as session:
        found = await session.scalars(select(QueuedJob).order_by(QueuedJob.id))
        return [(r.payload["n"], r.attempts) for r in found]


async def settle(queue: InProcessQueue) -> None:
    """Until the jobs running now have ended (``drain`` waits for them); start no others."""
    await queue.drain(grace=patience(10))


async def test_accepted_job_runs_once_and_a_duplicate_is_refused(db: Database, make: Make) -> None:
    script = Script()
    queue = make()
    queue.register("t", script.handler)
    await queue.start()

    assert await queue.accept(platform="telegram", keys=["u1", "m1"], job=job(1)) is True
    assert await queue.accept(platform="telegram", keys=["u1"], job=job(2)) is False
    await script.until(lambda: bool(script.events))
    await settle(queue)

    assert script.runs() == [(1, 0)]
    assert await rows(db) == []
    sample = queue._metrics.registry.get_sample_value
    assert sample("voicebot_duplicate_events_total", {"platform": "telegram"}) == 1
    assert sample("voicebot_jobs_total", {"outcome": "done"}) == 1
    assert sample("voicebot_job_latency_seconds_count", {"backend": "inprocess"}) == 1


async def test_one_lock_runs_in_accept_order_other_locks_concurrently(make: Make) -> None:
    active: dict[str, int] = {"a": 0, "b": 0}
    overlaps: list[str] = []
    b_started = asyncio.Event()

    async def behave(running: RunningJob) -> None:
        lock = running.job.lock or ""
        active[lock] += 1
        if active[lock] > 1:
            overlaps.append(lock)
        if running.payload["n"] == 100:
            b_started.set()
        elif running.payload["n"] == 0:
            await b_started.wait()  # only returns if lock b runs beside lock a
        await asyncio.sleep(0)  # let any wrongly started job of the same lock overlap
        active[lock] -= 1

    script = Script(behave)
    queue = make()
    queue.register("t", script.handler)
    await queue.start()

    # Called back to back, awaited afterwards: the claims finish in any order.
    pending = [queue.accept(platform="slack", keys=[f"e{n}"], job=job(n)) for n in range(6)]
    pending.append(queue.accept(platform="slack", keys=["e100"], job=job(100, lock="b")))
    assert all(await asyncio.gather(*pending))
    await script.until(lambda: len(script.events) == 7)
    await settle(queue)

    assert [n for n, _ in script.runs() if n < 100] == list(range(6))
    assert overlaps == []


async def test_failing_runs_are_retried_then_given_up_once(db: Database, make: Make) -> None:
    async def behave(running: RunningJob) -> None:
        n = running.payload["n"]
        if n == 1 or (n == 2 and running.attempt == 0):
            raise RuntimeError(f"run {running.attempt} of {n} failed")

    script = Script(behave)
    queue = make()
    queue.register("t", script.handler)
    await queue.start()

    # 1 always fails, 3 waits behind it (same lock); 2 fails once, on a lock of its own.
    for n, lock in ((1, "a"), (3, "a"), (2, "b")):
        assert await queue.accept(platform="telegram", keys=[f"k{n}"], job=job(n, lock))
    await script.until(lambda: ("run", 3, 0) in script.events and ("run", 2, 1) in script.events)
    await settle(queue)

    ones = [e for e in script.events if e[1] == 1]
    assert ones == [("run", 1, a) for a in range(MAX_ATTEMPTS)] + [("give_up", 1, MAX_ATTEMPTS - 1)]
    assert script.events.index(("give_up", 1, 2)) < script.events.index(("run", 3, 0))
    assert [e for e in script.events if e[1] == 2] == [("run", 2, 0), ("run", 2, 1)]
    assert len(script.reasons) == 1 and isinstance(script.reasons[0], RuntimeError)
    assert await rows(db) == []


async def test_stored_jobs_resume_in_order_and_worn_out_ones_are_given_up(
    db: Database, make: Make
) -> None:
    async with db.sessions() as session, session.begin():
        session.add_all(
            [
                QueuedJob(handler="t", lock="a", payload={"n": 1}, attempts=MAX_ATTEMPTS),
                QueuedJob(handler="t", lock="a", payload={"n": 2}, attempts=1),
                QueuedJob(handler="gone", lock=None, payload={"n": 3}),
            ]
        )
    script = Script()
    queue = make()
    queue.register("t", script.handler)
    await queue.start()
    # A new event of the conversation queues up behind the resumed ones.
    assert await queue.accept(platform="telegram", keys=["new"], job=job(4))
    await script.until(lambda: len(script.events) == 3)
    await settle(queue)

    assert script.events == [("give_up", 1, MAX_ATTEMPTS), ("run", 2, 1), ("run", 4, 0)]
    assert script.reasons == [None]
    assert await rows(db) == []  # the unknown handler's job is dropped, not kept forever


async def test_jobs_accepted_before_or_while_starting_run_once(db: Database, make: Make) -> None:
    script = Script()
    queue = make()
    queue.register("t", script.handler)
    assert await queue.accept(platform="telegram", keys=["k1"], job=job(1))  # stored only
    racing = queue.accept(platform="telegram", keys=["k2"], job=job(2, lock="b"))
    await asyncio.gather(queue.start(), racing)
    await script.until(lambda: len(script.events) == 2)
    await settle(queue)

    assert sorted(script.runs()) == [(1, 0), (2, 0)]
    assert await rows(db) == []


async def test_drain_interrupts_running_jobs_and_keeps_the_rest_for_the_next_start(
    db: Database, make: Make
) -> None:
    async def hang(running: RunningJob) -> None:
        await asyncio.Event().wait()

    first = Script(hang)
    queue = make()
    queue.register("t", first.handler)
    await queue.start()
    for n in (1, 2):
        assert await queue.accept(platform="telegram", keys=[f"k{n}"], job=job(n))
    await first.until(lambda: bool(first.events))

    await queue.drain(grace=0)
    assert await queue.accept(platform="telegram", keys=["k3"], job=job(3))  # still stored
    assert first.runs() == [(1, 0)]
    assert await rows(db) == [(1, 1), (2, 0), (3, 0)]
    assert queue._metrics.registry.get_sample_value(
        "voicebot_jobs_total", {"outcome": "interrupted"}
    )

    second = Script()
    again = make()
    again.register("t", second.handler)
    await again.start()
    await second.until(lambda: len(second.events) == 3)
    await settle(again)
    assert second.runs() == [(1, 1), (2, 0), (3, 0)]
    assert await rows(db) == []


async def test_drain_lets_running_jobs_finish_within_the_grace(db: Database, make: Make) -> None:
    release = asyncio.Event()

    async def wait_for_release(running: RunningJob) -> None:
        await release.wait()

    script = Script(wait_for_release)
    queue = make()
    queue.register("t", script.handler)
    await queue.start()
    for n in (1, 2):
        assert await queue.accept(platform="telegram", keys=[f"k{n}"], job=job(n))
    await script.until(lambda: bool(script.events))

    draining = asyncio.create_task(queue.drain(grace=patience(10)))
    await asyncio.sleep(0)  # one loop turn: drain has stopped starting jobs
    release.set()
    await asyncio.wait_for(draining, patience(10))

    assert script.runs() == [(1, 0)]
    assert await rows(db) == [(2, 0)]


async def test_job_of_a_killed_process_runs_again_once(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "crash.db"
    shutil.copyfile(sqlite_template, path)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.queue.crash_child",
        str(path),
        cwd=ROOT,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
    )
    try:

        async def running() -> None:
            assert child.stdout is not None
            while (line := await child.stdout.readline()) != b"running 0\n":
                assert line, "the child exited before running its job"

        await asyncio.wait_for(running(), patience(10))
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()

    database = Database(url=f"sqlite+aiosqlite:///{path}")
    script = Script()
    queue = InProcessQueue(database=database, settings=Settings(), metrics=Metrics())
    try:
        assert await rows(database) == [(1, 1)]  # its run was counted before it began
        queue.register("t", script.handler)
        await queue.start()
        await script.until(lambda: bool(script.events))
        await settle(queue)
        assert script.runs() == [(1, 1)]
        async with database.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(QueuedJob)) == 0
    finally:
        await queue.aclose()
        await database.dispose()
