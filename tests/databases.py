"""Database fixtures: every test that takes ``db`` runs on SQLite and on PostgreSQL.

PostgreSQL is the server at VOICEBOT_TEST_POSTGRES_URL (default: the local one on
127.0.0.1:5432, trust auth). Each test gets a database of its own, cloned from a migrated
template, so tests never see each other's rows. The clones are made a little ahead of need
and dropped after use by a thread of their own (:class:`_PgClones`), so a test does not
wait for ``CREATE DATABASE``. If PostgreSQL is unreachable the tests fail: they never skip
silently.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage import migrations
from bot.storage.database import Database

POSTGRES_URL = os.environ.get(
    "VOICEBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to completion on a fresh loop in another thread.

    Session fixtures are first requested from inside a running test loop, where
    ``asyncio.run`` is not allowed.
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _admin_url() -> str:
    return POSTGRES_URL


async def _pg_exec(*statements: str) -> None:
    engine = create_async_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for stmt in statements:
                await conn.execute(text(stmt))
    finally:
        await engine.dispose()


def _pg_url(dbname: str) -> str:
    return make_url(POSTGRES_URL).set(database=dbname).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL database to clone per test (one per xdist worker)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"voicebot_tpl_{worker}_{uuid.uuid4().hex[:8]}"

    async def setup() -> None:
        try:
            await _pg_exec(f'CREATE DATABASE "{name}"')
        except OSError as exc:  # pragma: no cover - environment problem, fail loudly
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}")
        db = Database(url=_pg_url(name))
        await migrations.upgrade(db)
        await db.dispose()

    _run(setup())
    yield name
    _run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class _PgClones:
    """Clones of the template, made ``ahead`` at a time on a loop in a thread of its own.

    :meth:`take` hands out the oldest one (waiting for it if it is still being made) and
    orders the next; :meth:`drop` drops a used one in the background.
    """

    def __init__(self, template: str, *, ahead: int = 2) -> None:
        self._template = template
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._ready: deque[concurrent.futures.Future[str]] = deque()
        self._drops: list[concurrent.futures.Future[None]] = []
        for _ in range(ahead):
            self._order()

    def _order(self) -> None:
        self._ready.append(asyncio.run_coroutine_threadsafe(self._create(), self._loop))

    async def _create(self) -> str:
        name = f"voicebot_t_{uuid.uuid4().hex[:12]}"
        await _pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        return name

    async def take(self) -> str:
        made = self._ready.popleft()
        self._order()
        return await asyncio.wrap_future(made)

    def take_now(self) -> str:
        """:meth:`take` for synchronous fixtures."""
        made = self._ready.popleft()
        self._order()
        return made.result(timeout=60)

    def drop(self, name: str) -> None:
        self._drops.append(
            asyncio.run_coroutine_threadsafe(
                _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'), self._loop
            )
        )

    def close(self) -> None:
        """Drop what is left (the clones never taken too), then stop the thread."""
        for made in self._ready:
            # A clone that could not be made has nothing to drop.
            with contextlib.suppress(Exception):
                self.drop(made.result(timeout=60))
        for dropped in self._drops:
            dropped.result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="session")
def pg_clones(pg_template: str) -> Iterator[_PgClones]:
    """Migrated databases (clones of the template)."""
    clones = _PgClones(pg_template)
    try:
        yield clones
    finally:
        clones.close()


@pytest.fixture(scope="session")
def pg_empty() -> Iterator[_PgClones]:
    """Empty databases (what ``CREATE DATABASE`` makes: clones of ``template1``)."""
    clones = _PgClones("template1")
    try:
        yield clones
    finally:
        clones.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"

    async def setup() -> None:
        db = Database(url=f"sqlite+aiosqlite:///{path}")
        await migrations.upgrade(db)
        await db.dispose()

    _run(setup())
    return path


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty (unmigrated) database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
        return
    clones: _PgClones = request.getfixturevalue("pg_empty")
    name = clones.take_now()
    yield _pg_url(name)
    clones.drop(name)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database of its own on each backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "bot.db"
        shutil.copyfile(template, target)  # a few hundred KB: cheap enough inline
        database = Database(url=f"sqlite+aiosqlite:///{target}")
        yield database
        await database.dispose()
        return
    clones: _PgClones = request.getfixturevalue("pg_clones")
    name = await clones.take()
    database = Database(url=_pg_url(name))
    try:
        yield database
    finally:
        await database.dispose()
        clones.drop(name)
