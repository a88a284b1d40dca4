"""Webhook mode: aiogram's SimpleRequestHandler behind a wrapper that answers 503 while the
bot is stopping, and shutdown waiting for updates still being handled."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import aiohttp
import pytest
from aiogram.types import TelegramObject, Update

from bot.adapters.telegram.app import InFlight, TelegramPlatform
from tests.fakes.dashscope import Reply
from tests.telegram.conftest import WEBHOOK_SECRET, Harness


async def _post(url: str, body: dict[str, Any] | str, secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    data = body if isinstance(body, str) else json.dumps(body)
    async with aiohttp.ClientSession() as client, client.post(url, data=data, headers=headers) as r:
        await r.read()
        return r.status


async def test_a_stopping_bot_answers_503_and_the_retry_is_answered(harness: Harness) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    first = await harness.start(TELEGRAM_MODE="webhook")
    await first.platform.stop()  # receiving stopped; the HTTP server still answers
    body = {"update_id": 7001, "message": tg.message(chat=chat, user=ann, text="late")}
    assert await _post(first.webhook_url, body, WEBHOOK_SECRET) == 503
    assert await _post(first.webhook_url, body, "wrong-secret") == 401  # never 503
    await first.stop()  # drained and closed: whatever the first bot did is done
    assert not harness.ds.requests and not tg.sent(chat["id"])

    # Telegram retries later, at the new instance: the update was not claimed by the first.
    second = await harness.start(TELEGRAM_MODE="webhook")
    assert await _post(second.webhook_url, body, WEBHOOK_SECRET) == 200
    assert len(await harness.replies(chat, 1)) == 1
    assert [r.texts[-1][1] for r in harness.ds.requests] == ["late"]


async def test_a_body_that_is_not_json_is_refused(harness: Harness) -> None:
    bot = await harness.start(TELEGRAM_MODE="webhook")
    assert await _post(bot.webhook_url, "not json", WEBHOOK_SECRET) == 400
    assert await _post(bot.webhook_url, "not json", None) == 401
    assert not harness.ds.requests


async def test_shutdown_closes_a_webhook_reply_in_flight(harness: Harness) -> None:
    tg = harness.tg
    bot = await harness.start(TELEGRAM_MODE="webhook")
    ann = harness.user()
    chat = harness.private(ann)
    harness.ds.queue(Reply(chunks=[f"word{i} " for i in range(200)], chunk_delay=0.05))
    tg.inject(message=tg.message(chat=chat, user=ann, text="talk for a long time"))
    await harness.until(lambda: tg.calls_of("sendMessageDraft"))
    assert bot.platform._in_flight.tasks  # the update is still being handled
    await bot.stop()
    assert not bot.platform._in_flight.tasks
    assert bot.platform.bot.session._session is None or bot.platform.bot.session._session.closed
    await harness.finished_once(chat)


async def test_in_flight_knows_the_task_handling_an_update() -> None:
    in_flight = InFlight()
    started, release = asyncio.Event(), asyncio.Event()

    async def handler(event: TelegramObject, data: dict[str, Any]) -> str:
        started.set()
        await release.wait()
        return "handled"

    task = asyncio.create_task(in_flight(handler, Update(update_id=1), {}))
    await started.wait()
    assert in_flight.tasks == {task}
    release.set()
    assert await task == "handled"
    assert not in_flight.tasks


async def test_a_failed_update_is_not_reported_again_as_never_retrieved() -> None:
    # aiogram logs the failure itself; the webhook handler's task is never awaited.
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        in_flight = InFlight()

        async def handler(event: TelegramObject, data: dict[str, Any]) -> None:
            raise RuntimeError("handler failed")

        task = asyncio.create_task(in_flight(handler, Update(update_id=2), {}))
        await asyncio.wait({task})
        await asyncio.sleep(0)  # done callbacks run
        assert task.done() and not task.cancelled() and not in_flight.tasks
        del task
        gc.collect()
        assert not reported
    finally:
        loop.set_exception_handler(None)


@pytest.mark.parametrize("secret", [None, ""])
def test_webhook_mode_refuses_to_run_without_a_secret(secret: str | None) -> None:
    # SimpleRequestHandler would accept every request; the refusal comes before anything
    # else is used.
    unused: Any = None
    with pytest.raises(ValueError, match="secret"):
        TelegramPlatform(
            bot=unused,
            dispatcher=unused,
            context=unused,
            in_flight=InFlight(),
            mode="webhook",
            webhook_url="https://bot.example/telegram/webhook",
            webhook_secret=secret,
            database_url="sqlite+aiosqlite:///unused.db",
            metrics=unused,
        )
