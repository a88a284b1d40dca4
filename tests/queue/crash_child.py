"""A process that accepts one job and hangs inside its run, to be killed with SIGKILL.

``python -m tests.queue.crash_child <sqlite file>``: prints ``running <attempt>`` (flushed)
once the handler runs, then blocks until killed.
"""

from __future__ import annotations

import asyncio
import sys

from bot.config import Settings
from bot.metrics import Metrics
from bot.queue.inprocess import InProcessQueue
from bot.queue.port import Handler, Job, RunningJob
from bot.storage.database import Database


async def main(path: str) -> None:
    database = Database(url=f"sqlite+aiosqlite:///{path}")
    queue = InProcessQueue(database=database, settings=Settings(), metrics=Metrics())

    async def run(job: RunningJob) -> None:
        print(f"running {job.attempt}", flush=True)
        await asyncio.Event().wait()  # until the parent kills the process

    async def give_up(job: RunningJob, exc: BaseException | None) -> None:
        raise AssertionError("not expected in the child")

    queue.register("t", Handler(run=run, give_up=give_up))
    await queue.start()
    assert await queue.accept(
        platform="telegram", keys=["crash-1"], job=Job(handler="t", payload={"n": 1}, lock="a")
    )
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
