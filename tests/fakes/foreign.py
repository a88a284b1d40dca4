"""A second local HTTP server standing for a host outside Slack and Telegram.

It records every request that reaches it (raw path with query, ``Authorization`` header) so a
test can assert that no bot token ever arrived, and serves :attr:`ForeignHost.body` on any
path (404 while it is ``None``), like a CDN answering a signed URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote

import pytest
from aiohttp import web


@dataclass(frozen=True)
class Seen:
    """One request as the foreign host received it."""

    raw_path: str  # path and query, as sent
    authorization: str | None


class ForeignHost:
    """Start with :meth:`start` (the ``foreign_host`` fixture does); read :attr:`requests`."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.body: bytes | None = None
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def saw(self, secret: str) -> bool:
        """Whether ``secret`` reached this host, in a header or in a URL."""
        return any(
            secret in (r.authorization or "") or secret in unquote(r.raw_path)
            for r in self.requests
        )

    async def _any(self, request: web.Request) -> web.Response:
        self.requests.append(Seen(request.raw_path, request.headers.get("Authorization")))
        if self.body is None:
            return web.Response(status=404, text="not here")
        return web.Response(body=self.body, content_type="application/octet-stream")


@pytest.fixture
async def foreign_host() -> AsyncIterator[ForeignHost]:
    """A running :class:`ForeignHost` on a port of 127.0.0.1 the OS picked."""
    host = ForeignHost()
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
