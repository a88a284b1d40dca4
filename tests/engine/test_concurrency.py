"""Ordering within a conversation, concurrency across them, exactly-once events."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bot.engine.ordering import KeyedLocks
from tests.engine.conftest import GROUP, PRIVATE, Audio, Harness, Sink, make_turn, voice
from tests.fakes.dashscope import Reply


async def test_turns_of_one_conversation_run_in_arrival_order(h: Harness) -> None:
    h.fake.queue(
        Reply(chunks=["first"], first_token_delay=0.4),
        Reply(chunks=["second"], first_token_delay=0.1),
        Reply(chunks=["third"]),
    )
    sinks = [Sink(), Sink(), Sink()]
    arrivals = [
        make_turn(audio=Audio(voice(2.0))),
        make_turn(audio=Audio(voice(3.0, seed=1))),
        make_turn(text="and?"),
    ]
    tasks = []
    for turn, sink in zip(arrivals, sinks, strict=True):
        tasks.append(asyncio.create_task(h.engine.handle_turn(turn, sink)))
        # Arrival order: handle_turn takes its place in the conversation's line before its
        # first await, and one pass of the event loop runs the new task up to there.
        await asyncio.sleep(0)
    outcomes = await asyncio.gather(*tasks)
    assert [o.status for o in outcomes] == ["complete"] * 3
    assert [s.shown for s in sinks] == ["first", "second", "third"]
    r1, r2, r3 = h.fake.requests
    # Each request already carries the previous reply: the second note waited.
    assert r1.roles == ["user"]
    assert r2.texts == [("assistant", "first")]
    assert r3.texts == [("assistant", "first"), ("assistant", "second"), ("user", "and?")]
    stored = await h.turns(outcomes[0].conversation_id)  # type: ignore[arg-type]
    assert [t.seq for t in stored] == [1, 2, 3, 4, 5, 6]
    assert [t.text for t in stored if t.role == "assistant"] == ["first", "second", "third"]


async def test_different_conversations_run_concurrently(h: Harness) -> None:
    h.fake.queue(
        Reply(chunks=["a"], first_token_delay=1.0), Reply(chunks=["b"], first_token_delay=1.0)
    )
    requests_at_first_text: list[int] = []
    first = Sink(on_update=lambda _text: requests_at_first_text.append(len(h.fake.requests)))
    one, two = await asyncio.gather(
        h.engine.handle_turn(make_turn(chat=PRIVATE, text="hi"), first),
        h.engine.handle_turn(make_turn(chat=GROUP, text="hi"), Sink()),
    )
    assert (one.status, two.status) == ("complete", "complete")
    # The other chat's request reached the model before this reply's first text arrived:
    # neither conversation waited for the other.
    assert requests_at_first_text[0] == 2


async def test_claim_event_is_exactly_once_under_concurrent_duplicates(h: Harness) -> None:
    results = await asyncio.gather(*(h.engine.claim_event("slack", "Ev1") for _ in range(5)))
    assert sorted(results) == [False] * 4 + [True]
    assert await h.engine.claim_event("slack", "Ev1") is False
    assert await h.engine.claim_event("telegram", "Ev1") is True


async def test_keyed_locks_are_fifo_and_released() -> None:
    locks = KeyedLocks()
    order: list[int] = []

    async def worker(i: int) -> None:
        async with locks.hold("k"):
            await asyncio.sleep(0.01 * (3 - i))
            order.append(i)

    tasks = []
    for i in range(3):
        tasks.append(asyncio.create_task(worker(i)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert len(locks) == 0


async def test_reserved_places_decide_the_order_not_who_calls_first() -> None:
    locks = KeyedLocks()
    first, second, unused = locks.reserve("k"), locks.reserve("k"), locks.reserve("k")
    last = locks.reserve("k")
    order: list[str] = []

    async def run(name: str, place: object) -> None:
        async with locks.hold("k", place):  # type: ignore[arg-type]
            order.append(name)

    # The later place calls first, the earlier one only after some awaiting.
    late = asyncio.create_task(run("second", second))
    await asyncio.sleep(0)  # one pass of the loop: the task runs as far as it can go
    assert order == [] and not late.done()  # it waits for the place ahead of it
    unused.release()  # an event that turned out not to be a turn passes its place on
    tail = asyncio.create_task(run("last", last))
    await run("first", first)
    await asyncio.gather(late, tail)
    assert order == ["first", "second", "last"]
    assert len(locks) == 0


async def test_a_cancelled_waiter_does_not_block_the_line() -> None:
    locks = KeyedLocks()
    holder, quitter, after = locks.reserve("k"), locks.reserve("k"), locks.reserve("k")
    waiting = asyncio.create_task(locks.hold("k", quitter).__aenter__())
    await asyncio.sleep(0)
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    quitter.release()  # what the engine's ``finally`` does
    holder.release()
    async with locks.hold("k", after):
        pass
    assert len(locks) == 0
    with pytest.raises(ValueError, match="reserved for"):
        async with locks.hold("other", locks.reserve("k")):
            pass


async def test_old_event_records_are_pruned_recent_ones_kept(h: Harness) -> None:
    import datetime as dt

    from sqlalchemy import update

    from bot.storage.tables import ProcessedEvent, utcnow

    assert await h.engine.claim_event("slack", "Ev-old") is True
    assert await h.engine.claim_event("slack", "Ev-new") is True
    async with h.db.sessions.begin() as s:
        await s.execute(
            update(ProcessedEvent)
            .where(ProcessedEvent.event_id == "Ev-old")
            .values(processed_at=utcnow() - dt.timedelta(days=8))
        )
    assert await h.engine.prune_events() == 1
    # A retry of the recent event is still recognised; the week-old id is free again.
    assert await h.engine.claim_event("slack", "Ev-new") is False
    assert await h.engine.claim_event("slack", "Ev-old") is True
