"""The Slack platform: Bolt ``AsyncApp`` wiring, Socket Mode or HTTP mode.

``SlackPlatform.from_core`` builds everything (the HTTP route included, before the server
starts); :meth:`SlackPlatform.start` connects Socket Mode; :meth:`SlackPlatform.stop`
stops receiving and closes sessions (the engine drains the turns in flight).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import aiohttp
import structlog
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack import listeners
from bot.adapters.slack.admins import SlackAdminCheck
from bot.adapters.slack.deps import SlackDeps
from bot.adapters.slack.events import PLATFORM
from bot.adapters.slack.files import slack_file_hosts
from bot.adapters.slack.http import EVENTS_PATH, events_handler
from bot.adapters.slack.listeners import messages, shortcuts
from bot.adapters.slack.threads import ThreadInspector
from bot.config import Settings
from bot.core import Core
from bot.delivery.sink import DeliveryPolicy
from bot.engine.service import Engine
from bot.errors import ConfigError
from bot.http.server import HttpServer
from bot.metrics import Metrics
from bot.queue.port import Handler, RunningJob, TurnQueue

log = structlog.get_logger(__name__)


def build_client(*, token: str, base_url: str, retries: bool = True) -> AsyncWebClient:
    """A Web API client on SLACK_API_BASE; with ``retries`` it waits out ``ratelimited``
    (Retry-After) and reconnects, without them every failure reaches the caller."""
    return AsyncWebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=30,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        ]
        if retries
        else [],
    )


class _SocketMode(Protocol):
    """What this platform uses of Bolt's AsyncSocketModeHandler (whose methods are not
    annotated upstream)."""

    async def connect_async(self) -> None: ...

    async def close_async(self) -> None: ...


class SlackPlatform:
    """Slack for the engine: one workspace, one bot token."""

    name = "slack"

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        queue: TurnQueue,
        metrics: Metrics,
        max_bytes: int,
        reply_interval: float = 1.0,
    ) -> None:
        if settings.SLACK_BOT_TOKEN is None:
            raise ConfigError("SLACK_BOT_TOKEN", "required for Slack")
        self._settings = settings
        self._token = settings.SLACK_BOT_TOKEN.get_secret_value()
        self.client = build_client(token=self._token, base_url=settings.SLACK_API_BASE)
        self._session: aiohttp.ClientSession | None = None
        self._socket: _SocketMode | None = None
        http_mode = settings.SLACK_MODE == "http"
        secret = settings.SLACK_SIGNING_SECRET
        self.app = AsyncApp(
            client=self.client,
            signing_secret=secret.get_secret_value() if secret else "",
            # Socket Mode envelopes are not signed; Bolt skips the check for them anyway.
            request_verification_enabled=http_mode,
            process_before_response=False,
            logger=logging.getLogger("slack_bolt"),
        )
        self.deps = SlackDeps(
            engine=engine,
            queue=queue,
            client=self.client,
            reply_client=build_client(
                token=self._token, base_url=settings.SLACK_API_BASE, retries=False
            ),
            delivery=DeliveryPolicy(timeout=settings.DELIVERY_TIMEOUT),
            session=self.session,
            token=self._token,
            file_hosts=slack_file_hosts(settings.SLACK_API_BASE),
            metrics=metrics,
            admins=SlackAdminCheck(client=self.client),
            threads=ThreadInspector(client=self.client),
            max_bytes=max_bytes,
            reply_interval=reply_interval,
        )
        listeners.register(self.app, self.deps)
        deps = self.deps

        async def run(job: RunningJob) -> None:
            if job.payload.get("kind") == shortcuts.JOB_KIND:
                await shortcuts.run_job(deps, job)
            else:
                await messages.run_job(deps, job)

        async def give_up(job: RunningJob, error: BaseException | None) -> None:
            if job.payload.get("kind") == shortcuts.JOB_KIND:
                await shortcuts.give_up(deps, job)
            else:
                await messages.give_up(deps, job, error)

        queue.register("slack", Handler(run=run, give_up=give_up))

    @classmethod
    def from_core(cls, *, core: Core, http: HttpServer) -> SlackPlatform:
        """Build from the composition root; in HTTP mode add ``POST /slack/events``."""
        settings = core.settings
        platform = cls(
            settings=settings,
            engine=core.engine,
            queue=core.queue,
            metrics=core.metrics,
            max_bytes=core.audio.max_bytes,
        )
        if settings.SLACK_MODE == "http":
            http.add_route("POST", EVENTS_PATH, events_handler(platform.app))
        core.admin_checks[PLATFORM] = platform.deps.admins  # the console re-checks rights
        return platform

    def session(self) -> aiohttp.ClientSession:
        """The download session, opened on first use (inside the running loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=120, sock_connect=15)
            )
        return self._session

    async def start(self) -> None:
        """Socket Mode: connect (``apps.connections.open`` with the app token)."""
        if self._settings.SLACK_MODE != "socket":
            log.info("slack.http_mode", path=EVENTS_PATH)
            return
        app_token = self._settings.SLACK_APP_TOKEN
        if app_token is None:
            raise ConfigError("SLACK_APP_TOKEN", "required when SLACK_MODE=socket")
        socket: _SocketMode = AsyncSocketModeHandler(self.app, app_token.get_secret_value())
        self._socket = socket
        await socket.connect_async()
        log.info("slack.socket_mode.connected")

    async def stop(self) -> None:
        """Stop receiving: close the Socket Mode websocket (HTTP mode needs nothing)."""
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None

    def readiness(self) -> dict[str, Any]:
        """Nothing to add: every replica receives Slack events."""
        return {}

    async def aclose(self) -> None:
        """After the engine drained: close the file download session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
