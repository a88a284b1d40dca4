"""Database fixtures: every test that takes ``db`` runs on SQLite and on PostgreSQL.

PostgreSQL is the server at VOICEBOT_TEST_POSTGRES_URL (default: the local one on
127.0.0.1:5432, trust auth). Each test gets a database of its own, cloned from a migrated
template, so tests never see each other's rows. If PostgreSQL is unreachable the tests
fail: they never skip silently.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
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
    name = f"voicebot_t_{uuid.uuid4().hex[:12]}"
    _run(_pg_exec(f'CREATE DATABASE "{name}"'))
    yield _pg_url(name)
    _run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
    tpl: str = request.getfixturevalue("pg_template")
    name = f"voicebot_t_{uuid.uuid4().hex[:12]}"
    await _pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"')
    database = Database(url=_pg_url(name))
    try:
        yield database
    finally:
        await database.dispose()
        await _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
