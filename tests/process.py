"""``voicebot run`` as a child process, for the tests that treat the bot as a black box.

The bot binds ``HTTP_PORT=0`` (the kernel picks a free port; no port is chosen and then
released) and logs one JSON object a line on stderr; :class:`BotProcess` reads the port
from the ``http.started`` line and waits for the ``ready`` line, then for ``/readyz``.
Waits get headroom from the machine (:func:`patience`), never a fixed number of seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from bot.config import Settings

# What an idle 2-core machine needs from launch to ready, with a margin (measured: ~2 s
# with Slack only, ~5 s with aiogram's import; see README "Performance").
_BASE_READY_SECONDS = 30.0


def patience(base: float = _BASE_READY_SECONDS) -> float:
    """``base`` seconds scaled by how loaded the machine is right now (at least ×1)."""
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # pragma: no cover - not on Linux
        load = 1.0
    return base * max(1.0, 1.0 + load)


def clean_env(**values: str) -> dict[str, str]:
    """The parent's environment without any variable the bot reads, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in Settings.model_fields}
    env.update(values)
    return env


class BotProcess:
    """A running ``python -m bot run`` (or any ``bot`` command) and its log lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.logs: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        self.port: int | None = None

    @classmethod
    async def start(cls, env: Mapping[str, str], *, cwd: Path, command: str = "run") -> BotProcess:
        full = dict(env)
        full.setdefault("HTTP_PORT", "0")
        full["LOG_FORMAT"] = "json"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            command,
            cwd=cwd,
            env=full,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    @property
    def base(self) -> str:
        assert self.port is not None, "the bot has not bound its HTTP port yet"
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr(self) -> str:
        return "\n".join(self.raw)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            text = line.decode(errors="replace").rstrip("\n")
            self.raw.append(text)
            try:
                entry = json.loads(text)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                self.logs.append(entry)
                if entry.get("event") == "http.started":
                    self.port = int(entry["port"])
            async with self._changed:
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def wait_log(self, event: str, *, within: float | None = None) -> dict[str, Any]:
        """The first log entry named ``event`` (waiting for it; fails if the bot exits)."""

        def found() -> dict[str, Any] | None:
            return next((e for e in self.logs if e.get("event") == event), None)

        async def wait() -> dict[str, Any]:
            async with self._changed:
                while True:
                    entry = found()
                    if entry is not None:
                        return entry
                    if self._reader.done():
                        raise AssertionError(f"bot exited before {event!r}:\n{self.stderr}")
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), within or patience())
        except TimeoutError:
            raise AssertionError(f"no {event!r} within the wait:\n{self.stderr}") from None

    async def wait_ready(self, *, within: float | None = None) -> float:
        """Until ``/readyz`` answers 200; returns the seconds the bot logged for it."""
        entry = await self.wait_log("ready", within=within)
        status, body = await self.get("/readyz")
        assert status == 200, body
        return float(entry.get("seconds", 0.0))

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.get(self.base + path) as resp:
            return resp.status, await resp.text()

    async def stop(self, sig: int) -> tuple[int, float]:
        """Send ``sig``; return the exit status and how long the process took to exit."""
        start = time.monotonic()
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), timeout=patience(30))
        await self._reader
        return code, time.monotonic() - start

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await self._reader
