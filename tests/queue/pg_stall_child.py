"""A procrastinate worker process whose job hangs, to be killed with SIGKILL mid-run.

``python -m tests.queue.pg_stall_child <database url>``: runs the queued jobs of handler
``t``; prints ``running <job id> <attempt>`` (flushed) once a run starts, then blocks.
"""

from __future__ import annotations

import asyncio
import sys

from bot.config import Settings
from bot.metrics import Metrics
from bot.queue.port import Handler, RunningJob
from bot.queue.postgres import PostgresQueue
from bot.storage.database import Database


async def main(url: str) -> None:
    settings = Settings(DATABASE_URL=url, JOB_STALL_SECONDS=2, JOB_POLL_INTERVAL=0.5)
    queue = PostgresQueue(
        database=Database(url=url), settings=settings, metrics=Metrics(), worker_name="doomed"
    )

    async def run(job: RunningJob) -> None:
        print(f"running {job.id} {job.attempt}", flush=True)
        await asyncio.Event().wait()  # until the parent kills the process

    async def give_up(job: RunningJob, exc: BaseException | None) -> None:
        raise AssertionError("not expected in the child")

    queue.register("t", Handler(run=run, give_up=give_up))
    await queue.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
