"""What the admin console reads and writes (#16): counts, durations, statuses and
settings only — never message text, transcripts or audio."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.engine.domain import TurnRole, TurnStatus
from bot.storage.tables import (
    Chat,
    ChatSettings,
    ConsoleKey,
    ConsoleLink,
    Conversation,
    SettingsAudit,
    Turn,
    UsageEntry,
    as_utc,
    utcnow,
)

# --- the signing key and the links ----------------------------------------------------


async def signing_key(session: AsyncSession) -> str:
    """The console's key, made on first use; replicas racing to make it agree on one."""
    row = await session.get(ConsoleKey, 1)
    if row is not None:
        return row.secret
    try:
        async with session.begin_nested():
            session.add(ConsoleKey(id=1, secret=secrets.token_urlsafe(48)))
    except IntegrityError:
        pass  # another replica made it first: use theirs
    row = await session.get(ConsoleKey, 1, populate_existing=True)
    assert row is not None
    return row.secret


async def add_link(
    session: AsyncSession,
    *,
    nonce: str,
    platform: str,
    user_id: str,
    chat_ids: list[int] | None,
    expires_at: dt.datetime,
) -> None:
    session.add(
        ConsoleLink(
            nonce=nonce,
            platform=platform,
            user_id=user_id,
            chat_ids=None if chat_ids is None else [str(i) for i in chat_ids],
            expires_at=expires_at,
        )
    )


async def use_link(session: AsyncSession, nonce: str) -> ConsoleLink | None:
    """Mark the link used, if it is unused and valid now: the link, or ``None`` (at most
    one caller gets it, on any replica: one conditional UPDATE)."""
    now = utcnow()
    result = await session.execute(
        update(ConsoleLink)
        .where(
            ConsoleLink.nonce == nonce,
            ConsoleLink.used_at.is_(None),
            ConsoleLink.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    return await session.get(ConsoleLink, nonce)


# --- chats --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRow:
    """One chat in the console's list."""

    id: int
    platform: str
    external_id: str
    kind: str
    title: str | None
    model: str | None  # the chat's choice (None: the default)
    last_activity: dt.datetime | None
    turns_week: int
    audio_seconds_week: float


async def known_chats(session: AsyncSession, *, platform: str | None = None) -> list[Chat]:
    """Every chat the bot knows (of one platform)."""
    query = select(Chat).order_by(Chat.id)
    if platform is not None:
        query = query.where(Chat.platform == platform)
    return list((await session.scalars(query)).all())


async def chat_rows(
    session: AsyncSession, *, ids: list[int] | None, since: dt.datetime
) -> list[ChatRow]:
    """The chats (``ids``; ``None``: all) with their model, last activity, and their
    user turns and audio seconds since ``since``."""
    last = (
        select(Conversation.chat_id, func.max(Turn.created_at).label("last"))
        .join(Turn, Turn.conversation_id == Conversation.id)
        .group_by(Conversation.chat_id)
        .subquery()
    )
    week = (
        select(
            Conversation.chat_id,
            func.count(Turn.id).label("turns"),
            func.coalesce(func.sum(Turn.audio_seconds_sent), 0.0).label("audio"),
        )
        .join(Turn, Turn.conversation_id == Conversation.id)
        .where(Turn.role == TurnRole.USER.value, Turn.created_at >= since)
        .group_by(Conversation.chat_id)
        .subquery()
    )
    query = (
        select(Chat, ChatSettings.model, last.c.last, week.c.turns, week.c.audio)
        .outerjoin(ChatSettings, ChatSettings.chat_id == Chat.id)
        .outerjoin(last, last.c.chat_id == Chat.id)
        .outerjoin(week, week.c.chat_id == Chat.id)
        .order_by(Chat.id)
    )
    if ids is not None:
        query = query.where(Chat.id.in_(ids))
    rows = []
    for chat, model, last_at, turns, audio in (await session.execute(query)).all():
        rows.append(
            ChatRow(
                id=chat.id,
                platform=chat.platform,
                external_id=chat.external_id,
                kind=chat.kind,
                title=chat.title,
                model=model,
                last_activity=_aware(last_at),
                turns_week=int(turns or 0),
                audio_seconds_week=float(audio or 0.0),
            )
        )
    return rows


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationRow:
    """One conversation of a chat: when, and its turns by status."""

    id: int
    thread_key: str
    name: str | None
    started_at: dt.datetime | None
    closed_at: dt.datetime | None
    statuses: dict[str, int]


async def conversation_rows(
    session: AsyncSession, chat_id: int, *, limit: int = 50
) -> list[ConversationRow]:
    """The chat's newest conversations with their assistant turns counted by status."""
    convs = (
        await session.scalars(
            select(Conversation)
            .where(Conversation.chat_id == chat_id)
            .order_by(Conversation.id.desc())
            .limit(limit)
        )
    ).all()
    counts: dict[int, dict[str, int]] = {c.id: {} for c in convs}
    if convs:
        for conv_id, status, n in (
            await session.execute(
                select(Turn.conversation_id, Turn.status, func.count(Turn.id))
                .where(
                    Turn.conversation_id.in_(list(counts)),
                    Turn.role == TurnRole.ASSISTANT.value,
                )
                .group_by(Turn.conversation_id, Turn.status)
            )
        ).all():
            counts[conv_id][status] = int(n)
    return [
        ConversationRow(
            id=c.id,
            thread_key=c.thread_key,
            name=c.name,
            started_at=_aware(c.started_at),
            closed_at=_aware(c.closed_at),
            statuses=counts[c.id],
        )
        for c in convs
    ]


async def audit_rows(
    session: AsyncSession, chat_id: int, *, limit: int = 100
) -> list[SettingsAudit]:
    """The chat's settings changes, newest first."""
    return list(
        (
            await session.scalars(
                select(SettingsAudit)
                .where(SettingsAudit.chat_id == chat_id)
                .order_by(SettingsAudit.at.desc(), SettingsAudit.id.desc())
                .limit(limit)
            )
        ).all()
    )


# --- usage and health ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageLine:
    """Usage summed over one key (a day, a model or a chat)."""

    key: str
    turns: int
    input_tokens: int
    output_tokens: int
    audio_seconds_in: float
    audio_seconds_out: float
    failures: int


async def usage_lines(
    session: AsyncSession, *, by: str, since: dt.date, ids: list[int] | None
) -> list[UsageLine]:
    """Usage since ``since`` by ``day``, ``model`` or ``chat`` (``ids``: those chats only),
    with the failed turns of the same key."""
    column = {
        "day": UsageEntry.day,
        "model": UsageEntry.model,
        "chat": UsageEntry.chat_id,
    }[by]
    query = (
        select(
            column,
            func.count(UsageEntry.turn_id),
            func.coalesce(func.sum(UsageEntry.input_tokens), 0),
            func.coalesce(func.sum(UsageEntry.output_tokens), 0),
            func.coalesce(func.sum(UsageEntry.audio_seconds), 0.0),
            func.coalesce(func.sum(UsageEntry.speech_seconds), 0.0),
        )
        .where(UsageEntry.day >= since)
        .group_by(column)
        .order_by(column)
    )
    if ids is not None:
        query = query.where(UsageEntry.chat_id.in_(ids))
    failed = await _failures(session, by=by, since=since, ids=ids)
    lines = [
        UsageLine(
            key=str(key),
            turns=int(turns),
            input_tokens=int(inp),
            output_tokens=int(out),
            audio_seconds_in=float(a_in),
            audio_seconds_out=float(a_out or 0.0),
            failures=failed.pop(str(key), 0),
        )
        for key, turns, inp, out, a_in, a_out in (await session.execute(query)).all()
    ]
    lines += [
        UsageLine(
            key=key,
            turns=0,
            input_tokens=0,
            output_tokens=0,
            audio_seconds_in=0.0,
            audio_seconds_out=0.0,
            failures=n,
        )
        for key, n in failed.items()
    ]
    return sorted(lines, key=lambda line: line.key)


async def _failures(
    session: AsyncSession, *, by: str, since: dt.date, ids: list[int] | None
) -> dict[str, int]:
    """Failed assistant turns since ``since`` by day, model or chat."""
    start = dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC)
    query = (
        select(Conversation.chat_id, Turn.model, Turn.created_at)
        .join(Conversation, Conversation.id == Turn.conversation_id)
        .where(
            Turn.role == TurnRole.ASSISTANT.value,
            Turn.status == TurnStatus.FAILED.value,
            Turn.created_at >= start,
        )
    )
    if ids is not None:
        query = query.where(Conversation.chat_id.in_(ids))
    out: dict[str, int] = {}
    for chat_id, model, created in (await session.execute(query)).all():
        key = {
            "day": (_aware(created) or start).date().isoformat(),
            "model": str(model or "?"),
            "chat": str(chat_id),
        }[by]
        out[key] = out.get(key, 0) + 1
    return out


async def failures_by_kind(
    session: AsyncSession, *, since: dt.datetime, ids: list[int] | None
) -> list[tuple[str, str, int]]:
    """(model, error code, count) of failed turns since ``since``: codes only."""
    query = (
        select(Turn.model, Turn.error_code, func.count(Turn.id))
        .join(Conversation, Conversation.id == Turn.conversation_id)
        .where(
            Turn.role == TurnRole.ASSISTANT.value,
            Turn.status == TurnStatus.FAILED.value,
            Turn.created_at >= since,
        )
        .group_by(Turn.model, Turn.error_code)
        .order_by(func.count(Turn.id).desc())
    )
    if ids is not None:
        query = query.where(Conversation.chat_id.in_(ids))
    return [
        (str(model or "?"), str(code or "unknown"), int(n))
        for model, code, n in (await session.execute(query)).all()
    ]


async def turns_by_model(
    session: AsyncSession, *, since: dt.datetime, ids: list[int] | None
) -> list[tuple[str, int, int]]:
    """(model, finished assistant turns, failed ones) since ``since``: the error rates."""
    ended = (TurnStatus.COMPLETE.value, TurnStatus.UNDELIVERED.value, TurnStatus.FAILED.value)
    query = (
        select(
            Turn.model,
            func.count(Turn.id),
            func.sum(case((Turn.status == TurnStatus.FAILED.value, 1), else_=0)),
        )
        .join(Conversation, Conversation.id == Turn.conversation_id)
        .where(
            Turn.role == TurnRole.ASSISTANT.value,
            Turn.status.in_(ended),
            Turn.created_at >= since,
        )
        .group_by(Turn.model)
        .order_by(Turn.model)
    )
    if ids is not None:
        query = query.where(Conversation.chat_id.in_(ids))
    return [
        (str(model or "?"), int(n), int(failed or 0))
        for model, n, failed in (await session.execute(query)).all()
    ]


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else as_utc(value)
