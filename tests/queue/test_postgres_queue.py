"""The procrastinate turn queue on a real PostgreSQL: exactly-once acceptance, order and
exclusivity per lock across two workers, retries and give-up, a freed lock waking the
workers, stalled jobs of a killed process, drain, and an unreachable database."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.errors import QueueUnavailable
from bot.metrics import Metrics
from bot.queue.pgurl import conninfo_from_url
from bot.queue.port import MAX_ATTEMPTS, Handler, Job, RunningJob
from bot.queue.postgres import PostgresQueue
from bot.storage.database import Database
from tests.process import clean_env, patience

ROOT = Path(__file__).resolve().parents[2]
on_postgres = pytest.mark.parametrize("db", ["postgresql"], indirect=True)
Event = tuple[str, str, int, int]  # ("start" | "end" | "give_up", lock, seq, attempt)


class Script:
    """A handler recording its runs; ``behave`` (if any) decides each run."""

    def __init__(self, behave: Callable[[RunningJob], Awaitable[None]] | None = None) -> None:
        self.behave = behave
        self.events: list[Event] = []
        self.reasons: list[BaseException | None] = []
        self._changed = asyncio.Condition()

    @property
    def handler(self) -> Handler:
        return Handler(run=self._run, give_up=self._give_up)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e[0] == kind]

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), patience(20))

    async def note(self, kind: str, job: RunningJob) -> None:
        async with self._changed:
            self.events.append((kind, job.job.lock or "", job.payload["seq"], job.attempt))
            self._changed.notify_all()

    async def _run(self, job: RunningJob) -> None:
        assert job.resumed == (job.attempt > 0)
        await self.note("start", job)
        if self.behave is not None:
            await self.behave(job)
        await self.note("end", job)

    async def _give_up(self, job: RunningJob, exc: BaseException | None) -> None:
        self.reasons.append(exc)
        await self.note("give_up", job)


Make = Callable[..., PostgresQueue]


@pytest.fixture
async def make(db: Database) -> AsyncIterator[Make]:
    """Queues on ``db`` (retries without a pause), closed after the test."""
    made: list[PostgresQueue] = []

    def build(database: Database = db, **settings: Any) -> PostgresQueue:
        values: dict[str, Any] = {
            "DATABASE_URL": database.url,
            "JOB_STALL_SECONDS": 2,
            "JOB_POLL_INTERVAL": 0.5,
            "WORKER_CONCURRENCY": 4,
            **settings,
        }
        queue = PostgresQueue(
            database=database,
            settings=Settings(**values),
            metrics=Metrics(),
            worker_name=f"w{len(made)}",
            retry_wait=0.0,
        )
        made.append(queue)
        return queue

    yield build
    for queue in made:
        await queue.drain(grace=0)
        await queue.aclose()


def job(lock: str, seq: int, handler: str = "t") -> Job:
    return Job(handler=handler, payload={"seq": seq, "text": "private words"}, lock=lock)


def sample(queue: PostgresQueue, name: str, **labels: str) -> float:
    value = queue._metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def rows(db: Database) -> list[Any]:
    async with db.engine.connect() as conn:
        result = await conn.execute(
            text("SELECT id, lock, args, status, attempts FROM procrastinate_jobs ORDER BY id")
        )
        return list(result.all())


def test_conninfo_from_asyncpg_url() -> None:
    info = conninfo_from_url(
        "postgresql+asyncpg://bot:p%40ss@db.example:5433/voice?ssl=require"
        "&application_name=vb&prepared_statement_cache_size=0"
    )
    assert set(info.split()) == {
        "host=db.example",
        "port=5433",
        "user=bot",
        "password=p@ss",
        "dbname=voice",
        "sslmode=require",
        "application_name=vb",
    }


@on_postgres
async def test_accept_stores_one_job_per_event(db: Database, make: Make) -> None:
    queue = make()
    assert await queue.accept(platform="telegram", keys=["u1", "m1"], job=job("c1", 0))
    # A redelivery sharing one key: nothing stored, not even its other key.
    assert not await queue.accept(platform="telegram", keys=["u2", "m1"], job=job("c1", 1))

    (row,) = await rows(db)
    assert (row.lock, row.status, row.attempts) == ("c1", "todo", 0)
    assert row.args["handler"] == "t"
    assert row.args["payload"] == {"seq": 0, "text": "private words"}
    async with db.engine.connect() as conn:
        keys = (await conn.execute(text("SELECT event_id FROM processed_events"))).scalars()
        assert sorted(keys) == ["m1", "u1"]
    assert sample(queue, "voicebot_duplicate_events_total", platform="telegram") == 1


@on_postgres
async def test_one_lock_runs_in_accept_order_across_two_workers(db: Database, make: Make) -> None:
    locks, per_lock = ["a", "b", "c"], 4
    together = asyncio.Barrier(len(locks))  # the first jobs of all locks at once

    async def behave(running: RunningJob) -> None:
        if running.payload["seq"] == 0:
            await asyncio.wait_for(together.wait(), patience(20))
        await asyncio.sleep(0)

    script = Script(behave)
    first, second = make(WORKER_CONCURRENCY=2), make(WORKER_CONCURRENCY=2)
    for queue in (first, second):
        queue.register("t", script.handler)
        await queue.start()

    # Called in order and awaited together: the call order is the run order.
    accepts = [
        first.accept(platform="slack", keys=[f"{lock}{seq}"], job=job(lock, seq))
        for seq in range(per_lock)
        for lock in locks
    ]
    assert all(await asyncio.gather(*accepts))
    await script.until(lambda: len(script.of("end")) == len(locks) * per_lock)

    for lock in locks:
        mine = [(kind, seq) for kind, lk, seq, _ in script.events if lk == lock]
        assert mine == [(kind, seq) for seq in range(per_lock) for kind in ("start", "end")]
    assert await rows(db) == []  # done jobs are deleted


@on_postgres
async def test_a_job_raising_twice_runs_three_times(make: Make) -> None:
    async def behave(running: RunningJob) -> None:
        if running.attempt < 2:
            raise RuntimeError("flaky")

    script = Script(behave)
    queue = make()
    queue.register("t", script.handler)
    await queue.start()
    assert await queue.accept(platform="telegram", keys=["e"], job=job("a", 0))

    await script.until(lambda: len(script.of("end")) == 1)
    assert [attempt for _, _, _, attempt in script.of("start")] == [0, 1, 2]
    assert script.of("give_up") == []
    assert sample(queue, "voicebot_jobs_total", outcome="retried") == 2
    assert sample(queue, "voicebot_jobs_total", outcome="done") == 1


@on_postgres
async def test_a_job_raising_every_time_is_given_up_once(db: Database, make: Make) -> None:
    async def behave(running: RunningJob) -> None:
        raise RuntimeError(f"broken {running.attempt}")

    script = Script(behave)
    queue = make()
    queue.register("t", script.handler)
    await queue.start()
    assert await queue.accept(platform="telegram", keys=["e"], job=job("a", 0))

    await script.until(lambda: len(script.of("give_up")) == 1)
    assert [attempt for _, _, _, attempt in script.of("start")] == list(range(MAX_ATTEMPTS))
    assert [str(exc) for exc in script.reasons] == [f"broken {MAX_ATTEMPTS - 1}"]

    await queue.drain(grace=patience(20))  # returns once the job's end is stored
    assert await rows(db) == []  # given up: never run again
    assert len(script.of("give_up")) == 1
    assert sample(queue, "voicebot_jobs_total", outcome="given_up") == 1


@on_postgres
async def test_a_freed_lock_wakes_the_workers_before_the_poll(make: Make) -> None:
    release = asyncio.Event()

    async def behave(running: RunningJob) -> None:
        if running.payload["seq"] == 0:
            await release.wait()

    script = Script(behave)
    # A poll a minute apart: the second job can only start this soon if it was woken.
    queue = make(JOB_POLL_INTERVAL=60)
    queue.register("t", script.handler)
    await queue.start()
    assert await queue.accept(platform="telegram", keys=["1"], job=job("a", 0))
    await script.until(lambda: len(script.of("start")) == 1)
    assert await queue.accept(platform="telegram", keys=["2"], job=job("a", 1))

    release.set()
    await script.until(lambda: len(script.of("end")) == 2)
    assert [seq for _, _, seq, _ in script.of("start")] == [0, 1]


@on_postgres
async def test_an_unknown_handler_is_given_up(db: Database, make: Make) -> None:
    script = Script()
    queue = make()
    queue.register("t", script.handler)
    await queue.start()
    assert await queue.accept(platform="telegram", keys=["1"], job=job("a", 0, handler="nope"))
    assert await queue.accept(platform="telegram", keys=["2"], job=job("a", 1))

    # The lock's next job starts only once the unknown one has ended.
    await script.until(lambda: len(script.of("end")) == 1)
    await queue.drain(grace=patience(20))
    assert await rows(db) == []
    assert sample(queue, "voicebot_jobs_total", outcome="given_up") == 1


@on_postgres
async def test_a_killed_workers_job_runs_again_elsewhere(db: Database, make: Make) -> None:
    queue = make()
    assert await queue.accept(platform="telegram", keys=["e"], job=job("a", 0))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.queue.pg_stall_child",
        db.url,
        cwd=ROOT,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = b""
        async with asyncio.timeout(patience(30)):
            while not line.startswith(b"running "):  # the child's logs go to stdout too
                line = await child.stdout.readline()
                assert line, "the child exited"
        job_id, attempt = (int(part) for part in line.split()[1:])
        assert attempt == 0
    finally:
        child.kill()  # SIGKILL: no shutdown, no status written
        await child.wait()
    (row,) = await rows(db)
    assert (row.id, row.status) == (job_id, "doing")

    script = Script()
    queue.register("t", script.handler)
    await queue.start()
    await script.until(lambda: len(script.of("end")) == 1)
    assert script.of("start") == [("start", "a", 0, 1)]
    assert sample(queue, "voicebot_stalled_jobs_recovered_total") == 1


@on_postgres
async def test_drain_puts_a_running_job_back_for_another_worker(db: Database, make: Make) -> None:
    async def hang(running: RunningJob) -> None:
        if running.job.lock == "a" and running.attempt == 0:
            await asyncio.Event().wait()  # until drain's grace is over

    script = Script(hang)
    first = make()
    first.register("t", script.handler)
    await first.start()
    assert await first.accept(platform="telegram", keys=["1"], job=job("a", 0))
    await script.until(lambda: len(script.of("start")) == 1)

    await first.drain(grace=0.1)
    (row,) = await rows(db)
    assert (row.status, row.attempts) == ("todo", 1)
    assert sample(first, "voicebot_jobs_total", outcome="interrupted") == 1
    # Accepting still works after a drain.
    assert await first.accept(platform="telegram", keys=["2"], job=job("b", 0))

    second = make()
    second.register("t", script.handler)
    await second.start()
    await script.until(lambda: len(script.of("end")) == 2)
    assert sorted(script.of("start")[1:]) == [("start", "a", 0, 1), ("start", "b", 0, 0)]


async def test_accept_without_a_database_raises_queue_unavailable() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
    database = Database(url=url)
    queue = PostgresQueue(database=database, settings=Settings(DATABASE_URL=url), metrics=Metrics())
    try:
        with pytest.raises(QueueUnavailable):
            await queue.accept(platform="telegram", keys=["e"], job=job("a", 0))
        assert not queue.health().connected
    finally:
        await queue.aclose()
        await database.dispose()
