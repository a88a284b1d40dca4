"""``voicebot run`` with nothing but a DashScope key: the playground is the first run."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp

from bot import texts
from bot.config import Settings
from bot.i18n import tr
from bot.storage.database import Database
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


async def test_off_loopback_the_page_needs_the_consoles_sign_in(
    db: Database, dashscope_fake: FakeDashScope
) -> None:
    """WEB_PLAYGROUND=true on 0.0.0.0 with the console on: only a signed-in admin gets the
    page or may post a recording (anyone else reaching the port would use the key)."""
    from bot import bootstrap
    from bot.engine.ports import ConsoleScope
    from bot.http.server import HttpServer
    from bot.metrics import Metrics
    from bot.web.console.signing import COOKIE

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=db.url,
        DASHSCOPE_API_KEY=dashscope_fake.api_key,
        DASHSCOPE_BASE_URL=dashscope_fake.native_base_url,
        HTTP_HOST="0.0.0.0",
        HTTP_PORT=0,
        WEB_PLAYGROUND=True,
        ADMIN_CONSOLE=True,
    )
    metrics = Metrics()
    http = HttpServer(host="0.0.0.0", port=0, metrics=metrics)
    await http.start()
    core = await bootstrap.build_core(settings, migrate=False, metrics=metrics)
    platforms = bootstrap.build_platforms(core, http)
    try:
        await bootstrap.serve(core=core, http=http, platforms=platforms)
        base = f"http://127.0.0.1:{http.bound_port}"
        async with aiohttp.ClientSession() as anyone:
            async with anyone.get(f"{base}/") as resp:
                assert resp.status == 401 and "/admin" in await resp.text()
            async with anyone.post(f"{base}/playground/turn", data=b"x") as resp:
                assert resp.status == 401
        assert core.console_links is not None
        signer = await core.console_links.keys.signer()
        cookie, _ = signer.session_cookie(
            ConsoleScope(platform="telegram", user_id="1", chats=None)
        )
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar, cookies={COOKIE: cookie}) as admin:
            async with admin.get(f"{base}/") as resp:
                assert resp.status == 200 and "playground" in (await resp.text()).lower()
    finally:
        await bootstrap.shutdown(core=core, http=http, platforms=platforms)
