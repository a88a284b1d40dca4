"""Telegram long polling by the one replica that holds the polling leadership.

Telegram lets one ``getUpdates`` run at a time per bot (a second gets 409 Conflict), so of
several ``voicebot run`` processes on one database only the leader
(:class:`bot.queue.leader.Leadership`) polls; the others wait and take over within
``retry_every`` seconds when it stops or dies.

Why a loop of our own rather than ``Dispatcher.start_polling`` (the project prefers the
library where it fits; here it does not, in two ways):

- **Leadership gating.** ``start_polling`` polls until it is stopped; it cannot be made to
  wait for a lock, nor to drop an in-flight ``getUpdates`` the moment the lock is lost.
- **Offset after accept.** aiogram's ``_listen_updates`` advances the offset as soon as an
  update is *yielded*, and ``_polling`` then handles it in a task of its own, so the next
  ``getUpdates`` confirms updates whose handling has not finished (a crash then loses
  them). Here each update is fed in order and ``await``ed (the dispatcher's outer
  middleware stores it as a durable job), and the offset moves past it only after that.

What is reused from aiogram: the ``Bot`` and its session, the ``GetUpdates`` method, its
error classes, ``Dispatcher.feed_update`` (middlewares, routers, filters) and ``Backoff``.
The offset starts unset at each term of leadership: Telegram resends what no one confirmed,
and the processed-events claim drops what an earlier leader had already accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import structlog
from aiogram import Bot, Dispatcher
from aiogram.dispatcher.dispatcher import DEFAULT_BACKOFF_CONFIG
from aiogram.exceptions import TelegramConflictError, TelegramRetryAfter
from aiogram.methods import GetUpdates
from aiogram.types import Update
from aiogram.utils.backoff import Backoff

from bot.queue.leader import Leadership
from bot.retrying import backoff

__all__ = ["LeaderPolling"]

log = structlog.get_logger(__name__)

# Seconds :meth:`LeaderPolling.stop` lets an update being fed (stored) finish.
STOP_GRACE = 3.0
# Seconds the confirming getUpdates at stop may take.
CONFIRM_TIMEOUT = 2.0
# Seconds (from, to) to wait after a 409 Conflict: another poller is at it.
CONFLICT_PAUSE = (1.0, 2.0)
# A feed that raised is tried again after backoff(attempt) seconds: from base to cap.
FEED_RETRY_BASE = 0.5
FEED_RETRY_CAP = 5.0


class LeaderPolling:
    """Long-polls ``getUpdates`` while ``leadership`` is ours and feeds ``dispatcher``.

    The poller owns ``leadership``: :meth:`run` starts it and, when it ends, releases it.
    """

    def __init__(
        self,
        *,
        bot: Bot,
        dispatcher: Dispatcher,
        leadership: Leadership,
        allowed_updates: list[str],
        polling_timeout: int = 10,
    ) -> None:
        self._bot = bot
        self._dispatcher = dispatcher
        self._leadership = leadership
        self._allowed_updates = allowed_updates
        self._polling_timeout = polling_timeout
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._offset: int | None = None  # the next getUpdates' offset (confirms before it)
        self._confirmed: int | None = None  # the offset of the last getUpdates answered
        self._term: asyncio.Future[Any] | None = None  # done when this term of leading ends

    @property
    def is_leader(self) -> bool:
        """Whether this replica holds the polling leadership now (``/readyz``)."""
        return self._leadership.is_leader

    async def run(self) -> None:
        """Poll whenever leader, until :meth:`stop`; then release the leadership."""
        self._task = asyncio.current_task()
        try:
            await self._leadership.start()
            why = "not leader"
            while not self._stopping.is_set():
                if not await self._until_leader(why):
                    break
                log.info("telegram.polling.leader", bot_id=self._bot.id)
                await self._lead()
                why = "leadership lost"
            if self._leadership.is_leader:
                await self._confirm()
        finally:
            await self._leadership.aclose()
            self._task = None
            log.info("telegram.polling.stopped", bot_id=self._bot.id)

    async def stop(self) -> None:
        """End :meth:`run` promptly (the long poll is cancelled, an update being stored
        gets ``STOP_GRACE`` seconds) and release the leadership, so another replica polls."""
        self._stopping.set()
        task = self._task
        if task is None or task is asyncio.current_task():
            await self._leadership.aclose()
            return
        _done, pending = await asyncio.wait({task}, timeout=STOP_GRACE)
        if pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    # --- internals -------------------------------------------------------------------------

    async def _until_leader(self, why: str) -> bool:
        """Wait for leadership; ``False`` if stopped first."""
        if not self._leadership.is_leader and not self._stopping.is_set():
            log.info("telegram.polling.follower", bot_id=self._bot.id, why=why)
        leader = asyncio.ensure_future(self._leadership.wait_until_leader())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({leader, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not leader.done():
                leader.cancel()
        if self._stopping.is_set():
            return False
        leader.result()  # re-raise if the leadership broke down
        return True

    def _leading(self) -> bool:
        """Still in the term that :meth:`_lead` began, and not stopping."""
        term = self._term
        return (
            term is not None
            and not term.done()  # done: lost (even if gained again since)
            and not self._leadership.lost.is_set()
            and not self._stopping.is_set()
        )

    async def _lead(self) -> None:
        """One term of leadership: poll and feed until it is lost or the poller stops."""
        self._offset = self._confirmed = None
        # Set once the term ends, even if leadership is gained back before we look.
        self._term = asyncio.ensure_future(self._leadership.lost.wait())
        try:
            await self._poll()
        finally:
            self._term.cancel()
            if not self._stopping.is_set():  # lost: the next term starts afresh
                self._offset = self._confirmed = None

    async def _poll(self) -> None:
        errors = Backoff(config=DEFAULT_BACKOFF_CONFIG)
        while self._leading():
            try:
                updates = await self._fetch()
            except TelegramConflictError:
                # Another poller (an old version during a rolling deploy, a stray process).
                log.warning("telegram.polling.conflict", bot_id=self._bot.id)
                await self._pause(random.uniform(*CONFLICT_PAUSE))
                continue
            except TelegramRetryAfter as exc:
                await self._pause(float(exc.retry_after))
                continue
            except Exception as exc:  # network errors, 5xx, a bad answer: try again later
                delay = next(errors)
                log.warning(
                    "telegram.polling.error",
                    bot_id=self._bot.id,
                    error=type(exc).__name__,
                    retry_in=round(delay, 2),
                )
                await self._pause(delay)
                continue
            if updates is None:  # lost or stopping
                return
            errors.reset()
            for update in updates:
                if not self._leading() or not await self._feed(update):
                    return
                self._offset = update.update_id + 1

    async def _fetch(self) -> list[Update] | None:
        """One ``getUpdates``; ``None`` if leadership was lost or the poller stopped first
        (the call is then cancelled, and what it may have brought is not fed)."""
        offset = self._offset
        method = GetUpdates(
            offset=offset, timeout=self._polling_timeout, allowed_updates=self._allowed_updates
        )
        # As aiogram does: the request may take the long poll plus the session's timeout.
        request_timeout = int(self._bot.session.timeout + self._polling_timeout)
        call = asyncio.ensure_future(self._bot(method, request_timeout=request_timeout))
        try:
            await self._while_leading(call)
        except BaseException:  # cancelled ourselves
            call.cancel()
            raise
        if not self._leading():
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await call
            return None
        updates = call.result()  # raises what the call raised
        self._confirmed = offset
        return updates

    async def _while_leading(self, *aws: asyncio.Future[Any], within: float | None = None) -> None:
        """Wait for the first of ``aws``, ``within`` seconds, the term's end or :meth:`stop`."""
        assert self._term is not None
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait(
                {*aws, self._term, stopping}, timeout=within, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopping.cancel()

    async def _feed(self, update: Update) -> bool:
        """Feed ``update`` until that succeeds; ``False`` if lost or stopped first."""
        attempt = 0
        while True:
            try:
                await self._dispatcher.feed_update(self._bot, update)
                return True
            except Exception as exc:  # not stored: Telegram must not be told it was
                attempt += 1
                log.warning(
                    "telegram.polling.feed_failed",
                    bot_id=self._bot.id,
                    update_id=update.update_id,
                    attempt=attempt,
                    error=type(exc).__name__,
                )
            if not await self._pause(backoff(attempt, base=FEED_RETRY_BASE, cap=FEED_RETRY_CAP)):
                return False

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the term ends or the poller stops; ``_leading()``."""
        await self._while_leading(within=seconds)
        return self._leading()

    async def _confirm(self) -> None:
        """At stop, tell Telegram what was fed since the last answered ``getUpdates``, so
        the next leader does not get it again (the claim would drop it; this saves work)."""
        if self._offset is None or self._offset == self._confirmed:
            return
        method = GetUpdates(offset=self._offset, timeout=0, limit=1)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._bot(method), CONFIRM_TIMEOUT)
            self._confirmed = self._offset
