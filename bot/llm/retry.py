"""When to retry a model request, and how long to wait first.

Only before the first byte of an answer (the client never retries afterwards), only for
rate limits, 5xx, dropped connections and connect timeouts; ``Retry-After`` wins over the
exponential backoff (:mod:`bot.retrying`, the one retry policy), and a wait longer than a
chat user would accept is not retried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from tenacity import AsyncRetrying, RetryCallState

from bot import errors
from bot.retrying import retrying

__all__ = ["RetryPolicy", "log_retry"]

log = structlog.get_logger(__name__)


def log_retry(event: str, *, model: str) -> Callable[[RetryCallState], None]:
    """A ``before_sleep`` hook logging each retried :class:`~bot.errors.ModelError` of a
    request to ``model`` as ``event`` (codes and ids only, never the request's content)."""

    def hook(state: RetryCallState) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        assert isinstance(exc, errors.ModelError)
        log.warning(
            event,
            model=model,
            attempt=state.attempt_number,
            error=type(exc).__name__,
            code=exc.code,
            status=exc.status,
            request_id=exc.request_id,
            delay=round(state.upcoming_sleep, 3),
        )

    return hook


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    max_retries: int
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0

    def retryable(self, exc: BaseException) -> bool:
        """Worth another try: a rate limit, a 5xx, a dropped connection or a connect timeout
        (not a read timeout: the service may still be working on it), unless the service
        asked for a longer wait than a chat user would accept."""
        if not isinstance(exc, errors.ModelError):
            return False
        kind = isinstance(
            exc, errors.ModelRateLimited | errors.ModelServerError | errors.ModelConnectionLost
        ) or (isinstance(exc, errors.ModelTimeout) and exc.code == "ConnectTimeout")
        return kind and (exc.retry_after is None or exc.retry_after <= self.max_retry_after)

    def attempts(
        self, before_sleep: Callable[[RetryCallState], Awaitable[None] | None] | None = None
    ) -> AsyncRetrying:
        """The tries of one request: the first and up to ``max_retries`` more."""
        return retrying(
            retry_if=self.retryable,
            attempts=self.max_retries + 1,
            base=self.backoff_base,
            cap=self.backoff_max,
            before_sleep=before_sleep,
        )
