"""Benchmark: the model's end → the voice note delivered, as a ratio of the reply's spoken
duration (issue #15; target ≤ 0.1: a 30 s spoken reply delivered within 3 s).

Run: ``python -m bench.voice_reply`` (``--replies N``, default 5; ``--seconds S`` of speech
per reply, default 30; needs the test extra).

One process, composed as ``voicebot run`` does it (:func:`bot.bootstrap.build_core`,
:meth:`TelegramPlatform.from_core`, :func:`bot.bootstrap.serve`) on SQLite, Telegram in
long-polling mode against :class:`tests.fakes.telegram.FakeTelegram`, DashScope being
:class:`tests.fakes.dashscope.FakeDashScope` (its own thread). Each reply answers a voice
note in a private chat (``voice_reply`` auto):

- *Omni path*: ``qwen3-omni-flash`` writes the text and streams ``S`` seconds of PCM
  beside it; the bot encodes it once (OGG/Opus) and sends the note after the final text.
- *TTS path*: the text-only default model writes ``S / 0.06`` characters of sentences;
  the bot synthesizes them with ``qwen3-tts-flash`` while the model writes (the fake
  speaks 60 ms per character, so the note is ``S`` seconds long).

The model writes three words per event every :data:`WORD_GAP` s. The fake TTS answers
after :data:`TTS_FIRST_BYTE` s and then makes speech :data:`TTS_SPEED` times faster than
real time (qwen3-tts-flash's real speed is not documented: these are assumptions; the
command line changes them). Times come from the fakes' own records (both clocks are this
process's ``time.monotonic``): the model's end is when the fake DashScope wrote the last
event of the chat stream; the delivery is when the fake Bot API received ``sendVoice``.

Compared: *TTS late*, the same bot with the early start switched off (the TTS gets the
final text only once the model ended), the baseline the early start is measured against.

Printed per path: median and max of (delivered − model end) in ms, the spoken seconds,
and the ratio median / spoken seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from bot.adapters.telegram.app import TelegramPlatform
from bot.bootstrap import build_core, serve, shutdown
from bot.config import Settings
from bot.engine import speech
from bot.http.server import HttpServer
from bot.metrics import Metrics
from bot.voice.encode import encode_voice_note
from tests.fakes.dashscope import TTS_SECONDS_PER_CHAR, FakeDashScope, Reply, TtsReply, speech_tone
from tests.fakes.telegram import FakeTelegram

WORD_GAP = 0.04  # s between the model's events (3 words each: ~75 words/s)
TTS_FIRST_BYTE = 0.3  # s until the fake TTS's first chunk
TTS_SPEED = 5.0  # × real time, the fake TTS's speech rate after the first chunk
OMNI = "qwen3-omni-flash"
WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "near", "a", "bank")
TEXT_MODEL = "qwen-audio-turbo-latest"


def reply_text(seconds: float) -> str:
    """Sentences enough for ``seconds`` of the fake TTS's speech."""
    chars = round(seconds / TTS_SECONDS_PER_CHAR)
    words = WORDS
    out: list[str] = []
    total = 0
    i = 0
    while total < chars:
        sentence = " ".join(words[(i + k) % len(words)] for k in range(9)).capitalize() + "."
        out.append(sentence)
        total += len(sentence) + 1
        i += 1
    return " ".join(out)[: chars - 1].rstrip(" .") + "."


def chunks_of(text: str) -> list[str]:
    words = text.split(" ")
    parts = [" ".join(words[i : i + 3]) for i in range(0, len(words), 3)]
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


_chats = iter(range(5000, 10**9))


async def run_path(
    tg: FakeTelegram, ds: FakeDashScope, *, omni: bool, n: int, seconds: float
) -> list[tuple[float, float]]:
    """(delivered − model end, spoken seconds) for ``n`` replies (after one warm-up)."""
    metrics = Metrics()
    http = HttpServer(host="127.0.0.1", port=0, metrics=metrics)
    await http.start()
    user_note = encode_voice_note(speech_tone(1.5))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp}/bench.db",
            DASHSCOPE_API_KEY=ds.api_key,
            DASHSCOPE_BASE_URL=ds.native_base_url,
            TELEGRAM_BOT_TOKEN=tg.token,
            TELEGRAM_API_BASE=tg.base_url,
            HTTP_HOST="127.0.0.1",
            HTTP_PORT=http.bound_port,
            USER_RATE_LIMIT=0,
            DEFAULT_MODEL=OMNI if omni else TEXT_MODEL,
            TTS_MODEL="qwen3-tts-flash",
        )
        core = await build_core(settings, migrate=True, metrics=metrics)
        platform = TelegramPlatform.from_core(core=core, http=http)
        await serve(core=core, http=http, platforms=[platform])
        try:
            out = []
            for i in range(n + 1):
                number = next(_chats)
                user = tg.user(number, "Bench")
                chat = tg.private_chat(user)
                text = reply_text(seconds)
                ds.queue(
                    Reply(
                        chunks=chunks_of(text),
                        chunk_delay=WORD_GAP,
                        speech_seconds=seconds,
                        speech_chunk_seconds=0.2,
                    )
                )
                before = len(ds.requests)
                tg.inject(message=tg.voice_message(chat=chat, user=user, data=user_note))
                call = await _until(
                    lambda chat=chat: [
                        c
                        for c in tg.calls_of("sendVoice")
                        if str(c.params.get("chat_id")) == str(chat["id"])
                    ]
                )
                model = OMNI if omni else TEXT_MODEL
                [chat_req] = [r for r in ds.requests[before:] if r.model == model]
                assert chat_req.finished_at is not None
                spoken = (
                    len(chat_req.speech) / 48_000
                    if omni
                    else sum(len(r.speech) for r in ds.requests[before:] if r.model != model)
                    / 48_000
                )
                if i:  # the first reply warms up
                    out.append((call[0].at - chat_req.finished_at, spoken))
                await _until(lambda: not platform.context.running)
            return out
        finally:
            await shutdown(core=core, http=http, platforms=[platform])


async def _until(predicate: Any, within: float = 120.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.002)
    raise TimeoutError("the bot did not answer")


def _row(name: str, values: list[tuple[float, float]]) -> str:
    ms = sorted(v * 1000 for v, _ in values)
    spoken = statistics.median(s for _, s in values)
    med = statistics.median(ms)
    return f"{name:10} {med:9.1f} {ms[-1]:9.1f} {spoken:9.2f} {med / 1000 / spoken:9.3f}"


@contextlib.contextmanager
def tts_after_text() -> Iterator[None]:
    """The baseline: TTS of the final text only once the model ended (no early start)."""
    original = speech.Synthesis.feed
    speech.Synthesis.feed = lambda self, text: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        speech.Synthesis.feed = original  # type: ignore[method-assign]


async def main(n: int, seconds: float) -> None:
    tg = FakeTelegram()
    await tg.start()
    ds = FakeDashScope()
    # The fake TTS's pace: TTS_FIRST_BYTE, then TTS_SPEED × real time.
    ds.tts_default = TtsReply(
        first_byte_delay=TTS_FIRST_BYTE, chunk_seconds=0.2, chunk_delay=0.2 / TTS_SPEED
    )
    ds.start()
    try:
        omni = await run_path(tg, ds, omni=True, n=n, seconds=seconds)
        tts = await run_path(tg, ds, omni=False, n=n, seconds=seconds)
        with tts_after_text():
            late = await run_path(tg, ds, omni=False, n=n, seconds=seconds)
    finally:
        ds.stop()
        await tg.stop()
    print(
        f"replies: {n} per path, {seconds:g} s spoken each; model event every {WORD_GAP} s; "
        f"fake TTS first byte {TTS_FIRST_BYTE} s, {TTS_SPEED:g}x real time; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(f"{'path':10} {'median ms':>9} {'max ms':>9} {'spoken s':>9} {'ratio':>9}")
    print(_row("Omni", omni))
    print(_row("TTS", tts))
    print(_row("TTS late", late))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--replies", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--tts-speed", type=float, default=TTS_SPEED)
    parser.add_argument("--tts-first-byte", type=float, default=TTS_FIRST_BYTE)
    args = parser.parse_args()
    TTS_SPEED, TTS_FIRST_BYTE = args.tts_speed, args.tts_first_byte
    asyncio.run(main(args.replies, args.seconds))
