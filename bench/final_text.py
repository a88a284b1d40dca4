"""Benchmark: the model's end → the final Telegram message (issue #13, P3).

Run: ``python -m bench.final_text`` (``--replies N``, default 15; needs the test extra).

One process, composed as ``voicebot run`` does it (:func:`bot.bootstrap.build_core`,
:meth:`TelegramPlatform.from_core`, :func:`bot.bootstrap.serve`) on SQLite, Telegram in
long-polling mode against :class:`tests.fakes.telegram.FakeTelegram`, the model being
:class:`tests.fakes.dashscope.FakeDashScope` (its own thread) at the default
``TELEGRAM_EDIT_INTERVAL`` of 1 s.

Each reply streams one word, which the bot shows as a preview (a group message or a private
draft); then, at a random point of the chat's pacing interval, the bench releases the
model's last word and end (:attr:`Reply.hold`) and times until the fake Bot API receives
the call that shows the final text. Compared in the same run:

- *bare call*: one Bot API call (``getMe``) from aiogram straight to the fake (the floor);
- *group, strict pacing*: the pacer with the final text's queue skip switched off (what
  the bot did before: the final waits for the slot after the preview's);
- *group* and *private*: the bot as it is;
- *Slack DM* and *Slack thread*: the same on Slack (HTTP mode, the suite's fake Web API):
  a DM reply is a posted message updated in place, a channel mention streams into a thread
  (``chat.startStream``/``appendStream``/``stopStream``); timed until the fake shows the
  final text, no longer streaming (polled every millisecond).

Printed: median, p90 and max in ms, and the ratio of each median to strict pacing's (the
baseline: the same bot without the skip); the bare call shows the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.adapters.telegram import pacing
from bot.adapters.telegram.app import TelegramPlatform
from bot.bootstrap import build_core, serve, shutdown
from bot.config import Settings
from bot.http.server import HttpServer
from bot.metrics import Metrics
from bot.storage import migrations
from bot.storage.database import Database
from tests.fakes.dashscope import FakeDashScope, Reply
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.slack.conftest import CHANNEL, DM, USER, start_bot, stop_bot

INTERVAL = 1.0  # TELEGRAM_EDIT_INTERVAL's default


@contextlib.contextmanager
def strict_pacing() -> Iterator[None]:
    """The pacer as before the final text's queue skip: every call waits its slot."""
    original = pacing.Pacer.wait

    async def wait(self: pacing.Pacer, key: Any, *, urgent: bool = False) -> None:
        del urgent
        await original(self, key)

    pacing.Pacer.wait = wait  # type: ignore[method-assign]
    try:
        yield
    finally:
        pacing.Pacer.wait = original  # type: ignore[method-assign]


async def bare_calls(tg: FakeTelegram, n: int) -> list[float]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url))
    bot = Bot(token=tg.token, session=session)
    try:
        out = []
        for _ in range(n + 2):
            start = time.monotonic()
            await bot.get_me()
            out.append(time.monotonic() - start)
        return out[2:]  # warm-up
    finally:
        await session.close()


_chats = iter(range(1000, 10**9))  # every reply in a chat of its own, across the runs


async def replies(tg: FakeTelegram, ds: FakeDashScope, *, group: bool, n: int) -> list[float]:
    metrics = Metrics()
    http = HttpServer(host="127.0.0.1", port=0, metrics=metrics)
    await http.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp}/bench.db",
            DASHSCOPE_API_KEY=ds.api_key,
            DASHSCOPE_BASE_URL=ds.native_base_url,
            TELEGRAM_BOT_TOKEN=tg.token,
            TELEGRAM_API_BASE=tg.base_url,
            TELEGRAM_EDIT_INTERVAL=INTERVAL,
            HTTP_HOST="127.0.0.1",
            HTTP_PORT=http.bound_port,
            USER_RATE_LIMIT=0,
        )
        core = await build_core(settings, migrate=True, metrics=metrics)
        platform = TelegramPlatform.from_core(core=core, http=http)
        await serve(core=core, http=http, platforms=[platform])
        try:
            out = []
            for i in range(n + 1):
                number = next(_chats)
                user = tg.user(number, "Bench")
                chat = tg.group_chat(-number, "Bench") if group else tg.private_chat(user)
                text = f"@{tg.username} go" if group else "go"
                release = threading.Event()
                ds.queue(Reply(chunks=["first ", "second"], hold=release))
                tg.inject(message=tg.message(chat=chat, user=user, text=text))
                preview = "sendMessage" if group else "sendMessageDraft"
                await _until(
                    lambda chat=chat, preview=preview: [  # type: ignore[misc]
                        c
                        for c in tg.calls_of(preview)
                        if str(c.params.get("chat_id")) == str(chat["id"])
                    ]
                )
                await asyncio.sleep(random.uniform(0.0, INTERVAL))  # the model's end: any time
                released = time.monotonic()
                release.set()
                final = await _until(
                    lambda chat=chat: [  # type: ignore[misc]
                        c
                        for c in tg.calls
                        if c.method in ("sendMessage", "editMessageText")
                        and str(c.params.get("chat_id")) == str(chat["id"])
                        and c.params.get("text") == "first second"
                    ]
                )
                if i:  # the first reply warms up
                    out.append(final[0].at - released)
                await asyncio.sleep(INTERVAL * 1.5)  # the chat's pacing settles
            return out
        finally:
            await shutdown(core=core, http=http, platforms=[platform])


async def slack_replies(ds: FakeDashScope, *, thread: bool, n: int) -> list[float]:
    slack = FakeSlack()
    await slack.start()
    slack.add_user(USER)
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(url=f"sqlite+aiosqlite:///{tmp}/slack.db")
        await migrations.upgrade(database)
        bot = await start_bot(
            mode="http", fake=slack, dashscope=ds, database=database, USER_RATE_LIMIT=0
        )
        bot.platform.deps.reply_interval = INTERVAL  # the default pace, not the tests'
        try:
            out = []
            for i in range(n + 1):
                channel = CHANNEL if thread else DM
                release = threading.Event()
                ds.queue(Reply(chunks=["first ", "second"], hold=release))
                text = f"{bot.mention()} go {i}" if thread else f"go {i}"
                await bot.send_event(bot.text_message(text, channel=channel))
                before = len(bot.outcomes)
                await _until(
                    lambda channel=channel, before=before: [  # type: ignore[misc]
                        m for m in slack.bot_messages(channel) if m.text.startswith("first")
                    ][before:]
                )
                await asyncio.sleep(random.uniform(0.0, INTERVAL))
                released = time.monotonic()
                release.set()
                await _until(
                    lambda channel=channel, before=before: [  # type: ignore[misc]
                        m
                        for m in slack.bot_messages(channel)
                        if m.text.startswith("first second") and not m.streaming
                    ][before:],
                    step=0.001,
                )
                if i:
                    out.append(time.monotonic() - released)
                await bot.turns(before + 1)
            return out
        finally:
            await stop_bot(bot)
            await database.dispose()
            await slack.stop()


async def _until(predicate: Any, within: float = 30.0, step: float = 0.002) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(step)
    raise TimeoutError("the bot did not answer")


def _row(name: str, values: list[float], base: float) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    med = statistics.median(ms)
    return f"{name:24} {med:9.1f} {p90:9.1f} {ms[-1]:9.1f} {med / base:11.3f}"


async def main(n: int) -> None:
    tg = FakeTelegram()
    await tg.start()
    ds = FakeDashScope()
    ds.start()
    try:
        bare = await bare_calls(tg, n)
        with strict_pacing():
            strict = await replies(tg, ds, group=True, n=n)
        group = await replies(tg, ds, group=True, n=n)
        private = await replies(tg, ds, group=False, n=n)
        slack_dm = await slack_replies(ds, thread=False, n=n)
        slack_thread = await slack_replies(ds, thread=True, n=n)
    finally:
        ds.stop()
        await tg.stop()
    base = statistics.median(strict) * 1000
    print(f"replies: {n} each, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'model end → final text':24} {'median ms':>9} {'p90':>9} {'max':>9} {'vs strict':>11}")
    print(_row("bare Bot API call", bare, base))
    print(_row("group, strict pacing", strict, base))
    print(_row("group", group, base))
    print(_row("private (draft)", private, base))
    print(_row("Slack DM", slack_dm, base))
    print(_row("Slack thread (stream)", slack_thread, base))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--replies", type=int, default=15)
    asyncio.run(main(parser.parse_args().replies))
