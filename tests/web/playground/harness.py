"""The playground as ``voicebot run`` serves it, in-process: the real composition root
(``build_core``, ``build_platforms``, ``serve``, ``shutdown``), the real HTTP server on a
free port, and a browser-like client (cookie jar, CSRF token, SSE reader). Only DashScope
is faked (:mod:`tests.fakes.dashscope`)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from bot import bootstrap
from bot.config import Settings
from bot.core import Core
from bot.http.server import HttpServer
from bot.metrics import Metrics
from bot.storage.database import Database
from bot.web.playground.session import COOKIE, TOKEN_HEADER
from tests.fakes.dashscope import FakeDashScope

_CONFIG = re.compile(r'<script id="playground-config" type="application/json">(.*?)</script>', re.S)


@dataclass
class Reply:
    """What the page received for one recording: every event, in order."""

    status: int
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    error: str | None = None  # the JSON error of a refused request

    def named(self, name: str) -> list[dict[str, Any]]:
        return [data for event, data in self.events if event == name]

    @property
    def final_text(self) -> str:
        finals = self.named("final")
        assert finals, self.events
        return str(finals[-1]["text"])

    @property
    def notices(self) -> list[str]:
        return [str(d["text"]) for d in self.named("notice")]


class Page:
    """One browser session on the playground: its cookie and its CSRF token."""

    def __init__(self, *, base: str, client: aiohttp.ClientSession) -> None:
        self.base = base
        self.client = client
        self.token = ""
        self.config: dict[str, Any] = {}
        self.html = ""

    async def open(self, *, language: str | None = None) -> str:
        headers = {"Accept-Language": language} if language else {}
        async with self.client.get(self.base + "/", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            self.html = await resp.text()
        found = _CONFIG.search(self.html)
        assert found is not None, self.html
        self.config = json.loads(found.group(1))
        self.token = str(self.config["token"])
        return self.html

    @property
    def session(self) -> str:
        cookie = self.client.cookie_jar.filter_cookies(URL(self.base))[COOKIE]
        return cookie.value.split(".", 1)[0]

    def headers(self, **extra: str) -> dict[str, str]:
        return {TOKEN_HEADER: self.token, **extra}

    async def send(self, audio: bytes, *, content_type: str = "audio/ogg") -> Reply:
        """Post a recording and read the reply's event stream to its end."""
        async with self.client.post(
            self.base + "/playground/turn",
            data=audio,
            headers=self.headers(**{"Content-Type": content_type}),
        ) as resp:
            if resp.content_type != "text/event-stream":
                body = await resp.json()
                return Reply(status=resp.status, error=body.get("error"))
            reply = Reply(status=resp.status)
            name, data = "message", ""
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif not line:
                    reply.events.append((name, json.loads(data) if data else {}))
                    if name == "done":
                        break
                    name, data = "message", ""
            return reply

    async def post_json(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.client.post(self.base + path, json=body, headers=self.headers()) as resp:
            return resp.status, await resp.json()


@dataclass
class Playground:
    core: Core
    http: HttpServer

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http.bound_port}"

    @asynccontextmanager
    async def page(self) -> AsyncIterator[Page]:
        # unsafe: keep cookies of an IP host (127.0.0.1), as a browser does.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            page = Page(base=self.base, client=client)
            await page.open()
            yield page


@asynccontextmanager
async def playground(
    db: Database, dashscope: FakeDashScope, **overrides: Any
) -> AsyncIterator[Playground]:
    """``voicebot run`` with only a DashScope key on a loopback host, in this process."""
    settings = Settings.load(
        DATABASE_URL=db.url,
        DASHSCOPE_API_KEY=dashscope.api_key,
        DASHSCOPE_BASE_URL=dashscope.native_base_url,
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=0,
        AUDIO_WORKERS=1,
        SHUTDOWN_GRACE=1,
        **overrides,
    )
    assert settings.playground_enabled
    metrics = Metrics()
    http = HttpServer(host=settings.HTTP_HOST, port=0, metrics=metrics)
    await http.start()
    core = await bootstrap.build_core(settings, migrate=False, metrics=metrics)
    platforms = bootstrap.build_platforms(core, http)
    try:
        await bootstrap.serve(core=core, http=http, platforms=platforms)
        yield Playground(core=core, http=http)
    finally:
        await bootstrap.shutdown(core=core, http=http, platforms=platforms)
