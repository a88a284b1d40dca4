"""Engine test harness: the real engine, audio pipeline and DashScope client, the fake
DashScope server over HTTP, and a migrated database on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from bot.bootstrap import build_core
from bot.config import Settings
from bot.core import Core
from bot.engine.ports import AudioSource, ChatRef, FinalReply, IncomingTurn, TurnOutcome
from bot.engine.service import Engine
from bot.errors import BotError
from bot.storage.database import Database
from bot.storage.tables import AudioClip, Turn
from tests.audio import synth
from tests.fakes.dashscope import FakeDashScope


@functools.cache
def long_voice(seconds: float, seed: int = 0) -> bytes:
    """Speech-like audio of ``seconds`` as a 16 kHz WAV: minutes of it without an encoder
    (for tests about lengths and budgets, where the container is beside the point)."""
    x = synth.speech_like(seconds, rate=16_000, seed=seed)[0]
    pcm = (x * 32767).clip(-32768, 32767).astype(np.int16)
    return synth.wav_bytes(pcm, rate=16_000, width=2)


@functools.lru_cache(maxsize=32)
def voice(seconds: float, seed: int = 0) -> bytes:
    """A speech-like Telegram voice note (Ogg/Opus) of ``seconds``, generated once."""
    fmt = synth.FORMATS["voice.ogg"]
    return synth.encode(synth.speech_like(seconds, rate=fmt.rate, seed=seed), fmt)


@dataclass
class Audio:
    """An :class:`AudioSource` over bytes, counting downloads."""

    data: bytes
    key: str | None = None
    size: int | None = None
    error: BaseException | None = None
    fetches: int = 0

    @property
    def declared_size(self) -> int | None:
        return self.size

    @property
    def mime_type(self) -> str | None:
        return "audio/ogg"

    @property
    def file_name(self) -> str | None:
        return "voice.ogg"

    @property
    def source_key(self) -> str | None:
        return self.key

    async def fetch(self) -> bytes:
        self.fetches += 1
        if self.error is not None:
            raise self.error
        return self.data


@dataclass
class Sink:
    """A recording :class:`ReplySink`: what a user of the platform would see."""

    fail_on_update: int | None = None  # raise on the n-th update (1-based)
    fail_on_start: bool = False
    on_update: Callable[[str], Any] | None = None
    calls: list[str] = field(default_factory=list)
    updates: list[tuple[str, str]] = field(default_factory=list)
    final: FinalReply | None = None
    error: BotError | None = None
    partial: str | None = None
    finish_error: BotError | None = None  # the platform never confirms the final text
    late: list[tuple[str, str | None]] = field(default_factory=list)
    follow_ups: list[str] = field(default_factory=list)  # posted after the reply
    stale: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    on_visible: Callable[[list[str]], Awaitable[None]] | None = None
    voices: list[tuple[bytes, float]] = field(default_factory=list)  # voice notes sent
    voice_error: BotError | None = None  # the platform never confirms the voice note

    async def start(self) -> None:
        self.calls.append("start")
        if self.fail_on_start:
            raise ConnectionError("platform down")

    async def update(self, text: str, delta: str) -> None:
        self.calls.append("update")
        self.updates.append((text, delta))
        if self.on_update is not None:
            self.on_update(text)
        if self.fail_on_update is not None and len(self.updates) >= self.fail_on_update:
            raise ConnectionError("platform down")

    async def finish(self, reply: FinalReply) -> list[str]:
        self.calls.append("finish")
        self.final = reply
        if self.finish_error is not None:
            raise self.finish_error
        return ["msg-1"]

    async def fail(self, error: BotError, partial_text: str) -> list[str]:
        self.calls.append("fail")
        self.error = error
        self.partial = partial_text
        return ["err-1"]

    def track(self, on_visible: Callable[[list[str]], Awaitable[None]]) -> None:
        self.on_visible = on_visible

    def interrupt(self) -> None:
        self.calls.append("interrupt")

    async def remove(self, message_ids: Sequence[str]) -> None:
        self.calls.append("remove")
        self.removed.extend(message_ids)

    async def deliver_late(
        self, text: str, *, reply_to: str | None, stale: Sequence[str] = ()
    ) -> list[str]:
        self.calls.append("deliver_late")
        self.stale.extend(stale)
        self.late.append((text, reply_to))
        if self.finish_error is not None:
            raise self.finish_error
        return [f"late-{len(self.late)}"]

    async def follow_up(self, message: str | BotError) -> list[str]:
        self.calls.append("follow_up")
        text = message.user_message if isinstance(message, BotError) else message
        self.follow_ups.append(text)
        return [f"follow-{len(self.follow_ups)}"]

    async def voice(self, ogg: bytes, seconds: float) -> str:
        self.calls.append("voice")
        if self.voice_error is not None:
            raise self.voice_error
        self.voices.append((ogg, seconds))
        return f"voice-{len(self.voices)}"

    @property
    def shown(self) -> str:
        """The final message body the user sees."""
        if self.final is not None:
            return self.final.render()
        assert self.error is not None
        return self.error.user_message


PRIVATE = ChatRef(platform="telegram", chat_id="100", kind="private", private=True)
GROUP = ChatRef(platform="telegram", chat_id="-200", kind="supergroup", title="Team")


def make_turn(
    *,
    text: str | None = None,
    audio: AudioSource | None = None,
    chat: ChatRef = PRIVATE,
    user_id: str = "7",
    thread_key: str | None = None,
    **kw: Any,
) -> IncomingTurn:
    return IncomingTurn(
        chat=chat, user_id=user_id, thread_key=thread_key, text=text, audio=audio, **kw
    )


class Harness:
    """The engine under test plus helpers to inspect what was stored and sent."""

    def __init__(self, *, engine: Engine, fake: FakeDashScope, db: Database) -> None:
        self.engine = engine
        self.fake = fake
        self.db = db

    async def turn(self, sink: Sink | None = None, **kw: Any) -> tuple[TurnOutcome, Sink]:
        sink = sink or Sink()
        outcome = await self.engine.handle_turn(make_turn(**kw), sink)
        return outcome, sink

    async def turns(self, conversation_id: int) -> list[Turn]:
        async with self.db.sessions() as s:
            rows = await s.execute(
                select(Turn).where(Turn.conversation_id == conversation_id).order_by(Turn.seq)
            )
            return list(rows.scalars().all())

    async def all_turns(self) -> list[Turn]:
        async with self.db.sessions() as s:
            return list((await s.execute(select(Turn).order_by(Turn.id))).scalars().all())

    async def clips(self) -> list[AudioClip]:
        async with self.db.sessions() as s:
            return list((await s.execute(select(AudioClip).order_by(AudioClip.id))).scalars())


def make_settings(fake: FakeDashScope, db: Database, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": db.url,
        "DASHSCOPE_API_KEY": fake.api_key,
        "DASHSCOPE_BASE_URL": fake.native_base_url,
        "DASHSCOPE_MAX_RETRIES": 0,
        "DASHSCOPE_FIRST_BYTE_TIMEOUT": 5.0,
        "DASHSCOPE_IDLE_TIMEOUT": 5.0,
        "USER_RATE_LIMIT": 0,
        "AUDIO_WORKERS": 2,
        "ALLOWED_USERS": "",
        "ALLOWED_CHATS": "",
        "BOT_ADMINS": "",
        # Voice replies of text-only models (TTS) only where a test asks for them:
        # they add TTS requests and voice notes to every voice message in a private chat.
        "TTS_MODEL": "off",
    }
    values.update(overrides)
    return Settings.load(**values)


EngineFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def engine_factory(
    dashscope_fake: FakeDashScope, db: Database
) -> AsyncIterator[EngineFactory]:
    """Build engines through the composition root (``build_core``), on the test's database
    and fake server; settings are overridable."""
    cores: list[Core] = []

    async def build(**overrides: Any) -> Harness:
        core = await build_core(make_settings(dashscope_fake, db, **overrides), migrate=False)
        cores.append(core)
        return Harness(engine=core.engine, fake=dashscope_fake, db=db)

    yield build
    for core in cores:
        await core.aclose()


@pytest.fixture
async def h(engine_factory: EngineFactory) -> Harness:
    """The default engine: every model allowed, turbo-latest by default."""
    return await engine_factory()
