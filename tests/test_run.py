"""``voicebot run`` as an operator runs it: a real process, real signals, real HTTP.

Only Telegram and DashScope are faked (local servers speaking their wire formats); the
bot is the installed console script with its composition root, migrations, HTTP server,
Telegram adapter, engine and audio pipeline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.config import Settings
from tests.audio import synth
from tests.fakes.dashscope import FakeDashScope
from tests.fakes.telegram import FakeTelegram, telegram_fake

__all__ = ["telegram_fake"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _voice(seconds: float) -> bytes:
    fmt = synth.FORMATS["voice.ogg"]
    return synth.encode(synth.speech_like(seconds, rate=fmt.rate, seed=3), fmt)


class BotProcess:
    """``python -m bot run`` in a subprocess, with its stderr collected."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.base = f"http://127.0.0.1:{port}"
        self.stderr = b""

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.get(self.base + path) as resp:
            return resp.status, await resp.text()

    async def wait_healthy(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise AssertionError(f"bot exited early: {await self._stderr()}")
            try:
                status, _ = await self.get("/healthz")
                if status == 200:
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("bot did not become healthy")

    async def stop(self, sig: signal.Signals) -> tuple[int, float]:
        """Send ``sig``; return the exit status and how long the process took to exit."""
        start = time.monotonic()
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), timeout=30)
        return code, time.monotonic() - start

    async def _stderr(self) -> str:
        assert self.proc.stderr is not None
        self.stderr += await self.proc.stderr.read()
        return self.stderr.decode(errors="replace")


@pytest.fixture
async def bot_process(
    db_url: str,
    tmp_path: Path,
    telegram_fake: FakeTelegram,
    dashscope_fake: FakeDashScope,
) -> AsyncIterator[BotProcess]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.update(
        DATABASE_URL=db_url,
        DASHSCOPE_API_KEY=dashscope_fake.api_key,
        DASHSCOPE_BASE_URL=dashscope_fake.native_base_url,
        TELEGRAM_BOT_TOKEN=telegram_fake.token,
        TELEGRAM_API_BASE=telegram_fake.base_url,
        TELEGRAM_EDIT_INTERVAL="0.1",
        HTTP_PORT=str(port),
        LOG_FORMAT="json",
        AUDIO_WORKERS="1",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run",
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    bot = BotProcess(proc, port)
    try:
        yield bot
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_run_serves_answers_and_stops_cleanly_on_sigterm(
    bot_process: BotProcess, telegram_fake: FakeTelegram, dashscope_fake: FakeDashScope
) -> None:
    await bot_process.wait_healthy()
    assert (await bot_process.get("/readyz"))[0] == 200
    status, metrics = await bot_process.get("/metrics")
    assert status == 200 and "voicebot_turns_total" in metrics

    # A voice note through the running process: migrations were applied, the turn answered.
    user = telegram_fake.user(501, "Ann")
    chat = telegram_fake.private_chat(user)
    telegram_fake.inject(message=telegram_fake.voice_message(chat=chat, user=user, data=_voice(2)))
    await telegram_fake.wait_for(
        lambda: any("Heard 1 audio clip" in t for t in telegram_fake.sent_texts(chat["id"])),
        within=60,
    )

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
    assert code == 0, await bot_process._stderr()
    assert took < 10.0
    final = telegram_fake.sent_texts(chat["id"])
    assert len(final) == 2
    # What was streamed is kept as the reply, cut short and marked as stopped.
    assert final[1].startswith("Still thinking")
    assert "Still thinking " * 50 not in final[1]
    assert final[1].rstrip().endswith("(stopped)")
    logs = await bot_process._stderr()
    assert "shutdown.done" in logs
    assert dashscope_fake.api_key not in logs and telegram_fake.token not in logs


async def test_sigint_on_an_idle_bot(bot_process: BotProcess) -> None:
    await bot_process.wait_healthy()
    code, took = await bot_process.stop(signal.SIGINT)
    assert code == 0, await bot_process._stderr()
    assert took < 10.0
