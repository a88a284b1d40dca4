"""The Telegram platform: aiogram Bot + Dispatcher, long polling or webhook.

Long polling is the default; it deletes any webhook first (Telegram refuses getUpdates
while one is set), which is also how the bot "goes back" from webhook mode. Webhook mode
registers ``TELEGRAM_WEBHOOK_URL`` with a secret token and serves ``POST
/telegram/webhook`` on the bot's own HTTP server with aiogram's ``SimpleRequestHandler``.
Either way every update is stored as a durable job (claimed in the processed-events table
in the same transaction) before Telegram hears back, so none is lost or handled twice,
even across crashes and replicas (:class:`Enqueue`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, Message, TelegramObject, Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot import texts
from bot.adapters.telegram.handlers import build_router
from bot.adapters.telegram.polling import LeaderPolling
from bot.adapters.telegram.session import PromptClosingSession
from bot.adapters.telegram.turns import TelegramContext
from bot.adapters.telegram.updates import PLATFORM, chat_ref, thread_key
from bot.core import Core
from bot.engine.ordering import conversation_key
from bot.engine.ports import IncomingTurn
from bot.engine.service import Engine
from bot.http import paths
from bot.http.server import HttpServer
from bot.i18n import CATALOG_DIRS, Lang, tr
from bot.metrics import Metrics
from bot.queue.leader import AdvisoryLockLeader, Leadership, SoleLeader
from bot.queue.port import Handler, Job, RunningJob, TurnQueue

log = structlog.get_logger(__name__)

WEBHOOK_PATH = paths.TELEGRAM_WEBHOOK
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Of the platform's stop budget (bootstrap allows 4 s): let turns finish or close as
# stopped while the session can still deliver their final text.
POLLING_TIMEOUT = 10  # seconds a getUpdates call may wait for news


class InFlight(BaseMiddleware):
    """Outer update middleware: the tasks handling an update right now, for shutdown.

    aiogram handles each update in a task of its own (polling with ``handle_as_tasks``, the
    webhook handler with ``handle_in_background``) and keeps those tasks to itself.
    """

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        task = asyncio.current_task()
        if task is None:
            return await handler(event, data)
        self.tasks.add(task)
        try:
            return await handler(event, data)
        except Exception:
            # aiogram has logged it (Dispatcher._feed_webhook_update, or the polling loop);
            # a webhook task ending with it would be reported again as "never retrieved".
            task.add_done_callback(_retrieve_exception)
            raise
        finally:
            self.tasks.discard(task)


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class Enqueue(BaseMiddleware):
    """Outer update middleware: every update becomes a durable job before it is confirmed.

    On receipt (polling or webhook) the update's id is claimed and the update stored as a
    job in one transaction (:meth:`TurnQueue.accept`); Telegram hears back only after
    that, so a crash loses nothing and a redelivery is dropped as a duplicate. The job's
    run feeds the update through the dispatcher again (``job`` in the handler data) to
    the handlers. Messages of one conversation share its lock, so they are answered one
    at a time in update order on whichever replica is free; commands other than /new,
    and button presses, need no order.
    """

    def __init__(self, *, engine: Engine, queue: TurnQueue, bot_id: int) -> None:
        self._engine = engine
        self._queue = queue
        self._bot_id = bot_id

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        job: RunningJob | None = data.get("job")
        if job is not None:
            data["arrival"] = self._engine.arrive_job(PLATFORM, attempt=job.attempt)
            return await handler(event, data)
        # accept() fixes the update's place in its conversation when called (before any
        # await): updates of one batch keep their order however long each claim takes.
        accepted = self._queue.accept(
            platform=PLATFORM,
            # update_id is per bot; the bot id keeps two bots on one database apart.
            keys=[f"{self._bot_id}:{event.update_id}"],
            job=Job(
                handler=PLATFORM,
                payload=event.model_dump(mode="json", exclude_none=True, by_alias=True),
                lock=_lock(event.message),
            ),
        )
        if not await accepted:
            log.info("telegram.duplicate_update", update_id=event.update_id)
        return UNHANDLED


def _lock(message: Message | None) -> str | None:
    """The conversation a message belongs to; commands other than /new have none."""
    if message is None:
        return None
    text = message.text or ""
    if text.startswith("/") and text.split(maxsplit=1)[0].split("@")[0] != "/new":
        return None
    return conversation_key(
        platform=PLATFORM,
        chat_id=str(message.chat.id),
        thread_key=thread_key(message),
        conversation_id=None,
    )


class TelegramPlatform:
    """Implements bootstrap's ``Platform``: ``start`` receiving, ``stop`` receiving."""

    name = PLATFORM

    def __init__(
        self,
        *,
        bot: Bot,
        dispatcher: Dispatcher,
        context: TelegramContext,
        in_flight: InFlight,
        mode: str,
        webhook_url: str | None,
        webhook_secret: str | None,
        database_url: str,
        metrics: Metrics,
    ) -> None:
        if mode == "webhook" and not webhook_secret:
            # SimpleRequestHandler accepts every request when it has no secret to check.
            raise ValueError("webhook mode needs a secret token")
        self.bot = bot
        self.dispatcher = dispatcher
        self.context = context
        self._in_flight = in_flight
        self._mode = mode
        self._webhook_url = webhook_url
        self._webhook_secret = webhook_secret
        self._polling: asyncio.Task[None] | None = None
        self._poller: LeaderPolling | None = None
        self._database_url = database_url
        self._metrics = metrics
        self._accepting = False
        # Not register()ed on an app: that would close the Bot session on the app's
        # shutdown, and aclose() does that after the engine has drained.
        # Not in the background: Telegram hears back only once the update is stored as
        # a job (the dispatcher's Enqueue middleware), so a crash before that makes
        # Telegram deliver it again.
        self._webhook = SimpleRequestHandler(
            dispatcher, bot, handle_in_background=False, secret_token=webhook_secret
        )

    @classmethod
    def from_core(cls, *, core: Core, http: HttpServer) -> TelegramPlatform:
        """Build from the composition root; in webhook mode, add the route to ``http``."""
        settings = core.settings
        assert settings.TELEGRAM_BOT_TOKEN is not None
        engine = core.engine
        session = PromptClosingSession(api=TelegramAPIServer.from_base(settings.TELEGRAM_API_BASE))
        # No default parse_mode: replies carry entities, and a default would apply to
        # drafts and edits too.
        bot = Bot(token=settings.TELEGRAM_BOT_TOKEN.get_secret_value(), session=session)
        context = TelegramContext.build(
            engine=engine, settings=settings, metrics=core.metrics, bot=bot
        )
        dispatcher = Dispatcher()
        dispatcher["tg"] = context
        in_flight = InFlight()
        dispatcher.update.outer_middleware(in_flight)
        dispatcher.update.outer_middleware(Enqueue(engine=engine, queue=core.queue, bot_id=bot.id))
        dispatcher.include_router(build_router())
        secret = settings.TELEGRAM_WEBHOOK_SECRET
        platform = cls(
            bot=bot,
            dispatcher=dispatcher,
            context=context,
            in_flight=in_flight,
            mode=settings.TELEGRAM_MODE,
            webhook_url=settings.TELEGRAM_WEBHOOK_URL,
            webhook_secret=secret.get_secret_value() if secret else None,
            database_url=settings.DATABASE_URL,
            metrics=core.metrics,
        )
        if settings.TELEGRAM_MODE == "webhook":
            http.add_route("POST", WEBHOOK_PATH, platform.handle_webhook)
        core.queue.register(PLATFORM, Handler(run=platform.run_job, give_up=platform.give_up))
        core.admin_checks[PLATFORM] = context.admins  # the console re-checks rights with it
        return platform

    # --- jobs (bot.queue) -------------------------------------------------------------------

    async def run_job(self, job: RunningJob) -> None:
        """Handle a stored update: the handlers run as for a fresh one (raising makes the
        queue run it again)."""
        update = Update.model_validate(job.payload, context={"bot": self.bot})
        await self.dispatcher.feed_update(self.bot, update, job=job)
        log.info("telegram.update_done", update_id=update.update_id, attempt=job.attempt)

    async def give_up(self, job: RunningJob, error: BaseException | None) -> None:
        """Every run of this update failed: tell the chat, once."""
        log.warning(
            "telegram.job_given_up",
            job_id=job.id,
            error=type(error).__name__ if error is not None else "crashed",
        )
        update = Update.model_validate(job.payload, context={"bot": self.bot})
        message = update.message
        if message is None:
            return
        user = message.from_user
        turn = IncomingTurn(
            chat=chat_ref(message.chat),
            user_id=str(user.id if user is not None else message.chat.id),
            thread_key=thread_key(message),
            text=message.text or message.caption,
            source_message_id=str(message.message_id),
            user_language=user.language_code if user is not None else None,
        )
        await self.context.engine.abandon(turn, self.context.sink_for(message, self.bot))

    # --- Platform -------------------------------------------------------------------------

    async def start(self) -> None:
        bot = self.bot
        me = await bot.me()
        log.info("telegram.connected", bot_id=me.id, username=me.username, mode=self._mode)
        await self._register_commands()
        allowed = self.dispatcher.resolve_used_update_types()
        if self._mode == "webhook":
            assert self._webhook_url is not None
            self._accepting = True
            await bot.set_webhook(
                url=self._webhook_url,
                secret_token=self._webhook_secret,
                allowed_updates=allowed,
            )
            log.info("telegram.webhook_set")
            return
        # Telegram refuses getUpdates while a webhook is set.
        await bot.delete_webhook(drop_pending_updates=False)
        # One replica polls at a time (Telegram answers 409 to a second poller); the
        # others wait to take over (an advisory lock on PostgreSQL; SQLite: one process).
        self._poller = LeaderPolling(
            bot=bot,
            dispatcher=self.dispatcher,
            leadership=self._leadership(),
            allowed_updates=allowed,
            polling_timeout=POLLING_TIMEOUT,
        )
        self._polling = asyncio.create_task(self._poller.run(), name="telegram-polling")

    def _leadership(self) -> Leadership:
        url = self._database_url
        if url.startswith("postgresql"):
            return AdvisoryLockLeader(
                conninfo_or_url=url, key=f"telegram-polling:{self.bot.id}", metrics=self._metrics
            )
        return SoleLeader()

    async def stop(self) -> None:
        """Stop receiving (polling, webhook updates); turns in flight go on."""
        self._accepting = False
        if self._poller is not None:
            # Confirms what was stored, then hands leadership over at once.
            with contextlib.suppress(Exception):
                await self._poller.stop()
        if self._polling is not None:
            self._polling.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._polling
            self._polling = None

    def readiness(self) -> dict[str, Any]:
        """In polling mode: whether this replica is the one polling."""
        if self._poller is None:
            return {"mode": self._mode}
        return {"mode": self._mode, "polling": {"leader": self._poller.is_leader}}

    async def aclose(self) -> None:
        """After the engine drained: let handlers wrap up, then close the Bot API session."""
        pending = [*self._in_flight.tasks, *self.context.running]
        if pending:
            await asyncio.wait(pending, timeout=0.5)
        await self.bot.session.close()

    # --- webhook --------------------------------------------------------------------------

    async def handle_webhook(self, request: web.Request) -> web.Response:
        """``POST /telegram/webhook``: aiogram's handler, or 503 while not accepting.

        ``SimpleRequestHandler`` checks the secret header (401 if it is wrong or missing),
        answers ``{}`` at once and feeds the update to the dispatcher in the background.
        """
        given = request.headers.get(SECRET_HEADER, "")
        if not self._accepting and self._webhook.verify_secret(given, self.bot):
            # Telegram retries later; the processed-events table dedupes the redelivery.
            return web.json_response({"ok": False, "error": "not ready"}, status=503)
        try:
            response = await self._webhook.handle(request)
        except ValueError:  # the body is not JSON (json.JSONDecodeError)
            return web.json_response({"ok": False, "error": "bad update"}, status=400)
        if response.status == 401:
            log.warning("telegram.webhook_bad_secret")
        return response

    async def _register_commands(self) -> None:
        """The command menu: English for everyone, and each other language for the users
        whose Telegram speaks it (``language_code``, e.g. ``zh`` for every Chinese)."""
        for lang in (Lang.EN, *CATALOG_DIRS):
            commands = [
                BotCommand(command=name, description=tr(desc, lang))
                for name, desc in texts.HELP_COMMANDS
            ]
            try:
                await self.bot.set_my_commands(
                    commands, language_code=None if lang is Lang.EN else lang.value
                )
            except TelegramAPIError as exc:  # the menu is a nicety; never fail start for it
                log.warning("telegram.set_commands_failed", error=type(exc).__name__)
                return
