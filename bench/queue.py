"""Benchmark: what the durable turn queue costs a turn, against the in-process path.

Run: ``python -m bench.queue`` (needs the test extra and a PostgreSQL server with trust
auth at ``--postgres``, default ``VOICEBOT_TEST_POSTGRES_URL`` or
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``; the bench creates and drops
databases of its own there).

Everything runs in this one process and event loop, composed as ``voicebot run`` does it
(:func:`bot.bootstrap.build_core`, :meth:`TelegramPlatform.from_core`,
:func:`bot.bootstrap.serve`): Telegram in webhook mode, updates POSTed by the bench to the
bot's own HTTP server, replies going to :class:`tests.fakes.telegram.FakeTelegram`, the
model being :class:`tests.fakes.dashscope.FakeDashScope` (its own thread). Text messages
only, so no audio conversion is measured. Deployments compared in the same run:

- ``procrastinate on PG``: what ``DATABASE_URL=postgresql…`` runs (:class:`PostgresQueue`);
- ``in-process on SQLite``: the embedded default (:class:`InProcessQueue`), the baseline;
- ``in-process on PG``: the in-process queue built over the same PostgreSQL database (in
  the bench's own composition), so the queue's cost is separated from the database's.

Timestamps (``time.monotonic``, one clock for both threads): *event* = just before the
webhook POST is sent; *stored* = the POST answered (the update claimed and its job
stored); *job start* / *job end* = the queue calls / returns from the platform's job
handler (wrapped by the bench); *model request* = the fake DashScope has read the request.

1. Event → model request, one turn at a time (warm-up first): ``--turns`` turns in one
   conversation, and as many in as many new conversations; the deployments take turns.
2. Lock hand-off: two messages back to back in one conversation (the first answered after
   ``HANDOFF_DELAY``): from the first job's end to the second's start and model request.
   Also with procrastinate's own polling only (the wake-up on a freed lock switched off).
3. Burst: ``--conversations`` conversations sending one message each at once (the model
   takes ``--first-token`` seconds to its first token), in real ``voicebot run`` processes
   (one event loop cannot show what a second replica adds: a burst is CPU-bound there):
   2 procrastinate replicas on one database, 1 procrastinate replica, and 1 in-process
   instance on SQLite. Timed from outside: event, stored, model request, and *answered*
   (the fake Bot API received the chat's ``sendMessage``, the final answer after the
   drafts); the CPU seconds the bot processes and this process used meanwhile.

Printed: medians, p90 and max in ms, the difference from and ratio to the baseline, and the
load average. No thresholds: the issue's bar (+10 ms median) is reported, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import math
import operator
import os
import re
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.adapters.telegram.app import SECRET_HEADER, TelegramPlatform
from bot.adapters.telegram.updates import PLATFORM
from bot.bootstrap import build_core, serve, shutdown
from bot.config import Settings
from bot.core import Core
from bot.http import paths
from bot.http.server import HttpServer
from bot.logs import configure_logging
from bot.metrics import Metrics
from bot.queue import postgres
from bot.queue.inprocess import InProcessQueue
from bot.queue.port import Handler, JobRun, RunningJob
from bot.storage import migrations
from bot.storage.database import Database
from tests.fakes.dashscope import FakeDashScope, RecordedRequest, Reply
from tests.fakes.telegram import FakeTelegram

SECRET = "bench-webhook-secret"
MARKER = re.compile(r"bench-\d+")
WARMUP = 5  # turns per deployment before anything is timed
HANDOFF_DELAY = 0.15  # s the first message of a pair waits for its model answer
NO_WAKE_PAIRS = 10  # hand-offs timed with procrastinate's polling only

PG_QUEUE = "procrastinate on PG"
SQLITE_INPROC = "in-process on SQLite"
PG_INPROC = "in-process on PG"


# --- what is timed --------------------------------------------------------------------


@dataclass(eq=False)
class Turn:
    """One message and the moments it passed (see the module docstring)."""

    marker: str
    sent: float = 0.0
    stored: float = 0.0
    started: float = 0.0
    model: float = 0.0
    ended: float = 0.0
    redelivered: int = 0  # POSTs the bot answered with an error (sent again)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Model:
    """The fake DashScope's script hook: notes when each turn's request arrived.

    Runs on the fake's thread; a turn's entry is written before its answer is sent, so
    before the turn (on the bench's loop) can end.
    """

    def __init__(self) -> None:
        self.received: dict[str, float] = {}
        self.delays: dict[str, float] = {}  # marker → first-token delay
        self.delay = 0.0  # for the others
        self.chunk_delay = 0.0

    def __call__(self, rec: RecordedRequest) -> Reply:
        users = [t for role, t in rec.texts if role == "user"]
        found = MARKER.search(users[-1]) if users else None
        delay = self.delay
        if found is not None:
            self.received[found.group()] = rec.received_at
            delay = self.delays.get(found.group(), delay)
        return Reply(
            chunks=["Noted", ", thanks."],
            first_token_delay=delay,
            chunk_delay=self.chunk_delay,
        )


@dataclass
class Replica:
    core: Core
    http: HttpServer
    platform: TelegramPlatform

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.bound_port}{paths.TELEGRAM_WEBHOOK}"


@dataclass
class Deployment:
    """One or more bots on one database, with a fake Bot API of their own."""

    name: str
    tg: FakeTelegram
    replicas: list[Replica]
    users: itertools.count[int]

    def conversation(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new user and their private chat (a conversation of its own)."""
        user = self.tg.user(next(self.users), "Bench")
        return user, self.tg.private_chat(user)


class Bench:
    def __init__(self, *, postgres_admin: str) -> None:
        self.postgres_admin = postgres_admin
        self.ds = FakeDashScope()
        self.model = Model()
        self.turns: dict[str, Turn] = {}
        self._markers = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._user_blocks = itertools.count(1)
        self._databases: list[str] = []
        self._deployments: list[Deployment] = []
        self._tmp = tempfile.TemporaryDirectory()
        self.folder = Path(self._tmp.name)
        self.client: aiohttp.ClientSession | None = None

    # --- set-up ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Bench]:
        self.ds.start()
        self.ds.script(self.model)
        self.client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            yield self
        finally:
            for deployment in reversed(self._deployments):
                await self.stop(deployment)
            await self.client.close()
            self.ds.stop()
            await self._admin(
                *(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in self._databases)
            )
            self._tmp.cleanup()

    async def _admin(self, *statements: str) -> None:
        engine = create_async_engine(self.postgres_admin, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                for statement in statements:
                    await conn.execute(text(statement))
        finally:
            await engine.dispose()

    async def database(self, kind: str) -> str:
        """A fresh migrated database: ``sqlite`` or ``postgresql``; its URL."""
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{self.folder / f'{uuid.uuid4().hex}.db'}"
        else:
            name = f"voicebot_bench_{uuid.uuid4().hex[:12]}"
            await self._admin(f'CREATE DATABASE "{name}"')
            self._databases.append(name)
            url = make_url(self.postgres_admin).set(database=name).render_as_string(False)
        db = Database(url=url)
        try:
            await migrations.upgrade(db)
        finally:
            await db.dispose()
        return url

    async def deploy(
        self, name: str, *, url: str, replicas: int = 1, inprocess: bool = False, **env: Any
    ) -> Deployment:
        tg = FakeTelegram()
        await tg.start()
        deployment = Deployment(
            name=name, tg=tg, replicas=[], users=itertools.count(next(self._user_blocks) * 10**6)
        )
        self._deployments.append(deployment)
        for _ in range(replicas):
            deployment.replicas.append(await self._replica(tg, url, inprocess=inprocess, **env))
        return deployment

    async def _replica(self, tg: FakeTelegram, url: str, *, inprocess: bool, **env: Any) -> Replica:
        metrics = Metrics()
        http = HttpServer(host="127.0.0.1", port=0, metrics=metrics)
        http.expect(paths.TELEGRAM_WEBHOOK)
        await http.start()
        values: dict[str, Any] = {
            "DATABASE_URL": url,
            "DASHSCOPE_API_KEY": self.ds.api_key,
            "DASHSCOPE_BASE_URL": self.ds.native_base_url,
            "DASHSCOPE_MAX_RETRIES": 0,
            "TELEGRAM_BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg.base_url,
            "TELEGRAM_MODE": "webhook",
            "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{http.bound_port}{paths.TELEGRAM_WEBHOOK}",
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "TELEGRAM_EDIT_INTERVAL": 0.05,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": http.bound_port,
            "USER_RATE_LIMIT": 0,
            "AUDIO_WORKERS": 1,
            "ALLOWED_USERS": "",
            "ALLOWED_CHATS": "",
            "BOT_ADMINS": "",
            **env,
        }
        settings = Settings(_env_file=None, **values)
        core = await build_core(settings, migrate=False, metrics=metrics)
        if inprocess:  # the embedded queue over whatever database the URL names
            core.queue = InProcessQueue(database=core.database, settings=settings, metrics=metrics)
        platform = TelegramPlatform.from_core(core=core, http=http)
        # Registered again, timed: the queue looks its handler up for every job.
        handler = Handler(run=self._timed(platform.run_job), give_up=platform.give_up)
        core.queue.register(PLATFORM, handler)
        await serve(core=core, http=http, platforms=[platform])
        return Replica(core=core, http=http, platform=platform)

    def _timed(self, run: JobRun) -> JobRun:
        async def timed(job: RunningJob) -> None:
            message = job.payload.get("message", {})
            found = MARKER.search(str(message.get("text", "")))
            turn = self.turns.get(found.group()) if found else None
            if turn is not None:
                turn.started = time.monotonic()
            try:
                await run(job)
            finally:
                if turn is not None:
                    turn.ended = time.monotonic()
                    turn.done.set()

        return timed

    async def stop(self, deployment: Deployment) -> None:
        if deployment not in self._deployments:
            return
        self._deployments.remove(deployment)
        for replica in deployment.replicas:
            await shutdown(core=replica.core, http=replica.http, platforms=[replica.platform])
        await deployment.tg.stop()

    # --- turns ----------------------------------------------------------------------

    def turn(self, *, delay: float | None = None) -> Turn:
        turn = Turn(marker=f"bench-{next(self._markers)}")
        if delay is not None:
            self.model.delays[turn.marker] = delay
        self.turns[turn.marker] = turn
        return turn

    async def send(
        self, url: str, tg: FakeTelegram, conv: tuple[dict[str, Any], dict[str, Any]], turn: Turn
    ) -> None:
        """POST the message as Telegram would; returns once the bot answered the POST."""
        assert self.client is not None
        user, chat = conv
        message = tg.message(chat=chat, user=user, text=f"{turn.marker} how are you?")
        body = json.dumps({"update_id": next(self._update_ids), "message": message})
        headers = {"Content-Type": "application/json", SECRET_HEADER: SECRET}
        turn.sent = time.monotonic()
        while True:
            async with self.client.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status == 200:
                    break
            # As Telegram does: deliver the update again a little later (counted).
            turn.redelivered += 1
            if turn.redelivered > 5:
                raise SystemExit(f"{turn.marker}: the webhook answered {resp.status} 6 times")
            await asyncio.sleep(0.5)
        turn.stored = time.monotonic()

    async def finish(self, turns: Sequence[Turn], *, within: float = 120.0) -> None:
        await asyncio.wait_for(asyncio.gather(*(t.done.wait() for t in turns)), within)
        for t in turns:
            model = self.model.received.get(t.marker)
            if model is None:
                raise SystemExit(f"{t.marker}: the model never saw it")
            t.model = model

    async def one(self, d: Deployment, conv: tuple[dict[str, Any], dict[str, Any]]) -> Turn:
        turn = self.turn()
        await self.send(d.replicas[0].url, d.tg, conv, turn)
        await self.finish([turn])
        return turn

    async def pair(self, d: Deployment) -> tuple[Turn, Turn]:
        conv = d.conversation()
        first, second = self.turn(delay=HANDOFF_DELAY), self.turn()
        await self.send(d.replicas[0].url, d.tg, conv, first)
        await self.send(d.replicas[0].url, d.tg, conv, second)
        await self.finish([first, second])
        if second.started < first.ended:
            raise SystemExit(f"{d.name}: the second turn started before the first ended")
        return first, second


# --- statistics and printing ----------------------------------------------------------


def ms(values: Sequence[float]) -> list[float]:
    """In milliseconds; NaN (never happened) left out."""
    return [v * 1000 for v in values if not math.isnan(v)]


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def row(label: str, values: Sequence[float], base: float | None, width: int = 44) -> str:
    p50 = statistics.median(values)
    line = f"{label:<{width}}{p50:>9.1f}{quantile(values, 0.9):>9.1f}{max(values):>9.1f}"
    if base is not None:
        line += f"{p50 - base:>+10.1f}{p50 / base:>8.2f}x"
    return line


def header(title: str, width: int = 44) -> None:
    print(f"\n{title}")
    print(f"{'':<{width}}{'p50 ms':>9}{'p90':>9}{'max':>9}{'vs base':>10}{'ratio':>9}")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count()} cores"


# --- the phases -----------------------------------------------------------------------


async def phase_overhead(
    bench: Bench, deployments: list[Deployment], turns: int, handoffs: int
) -> bool:
    """Event → model request one turn at a time, and the lock hand-off; True if the
    procrastinate median stays within +10 ms of the SQLite in-process one."""
    for d in deployments:
        conv = d.conversation()
        for _ in range(WARMUP):
            await bench.one(d, conv)
            await bench.one(d, d.conversation())
    same = {d.name: d.conversation() for d in deployments}
    sequential: dict[str, list[Turn]] = {d.name: [] for d in deployments}
    spread: dict[str, list[Turn]] = {d.name: [] for d in deployments}
    for _ in range(turns):  # the deployments take turns, so drift in load hits all alike
        for d in deployments:
            sequential[d.name].append(await bench.one(d, same[d.name]))
            spread[d.name].append(await bench.one(d, d.conversation()))
    pairs: dict[str, list[tuple[Turn, Turn]]] = {d.name: [] for d in deployments}
    for _ in range(handoffs):
        for d in deployments:
            pairs[d.name].append(await bench.pair(d))
    pg = next(d for d in deployments if d.name == PG_QUEUE)
    postgres._Worker.wake_on_release = False
    try:
        no_wake = [await bench.pair(pg) for _ in range(NO_WAKE_PAIRS)]
    finally:
        postgres._Worker.wake_on_release = True

    print(f"\n1. event → model request, one turn at a time, n={turns} each; {load()}")
    verdict = True
    for title, runs in (("same conversation", sequential), ("a new conversation each", spread)):
        header(f"   {title}: event → model request (vs {SQLITE_INPROC})")
        base = statistics.median(ms([t.model - t.sent for t in runs[SQLITE_INPROC]]))
        for name, ts in runs.items():
            print(row(f"   {name}", ms([t.model - t.sent for t in ts]), base))
        pg_p50 = statistics.median(ms([t.model - t.sent for t in runs[PG_QUEUE]]))
        base_pg = statistics.median(ms([t.model - t.sent for t in runs[PG_INPROC]]))
        holds = pg_p50 - base <= 10
        verdict = verdict and holds
        print(
            f"   queue adds {pg_p50 - base:+.1f} ms median vs SQLite in-process "
            f"({'within' if holds else 'OVER'} +10 ms), {pg_p50 - base_pg:+.1f} ms vs "
            "in-process on the same PostgreSQL"
        )
    header("   where the time goes (same + new conversations pooled)")
    for name in sequential:
        ts = sequential[name] + spread[name]
        print(row(f"   {name}: event → stored (POST)", ms([t.stored - t.sent for t in ts]), None))
        print(row(f"   {name}: stored → job start", ms([t.started - t.stored for t in ts]), None))
        print(row(f"   {name}: job start → model", ms([t.model - t.started for t in ts]), None))

    print(f"\n2. lock hand-off, 2 messages back to back, n={handoffs} each; {load()}")
    header(f"   first job end → second job start (vs {SQLITE_INPROC})")
    base = statistics.median(ms([b.started - a.ended for a, b in pairs[SQLITE_INPROC]]))
    for name, ps in pairs.items():
        print(row(f"   {name}", ms([b.started - a.ended for a, b in ps]), base))
    print(
        row(
            f"   {PG_QUEUE}, no wake-up (n={NO_WAKE_PAIRS})",
            ms([b.started - a.ended for a, b in no_wake]),
            base,
        )
    )
    header(f"   first job end → second model request (vs {SQLITE_INPROC})")
    base = statistics.median(ms([b.model - a.ended for a, b in pairs[SQLITE_INPROC]]))
    for name, ps in pairs.items():
        print(row(f"   {name}", ms([b.model - a.ended for a, b in ps]), base))
    return verdict


class AnsweringTelegram(FakeTelegram):
    """The fake Bot API, noting when each chat got its first ``sendMessage`` (in a private
    chat: the final answer, after the drafts)."""

    def __init__(self) -> None:
        super().__init__()
        self.answered: dict[int, float] = {}
        self.texts: dict[int, str] = {}
        self.sends: Counter[int] = Counter()

    def _m_sendMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        result = super()._m_sendMessage(p)
        chat_id = int(p["chat_id"])
        self.sends[chat_id] += 1
        if chat_id not in self.answered:
            self.answered[chat_id] = time.monotonic()
            self.texts[chat_id] = str(p.get("text", ""))
        return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    """One ``voicebot run``, in webhook mode on a port of its own."""

    proc: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{paths.TELEGRAM_WEBHOOK}"


async def launch(
    bench: Bench, tg: FakeTelegram, url: str, *, concurrency: int, folder: Path
) -> Process:
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "SLACK_", "DASHSCOPE_", "DATABASE_", "LOG_"))
    }
    env.update(
        DATABASE_URL=url,
        AUTO_MIGRATE="false",  # migrated by the bench
        DASHSCOPE_API_KEY=bench.ds.api_key,
        DASHSCOPE_BASE_URL=bench.ds.native_base_url,
        DASHSCOPE_MAX_RETRIES="0",
        TELEGRAM_BOT_TOKEN=tg.token,
        TELEGRAM_API_BASE=tg.base_url,
        TELEGRAM_MODE="webhook",
        TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}{paths.TELEGRAM_WEBHOOK}",
        TELEGRAM_WEBHOOK_SECRET=SECRET,
        TELEGRAM_EDIT_INTERVAL="0.05",
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(port),
        USER_RATE_LIMIT="0",
        AUDIO_WORKERS="1",
        WORKER_CONCURRENCY=str(concurrency),
        LOG_LEVEL="WARNING",
    )
    log = folder / f"bot-{port}.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=folder, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    return Process(proc=proc, port=port, log=log)


async def ready(bench: Bench, process: Process, *, within: float = 90.0) -> None:
    assert bench.client is not None
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.proc.returncode is not None:
            break
        with contextlib.suppress(aiohttp.ClientError):
            async with bench.client.get(f"http://127.0.0.1:{process.port}/readyz") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.1)
    tail = process.log.read_text(errors="replace")[-2000:]
    raise SystemExit(f"voicebot run on port {process.port} not ready:\n{tail}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stop_process(process: Process) -> None:
    if process.proc.returncode is None:
        process.proc.terminate()  # SIGTERM: the graceful drain
        try:
            await asyncio.wait_for(process.proc.wait(), 20)
        except TimeoutError:
            process.proc.kill()
            await process.proc.wait()


@dataclass
class Burst:
    name: str
    wall: float  # seconds from the first POST to the last answer
    turns: list[tuple[Turn, float]]  # each with the moment its answer reached the fake
    bot_cpu: float  # CPU seconds the bot processes used meanwhile
    bench_cpu: float  # and this process (the fakes, the POSTs)
    busy: float  # the share of the machine's CPU time busy meanwhile (all processes)
    logged: Counter[str]  # the bots' warnings and errors, by event
    missed: Counter[str]  # answers sent without a model request, by text
    doubled: int  # chats that got more than one message (the answer is one)

    @property
    def redelivered(self) -> int:
        return sum(t.redelivered for t, _ in self.turns)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far (Linux ``/proc/stat``)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


LOGGED = re.compile(r"\[(warning|error|critical)\s*\]\s+(\S+)")


def logged(processes: Sequence[Process]) -> Counter[str]:
    """The bots' warning and error events, counted (their logs, LOG_LEVEL=WARNING)."""
    found: Counter[str] = Counter()
    for process in processes:
        for line in process.log.read_text(errors="replace").splitlines():
            match = LOGGED.search(line)
            if match:
                found[f"{match.group(1)} {match.group(2)}"] += 1
    return found


async def burst_processes(
    bench: Bench, name: str, kind: str, replicas: int, *, count: int, first_token: float,
    concurrency: int,
) -> Burst:  # fmt: skip
    """Start ``replicas`` × ``voicebot run`` on a fresh database, warm them, send ``count``
    messages from as many conversations at once; seconds until all are answered, and
    each turn with the moment its answer reached the fake Bot API."""
    url = await bench.database(kind)
    tg = AnsweringTelegram()
    await tg.start()
    folder = Path(tempfile.mkdtemp(dir=bench.folder))
    users = itertools.count(next(bench._user_blocks) * 10**6)

    def conversation() -> tuple[dict[str, Any], dict[str, Any]]:
        user = tg.user(next(users), "Bench")
        return user, tg.private_chat(user)

    processes: list[Process] = []
    try:
        for _ in range(replicas):
            processes.append(await launch(bench, tg, url, concurrency=concurrency, folder=folder))
        await asyncio.gather(*(ready(bench, p) for p in processes))
        for p in processes:  # warm each process: pools, sessions, first-call imports
            for _ in range(WARMUP):
                conv = conversation()
                turn = bench.turn()
                await bench.send(p.url, tg, conv, turn)
                seen = functools.partial(operator.contains, tg.answered, conv[1]["id"])
                await tg.wait_for(seen, within=30)
        bench.model.delay, bench.model.chunk_delay = first_token, 0.05
        convs = [conversation() for _ in range(count)]
        turns = [bench.turn() for _ in range(count)]
        cpu = [cpu_seconds(p.proc.pid) for p in processes], time.process_time()
        ticks = machine_ticks()
        began = time.monotonic()
        try:
            await asyncio.gather(
                *(
                    bench.send(processes[i % replicas].url, tg, conv, turn)
                    for i, (conv, turn) in enumerate(zip(convs, turns, strict=True))
                )
            )
            await tg.wait_for(lambda: all(c[1]["id"] in tg.answered for c in convs), within=120)
        finally:
            bench.model.delay, bench.model.chunk_delay = 0.0, 0.0
        bots = sum(cpu_seconds(p.proc.pid) - c for p, c in zip(processes, cpu[0], strict=True))
        busy, total = (after - before for after, before in zip(machine_ticks(), ticks, strict=True))
        answered = [tg.answered[c[1]["id"]] for c in convs]
        missed: Counter[str] = Counter()  # answered without asking the model: with what
        for conv, turn in zip(convs, turns, strict=True):
            if turn.marker in bench.model.received:
                turn.model = bench.model.received[turn.marker]
            else:
                turn.model = math.nan
                missed[tg.texts[conv[1]["id"]][:80]] += 1
        return Burst(
            name=name,
            wall=max(answered) - began,
            turns=list(zip(turns, answered, strict=True)),
            bot_cpu=bots,
            bench_cpu=time.process_time() - cpu[1],
            busy=busy / total,
            logged=logged(processes),
            missed=missed,
            doubled=sum(1 for c in convs if tg.sends[c[1]["id"]] > 1),
        )
    finally:
        await asyncio.gather(*(stop_process(p) for p in processes))
        await tg.stop()


async def phase_burst(bench: Bench, count: int, first_token: float, concurrency: int) -> None:
    setups = [
        (f"{SQLITE_INPROC}, 1 process", "sqlite", 1),
        (f"{PG_QUEUE}, 2 processes", "postgresql", 2),
        (f"{PG_QUEUE}, 1 process", "postgresql", 1),
    ]
    results = [
        await burst_processes(
            bench, name, kind, n, count=count, first_token=first_token, concurrency=concurrency
        )
        for name, kind, n in setups
    ]
    print(
        f"\n3. {count} conversations at once, 1 message each, `voicebot run` processes, model "
        f"{first_token:.1f} s to the first token, WORKER_CONCURRENCY={concurrency}; {load()}"
    )
    base = results[0]
    columns = f"{'s':>9}{'vs base':>10}{'ratio':>9}{'bot CPU':>12}{'fakes':>9}{'busy':>6}"
    print(f"   {'all answered':<41}{columns}{'again':>7}")
    for b in results:
        per_turn = 1000 / count
        print(
            f"   {b.name:<41}{b.wall:>9.2f}{b.wall - base.wall:>+10.2f}{b.wall / base.wall:>8.2f}x"
            f"{b.bot_cpu * per_turn:>9.1f} ms{b.bench_cpu * per_turn:>6.1f} ms"
            f"{b.busy:>6.0%}{b.redelivered:>7}"
        )
    print(
        "   (bot CPU: the bot processes' CPU time during the burst, per turn; fakes: this"
        " process's; busy: the whole machine's CPU, PostgreSQL and other load included;"
        " again: POSTs answered with an error and delivered again)"
    )
    for b in results:
        if b.logged:
            events = ", ".join(f"{n}× {event}" for event, n in b.logged.most_common(6))
            print(f"   logged by {b.name}: {events}")
        if b.doubled:
            print(f"   {b.name}: {b.doubled} chats got more than one message")
        for answer, n in b.missed.most_common():
            print(f"   {b.name}: {n} answered without a model request: {answer!r}")
    spans: list[tuple[str, Callable[[Turn, float], float]]] = [
        ("per turn: event → answer sent (sendMessage)", lambda t, at: at - t.sent),
        ("per turn: event → model request", lambda t, at: t.model - t.sent),
        ("per turn: event → stored (POST answered)", lambda t, at: t.stored - t.sent),
    ]
    for title, measure in spans:
        header(f"   {title} (vs {base.name})")
        p50 = statistics.median(ms([measure(t, at) for t, at in base.turns]))
        for b in results:
            print(row(f"   {b.name}", ms([measure(t, at) for t, at in b.turns]), p50))


async def main(args: argparse.Namespace) -> None:
    configure_logging(level="WARNING", fmt="console")
    started = time.monotonic()
    print(f"python -m bench.queue: {load()}")
    async with Bench(postgres_admin=args.postgres).running() as bench:
        pg_url = await bench.database("postgresql")
        deployments = [
            await bench.deploy(PG_QUEUE, url=pg_url),
            await bench.deploy(SQLITE_INPROC, url=await bench.database("sqlite")),
            await bench.deploy(PG_INPROC, url=await bench.database("postgresql"), inprocess=True),
        ]
        within = await phase_overhead(bench, deployments, args.turns, args.handoffs)
        for d in deployments:
            await bench.stop(d)
        await phase_burst(bench, args.conversations, args.first_token, args.concurrency)
    print(
        f"\nqueue within +10 ms median of the in-process path: {'yes' if within else 'NO'}; "
        f"bench took {time.monotonic() - started:.0f} s; {load()}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "VOICEBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server URL (SQLAlchemy form) that may create databases",
    )
    parser.add_argument("--turns", type=int, default=30, help="timed turns per kind (≥ 30)")
    parser.add_argument("--handoffs", type=int, default=30, help="timed hand-offs per deployment")
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--first-token", type=float, default=1.0, help="model latency, seconds")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="WORKER_CONCURRENCY per replica in the burst"
    )
    asyncio.run(main(parser.parse_args()))
