"""SQL tables (SQLAlchemy 2 declarative, typed with ``Mapped``).

The same schema runs on SQLite (default) and PostgreSQL (production); Alembic migrations in
``bot/migrations/`` must match it exactly (a test compares them on both databases).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.engine.domain import GroupPolicy, TurnRole, TurnStatus

__all__ = [
    "AudioClip",
    "Base",
    "Chat",
    "ChatSettings",
    "ClipTranscript",
    "Conversation",
    "GroupPolicy",
    "ProcessedEvent",
    "QueuedJob",
    "Turn",
    "TurnRole",
    "TurnStatus",
    "UsageEntry",
    "utcnow",
]

# Stable constraint names: Alembic can then compare and drop them on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT ids on PostgreSQL, but INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime | str) -> dt.datetime:
    """A stored time as an aware UTC datetime: SQLite keeps no time zone (every stored
    time is UTC) and may hand an aggregate back as its text; PostgreSQL's are aware."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Chat(Base):
    """A place where people talk to the bot: a Telegram chat or a Slack channel/DM."""

    __tablename__ = "chats"
    __table_args__ = (UniqueConstraint("platform", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # private, group, supergroup, channel, im…
    title: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    settings: Mapped[ChatSettings | None] = relationship(
        back_populates="chat", cascade="all, delete-orphan", passive_deletes=True
    )


class ChatSettings(Base):
    """Per-chat choices; ``None`` means the configured default."""

    __tablename__ = "chat_settings"

    chat_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str | None] = mapped_column(String(64))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    temperature: Mapped[float | None] = mapped_column(Float)
    top_p: Mapped[float | None] = mapped_column(Float)
    top_k: Mapped[int | None] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    asr_language: Mapped[str | None] = mapped_column(String(8))
    asr_enable_itn: Mapped[bool | None] = mapped_column(Boolean)
    group_policy: Mapped[str] = mapped_column(String(16), server_default=GroupPolicy.MENTION.value)
    # A TranscriptMode value (button, always, off); ``None``: the default (button).
    transcript: Mapped[str | None] = mapped_column(String(8))
    language: Mapped[str | None] = mapped_column(String(8))  # "en", "zh"; None: auto
    # A VoiceReply value (off, auto, always); ``None``: the platform's default.
    voice_reply: Mapped[str | None] = mapped_column(String(8))
    voice: Mapped[str | None] = mapped_column(String(64))  # a speaker of the model; None: default
    # The retired model this chat was last told about (so it is told once).
    retired_notice: Mapped[str | None] = mapped_column(String(64))
    # The chat's model DashScope last said does not exist or is not available to the key
    # (shown to admins in /settings until a turn on it succeeds), and when.
    model_unavailable: Mapped[str | None] = mapped_column(String(64))
    model_unavailable_at: Mapped[dt.datetime | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))

    chat: Mapped[Chat] = relationship(back_populates="settings")


class Conversation(Base):
    """A thread of turns in a chat; per topic/thread where the platform has them."""

    __tablename__ = "conversations"
    __table_args__ = (
        # Hot path: the latest open conversation of a chat (and thread).
        Index("ix_conversations_open", "chat_id", "thread_key", "closed_at"),
        # At most one open conversation per chat and thread, even under concurrent starts.
        Index(
            "uq_conversations_one_open",
            "chat_id",
            "thread_key",
            unique=True,
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
        # A name means one conversation of its chat, even when two processes start it at
        # once (``voicebot ask --conversation standup``): the loser's insert fails here.
        Index(
            "uq_conversations_name",
            "chat_id",
            "name",
            unique=True,
            sqlite_where=text("name IS NOT NULL"),
            postgresql_where=text("name IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigId, ForeignKey("chats.id", ondelete="CASCADE"))
    thread_key: Mapped[str] = mapped_column(String(128), default="")
    started_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    closed_at: Mapped[dt.datetime | None] = mapped_column()
    # The name the CLI continues it by; ``None`` for every platform conversation.
    name: Mapped[str | None] = mapped_column(String(64))


class Turn(Base):
    """One message of a conversation: what the user sent, or the model's reply."""

    __tablename__ = "turns"
    __table_args__ = (
        # Hot path: the turns of a conversation in order.
        UniqueConstraint("conversation_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str | None] = mapped_column(String(24))  # voice_chat, analysis, followup…
    text: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default=TurnStatus.PENDING.value)
    user_external_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(64))
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    audio_tokens: Mapped[int | None] = mapped_column(Integer)
    audio_seconds_total: Mapped[float | None] = mapped_column(Float)
    audio_seconds_sent: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[dt.datetime | None] = mapped_column()
    first_token_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    source_message_id: Mapped[str | None] = mapped_column(String(64))
    reply_message_ids: Mapped[list[str] | None] = mapped_column(JSON)
    # The spoken reply sent after the text (bot.voice): the platform's id of the voice note
    # and its duration; set once, so a resumed turn never sends it again.
    voice_note_id: Mapped[str | None] = mapped_column(String(128))
    voice_seconds: Mapped[float | None] = mapped_column(Float)

    clips: Mapped[list[AudioClip]] = relationship(
        order_by="AudioClip.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )


class AudioClip(Base):
    """The converted audio a user turn sent to the model, kept so history can be replayed."""

    __tablename__ = "audio_clips"
    __table_args__ = (
        UniqueConstraint("turn_id", "position"),
        Index("ix_audio_clips_source_key", "source_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    turn_id: Mapped[int] = mapped_column(BigId, ForeignKey("turns.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(8))
    sample_rate: Mapped[int] = mapped_column(Integer)
    start_seconds: Mapped[float] = mapped_column(Float)
    duration: Mapped[float] = mapped_column(Float)
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    # Where the recording came from (e.g. "telegram:<file_unique_id>"), so the same audio
    # analysed again is neither downloaded nor converted twice.
    source_key: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)


class ClipTranscript(Base):
    """The transcript of one stored clip (the Transcript button): made once, then reused.

    One row per clip, whoever asked first: two presses at once (or two replicas) collide
    on the unique clip id and the loser reads the winner's row.
    """

    __tablename__ = "clip_transcripts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clip_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("audio_clips.id", ondelete="CASCADE"), unique=True
    )
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))  # as the model detected it
    model: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class ProcessedEvent(Base):
    """Platform events already handled, for exactly-once processing across restarts."""

    __tablename__ = "processed_events"
    __table_args__ = (UniqueConstraint("platform", "event_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(128))
    processed_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), index=True)


class UsageEntry(Base):
    """One line of the usage ledger: what one turn cost."""

    __tablename__ = "usage_ledger"
    __table_args__ = (Index("ix_usage_ledger_chat_day_model", "chat_id", "day", "model"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigId, ForeignKey("chats.id", ondelete="CASCADE"))
    turn_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("turns.id", ondelete="SET NULL"))
    user_external_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64))
    day: Mapped[dt.date] = mapped_column(Date)
    audio_seconds: Mapped[float] = mapped_column(Float, server_default="0")
    input_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    audio_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    # Seconds of speech delivered as a voice note (the turn's row; NULL: none).
    speech_seconds: Mapped[float | None] = mapped_column(Float)
    # Audio output tokens of a spoken (Qwen-Omni) reply; part of output_tokens.
    speech_tokens: Mapped[int | None] = mapped_column(Integer)
    # Characters a TTS model read aloud (a line of its own, model = the TTS model; NULL:
    # a model turn's line).
    tts_characters: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class QueuedJob(Base):
    """A turn-queue job accepted and not ended yet (the in-process queue, ``bot.queue``).

    The row is deleted when its job ends (done or given up): at start-up, what is left
    is exactly what a dead process left unfinished.
    """

    __tablename__ = "queued_jobs"
    # Ids never reused on SQLite either (rows are deleted): they order jobs and name them in logs.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    handler: Mapped[str] = mapped_column(String(32))
    lock: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Runs started so far, counted before each run: a run that crashed the process counts.
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    accepted_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[dt.datetime | None] = mapped_column()


class ConsoleKey(Base):
    """The admin console's signing key: made once, shared by every replica (#16).

    Sign-in links and session cookies are signed with it, so no operator secret is needed
    for the console; a key leaked with a database dump is replaced by deleting the row
    (every session then ends).
    """

    __tablename__ = "console_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class ConsoleLink(Base):
    """A one-time sign-in link sent to an admin: used once, within its validity."""

    __tablename__ = "console_links"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(64))
    # The chats (``chats.id``) a chat admin may manage; NULL: every chat (BOT_ADMINS).
    chat_ids: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column()


class SettingsAudit(Base):
    """One changed setting of a chat: who, when, through what, old → new (#16).

    Written in the transaction that changes the setting, from a chat command or the
    admin console alike.
    """

    __tablename__ = "settings_audit"
    __table_args__ = (Index("ix_settings_audit_chat_at", "chat_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigId, ForeignKey("chats.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(96))  # "telegram:42"
    via: Mapped[str] = mapped_column(String(16))  # "chat" | "console"
    setting: Mapped[str] = mapped_column(String(32))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
