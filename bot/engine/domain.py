"""The engine's domain vocabulary: what a turn is and where it stands, and when a group
is answered. Storage maps these onto its columns; adapters and commands use them from here.
"""

from __future__ import annotations

from enum import StrEnum


class TurnStatus(StrEnum):
    """Where a turn is. A reply is ``complete`` only once the platform confirmed all of it."""

    PENDING = "pending"
    STREAMING = "streaming"
    DELIVERING = "delivering"  # the model finished; the final text is being delivered
    COMPLETE = "complete"
    UNDELIVERED = "undelivered"  # the text is stored; delivered at the chat's next message
    FAILED = "failed"
    STOPPED = "stopped"


class TurnRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class GroupPolicy(StrEnum):
    """When the bot answers in a group or channel."""

    MENTION = "mention"  # voice notes that reply to / mention the bot, and mentions
    ALL_VOICE = "all_voice"  # also every voice note in the group


class TranscriptMode(StrEnum):
    """Transcripts of the recordings the bot answers (the chat setting ``transcript``)."""

    BUTTON = "button"  # a Transcript button under the reply (the default)
    ALWAYS = "always"  # posted after every reply to a recording
    OFF = "off"


# The ``kind`` of the turns a thread's conversation starts with (bot.engine.seeding): the
# message the thread replies to and the bot's answer to it, copied or fetched, never
# sent in the thread itself.
THREAD_PARENT_KIND = "thread_parent"


class VoiceReply(StrEnum):
    """When a reply is also spoken (the chat setting ``voice_reply``)."""

    OFF = "off"
    AUTO = "auto"  # a voice message gets a voice reply, a text message a text reply
    ALWAYS = "always"
