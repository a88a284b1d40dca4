"""When to retry a model request, and how long to wait first.

Only before the first byte of an answer (the client never calls this afterwards), only for
rate limits, 5xx, dropped connections and connect timeouts; ``Retry-After`` wins over the
exponential backoff, and a wait longer than a chat user would accept is not retried.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bot import errors

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    max_retries: int
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, exc: errors.ModelError, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up."""
        retryable = isinstance(
            exc, errors.ModelRateLimited | errors.ModelServerError | errors.ModelConnectionLost
        ) or (isinstance(exc, errors.ModelTimeout) and exc.code == "ConnectTimeout")
        if not retryable or attempt >= self.max_retries:
            return None
        if exc.retry_after is not None:
            if exc.retry_after > self.max_retry_after:
                return None  # longer than a chat user would wait: let the caller say so
            return exc.retry_after
        backoff = min(self.backoff_max, self.backoff_base * (2.0**attempt))
        # Jitter spreads the retries of many chats hit by the same rate limit.
        return backoff * (1.0 + random.uniform(0.0, 0.25))
