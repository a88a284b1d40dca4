"""Scale-out and crash proof (issue #12): real ``voicebot run`` processes on one database.

Black-box: every bot is a subprocess configured through the documented environment, the
platforms and the model are the local fakes of ``tests/fakes/`` (Bot API, Slack Web API,
DashScope), and every assertion is about what users see in their chats, plus the stored
history. Nothing waits a fixed time: waits are for conditions (the fakes' state, a log
line, ``/readyz``), bounded by :func:`tests.process.patience`.

The fake DashScope answers every request with ``Answer to <token> done.``, ``<token>`` read
from the request's last user text (each user message carries a unique token such as
``t07m012``: conversation ``t07``, message 12), streamed in a few chunks. So every visible
reply names the message it answers; "answered exactly once, in arrival order" is then a
comparison of lists.

1. :func:`test_three_replicas_webhooks_crash_and_drain` (PostgreSQL): three replicas,
   Telegram webhooks and Slack HTTP events posted to random replicas, 30 % duplicates;
   one replica ``kill -9``ed while streaming a reply (and restarted), another SIGTERMed
   while running turns.
2. :func:`test_two_replicas_long_polling_one_poller_and_takeover` (PostgreSQL): one
   getUpdates at a time (the fake answers 409 to a concurrent one, like Telegram); the
   leader ``kill -9``ed, the other takes over.
3. :func:`test_sqlite_turn_killed_mid_stream_is_resumed_once`: the in-process queue, a
   turn killed mid-stream in a group and finished once after a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import random
import re
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot import texts
from tests.audio import synth
from tests.databases import POSTGRES_URL
from tests.fakes.dashscope import FakeDashScope, RecordedRequest, Reply
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.process import BotProcess, clean_env, patience

# Heavy (several bot processes each): one xdist worker runs them one after the other.
pytestmark = pytest.mark.xdist_group("scale-out")

WEBHOOK_SECRET = "scale_Out-secret-1"
SIGNING_SECRET = "scale-out-signing-secret"
TEAM = "T0TEAM"
TOKEN = re.compile(r"\b([ts]\d\dm\d{3})\b")
# A complete answer (the slow one has filler words before its end).
ANSWER = re.compile(r"^Answer to ([ts]\d\dm\d{3}) (?:w\d+ )*done\.")
STALL_SECONDS = "3"


# --- the model: answers naming the message they answer --------------------------------


def last_token(rec: RecordedRequest) -> str | None:
    users = [t for role, t in rec.texts if role == "user"]
    found = TOKEN.findall(users[-1]) if users else []
    return found[-1] if found else None


class Model:
    """The DashScope behaviour shared by the fakes of a test: fast answers in a few
    chunks; a token in :attr:`slow` is answered slowly the first time it is asked."""

    def __init__(self) -> None:
        self.slow: set[str] = set()
        self.asked: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, rec: RecordedRequest) -> Reply:
        token = last_token(rec) or "none"
        with self._lock:
            self.asked[token] = self.asked.get(token, 0) + 1
            first = self.asked[token] == 1
        head = ["Answer ", "to ", f"{token} "]
        if first and token in self.slow:
            # Long enough that the kill lands mid-stream whatever the machine's load.
            filler = [f"w{i} " for i in range(40)]
            return Reply(chunks=[*head, *filler, "done."], chunk_delay=0.2)
        return Reply(chunks=[*head, "done."], chunk_delay=0.01)


def start_dashscope(model: Model) -> FakeDashScope:
    fake = FakeDashScope()
    fake.script(model)
    fake.start()
    return fake


def user_tokens(rec: RecordedRequest) -> list[str]:
    """The tokens of the user messages of a request, history included, in order."""
    out: list[str] = []
    for role, value in rec.texts:
        if role == "user":
            out.extend(TOKEN.findall(value))
    return out


# --- processes ------------------------------------------------------------------------


class Replica:
    """One ``voicebot run`` slot: its environment and working directory, and the process
    now running there (restarted in place)."""

    def __init__(self, name: str, env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.env = env
        self.cwd = cwd
        cwd.mkdir(parents=True, exist_ok=True)
        self.proc: BotProcess | None = None
        self.runs: list[BotProcess] = []
        self.gone = False  # stopped for good: no more deliveries

    async def start(self) -> BotProcess:
        self.proc = await BotProcess.start(self.env, cwd=self.cwd)
        self.runs.append(self.proc)
        return self.proc

    @property
    def live(self) -> bool:
        p = self.proc
        return not self.gone and p is not None and p.proc.returncode is None and p.port is not None

    async def readyz(self) -> dict[str, Any]:
        assert self.proc is not None
        status, body = await self.proc.get("/readyz")
        try:
            data: dict[str, Any] = json.loads(body)
        except ValueError:
            data = {}
        data["_status"] = status
        return data

    def logs(self, event: str) -> list[dict[str, Any]]:
        return [e for p in self.runs for e in p.logs if e.get("event") == event]

    def stderr(self, tail: int = 4000) -> str:
        return "\n".join(
            f"--- {self.name} run {i}\n{p.stderr[-tail:]}" for i, p in enumerate(self.runs)
        )

    async def close(self) -> None:
        for p in self.runs:
            await p.kill()


async def until(
    predicate: Callable[[], Any], *, within: float, what: str, step: float = 0.05
) -> Any:
    """Wait until ``predicate()`` is truthy (re-checked every ``step`` seconds)."""
    deadline = time.monotonic() + within
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(step)
    return value


async def settle_to(replicas: list[Replica], running: int, *, what: str) -> None:
    """Until the live replicas run exactly ``running`` turns between them (``/readyz``
    ``queue.running``): the others have not just shown their answer, they are done with
    it (its id stored, the job finished)."""
    deadline = time.monotonic() + patience(60)
    while True:
        total = 0
        for r in replicas:
            if r.live:
                queue = (await r.readyz()).get("queue") or {}
                total += int(queue.get("running") or 0)
        if total == running:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {total} turns running")
        await asyncio.sleep(0.05)


def pg_url(name: str) -> str:
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
async def pg_database(pg_clones: Any) -> AsyncIterator[str]:
    """A migrated PostgreSQL database of this test's own (a clone of the template)."""
    name = await pg_clones.take()
    try:
        yield pg_url(name)
    finally:
        pg_clones.drop(name)


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelegram, FakeSlack]]:
    tg = FakeTelegram(exclusive_polling=True)
    slack = FakeSlack()
    await tg.start()
    await slack.start()
    try:
        yield tg, slack
    finally:
        await tg.stop()
        await slack.stop()


@pytest.fixture
def model() -> Model:
    return Model()


# --- what users see -------------------------------------------------------------------


@dataclass
class Conversation:
    """One chat (or Slack thread) and its user messages in the order they were accepted."""

    name: str
    platform: str  # telegram | slack
    kind: str  # private | group (Telegram); dm | thread (Slack)
    chat_id: Any  # Telegram chat id, or Slack channel id
    user: dict[str, Any] | str
    thread_ts: str | None = None
    accepted: list[str] = field(default_factory=list)  # tokens, in acknowledgement order
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # token -> bodies


def visible(
    tg: FakeTelegram, slack: FakeSlack, convs: dict[Any, Conversation]
) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """What each conversation's chat shows now: the tokens of the bot's complete answers,
    oldest first; and every bot message that is not one complete answer (a draft left
    half-written, an apology, …) as (conversation, text)."""
    shown: dict[str, list[str]] = {c.name: [] for c in convs.values()}
    odd: list[tuple[str, str]] = []
    for (chat_id, _), msg in sorted(tg.messages.items()):
        if msg.get("from", {}).get("id") != tg.bot_id:
            continue
        conv = convs.get(("telegram", chat_id))
        name = conv.name if conv else f"telegram:{chat_id}"
        m = ANSWER.match(msg.get("text", ""))
        if m and conv is not None:
            shown[name].append(m.group(1))
        else:
            odd.append((name, msg.get("text", "")))
    for smsg in list(slack.messages):
        if smsg.bot_id != slack.bot_id:
            continue
        conv = convs.get(("slack", smsg.channel))
        name = conv.name if conv else f"slack:{smsg.channel}"
        m = ANSWER.match(smsg.text)
        if m and conv is not None and not smsg.streaming:
            shown[name].append(m.group(1))
        else:
            odd.append((name, smsg.text + (" [still streaming]" if smsg.streaming else "")))
    return shown, odd


def chat_calls(tg: FakeTelegram, slack: FakeSlack, conv: Conversation) -> list[str]:
    """What the bot did in a conversation's chat, call by call (for failure messages)."""
    out = []
    if conv.platform == "telegram":
        for c in tg.calls:
            if str(c.params.get("chat_id")) == str(conv.chat_id) and c.method != "sendChatAction":
                result = c.result.get("message_id") if isinstance(c.result, dict) else c.result
                out.append(
                    f"{c.at:.2f} {c.method} id={c.params.get('message_id', result)}"
                    f" {str(c.params.get('text', ''))[:32]!r} {c.error or ''}"
                )
    else:
        for sc in slack.calls:
            if sc.args.get("channel") == conv.chat_id:
                text_ = sc.args.get("markdown_text") or sc.args.get("text") or ""
                out.append(f"{sc.method} ts={sc.args.get('ts')} {str(text_)[:32]!r}")
    return out


def save_logs(replicas: list[Replica], folder: Path) -> None:
    """Each process's log, for a failure's post-mortem (pytest keeps recent tmp_paths)."""
    for r in replicas:
        for i, p in enumerate(r.runs):
            (folder / f"{r.name}-run{i}.log").write_text(p.stderr)


History = dict[tuple[str, str, str], list[tuple[int, str, str, str]]]


async def stored_history(url: str) -> History:
    """Every conversation's stored turns: (platform, chat, thread) -> [(seq, role,
    status, text)] by seq."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT ch.platform, ch.external_id, c.thread_key, c.id, t.seq, t.role,"
                    " t.status, coalesce(t.text, '') FROM turns t"
                    " JOIN conversations c ON c.id = t.conversation_id"
                    " JOIN chats ch ON ch.id = c.chat_id ORDER BY c.id, t.seq"
                )
            )
            out: History = {}
            for platform, external, thread, cid, seq, role, status, body in rows:
                key = (str(platform), str(external), f"{thread or ''}#{cid}")
                out.setdefault(key, []).append((int(seq), str(role), str(status), str(body)))
            return out
    finally:
        await engine.dispose()


async def settled(url: str, convs: dict[Any, Conversation]) -> History:
    """The stored history once every accepted message has a complete answer stored (the
    bot's word that the platform confirmed it), or as it is after a generous wait."""
    wanted = sum(len(c.accepted) for c in convs.values())
    limit = time.monotonic() + patience(60)
    while True:
        history = await stored_history(url)
        done = [t for turns in history.values() for t in turns if t[1] == "assistant"]
        if len(done) >= wanted and all(t[2] == "complete" for t in done):
            return history
        if time.monotonic() > limit:
            return history
        await asyncio.sleep(0.1)


def check_history(
    history: History,
    convs: dict[Any, Conversation],
) -> None:
    """Stored turns alternate user/assistant with consecutive seq, every assistant turn is
    complete, and the user turns are the conversation's messages in accepted order."""
    by_name = {c.name: c for c in convs.values()}
    seen: set[str] = set()
    for key, turns in history.items():
        seqs = [seq for seq, *_ in turns]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (key, seqs)
        roles = [role for _, role, _, _ in turns]
        assert roles == ["user", "assistant"] * (len(turns) // 2) and len(turns) % 2 == 0, (
            key,
            roles,
        )
        statuses = {status for _, role, status, _ in turns if role == "assistant"}
        assert statuses == {"complete"}, (key, turns)
        tokens = [t for _, role, _, body in turns if role == "user" for t in TOKEN.findall(body)]
        names = {t[:3] for t in tokens}
        assert len(names) == 1, (key, tokens)
        name = names.pop()
        assert name not in seen, f"{name} is stored as two conversations"
        seen.add(name)
        assert tokens == by_name[name].accepted, (name, tokens, by_name[name].accepted)
    assert seen == set(by_name), set(by_name) - seen


# --- 1. three replicas, webhooks, crash and drain -------------------------------------


class Traffic:
    """Deliveries to random live replicas, as Telegram and Slack make them: a delivery
    that is not acknowledged with 200 (the replica is stopping, or died) is made again,
    to another replica."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        replicas: list[Replica],
        rng: random.Random,
        deadline: float,
    ) -> None:
        self.http = http
        self.replicas = replicas
        self.rng = rng
        self.deadline = deadline
        self.duplicates = 0
        self.redeliveries = 0  # made again because a replica did not acknowledge
        self.statuses: dict[int | str, int] = {}

    async def post(self, path: str, body: str, headers: Callable[[int], dict[str, str]]) -> None:
        attempt = 0
        while True:
            live = [r for r in self.replicas if r.live]
            if time.monotonic() > self.deadline:
                raise AssertionError(
                    f"no replica acknowledged a delivery; statuses {self.statuses}"
                )
            if not live:
                await asyncio.sleep(0.05)  # a restart is under way
                continue
            replica = self.rng.choice(live)
            assert replica.proc is not None
            status: int | str
            try:
                async with self.http.post(
                    replica.proc.base + path, data=body.encode(), headers=headers(attempt)
                ) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, OSError) as exc:
                status = type(exc).__name__
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 200:
                return
            attempt += 1
            self.redeliveries += 1
            await asyncio.sleep(0.02 * attempt)  # the platform's retry backoff

    async def telegram(self, update: dict[str, Any]) -> None:
        body = json.dumps(update)
        headers = {
            "Content-Type": "application/json",
            "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET,
        }
        await self.post("/telegram/webhook", body, lambda _attempt: headers)

    async def slack(self, envelope: dict[str, Any], *, retry_num: int = 0) -> None:
        body = json.dumps(envelope)

        def headers(attempt: int) -> dict[str, str]:
            out = {"Content-Type": "application/json", **sign(body)}
            if retry_num + attempt:
                out["X-Slack-Retry-Num"] = str(retry_num + attempt)
                out["X-Slack-Retry-Reason"] = "http_timeout"
            return out

        await self.post("/slack/events", body, headers)


def sign(body: str) -> dict[str, str]:
    """Slack's request signature headers (v0, HMAC-SHA256 of ``v0:timestamp:body``)."""
    ts = str(int(time.time()))
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def slack_envelope(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    return {
        "token": "verification-token",
        "team_id": TEAM,
        "api_app_id": "A0APP",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:12].upper()}",
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": TEAM, "user_id": "U0BOT", "is_bot": True, "is_enterprise_install": False}
        ],
        "is_ext_shared_channel": False,
    }


class Scenario:
    """The conversations of test 1, their messages and how they are delivered."""

    def __init__(
        self,
        tg: FakeTelegram,
        slack: FakeSlack,
        traffic: Traffic,
        rng: random.Random,
        *,
        conversations: int,
        events: int,
        duplicate_share: float,
    ) -> None:
        self.tg = tg
        self.slack = slack
        self.traffic = traffic
        self.rng = rng
        self.convs: dict[Any, Conversation] = {}
        self._update_ids = itertools.count(500_000)
        self._tg_chat: dict[str, dict[str, Any]] = {}
        half = conversations // 2
        for i in range(half):
            kind = "group" if i % 2 else "private"
            name = f"t{i:02d}"
            user = tg.user(7000 + i, f"User{i}")
            chat = tg.group_chat(-100_500_000 - i, f"Group {i}") if kind == "group" else None
            chat_id = chat["id"] if chat else user["id"]
            conv = Conversation(name, "telegram", kind, chat_id, user)
            self.convs[("telegram", chat_id)] = conv
            self._tg_chat[name] = chat or tg.private_chat(user)
        for i in range(conversations - half):
            kind = "thread" if i % 2 else "dm"
            name = f"s{i:02d}"
            channel = f"C0S{i:03d}" if kind == "thread" else f"D0S{i:03d}"
            slack.add_user(f"U0S{i:03d}")
            conv = Conversation(name, "slack", kind, channel, f"U0S{i:03d}")
            self.convs[("slack", channel)] = conv
        self.by_name = {c.name: c for c in self.convs.values()}
        # The plan, per conversation: steps (kind, message, together): "new" sends a
        # message (with a duplicate at the same time if ``together``), "dup" sends an
        # earlier one again.
        unique = round(events * (1 - duplicate_share))
        names = sorted(self.by_name)
        counts = dict.fromkeys(names, 0)
        for k in range(unique):
            counts[names[k % len(names)]] += 1
        self.plans: dict[str, list[tuple[str, int, bool]]] = {
            n: [("new", m, False) for m in range(counts[n])] for n in names
        }
        for _ in range(events - unique):
            n = rng.choice(names)
            plan = self.plans[n]
            m = rng.randrange(counts[n])
            at = plan.index(("new", m, False)) if ("new", m, False) in plan else None
            if at is not None and rng.random() < 0.3:
                plan[at] = ("new", m, True)
                continue
            if at is None:
                at = plan.index(("new", m, True))
            plan.insert(rng.randrange(at + 1, len(plan) + 1), ("dup", m, False))
        self.total_events = events
        self.sent_events = 0

    def token(self, conv: Conversation, m: int) -> str:
        return f"{conv.name}m{m:03d}"

    # --- building platform events ---------------------------------------------------

    def telegram_update(self, conv: Conversation, token: str) -> dict[str, Any]:
        chat = self._tg_chat[conv.name]
        assert isinstance(conv.user, dict)
        words = f"@{self.tg.username} {token}" if conv.kind == "group" else f"please {token}"
        msg = self.tg.message(chat=chat, user=conv.user, text=words)
        return {"update_id": next(self._update_ids), "message": msg}

    def slack_events(self, conv: Conversation, token: str) -> list[dict[str, Any]]:
        """The event bodies Slack sends for one message: a ``message`` event, and for a
        mention in a channel also its ``app_mention`` twin."""
        assert isinstance(conv.user, str)
        if conv.kind == "dm":
            stored = self.slack.seed_message(conv.chat_id, text=f"please {token}", user=conv.user)
            event = {
                "type": "message", "text": stored.text, "user": conv.user, "ts": stored.ts,
                "channel": conv.chat_id, "channel_type": "im", "event_ts": stored.ts,
                "team": TEAM, "client_msg_id": str(uuid.uuid4()),
            }  # fmt: skip
            return [slack_envelope(event)]
        words = f"<@{self.slack.bot_user_id}> {token}"
        stored = self.slack.seed_message(
            conv.chat_id, text=words, user=conv.user, thread_ts=conv.thread_ts
        )
        if conv.thread_ts is None:
            conv.thread_ts = stored.ts
        base = {
            "text": words, "user": conv.user, "ts": stored.ts, "channel": conv.chat_id,
            "event_ts": stored.ts, "team": TEAM, "client_msg_id": str(uuid.uuid4()),
        }  # fmt: skip
        if stored.ts != conv.thread_ts:
            base["thread_ts"] = conv.thread_ts
        message = {"type": "message", "channel_type": "channel", **base}
        mention = {"type": "app_mention", **base}
        first, twin = (message, mention) if self.rng.random() < 0.5 else (mention, message)
        return [slack_envelope(first), slack_envelope(twin)]

    async def deliver(self, conv: Conversation, m: int, kind: str, together: bool) -> None:
        token = self.token(conv, m)
        if kind == "new":
            if conv.platform == "telegram":
                bodies = [self.telegram_update(conv, token)]
            else:
                bodies = self.slack_events(conv, token)
            conv.events[token] = bodies
            sends = [self._send(conv, bodies[0])]
            if together:  # a duplicate at the same time, to another replica maybe
                sends.append(self._send(conv, self._duplicate(conv, token), dup=True))
            await asyncio.gather(*sends)
            conv.accepted.append(token)
        else:
            await self._send(conv, self._duplicate(conv, token), dup=True)

    def _duplicate(self, conv: Conversation, token: str) -> dict[str, Any]:
        bodies = conv.events[token]
        if conv.platform == "slack" and len(bodies) > 1 and self.rng.random() < 0.5:
            return {"twin": bodies[1]}
        return {"again": bodies[0]}

    async def _send(self, conv: Conversation, body: dict[str, Any], dup: bool = False) -> None:
        self.sent_events += 1
        if dup:
            self.traffic.duplicates += 1
        if conv.platform == "telegram":
            await self.traffic.telegram(body.get("again", body))
        elif "twin" in body:
            await self.traffic.slack(body["twin"])
        elif "again" in body:
            await self.traffic.slack(body["again"], retry_num=1)
        else:
            await self.traffic.slack(body)


async def test_three_replicas_webhooks_crash_and_drain(
    tmp_path: Path,
    pg_database: str,
    fakes: tuple[FakeTelegram, FakeSlack],
    model: Model,
) -> None:
    """Three replicas on one PostgreSQL, Telegram webhooks and Slack HTTP events to random
    replicas, 1,000 events over 50 conversations of which 30 % duplicates (the same
    update again; a Slack retry with ``X-Slack-Retry-Num`` and the same event id; or the
    ``app_mention`` twin of a channel message). Mid-way one replica is ``kill -9``ed while
    it streams a reply into a Telegram group, and restarted; later another is SIGTERMed
    while it runs turns (it exits 0). Every message is answered exactly once, in the
    order the platform had it acknowledged, the cut reply ends as one complete message,
    and the stored history of every conversation is consistent.

    Each conversation sends its messages in bursts of 1-4 and waits for their answers
    before the next burst, so the traffic spans the whole run and conversations keep a
    backlog of their own. The full 1,000 events fit the time budget: ~50 s on the 2-core
    machine with other work running (start ~9 s, traffic ~37 s).
    """
    tg, slack = fakes
    began = time.monotonic()
    seed = int(time.time())
    rng = random.Random(seed)
    dashscopes = [start_dashscope(model) for _ in range(3)]
    replicas: list[Replica] = []
    for i, ds in enumerate(dashscopes):
        env = clean_env(
            DATABASE_URL=pg_database,
            AUTO_MIGRATE="false",
            DASHSCOPE_API_KEY=ds.api_key,
            DASHSCOPE_BASE_URL=ds.native_base_url,
            DASHSCOPE_MAX_RETRIES="1",
            TELEGRAM_BOT_TOKEN=tg.token,
            TELEGRAM_API_BASE=tg.base_url,
            TELEGRAM_MODE="webhook",
            TELEGRAM_WEBHOOK_URL="https://bot.example.com/telegram/webhook",
            TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
            TELEGRAM_EDIT_INTERVAL="0.1",
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_MODE="http",
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_BASE=slack.base_url,
            USER_RATE_LIMIT="0",
            AUDIO_WORKERS="1",
            JOB_STALL_SECONDS=STALL_SECONDS,
            JOB_POLL_INTERVAL="0.5",
        )
        replicas.append(Replica(f"r{i}", env, tmp_path / f"r{i}"))
    http = aiohttp.ClientSession()
    try:
        for r in replicas:
            await r.start()
        for r in replicas:
            assert r.proc is not None
            await r.proc.wait_ready(within=patience(60))
        started = time.monotonic()

        deadline = time.monotonic() + patience(240)
        traffic = Traffic(http, replicas, rng, deadline)
        scenario = Scenario(
            tg,
            slack,
            traffic,
            rng,
            conversations=50,
            events=1000,
            duplicate_share=0.3,
        )
        convs = scenario.convs
        # The reply the kill cuts: a Telegram group's message a quarter of the way in.
        group = next(c for c in scenario.by_name.values() if c.kind == "group")
        slow_m = len([s for s in scenario.plans[group.name] if s[0] == "new"]) // 4
        slow = scenario.token(group, slow_m)
        model.slow.add(slow)

        state: dict[str, Any] = {"shown": {}, "odd": [], "count": 0, "moved": time.monotonic()}

        def refresh() -> None:
            state["shown"], state["odd"] = visible(tg, slack, convs)
            count = sum(len(v) for v in state["shown"].values())
            if count != state["count"]:
                state["count"], state["moved"] = count, time.monotonic()

        async def watch() -> None:  # one scan of the chats for all the waiters
            while True:
                refresh()
                await asyncio.sleep(0.1)

        def stuck() -> bool:
            """No new answer anywhere for a long while: something is lost, stop waiting."""
            return time.monotonic() - state["moved"] > patience(60)

        watcher = asyncio.create_task(watch())

        async def answered(conv: Conversation) -> None:
            try:
                await until(
                    lambda: set(conv.accepted) <= set(state["shown"].get(conv.name, ())) or stuck(),
                    within=deadline - time.monotonic(),
                    what=f"answers in {conv.name}",
                    step=0.1,
                )
                assert set(conv.accepted) <= set(state["shown"].get(conv.name, ())), (
                    "no new answer for a long while"
                )
            except AssertionError as exc:
                missing = set(conv.accepted) - set(state["shown"].get(conv.name, ()))
                raise AssertionError(
                    f"{exc} (seed {seed}, logs in {tmp_path}): {sorted(missing)} never"
                    f" answered; the chat: {chat_calls(tg, slack, conv)}"
                ) from None

        # Held while the kill is prepared: see chaos().
        sending = asyncio.Event()
        sending.set()

        async def converse(conv: Conversation) -> None:
            plan = scenario.plans[conv.name]
            i = 0
            while i < len(plan):
                burst = plan[i : i + rng.randint(1, 4)]
                i += len(burst)
                for kind, m, together in burst:
                    await sending.wait()
                    await scenario.deliver(conv, m, kind, together)
                await answered(conv)

        senders = [asyncio.create_task(converse(c)) for c in scenario.by_name.values()]
        talking = asyncio.gather(*senders)

        async def chaos() -> dict[str, Any]:
            try:
                return await chaos_steps()
            finally:
                sending.set()  # a failed step must not leave the senders held for good

        async def chaos_steps() -> dict[str, Any]:
            report: dict[str, Any] = {}

            # kill -9 the replica streaming the slow reply, once the group shows part of it.
            def streaming() -> Replica | None:
                partial = any(
                    msg.get("text", "").startswith(f"Answer to {slow}")
                    and "done." not in msg.get("text", "")
                    for (cid, _), msg in tg.messages.items()
                    if cid == group.chat_id and msg.get("from", {}).get("id") == tg.bot_id
                )
                if not partial:
                    return None
                for r, ds in zip(replicas, dashscopes, strict=True):
                    if any(last_token(q) == slow for q in ds.requests):
                        return r
                return None

            victim: Replica = await until(
                streaming, within=deadline - time.monotonic(), what="the slow reply streaming"
            )
            assert victim.proc is not None
            # The kill lands while only the slow reply streams: every other message sent
            # so far is answered first. A kill within the milliseconds between a reply's
            # first message appearing and its id being stored would leave that preview
            # behind (Telegram cannot list a chat's messages to find it; README, Limits).
            sending.clear()
            await until(
                lambda: all(
                    set(c.accepted) <= set(state["shown"].get(c.name, ()))
                    for c in scenario.by_name.values()
                    if c is not group
                ),
                within=deadline - time.monotonic(),
                what="the other conversations answered before the kill",
            )
            await settle_to(replicas, 1, what="only the slow reply running")
            assert streaming() is victim, "the slow reply ended before the kill"
            report["killed"] = victim.name
            report["killed_at_events"] = scenario.sent_events
            report["killed_at_s"] = round(time.monotonic() - started, 1)
            report["killed_at"] = round(time.monotonic(), 2)
            await victim.proc.kill()
            sending.set()

            async def restart() -> float:
                proc = await victim.start()
                await proc.wait_ready(within=patience(60))
                return round(time.monotonic() - started, 1)

            restarted = asyncio.create_task(restart())
            background.append(restarted)
            # SIGTERM another replica while it runs turns, with traffic still coming.
            await until(
                lambda: scenario.sent_events >= 0.6 * scenario.total_events or talking.done(),
                within=deadline - time.monotonic(),
                what="half of the events",
            )
            others = [r for r in replicas if r is not victim and r.live]
            busy: Replica | None = None
            while busy is None and not talking.done():
                for r in others:
                    ready = await r.readyz()
                    if ready.get("queue", {}).get("running", 0) > 0:
                        busy = r
                        break
                else:
                    await asyncio.sleep(0.02)
            drained = busy or others[0]
            report["sigterm"] = drained.name
            report["sigterm_running"] = busy is not None
            report["sigterm_at_events"] = scenario.sent_events
            report["sigterm_at_s"] = round(time.monotonic() - started, 1)
            assert drained.proc is not None
            code, took = await drained.proc.stop(signal.SIGTERM)
            drained.gone = True
            report["sigterm_exit"] = code
            report["sigterm_seconds"] = round(took, 1)
            report["restarted_at_s"] = await restarted
            return report

        background: list[asyncio.Task[Any]] = []
        chaos_task = asyncio.create_task(chaos())
        try:
            # A chaos step that fails ends the test at once (the senders would only go on).
            await asyncio.wait({talking, chaos_task}, return_when=asyncio.FIRST_EXCEPTION)
            if chaos_task.done():
                chaos_task.result()
            await talking
            report = await chaos_task
        finally:
            tasks = (*senders, chaos_task, watcher, *background)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        delivered = time.monotonic()
        drained = next(r for r in replicas if r.name == report["sigterm"])
        assert report["sigterm_exit"] == 0, drained.stderr()

        # Every accepted message answered: the stored history says so too (complete).
        history = await settled(pg_database, convs)
        refresh()
        shown, odd = state["shown"], state["odd"]
        problems = {
            c.name: (c.accepted, shown[c.name], chat_calls(tg, slack, c))
            for c in scenario.by_name.values()
            if shown[c.name] != c.accepted
        }
        assert not odd, (
            f"messages that are not one complete answer (seed {seed}, logs in {tmp_path},"
            f" {report}): {odd[:10]}; their chats: "
            + str({n: chat_calls(tg, slack, scenario.by_name[n]) for n, _ in odd[:3]})
        )
        assert not problems, (
            f"answers differ from the messages (seed {seed}, logs in {tmp_path}): {problems}"
        )
        check_history(history, convs)

        # The model was asked in order: every request's history is the conversation's
        # messages up to the one it answers, in accepted order.
        for ds in dashscopes:
            for rec in ds.requests:
                tokens = user_tokens(rec)
                conv = scenario.by_name[tokens[-1][:3]]
                at = conv.accepted.index(tokens[-1])
                assert tokens == conv.accepted[: at + 1], (tokens, conv.accepted)

        # The cut reply: one message in the group, complete, saying it was restarted.
        restarted = [
            m["text"]
            for m in tg.sent(group.chat_id)
            if (found := ANSWER.match(m.get("text", ""))) and found.group(1) == slow
        ]
        assert len(restarted) == 1 and texts.REPLY_RESTARTED in restarted[0], restarted
        assert model.asked[slow] == 2
        stalled = sum(len(r.logs("queue.stalled_recovered")) for r in replicas)
        assert stalled >= 1

        for r in replicas:
            if r.live:
                assert r.proc is not None
                code, _ = await r.proc.stop(signal.SIGTERM)
                assert code == 0, r.stderr()
        events = scenario.sent_events
        print(
            f"\nscale-out: {events} events ({traffic.duplicates} duplicates, "
            f"{traffic.redeliveries} redeliveries, statuses {traffic.statuses}), "
            f"{sum(len(c.accepted) for c in convs.values())} messages, "
            f"{len(convs)} conversations; {report}; start {started - began:.1f} s, "
            f"traffic {delivered - started:.1f} s, total {time.monotonic() - began:.1f} s"
        )
    finally:
        await http.close()
        for r in replicas:
            await r.close()
        save_logs(replicas, tmp_path)
        for ds in dashscopes:
            ds.stop()


# --- 2. long polling: one poller at a time, and a takeover ----------------------------


def polling_report(ready: dict[str, Any]) -> bool | None:
    """``/readyz``'s word on whether this replica polls (None: it does not say)."""
    polling = (ready.get("telegram") or {}).get("polling")
    if isinstance(polling, dict) and isinstance(polling.get("leader"), bool):
        return bool(polling["leader"])
    return None


async def leaders(replicas: list[Replica]) -> list[Replica]:
    """The live replicas that say they poll: ``/readyz`` (``telegram.polling.leader``),
    else the latest of their ``telegram.polling.leader`` / ``.follower`` log lines."""
    out = []
    for r in replicas:
        if not r.live:
            continue
        said = polling_report(await r.readyz())
        if said is None:
            assert r.proc is not None
            marks = [
                e["event"]
                for e in r.proc.logs
                if e.get("event")
                in (
                    "telegram.polling.leader",
                    "telegram.polling.follower",
                    "telegram.polling.stopped",
                )
            ]
            said = bool(marks) and marks[-1] == "telegram.polling.leader"
        if said:
            out.append(r)
    return out


async def test_two_replicas_long_polling_one_poller_and_takeover(
    tmp_path: Path,
    pg_database: str,
    fakes: tuple[FakeTelegram, FakeSlack],
    model: Model,
) -> None:
    """Two replicas in long-polling mode on one PostgreSQL: only one ever has a
    getUpdates open (the fake counts them, and answers a concurrent one with 409 as
    Telegram does); messages injected over time are answered once each, in order. The
    leader is ``kill -9``ed while a reply streams and more messages wait; the other takes
    over polling and answers the rest: nothing lost, nothing doubled."""
    tg, slack = fakes
    began = time.monotonic()
    rng = random.Random(int(time.time()))
    dashscopes = [start_dashscope(model) for _ in range(2)]
    replicas = []
    for name, ds in zip(("a", "b"), dashscopes, strict=True):
        env = clean_env(
            DATABASE_URL=pg_database,
            AUTO_MIGRATE="false",
            DASHSCOPE_API_KEY=ds.api_key,
            DASHSCOPE_BASE_URL=ds.native_base_url,
            DASHSCOPE_MAX_RETRIES="1",
            TELEGRAM_BOT_TOKEN=tg.token,
            TELEGRAM_API_BASE=tg.base_url,
            USER_RATE_LIMIT="0",
            AUDIO_WORKERS="1",
            JOB_STALL_SECONDS=STALL_SECONDS,
            JOB_POLL_INTERVAL="0.5",
        )
        replicas.append(Replica(name, env, tmp_path / name))
    convs: dict[Any, Conversation] = {}
    chats: dict[str, dict[str, Any]] = {}
    for i in range(6):
        user = tg.user(8100 + i, f"Poller{i}")
        conv = Conversation(f"t{i:02d}", "telegram", "private", user["id"], user)
        convs[("telegram", user["id"])] = conv
        chats[conv.name] = tg.private_chat(user)
    by_name = {c.name: c for c in convs.values()}
    counter = itertools.count()

    def inject(n: int, *, slow: bool = False) -> list[str]:
        sent = []
        for k in range(n):
            conv = by_name[rng.choice(sorted(by_name))]
            token = f"{conv.name}m{next(counter):03d}"
            if slow and k == 0:
                model.slow.add(token)
            assert isinstance(conv.user, dict)
            tg.inject(message=tg.message(chat=chats[conv.name], user=conv.user, text=f"hi {token}"))
            conv.accepted.append(token)
            sent.append(token)
        return sent

    def all_answered() -> bool:
        shown, _ = visible(tg, slack, convs)
        return all(set(c.accepted) <= set(shown[c.name]) for c in convs.values())

    async def answered(what: str) -> None:
        try:
            await until(all_answered, within=patience(60), what=what)
        except AssertionError as exc:
            shown, odd = visible(tg, slack, convs)
            missing = {
                c.name: (sorted(set(c.accepted) - set(shown[c.name])), chat_calls(tg, slack, c))
                for c in convs.values()
                if not set(c.accepted) <= set(shown[c.name])
            }
            raise AssertionError(f"{exc} (logs in {tmp_path}): {missing}; odd {odd}") from None

    try:
        for r in replicas:
            await r.start()
        for r in replicas:
            assert r.proc is not None
            await r.proc.wait_ready(within=patience(60))
        await until(lambda: tg.calls_of("getUpdates", ok=None), within=patience(30), what="a poll")
        for _ in range(4):  # over time, one by one and in batches
            inject(rng.randint(1, 4))
            await answered("the answers")
        assert tg.poll_conflicts == 0 and tg.max_concurrent_polls == 1, (
            f"{tg.poll_conflicts} getUpdates refused with 409, up to"
            f" {tg.max_concurrent_polls} open at once"
        )
        polling = await leaders(replicas)
        assert len(polling) == 1, (
            "exactly one replica must say it polls (/readyz telegram.polling.leader, or the"
            f" telegram.polling.leader log line); these do: {[r.name for r in polling]}"
        )
        [leader] = polling
        [follower] = [r for r in replicas if r is not leader]

        # kill -9 the leader while a reply streams (on either replica) and more wait.
        slow = inject(5, slow=True)[0]
        await until(
            lambda: any(
                f"Answer to {slow} w" in str(c.params.get("text", ""))
                for c in tg.calls_of("sendMessageDraft")
            ),
            within=patience(60),
            what="the slow reply streaming",
        )
        # The kill lands while only the slow reply streams (the messages behind it in its
        # conversation wait for it): a kill within the milliseconds between a message
        # appearing and its id being stored would leave it behind (README, Limits).
        slow_conv = by_name[slow[:3]]

        def others_answered() -> bool:
            shown, _ = visible(tg, slack, convs)
            for c in convs.values():
                want = c.accepted[: c.accepted.index(slow)] if c is slow_conv else c.accepted
                if not set(want) <= set(shown[c.name]):
                    return False
            return True

        await until(others_answered, within=patience(60), what="the other answers")
        await settle_to(replicas, 1, what="only the slow reply running")
        assert not any(slow in m["text"] for m in tg.sent(slow_conv.chat_id)), (
            "the slow reply ended before the kill"
        )
        on_leader = any(last_token(q) == slow for q in dashscopes[replicas.index(leader)].requests)
        assert leader.proc is not None
        await leader.proc.kill()
        killed = time.monotonic()
        deadline = killed + patience(10)
        while follower not in await leaders(replicas):
            assert time.monotonic() < deadline, "the follower did not take over polling"
            await asyncio.sleep(0.05)
        takeover = time.monotonic() - killed
        await answered("the answers after the kill")
        for _ in range(3):
            inject(rng.randint(1, 4))
            await answered("later answers")

        assert tg.poll_conflicts == 0 and tg.max_concurrent_polls == 1, (
            tg.poll_conflicts,
            tg.max_concurrent_polls,
        )
        shown, odd = visible(tg, slack, convs)
        assert not odd, odd
        assert {n: shown[n] for n in by_name} == {n: c.accepted for n, c in by_name.items()}
        used = {k: v for k, v in convs.items() if v.accepted}
        check_history(await settled(pg_database, used), used)
        for ds in dashscopes:
            for rec in ds.requests:
                tokens = user_tokens(rec)
                conv = by_name[tokens[-1][:3]]
                at = conv.accepted.index(tokens[-1])
                assert tokens == conv.accepted[: at + 1], (tokens, conv.accepted)
        if on_leader:  # the cut reply was run again, and says so
            [again] = [m for m in tg.sent(by_name[slow[:3]].chat_id) if slow in m["text"]]
            assert texts.REPLY_RESTARTED in again["text"]
        assert follower.proc is not None
        code, _ = await follower.proc.stop(signal.SIGTERM)
        assert code == 0, follower.stderr()
        print(
            f"\npolling: {sum(len(c.accepted) for c in convs.values())} messages, slow reply"
            f" on the leader: {on_leader}, takeover {takeover:.1f} s after the kill,"
            f" total {time.monotonic() - began:.1f} s"
        )
    finally:
        for r in replicas:
            await r.close()
        save_logs(replicas, tmp_path)
        for ds in dashscopes:
            ds.stop()


# --- 3. the in-process queue on SQLite ------------------------------------------------


async def test_sqlite_turn_killed_mid_stream_is_resumed_once(
    tmp_path: Path, fakes: tuple[FakeTelegram, FakeSlack], model: Model
) -> None:
    """One ``voicebot run`` on a SQLite file (the in-process queue): a voice note in a
    group is being answered (the bot edits its message as the reply streams) when the
    process is ``kill -9``ed. Restarted on the same file, the turn is resumed and
    finalized once: the half-streamed message is gone, one complete answer says it was
    restarted, the audio was not downloaded again, and the stored turns are consistent."""
    tg, slack = fakes
    began = time.monotonic()
    ds = start_dashscope(model)
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    env = clean_env(
        DATABASE_URL=url,
        DASHSCOPE_API_KEY=ds.api_key,
        DASHSCOPE_BASE_URL=ds.native_base_url,
        DASHSCOPE_MAX_RETRIES="1",
        TELEGRAM_BOT_TOKEN=tg.token,
        TELEGRAM_API_BASE=tg.base_url,
        TELEGRAM_EDIT_INTERVAL="0.1",
        USER_RATE_LIMIT="0",
        AUDIO_WORKERS="1",
    )
    replica = Replica("solo", env, tmp_path / "solo")
    user = tg.user(8300, "Solo")
    chat = tg.group_chat(-100_830_000, "Solo group")
    conv = Conversation("t00", "telegram", "group", chat["id"], user)
    convs = {("telegram", chat["id"]): conv}
    fmt = synth.FORMATS["voice.ogg"]
    voice = synth.encode(synth.speech_like(2.0, rate=fmt.rate, seed=3), fmt)
    first = "t00m000"
    model.slow.add(first)
    try:
        proc = await replica.start()
        await proc.wait_ready(within=patience(60))
        tg.inject(
            message=tg.voice_message(
                chat=chat, user=user, data=voice, caption=f"@{tg.username} {first}"
            )
        )
        conv.accepted.append(first)

        def partial() -> bool:
            return any(
                m.get("text", "").startswith(f"Answer to {first} w") for m in tg.sent(chat["id"])
            )

        await until(partial, within=patience(60), what="the reply streaming")
        [cut] = tg.sent(chat["id"])
        await proc.kill()

        proc = await replica.start()
        await proc.wait_ready(within=patience(60))

        def finished() -> list[dict[str, Any]]:
            return [
                m
                for m in tg.sent(chat["id"])
                if (found := ANSWER.match(m.get("text", ""))) and found.group(1) == first
            ]

        await until(finished, within=patience(60), what="the resumed answer")
        await settled(url, convs)  # delivered: the final text is in place
        [final] = finished()
        assert texts.REPLY_RESTARTED in final["text"]
        # The half-streamed message was removed, or is itself the final answer.
        assert tg.sent(chat["id"]) == [final]
        if final["message_id"] != cut["message_id"]:
            assert any(
                int(c.params.get("message_id", 0)) == cut["message_id"]
                for c in tg.calls_of("deleteMessage")
            )
        assert model.asked[first] == 2
        assert len(tg.downloads) == 1, tg.downloads  # the stored clips were replayed
        assert ds.requests[-1].audio, "the resumed request carries the stored audio"

        # The conversation goes on from there.
        second = "t00m001"
        tg.inject(message=tg.message(chat=chat, user=user, text=f"@{tg.username} {second}"))
        conv.accepted.append(second)
        await until(
            lambda: visible(tg, slack, convs)[0]["t00"] == conv.accepted,
            within=patience(60),
            what="the follow-up's answer",
        )
        _, odd = visible(tg, slack, convs)
        assert not odd, odd
        assert user_tokens(ds.requests[-1]) == conv.accepted
        code, _ = await proc.stop(signal.SIGTERM)
        assert code == 0, replica.stderr()
        check_history(await settled(url, convs), convs)
        print(f"\nsqlite resume: total {time.monotonic() - began:.1f} s")
    finally:
        await replica.close()
        save_logs([replica], tmp_path)
        ds.stop()
