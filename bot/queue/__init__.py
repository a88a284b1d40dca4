"""The durable turn queue: the port (:mod:`bot.queue.port`) and its two implementations,
chosen by ``DATABASE_URL`` (:func:`build_queue`)."""

from __future__ import annotations

from bot.config import Settings
from bot.metrics import Metrics
from bot.queue.port import TurnQueue
from bot.storage.database import Database


def backend_for(database_url: str) -> str:
    """``inprocess`` on SQLite (one process), ``procrastinate`` on PostgreSQL."""
    return "inprocess" if database_url.startswith("sqlite") else "procrastinate"


def build_queue(
    *, settings: Settings, database: Database, metrics: Metrics, worker_name: str | None = None
) -> TurnQueue:
    """The queue for this deployment's database (imported only then)."""
    if backend_for(settings.DATABASE_URL) == "inprocess":
        from bot.queue.inprocess import InProcessQueue

        return InProcessQueue(database=database, settings=settings, metrics=metrics)
    from bot.queue.postgres import PostgresQueue

    return PostgresQueue(
        database=database, settings=settings, metrics=metrics, worker_name=worker_name
    )
