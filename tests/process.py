"""``voicebot run`` as a child process, for the tests that treat the bot as a black box.

The bot binds ``HTTP_PORT=0`` (the kernel picks a free port; no port is chosen and then
released) and logs one JSON object a line on stderr; :class:`BotProcess` reads the port
from the ``http.started`` line and waits for the ``ready`` line, then for ``/readyz``.
:class:`LoggedBot` does the same for synchronous tests (the black-box acceptance suite),
with the output in a log file. Both fork the process from the warm interpreter of
:mod:`tests.zygote` (a real process, without paying the imports again). Waits get
headroom from the machine (:func:`patience`), never a fixed number of seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.config import Settings
from tests import zygote

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

    def __init__(self, proc: asyncio.subprocess.Process | _AsyncForked) -> None:
        self.proc = proc
        self.logs: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        self.port: int | None = None

    @classmethod
    async def start(
        cls,
        env: Mapping[str, str],
        *,
        cwd: Path,
        command: str = "run",
        warm: bool = True,
        stdout: Path | None = None,
    ) -> BotProcess:
        """Launch ``python -m bot COMMAND``: forked from the warm interpreter of
        :mod:`tests.zygote` unless ``warm=False`` (or ``VOICEBOT_TESTS_COLD=1``).
        ``stdout``: a file to write the process's standard output to (else discarded)."""
        full = dict(env)
        full.setdefault("HTTP_PORT", "0")
        full["LOG_FORMAT"] = "json"
        with contextlib.ExitStack() as files:
            out: Any = (
                files.enter_context(stdout.open("wb")) if stdout is not None else subprocess.DEVNULL
            )
            if warm and not zygote.cold():
                forked = await asyncio.to_thread(
                    zygote.ForkedProcess,
                    [command],
                    env=full,
                    cwd=cwd,
                    stdout=out,
                    stderr=subprocess.PIPE,
                )
                return cls(await _AsyncForked.wrap(forked))
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                command,
                cwd=cwd,
                env=full,
                stdout=out,
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


def metric_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of the samples named ``name`` with (at least) ``labels`` in a ``/metrics``
    page; 0 when there is none yet (a counter nobody incremented is not exported)."""
    want = dict(labels or {})
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in want.items()):
                total += sample.value
    return total


class _AsyncForked:
    """A :class:`tests.zygote.ForkedProcess` seen as an ``asyncio.subprocess.Process``."""

    def __init__(self, forked: zygote.ForkedProcess, stderr: asyncio.StreamReader) -> None:
        self._forked = forked
        self.stderr = stderr
        self.pid = forked.pid
        self._exited: asyncio.Future[int] | None = None

    @classmethod
    async def wrap(cls, forked: zygote.ForkedProcess) -> _AsyncForked:
        assert forked.stderr is not None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**20)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), forked.stderr)
        return cls(forked, reader)

    @property
    def returncode(self) -> int | None:
        return self._forked.poll()

    async def wait(self) -> int:
        if self._exited is None:
            # One thread waits on the zygote's report for every caller.
            self._exited = asyncio.ensure_future(asyncio.to_thread(self._forked.wait))
        return await asyncio.shield(self._exited)

    def send_signal(self, sig: int) -> None:
        self._forked.send_signal(sig)

    def kill(self) -> None:
        self._forked.kill()


class LoggedBot:
    """A running ``python -m bot run`` for synchronous tests; its output goes to a file.

    Like :class:`BotProcess`: ``HTTP_PORT=0`` unless ``env`` says otherwise, JSON logs, the
    port read from the ``http.started`` line. :meth:`wait_ready` then waits for the
    ``ready`` line and ``/readyz``; :meth:`wait_log` and :meth:`wait_metric` are the
    synchronisation points a test has on a process it only sees from outside.
    """

    def __init__(
        self, env: Mapping[str, str], *, cwd: Path, log: Path | None = None, command: str = "run"
    ) -> None:
        full = dict(env)
        full.setdefault("HTTP_PORT", "0")
        full["LOG_FORMAT"] = "json"
        self.log_path = log or cwd / "bot.log"
        self._log = self.log_path.open("wb")
        self.proc = zygote.popen(
            [command], cwd=cwd, env=full, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.port: int | None = None
        self._entries: list[dict[str, Any]] = []
        self._read_to = 0
        self._partial = b""

    # --- the log ------------------------------------------------------------------------

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON log entry so far (other output lines are skipped)."""
        with self.log_path.open("rb") as f:
            f.seek(self._read_to)
            data = f.read()
        self._read_to += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                self._entries.append(entry)
                if entry.get("event") == "http.started" and self.port is None:
                    self.port = int(entry["port"])
        return self._entries

    def output(self, tail: int = 6000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-tail:]

    def wait_log(
        self,
        event: str | Callable[[dict[str, Any]], bool],
        *,
        count: int = 1,
        within: float | None = None,
    ) -> list[dict[str, Any]]:
        """Until ``count`` log entries are named ``event`` (or match it); those entries."""
        matches = event if callable(event) else (lambda e: e.get("event") == event)
        deadline = time.monotonic() + (patience() if within is None else within)
        while True:
            exited = self.proc.poll() is not None  # before reading: nothing is missed
            found = [e for e in self.logs() if matches(e)]
            if len(found) >= count:
                return found
            if exited:
                raise AssertionError(
                    f"voicebot exited ({self.proc.returncode}) before {event!r}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event!r} in the bot's log:\n{self.output()}")
            time.sleep(0.05)

    # --- HTTP ---------------------------------------------------------------------------

    @property
    def base(self) -> str:
        assert self.port is not None, "the bot has not bound its HTTP port yet"
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as r:
                return int(r.status), r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def wait_ready(self, *, within: float | None = None) -> None:
        """Until the bot logged ``ready`` and ``/readyz`` answers 200."""
        deadline = time.monotonic() + (patience() if within is None else within)
        self.wait_log("http.started", within=deadline - time.monotonic())
        self.wait_log("ready", within=deadline - time.monotonic())
        while True:
            status, body = self.get("/readyz")
            if status == 200:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"/readyz answers {status} {body}:\n{self.output()}")
            time.sleep(0.05)

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """A metric as ``/metrics`` shows it now (see :func:`metric_value`)."""
        status, text = self.get("/metrics")
        assert status == 200, text
        return metric_value(text, name, labels)

    def wait_metric(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        at_least: float,
        within: float | None = None,
    ) -> float:
        """Until the metric reaches ``at_least``; returns its value."""
        deadline = time.monotonic() + (patience() if within is None else within)
        while True:
            value = self.metric(name, labels)
            if value >= at_least:
                return value
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{name}{labels or ''} is {value}, not >= {at_least}")
            time.sleep(0.05)

    # --- the end ------------------------------------------------------------------------

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, float]:
        """Send ``sig``; the exit status and how long the process took to exit."""
        start = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=patience(15))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return code, time.monotonic() - start

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
