"""Issue #10: a reply is ``complete`` only when the user can read all of it.

Black-box acceptance matrix, written from ``telegram-slack-facts.md``,
``dashscope-protocol.md`` and ``CONTRACT.md`` (plus the README's documented variables), never
from ``bot/``. ``voicebot run`` runs as a subprocess against the fakes in this directory:

* surfaces: a Telegram private chat (``sendMessageDraft`` previews, then ``sendMessage``), a
  Telegram group (``sendMessage`` then ``editMessageText``), a Slack thread (``chat.startStream``
  → ``chat.appendStream``* → ``chat.stopStream``) and a top-level Slack DM
  (``chat.postMessage`` + ``chat.update``);
* every call each surface uses, each with the faults the docs name for it: rate limits
  (Telegram 429 + ``retry_after``, Slack HTTP 429 + ``Retry-After``), entity errors and
  "message is not modified" (Telegram), 5xx answers and dropped connections; once and three
  times in a row;
* persistent faults on every call that can carry the end of the reply, lasting past
  ``DELIVERY_TIMEOUT``: the turn must be stored ``undelivered`` and the reply delivered at
  the next message in that chat.

ONE bot process per platform runs all of that platform's cases at once, each case in its own
chat/channel with the faults matched to it; every test then checks its own case. After every
case: the text the user can READ (the platform fake's final state: visible messages, latest
text, in order; drafts never count; a Slack stream only once stopped or replaced by
``chat.update``) equals the model's reply, or the turn is ``undelivered`` and the reply shows
up at the next message; the stored status agrees with what the user sees; and the injected
fault was really served.

Also checked: a rate limit is waited out before the same method is called again in that
chat; an ``undelivered`` turn gave up within ``DELIVERY_TIMEOUT`` of its first failed
attempt (no retry after it); an entity error is followed by the same text as plain text,
once; no Slack message of the reply is left streaming. Two more fault families: a fault on
whichever call carries the end of the reply (``final-text``), and ``lost`` (the connection
drops after the platform carried the call out, so a retry must not show text twice; only
where a retry can be made safe).

Comparison ignores whitespace (the reply is split into several messages at the platform's
length limits, and where it is cut is the bot's choice), the Markdown marks ``*`` and
`` ` `` (turned into entities / mrkdwn, or sent raw by the plain-text fallback, as the facts
file prescribes), and a short trailing note the bot may add.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from tests.acceptance import slack_server
from tests.acceptance.dashscope_server import API_KEY, DashScopeFake, DashscopePlan
from tests.acceptance.slack_server import (
    SLACK_BOT_TOKEN,
    SLACK_BOT_USER,
    SLACK_TEAM,
    SlackMessage,
    SlackServers,
)
from tests.acceptance.telegram_server import (
    NOT_MODIFIED,
    ApiError,
    Call,
    ConnectionDrop,
    FakeServers,
    Injection,
)
from tests.audio.synth import FORMATS, encode, speech_like
from tests.process import LoggedBot, clean_env

DELIVERY_TIMEOUT = 5.0  # what the bot is told; every wait below is derived from it
RETRY_AFTER = 1  # seconds, in every rate-limit answer
CHUNKS = 60  # SSE events per long reply
CHUNK_DELAY = 0.04  # seconds between them: a long reply streams for ~2.4 s
# The faults on chat.appendStream need appends: the bot appends at its own pace (about once
# a second) while the current message has room, and a loaded machine can let the reply
# fill it between two appends. Those replies stream for ~6 s, i.e. several appends.
APPEND_CHUNK_DELAY = 0.1
STREAM_SECONDS = CHUNKS * APPEND_CHUNK_DELAY
# a reply (first message) must reach a final status within this of the voice note
FIRST_DEADLINE = STREAM_SECONDS + 2 * DELIVERY_TIMEOUT + 12
# after the next message: the late delivery and the new reply
NEXT_DEADLINE = 2 * DELIVERY_TIMEOUT + 12
TERMINAL = {"complete", "undelivered", "failed", "stopped"}
SLACK_SECRET = "d41d8cd98f00b204e9800998ecf8427e"


# =======================================================================================
# The matrix


@dataclass(frozen=True)
class Case:
    """One reply under one fault.

    ``call``: the faulted method, or ``final-text``: whichever of the surface's methods
    carries the end of the reply (``FINAL_TEXT_CALLS``; the ``times`` are shared).
    ``trigger``: which calls the fault hits: ``first`` (the first ones in the chat) or
    ``final`` (the first ones carrying the end of the reply, i.e. the final text).
    ``fault``: ``drop`` closes the connection before the platform handles the call; ``lost``
    after it has carried it out (only the answer is lost: retrying must not show the text
    twice; injected only where a retry can be made safe: drafts, edits, appends, stops).
    ``persist``: the fault lasts (on every call that can carry the end of the reply) until
    the turn is stored ``undelivered``; then it is lifted and the next message is sent.
    """

    idx: int
    surface: str  # tg-private | tg-group | slack-thread | slack-dm
    call: str  # the faulted method ("" = no fault, the control case)
    fault: str  # none | ratelimit | entity | not_modified | 5xx | drop | lost
    times: int = 1
    trigger: str = "first"
    long: bool = False  # Telegram: a reply over 4096 characters
    persist: bool = False
    slow_end: bool = False  # the model pauses after the last text, before its final event

    @property
    def platform(self) -> str:
        return "telegram" if self.surface.startswith("tg-") else "slack"

    @property
    def id(self) -> str:
        if self.fault == "none":
            return f"{self.surface}-nofault{'-long' if self.long else ''}"
        if self.persist:
            return f"{self.surface}-persistent-{self.fault}"
        bits = [self.surface, self.call, self.fault, f"{self.times}x"]
        if self.trigger != "first" and self.call != "final-text":
            bits.append(self.trigger)
        if self.long:
            bits.append("long")
        if self.slow_end:
            bits.append("slowend")
        return "-".join(bits)

    # -- the model's replies --------------------------------------------------------------

    @property
    def tokens(self) -> int:
        if self.platform == "slack":
            return 560  # 5,600 characters: several Slack messages, many appends
        return 620 if self.long else 300  # 6,200 (> 4096) or 3,000 characters

    @property
    def marker(self) -> str:
        return f"QA{self.idx:03d}FIRST"

    @property
    def next_marker(self) -> str:
        return f"QA{self.idx:03d}NEXT"

    @property
    def reply(self) -> str:
        return model_reply(f"r{self.idx:03d}", self.tokens)

    @property
    def next_reply(self) -> str:
        return model_reply(f"n{self.idx:03d}", 30)

    @property
    def first_token(self) -> str:
        return f"r{self.idx:03d}w0001"

    @property
    def next_token(self) -> str:
        return f"n{self.idx:03d}w0001"

    @property
    def tail(self) -> tuple[str, ...]:
        """The last tokens: any text carrying one of them carries the end of the reply."""
        return tuple(f"r{self.idx:03d}w{j:04d}" for j in range(self.tokens - 2, self.tokens + 1))


def model_reply(prefix: str, n: int) -> str:
    """Unique numbered words (so that any duplicated or lost piece shows), lines and
    paragraphs, with bold and code spans all along (so that every part carries formatting)."""
    out = []
    for j in range(1, n + 1):
        word = f"{prefix}w{j:04d}"
        if j in (1, n) or j % 7 == 0:
            word = f"**{word}**"
        elif j % 11 == 0:
            word = f"`{word}`"
        out.append(word)
        if j < n:
            out.append("\n\n" if j % 50 == 0 else "\n" if j % 10 == 0 else " ")
    return "".join(out)


def split_chunks(text: str, n: int) -> tuple[str, ...]:
    size = max(1, -(-len(text) // n))
    return tuple(text[i : i + size] for i in range(0, len(text), size))


def _matrix() -> list[Case]:
    n = itertools.count(1)
    cases: list[Case] = []

    def add(surface: str, call: str, faults: list[str], **kw: Any) -> None:
        for fault in faults:
            for times in (1, 3):
                cases.append(Case(next(n), surface, call, fault, times, **kw))

    tg = ["ratelimit", "entity", "5xx", "drop"]
    slack = ["ratelimit", "5xx", "drop"]
    lost = ["lost"]
    for surface in ("tg-private", "tg-group", "slack-thread", "slack-dm"):
        cases.append(Case(next(n), surface, "", "none"))
        if surface.startswith("tg-"):
            cases.append(Case(next(n), surface, "", "none", long=True))
    add("tg-private", "sendMessageDraft", [*tg, *lost])
    add("tg-private", "sendMessage", tg, trigger="final", long=True)
    add("tg-group", "sendMessage", tg, long=True)
    add("tg-group", "editMessageText", [*tg, "not_modified", *lost], trigger="final")
    # the whole reply is on screen-to-be before the model's last event: the streaming edit and
    # the final edit both carry the final text
    for fault in ("not_modified", "lost"):
        for times in (1, 2, 3):
            cases.append(
                Case(next(n), "tg-group", "editMessageText", fault, times, "final", slow_end=True)
            )
    cases.append(Case(next(n), "tg-group", "editMessageText", "not_modified", 1))
    cases.append(Case(next(n), "tg-group", "editMessageText", "ratelimit", 3))
    add("tg-group", "final-text", tg, trigger="final")
    add("slack-thread", "chat.startStream", slack)
    add("slack-thread", "chat.appendStream", [*slack, *lost])
    add("slack-thread", "chat.stopStream", [*slack, *lost])
    add("slack-thread", "final-text", slack, trigger="final")
    add("slack-dm", "chat.postMessage", slack)
    add("slack-dm", "chat.update", [*slack, *lost])
    add("slack-dm", "final-text", slack, trigger="final")
    for surface in ("tg-private", "tg-group", "slack-thread", "slack-dm"):
        for fault in ("ratelimit", "5xx"):
            cases.append(Case(next(n), surface, "final-text", fault, persist=True))
    return cases


# every method of a surface that can carry (the end of) the reply's text
FINAL_TEXT_CALLS = {
    "tg-private": ("sendMessage",),
    "tg-group": ("sendMessage", "editMessageText"),
    "slack-thread": (
        "chat.startStream",
        "chat.appendStream",
        "chat.stopStream",
        "chat.postMessage",
        "chat.update",
    ),
    "slack-dm": ("chat.postMessage", "chat.update"),
}

TEXT_METHODS = {m for methods in FINAL_TEXT_CALLS.values() for m in methods} | {
    "sendMessageDraft",
    "deleteMessage",
    "chat.delete",
}

CASES = _matrix()
TELEGRAM_CASES = [c for c in CASES if c.platform == "telegram"]
SLACK_CASES = [c for c in CASES if c.platform == "slack"]
BY_MARKER = {c.marker: c for c in CASES} | {c.next_marker: c for c in CASES}


# =======================================================================================
# What the user reads


_NOTE_LIMIT = 300


def norm(text: str) -> str:
    """Whitespace and the Markdown marks ``*`` / `` ` `` removed (see the module doc)."""
    return re.sub(r"[\s*`]", "", text)


def _note_ok(note: str) -> bool:
    """A note the bot may add around the reply: short, and no piece of the reply in it."""
    return len(note) <= _NOTE_LIMIT and not re.search(r"\d{4}|[rn]\d{3}w", note)


def reads_exactly(messages: list[str], reply: str, *, stale_prefix_ok: bool = False) -> bool:
    """The visible messages, in order, are the reply (plus at most a trailing note).

    ``stale_prefix_ok``: leading messages may also hold an earlier, partial state of the
    reply that Telegram refused to update ("not modified") when the reply is then sent anew.
    """
    want = norm(reply)
    texts = [norm(m) for m in messages]
    starts = range(len(texts)) if stale_prefix_ok else range(1)
    for k in starts:
        stale = "".join(texts[:k])
        if stale and not want.startswith(stale):
            continue
        shown = "".join(texts[k:])
        if shown.startswith(want) and _note_ok(shown[len(want) :]):
            return True
    return False


def reads_somewhere(messages: list[str], reply: str) -> bool:
    """Some run of consecutive visible messages is the whole reply (notes allowed around)."""
    want = norm(reply)
    texts = [norm(m) for m in messages]
    for i in range(len(texts)):
        for j in range(i + 1, len(texts) + 1):
            shown = "".join(texts[i:j])
            at = shown.find(want)
            if at >= 0 and _note_ok(shown[:at]) and _note_ok(shown[at + len(want) :]):
                return True
    return False


def describe(messages: list[str], reply: str) -> str:
    want, got = norm(reply), "".join(norm(m) for m in messages)
    common = 0
    for a, b in zip(want, got, strict=False):
        if a != b:
            break
        common += 1
    return (
        f"{len(messages)} visible message(s) of {[len(m) for m in messages]} chars; "
        f"expected {len(want)} normalised chars, shown {len(got)}; identical for the first "
        f"{common}; expected next {want[common : common + 40]!r}, shown next "
        f"{got[common : common + 40]!r}; shown tail {got[-60:]!r}"
    )


# =======================================================================================
# The stored turns (read-only, one poller per database)


class Turns:
    """Polls ``turns`` in the bot's SQLite database; the tests read the latest snapshot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[tuple[Any, ...]] = []
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(0.2)

    def refresh(self) -> None:
        if not self.path.exists():
            return
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2)
            try:
                self.rows = con.execute(
                    "SELECT conversation_id, seq, role, status, substr(text, 1, 200) FROM turns"
                    " WHERE role = 'assistant'"
                ).fetchall()
                self.error = ""
            finally:
                con.close()
        except sqlite3.Error as e:
            self.error = str(e)

    def status(self, token: str) -> str | None:
        """Status of the assistant turn whose text starts with the reply ``token`` is in.

        The first such turn: a copy stored for a late delivery does not stand in for it."""
        found = [r for r in self.rows if r[4] and token in r[4]]
        if not found:
            return None
        return str(min(found, key=lambda r: int(r[1]))[3])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


# =======================================================================================
# The bot process


class BotProcess(LoggedBot):
    """``voicebot run`` in its own directory, configured only by documented variables
    (HTTP_PORT=0: the port is read from its log)."""

    def __init__(self, workdir: Path, **settings: str) -> None:
        self.workdir = workdir
        self.db = workdir / "bot.db"
        env = clean_env()
        env.update(
            DATABASE_URL=f"sqlite+aiosqlite:///{self.db}",
            HTTP_HOST="127.0.0.1",
            DELIVERY_TIMEOUT=str(int(DELIVERY_TIMEOUT)),
            WORKER_CONCURRENCY="200",
            USER_RATE_LIMIT="0",
            DASHSCOPE_API_KEY=API_KEY,
            DASHSCOPE_MAX_RETRIES="0",
            LOG_LEVEL="INFO",
        )
        env.update(settings)
        super().__init__(env, cwd=workdir)


# =======================================================================================
# Surfaces: how a case is started, faulted and read on each platform


class Surface(Protocol):
    def start(self, case: Case) -> None: ...
    def send_next(self, case: Case) -> None: ...
    def lift(self, case: Case) -> None: ...
    def readable(self, case: Case) -> list[str]: ...
    def served(self, case: Case) -> dict[str, int]: ...
    def calls(self, case: Case) -> list[Any]: ...
    def still_streaming(self, case: Case) -> int: ...


def _formatted(params: dict[str, Any]) -> bool:
    entities = params.get("entities")
    if isinstance(entities, str):
        try:
            entities = json.loads(entities)
        except ValueError:
            entities = None
    return bool(entities) or bool(params.get("parse_mode"))


def telegram_error(fault: str) -> ApiError:
    if fault == "ratelimit":
        return ApiError(
            429, f"Too Many Requests: retry after {RETRY_AFTER}", {"retry_after": RETRY_AFTER}
        )
    if fault == "entity":
        return ApiError(
            400,
            "Bad Request: can't parse entities: Can't find end of the entity starting "
            "at byte offset 17",
        )
    if fault == "not_modified":
        return ApiError(400, NOT_MODIFIED)
    if fault == "5xx":
        return ApiError(502, "Bad Gateway")
    if fault == "drop":
        return ConnectionDrop()
    if fault == "lost":
        return ConnectionDrop(after_apply=True)
    raise ValueError(fault)


class TelegramSurface:
    def __init__(self, servers: FakeServers, voice: bytes) -> None:
        self.tg = servers.telegram
        self.voice = voice
        self.injections: dict[int, list[Injection]] = {}

    @staticmethod
    def chat_id(case: Case) -> int:
        uid = 500_000 + case.idx
        return uid if case.surface == "tg-private" else -1_001_900_000_000 - case.idx

    def _push_voice(self, case: Case, marker: str) -> None:
        uid = 500_000 + case.idx
        user = {"id": uid, "is_bot": False, "first_name": f"Case{case.idx}", "language_code": "en"}
        cid = self.chat_id(case)
        with self.tg.lock:  # cases start from many threads at once
            f = self.tg.add_file(self.voice)
        voice = {
            "voice": {
                "file_id": f.file_id,
                "file_unique_id": f.file_unique_id,
                "duration": 2,
                "mime_type": "audio/ogg",
                "file_size": f.file_size,
            }
        }
        if case.surface == "tg-private":
            chat = {"id": cid, "type": "private", "first_name": user["first_name"]}
            fields: dict[str, Any] = {"caption": f"{marker} please answer"}
        else:
            chat = {"id": cid, "type": "supergroup", "title": f"QA group {case.idx}"}
            mention = f"@{self.tg.bot_username}"
            fields = {
                "caption": f"{mention} {marker} please answer",
                "caption_entities": [{"type": "mention", "offset": 0, "length": len(mention)}],
            }
        self.tg.push_message(self.tg.user_message(chat, user, **fields, **voice))

    def _inject(self, case: Case, method: str | tuple[str, ...], trigger: str, times: int) -> None:
        cid = str(self.chat_id(case))
        tail = case.tail
        entity = case.fault == "entity"

        def match(p: dict[str, Any]) -> bool:
            if str(p.get("chat_id")) != cid:
                return False
            if entity and not _formatted(p):
                return False  # Telegram parses entities only where there are some
            if trigger == "final":
                text = str(p.get("text") or "")
                return any(t in text for t in tail)
            return True

        inj = self.tg.inject(method, telegram_error(case.fault), match=match, times=times)
        self.injections.setdefault(case.idx, []).append(inj)

    def start(self, case: Case) -> None:
        if case.persist:
            methods = ["sendMessage"] + (["editMessageText"] if case.surface == "tg-group" else [])
            for method in methods:
                self._inject(case, method, "final", 10**9)
        elif case.call == "final-text":
            self._inject(case, FINAL_TEXT_CALLS[case.surface], case.trigger, case.times)
        elif case.fault != "none":
            self._inject(case, case.call, case.trigger, case.times)
        self._push_voice(case, case.marker)

    def send_next(self, case: Case) -> None:
        self._push_voice(case, case.next_marker)

    def lift(self, case: Case) -> None:
        with self.tg.lock:
            for inj in self.injections.get(case.idx, []):
                inj.times = 0

    def readable(self, case: Case) -> list[str]:
        return [m.text for m in self.tg.bot_messages(self.chat_id(case))]

    def served(self, case: Case) -> dict[str, int]:
        cid = self.chat_id(case)
        methods = ("sendMessage", "sendMessageDraft", "editMessageText")
        return {
            m: len(self.tg.served(m, chat_id=cid))
            for m in methods
            if self.tg.served(m, chat_id=cid)
        }

    def calls(self, case: Case) -> list[Call]:
        cid = str(self.chat_id(case))
        return [c for c in self.tg.snapshot() if str(c.get("chat_id")) == cid]

    def still_streaming(self, case: Case) -> int:
        return 0  # drafts expire by themselves; sent messages are never "streaming"


def _slack_text(args: dict[str, Any]) -> str:
    parts = [str(args.get("text") or ""), str(args.get("markdown_text") or "")]
    for key in ("chunks", "blocks"):
        value = args.get(key)
        if value:
            parts.append(value if isinstance(value, str) else json.dumps(value))
    return "\n".join(parts)


def slack_fault(fault: str) -> dict[str, Any]:
    if fault == "ratelimit":
        return {
            "status": 429,
            "body": {"ok": False, "error": "ratelimited"},
            "headers": {"Retry-After": str(RETRY_AFTER)},
        }
    if fault == "5xx":
        return {"status": 503, "body": {"ok": False, "error": "service_unavailable"}}
    if fault == "drop":
        return {"drop": True}
    if fault == "lost":
        return {"drop": True, "after_apply": True}
    raise ValueError(fault)


def _block_texts(blocks: Any) -> list[str]:
    """The text a user sees in Block Kit blocks (markdown / section / rich text)."""
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return []
    out: list[str] = []
    for block in blocks or []:
        if not isinstance(block, dict):
            continue
        text = block.get("text")
        if isinstance(text, str):
            out.append(text)
        elif isinstance(text, dict) and isinstance(text.get("text"), str):
            out.append(text["text"])
    return out


def slack_readable(m: SlackMessage) -> str:
    """A message's visible text: its blocks' text when it has text blocks, else ``text``.

    A streamed message shows what was streamed into it (``chat.stopStream`` blocks are
    attachments to it such as buttons), unless ``chat.update`` replaced it."""
    if m.streamed and not m.replaced:
        return m.text
    texts = _block_texts(m.blocks)
    return "\n".join(texts) if texts else m.text


class SlackSurface:
    def __init__(self, servers: SlackServers, bot: BotProcess, clip: bytes) -> None:
        self.servers = servers
        self.slack = servers.slack
        self.bot = bot
        self.clip = clip
        self.injections: dict[int, list[slack_server.SlackInjection]] = {}
        self.http = httpx.Client(timeout=10)
        self._ts = itertools.count(1)

    @staticmethod
    def channel(case: Case) -> str:
        return f"D0CASE{case.idx:04d}"

    @staticmethod
    def user(case: Case) -> str:
        return f"U0CASE{case.idx:04d}"

    @staticmethod
    def parent(case: Case) -> str | None:
        return f"1790000000.{case.idx:06d}" if case.surface == "slack-thread" else None

    def _new_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _post_clip(self, case: Case, marker: str) -> None:
        fid = f"F0{marker}"
        url = self.slack.add_file(fid, self.clip, "audio/webm")
        ts = self._new_ts()
        channel, user = self.channel(case), self.user(case)
        event: dict[str, Any] = {
            "type": "message",
            "subtype": "file_share",
            "text": f"{marker} please answer",
            "user": user,
            "ts": ts,
            "team": SLACK_TEAM,
            "channel": channel,
            "channel_type": "im",
            "event_ts": ts,
            "client_msg_id": f"cm-{marker}",
            "upload": False,
            "display_as_bot": False,
            "files": [
                {
                    "id": fid,
                    "created": int(time.time()),
                    "timestamp": int(time.time()),
                    "name": "audio_message.webm",
                    "title": "audio_message",
                    "mimetype": "audio/webm",
                    "filetype": "webm",
                    "pretty_type": "WebM",
                    "user": user,
                    "mode": "hosted",
                    "size": len(self.clip),
                    "url_private": url,
                    "url_private_download": url,
                    "subtype": "slack_audio",
                    "media_display_type": "audio",
                    "duration_ms": 2000,
                    "is_public": False,
                }
            ],
        }
        parent = self.parent(case)
        if parent:
            event["thread_ts"] = parent
        payload = {
            "token": "legacy-verification-token",
            "team_id": SLACK_TEAM,
            "api_app_id": "A0SLACKAPP",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{marker}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": SLACK_TEAM, "user_id": SLACK_BOT_USER, "is_bot": True}],
        }
        body = json.dumps(payload).encode()
        stamp = str(int(time.time()))
        sig = hmac.new(
            SLACK_SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256
        ).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": f"v0={sig}",
        }
        url = f"{self.bot.base}/slack/events"
        resp = self.http.post(url, content=body, headers=headers)
        assert resp.status_code == 200, f"event not acknowledged: {resp.status_code} {resp.text}"

    def _inject(self, case: Case, method: str | tuple[str, ...], trigger: str, times: int) -> None:
        channel, tail = self.channel(case), case.tail

        def match(args: dict[str, Any]) -> bool:
            if args.get("channel") != channel:
                return False
            if trigger == "final":
                return any(t in _slack_text(args) for t in tail)
            return True

        inj = self.slack.inject(method, match=match, times=times, **slack_fault(case.fault))
        self.injections.setdefault(case.idx, []).append(inj)

    def start(self, case: Case) -> None:
        if case.persist:
            if case.surface == "slack-thread":
                for method in ("chat.stopStream", "chat.update", "chat.postMessage"):
                    self._inject(case, method, "first", 10**9)
            else:
                for method in ("chat.postMessage", "chat.update"):
                    self._inject(case, method, "final", 10**9)
        elif case.call == "final-text":
            self._inject(case, FINAL_TEXT_CALLS[case.surface], case.trigger, case.times)
        elif case.fault != "none":
            self._inject(case, case.call, case.trigger, case.times)
        self._post_clip(case, case.marker)

    def send_next(self, case: Case) -> None:
        self._post_clip(case, case.next_marker)

    def lift(self, case: Case) -> None:
        with self.slack._lock:
            for inj in self.injections.get(case.idx, []):
                inj.times = 0

    def readable(self, case: Case) -> list[str]:
        parent = self.parent(case)
        return [
            slack_readable(m)
            for m in self.slack.visible(self.channel(case))
            if m.thread_ts == parent and not m.streaming
        ]

    def served(self, case: Case) -> dict[str, int]:
        out = {}
        for method in (
            "chat.startStream",
            "chat.appendStream",
            "chat.stopStream",
            "chat.postMessage",
            "chat.update",
        ):
            n = len(self.slack.served(method, self.channel(case)))
            if n:
                out[method] = n
        return out

    def calls(self, case: Case) -> list[Any]:
        channel = self.channel(case)
        with self.slack._lock:
            return [c for c in self.slack.calls if c.args.get("channel") == channel]

    def still_streaming(self, case: Case) -> int:
        """Messages of this reply's thread whose stream was never stopped nor replaced."""
        parent = self.parent(case)
        return sum(
            1
            for m in self.slack.visible(self.channel(case))
            if m.thread_ts == parent and m.streaming
        )

    def close(self) -> None:
        self.http.close()


# =======================================================================================
# Running the cases concurrently


@dataclass
class Snapshot:
    at: float
    status: str | None
    messages: list[str]


@dataclass
class Outcome:
    case: Case
    pushed_at: float
    first: Snapshot  # when the reply's turn reached a final status (or at the deadline)
    end: Snapshot  # at the very end (after the next message, if one was sent)
    next_sent: bool = False
    next_status: str | None = None
    served: dict[str, int] = field(default_factory=dict)
    streaming_left: int = 0
    calls: list[Any] = field(default_factory=list)  # Telegram Call / Slack SlackCall
    error: str = ""


def poll(predicate: Callable[[], Any], deadline: float, step: float = 0.05) -> Any:
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


class Matrix:
    """All cases of one platform, running at once in one bot process."""

    def __init__(self, surface: Surface, turns: Turns, cases: list[Case]) -> None:
        self.surface = surface
        self.turns = turns
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(cases)))
        self.futures: dict[int, Future[Outcome]] = {}
        for case in cases:
            self.futures[case.idx] = self.pool.submit(self._drive, case)

    def _snap(self, case: Case, token: str) -> Snapshot:
        return Snapshot(time.monotonic(), self.turns.status(token), self.surface.readable(case))

    def _drive(self, case: Case) -> Outcome:
        pushed = time.monotonic()
        error = ""
        try:
            self.surface.start(case)
        except Exception as e:  # reported by the test, not swallowed
            error = f"could not start the case: {e!r}"
        poll(lambda: self.turns.status(case.first_token) in TERMINAL, pushed + FIRST_DEADLINE)
        first = self._snap(case, case.first_token)
        out = Outcome(case, pushed, first, first, error=error)
        if case.persist:
            self.surface.lift(case)
        if first.status == "undelivered":
            out.next_sent = True
            self.surface.send_next(case)
            deadline = time.monotonic() + NEXT_DEADLINE
            poll(
                lambda: (
                    self.turns.status(case.next_token) in TERMINAL
                    and self.turns.status(case.first_token) == "complete"
                ),
                deadline,
            )
            out.next_status = self.turns.status(case.next_token)
        out.end = self._snap(case, case.first_token)
        out.served = self.surface.served(case)
        out.calls = self.surface.calls(case)
        out.streaming_left = self.surface.still_streaming(case)
        return out

    def outcome(self, case: Case) -> Outcome:
        return self.futures[case.idx].result(timeout=FIRST_DEADLINE + NEXT_DEADLINE + 30)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _route(body: dict[str, Any]) -> DashscopePlan | None:
    """The fake model answers each case's voice note by the marker in its caption."""
    users = [m for m in body.get("input", {}).get("messages", []) if m.get("role") == "user"]
    if not users:
        return None
    text = " ".join(str(p.get("text", "")) for p in users[-1].get("content", []))
    found = re.search(r"QA\d{3}(?:FIRST|NEXT)", text)
    case = BY_MARKER.get(found.group(0)) if found else None
    if found is None or case is None:
        return None
    first = found.group(0).endswith("FIRST")
    reply = case.reply if first else case.next_reply
    appended = first and case.call == "chat.appendStream"
    return DashscopePlan(
        chunks=split_chunks(reply, CHUNKS),
        delay=APPEND_CHUNK_DELAY if appended else CHUNK_DELAY,
        final_delay=1.0 if first and case.slow_end else 0.0,
    )


def _selected(request: pytest.FixtureRequest, test_name: str, pool: list[Case]) -> list[Case]:
    """The cases of ``test_name`` this session will run (``-k`` and xdist respected)."""
    wanted = {
        item.callspec.params["case"].idx
        for item in request.session.items
        if getattr(item, "originalname", "") == test_name and hasattr(item, "callspec")
    }
    return [c for c in pool if c.idx in wanted] or pool


# =======================================================================================
# Fixtures: one bot per platform


@pytest.fixture(scope="module")
def telegram_matrix(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Matrix]:
    cases = _selected(request, "test_telegram_reply_is_complete_only_when_readable", TELEGRAM_CASES)
    voice = encode(speech_like(1.5), FORMATS["voice.ogg"])
    dashscope = DashScopeFake()
    dashscope.router = _route
    dashscope.start()
    servers = FakeServers().start()
    workdir = tmp_path_factory.mktemp("delivery_telegram")
    bot = BotProcess(
        workdir,
        TELEGRAM_BOT_TOKEN=servers.telegram.token,
        TELEGRAM_API_BASE=servers.telegram_base,
        DASHSCOPE_BASE_URL=dashscope.base_url,
        TELEGRAM_EDIT_INTERVAL="0.3",
    )
    turns = Turns(bot.db)
    matrix: Matrix | None = None
    try:
        bot.wait_ready()
        matrix = Matrix(TelegramSurface(servers, voice), turns, cases)
        yield matrix
    finally:
        if matrix is not None:
            matrix.close()
        turns.close()
        bot.close()
        servers.stop()
        dashscope.stop()


@pytest.fixture(scope="module")
def slack_matrix(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Matrix]:
    cases = _selected(request, "test_slack_reply_is_complete_only_when_readable", SLACK_CASES)
    clip = encode(speech_like(1.5), FORMATS["clip.webm"])
    dashscope = DashScopeFake()
    dashscope.router = _route
    dashscope.start()
    servers = SlackServers()
    servers.start()
    servers.slack.update_ends_stream = True
    workdir = tmp_path_factory.mktemp("delivery_slack")
    bot = BotProcess(
        workdir,
        SLACK_BOT_TOKEN=SLACK_BOT_TOKEN,
        SLACK_MODE="http",
        SLACK_SIGNING_SECRET=SLACK_SECRET,
        SLACK_API_BASE=f"{servers.slack.base}/api/",
        DASHSCOPE_BASE_URL=dashscope.base_url,
    )
    turns = Turns(bot.db)
    matrix: Matrix | None = None
    surface: SlackSurface | None = None
    try:
        bot.wait_ready()
        surface = SlackSurface(servers, bot, clip)
        matrix = Matrix(surface, turns, cases)
        yield matrix
    finally:
        if matrix is not None:
            matrix.close()
        if surface is not None:
            surface.close()
        turns.close()
        bot.close()
        servers.stop()
        dashscope.stop()


# =======================================================================================
# The checks


def _plain_resends_ok(out: Outcome) -> list[str]:
    """Entity error → the same text again as plain text, once (sendMessage / edits)."""
    problems: list[str] = []
    if out.case.platform != "telegram":
        return problems
    calls = out.calls
    for i, failed in enumerate(calls):
        if not failed.injected or out.case.fault != "entity":
            continue
        if failed.method == "sendMessageDraft":
            continue  # a preview: the next draft supersedes it anyway
        text = norm(str(failed.get("text") or ""))
        later = [
            c
            for c in calls[i + 1 :]
            if c.method in ("sendMessage", "editMessageText") and c.ok and not _formatted(c.params)
        ]
        resent = [c for c in later if norm(str(c.get("text") or "")).startswith(text)]
        same = [c for c in later if norm(str(c.get("text") or "")) == text]
        if not resent:
            problems.append(f"no plain-text resend after the entity error on {failed.method}")
        if len(same) > 1:
            problems.append(f"the plain text was sent {len(same)} times, not once")
    return problems


def _timeline(calls: list[Any], *, with_method: bool = False) -> str:
    """``+0.00A(fault), +0.48A, ...``: when each call came, which message (A, B, ... by Slack
    ``ts`` / Telegram ``message_id``) it was about, and whether it got the injected fault."""
    keys: dict[str, str] = {}
    out = []
    for c in calls:
        params = getattr(c, "args", None) or getattr(c, "params", {})
        key = str(params.get("ts") or params.get("message_id") or "")
        name = keys.setdefault(key, chr(ord("A") + len(keys))) if key else ""
        method = c.method if with_method else ""
        out.append(f"{method}+{c.at - calls[0].at:.2f}{name}{'(fault)' if c.injected else ''}")
    return ", ".join(out)


def _retry_after_honoured(out: Outcome) -> list[str]:
    """After a rate-limit answer, the same method is not called in that chat before
    ``retry_after`` / ``Retry-After`` seconds (10% timer slack)."""
    if out.case.fault != "ratelimit":
        return []
    problems = []
    for failed in (c for c in out.calls if c.injected):
        early = [
            c.at - failed.at
            for c in out.calls
            if c.method == failed.method and failed.at < c.at < failed.at + 0.9 * RETRY_AFTER
        ]
        if early:
            timeline = _timeline([c for c in out.calls if c.method == failed.method])
            problems.append(
                f"{failed.method} called again {min(early):.2f} s after a rate limit of "
                f"{RETRY_AFTER} s (calls at {timeline})"
            )
    return problems[:1]


def check(out: Outcome) -> None:
    case = out.case
    problems: list[str] = []
    if out.error:
        problems.append(out.error)
    reply = case.reply
    stale_ok = case.fault == "not_modified"
    first, end = out.first, out.end

    # the fault really happened
    served_total = sum(out.served.values())
    if case.fault != "none" and served_total == 0:
        problems.append(f"the injected {case.fault} on {case.call} was never served")
    if not case.persist and served_total > case.times:
        problems.append(f"served {out.served}: more than {case.times} times")
    problems += _plain_resends_ok(out)
    problems += _retry_after_honoured(out)
    if out.streaming_left:
        problems.append(
            f"{out.streaming_left} message(s) of the reply left streaming (never stopped or "
            "replaced by chat.update)"
        )

    if first.status == "complete":
        if not reads_exactly(first.messages, reply, stale_prefix_ok=stale_ok):
            problems.append(
                "stored complete while the user cannot read the whole reply: "
                + describe(first.messages, reply)
            )
        if not reads_exactly(end.messages, reply, stale_prefix_ok=stale_ok):
            problems.append("finally visible: " + describe(end.messages, reply))
        if case.persist:
            problems.append("complete although the final text could not be delivered")
    elif first.status == "undelivered":
        if reads_somewhere(first.messages, reply):
            problems.append("stored undelivered although the whole reply is visible")
        # The final text is retried for DELIVERY_TIMEOUT in all, measured from its first
        # failed attempt (a served fault). Allowed: one last attempt scheduled before the
        # budget ran out, after one retry_after wait, plus 0.5 s of scheduling.
        attempts = sorted(c.at for c in out.calls if c.injected and c.at <= first.at)
        if attempts:
            budget_end = attempts[0] + DELIVERY_TIMEOUT
            late = [a - attempts[0] for a in attempts if a > budget_end + RETRY_AFTER + 0.5]
            if late:
                problems.append(
                    f"the final text was retried {max(late):.1f} s after its first failed "
                    f"attempt (DELIVERY_TIMEOUT={DELIVERY_TIMEOUT:g}); attempts at "
                    + ", ".join(f"+{a - attempts[0]:.1f}" for a in attempts)
                )
            if first.at > budget_end + RETRY_AFTER + 2:
                problems.append(
                    f"stored undelivered only {first.at - attempts[0]:.1f} s after the first "
                    f"failed attempt (DELIVERY_TIMEOUT={DELIVERY_TIMEOUT:g})"
                )
        if end.status != "complete":
            problems.append(
                f"after the next message the earlier reply is stored {end.status!r}, not complete"
            )
        if not reads_somewhere(end.messages, reply):
            problems.append(
                "the earlier reply was not delivered at the next message: "
                + describe(end.messages, reply)
            )
        if out.next_status != "complete" or not reads_somewhere(end.messages, case.next_reply):
            problems.append(f"the next message's own reply: stored {out.next_status!r}")
    else:
        seen = "readable" if reads_somewhere(first.messages, reply) else "not readable"
        problems.append(
            f"the reply's turn is stored {first.status!r} {time.monotonic() - out.pushed_at:.0f}"
            f" s after the voice note (expected complete or undelivered; the reply is {seen}: "
            + describe(first.messages, reply)
            + ")"
        )

    if problems:
        text_calls = [c for c in out.calls if c.method in TEXT_METHODS]
        summary = (
            f"{case.id}: " + "; ".join(problems) + f"\n  served faults: {out.served}"
            f"\n  stored status: at first {first.status!r}, at the end {end.status!r}"
            f"\n  visible message lengths: {[len(m) for m in end.messages]}"
            "\n  calls: " + _timeline(text_calls[:60], with_method=True)
        )
        raise AssertionError(summary)


@pytest.mark.xdist_group("delivery-telegram")
@pytest.mark.parametrize("case", TELEGRAM_CASES, ids=lambda c: c.id)
def test_telegram_reply_is_complete_only_when_readable(case: Case, telegram_matrix: Matrix) -> None:
    check(telegram_matrix.outcome(case))


@pytest.mark.xdist_group("delivery-slack")
@pytest.mark.parametrize("case", SLACK_CASES, ids=lambda c: c.id)
def test_slack_reply_is_complete_only_when_readable(case: Case, slack_matrix: Matrix) -> None:
    check(slack_matrix.outcome(case))
