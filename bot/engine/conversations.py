"""Conversations the CLI refers to: by id, or by a name it gives them, and its listing.

``voicebot ask --conversation standup`` starts the conversation "standup" the first time
and continues it after; ``--conversation 12`` continues conversation 12. A value made only
of digits is an id, anything else a name (:func:`parse_reference`). Names are unique per
chat (the CLI's chat is one chat), also when two processes start the same name at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot import texts
from bot.engine.chat_store import chat_row
from bot.engine.ports import ChatRef
from bot.errors import ConversationNotFound, InvalidConversationName
from bot.i18n import Msg
from bot.storage import repositories as repo
from bot.storage.database import Database
from bot.storage.repositories import ConversationSummary

__all__ = [
    "NAME_MAX",
    "ConversationHandle",
    "ConversationListing",
    "ConversationSummary",
    "find_or_start",
    "listing",
    "parse_reference",
]

NAME_MAX = 64  # the column's width
# Letters and digits of any script, then also ".", "_" and "-": a name never starts with
# "-" (it would read as an option) and needs no quoting in a shell.
_NAME = re.compile(r"[^\W_][\w.-]*")
_ID = re.compile(r"[0-9]+")
# Ids are BIGINT on PostgreSQL: a larger number cannot name a conversation.
_MAX_ID = 2**63 - 1


def parse_reference(raw: str) -> int | str:
    """``--conversation``'s value: a number is an id, anything else a name (checked).

    Surrounding spaces are dropped. Raises :class:`InvalidConversationName` for an empty
    or too long name, or one with other characters.
    """
    value = raw.strip()
    if _ID.fullmatch(value):
        return int(value)
    if not value:
        raise InvalidConversationName("empty", user_message=texts.CONVERSATION_NAME_EMPTY)
    if len(value) > NAME_MAX:
        raise InvalidConversationName(
            f"{len(value)} characters",
            user_message=Msg(texts.CONVERSATION_NAME_TOO_LONG, limit=NAME_MAX),
        )
    if not _NAME.fullmatch(value):
        raise InvalidConversationName("characters")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationHandle:
    """A stored conversation: its id, and its name if it has one."""

    id: int
    name: str | None = None

    @property
    def reference(self) -> str:
        """What to pass to ``--conversation`` to continue it (the name, if any)."""
        return self.name or str(self.id)


async def find_or_start(db: Database, chat: ChatRef, reference: int | str) -> ConversationHandle:
    """The conversation ``reference`` names in ``chat``: an id must exist there (else
    :class:`ConversationNotFound`); a name is started on first use. Committed."""
    async with db.sessions() as session, session.begin():
        row = await chat_row(session, chat)
        if isinstance(reference, str):
            conv = await repo.named_conversation(session, chat_id=row.id, name=reference)
        else:
            found = (
                await repo.get_conversation(session, conversation_id=reference, chat_id=row.id)
                if reference <= _MAX_ID
                else None
            )
            if found is None:
                raise ConversationNotFound(
                    f"conversation {reference}",
                    user_message=Msg(texts.CONVERSATION_ID_NOT_FOUND, id=reference),
                )
            conv = found
        return ConversationHandle(id=conv.id, name=conv.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationListing:
    """Some of a chat's conversations, most recently active first, and how many exist."""

    conversations: tuple[ConversationSummary, ...]
    total: int

    @property
    def more(self) -> int:
        """How many older ones were left out."""
        return self.total - len(self.conversations)


async def listing(db: Database, chat: ChatRef, *, limit: int | None = None) -> ConversationListing:
    """``chat``'s conversations (at most ``limit``, ``None`` for all); nothing is created."""
    async with db.sessions() as session:
        row = await repo.find_chat(session, platform=chat.platform, external_id=chat.chat_id)
        if row is None:
            return ConversationListing(conversations=(), total=0)
        found, total = await repo.conversation_summaries(session, chat_id=row.id, limit=limit)
        return ConversationListing(conversations=tuple(found), total=total)
