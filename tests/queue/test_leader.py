"""Leadership on the real PostgreSQL (advisory locks) and the single-process stand-in.

Every test takes a lock key of its own, so tests running at once (``pytest -n 2``) on the
one server never contend for a lock. Nothing sleeps to synchronise: tests wait for what
they can observe (a leader, a lock holder in ``pg_locks``, a follower's next attempt).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from bot.metrics import Metrics
from bot.queue.leader import AdvisoryLockLeader, SoleLeader, lock_id
from bot.queue.pgurl import conninfo_from_url
from tests.databases import POSTGRES_URL
from tests.process import patience

RETRY = 0.05  # seconds between a follower's attempts (and a leader's checks)


async def until(predicate: Callable[[], Any], *, within: float = 10.0) -> Any:
    """Wait until ``predicate()`` is truthy (checked every few milliseconds)."""
    deadline = time.monotonic() + patience(within)
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        await asyncio.sleep(0.01)
    return value


class Cluster:
    """Leaders as separate replicas would have them: each with its own metrics."""

    def __init__(self) -> None:
        self.key = f"test-leader:{uuid.uuid4().hex}"
        self.leaders: list[AdvisoryLockLeader] = []
        self._admin: psycopg.AsyncConnection[Any] | None = None

    async def leader(self, key: str | None = None) -> AdvisoryLockLeader:
        leader = AdvisoryLockLeader(
            conninfo_or_url=POSTGRES_URL, key=key or self.key, metrics=Metrics(), retry_every=RETRY
        )
        self.leaders.append(leader)
        await leader.start()
        return leader

    async def admin(self) -> psycopg.AsyncConnection[Any]:
        if self._admin is None:
            self._admin = await psycopg.AsyncConnection.connect(
                conninfo_from_url(POSTGRES_URL), autocommit=True
            )
        return self._admin

    async def holder(self, key: str | None = None) -> int | None:
        """The backend pid holding the advisory lock of ``key``, from ``pg_locks``."""
        n = lock_id(key or self.key) & 0xFFFFFFFFFFFFFFFF
        conn = await self.admin()
        cur = await conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = %s AND objid = %s AND objsubid = 1",
            (n >> 32, n & 0xFFFFFFFF),
        )
        rows = await cur.fetchall()
        assert len(rows) <= 1
        return int(rows[0][0]) if rows else None

    async def last_lock_attempt(self, pid: int) -> Any:
        """When the session ``pid`` last started a ``pg_try_advisory_lock`` (or ``None``)."""
        conn = await self.admin()
        cur = await conn.execute(
            "SELECT query_start FROM pg_stat_activity"
            " WHERE pid = %s AND query LIKE 'SELECT pg_try_advisory_lock%%'",
            (pid,),
        )
        row = await cur.fetchone()
        return row[0] if row else None

    async def tried_again(self, follower: AdvisoryLockLeader) -> None:
        """Wait until ``follower`` was seen starting two lock attempts: the first was refused
        (a follower sends the next one only then) and its answer was taken in."""
        pid = await until(lambda: follower.backend_pid)
        seen: list[Any] = []
        deadline = time.monotonic() + patience(10)
        while len(seen) < 2:
            assert time.monotonic() < deadline, "the follower stopped trying"
            started = await self.last_lock_attempt(pid)
            if started is not None and (not seen or started != seen[-1]):
                seen.append(started)
            await asyncio.sleep(RETRY / 4)

    async def terminate(self, pid: int) -> None:
        conn = await self.admin()
        await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    async def aclose(self) -> None:
        for leader in self.leaders:
            await leader.aclose()
        if self._admin is not None:
            await self._admin.close()


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        await c.aclose()


async def first_leader(*leaders: AdvisoryLockLeader) -> AdvisoryLockLeader:
    waits = {asyncio.ensure_future(leader.wait_until_leader()): leader for leader in leaders}
    try:
        done, _ = await asyncio.wait(
            waits, timeout=patience(10), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for waiting in waits:
            waiting.cancel()
    assert done, "no one became the leader"
    return waits[done.pop()]


def changes(leader: AdvisoryLockLeader, change: str) -> float:
    value = leader._metrics.registry.get_sample_value(
        "voicebot_leader_changes_total", {"change": change}
    )
    return value or 0.0


def gauge(leader: AdvisoryLockLeader) -> float | None:
    return leader._metrics.registry.get_sample_value("voicebot_polling_leader")


async def test_of_two_on_one_key_exactly_one_leads(cluster: Cluster) -> None:
    a, b, c = await cluster.leader(), await cluster.leader(), await cluster.leader()
    leader = await first_leader(a, b, c)
    followers = [x for x in (a, b, c) if x is not leader]
    for follower in followers:
        await cluster.tried_again(follower)
    assert [x.is_leader for x in (a, b, c)].count(True) == 1
    assert await cluster.holder() == leader.backend_pid
    assert not leader.lost.is_set()
    assert (changes(leader, "gained"), gauge(leader)) == (1, 1)
    for follower in followers:
        assert (changes(follower, "gained"), gauge(follower)) == (0, 0)


async def test_closing_the_leader_hands_over(cluster: Cluster) -> None:
    a, b = await cluster.leader(), await cluster.leader()
    leader = await first_leader(a, b)
    other = b if leader is a else a
    await leader.aclose()
    assert leader.lost.is_set() and not leader.is_leader
    assert (changes(leader, "lost"), gauge(leader)) == (1, 0)
    await asyncio.wait_for(other.wait_until_leader(), patience(10))
    assert await cluster.holder() == other.backend_pid
    assert (changes(other, "gained"), gauge(other)) == (1, 1)
    with pytest.raises(RuntimeError):
        await leader.wait_until_leader()  # closed: it never leads again


async def test_a_killed_connection_sets_lost_and_the_other_takes_over(cluster: Cluster) -> None:
    a, b = await cluster.leader(), await cluster.leader()
    leader = await first_leader(a, b)
    other = b if leader is a else a
    await until(lambda: other.backend_pid)
    pid = leader.backend_pid
    assert pid is not None
    await cluster.terminate(pid)
    await asyncio.wait_for(leader.lost.wait(), patience(10))
    assert not leader.is_leader
    await asyncio.wait_for(other.wait_until_leader(), patience(10))
    assert await cluster.holder() == other.backend_pid
    assert (changes(leader, "lost"), gauge(leader)) == (1, 0)
    # The one that lost reconnects and follows; it leads again when the other goes.
    await cluster.tried_again(leader)
    assert not leader.is_leader
    await other.aclose()
    await asyncio.wait_for(leader.wait_until_leader(), patience(10))
    assert not leader.lost.is_set()
    assert (changes(leader, "gained"), gauge(leader)) == (2, 1)


async def test_different_keys_do_not_block_each_other(cluster: Cluster) -> None:
    a = await cluster.leader(f"{cluster.key}:bot1")
    b = await cluster.leader(f"{cluster.key}:bot2")
    await asyncio.wait_for(a.wait_until_leader(), patience(10))
    await asyncio.wait_for(b.wait_until_leader(), patience(10))
    assert a.is_leader and b.is_leader
    assert await cluster.holder(a.key) == a.backend_pid
    assert await cluster.holder(b.key) == b.backend_pid


async def test_an_unreachable_database_means_no_leadership_and_no_crash() -> None:
    leader = AdvisoryLockLeader(
        conninfo_or_url="postgresql+asyncpg://postgres@127.0.0.1:1/none",
        key="test-leader:unreachable",
        metrics=Metrics(),
        retry_every=RETRY,
    )
    async with leader:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(leader.wait_until_leader(), RETRY * 5)
        assert not leader.is_leader


async def test_sole_leader_leads_from_start_to_close() -> None:
    sole = SoleLeader()
    assert not sole.is_leader
    async with sole:
        await asyncio.wait_for(sole.wait_until_leader(), 1)
        assert sole.is_leader and not sole.lost.is_set()
    assert sole.lost.is_set() and not sole.is_leader


def test_lock_id_is_stable_and_url_becomes_a_libpq_uri() -> None:
    assert lock_id("telegram-polling:1") == lock_id("telegram-polling:1")
    assert lock_id("telegram-polling:1") != lock_id("telegram-polling:2")
    assert lock_id("telegram-polling:1") == 492281015269415357  # never changes
    assert -(2**63) <= lock_id("x") < 2**63
    assert conninfo_to_dict(
        conninfo_from_url("postgresql+asyncpg://u:p%40ss@db:5433/bot?ssl=require")
    ) == {
        "host": "db",
        "port": "5433",
        "user": "u",
        "password": "p@ss",
        "dbname": "bot",
        "sslmode": "require",
    }
    with pytest.raises(ValueError):
        conninfo_from_url("sqlite+aiosqlite:///x.db")
