"""Telegram end-to-end harness: the real voicebot core (engine, audio pipeline, DashScope
client against the fake DashScope server, database on SQLite and PostgreSQL) and the real
Telegram adapter, talking HTTP to :class:`tests.fakes.telegram.FakeTelegram`.

Only Telegram and DashScope are faked; updates reach the bot through long polling or as
webhook POSTs to the bot's own HTTP server.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot import texts
from bot.adapters.telegram.app import TelegramPlatform
from bot.bootstrap import build_core, serve, shutdown
from bot.config import Settings
from bot.core import Core
from bot.http import paths
from bot.http.server import HttpServer
from bot.metrics import Metrics
from bot.storage.database import Database
from tests.audio import synth
from tests.fakes.dashscope import FakeDashScope, Reply
from tests.fakes.telegram import FakeTelegram, telegram_fake

__all__ = ["telegram_fake"]  # the fixture, re-exported for pytest


WEBHOOK_SECRET = "s3cret_TOKEN-value"


@functools.lru_cache(maxsize=8)
def voice(seconds: float = 1.5, seed: int = 0) -> bytes:
    """A speech-like Telegram voice note (Ogg/Opus), generated once per length."""
    fmt = synth.FORMATS["voice.ogg"]
    return synth.encode(synth.speech_like(seconds, rate=fmt.rate, seed=seed), fmt)


@dataclass
class Running:
    """One running bot: core + HTTP server + Telegram platform."""

    core: Core
    http: HttpServer
    platform: TelegramPlatform
    stopped: bool = False

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.http.bound_port}/telegram/webhook"

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        await shutdown(core=self.core, http=self.http, platforms=[self.platform])


@dataclass
class Harness:
    """Start bots against the fakes; users and chats to talk to them."""

    tg: FakeTelegram
    ds: FakeDashScope
    db: Database
    bots: list[Running] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "DATABASE_URL": self.db.url,
            "DASHSCOPE_API_KEY": self.ds.api_key,
            "DASHSCOPE_BASE_URL": self.ds.native_base_url,
            "DASHSCOPE_MAX_RETRIES": 0,
            "TELEGRAM_BOT_TOKEN": self.tg.token,
            "TELEGRAM_API_BASE": self.tg.base_url,
            "TELEGRAM_EDIT_INTERVAL": 0.05,
            # Replies in flight at a stop get 1 s (not 5) before they are closed or requeued:
            # the shutdown tests stream for longer than either.
            "SHUTDOWN_GRACE": 1.0,
            "HTTP_HOST": "127.0.0.1",
            "USER_RATE_LIMIT": 0,
            "AUDIO_WORKERS": 1,
            "ALLOWED_USERS": "",
            "ALLOWED_CHATS": "",
            "BOT_ADMINS": "",
            # Voice replies of text-only models (TTS) only where a test asks for them:
            # they add TTS requests and voice notes to every voice message in a private chat.
            "TTS_MODEL": "off",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    async def start(self, **overrides: Any) -> Running:
        """Build and start a bot; webhook mode registers the bot's own URL.

        As ``voicebot run`` does: the HTTP server first, on a port the kernel picks (the
        webhook URL needs it), then the core and the platform, then ready."""
        metrics = Metrics()
        webhook = overrides.get("TELEGRAM_MODE") == "webhook"
        http = HttpServer(host="127.0.0.1", port=0, metrics=metrics)
        if webhook:
            http.expect(paths.TELEGRAM_WEBHOOK)
        await http.start()
        try:
            if webhook:
                overrides.setdefault("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET)
                overrides.setdefault(
                    "TELEGRAM_WEBHOOK_URL",
                    f"http://127.0.0.1:{http.bound_port}{paths.TELEGRAM_WEBHOOK}",
                )
            settings = self.settings(HTTP_PORT=http.bound_port, **overrides)
            core = await build_core(settings, migrate=False, metrics=metrics)
        except BaseException:
            await http.stop()
            raise
        platform = TelegramPlatform.from_core(core=core, http=http)
        running = Running(core=core, http=http, platform=platform)
        self.bots.append(running)  # stopped by the fixture, whatever happens next
        await serve(core=core, http=http, platforms=[platform])
        return running

    # --- people and places ----------------------------------------------------------

    def user(self, user_id: int = 111, name: str = "Ann") -> dict[str, Any]:
        return self.tg.user(user_id, name)

    def private(self, user: dict[str, Any]) -> dict[str, Any]:
        return self.tg.private_chat(user)

    def group(self, chat_id: int = -100123, *, forum: bool = False) -> dict[str, Any]:
        return self.tg.group_chat(chat_id, "Team", forum=forum)

    async def until(self, predicate: Callable[[], Any], within: float = 20.0) -> Any:
        return await self.tg.wait_for(predicate, within=within)

    def idle(self) -> bool:
        """No turn in flight in any running bot (so what the chat shows is final)."""
        return not any(b.platform.context.running for b in self.bots if not b.stopped)

    async def finished_once(self, chat: dict[str, Any]) -> None:
        """What a reply cut by a shutdown becomes, shown exactly once.

        One process (SQLite): it is closed as stopped while the session can still deliver
        it. Replicas (PostgreSQL): it is left to the queue, and the next replica to run its
        job answers it afresh, saying so (never both).
        """
        final = self.tg.sent_texts(chat["id"])
        if self.db.is_sqlite:
            assert len(final) == 1
            assert final[0].endswith(texts.REPLY_STOPPED)
            return
        assert final == []
        self.ds.queue(Reply(chunks=["the whole answer"]))
        await self.start()
        [answer] = await self.replies(chat, 1)
        assert answer.startswith("the whole answer")
        assert answer.endswith(texts.REPLY_RESTARTED)

    async def replies(self, chat: dict[str, Any], count: int) -> list[str]:
        """Wait for ``count`` bot messages in ``chat``, final (not mid-stream); their texts."""
        await self.until(lambda: len(self.tg.sent(chat["id"])) >= count and self.idle())
        return self.tg.sent_texts(chat["id"])


@pytest.fixture
async def harness(
    telegram_fake: FakeTelegram, dashscope_fake: FakeDashScope, db: Database
) -> AsyncIterator[Harness]:
    h = Harness(tg=telegram_fake, ds=dashscope_fake, db=db)
    try:
        yield h
    finally:
        for running in reversed(h.bots):
            await running.stop()


@pytest.fixture
async def bot(harness: Harness) -> Running:
    """A bot in long-polling mode."""
    return await harness.start()


Waiter = Callable[[Callable[[], Any]], Awaitable[Any]]
