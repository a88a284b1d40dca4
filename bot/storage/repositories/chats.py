"""Chats, their settings and their conversations (named ones too, for the CLI)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.repositories.unique import insert_or_read
from bot.storage.tables import (
    Chat,
    ChatSettings,
    Conversation,
    Turn,
    TurnRole,
    as_utc,
    utcnow,
)

# --- chats and settings -------------------------------------------------------------------


async def find_chat(session: AsyncSession, *, platform: str, external_id: str) -> Chat | None:
    """The chat row, or ``None`` if the bot never stored anything for it."""
    return (
        await session.execute(
            select(Chat).where(Chat.platform == platform, Chat.external_id == external_id)
        )
    ).scalar_one_or_none()


async def get_or_create_chat(
    session: AsyncSession, *, platform: str, external_id: str, kind: str, title: str | None
) -> Chat:
    """The chat row, created on first use (safe against a concurrent first use)."""
    chat = await find_chat(session, platform=platform, external_id=external_id)
    if chat is not None:
        if title and chat.title != title:
            chat.title = title[:255]
        return chat
    try:
        # A savepoint: losing the insert race must not roll back the caller's work.
        async with session.begin_nested():
            chat = Chat(
                platform=platform, external_id=external_id, kind=kind, title=(title or None)
            )
            session.add(chat)
            await session.flush()
        return chat
    except IntegrityError:
        found = await find_chat(session, platform=platform, external_id=external_id)
        assert found is not None
        return found


async def get_chat_settings(session: AsyncSession, chat_id: int) -> ChatSettings | None:
    return await session.get(ChatSettings, chat_id)


async def get_or_create_chat_settings(session: AsyncSession, chat_id: int) -> ChatSettings:
    row = await session.get(ChatSettings, chat_id)
    if row is None:
        row = ChatSettings(chat_id=chat_id)
        session.add(row)
        await session.flush()
        await session.refresh(row)
    return row


# --- conversations ------------------------------------------------------------------------


async def find_open_conversation(
    session: AsyncSession, *, chat_id: int, thread_key: str
) -> Conversation | None:
    return (
        await session.execute(
            select(Conversation).where(
                Conversation.chat_id == chat_id,
                Conversation.thread_key == thread_key,
                Conversation.closed_at.is_(None),
            )
        )
    ).scalar_one_or_none()


async def open_conversation(
    session: AsyncSession, *, chat_id: int, thread_key: str
) -> Conversation:
    """The open conversation of a chat and thread, started if there is none.

    The partial unique index allows one open conversation per chat and thread; a second
    process losing the race reads the winner's row.
    """
    found = await find_open_conversation(session, chat_id=chat_id, thread_key=thread_key)
    if found is not None:
        return found
    return await insert_or_read(
        session,
        Conversation(chat_id=chat_id, thread_key=thread_key),
        lambda: find_open_conversation(session, chat_id=chat_id, thread_key=thread_key),
    )


async def close_open_conversations(session: AsyncSession, *, chat_id: int, thread_key: str) -> int:
    """Close the open conversation of a chat and thread (``/new``); returns how many."""
    result = await session.execute(
        update(Conversation)
        .where(
            Conversation.chat_id == chat_id,
            Conversation.thread_key == thread_key,
            Conversation.closed_at.is_(None),
        )
        .values(closed_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def get_conversation(
    session: AsyncSession, *, conversation_id: int, chat_id: int
) -> Conversation | None:
    """A conversation by id, only if it belongs to ``chat_id``."""
    conv = await session.get(Conversation, conversation_id)
    if conv is None or conv.chat_id != chat_id:
        return None
    return conv


# --- named conversations (the CLI) --------------------------------------------------------


async def find_named_conversation(
    session: AsyncSession, *, chat_id: int, name: str
) -> Conversation | None:
    return (
        await session.execute(
            select(Conversation).where(Conversation.chat_id == chat_id, Conversation.name == name)
        )
    ).scalar_one_or_none()


async def start_named_conversation(
    session: AsyncSession, *, chat_id: int, name: str
) -> Conversation:
    """Start the conversation ``name`` of a chat, or return the one a concurrent process
    started first: the unique index on (chat, name) fails the loser's insert, which then
    reads the winner's row.

    It is its own thread (``thread_key`` = its name), so it is never the chat's open
    conversation that an unnamed ``voicebot ask`` closes.
    """
    return await insert_or_read(
        session,
        Conversation(chat_id=chat_id, thread_key=name, name=name),
        lambda: find_named_conversation(session, chat_id=chat_id, name=name),
    )


async def named_conversation(session: AsyncSession, *, chat_id: int, name: str) -> Conversation:
    """The conversation ``name`` of a chat, started on first use."""
    found = await find_named_conversation(session, chat_id=chat_id, name=name)
    return found or await start_named_conversation(session, chat_id=chat_id, name=name)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationSummary:
    """One conversation as a listing shows it."""

    id: int
    name: str | None
    turns: int  # messages the user sent in it (each with the bot's reply)
    started_at: dt.datetime
    last_activity: dt.datetime  # the latest message or reply, else when it started


async def conversation_summaries(
    session: AsyncSession, *, chat_id: int, limit: int | None = None
) -> tuple[list[ConversationSummary], int]:
    """A chat's conversations, most recently active first (at most ``limit``), and how
    many it has in all."""
    latest = func.max(func.coalesce(Turn.finished_at, Turn.created_at))
    active = func.coalesce(latest, Conversation.started_at)
    query = (
        select(
            Conversation.id,
            Conversation.name,
            Conversation.started_at,
            func.count(case((Turn.role == TurnRole.USER.value, Turn.id))),
            active,
        )
        .outerjoin(Turn, Turn.conversation_id == Conversation.id)
        .where(Conversation.chat_id == chat_id)
        .group_by(Conversation.id, Conversation.name, Conversation.started_at)
        .order_by(active.desc(), Conversation.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    rows = (await session.execute(query)).all()
    total = await session.scalar(
        select(func.count()).select_from(Conversation).where(Conversation.chat_id == chat_id)
    )
    summaries = [
        ConversationSummary(
            id=conv_id,
            name=name,
            turns=int(turns or 0),
            started_at=as_utc(started),
            last_activity=as_utc(last),
        )
        for conv_id, name, started, turns, last in rows
    ]
    return summaries, int(total or 0)
