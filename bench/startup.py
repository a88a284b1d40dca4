"""Benchmark: ``voicebot run`` from launch to live (``/healthz``) and to ready (``/readyz``).

Run: ``python -m bench.startup`` (``--runs N``, default 5). Needs the test extra: the bot
runs against the suite's fake Bot API (``tests.fakes.telegram``) on loopback, on a fresh
SQLite database each run (so the migrations run every time), Telegram in long polling.

Baseline, measured in the same run: a bare interpreter importing aiogram's types, the one
cost no start-up order can avoid (``python -c "import aiogram.types"``). Printed: medians
in milliseconds and the ratio to that baseline, for

- live: the first ``GET /healthz`` that answers 200 (the HTTP server starts first);
- ready: the bot's own ``ready`` log line (migrations applied, Telegram started);
- readyz: the first ``GET /readyz`` that answers 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.fakes.telegram import FakeTelegram


async def _poll(url: str, *, until: float) -> float:
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < until:
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return time.monotonic()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.005)
    raise SystemExit(f"timed out waiting for {url}")


async def one_run(tg: FakeTelegram) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "SLACK_"))}
        env.update(
            DATABASE_URL=f"sqlite+aiosqlite:///{Path(tmp) / 'bot.db'}",
            DASHSCOPE_API_KEY="sk-bench",
            DASHSCOPE_BASE_URL="http://127.0.0.1:9/api/v1",
            TELEGRAM_BOT_TOKEN=tg.token,
            TELEGRAM_API_BASE=tg.base_url,
            HTTP_PORT="0",
            LOG_FORMAT="json",
        )
        launched = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=tmp, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stderr is not None
        port: int | None = None
        live = ready = readyz = 0.0
        async for line in proc.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "http.started":
                port = int(entry["port"])
                live = await _poll(f"http://127.0.0.1:{port}/healthz", until=launched + 120)
            if entry.get("event") == "ready":
                ready = time.monotonic()
                assert port is not None
                readyz = await _poll(f"http://127.0.0.1:{port}/readyz", until=launched + 120)
                break
        proc.terminate()
        await proc.wait()
        return live - launched, ready - launched, readyz - launched


def baseline() -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import aiogram.types"], check=True)
    return time.monotonic() - start


async def main(runs: int) -> None:
    tg = FakeTelegram()
    await tg.start()
    try:
        rows: list[tuple[float, float, float, float]] = []
        for _ in range(runs):
            base = baseline()
            live, ready, readyz = await one_run(tg)
            rows.append((base, live, ready, readyz))
    finally:
        await tg.stop()
    med = [statistics.median(r[i] for r in rows) for i in range(4)]
    print(f"runs: {runs}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'':28} {'median ms':>10} {'vs baseline':>12}")
    names = ("baseline: import aiogram.types", "live (/healthz 200)", "ready (log)", "/readyz 200")
    for name, value in zip(names, med, strict=True):
        print(f"{name:28} {value * 1000:10.0f} {value / med[0]:11.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
