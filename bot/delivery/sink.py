"""The one streaming sink: a reply goes from the engine to any platform through here.

:class:`StreamingSink` implements the engine's :class:`~bot.engine.ports.ReplySink` on top
of a platform's :class:`~bot.delivery.surface.Surface`. It owns, once for every platform:

- **pacing and coalescing**: :meth:`update` never waits for the platform; a background pump
  shows the newest text whenever the surface's pace allows (``progress_interval``,
  ``ready_in``, a rate limit's ``retry_after``), so a slow chat sees fewer, larger steps.
  Waits are interruptible: when the reply ends, the pump stops at once and no stale
  preview is sent before the final text.
- **the working indicator** ("typing…") until the first text.
- **notes** under the reply ("I listened to the first 3:00 of 7:42."), as Markdown italics.
- **the voice note** of a spoken reply (:meth:`voice`), after the final text, retried
  like it.
- **delivery truth**: :meth:`finish` returns only once the platform confirmed the whole
  final text. Refused formatting → the same text as plain, once. "Not modified" counts as
  delivered only when the last text the platform confirmed *is* the final text; otherwise
  the reply is shown afresh. Rate limits, 5xx and dropped connections are retried
  (honouring ``retry_after``) within ``DELIVERY_TIMEOUT``; after that :class:`Undelivered`
  is raised and the engine keeps the text to deliver it at the chat's next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from tenacity import RetryCallState

from bot import texts
from bot.commands.buttons import transcript_buttons
from bot.commands.ports import ButtonRows
from bot.delivery.surface import Surface
from bot.engine.ports import FinalReply
from bot.errors import (
    BotError,
    DeliveryError,
    DeliveryRateLimited,
    DeliveryTransient,
    FormattingRejected,
    MessageGone,
    NotModified,
    SpellsCommands,
    Undelivered,
)
from bot.i18n import tr
from bot.metrics import Metrics
from bot.retrying import retrying

log = structlog.get_logger(__name__)

# Seconds an attempt that began before DELIVERY_TIMEOUT ran out may take beyond it.
_IN_FLIGHT_GRACE = 2.0

_RETRIED = (DeliveryRateLimited, DeliveryTransient, FormattingRejected, NotModified, MessageGone)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryPolicy:
    """How hard the sink tries to deliver one text."""

    timeout: float  # DELIVERY_TIMEOUT: the total time for one final text, retries included
    max_attempts: int = 12  # a bound for faults that cost no wait (refused entities, …)


def compose(reply: FinalReply) -> str:
    """The final Markdown: the reply exactly as streamed, then the notes in italics.

    The streamed text is kept byte for byte so that a surface which can only append (a
    Slack stream) ends by appending the notes.
    """
    body = reply.text if reply.text.strip() else ""
    notes = "\n\n".join(f"_{note}_" for note in reply.notes if note.strip())
    if not notes:
        return body or tr(texts.EMPTY_REPLY)
    if not body:
        return notes
    sep = "" if body.endswith("\n\n") else "\n" if body.endswith("\n") else "\n\n"
    return body + sep + notes


class StreamingSink:
    """A :class:`~bot.engine.ports.ReplySink` for one reply on one surface."""

    def __init__(
        self,
        *,
        surface: Surface,
        policy: DeliveryPolicy,
        metrics: Metrics,
        platform: str,
        style: SpellsCommands,
    ) -> None:
        self.surface = surface
        self._style = style  # how error notices spell chat commands
        self._policy = policy
        self._metrics = metrics
        self._platform = platform
        self._text = ""
        self._plain = False
        self._confirmed: str | None = None  # the last text the platform confirmed showing
        self._paused_until = 0.0
        self._dirty = asyncio.Event()
        self._closing = asyncio.Event()
        self._has_text = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._indicator: asyncio.Task[None] | None = None
        self._on_visible: Callable[[list[str]], Awaitable[None]] | None = None
        self._reported: list[str] = []

    # --- ReplySink ---------------------------------------------------------------------

    async def start(self) -> None:
        self._indicator = asyncio.create_task(self._indicate(), name="reply-indicator")

    def track(self, on_visible: Callable[[list[str]], Awaitable[None]]) -> None:
        """Call ``on_visible`` with the reply's message ids whenever they change while it
        streams, so a crash leaves a record of what the user sees (the engine stores it
        and a restarted turn removes it)."""
        self._on_visible = on_visible

    def interrupt(self) -> None:
        """The turn was cancelled (a shutdown handing it to another replica): stop the
        indicator and the previews at once; nothing more is shown."""
        self._closing.set()
        for task in (self._pump_task, self._indicator):
            if task is not None:
                task.cancel()

    async def remove(self, message_ids: Sequence[str]) -> None:
        """Delete messages an earlier run of this turn showed (best effort)."""
        if message_ids:
            try:
                await self.surface.remove(message_ids)
            except Exception as exc:
                log.info("delivery.remove_failed", platform=self._platform, error=_code(exc))

    async def update(self, text: str, delta: str) -> None:
        del delta  # every surface needs the whole text
        self._text = text
        if text.strip():
            self._has_text.set()
        if self._pump_task is None:
            self._pump_task = asyncio.create_task(self._pump(), name="reply-pump")
        self._dirty.set()

    async def finish(self, reply: FinalReply) -> list[str]:
        """Deliver the final text; raises :class:`Undelivered` if the platform never
        confirmed all of it within the policy's timeout."""
        await self._settle()
        buttons = transcript_buttons(reply.transcript_of) if reply.transcript_of else ()
        return await self._deliver(compose(reply), buttons)

    async def fail(self, error: BotError, partial_text: str) -> list[str]:
        """Keep what was streamed (as final text), then say what went wrong."""
        await self._settle()
        ids: list[str] = []
        shown = self._text or partial_text
        if shown.strip():
            with contextlib.suppress(Undelivered):
                ids = await self._deliver(shown)
        try:
            notice = error.shown(self._style)
            ids.extend(await self._with_retries(lambda: self.surface.notice(notice)))
        except Undelivered as exc:
            log.warning("delivery.notice_failed", platform=self._platform, error=exc.code)
        return ids

    async def follow_up(self, message: str | BotError) -> list[str]:
        """After the reply: ``message`` in messages of its own (plain text, or an error as
        its user message), answering the reply; retried like the final text."""
        text = message.shown(self._style) if isinstance(message, BotError) else message
        return await self._with_retries(lambda: self.surface.follow(text))

    async def voice(self, ogg: bytes, seconds: float) -> str:
        """After the final text: the voice note, retried like the final text within
        ``DELIVERY_TIMEOUT``; raises :class:`Undelivered`."""
        if not ogg or seconds <= 0:
            raise ValueError("a voice note is never empty")

        async def once() -> list[str]:
            return [await self.surface.voice(ogg, seconds)]

        return (await self._with_retries(once))[0]

    async def deliver_late(
        self, text: str, *, reply_to: str | None, stale: Sequence[str] = ()
    ) -> list[str]:
        """Deliver a reply an earlier turn could not, in messages of its own (answering
        ``reply_to``), after removing the ``stale`` messages that show part of it; the
        reply of this turn then starts afresh. Raises ``Undelivered``."""
        surface = self.surface
        saved = surface.reply_to
        surface.reply_to = reply_to
        surface.forget()
        try:
            if stale:
                await surface.remove(stale)
            ids = await self._deliver(text)
            self._metrics.delivered_late.labels(self._platform).inc()
            return ids
        finally:
            surface.forget()
            surface.reply_to = saved
            self._confirmed = None
            self._plain = False

    # --- final delivery ----------------------------------------------------------------

    async def _deliver(self, text: str, buttons: ButtonRows = ()) -> list[str]:
        try:
            return await self._with_retries(lambda: self._final_once(text, buttons))
        except Undelivered:
            self._metrics.undelivered.labels(self._platform).inc()
            raise

    async def _with_retries(self, call: Callable[[], Awaitable[list[str]]]) -> list[str]:
        """``call`` until it succeeds, within ``DELIVERY_TIMEOUT`` in all (waits, pacing and
        the calls themselves included), else :class:`Undelivered`."""
        deadline = time.monotonic() + self._policy.timeout
        # A rate limit the preview pump met is still in force: the first try waits it out.
        pause = min(self._paused_until, deadline) - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)

        async def bounded() -> list[str]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeliveryTransient(code="delivery_timeout")
            try:
                # An attempt begun within the budget may finish up to _IN_FLIGHT_GRACE past
                # it: cancelled mid-call, a message the platform did post would be reported
                # undelivered (and shown twice once delivered late) on a slow machine.
                return await asyncio.wait_for(call(), timeout=remaining + _IN_FLIGHT_GRACE)
            except TimeoutError:
                raise DeliveryTransient(code="delivery_timeout") from None

        try:
            async for attempt in retrying(
                retry_if=lambda exc: isinstance(exc, _RETRIED),
                budget=max(0.0, deadline - time.monotonic()),
                attempts=self._policy.max_attempts,
                before_sleep=self._before_sleep,
            ):
                with attempt:
                    return await bounded()
        except DeliveryError as exc:
            self._count(exc)
            log.warning("delivery.gave_up", platform=self._platform, error=exc.code)
            raise Undelivered(cause=exc, shown=self.surface.message_ids()) from exc
        except Exception as exc:  # an SDK error the surface did not classify: a bug
            log.error(
                "delivery.unexpected_error", platform=self._platform, error=type(exc).__name__
            )
            raise Undelivered(
                f"unexpected {type(exc).__name__}", cause=exc, shown=self.surface.message_ids()
            ) from exc
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _final_once(self, text: str, buttons: ButtonRows) -> list[str]:
        try:
            return await self._final_attempt(text, buttons)
        finally:
            # What the platform confirmed of it goes on record at once: a crash after
            # this leaves the turn's next run the messages to replace.
            await self._report_visible()

    async def _final_attempt(self, text: str, buttons: ButtonRows) -> list[str]:
        try:
            ids = await self.surface.final(text, plain=self._plain, buttons=buttons)
        except FormattingRejected as exc:
            if not self._plain:
                log.info("delivery.formatting_refused", platform=self._platform)
                self._plain = True
                exc.immediate = True
            raise
        except NotModified as exc:
            if self._confirmed == text:
                return self.surface.message_ids()
            # The platform says "not modified" but never confirmed this text: show it anew.
            log.info("delivery.not_modified_mismatch", platform=self._platform)
            await self.surface.discard()
            exc.immediate = True
            raise
        except MessageGone as exc:
            self.surface.forget()
            exc.immediate = True
            raise
        self._confirmed = text
        return ids

    async def _before_sleep(self, state: RetryCallState) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, DeliveryRateLimited):
            self._paused_until = time.monotonic() + exc.retry_after
        if isinstance(exc, DeliveryError):
            self._count(exc)
            log.info(
                "delivery.retrying",
                platform=self._platform,
                error=exc.code,
                attempt=state.attempt_number,
                wait=round(state.upcoming_sleep, 3),
            )

    # --- progress ----------------------------------------------------------------------

    async def _pump(self) -> None:
        """Show the newest text whenever the pace allows, until the reply ends."""
        surface = self.surface
        next_at = 0.0
        while not self._closing.is_set():
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=surface.keepalive)
            except TimeoutError:
                self._dirty.set()  # nothing new for a while: show the same text again
            # Wait for the pace, interruptibly; again if another call took the slot meanwhile
            # (a second reply in the same chat), so the step itself never sleeps unasked.
            while not self._closing.is_set():
                now = time.monotonic()
                delay = max(next_at - now, self._paused_until - now, surface.ready_in())
                if delay <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), timeout=delay)
            if self._closing.is_set():
                return  # the final text supersedes this step
            self._dirty.clear()
            text = self._text
            if text.strip():
                await self._progress_once(text)
            next_at = time.monotonic() + surface.progress_interval

    async def _progress_once(self, text: str) -> None:
        try:
            await self.surface.progress(text, plain=self._plain)
        except DeliveryRateLimited as exc:
            self._count(exc)
            self._paused_until = time.monotonic() + exc.retry_after
            self._dirty.set()  # the next step carries this text too
        except FormattingRejected as exc:
            self._count(exc)
            if not self._plain:
                self._plain = True
                self._dirty.set()
        except DeliveryError as exc:  # progress is best effort; the final text still goes
            self._count(exc)
            log.info("delivery.progress_failed", platform=self._platform, error=exc.code)
        except Exception as exc:
            log.warning(
                "delivery.progress_unexpected", platform=self._platform, error=type(exc).__name__
            )
        else:
            self._confirmed = text
            await self._report_visible()

    async def _report_visible(self) -> None:
        ids = self.surface.message_ids()
        if self._on_visible is None or ids == self._reported:
            return
        self._reported = list(ids)
        try:
            # Shielded: a shutdown cancelling the turn right now must not cancel the record
            # of a message the user already sees (the turn's next run replaces it).
            await asyncio.shield(self._on_visible(list(ids)))
        except Exception as exc:  # a record of progress; the reply goes on without it
            log.warning("delivery.track_failed", platform=self._platform, error=type(exc).__name__)

    async def _indicate(self) -> None:
        every = self.surface.indicate_every
        while not self._has_text.is_set() and not self._closing.is_set():
            try:
                await self.surface.indicate()
            except Exception as exc:  # a missing indicator is no reason to stop a reply
                log.info("delivery.indicator_failed", platform=self._platform, error=_code(exc))
                return
            if every is None:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._has_text.wait(), timeout=every)

    async def _settle(self) -> None:
        """Stop the indicator and the pump (a platform call in progress finishes)."""
        self._closing.set()
        self._has_text.set()
        self._dirty.set()
        for task in (self._pump_task, self._indicator):
            if task is not None:
                with contextlib.suppress(Exception):
                    await task

    def _count(self, exc: DeliveryError) -> None:
        self._metrics.platform_errors.labels(platform=self._platform, error=exc.code).inc()


def _code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, DeliveryError) else type(exc).__name__
