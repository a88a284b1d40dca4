"""Jobs a dead process left in the in-process queue (SQLite), through the Telegram adapter."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.queue.port import MAX_ATTEMPTS
from bot.storage.tables import QueuedJob
from tests.fakes.dashscope import Reply
from tests.telegram.conftest import Harness

pytestmark = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


async def _left_behind(harness: Harness, update: dict[str, object], *, runs: int) -> None:
    """Store ``update`` as a dead process would have left it: accepted, run ``runs`` times."""
    async with harness.db.sessions.begin() as session:
        session.add(QueuedJob(handler="telegram", lock=None, payload=update, attempts=runs))


async def _queue_empties(harness: Harness) -> None:
    """The job's row goes once it ended (right after the reply: wait for it)."""

    async def left() -> int:
        async with harness.db.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(QueuedJob)) or 0)

    deadline = asyncio.get_running_loop().time() + 20
    while await left():
        assert asyncio.get_running_loop().time() < deadline, "the job was never finished"
        await asyncio.sleep(0.02)


async def test_an_update_accepted_but_never_answered_is_answered_at_the_next_start(
    harness: Harness,
) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    message = tg.message(chat=chat, user=ann, text="are you still there?")
    await _left_behind(harness, {"update_id": 900, "message": message}, runs=1)
    harness.ds.queue(Reply(chunks=["Yes, ", "here."]))

    await harness.start()

    assert await harness.replies(chat, 1) == ["Yes, here."]
    await _queue_empties(harness)


async def test_an_update_whose_runs_all_crashed_gets_an_apology_not_a_fourth_run(
    harness: Harness,
) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    message = tg.message(chat=chat, user=ann, text="a message that kills the bot")
    await _left_behind(harness, {"update_id": 901, "message": message}, runs=MAX_ATTEMPTS)
    sent = len(harness.ds.requests)

    await harness.start()

    assert await harness.replies(chat, 1) == [texts.TURN_ABANDONED]
    assert len(harness.ds.requests) == sent  # the model is not asked again
    await _queue_empties(harness)
