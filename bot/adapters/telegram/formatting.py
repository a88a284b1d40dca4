"""The model's Markdown as Telegram text + entities, cut into messages of ≤ 4096 units.

Entities instead of ``parse_mode``: a half-generated reply often has unclosed Markdown,
and with ``parse_mode`` Telegram rejects the whole edit ("can't parse entities").
telegramify-markdown renders whatever prefix it gets into plain text plus entities with
UTF-16 offsets, which is what the Bot API counts in.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
import telegramify_markdown
from aiogram.types import MessageEntity

log = structlog.get_logger(__name__)

# Bot API: message text is 1-4096 characters after entity parsing (UTF-16 code units).
MAX_MESSAGE_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class Chunk:
    """One Telegram message worth of text; ``entities`` is ``None`` for plain text."""

    text: str
    entities: tuple[MessageEntity, ...] | None

    def plain(self) -> Chunk:
        return Chunk(self.text, None)

    def entity_list(self) -> list[MessageEntity] | None:
        return list(self.entities) if self.entities else None


def render(markdown: str, *, plain: bool = False, limit: int = MAX_MESSAGE_LENGTH) -> list[Chunk]:
    """Render ``markdown`` into message chunks (none if it renders to whitespace only).

    ``plain=True`` keeps the rendered text but drops the entities: the fallback when
    Telegram refuses our entities. If the converter itself fails, the raw text is sent.
    """
    try:
        text, entities = telegramify_markdown.convert(markdown)
    except Exception as exc:  # a converter bug must not lose the reply
        log.warning("telegram.markdown_failed", error=type(exc).__name__)
        text, entities = markdown, []
    if plain:
        entities = []
    parts = telegramify_markdown.split_entities(text, entities, limit)
    return [
        Chunk(
            part,
            None if plain else tuple(MessageEntity(**e.to_dict()) for e in ents),
        )
        for part, ents in parts
    ]


def render_notice(text: str) -> list[Chunk]:
    """A short text of ours (errors, notices) as plain chunks."""
    parts = telegramify_markdown.split_entities(text, [], MAX_MESSAGE_LENGTH)
    return [Chunk(part, None) for part, _ in parts]
