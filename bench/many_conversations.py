"""Benchmark: many conversations at once, one process (issue #13, P4 and P5).

Run: ``python -m bench.many_conversations`` (``--chats N``, default 200; ``--db sqlite`` or
``--db postgresql`` for the suite's PostgreSQL at 127.0.0.1:5432/test; needs the test
extra).

The bot is composed as ``voicebot run`` does it (:func:`bot.bootstrap.build_core`,
:meth:`TelegramPlatform.from_core`, :func:`bot.bootstrap.serve`), Telegram in long polling
against :class:`tests.fakes.telegram.FakeTelegram` and the model against
:class:`tests.fakes.dashscope.FakeDashScope`, each fake on a thread and event loop of its
own so their work does not count as the bot's loop lag. The model answers 20 words, the
first after 1 s, then one every 50 ms (20 tokens/s); spoken replies are off.

In one run: one 3 s voice note alone (*one turn*: the note injected → its final message);
the conversion CPU of that note (:meth:`AudioPipeline.convert`, median of 5); then
``--chats`` private chats each send the note at once. Printed:

- answered / chats, and the wall from the burst's first update to its last final message,
  against the issue's bound ``1.5 × (one turn + conversions' CPU / cores)`` (the ratio:
  ≤ 1.0 meets it);
- the bot's event-loop lag (a 10 ms ticker on the bot's loop), p50 / p99 / max;
- peak RSS of the process (the fakes' threads included);
- typing: the most ``sendChatAction`` calls any chat got in a 5 s window, and how many
  beyond the first were sent to a chat before its note was downloaded (a turn says
  "typing" as it starts, then downloads: more means it waited, typing);
- Bot API messages (sendMessage, editMessageText, sendMessageDraft) in the busiest second;
- P5: the process's CPU time over the burst's wall (2.0 = both cores busy throughout).

No thresholds: the numbers are reported, as the README's Performance section quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import resource
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bot.adapters.telegram.app import TelegramPlatform
from bot.audio.pipeline import AudioPipeline
from bot.audio.types import AudioInput
from bot.bootstrap import build_core, serve, shutdown
from bot.config import Settings
from bot.http.server import HttpServer
from bot.logs import configure_logging
from bot.metrics import Metrics
from tests.audio import synth
from tests.fakes.dashscope import FakeDashScope, RecordedRequest, Reply
from tests.fakes.telegram import FakeTelegram

WORDS = [f"word{i} " for i in range(19)] + ["done."]
MESSAGES = ("sendMessage", "editMessageText", "sendMessageDraft")
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


class ThreadedTelegram:
    """The fake Bot API on its own thread and loop."""

    def __init__(self) -> None:
        self.fake = FakeTelegram()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.fake.start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the fake's loop and wait for its result."""
        done = threading.Event()
        box: list[Any] = []

        def run() -> None:
            box.append(fn(*args, **kwargs))
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(30)
        return box[0]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def note(seconds: float = 3.0) -> bytes:
    fmt = synth.FORMATS["voice.ogg"]
    return synth.encode(synth.speech_like(seconds, rate=fmt.rate, seed=3), fmt)


def finals(tg: FakeTelegram) -> dict[str, float]:
    """When each chat got its final message (the model's whole reply, sent)."""
    out: dict[str, float] = {}
    for c in list(tg.calls):
        if c.method == "sendMessage" and c.ok and "done." in str(c.params.get("text", "")):
            out.setdefault(str(c.params.get("chat_id")), c.at)
    return out


async def conversion_cpu(data: bytes, runs: int = 5) -> float:
    pipeline = AudioPipeline(
        max_bytes=20 << 20, max_seconds=900, output_format="mp3", workers=1, cache_bytes=0
    )
    try:
        spent = []
        for _ in range(runs):
            cpu = time.process_time()
            await pipeline.convert(AudioInput(data=data), segment_seconds=30.0)
            spent.append(time.process_time() - cpu)
        return statistics.median(spent)
    finally:
        pipeline.close()


async def run(db: str, chats: int, concurrency: int | None) -> dict[str, Any]:
    tg_thread = ThreadedTelegram()
    tg_thread.start()
    tg = tg_thread.fake
    ds = FakeDashScope()
    ds.start()

    def script(_rec: RecordedRequest) -> Reply:
        return Reply(chunks=list(WORDS), first_token_delay=1.0, chunk_delay=0.05)

    ds.script(script)
    data = note()
    per_note_cpu = await conversion_cpu(data)
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - start - 0.01)

    metrics = Metrics()
    http = HttpServer(host="127.0.0.1", port=0, metrics=metrics)
    await http.start()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db" if db == "sqlite" else await fresh_pg()
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            DATABASE_URL=url,
            DASHSCOPE_API_KEY=ds.api_key,
            DASHSCOPE_BASE_URL=ds.native_base_url,
            TELEGRAM_BOT_TOKEN=tg.token,
            TELEGRAM_API_BASE=tg.base_url,
            HTTP_HOST="127.0.0.1",
            HTTP_PORT=http.bound_port,
            USER_RATE_LIMIT=0,
            TTS_MODEL="off",
            **({} if concurrency is None else {"WORKER_CONCURRENCY": concurrency}),
        )
        core = await build_core(settings, migrate=True, metrics=metrics)
        platform = TelegramPlatform.from_core(core=core, http=http)
        await serve(core=core, http=http, platforms=[platform])
        tick = asyncio.create_task(ticker())
        try:
            # One turn alone.
            user = tg_thread.call(tg.user, 1, "Solo")
            chat = tg.private_chat(user)
            began = time.monotonic()
            msg = tg_thread.call(tg.voice_message, chat=chat, user=user, data=data, duration=3)
            tg_thread.call(tg.inject, message=msg)
            await until(lambda: str(chat["id"]) in finals(tg), within=120)
            one_turn = finals(tg)[str(chat["id"])] - began
            lags.clear()

            # The burst.
            ids = list(range(1000, 1000 + chats))
            file_chat: dict[str, str] = {}
            updates = []
            for n in ids:
                u = tg_thread.call(tg.user, n, f"User {n}")
                c = tg.private_chat(u)
                m = tg_thread.call(tg.voice_message, chat=c, user=u, data=data, duration=3)
                file_chat[m["voice"]["file_id"]] = str(c["id"])
                updates.append(m)
            cpu0, began = time.process_time(), time.monotonic()
            for m in updates:
                tg_thread.call(tg.inject, message=m)
            wanted = {str(n) for n in ids}
            await until(lambda: wanted <= set(finals(tg)), within=600)
            got = finals(tg)
            answered = wanted & set(got)
            wall = (max(got[c] for c in answered) - began) if answered else float("nan")
            cpu = time.process_time() - cpu0
        finally:
            tick.cancel()
            await shutdown(core=core, http=http, platforms=[platform])
    calls = [c for c in list(tg.calls) if c.at >= began]
    ds.stop()
    tg_thread.stop()

    typing: dict[str, list[float]] = defaultdict(list)
    downloaded: dict[str, float] = {}
    for c in calls:
        chat_id = str(c.params.get("chat_id", ""))
        if c.method == "sendChatAction" and chat_id in wanted:
            typing[chat_id].append(c.at)
        if c.method == "getFile":
            owner = file_chat.get(str(c.params.get("file_id")))
            if owner is not None:
                downloaded.setdefault(owner, c.at)
    busiest_typing = max((_most_in_window(times, 5.0) for times in typing.values()), default=0)
    # A turn says "typing" as it starts, then downloads the note: more than one typing
    # action before the download means the chat waited, typing, for something (a slot).
    early = sum(
        max(0, sum(1 for t in times if t < downloaded.get(chat_id, float("inf"))) - 1)
        for chat_id, times in typing.items()
    )
    messages = sorted(c.at for c in calls if c.method in MESSAGES)
    lag_sorted = sorted(lags) or [0.0]
    cores = os.cpu_count() or 1
    bound = 1.5 * (one_turn + per_note_cpu * chats / cores)
    return {
        "db": db,
        "concurrency": settings.WORKER_CONCURRENCY,
        "chats": chats,
        "answered": len(answered),
        "one_turn": one_turn,
        "per_note_cpu": per_note_cpu,
        "wall": wall,
        "bound": bound,
        "lag_p50": lag_sorted[len(lag_sorted) // 2],
        "lag_p99": lag_sorted[min(len(lag_sorted) - 1, int(len(lag_sorted) * 0.99))],
        "lag_max": lag_sorted[-1],
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "typing_per_5s": busiest_typing,
        "typing_before_turn": early,
        "typing_total": sum(len(t) for t in typing.values()),
        "messages_peak": _most_in_window(messages, 1.0),
        "messages_total": len(messages),
        "cpu_over_wall": cpu / wall if wall == wall and wall > 0 else float("nan"),
    }


async def until(predicate: Callable[[], bool], *, within: float) -> None:
    """Poll the fakes (on other threads) until ``predicate`` holds or ``within`` passes."""
    deadline = time.monotonic() + within
    while True:
        if predicate() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.02)


async def fresh_pg() -> str:
    """A new, empty PostgreSQL database for this run (update ids restart at 1 each run)."""
    import asyncpg

    name = f"bench_{os.getpid()}_{int(time.time())}"
    conn = await asyncpg.connect(PG_SERVER)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def _most_in_window(times: list[float], width: float) -> int:
    """The most of ``times`` (sorted) within any ``width`` seconds."""
    best = 0
    for i, t in enumerate(times):
        best = max(best, bisect.bisect_right(times, t + width) - i)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="WORKER_CONCURRENCY (default: its own)"
    )
    args = parser.parse_args()
    configure_logging(level="ERROR", fmt="console")
    print(f"cores: {os.cpu_count()}  load average: {os.getloadavg()[0]:.2f}")
    r = asyncio.run(run(args.db, args.chats, args.concurrency))
    print(
        f"{r['db']} (WORKER_CONCURRENCY={r['concurrency']}): {r['answered']}/{r['chats']}"
        " answered; one turn alone "
        f"{r['one_turn']:.2f} s, conversion CPU {r['per_note_cpu'] * 1000:.0f} ms a note\n"
        f"  wall {r['wall']:.1f} s vs bound 1.5 × (one turn + CPU/cores) = {r['bound']:.1f} s"
        f" → {r['wall'] / r['bound']:.2f}× the bound\n"
        f"  event-loop lag p50 {r['lag_p50'] * 1000:.0f} ms, p99 {r['lag_p99'] * 1000:.0f} ms,"
        f" max {r['lag_max'] * 1000:.0f} ms; peak RSS {r['rss_mb']:.0f} MB\n"
        f"  typing: at most {r['typing_per_5s']} per chat in 5 s, {r['typing_before_turn']}"
        f" repeated before a chat's note was downloaded ({r['typing_total']} in all)\n"
        f"  Bot API messages: {r['messages_peak']} in the busiest second"
        f" ({r['messages_total']} in all)\n"
        f"  P5: process CPU / wall during the burst {r['cpu_over_wall']:.2f} (2.00 = both cores)"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
