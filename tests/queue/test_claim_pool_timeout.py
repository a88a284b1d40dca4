"""A claim that times out on the connection pool is retried: the update is answered once."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.config import Settings
from bot.metrics import Metrics
from bot.queue.inprocess import InProcessQueue
from bot.queue.port import Handler, Job, RunningJob
from bot.storage.database import Database, pool_size_for
from bot.storage.tables import QueuedJob
from tests.process import patience


class _FlakyPool:
    """The database's session factory, whose first ``times`` sessions hit a pool timeout."""

    def __init__(self, *, real: Any, times: int) -> None:
        self._real = real
        self.left = times

    def __call__(self) -> Any:
        if self.left > 0:
            self.left -= 1
            raise PoolTimeout("QueuePool limit of size 5 overflow 15 reached")
        return self._real()


async def test_a_claim_timing_out_on_the_pool_is_retried_and_runs_once(db: Database) -> None:
    ran: list[int] = []
    done = asyncio.Event()

    async def handler(job: RunningJob) -> None:
        ran.append(job.payload["n"])
        done.set()

    async def give_up(job: RunningJob, exc: BaseException) -> None:
        raise AssertionError(f"gave up on a job: {exc!r}")

    queue = InProcessQueue(
        database=db, settings=Settings(WORKER_CONCURRENCY=4), metrics=Metrics(), retry_pause=0.0
    )
    queue.register("t", Handler(run=handler, give_up=give_up))
    await queue.start()
    real = db.sessions
    flaky = _FlakyPool(real=real, times=2)
    db.sessions = flaky  # type: ignore[assignment]
    try:
        accepted = await queue.accept(
            platform="telegram", keys=["u-pool"], job=Job(handler="t", payload={"n": 1}, lock="a")
        )
        await asyncio.wait_for(done.wait(), timeout=patience(10))
    finally:
        db.sessions = real
        await queue.drain(grace=patience(10))
        await queue.aclose()

    assert accepted is True
    assert flaky.left == 0
    assert ran == [1]
    async with db.sessions() as session:
        assert list(await session.scalars(select(QueuedJob))) == []


def test_pool_grows_with_worker_concurrency_up_to_its_cap() -> None:
    overflow = [pool_size_for(n)["max_overflow"] for n in (1, 20, 50, 200)]
    assert overflow == [15, 20, 25, 25]  # three replicas of 50 turns fit max_connections=100
    assert pool_size_for(None) == {"pool_size": 5, "max_overflow": 15, "pool_timeout": 30.0}
