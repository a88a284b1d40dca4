"""The engine's chat-level transactions: exactly-once claims, /new, settings, usage,
forget and housekeeping. (One turn's transactions are in :mod:`bot.engine.store`.)

The engine's facade calls these; it opens no SQL session itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.engine.domain import GroupPolicy
from bot.engine.ports import ChatRef
from bot.storage import repositories as repo
from bot.storage.database import Database
from bot.storage.repositories import ForgetCounts, UsageRow
from bot.storage.repositories import console as console_repo
from bot.storage.tables import Chat, ChatSettings, SettingsAudit, utcnow


async def chat_row(session: AsyncSession, chat: ChatRef) -> Chat:
    """The chat's row, created on first sight (inside the caller's transaction)."""
    return await repo.get_or_create_chat(
        session,
        platform=chat.platform,
        external_id=chat.chat_id,
        kind=chat.kind,
        title=chat.title,
    )


async def claim_event(db: Database, *, platform: str, event_id: str) -> bool:
    """``True`` the first time an event id is seen (committed), else ``False``."""
    async with db.sessions() as session, session.begin():
        return await repo.claim_event(session, platform=platform, event_id=event_id)


async def close_conversations(db: Database, chat: ChatRef, thread_key: str | None) -> None:
    """End the open conversation of the chat's thread (the next turn starts a new one)."""
    async with db.sessions() as session, session.begin():
        row = await repo.find_chat(session, platform=chat.platform, external_id=chat.chat_id)
        if row is not None:
            await repo.close_open_conversations(
                session, chat_id=row.id, thread_key=thread_key or ""
            )


async def stored_settings(db: Database, chat: ChatRef) -> ChatSettings | None:
    """The chat's stored settings row (``None``: never changed)."""
    async with db.sessions() as session:
        row = await repo.find_chat(session, platform=chat.platform, external_id=chat.chat_id)
        return await repo.get_chat_settings(session, row.id) if row else None


async def change_settings(
    db: Database, chat: ChatRef, *, changes: dict[str, Any], changed_by: str, via: str = "chat"
) -> ChatSettings:
    """Apply validated ``changes`` (``None`` resets a key) and return the stored row.

    Every value that changes is audited in the same transaction (``settings_audit``:
    who, when, through what, old → new), from a chat command or the console alike."""
    async with db.sessions() as session, session.begin():
        row = await chat_row(session, chat)
        stored = await repo.get_or_create_chat_settings(session, row.id)
        for key, value in changes.items():
            if key == "group_policy" and value is None:
                value = GroupPolicy.MENTION.value
            before = getattr(stored, key)
            setattr(stored, key, value)
            if _shown(before) != _shown(value):
                session.add(
                    SettingsAudit(
                        chat_id=row.id,
                        actor=changed_by[:96],
                        via=via[:16],
                        setting=key[:32],
                        old=_shown(before),
                        new=_shown(value),
                    )
                )
        stored.updated_by = changed_by[:64]
        await session.flush()
        return stored


def _shown(value: Any) -> str | None:
    """A setting's value as the audit keeps it (enum values by name, ``None`` as unset)."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


async def known_chats(db: Database, *, platform: str | None = None) -> list[Chat]:
    """Every chat the bot stored (of one platform)."""
    async with db.sessions() as session:
        return await console_repo.known_chats(session, platform=platform)


async def record_retired_notice(db: Database, *, chat_row_id: int, model: str) -> None:
    """Remember that the chat was told its stored ``model`` was retired (told once)."""
    async with db.sessions() as session, session.begin():
        stored = await repo.get_chat_settings(session, chat_row_id)
        if stored is not None:  # a retired model can only be a stored choice
            stored.retired_notice = model[:64]


async def record_model_availability(
    db: Database, *, chat_row_id: int, model: str, available: bool
) -> None:
    """DashScope said ``model`` does not exist / is not available to the key (remember it
    for the admins' /settings), or a turn on it succeeded (forget that, if it was said)."""
    async with db.sessions() as session, session.begin():
        if available:
            stored = await repo.get_chat_settings(session, chat_row_id)
            if stored is not None and stored.model_unavailable == model[:64]:
                stored.model_unavailable = None
                stored.model_unavailable_at = None
            return
        stored = await repo.get_or_create_chat_settings(session, chat_row_id)
        stored.model_unavailable = model[:64]
        stored.model_unavailable_at = utcnow()


async def usage_rows(db: Database, chat: ChatRef) -> list[UsageRow]:
    async with db.sessions() as session:
        row = await repo.find_chat(session, platform=chat.platform, external_id=chat.chat_id)
        return list(await repo.usage_rows(session, chat_id=row.id)) if row else []


async def forget(db: Database, chat: ChatRef) -> ForgetCounts:
    """Delete the chat's conversations, turns, audio and usage detail (settings stay)."""
    async with db.sessions() as session, session.begin():
        row = await repo.find_chat(session, platform=chat.platform, external_id=chat.chat_id)
        return await repo.forget_chat(session, chat_id=row.id) if row else ForgetCounts()


async def stored_recording(
    db: Database, *, chat_row_id: int, source_key: str
) -> repo.StoredRecording | None:
    """The clips this chat already stored for a recording (bytes included), if any."""
    async with db.sessions() as session:
        return await repo.find_recording(session, chat_id=chat_row_id, source_key=source_key)


async def prune_events(db: Database, *, before: dt.datetime) -> int:
    async with db.sessions.begin() as session:
        return await repo.prune_events(session, before=before)


async def recover_interrupted(db: Database, *, before: dt.datetime) -> int:
    async with db.sessions.begin() as session:
        return await repo.fail_interrupted_turns(session, before=before)
