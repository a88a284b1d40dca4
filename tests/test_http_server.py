"""The bot's own HTTP server: /healthz, /readyz (database), /metrics (Prometheus text)."""

from __future__ import annotations

import aiohttp

from bot.http.server import HttpServer
from bot.metrics import Metrics
from bot.storage.database import Database


async def test_health_ready_and_metrics(db: Database) -> None:
    metrics = Metrics()
    metrics.turns.labels(platform="telegram", model="m", kind="voice_chat", status="complete").inc()
    server = HttpServer(host="127.0.0.1", port=0, database=db, metrics=metrics)
    await server.start()
    base = f"http://127.0.0.1:{server.bound_port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200
                assert (await resp.json())["status"] == "ok"
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200
                assert (await resp.json())["database"] == "ok"
            async with http.get(f"{base}/metrics") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain")
                body = await resp.text()
                labels = 'kind="voice_chat",model="m",platform="telegram",status="complete"'
                assert f"voicebot_turns_total{{{labels}}} 1.0" in body
            async with http.get(f"{base}/nope") as resp:
                assert resp.status == 404
    finally:
        await server.stop()


async def test_readyz_fails_when_the_database_is_unreachable() -> None:
    db = Database(url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    server = HttpServer(host="127.0.0.1", port=0, database=db, metrics=Metrics())
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{server.bound_port}/readyz") as resp:
                assert resp.status == 503
                assert (await resp.json())["database"] == "unreachable"
            async with http.get(f"http://127.0.0.1:{server.bound_port}/healthz") as resp:
                assert resp.status == 200  # alive, just not ready
    finally:
        await server.stop()
        await db.dispose()
