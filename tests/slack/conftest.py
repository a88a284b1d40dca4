"""Slack end-to-end harness: the real voicebot (engine, audio pipeline, DashScope client,
HTTP server, Bolt) against the fake Slack and the fake DashScope, on SQLite and PostgreSQL.

Events reach the bot the way Slack sends them: as signed HTTP requests to the bot's own
``POST /slack/events`` (HTTP mode), or as envelopes on the fake Socket Mode websocket.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.listener.async_listener_completion_handler import (
    AsyncListenerCompletionHandler,
)
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.adapters.slack.app import SlackPlatform
from bot.adapters.slack.deps import SlackDeps
from bot.adapters.slack.listeners import messages
from bot.bootstrap import build_core, build_platforms, serve, shutdown
from bot.config import Settings
from bot.core import Core
from bot.engine.ports import TurnOutcome
from bot.http.server import HttpServer
from bot.queue.port import Handler, Job, QueueHealth, RunningJob, TurnQueue
from bot.storage.database import Database
from tests.audio import synth
from tests.fakes.dashscope import FakeDashScope
from tests.fakes.slack import FakeMessage, FakeSlack, fake_slack

__all__ = ["fake_slack"]

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0TEAM"
USER = "U0USER"
DM = "D0DM"
CHANNEL = "C0CHAN"


@functools.lru_cache(maxsize=8)
def clip(seconds: float = 2.0, seed: int = 0) -> bytes:
    """A Slack audio clip (audio/mp4, AAC), generated once per length."""
    fmt = synth.FORMATS["clip.m4a"]
    return synth.encode(synth.speech_like(seconds, rate=fmt.rate, seed=seed), fmt)


def sign(
    body: str, *, timestamp: int | None = None, secret: str = SIGNING_SECRET
) -> dict[str, str]:
    """Slack's request signature headers for ``body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


class SlackBot:
    """The running bot, and ways to talk to it like Slack does."""

    def __init__(
        self,
        *,
        mode: str,
        fake: FakeSlack,
        dashscope: FakeDashScope,
        core: Core,
        http: HttpServer,
        platform: SlackPlatform,
    ) -> None:
        self.mode = mode
        self.fake = fake
        self.dashscope = dashscope
        self.core = core
        self.http = http
        self.platform = platform
        self._session = aiohttp.ClientSession()
        self.outcomes: list[TurnOutcome] = []
        self._turns = asyncio.Condition()
        # Count finished turns (the fake cannot tell when an edited message is final).
        run_turn = platform.deps.run_turn

        async def counting(turn: Any, *args: Any, **kwargs: Any) -> TurnOutcome:
            try:
                outcome = await run_turn(turn, *args, **kwargs)
            except BaseException:
                outcome = TurnOutcome(status="failed")
                raise
            finally:
                async with self._turns:
                    self.outcomes.append(outcome)
                    self._turns.notify_all()
            return outcome

        platform.deps.run_turn = counting  # type: ignore[method-assign]
        # Count the deliveries Bolt has finished with (events, commands, actions): their
        # listener ran to the end, turn included. A delivery Bolt drops before any
        # listener (the bot's own messages, bad signatures) is never counted.
        self.processed = 0
        self._processed = asyncio.Condition()
        assert isinstance(core.queue, CountingQueue)
        core.queue.on_done = self._count_processed
        runner = platform.app.listener_runner
        runner.listener_completion_handler = _Counting(
            runner.listener_completion_handler, self._count_processed
        )

    async def _count_processed(self) -> None:
        async with self._processed:
            self.processed += 1
            self._processed.notify_all()

    async def deliveries_done(self, count: int, within: float = 30.0) -> None:
        """Wait until the bot has finished with ``count`` deliveries since it started."""

        async def wait() -> None:
            async with self._processed:
                await self._processed.wait_for(lambda: self.processed >= count)

        await asyncio.wait_for(wait(), within)

    def duplicates(self) -> float:
        """Deliveries the bot recognised as already processed (the metric)."""
        value = self.core.metrics.registry.get_sample_value(
            "voicebot_duplicate_events_total", {"platform": "slack"}
        )
        return value or 0.0

    async def turns(self, count: int = 1, within: float = 30.0) -> list[TurnOutcome]:
        """Wait until ``count`` turns have finished (replies final, stored)."""

        async def wait() -> None:
            async with self._turns:
                await self._turns.wait_for(lambda: len(self.outcomes) >= count)

        await asyncio.wait_for(wait(), within)
        return list(self.outcomes)

    async def replies(self, channel: str, turns: int = 1) -> list[FakeMessage]:
        """The bot's messages in ``channel`` once ``turns`` turns have finished."""
        await self.turns(turns)
        return self.fake.bot_messages(channel)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.bound_port}/slack/events"

    async def close(self) -> None:
        await self._session.close()

    # --- raw deliveries -----------------------------------------------------------------

    async def post(
        self,
        body: str,
        *,
        content_type: str,
        headers: dict[str, str] | None = None,
        signed: bool = True,
        timestamp: int | None = None,
    ) -> aiohttp.ClientResponse:
        """POST to /slack/events as Slack would (signed unless told otherwise)."""
        all_headers = {"Content-Type": content_type, **(headers or {})}
        if signed:
            all_headers.update(sign(body, timestamp=timestamp))
        async with self._session.post(self.url, data=body.encode(), headers=all_headers) as resp:
            await resp.read()
            return resp

    def event_body(self, event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
        return {
            "token": "verification-token",
            "team_id": TEAM,
            "api_app_id": "A0APP",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "team_id": TEAM,
                    "user_id": self.fake.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }

    async def send_event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int = 0,
    ) -> str:
        """Deliver an Events API event; returns its event id."""
        body = self.event_body(event, event_id=event_id)
        if self.mode == "socket":
            env = await self.fake.send_envelope(
                "events_api",
                body,
                retry_attempt=retry_num,
                retry_reason="timeout" if retry_num else "",
            )
            await self.fake.wait_ack(env)
        else:
            headers = {}
            if retry_num:
                headers = {
                    "X-Slack-Retry-Num": str(retry_num),
                    "X-Slack-Retry-Reason": "http_timeout",
                }
            resp = await self.post(
                json.dumps(body), content_type="application/json", headers=headers
            )
            assert resp.status == 200
        return str(body["event_id"])

    async def command(
        self,
        text: str,
        *,
        user: str = USER,
        channel: str = DM,
        channel_name: str = "directmessage",
    ) -> dict[str, Any]:
        """Run ``/voicebot text``; returns the ephemeral answer posted to response_url."""
        key = uuid.uuid4().hex
        payload = {
            "token": "verification-token",
            "team_id": TEAM,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": channel_name,
            "user_id": user,
            "user_name": user.lower(),
            "command": "/voicebot",
            "text": text,
            "api_app_id": "A0APP",
            "is_enterprise_install": "false",
            "response_url": self.fake.response_url(key),
            "trigger_id": f"tr.{key}",
        }
        if self.mode == "socket":
            env = await self.fake.send_envelope("slash_commands", payload)
            await self.fake.wait_ack(env)
        else:
            resp = await self.post(
                urlencode(payload), content_type="application/x-www-form-urlencoded"
            )
            assert resp.status == 200
        await self.fake.wait_for(lambda: any(r["_key"] == key for r in self.fake.responses))
        return next(r for r in self.fake.responses if r["_key"] == key)

    async def interactive(self, payload: dict[str, Any]) -> None:
        if self.mode == "socket":
            env = await self.fake.send_envelope("interactive", payload)
            await self.fake.wait_ack(env)
        else:
            resp = await self.post(
                urlencode({"payload": json.dumps(payload)}),
                content_type="application/x-www-form-urlencoded",
            )
            assert resp.status == 200

    # --- Slack-shaped events --------------------------------------------------------------

    def file_message(
        self,
        file: dict[str, Any],
        *,
        channel: str = DM,
        text: str = "",
        user: str = USER,
        thread_ts: str | None = None,
        ts: str | None = None,
    ) -> dict[str, Any]:
        """A ``message``/``file_share`` event, also stored in the fake's history."""
        stored = self.fake.seed_message(
            channel, text=text, user=user, thread_ts=thread_ts, files=[file], ts=ts
        )
        event = {
            "type": "message",
            "subtype": "file_share",
            "text": text,
            "user": user,
            "files": [file],
            "upload": False,
            "display_as_bot": False,
            "ts": stored.ts,
            "channel": channel,
            "channel_type": _channel_type(channel),
            "event_ts": stored.ts,
            "team": TEAM,
            "client_msg_id": str(uuid.uuid4()),
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return event

    def text_message(
        self,
        text: str,
        *,
        channel: str = DM,
        user: str = USER,
        thread_ts: str | None = None,
        ts: str | None = None,
        kind: str = "message",
    ) -> dict[str, Any]:
        stored = self.fake.seed_message(channel, text=text, user=user, thread_ts=thread_ts, ts=ts)
        event = {
            "type": kind,
            "text": text,
            "user": user,
            "ts": stored.ts,
            "channel": channel,
            "event_ts": stored.ts,
            "team": TEAM,
            "client_msg_id": str(uuid.uuid4()),
        }
        if kind == "message":
            event["channel_type"] = _channel_type(channel)
        if thread_ts:
            event["thread_ts"] = thread_ts
        return event

    def mention(self) -> str:
        return f"<@{self.fake.bot_user_id}>"


_ACCEPTING: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "accepting", default=None
)


class CountingQueue:
    """The bot's turn queue, counting the message deliveries the bot finished with.

    A message event never reaches a Bolt listener: it is stored as a job (counted when
    its run ends), dropped as a duplicate (counted then), or acknowledged as nothing for
    the bot (counted by :func:`_counting_enqueue`).
    """

    def __init__(self, inner: TurnQueue) -> None:
        self._inner = inner
        self.backend = inner.backend
        self.on_done: Callable[[], Awaitable[None]] | None = None

    async def done(self) -> None:
        if self.on_done is not None:
            await self.on_done()

    def register(self, name: str, handler: Handler) -> None:
        async def run(job: RunningJob) -> None:
            try:
                await handler.run(job)
            finally:
                await self.done()

        async def give_up(job: RunningJob, error: BaseException | None) -> None:
            try:
                await handler.give_up(job, error)
            finally:
                await self.done()

        self._inner.register(name, Handler(run=run, give_up=give_up))

    def accept(self, *, platform: str, keys: Sequence[str], job: Job) -> Awaitable[bool]:
        accepted = self._inner.accept(platform=platform, keys=keys, job=job)
        flag = _ACCEPTING.get()
        if flag is not None:
            flag.append(True)

        async def wait() -> bool:
            stored = await accepted
            if not stored:
                await self.done()
            return stored

        return wait()

    async def start(self) -> None:
        await self._inner.start()

    async def drain(self, *, grace: float) -> None:
        await self._inner.drain(grace=grace)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def health(self) -> QueueHealth:
        return self._inner.health()


_plain_enqueue = messages.enqueue


async def _counting_enqueue(
    deps: SlackDeps, *, body: dict[str, Any], context: AsyncBoltContext
) -> bool:
    flag: list[bool] = []
    token = _ACCEPTING.set(flag)
    try:
        handled = await _plain_enqueue(deps, body=body, context=context)
    finally:
        _ACCEPTING.reset(token)
    if handled and not flag and isinstance(deps.queue, CountingQueue):
        await deps.queue.done()  # acknowledged: nothing in it for the bot
    return handled


class _Counting(AsyncListenerCompletionHandler):
    """Bolt's completion handler, then a count of the finished listener run."""

    def __init__(
        self, inner: AsyncListenerCompletionHandler, done: Callable[[], Awaitable[None]]
    ) -> None:
        self._inner = inner
        self._done = done

    async def handle(self, request: AsyncBoltRequest, response: BoltResponse | None) -> None:
        try:
            await self._inner.handle(request=request, response=response)
        finally:
            await self._done()


def _channel_type(channel: str) -> str:
    return {"D": "im", "G": "group"}.get(channel[0], "channel")


async def start_bot(
    *,
    mode: str,
    fake: FakeSlack,
    dashscope: FakeDashScope,
    database: Database,
    **overrides: Any,
) -> SlackBot:
    values: dict[str, Any] = {
        "DATABASE_URL": database.url,
        "AUTO_MIGRATE": False,
        "DASHSCOPE_API_KEY": dashscope.api_key,
        "DASHSCOPE_BASE_URL": dashscope.native_base_url,
        "DASHSCOPE_MAX_RETRIES": 0,
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_MODE": mode,
        "SLACK_API_BASE": fake.base_url,
        "HTTP_PORT": 0,
        "AUDIO_WORKERS": 1,
        "TELEGRAM_BOT_TOKEN": None,
    }
    if mode == "socket":
        values["SLACK_APP_TOKEN"] = fake.app_token
    else:
        values["SLACK_SIGNING_SECRET"] = SIGNING_SECRET
    values.update(overrides)
    settings = Settings.load(**values)
    core = await build_core(settings, migrate=False)
    core.queue = CountingQueue(core.queue)
    messages.enqueue = _counting_enqueue  # type: ignore[assignment]  # idempotent
    http = HttpServer(host="127.0.0.1", port=0, database=core.database, metrics=core.metrics)
    platforms = build_platforms(core, http)
    assert len(platforms) == 1 and isinstance(platforms[0], SlackPlatform)
    platform = platforms[0]
    platform.deps.reply_interval = 0.05  # fast tests; throttling is still exercised
    await http.start()
    await serve(core=core, http=http, platforms=[platform])
    if mode == "socket":
        await fake.wait_connected()
    return SlackBot(
        mode=mode, fake=fake, dashscope=dashscope, core=core, http=http, platform=platform
    )


async def stop_bot(bot: SlackBot) -> None:
    await bot.close()
    await shutdown(core=bot.core, http=bot.http, platforms=[bot.platform])


@pytest.fixture(params=["http", "socket"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def bot(
    mode: str,
    fake_slack: FakeSlack,
    dashscope_fake: FakeDashScope,
    db: Database,
) -> AsyncIterator[SlackBot]:
    """The running bot in HTTP mode and in Socket Mode, on SQLite and PostgreSQL."""
    fake_slack.add_user(USER)
    running = await start_bot(mode=mode, fake=fake_slack, dashscope=dashscope_fake, database=db)
    try:
        yield running
    finally:
        await stop_bot(running)


@pytest.fixture
async def http_bot(
    fake_slack: FakeSlack,
    dashscope_fake: FakeDashScope,
    db: Database,
) -> AsyncIterator[SlackBot]:
    """HTTP mode only (signature checks)."""
    fake_slack.add_user(USER)
    running = await start_bot(mode="http", fake=fake_slack, dashscope=dashscope_fake, database=db)
    try:
        yield running
    finally:
        await stop_bot(running)
