"""``voicebot run`` with nothing but a DashScope key: the playground is the first run."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp

from bot import texts
from bot.i18n import tr
from tests.fakes.dashscope import FakeDashScope
from tests.process import BotProcess, clean_env, patience


async def test_run_with_only_a_dashscope_key_serves_the_playground(
    tmp_path: Path, dashscope_fake: FakeDashScope
) -> None:
    out = tmp_path / "stdout.txt"
    env = clean_env(
        DASHSCOPE_API_KEY=dashscope_fake.api_key,
        DASHSCOPE_BASE_URL=dashscope_fake.native_base_url,
        AUDIO_WORKERS="1",
    )
    bot = await BotProcess.start(env, cwd=tmp_path, stdout=out)
    try:
        await bot.wait_ready()
        # The URL is printed once ready, right after the "ready" log line.
        deadline = asyncio.get_running_loop().time() + patience(10)
        while "playground:" not in out.read_text():
            assert asyncio.get_running_loop().time() < deadline, out.read_text()
            await asyncio.sleep(0.05)
        (url,) = re.findall(r"^playground: (http://\S+)$", out.read_text(), re.M)
        assert url == f"http://127.0.0.1:{bot.port}/"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200
            assert tr(texts.PLAYGROUND_RECORD) in await resp.text()
            assert "HttpOnly" in resp.headers["Set-Cookie"]
            assert "SameSite=Strict" in resp.headers["Set-Cookie"]
        code, _ = await bot.stop(2)
        assert code == 0
    finally:
        await bot.kill()


async def test_a_public_host_without_platforms_still_has_nothing_to_run(tmp_path: Path) -> None:
    env = clean_env(DASHSCOPE_API_KEY="sk-test", HTTP_HOST="0.0.0.0")
    bot = await BotProcess.start(env, cwd=tmp_path)
    code = await asyncio.wait_for(bot.proc.wait(), timeout=patience(30))
    await bot.kill()
    assert code == 2
    assert "nothing to run" in bot.stderr


async def test_the_playground_on_a_public_host_needs_the_console_sign_in(tmp_path: Path) -> None:
    env = clean_env(DASHSCOPE_API_KEY="sk-test", HTTP_HOST="0.0.0.0", WEB_PLAYGROUND="true")
    bot = await BotProcess.start(env, cwd=tmp_path)
    code = await asyncio.wait_for(bot.proc.wait(), timeout=patience(30))
    await bot.kill()
    assert code == 2
    assert "WEB_PLAYGROUND" in bot.stderr and "ADMIN_CONSOLE=true" in bot.stderr
