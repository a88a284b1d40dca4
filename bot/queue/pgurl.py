"""The bot's SQLAlchemy PostgreSQL URL as libpq wants it (procrastinate's pool, the
polling leader's connection): one conversion for both."""

from __future__ import annotations

from typing import Any, Final

import psycopg
from sqlalchemy.engine import make_url

_LIBPQ_KEYS: Final = frozenset(o.keyword.decode() for o in psycopg.pq.Conninfo.get_defaults())


def conninfo_from_url(url: str) -> str:
    """libpq's connection string for a ``postgresql+asyncpg://`` SQLAlchemy URL.

    Query parameters libpq knows are kept; asyncpg's ``ssl=`` becomes ``sslmode=``;
    asyncpg-only ones (statement cache sizes…) are dropped.
    """
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {parsed.drivername}")
    params: dict[str, Any] = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    for key, value in parsed.query.items():
        single = value[-1] if isinstance(value, tuple) else value
        if key == "ssl" and "sslmode" not in parsed.query:
            params["sslmode"] = single
        elif key in _LIBPQ_KEYS:
            params[key] = single
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})
