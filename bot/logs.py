"""Structured logging (structlog over stdlib logging): console or one JSON object a line.

Log events carry ids, sizes, durations and codes, never secrets, audio or message text.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(*, level: str, fmt: str) -> None:
    """Route structlog and stdlib logging (aiogram, slack, httpx…) to stderr in one format."""
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; Telegram URLs contain the bot token.
    # procrastinate logs every job (its arguments: message text) at INFO.
    noisy_loggers = (
        "httpx",
        "httpcore",
        "aiohttp.access",
        "hpack",
        "alembic.runtime.plugins",
        "procrastinate",
    )
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
