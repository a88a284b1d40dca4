"""aiohttp server for /healthz, /readyz, /metrics and the routes adapters add.

``voicebot run`` starts this server first, so ``/healthz`` (liveness) answers from the
first second, while migrations run and the platform SDKs load. ``/readyz`` answers 503
until :meth:`HttpServer.mark_ready` (migrations applied, every platform started), then
reports the database. Adapters may add their webhook routes before or after the server
started; a webhook path declared with :meth:`HttpServer.expect` answers 503 (the platform
retries) until its handler is added.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.metrics import Metrics
from bot.storage.database import Database

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpServer:
    """Serves the bot's endpoints on HTTP_HOST:HTTP_PORT (port 0: any free port)."""

    def __init__(
        self, *, host: str, port: int, metrics: Metrics, database: Database | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._database = database
        self._metrics = metrics
        self._ready = database is not None
        self._report: Callable[[], tuple[bool, dict[str, Any]]] | None = None
        self._routes: dict[tuple[str, str], Handler] = {}
        self._expected: set[str] = set()
        self._app = web.Application(client_max_size=4 * 1024 * 1024)
        self._app.router.add_get("/healthz", self._healthz)
        self._app.router.add_get("/readyz", self._readyz)
        self._app.router.add_get("/metrics", self._metrics_view)
        # Everything else is dispatched here, so routes can be added after start.
        self._app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``method path`` with ``handler`` (before or after :meth:`start`)."""
        self._routes[(method.upper(), path)] = handler

    def expect(self, path: str) -> None:
        """``path`` will get a handler soon: answer 503 (retry later) until it does."""
        self._expected.add(path)

    def mark_ready(
        self, *, database: Database, report: Callable[[], tuple[bool, dict[str, Any]]] | None = None
    ) -> None:
        """Migrations ran and every platform started: ``/readyz`` reports the database,
        and what ``report`` says (ready or not, and the fields to show: the turn queue,
        Telegram polling leadership)."""
        self._database = database
        self._report = report
        self._ready = True

    @property
    def app(self) -> web.Application:
        return self._app

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self._app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server  # aiohttp keeps the bound sockets here
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("http.started", host=self._host, port=self.bound_port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        handler = self._routes.get((request.method, request.path))
        if handler is not None:
            return await handler(request)
        if request.path in self._expected:
            return web.json_response({"ok": False, "error": "starting"}, status=503)
        if any(path == request.path for _, path in self._routes):
            raise web.HTTPMethodNotAllowed(
                request.method, [m for m, p in self._routes if p == request.path]
            )
        raise web.HTTPNotFound()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        if not self._ready or self._database is None:
            return web.json_response({"status": "starting"}, status=503)
        try:
            await asyncio.wait_for(self._database.ping(), timeout=3.0)
        except Exception as exc:  # any failure means "not ready", never a 500 page
            log.warning("http.readyz.failed", error=type(exc).__name__)
            return web.json_response(
                {"status": "unavailable", "database": "unreachable"}, status=503
            )
        ok, fields = self._report() if self._report is not None else (True, {})
        return web.json_response(
            {"status": "ok" if ok else "unavailable", "database": "ok", **fields},
            status=200 if ok else 503,
        )

    async def _metrics_view(self, _request: web.Request) -> web.Response:
        body = self._metrics.render()
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp
