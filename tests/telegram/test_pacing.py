"""The per-chat pacer: abandoned waits give their slot back; penalties stay and are capped."""

from __future__ import annotations

import asyncio

import pytest

from bot.adapters.telegram.pacing import Pacer


async def _start_waiting(pacer: Pacer, key: str) -> asyncio.Task[None]:
    task = asyncio.create_task(pacer.wait(key))
    await asyncio.sleep(0)  # let it take its slot and start sleeping
    assert not task.done()
    return task


async def test_a_cancelled_wait_gives_its_slot_back() -> None:
    pacer = Pacer(interval=60.0)
    await pacer.wait("chat")  # the first call goes at once
    waiting = await _start_waiting(pacer, "chat")
    assert pacer.delay("chat") > 60.0  # the waiter holds the slot after the next one
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    # Back to one interval after the first call, not two.
    assert 0.0 < pacer.delay("chat") <= 60.0
    # Another chat was never affected.
    assert pacer.delay("other") == 0.0


async def test_a_cancelled_wait_keeps_a_penalty_and_slowdown_is_capped() -> None:
    pacer = Pacer(interval=1.0)
    await pacer.wait("chat")
    waiting = await _start_waiting(pacer, "chat")
    pacer.penalize("chat", 120.0)  # Telegram said retry_after=120 meanwhile
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert pacer.delay("chat") > 119.0
    for _ in range(10):
        pacer.penalize("chat", 0.0)
    # However often Telegram pushed back, calls are never more than 4 s apart afterwards
    # (slower than its slowest documented pace already), and the retry_after still holds.
    assert pacer._pace("chat").interval == 4.0
    assert pacer.delay("chat") > 119.0


async def test_an_urgent_call_skips_the_queue_once_per_interval() -> None:
    pacer = Pacer(interval=60.0)
    await pacer.wait("chat")  # a preview took the slot
    await asyncio.wait_for(pacer.wait("chat", urgent=True), timeout=5)  # the final: at once
    # The next call, urgent or not, keeps the chat's pace.
    assert pacer.delay("chat") > 59.0
    waiting = asyncio.create_task(pacer.wait("chat", urgent=True))
    await asyncio.sleep(0)
    assert not waiting.done()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)


async def test_an_urgent_call_never_skips_a_retry_after() -> None:
    pacer = Pacer(interval=1.0)
    pacer.penalize("chat", 120.0)
    waiting = asyncio.create_task(pacer.wait("chat", urgent=True))
    await asyncio.sleep(0)
    assert not waiting.done()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert pacer.delay("chat") > 119.0


async def test_a_busy_bot_spaces_every_chats_previews_evenly() -> None:
    """40 chats streaming at once on a budget of 20 calls a second: each chat's next
    preview slot is ~2 s out (40 / 20), the same for every chat, so none is starved; a
    final text still goes at once."""
    from bot.adapters.telegram.pacing import FairShare

    pacer = Pacer(interval=0.3, share=FairShare(rate=20.0))
    for n in range(40):
        await pacer.wait(f"chat-{n}")  # each chat's first preview: at once
    delays = [pacer.delay(f"chat-{n}") for n in range(40)]
    # The first chats took their slots before the others counted: spacing grew with them.
    assert all(d > 0.3 for d in delays[20:])
    assert 1.85 <= max(delays) <= 2.0  # 39 others active when the last took its slot
    await asyncio.wait_for(pacer.wait("chat-39", urgent=True), timeout=5)
    # Alone, a chat keeps its own pace.
    solo = Pacer(interval=0.3, share=FairShare(rate=20.0))
    await solo.wait("only")
    assert solo.delay("only") == pytest.approx(0.3, abs=0.05)
