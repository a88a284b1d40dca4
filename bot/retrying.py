"""The one retry policy of voicebot, on tenacity.

Every outbound call that is worth repeating (a reply's final text, a command's answer, a
model request before its first byte) waits the same way: what the other side asked for
(``retry_after`` / ``Retry-After``) wins; otherwise exponential backoff with jitter, so the
chats hit by one rate limit do not all come back at the same instant. How many tries and
for how long is the caller's: a total time budget, an attempt count, or both.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from functools import partial

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
    stop_never,
)
from tenacity.stop import stop_base

__all__ = ["backoff", "retrying", "wait_seconds"]

BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0


def backoff(attempt: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """Seconds before try ``attempt + 1`` (``attempt`` counts from 1), with 0–25 % jitter."""
    delay = min(cap, base * (2.0 ** max(0, attempt - 1)))
    return delay * (1.0 + random.uniform(0.0, 0.25))


def wait_seconds(
    state: RetryCallState, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX
) -> float:
    """The wait after a failed try: the error's ``retry_after`` if it has one, else backoff.

    Errors that carry ``retry_after`` (``DeliveryRateLimited``, ``ModelError``) name what
    the server asked for; an error whose ``immediate`` attribute is true (the caller already
    changed what it sends, e.g. plain text after refused entities) is retried at once.
    """
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    if getattr(exc, "immediate", False):
        return 0.0
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after >= 0:
        return float(retry_after)
    return backoff(state.attempt_number, base=base, cap=cap)


def retrying(
    *,
    retry_if: Callable[[BaseException], bool],
    budget: float | None = None,
    attempts: int | None = None,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_MAX,
    before_sleep: Callable[[RetryCallState], Awaitable[None] | None] | None = None,
) -> AsyncRetrying:
    """An ``AsyncRetrying`` that retries errors for which ``retry_if`` holds, waits by
    :func:`wait_seconds` (backoff from ``base`` up to ``cap``), and gives up (re-raising the
    last error) when the next wait would end past ``budget`` seconds from the first try, or
    after ``attempts`` tries."""
    stops: list[stop_base] = []
    if budget is not None:
        stops.append(stop_before_delay(budget))
    if attempts is not None:
        stops.append(stop_after_attempt(attempts))
    return AsyncRetrying(
        retry=retry_if_exception(retry_if),
        wait=partial(wait_seconds, base=base, cap=cap),
        stop=stop_any(*stops) if stops else stop_never,
        reraise=True,
        before_sleep=before_sleep,
    )
