"""Leader-gated long polling: of several replicas exactly one polls, and updates survive a
handover, graceful or abrupt, none lost and none confirmed before it was accepted.

Each "replica" is a :class:`LeaderPolling` with its own aiogram ``Bot`` (pointed at the
fake Bot API server, which refuses a concurrent ``getUpdates`` with 409 as Telegram does)
and its own :class:`AdvisoryLockLeader` on the real PostgreSQL. Their dispatchers share a
:class:`Queue`, an outer middleware standing in for ``queue.accept``: it claims each update
id once (a second feed is a duplicate, as with the processed-events claim) and records
every feed with when it started and finished.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject, Update

from bot.adapters.telegram import polling
from bot.adapters.telegram.polling import LeaderPolling
from bot.metrics import Metrics
from bot.queue.leader import AdvisoryLockLeader, Leadership, SoleLeader
from bot.queue.pgurl import conninfo_from_url
from tests.databases import POSTGRES_URL
from tests.fakes.telegram import POLL_CONFLICT, FakeTelegram
from tests.process import patience

RETRY = 0.05  # seconds between a follower's lock attempts (and the leader's checks)


@dataclass
class Feed:
    replica: str
    update_id: int
    started: float
    finished: float | None = None  # None: it never completed (cut off, or it raised)
    duplicate: bool = False


@dataclass
class Queue:
    """The durable queue as the pollers see it: ``accept`` once per update id."""

    feeds: list[Feed] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    gates: dict[tuple[str, int], asyncio.Event] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)  # update id -> feeds to fail

    def middleware(self, replica: str) -> BaseMiddleware:
        return _Accept(self, replica)

    def completed(self, update_id: int) -> list[Feed]:
        return [f for f in self.feeds if f.update_id == update_id and f.finished is not None]


class _Accept(BaseMiddleware):
    def __init__(self, queue: Queue, replica: str) -> None:
        self.queue = queue
        self.replica = replica

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        q = self.queue
        feed = Feed(self.replica, event.update_id, time.monotonic())
        q.feeds.append(feed)
        gate = q.gates.get((self.replica, event.update_id))
        if gate is not None:
            await gate.wait()
        await asyncio.sleep(0)  # storing takes a moment
        if q.failures.get(event.update_id, 0) > 0:
            q.failures[event.update_id] -= 1
            raise ConnectionError("queue unavailable")
        feed.duplicate = event.update_id in q.accepted
        if not feed.duplicate:
            q.accepted.append(event.update_id)
        feed.finished = time.monotonic()
        return UNHANDLED


@dataclass
class Replica:
    name: str
    bot: Bot
    leadership: Leadership
    poller: LeaderPolling
    task: asyncio.Task[None]

    @property
    def leading(self) -> bool:
        return self.leadership.is_leader


class Deployment:
    """Replicas of one bot against one fake Telegram and one PostgreSQL lock key."""

    def __init__(self, tg: FakeTelegram) -> None:
        self.tg = tg
        self.queue = Queue()
        self.key = f"telegram-polling-test:{uuid.uuid4().hex}"
        self.replicas: list[Replica] = []
        self.injected: list[int] = []
        self._ann = tg.user(111, "Ann")
        self._chat = tg.private_chat(self._ann)

    def start(
        self, name: str, leadership: Leadership | None = None, *, retry_every: float = RETRY
    ) -> Replica:
        bot = Bot(
            token=self.tg.token,
            session=AiohttpSession(api=TelegramAPIServer.from_base(self.tg.base_url)),
        )
        if leadership is None:
            leadership = AdvisoryLockLeader(
                conninfo_or_url=POSTGRES_URL,
                key=self.key,
                metrics=Metrics(),
                retry_every=retry_every,
            )
        dispatcher = Dispatcher()
        dispatcher.update.outer_middleware(self.queue.middleware(name))
        poller = LeaderPolling(
            bot=bot,
            dispatcher=dispatcher,
            leadership=leadership,
            allowed_updates=["message"],
            # Longer than LeaderPolling.STOP_GRACE: a stop must cancel the long poll.
            polling_timeout=30,
        )
        task = asyncio.create_task(poller.run(), name=f"poller-{name}")
        replica = Replica(name, bot, leadership, poller, task)
        self.replicas.append(replica)
        return replica

    async def leader(self) -> Replica:
        live = [r for r in self.replicas if not r.task.done()]
        found: list[Replica] = await self.until(lambda: [r for r in live if r.leading])
        assert len(found) == 1
        return found[0]

    def inject(self, count: int = 1) -> list[int]:
        ids = [
            self.tg.inject(message=self.tg.message(chat=self._chat, user=self._ann, text="hi"))
            for _ in range(count)
        ]
        self.injected.extend(ids)
        return ids

    async def until(self, predicate: Callable[[], Any], within: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy (checked every few milliseconds)."""
        deadline = time.monotonic() + patience(within)
        while not (value := predicate()):
            if time.monotonic() > deadline:
                calls = [(c.method, c.params.get("offset")) for c in self.tg.calls[-8:]]
                raise AssertionError(f"timed out; feeds {self.queue.feeds[-8:]}, calls {calls}")
            await asyncio.sleep(0.01)
        return value

    async def all_accepted(self) -> None:
        await self.until(lambda: set(self.queue.accepted) >= set(self.injected))

    def check(self) -> None:
        """What must hold whatever happened: every injected update accepted once, in the
        order Telegram gave them; the fake never saw two getUpdates at once; and no
        getUpdates confirmed (offset past) an update before a feed of it completed."""
        q, tg = self.queue, self.tg
        assert q.accepted == self.injected
        assert tg.poll_conflicts == 0 and tg.max_concurrent_polls == 1
        for call in tg.calls_of("getUpdates", ok=None):
            offset = int(call.params.get("offset", 0))
            for update_id in (u for u in self.injected if u < offset):
                done = [f.finished for f in q.completed(update_id) if f.finished is not None]
                assert done and min(done) <= call.at, f"{update_id} confirmed before accepted"

    def refeeds(self) -> list[Feed]:
        return [f for f in self.queue.feeds if f.duplicate]

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.poller.stop()
            await replica.bot.session.close()


@pytest.fixture
async def deployment(telegram_fake: FakeTelegram) -> AsyncIterator[Deployment]:
    telegram_fake.exclusive_polling = True
    d = Deployment(telegram_fake)
    try:
        yield d
    finally:
        await d.aclose()


async def test_one_replica_polls_and_a_stop_hands_over(deployment: Deployment) -> None:
    d = deployment
    d.start("a")
    d.start("b")
    first = await d.leader()
    for _ in range(3):  # over time, one by one and in batches
        d.inject()
        await d.all_accepted()
        d.inject(3)
        await d.all_accepted()
    assert {f.replica for f in d.queue.feeds} == {first.name}
    d.check()
    assert not d.refeeds()

    await first.poller.stop()  # a graceful stop: the other takes over at once
    assert first.task.done() and not first.task.cancelled()  # the long poll was cut short
    assert not first.leading
    second = await d.leader()
    assert second is not first
    d.inject(2)
    await d.all_accepted()
    d.inject()
    await d.all_accepted()
    d.check()
    assert not d.refeeds()  # what the first fed was confirmed as it stopped


async def test_a_leader_cut_off_mid_batch_loses_nothing(deployment: Deployment) -> None:
    d = deployment
    # "a" leads first, and once cut off it reconnects only after the other took over.
    first = d.start("a", retry_every=3.0)
    assert await d.leader() is first
    d.start("b")
    d.inject(2)
    await d.all_accepted()
    # The leader gets a batch of four and stalls while storing the second of them.
    batch = d.inject(4)
    stalled = asyncio.Event()
    d.queue.gates[(first.name, batch[1])] = stalled
    await d.until(lambda: any(f.update_id == batch[1] for f in d.queue.feeds))
    assert isinstance(first.leadership, AdvisoryLockLeader)
    pid = first.leadership.backend_pid
    assert pid is not None
    await terminate(pid)  # its lock's session dies: the other must take over
    await asyncio.wait_for(first.leadership.lost.wait(), patience(10))
    second = await d.leader()
    assert second is not first
    await d.all_accepted()
    stalled.set()  # the cut-off feed now completes: a duplicate, dropped by the claim
    await d.until(lambda: d.queue.completed(batch[1]) and len(d.queue.completed(batch[1])) == 2)
    d.inject(2)
    await d.all_accepted()
    d.check()
    # Fed twice: only updates of the batch that was in flight when the lock was lost (fed,
    # not yet confirmed by a next getUpdates; or, batch[1], not even stored yet); and the
    # first leader fed nothing after it lost the lock.
    assert sorted((f.replica, f.update_id) for f in d.refeeds()) == sorted(
        [(second.name, batch[0]), (first.name, batch[1])]
    )
    assert [f.update_id for f in d.queue.feeds if f.replica == first.name] == d.injected[:4]
    assert not first.task.done() and not first.leading  # still running, as a follower


async def test_a_failed_feed_is_retried_before_the_offset_moves(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(polling, "FEED_RETRY_BASE", 0.01)
    d = deployment
    d.start("solo", SoleLeader())
    ids = d.inject(3)
    d.queue.failures[ids[1]] = 2
    await d.all_accepted()
    d.check()
    failed = [f for f in d.queue.feeds if f.update_id == ids[1] and f.finished is None]
    assert len(failed) == 2
    d.inject()
    await d.all_accepted()
    d.check()


async def test_a_conflict_is_waited_out(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another poller outside our leadership (an old version mid-deploy): Telegram says 409.
    monkeypatch.setattr(polling, "CONFLICT_PAUSE", (0.01, 0.02))
    d = deployment
    d.tg.fail_next("getUpdates", code=409, description=POLL_CONFLICT, times=2)
    d.start("solo", SoleLeader())
    d.inject(2)
    await d.all_accepted()
    assert len(d.tg.calls_of("getUpdates", ok=False)) == 2
    d.check()


class Baton:
    """A :class:`Leadership` the test hands over by hand."""

    def __init__(self) -> None:
        self._leading = asyncio.Event()
        self._lost = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    @property
    def lost(self) -> asyncio.Event:
        return self._lost

    async def start(self) -> None:
        pass

    async def wait_until_leader(self) -> None:
        await self._leading.wait()

    async def aclose(self) -> None:
        self.take()

    def give(self) -> None:
        self._lost.clear()
        self._leading.set()

    def take(self) -> None:
        self._leading.clear()
        self._lost.set()


async def test_leadership_lost_and_regained_mid_feed_starts_a_new_term(
    deployment: Deployment,
) -> None:
    d = deployment
    baton = Baton()
    baton.give()
    d.start("solo", baton)
    ids = d.inject(3)
    gate = asyncio.Event()
    d.queue.gates[("solo", ids[0])] = gate
    await d.until(lambda: d.queue.feeds)
    baton.take()  # lost, and gained back before the poller looks
    baton.give()
    gate.set()
    await d.all_accepted()
    d.check()
    # The old term's batch was dropped after the feed in progress: the new term asked
    # again from the start (no offset) and got the unconfirmed update once more.
    fresh = [c for c in d.tg.calls_of("getUpdates", ok=None) if "offset" not in c.params]
    assert len(fresh) == 2
    assert [f.update_id for f in d.refeeds()] == [ids[0]]


async def terminate(pid: int) -> None:
    async with await psycopg.AsyncConnection.connect(
        conninfo_from_url(POSTGRES_URL), autocommit=True
    ) as conn:
        await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
