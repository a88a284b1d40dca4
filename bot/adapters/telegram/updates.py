"""Translation of Telegram messages into engine terms, and who a message is addressed to.

Group rules (privacy mode on, the default): the bot answers a voice note that replies to
it or whose caption mentions it; text that mentions it or replies to it; a mention in
reply to any voice note; and, with the chat's ``group_policy`` at ``all_voice``, every
voice note. In private chats it answers everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.types import Chat, Message, MessageEntity, User

from bot.engine.ports import ChatRef

PLATFORM = "telegram"


def chat_ref(chat: Chat) -> ChatRef:
    """The engine's view of a Telegram chat."""
    title = (chat.title or chat.full_name) if chat.type != "private" else None
    return ChatRef(
        platform=PLATFORM,
        chat_id=str(chat.id),
        kind=chat.type,
        title=title,
        private=chat.type == "private",
    )


def topic_id(message: Message) -> int | None:
    """The forum topic (or private-chat topic) a message is in, where replies must go.

    In a plain group ``message_thread_id`` names a reply thread, not a topic: ignored.
    """
    if message.is_topic_message and message.message_thread_id:
        return message.message_thread_id
    return None


def thread_key(message: Message) -> str | None:
    """One conversation per forum topic; the chat's own conversation otherwise."""
    topic = topic_id(message)
    return None if topic is None else str(topic)


def replied_message(message: Message) -> Message | None:
    """The message this one explicitly replies to.

    In a forum topic every message "replies" to the topic's creation message; that is
    not a reply anyone made, so it doesn't count.
    """
    replied = message.reply_to_message
    if replied is None:
        return None
    if message.is_topic_message and (
        replied.message_id == message.message_thread_id or replied.forum_topic_created
    ):
        return None
    return replied


def has_audio(message: Message) -> bool:
    """Voice, audio, video note, or a document with an audio/video mime type."""
    if message.voice or message.audio or message.video_note:
        return True
    doc = message.document
    return doc is not None and (doc.mime_type or "").startswith(("audio/", "video/"))


def body(message: Message) -> tuple[str, list[MessageEntity]]:
    """The text or caption, with its entities."""
    if message.text is not None:
        return message.text, list(message.entities or [])
    return message.caption or "", list(message.caption_entities or [])


def _slice(text: str, entity: MessageEntity) -> str:
    # Entity offsets count UTF-16 code units.
    raw = text.encode("utf-16-le")
    return raw[entity.offset * 2 : (entity.offset + entity.length) * 2].decode("utf-16-le")


def mentions(message: Message, me: User) -> bool:
    """``@botname`` or a text mention of the bot in the text or caption."""
    text, entities = body(message)
    handle = f"@{me.username}".lower() if me.username else None
    for ent in entities:
        if ent.type == "mention" and handle and _slice(text, ent).lower() == handle:
            return True
        if ent.type == "text_mention" and ent.user is not None and ent.user.id == me.id:
            return True
    return False


def instruction(message: Message, me: User) -> str | None:
    """The text or caption without the bot's @mention; ``None`` if nothing is left."""
    text, entities = body(message)
    handle = f"@{me.username}".lower() if me.username else None
    raw = text.encode("utf-16-le")
    # Cut mentions of the bot from the end backwards so earlier offsets stay valid.
    for ent in sorted(entities, key=lambda e: e.offset, reverse=True):
        if ent.type == "mention" and handle and _slice(text, ent).lower() == handle:
            raw = raw[: ent.offset * 2] + raw[(ent.offset + ent.length) * 2 :]
    cleaned = " ".join(raw.decode("utf-16-le").split())
    return cleaned or None


def is_from(message: Message | None, me: User) -> bool:
    return message is not None and message.from_user is not None and message.from_user.id == me.id


@dataclass(frozen=True, slots=True)
class Addressed:
    """A message the bot answers: the audio to use (this message or the one replied to)
    and the instruction text."""

    audio_message: Message | None
    text: str | None


def addressed(message: Message, *, me: User, all_voice: bool) -> Addressed | None:
    """Whether the bot answers ``message``, and with what; ``None`` means stay quiet."""
    private = message.chat.type == "private"
    replied = replied_message(message)
    to_bot = is_from(replied, me)
    mentioned = mentions(message, me)
    text = instruction(message, me)
    if has_audio(message):
        if private or to_bot or mentioned or all_voice:
            return Addressed(audio_message=message, text=text)
        return None
    if message.text is None:
        return None
    if not (private or to_bot or mentioned):
        return None
    if replied is not None and has_audio(replied):
        # A question about a recording: analyse that recording with this text.
        return Addressed(audio_message=replied, text=text)
    return Addressed(audio_message=None, text=text)
