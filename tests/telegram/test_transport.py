"""Long polling and webhook delivery, and exactly-once handling of updates."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.fakes.dashscope import Reply
from tests.telegram.conftest import WEBHOOK_SECRET, Harness, Running


async def _post(url: str, body: dict[str, Any], secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    async with (
        aiohttp.ClientSession() as client,
        client.post(url, data=json.dumps(body), headers=headers) as resp,
    ):
        await resp.read()
        return resp.status


async def test_polling_deletes_webhook_first_and_asks_for_used_updates(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    await harness.until(lambda: tg.calls_of("getUpdates", ok=None))
    methods = [c.method for c in tg.calls]
    assert methods.index("deleteWebhook") < methods.index("getUpdates")
    allowed = tg.calls_of("getUpdates", ok=None)[0].params["allowed_updates"]
    assert {"message", "callback_query", "stopped_message_generation"} <= set(allowed)
    assert not tg.calls_of("setWebhook")


async def test_same_update_twice_is_answered_once(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    body = {"update_id": 5000, "message": tg.message(chat=chat, user=ann, text="hello")}
    tg.pending.extend([body, dict(body)])  # one getUpdates batch with a duplicate
    tg.redeliver(tg.pending.pop())
    await harness.until(lambda: tg.sent(chat["id"]))
    tg.inject(message=tg.message(chat=chat, user=ann, text="second"))
    await harness.until(lambda: len(tg.sent(chat["id"])) == 2)
    assert len(harness.ds.requests) == 2
    assert duplicates(bot) == 1


def duplicates(bot: Running) -> float:
    """Updates the bot recognised as already handled (read from its metrics registry)."""
    value = bot.core.metrics.registry.get_sample_value(
        "voicebot_duplicate_events_total", {"platform": "telegram"}
    )
    return value or 0.0


async def test_update_seen_before_a_restart_is_not_processed_again(harness: Harness) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    first = await harness.start()
    update_id = tg.inject(message=tg.message(chat=chat, user=ann, text="before restart"))
    await harness.until(lambda: tg.sent(chat["id"]))
    body = next(c.result for c in tg.calls_of("getUpdates") if c.result)[0]
    assert body["update_id"] == update_id
    await first.stop()

    # As after a crash before the offset was confirmed: Telegram sends it again.
    tg.pending.insert(0, body)
    second = await harness.start()
    tg.inject(message=tg.message(chat=chat, user=ann, text="after restart"))
    # The redelivered update was seen and dropped (counted), and nothing answered it.
    await harness.until(lambda: len(tg.sent(chat["id"])) == 2 and duplicates(second) == 1)
    await harness.until(harness.idle)
    assert len(tg.sent(chat["id"])) == 2
    assert [r.texts[-1][1] for r in harness.ds.requests] == ["before restart", "after restart"]


async def test_webhook_mode(harness: Harness) -> None:
    tg = harness.tg
    bot = await harness.start(TELEGRAM_MODE="webhook")
    hook = tg.calls_of("setWebhook")[-1].params
    assert hook["url"] == bot.webhook_url
    assert hook["secret_token"] == WEBHOOK_SECRET
    assert "stopped_message_generation" in hook["allowed_updates"]
    assert not tg.calls_of("getUpdates", ok=None)

    ann = harness.user()
    chat = harness.private(ann)
    # Telegram (the fake) POSTs the update with the secret header.
    tg.inject(message=tg.message(chat=chat, user=ann, text="via webhook"))
    await harness.until(lambda: tg.sent(chat["id"]))
    assert tg.webhook_posts[-1][1] == 200

    # A wrong or missing secret is refused and nothing is processed.
    forged = {"update_id": 9001, "message": tg.message(chat=chat, user=ann, text="forged")}
    assert await _post(bot.webhook_url, forged, "wrong-secret") == 401
    assert await _post(bot.webhook_url, forged, None) == 401

    # A redelivered update (same update_id) is answered once.
    again = {"update_id": 9002, "message": tg.message(chat=chat, user=ann, text="twice")}
    assert await _post(bot.webhook_url, again, WEBHOOK_SECRET) == 200
    assert await _post(bot.webhook_url, again, WEBHOOK_SECRET) == 200
    await harness.until(lambda: len(tg.sent(chat["id"])) == 2 and duplicates(bot) == 1)
    await harness.until(harness.idle)
    assert [r.texts[-1][1] for r in harness.ds.requests] == ["via webhook", "twice"]
    assert len(tg.sent(chat["id"])) == 2

    # Back to polling: the webhook is deleted and updates come by getUpdates.
    await bot.stop()
    await harness.start()
    assert tg.webhook is None
    tg.inject(message=tg.message(chat=chat, user=ann, text="polling again"))
    await harness.until(lambda: len(tg.sent(chat["id"])) == 3)


async def test_wrong_token_is_unauthorized(harness: Harness) -> None:
    tg = harness.tg
    url = f"{tg.base_url}/bot1:wrong/getMe"
    async with aiohttp.ClientSession() as client, client.post(url) as resp:
        assert resp.status == 401
        assert (await resp.json())["description"] == "Unauthorized"


async def test_shutdown_closes_a_reply_in_flight(harness: Harness) -> None:
    tg = harness.tg
    bot = await harness.start()
    ann = harness.user()
    chat = harness.private(ann)
    harness.ds.queue(Reply(chunks=[f"word{i} " for i in range(200)], chunk_delay=0.05))
    tg.inject(message=tg.message(chat=chat, user=ann, text="talk for a long time"))
    await harness.until(lambda: tg.calls_of("sendMessageDraft"))
    await bot.stop()
    assert bot.platform.bot.session._session is None or bot.platform.bot.session._session.closed
    await harness.finished_once(chat)
