"""Leadership: which one of the replicas does a thing that only one may do at a time.

Telegram long polling is such a thing: a second concurrent ``getUpdates`` gets 409
Conflict. :class:`Leadership` is the port the poller sees; two implementations, chosen by
``DATABASE_URL`` in the composition root:

- :class:`SoleLeader` (SQLite: one process) is always the leader.
- :class:`AdvisoryLockLeader` (PostgreSQL: any number of replicas) holds a session-level
  advisory lock (``pg_try_advisory_lock``) on a connection of its own. The lock lives
  exactly as long as that session: when the leader closes it, dies, or its connection is
  cut, PostgreSQL releases the lock, and the next follower to try (every ``retry_every``
  seconds) leads. The leader watches its connection all the time (a broken one is noticed
  at once, a silent one by a ``SELECT 1`` every ``retry_every`` seconds) and sets
  :attr:`Leadership.lost` as soon as it cannot be sure it still holds the lock, so that
  whatever it guards stops at once.

The lock key is a string, per guarded thing and per bot (``"telegram-polling:<bot id>"``),
so two bots sharing a database do not block each other; it is hashed to the ``bigint``
PostgreSQL wants with a stable hash (not Python's ``hash``, which changes per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from types import TracebackType
from typing import Protocol, Self

import psycopg
import structlog
from psycopg.rows import TupleRow

from bot.metrics import Metrics
from bot.queue.pgurl import conninfo_from_url

__all__ = ["AdvisoryLockLeader", "Leadership", "SoleLeader", "lock_id"]

log = structlog.get_logger(__name__)

# How long a check (connect, lock, SELECT 1, unlock) may take before the connection is
# treated as broken.
CHECK_TIMEOUT = 5.0
# Server-side TCP keepalive of the lock's session: a leader whose host vanished without
# closing its connection loses the lock in about idle + interval × count = 8 seconds.
KEEPALIVE = (
    "SET tcp_keepalives_idle = 4",
    "SET tcp_keepalives_interval = 2",
    "SET tcp_keepalives_count = 2",
)


class Leadership(Protocol):
    """The port: become the leader, know whether we still are, give it up.

    ``lost`` is cleared when leadership is gained and set the moment it ends (the lock's
    connection broke, or :meth:`aclose`); a follower keeps trying until :meth:`aclose`.
    """

    @property
    def is_leader(self) -> bool:
        """True while this process holds the leadership."""
        ...

    @property
    def lost(self) -> asyncio.Event:
        """Set when leadership ends; await ``lost.wait()`` to stop what it guards."""
        ...

    async def start(self) -> None:
        """Begin trying to lead (returns at once; idempotent)."""
        ...

    async def wait_until_leader(self) -> None:
        """Return once this process leads (at once if it does)."""
        ...

    async def aclose(self) -> None:
        """Give the leadership up (so another replica takes over at once) and stop trying."""
        ...


class _Base:
    """``async with`` for both implementations."""

    async def start(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class SoleLeader(_Base):
    """The only process there is (SQLite): the leader from :meth:`start` to :meth:`aclose`."""

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
        if not self._lost.is_set():
            self._leading.set()

    async def wait_until_leader(self) -> None:
        await self._leading.wait()

    async def aclose(self) -> None:
        self._leading.clear()
        self._lost.set()


def lock_id(key: str) -> int:
    """The advisory lock's ``bigint`` for ``key``: the same in every process and version."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"voicebot-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisoryLockLeader(_Base):
    """Leadership as a PostgreSQL session-level advisory lock (see the module docstring).

    A background task (from :meth:`start`) connects, tries the lock every ``retry_every``
    seconds, and while it holds it watches the connection; a lost connection sets
    :attr:`lost`, and the task reconnects and tries again as a follower.
    """

    def __init__(
        self, *, conninfo_or_url: str, key: str, metrics: Metrics, retry_every: float = 2.0
    ) -> None:
        if "://" in conninfo_or_url and "+" in conninfo_or_url.split("://", 1)[0]:
            conninfo_or_url = conninfo_from_url(conninfo_or_url)
        self._conninfo = conninfo_or_url
        self.key = key
        self.lock_id = lock_id(key)
        self._metrics = metrics
        self._retry_every = retry_every
        self._conn: psycopg.AsyncConnection[TupleRow] | None = None
        self._leading = asyncio.Event()
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    @property
    def lost(self) -> asyncio.Event:
        return self._lost

    @property
    def backend_pid(self) -> int | None:
        """The lock session's server process id while connected (for tests and logs)."""
        conn = self._conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    async def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name=f"leader:{self.key}")

    async def wait_until_leader(self) -> None:
        if self._task is None:
            raise RuntimeError("leadership closed" if self._closed else "start() it first")
        waiter = asyncio.ensure_future(self._leading.wait())
        try:
            # The task ends only by aclose() (or a bug): never wait for it forever.
            await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not self._leading.is_set():
            raise RuntimeError("leadership closed")

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            # Cancelled until it ends: a cancellation that arrives just as an inner
            # wait_for/connect finishes can be swallowed (CPython gh-86296), and one lost
            # cancel must not hang the shutdown.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()
        conn, self._conn = self._conn, None
        if conn is not None:
            if self._leading.is_set() and not conn.closed:
                # Closing the session releases the lock too; unlocking first makes it free
                # for the next follower even if the close is slow.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        conn.execute("SELECT pg_advisory_unlock(%s)", (self.lock_id,)),
                        CHECK_TIMEOUT,
                    )
            with contextlib.suppress(Exception):
                await conn.close()
        self._step_down("released")

    # --- the background task ------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closed:
            try:
                conn = await self._connect()
                while True:  # a follower: try again and again
                    if await self._try_lock(conn):
                        break
                    await asyncio.sleep(self._retry_every)
                self._gain()
                await self._watch(conn)
            except Exception as exc:  # psycopg.Error, OSError, TimeoutError, or a surprise
                # Follower or leader, the connection is gone: so is the lock, if we had it.
                if self._closed:
                    return  # aclose() is waiting; the error is the cancellation's echo
                log.warning("leader.connection_lost", key=self.key, error=type(exc).__name__)
            self._step_down("connection_lost")
            await self._drop_connection()
            await asyncio.sleep(self._retry_every)

    async def _connect(self) -> psycopg.AsyncConnection[TupleRow]:
        conn = await asyncio.wait_for(
            psycopg.AsyncConnection.connect(self._conninfo, autocommit=True), CHECK_TIMEOUT
        )
        self._conn = conn
        for statement in KEEPALIVE:
            # A nicety: a server that refuses one (or a Unix socket, which ignores them)
            # still holds the lock for as long as the session lives.
            with contextlib.suppress(psycopg.errors.DatabaseError):
                await conn.execute(statement)
        return conn

    async def _try_lock(self, conn: psycopg.AsyncConnection[TupleRow]) -> bool:
        cur = await asyncio.wait_for(
            conn.execute("SELECT pg_try_advisory_lock(%s)", (self.lock_id,)), CHECK_TIMEOUT
        )
        row = await cur.fetchone()
        return bool(row and row[0])

    async def _watch(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        """Return never; raise when the connection breaks.

        ``notifies`` waits on the socket, so a session the server ended (an administrator's
        ``pg_terminate_backend``, a restart) is noticed at once; the ``SELECT 1`` finds a
        connection that went silent.
        """
        while True:
            async for _ in conn.notifies(timeout=self._retry_every):
                pass  # nothing LISTENs: no notification is expected
            await asyncio.wait_for(conn.execute("SELECT 1"), CHECK_TIMEOUT)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    def _gain(self) -> None:
        self._lost.clear()
        self._leading.set()
        self._metrics.leader_changes.labels("gained").inc()
        self._metrics.is_leader.set(1)
        log.info("leader.gained", key=self.key)

    def _step_down(self, why: str) -> None:
        if not self._leading.is_set():
            if self._closed:
                self._lost.set()
            return
        self._leading.clear()
        self._lost.set()
        self._metrics.leader_changes.labels("lost").inc()
        self._metrics.is_leader.set(0)
        log.info("leader.lost", key=self.key, why=why)
