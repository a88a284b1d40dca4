"""Ordering within a conversation, concurrency across them, exactly-once events."""

from __future__ import annotations

import asyncio
import time

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
        await asyncio.sleep(0.01)  # arrival order
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
        Reply(chunks=["a"], first_token_delay=0.6), Reply(chunks=["b"], first_token_delay=0.6)
    )
    began = time.monotonic()
    one, two = await asyncio.gather(
        h.engine.handle_turn(make_turn(chat=PRIVATE, text="hi"), Sink()),
        h.engine.handle_turn(make_turn(chat=GROUP, text="hi"), Sink()),
    )
    assert (one.status, two.status) == ("complete", "complete")
    assert time.monotonic() - began < 1.1  # not 1.2 s one after the other


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
