"""The one composition root: builds every component from :class:`Settings` and runs them.

Nothing is built at import time. ``voicebot run``, ``voicebot ask`` and the tests all
build through :func:`build_core`, so they run the same pipeline.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from bot.config import Settings
from bot.core import Core, Platform
from bot.errors import ConfigError
from bot.http import paths
from bot.metrics import Metrics
from bot.storage.database import Database

if TYPE_CHECKING:
    # aiohttp's server side loads only for `run` (imported in run_forever): `ask` never serves.
    from bot.http.server import HttpServer

log = structlog.get_logger(__name__)

# Whole shutdown budget (inside the 10 s an operator is promised): platforms stop
# receiving, in-flight replies finish or are closed as stopped while the platforms can
# still deliver them, then platform sessions, the HTTP server and the database close.
STOP_RECEIVING_SECONDS = 2.0
CLOSE_SECONDS = 1.0
HOUSEKEEPING_SECONDS = 6 * 3600.0


def plan(settings: Settings) -> tuple[list[str], list[str]]:
    """What ``run`` would start, and what stops it from starting (one line each)."""
    started: list[str] = []
    problems: list[str] = []
    db_kind = "PostgreSQL" if settings.DATABASE_URL.startswith("postgresql") else "SQLite"
    started.append(
        f"database: {db_kind}"
        + (" (migrations applied first)" if settings.AUTO_MIGRATE else " (AUTO_MIGRATE=false)")
    )
    from bot.queue import backend_for

    started.append(
        "turn queue: "
        + (
            "in-process (one process; unfinished turns resume at the next start)"
            if backend_for(settings.DATABASE_URL) == "inprocess"
            else "procrastinate on PostgreSQL (any number of replicas; "
            f"{settings.WORKER_CONCURRENCY} turns at once each)"
        )
    )
    started.append(
        f"HTTP server on {settings.HTTP_HOST}:{settings.HTTP_PORT} (/healthz, /readyz, /metrics)"
    )
    started.append(
        f"model: DashScope {settings.DASHSCOPE_PROTOCOL} protocol, default {settings.DEFAULT_MODEL}"
    )
    if settings.telegram_enabled:
        how = (
            f"webhook {settings.TELEGRAM_WEBHOOK_URL} (POST /telegram/webhook)"
            if settings.TELEGRAM_MODE == "webhook"
            else "long polling"
        )
        started.append(f"Telegram: {how}")
    if settings.slack_enabled:
        how = "Socket Mode" if settings.SLACK_MODE == "socket" else "HTTP mode (POST /slack/events)"
        started.append(f"Slack: {how}")
    if settings.ADMIN_CONSOLE:
        started.append(f"admin console: {settings.admin_url}/admin/ (sign in with /admin)")
    if settings.playground_enabled:
        started.append(f"playground: {playground_url(settings)} (the browser voice page, GET /)")
    missing = missing_requirements(settings)
    if missing:
        problems.append(missing)
    return started, problems


def missing_requirements(settings: Settings) -> str | None:
    """One line naming the variables ``run`` needs and lacks, or ``None``."""
    needs: list[str] = []
    platforms = settings.telegram_enabled or settings.slack_enabled
    if not platforms and not settings.playground_enabled:
        needs.append(
            "TELEGRAM_BOT_TOKEN (Telegram) and/or SLACK_BOT_TOKEN with SLACK_APP_TOKEN "
            "or SLACK_SIGNING_SECRET (Slack)"
            + (
                ", or keep HTTP_HOST on a loopback address for the browser playground"
                if settings.WEB_PLAYGROUND is None
                else ""
            )
        )
    if settings.DASHSCOPE_API_KEY is None:
        needs.append("DASHSCOPE_API_KEY")
    if not needs:
        return None
    return "nothing to run: set " + " and ".join(needs)


def playground_url(settings: Settings, port: int | None = None) -> str:
    """Where the browser voice playground answers (``port``: the bound one, if known)."""
    host = settings.HTTP_HOST.strip()
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal in a URL
    return f"http://{host}:{settings.HTTP_PORT if port is None else port}/"


async def build_core(
    settings: Settings, *, migrate: bool | None = None, metrics: Metrics | None = None
) -> Core:
    """Build database, model client, audio pipeline and engine (migrating if asked)."""
    from bot.audio.pipeline import AudioPipeline
    from bot.engine.service import Engine
    from bot.llm.client import DashScopeClient
    from bot.llm.tts import DashScopeTTS

    if settings.DASHSCOPE_API_KEY is None:
        raise ConfigError("DASHSCOPE_API_KEY", "required (the DashScope API key, sk-…)")
    if settings.AUTO_MIGRATE if migrate is None else migrate:
        # In a thread with its own engine and loop: Alembic works synchronously, and the
        # HTTP server (/healthz) keeps answering meanwhile.
        await asyncio.to_thread(_migrate_blocking, settings.DATABASE_URL)
    database = Database(url=settings.DATABASE_URL, concurrency=settings.WORKER_CONCURRENCY)
    metrics = metrics or Metrics()
    model_client = DashScopeClient(
        api_key=settings.DASHSCOPE_API_KEY.get_secret_value(),
        protocol=settings.DASHSCOPE_PROTOCOL,
        base_url=settings.DASHSCOPE_BASE_URL,
        compatible_base_url=settings.compatible_base_url,
        connect_timeout=settings.DASHSCOPE_CONNECT_TIMEOUT,
        first_byte_timeout=settings.DASHSCOPE_FIRST_BYTE_TIMEOUT,
        idle_timeout=settings.DASHSCOPE_IDLE_TIMEOUT,
        max_retries=settings.DASHSCOPE_MAX_RETRIES,
    )
    # The same DashScope host and key as the chat models (TTS is native-API only).
    tts = (
        DashScopeTTS(
            api_key=settings.DASHSCOPE_API_KEY.get_secret_value(),
            base_url=settings.DASHSCOPE_BASE_URL,
            connect_timeout=settings.DASHSCOPE_CONNECT_TIMEOUT,
            first_byte_timeout=settings.DASHSCOPE_FIRST_BYTE_TIMEOUT,
            idle_timeout=settings.DASHSCOPE_IDLE_TIMEOUT,
            max_retries=settings.DASHSCOPE_MAX_RETRIES,
        )
        if settings.tts_model is not None
        else None
    )
    audio = AudioPipeline(
        max_bytes=settings.AUDIO_MAX_BYTES,
        max_seconds=settings.AUDIO_MAX_SECONDS,
        output_format=settings.AUDIO_FORMAT,
        workers=settings.audio_workers,
        timeout=settings.AUDIO_TIMEOUT,
    )
    console_links = None
    if settings.ADMIN_CONSOLE:
        from bot.web.console.links import ConsoleKeys, SignInLinks

        console_links = SignInLinks(
            database=database, keys=ConsoleKeys(database=database), base_url=settings.admin_url
        )
    engine = Engine(
        settings=settings,
        database=database,
        model_client=model_client,
        audio=audio,
        metrics=metrics,
        synthesizer=tts,
        tts_model=settings.tts_model,
        console_links=console_links,
    )
    from bot.queue import build_queue

    return Core(
        settings=settings,
        database=database,
        metrics=metrics,
        model_client=model_client,
        audio=audio,
        engine=engine,
        queue=build_queue(settings=settings, database=database, metrics=metrics),
        tts=tts,
        console_links=console_links,
    )


def _migrate_blocking(url: str) -> None:
    from bot.storage import migrations

    async def upgrade() -> None:
        database = Database(url=url)
        try:
            await migrations.upgrade(database)
        finally:
            await database.dispose()

    asyncio.run(upgrade())


async def preload_platforms(settings: Settings) -> None:
    """Import the configured adapters in a thread (aiogram alone takes seconds to import),
    so the event loop, and with it ``/healthz``, stays responsive."""
    modules = []
    if settings.telegram_enabled:
        modules.append("bot.adapters.telegram.app")
    if settings.slack_enabled:
        modules.append("bot.adapters.slack.app")
    if settings.playground_enabled:
        modules.append("bot.web.playground.app")
    for name in modules:
        await asyncio.to_thread(importlib.import_module, name)


def build_platforms(core: Core, http: HttpServer) -> list[Platform]:
    """The adapters whose credentials are set (imported only then)."""
    platforms: list[Platform] = []
    settings = core.settings
    if settings.telegram_enabled:
        from bot.adapters.telegram.app import TelegramPlatform

        platforms.append(TelegramPlatform.from_core(core=core, http=http))
    if settings.slack_enabled:
        from bot.adapters.slack.app import SlackPlatform

        platforms.append(SlackPlatform.from_core(core=core, http=http))
    if settings.playground_enabled:
        from bot.web.playground.app import build_playground

        platforms.append(build_playground(core=core, http=http))
    return platforms


async def run_forever(settings: Settings) -> int:
    """``voicebot run``: start everything, wait for SIGINT/SIGTERM, stop cleanly."""
    missing = missing_requirements(settings)
    if missing:
        raise ConfigError(missing.split(": set ")[1].split(" ")[0], missing)

    from bot.http.server import HttpServer

    launched = time.monotonic()
    # The HTTP server first: /healthz answers while migrations run and the SDKs load.
    metrics = Metrics()
    http = HttpServer(host=settings.HTTP_HOST, port=settings.HTTP_PORT, metrics=metrics)
    if settings.telegram_enabled and settings.TELEGRAM_MODE == "webhook":
        http.expect(paths.TELEGRAM_WEBHOOK)
    if settings.slack_enabled and settings.SLACK_MODE == "http":
        http.expect(paths.SLACK_EVENTS)
    if settings.playground_enabled:
        http.expect(paths.PLAYGROUND)
    await http.start()
    # Load the adapters while the migrations run.
    preload = asyncio.create_task(preload_platforms(settings))
    try:
        core = await build_core(settings, metrics=metrics)
    except BaseException:
        preload.cancel()
        await http.stop()
        raise
    housekeeping = asyncio.create_task(_housekeeping(core))
    platforms: list[Platform] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await preload
        platforms = build_platforms(core, http)
        await serve(core=core, http=http, platforms=platforms)
        log.info("ready", seconds=round(time.monotonic() - launched, 3))
        if settings.playground_enabled:
            # On stdout, for the person who just typed `voicebot run` (logs go to stderr).
            print(f"playground: {playground_url(settings, http.bound_port)}", flush=True)
        await stop.wait()
        log.info("shutdown.begin")
    finally:
        housekeeping.cancel()
        await shutdown(core=core, http=http, platforms=platforms)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    log.info("shutdown.done")
    return 0


async def serve(*, core: Core, http: HttpServer, platforms: list[Platform]) -> None:
    """Run jobs (resuming those a dead process left), then receive, then say ready."""
    await core.queue.start()
    for platform in platforms:
        await platform.start()
        log.info("platform.started", platform=platform.name)
    if core.console_links is not None:
        from bot.web.console.app import AdminConsole

        AdminConsole(core=core, links=core.console_links).mount(http)
    http.mark_ready(database=core.database, report=lambda: readiness(core, platforms))


def readiness(core: Core, platforms: list[Platform]) -> tuple[bool, dict[str, Any]]:
    """``/readyz``: ready while the turn queue is connected; what each part reports."""
    health = core.queue.health()
    fields: dict[str, Any] = {
        "queue": {
            "backend": health.backend,
            "connected": health.connected,
            "running": health.running,
            **health.details,
        }
    }
    for platform in platforms:
        report = platform.readiness()
        if report:
            fields[platform.name] = report
    return health.connected, fields


async def _housekeeping(core: Core) -> None:
    """Prune old exactly-once records, and fail replies no job will finish, at start-up
    and then every few hours."""
    while True:
        try:
            await core.engine.recover()
            await core.engine.prune_events()
        except Exception as exc:  # a database hiccup must not stop the bot
            log.warning("housekeeping.failed", error=type(exc).__name__)
        await asyncio.sleep(HOUSEKEEPING_SECONDS)


async def shutdown(*, core: Core, http: HttpServer, platforms: list[Platform]) -> None:
    """Stop receiving, drain in-flight turns, then close platforms, HTTP and the core.

    The order matters: replies in flight are finished (or closed as stopped) by the engine
    while the platforms' sessions are still open to deliver them.
    """

    async def each(
        step: str, seconds: float, platform: Platform, call: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            await asyncio.wait_for(call(), timeout=seconds)
        except Exception as exc:
            log.warning(f"platform.{step}_failed", platform=platform.name, error=type(exc).__name__)

    await asyncio.gather(*(each("stop", STOP_RECEIVING_SECONDS, p, p.stop) for p in platforms))
    # The queue starts no more jobs; those not started stay queued (for the other
    # replicas, or the next start). Running turns get the grace period. With one process
    # (in-process queue) the engine then closes the rest as "stopped"; with replicas they
    # are interrupted instead, and another replica answers them afresh (never both).
    grace = core.settings.SHUTDOWN_GRACE
    drain = asyncio.create_task(core.queue.drain(grace=grace))
    try:
        if core.queue.backend == "inprocess":
            await core.engine.drain(timeout=grace)
        await drain
    except Exception as exc:
        log.warning("engine.drain_failed", error=type(exc).__name__)
    await asyncio.gather(*(each("aclose", CLOSE_SECONDS, p, p.aclose) for p in platforms))
    await http.stop()
    await core.aclose()
