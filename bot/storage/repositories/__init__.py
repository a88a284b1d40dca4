"""Data access for the conversation engine: small functions over an ``AsyncSession``.

The engine owns transactions (it decides what is committed when); these functions only
read and write rows. Everything works the same on SQLite and PostgreSQL.
"""

from bot.storage.repositories.chats import (
    ConversationSummary,
    close_open_conversations,
    conversation_summaries,
    find_chat,
    find_named_conversation,
    find_open_conversation,
    get_chat_settings,
    get_conversation,
    get_or_create_chat,
    get_or_create_chat_settings,
    named_conversation,
    open_conversation,
    start_named_conversation,
)
from bot.storage.repositories.events import claim_event, prune_events
from bot.storage.repositories.transcripts import (
    ClipInfo,
    RepliedTurn,
    StoredTranscript,
    add_clip_transcript,
    clip_transcripts,
    replied_turn,
)
from bot.storage.repositories.turns import (
    PendingReply,
    StoredRecording,
    clip_data,
    conversation_turns,
    fail_interrupted_turns,
    find_recording,
    next_seq,
    set_delivery,
    undelivered_replies,
)
from bot.storage.repositories.usage import (
    ForgetCounts,
    UsageRow,
    add_speech,
    add_tts,
    add_usage,
    forget_chat,
    usage_rows,
)

__all__ = [
    "ClipInfo",
    "ConversationSummary",
    "ForgetCounts",
    "PendingReply",
    "RepliedTurn",
    "StoredRecording",
    "StoredTranscript",
    "UsageRow",
    "add_clip_transcript",
    "add_speech",
    "add_tts",
    "add_usage",
    "claim_event",
    "clip_data",
    "clip_transcripts",
    "close_open_conversations",
    "conversation_summaries",
    "conversation_turns",
    "fail_interrupted_turns",
    "find_chat",
    "find_named_conversation",
    "find_open_conversation",
    "find_recording",
    "forget_chat",
    "get_chat_settings",
    "get_conversation",
    "get_or_create_chat",
    "get_or_create_chat_settings",
    "named_conversation",
    "next_seq",
    "open_conversation",
    "prune_events",
    "replied_turn",
    "set_delivery",
    "start_named_conversation",
    "undelivered_replies",
    "usage_rows",
]
