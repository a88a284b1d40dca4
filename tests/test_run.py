"""``voicebot run`` as an operator runs it: a real process, real signals, real HTTP.

Only Telegram and DashScope are faked (local servers speaking their wire formats); the
bot is the installed console script with its composition root, migrations, HTTP server,
Telegram adapter, engine and audio pipeline.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from bot import texts
from tests.audio import synth
from tests.fakes.dashscope import FakeDashScope
from tests.fakes.slack import FakeSlack, fake_slack
from tests.fakes.telegram import FakeTelegram, telegram_fake
from tests.process import BotProcess, clean_env

__all__ = ["fake_slack", "telegram_fake"]


def _voice(seconds: float) -> bytes:
    fmt = synth.FORMATS["voice.ogg"]
    return synth.encode(synth.speech_like(seconds, rate=fmt.rate, seed=3), fmt)


Launch = Callable[..., Awaitable[BotProcess]]


async def _until(
    probe: Callable[[], Awaitable[tuple[int, str]]],
    done: Callable[[tuple[int, str]], bool],
    within: float = 30.0,
) -> None:
    """Poll an endpoint until ``done`` holds (the leader lock is taken in the background)."""
    deadline = time.monotonic() + within
    while True:
        got = await probe()
        if done(got):
            return
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.05)


@pytest.fixture
async def launch(
    db_url: str,
    tmp_path: Path,
    telegram_fake: FakeTelegram,
    dashscope_fake: FakeDashScope,
) -> AsyncIterator[Launch]:
    """Start ``voicebot run`` against the fakes (Telegram polling, plus ``extra`` env)."""
    procs: list[BotProcess] = []

    async def start(*, warm: bool = True, **extra: str) -> BotProcess:
        env = clean_env(
            DATABASE_URL=db_url,
            DASHSCOPE_API_KEY=dashscope_fake.api_key,
            DASHSCOPE_BASE_URL=dashscope_fake.native_base_url,
            TELEGRAM_BOT_TOKEN=telegram_fake.token,
            TELEGRAM_API_BASE=telegram_fake.base_url,
            TELEGRAM_EDIT_INTERVAL="0.1",
            AUDIO_WORKERS="1",
            SHUTDOWN_GRACE="1",  # the SIGTERM test's reply streams far longer than this
            **extra,
        )
        proc = await BotProcess.start(env, cwd=tmp_path, warm=warm)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        await proc.kill()


@pytest.fixture
async def bot_process(launch: Launch) -> BotProcess:
    return await launch()


async def test_run_serves_answers_and_stops_cleanly_on_sigterm(
    bot_process: BotProcess,
    launch: Launch,
    db_url: str,
    telegram_fake: FakeTelegram,
    dashscope_fake: FakeDashScope,
) -> None:
    await bot_process.wait_ready()
    status, metrics = await bot_process.get("/metrics")
    assert status == 200 and "voicebot_turns_total" in metrics
    assert "voicebot_queue_depth" in metrics and "voicebot_job_latency_seconds" in metrics
    # /readyz reports the queue, and that this (only) replica polls Telegram.
    status, body = await bot_process.get("/readyz")
    ready = json.loads(body)
    assert status == 200 and ready["queue"]["connected"] is True
    assert ready["queue"]["backend"] == (
        "inprocess" if db_url.startswith("sqlite") else "procrastinate"
    )
    await _until(
        lambda: bot_process.get("/readyz"),
        lambda got: json.loads(got[1])["telegram"]["polling"]["leader"] is True,
    )

    # A voice note through the running process: migrations were applied, the turn answered.
    user = telegram_fake.user(501, "Ann")
    chat = telegram_fake.private_chat(user)
    telegram_fake.inject(message=telegram_fake.voice_message(chat=chat, user=user, data=_voice(2)))
    await telegram_fake.wait_for(
        lambda: any("Heard 1 audio clip" in t for t in telegram_fake.sent_texts(chat["id"])),
        within=60,
    )
    # By default a private chat's voice note is answered by voice too (TTS for this model).
    await telegram_fake.wait_for(lambda: telegram_fake.sent_voices(chat["id"]), within=60)
    assert len(dashscope_fake.tts_requests) >= 1

    # A slow reply in flight when SIGTERM arrives is closed, not abandoned.
    dashscope_fake.queue_reply(chunks=["Still ", "thinking "] * 50, chunk_delay=0.2)
    telegram_fake.inject(message=telegram_fake.voice_message(chat=chat, user=user, data=_voice(1)))
    await telegram_fake.wait_for(lambda: telegram_fake.calls_of("sendMessageDraft"), within=60)
    await telegram_fake.wait_for(
        lambda: any(
            "Still" in str(c.params.get("text", ""))
            for c in telegram_fake.calls_of("sendMessageDraft")
        ),
        within=60,
    )
    code, took = await bot_process.stop(signal.SIGTERM)
    assert code == 0, bot_process.stderr
    assert took < 10.0
    logs = bot_process.stderr
    assert "shutdown.done" in logs
    assert dashscope_fake.api_key not in logs and telegram_fake.token not in logs
    final = [m.get("text", "") for m in telegram_fake.sent(chat["id"]) if "voice" not in m]
    assert len(telegram_fake.sent_voices(chat["id"])) == 1  # a stopped reply is not spoken
    if db_url.startswith("sqlite"):
        # One process: what was streamed is kept as the reply, cut short, marked stopped.
        assert len(final) == 2
        assert final[1].startswith("Still thinking")
        assert "Still thinking " * 50 not in final[1]
        assert final[1].rstrip().endswith("(stopped)")
        return
    # Replicas (PostgreSQL): the cut turn stays queued, and the next replica to run it
    # answers it afresh, from the stored recording, saying so. Never both.
    assert len(final) == 1
    dashscope_fake.queue_reply(chunks=["The ", "whole ", "answer."])
    successor = await launch()

    def texts_now() -> list[str]:
        return [m.get("text", "") for m in telegram_fake.sent(chat["id"]) if "voice" not in m]

    await telegram_fake.wait_for(lambda: len(texts_now()) >= 2, within=60)
    await successor.stop(signal.SIGTERM)
    final = texts_now()
    assert len(final) == 2
    assert final[1].startswith("The whole answer.")
    assert final[1].rstrip().endswith(texts.REPLY_RESTARTED)


# Nothing here depends on the database backend (the SIGTERM test runs on both).
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_sigint_on_an_idle_bot(bot_process: BotProcess) -> None:
    await bot_process.wait_ready()
    code, took = await bot_process.stop(signal.SIGINT)
    assert code == 0, bot_process.stderr
    assert took < 10.0


# Nothing here depends on the database backend (the SIGTERM test runs on both).
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_run_serves_telegram_and_slack_from_one_process(
    launch: Launch,
    telegram_fake: FakeTelegram,
    fake_slack: FakeSlack,
) -> None:
    secret = "slack-signing-secret"
    bot = await launch(
        SLACK_BOT_TOKEN=fake_slack.bot_token,
        SLACK_MODE="http",
        SLACK_SIGNING_SECRET=secret,
        SLACK_API_BASE=fake_slack.base_url,
    )
    await bot.wait_ready()

    # Slack (HTTP mode): a signed DM clip reaches the bot's own server and is answered.
    file = fake_slack.add_file(_voice(2))
    stored = fake_slack.seed_message("D0DM", text="", user="U0USER", files=[file])
    event = {
        "type": "message", "subtype": "file_share", "text": "", "user": "U0USER",
        "files": [file], "ts": stored.ts, "channel": "D0DM", "channel_type": "im",
        "event_ts": stored.ts, "team": fake_slack.team_id,
    }  # fmt: skip
    body = json.dumps(
        {
            "type": "event_callback", "team_id": fake_slack.team_id, "api_app_id": "A0APP",
            "event": event, "event_id": "Ev0BOTH", "event_time": int(time.time()),
        }
    )  # fmt: skip
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(bot.base + "/slack/events", data=body, headers=headers) as resp:
            assert resp.status == 200
    await fake_slack.wait_for(
        lambda: any("Heard 1 audio clip" in m.text for m in fake_slack.bot_messages("D0DM")),
        within=60,
    )

    # Telegram (long polling) in the same process.
    user = telegram_fake.user(502, "Bo")
    chat = telegram_fake.private_chat(user)
    telegram_fake.inject(message=telegram_fake.voice_message(chat=chat, user=user, data=_voice(1)))
    await telegram_fake.wait_for(
        lambda: any("Heard 1 audio clip" in t for t in telegram_fake.sent_texts(chat["id"])),
        within=60,
    )

    code, took = await bot.stop(signal.SIGTERM)
    assert code == 0, bot.stderr
    assert took < 10.0


# Nothing here depends on the database backend (the SIGTERM test runs on both).
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_healthz_answers_before_ready_and_readyz_only_once_started(
    launch: Launch, telegram_fake: FakeTelegram
) -> None:
    # Telegram's getMe is held back, so the platform cannot finish starting yet.
    gate = asyncio.Event()
    telegram_fake.hold("getMe", gate)
    # A fresh interpreter (not forked warm from tests.zygote): the launch as deployed,
    # imports and all, is what /healthz must answer through.
    bot = await launch(warm=False)
    await bot.wait_log("http.started")
    assert (await bot.get("/healthz"))[0] == 200
    await telegram_fake.wait_for(lambda: telegram_fake.calls_of("getMe", ok=None), within=60)
    status, body = await bot.get("/readyz")
    assert (status, json.loads(body)["status"]) == (503, "starting")
    gate.set()
    seconds = await bot.wait_ready()
    assert seconds > 0
    code, _ = await bot.stop(signal.SIGTERM)
    assert code == 0, bot.stderr
