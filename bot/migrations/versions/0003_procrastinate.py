"""procrastinate 3.10's schema (the turn queue on PostgreSQL)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 12:00:00.000000

PostgreSQL only (SQLite runs the in-process queue). The SQL is procrastinate's own
``schema.sql`` for the pinned version; a procrastinate upgrade adds a migration that
applies its ``sql/migrations/*.sql`` files the same way. Its objects are ``procrastinate_*``
and are left out of autogenerate's comparison (``bot/migrations/env.py``).
"""

from collections.abc import Sequence

from alembic import context, op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DROP = """
DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,
    procrastinate_jobs, procrastinate_workers CASCADE;
DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type,
    procrastinate_job_status CASCADE;
DO $$
DECLARE fn regprocedure;
BEGIN
    FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
              JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%'
    LOOP
        EXECUTE 'DROP FUNCTION ' || fn || ' CASCADE';
    END LOOP;
END;
$$;
"""


def _run_script(sql: str) -> None:
    if context.is_offline_mode():
        op.execute(sql)
        return
    # asyncpg prepares every statement SQLAlchemy sends, and a prepared statement holds
    # one command: the script goes through the driver's own execute (simple protocol),
    # on the connection (and in the transaction) the migration runs in.
    bind = op.get_bind()
    bind.exec_driver_sql("SELECT 1")  # the adapter opens its transaction lazily
    raw = bind.connection.dbapi_connection
    assert raw is not None
    raw.run_async(lambda driver: driver.execute(sql))


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    # Imported here: every migration module loads on each `alembic`/`ask` start, and
    # procrastinate is only needed when this one actually runs.
    from procrastinate.schema import SchemaManager

    _run_script(SchemaManager.get_schema())


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    _run_script(_DROP)
