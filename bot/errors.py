"""The one exception tree of voicebot.

Every boundary (DashScope client, audio pipeline, storage, platform adapters) translates
what its libraries raise into one of these, keeping the context as attributes. Adapters
show ``exc.user_message`` to the user and never the library's own text. An error is often
raised before anyone knows who will read it (in the audio pipeline's threads, say), so its
message stays a msgid with fields (:class:`bot.i18n.Msg`) and ``user_message`` renders it
in the language current where it is shown (:mod:`bot.i18n`).

::

    BotError
    ├── ConfigError                      invalid configuration (exit status 2)
    ├── AccessDenied                     user/chat not in ALLOWED_USERS / ALLOWED_CHATS
    ├── NotChatAdmin                     settings change by a non-admin
    ├── UserRateLimited                  per-user rate limit of the bot itself
    ├── UnsupportedRequest               the chosen model cannot do what was asked
    ├── UnknownModel                     a model name that is not in the catalog / allow-list
    │   └── RetiredModel                 a catalog model DashScope no longer serves
    ├── InvalidSetting                   a setting value out of range
    ├── ConversationNotFound             `ask --conversation` with an unknown id
    ├── InvalidConversationName          `ask --conversation` with a name it can't take
    ├── ShuttingDown                     a turn that arrived while the bot is stopping
    ├── QueueUnavailable                 the turn queue could not store an event (retry later)
    ├── TurnAbandoned                    a turn whose runs crashed MAX_ATTEMPTS times
    ├── TranscriptUnavailable            a Transcript press for a reply with no audio (left)
    ├── DeliveryError                    a chat platform did not show what we sent
    │   ├── DeliveryRateLimited          429 / ratelimited, with the platform's retry_after
    │   ├── DeliveryTransient            5xx, a dropped connection, a timeout
    │   ├── FormattingRejected           the platform refused our formatting (entities)
    │   ├── NotModified                  the platform says the message already shows that
    │   ├── MessageGone                  the message to edit was deleted or can't be edited
    │   └── Undelivered                  the final text could not be delivered in time
    ├── AudioError                       the audio pipeline refused the input
    │   ├── AudioTooLarge                over the byte limit, refused before download/decoding
    │   ├── AudioTooShort                under 0.3 s: an accidental tap, nothing to hear
    │   ├── AudioEmpty                   zero bytes or no samples
    │   ├── AudioSilent                  decodes, but nothing audible
    │   ├── AudioUnreadable              corrupt, truncated or not decodable
    │   ├── NotAudio                     an image, archive, text… (no audio container)
    │   ├── NoAudioTrack                 a video without an audio stream
    │   ├── AudioTimeout                 conversion took longer than the per-file limit
    │   └── ForeignFileHost              a file URL on a host that may not get the bot token
    └── ModelError                       DashScope (or OpenAI-compatible) said no
        ├── ModelAuthError               InvalidApiKey (401)
        ├── ModelAccessDenied            Arrearage, AccessDenied*, free tier exhausted (400/403)
        ├── ModelNotFoundError           unknown model at the service (404 / Model not exist)
        ├── ModelBadRequest              InvalidParameter, InvalidURL, BadRequest.* (400)
        ├── ModelPayloadTooLarge         a clip over 10 MB as base64, refused before sending
        ├── ContentFiltered              DataInspectionFailed
        ├── ModelRateLimited             Throttling* (429)
        ├── ModelServerError             InternalError, 5xx
        ├── ModelTimeout                 connect / first byte / idle timeouts
        └── ModelConnectionLost          connection dropped, also mid-stream
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Protocol

from bot import texts
from bot.i18n import Msg


class BotError(Exception):
    """Root of every error voicebot raises on purpose.

    ``user_message`` is a short, friendly text fit to show in a chat; ``str(exc)`` is for
    logs and never holds secrets, audio or message text. Pass ``user_message`` as a
    msgid of :mod:`bot.texts`, or as a :class:`~bot.i18n.Msg` when it has fields: it is
    translated when it is shown, not when the error is raised.
    """

    default_user_message: str = texts.ERROR_GENERIC  # a msgid of bot.texts

    def __init__(self, detail: str = "", *, user_message: str | Msg | None = None) -> None:
        super().__init__(detail or type(self).__name__)
        self.detail = detail
        self.message_text = Msg.of(user_message or self.default_user_message)

    @property
    def user_message(self) -> str:
        """The message in the current language (:func:`bot.i18n.use`)."""
        return self.message_text.render()

    def shown(self, style: SpellsCommands) -> str:
        """``user_message`` as a user of the platform reads it: every ``{cmd:NAME}`` field
        spelt by the platform's ``style``. Only those fields are replaced (no
        ``str.format`` over a text that may hold what a user typed)."""
        return _CMD_FIELD.sub(lambda m: style.command(m.group(1)), self.user_message)


class SpellsCommands(Protocol):
    """How a platform spells a chat command (:class:`bot.commands.CommandStyle`)."""

    def command(self, name: str) -> str: ...


_CMD_FIELD = re.compile(r"\{cmd:([a-z_]+)\}")


class ConfigError(BotError):
    """Invalid configuration: ``variable`` names the setting at fault."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class AccessDenied(BotError):
    default_user_message = texts.ACCESS_DENIED


class NotChatAdmin(BotError):
    default_user_message = texts.NOT_ADMIN


class ConsoleOff(BotError):
    """``/admin`` while the admin console is off (ADMIN_CONSOLE=false)."""

    default_user_message = texts.CONSOLE_OFF


class ConsolePrivateOnly(BotError):
    """``/admin`` where the link would be seen by others (a Telegram group)."""

    default_user_message = texts.CONSOLE_PRIVATE_ONLY


class UserRateLimited(BotError):
    default_user_message = texts.USER_RATE_LIMITED

    def __init__(self, detail: str = "", *, retry_after: float | None = None) -> None:
        msg = Msg(texts.USER_RATE_LIMITED)
        if retry_after is not None:
            # Rounded up: never tell someone to come back before the window has room.
            msg = Msg(texts.USER_RATE_LIMITED_WAIT, seconds=max(1, math.ceil(retry_after)))
        super().__init__(detail, user_message=msg)
        self.retry_after = retry_after


class UnsupportedRequest(BotError):
    default_user_message = texts.UNSUPPORTED_REQUEST


class UnknownModel(BotError):
    default_user_message = texts.UNKNOWN_MODEL

    def __init__(self, model: str, *, allowed: list[str] | None = None) -> None:
        names = model_list(allowed or [])
        super().__init__(
            f"unknown model {model!r}",
            user_message=Msg(texts.UNKNOWN_MODEL_NAMED, model=model, allowed=names),
        )
        self.model = model


def model_list(names: Sequence[str], *, limit: int = 160) -> str:
    """``names`` joined for an error line, cut (", …") where it would pass ``limit``
    characters: the catalog keeps growing, and an error stays one short line."""
    shown: list[str] = []
    for name in names:
        if shown and len(", ".join([*shown, name])) > limit:
            return ", ".join(shown) + ", …"
        shown.append(name)
    return ", ".join(shown)


class RetiredModel(UnknownModel):
    """A model DashScope retired: its catalog row stays, but it cannot be chosen."""

    def __init__(self, model: str, *, allowed: list[str] | None = None) -> None:
        super().__init__(model, allowed=allowed)
        self.message_text = Msg(
            texts.MODEL_RETIRED_NAMED, model=model, allowed=model_list(allowed or [])
        )


class InvalidSetting(BotError):
    default_user_message = texts.INVALID_SETTING


class ConversationNotFound(BotError):
    default_user_message = texts.CONVERSATION_NOT_FOUND


class InvalidConversationName(BotError):
    """A ``--conversation`` name that is empty, too long or holds other characters."""

    default_user_message = texts.CONVERSATION_NAME_INVALID


class ShuttingDown(BotError):
    """The bot is stopping and takes no new turns."""

    default_user_message = texts.SHUTTING_DOWN


class QueueUnavailable(BotError):
    """The turn queue could not store an event: the platform must deliver it again."""

    default_user_message = texts.SHUTTING_DOWN


class TurnAbandoned(BotError):
    """Every run of a turn crashed or stalled: it is given up, with an apology."""

    default_user_message = texts.TURN_ABANDONED


class TranscriptUnavailable(BotError):
    """A Transcript button for a reply whose recording can't be transcribed: gone from
    this chat (forgotten), never there, or too long; ``user_message`` says which."""

    default_user_message = texts.TRANSCRIPT_NOTHING


# --- delivery to chat platforms ------------------------------------------------------


class DeliveryError(BotError):
    """A chat platform refused or lost a call that shows the reply.

    Adapters translate their SDK's exceptions into the subclasses below (their error
    classification); :mod:`bot.delivery` decides what to do about each. The base class
    itself means a permanent refusal (no access to the chat, a bad request).
    """

    #: Set by the sink when it already changed what it sends: retry without waiting.
    immediate: bool = False

    def __init__(self, detail: str = "", *, code: str | None = None) -> None:
        super().__init__(detail or code or "")
        self.code = code or type(self).__name__


class DeliveryRateLimited(DeliveryError):
    """429 / ``ratelimited``: try again after ``retry_after`` seconds."""

    def __init__(self, detail: str = "", *, retry_after: float, code: str | None = None) -> None:
        super().__init__(detail, code=code or "rate_limited")
        self.retry_after = max(0.0, retry_after)


class DeliveryTransient(DeliveryError):
    """A 5xx answer, a dropped connection or a timeout: worth another try."""


class FormattingRejected(DeliveryError):
    """The platform refused our formatting (Telegram "can't parse entities")."""


class NotModified(DeliveryError):
    """The platform says the message already shows this content."""


class MessageGone(DeliveryError):
    """The message to edit was deleted or can no longer be edited."""


class Undelivered(DeliveryError):
    """The final text could not be delivered within ``DELIVERY_TIMEOUT`` (``cause``)."""

    def __init__(
        self,
        detail: str = "",
        *,
        cause: BaseException | None = None,
        shown: Sequence[str] = (),
    ) -> None:
        code = cause.code if isinstance(cause, DeliveryError) else None
        super().__init__(detail or "final text not delivered", code=code or "undelivered")
        self.cause = cause
        self.visible_ids = tuple(shown)  # messages showing part of the reply (replaced later)


# --- audio ---------------------------------------------------------------------------


class AudioError(BotError):
    default_user_message = texts.AUDIO_UNREADABLE


class AudioTooLarge(AudioError):
    default_user_message = texts.AUDIO_TOO_LARGE

    def __init__(self, detail: str = "", *, size: int | None = None, limit: int) -> None:
        super().__init__(
            detail or f"size {size} over limit {limit}",
            user_message=Msg(texts.AUDIO_TOO_LARGE, limit_mb=limit // (1024 * 1024)),
        )
        self.size = size
        self.limit = limit


class AudioTooShort(AudioError):
    """A recording too short to hold a word (an accidental tap of the record button).

    Refused before the model is asked, and the turn is not stored: it is no message.
    """

    default_user_message = texts.AUDIO_TOO_SHORT


class AudioEmpty(AudioError):
    default_user_message = texts.AUDIO_EMPTY


class AudioSilent(AudioError):
    default_user_message = texts.AUDIO_SILENT


class AudioUnreadable(AudioError):
    default_user_message = texts.AUDIO_UNREADABLE


class NotAudio(AudioError):
    default_user_message = texts.NOT_AUDIO


class NoAudioTrack(AudioError):
    default_user_message = texts.NO_AUDIO_TRACK


class AudioTimeout(AudioError):
    default_user_message = texts.AUDIO_TIMEOUT


class ForeignFileHost(AudioError):
    """A file whose URL names a host the bot token may not go to; refused before any
    request. ``host`` is the host it named (``None`` if the URL did not parse)."""

    default_user_message = texts.FILE_FOREIGN_HOST

    def __init__(
        self, detail: str = "", *, host: str | None, user_message: str | Msg | None = None
    ) -> None:
        super().__init__(detail or f"file on host {host!r}", user_message=user_message)
        self.host = host


# --- model service -------------------------------------------------------------------


class ModelError(BotError):
    """An answer from the model service that is not a reply.

    Carries the service's ``code``, ``message``, ``request_id``, the HTTP ``status`` and
    ``retry_after`` (seconds) where the service gave them.
    """

    default_user_message = texts.MODEL_ERROR

    def __init__(
        self,
        detail: str = "",
        *,
        code: str | None = None,
        message: str | None = None,
        request_id: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        user_message: str | Msg | None = None,
    ) -> None:
        parts = [p for p in (detail, code, message) if p]
        super().__init__(" | ".join(parts) or type(self).__name__, user_message=user_message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.status = status
        self.retry_after = retry_after


class ModelAuthError(ModelError):
    default_user_message = texts.MODEL_AUTH


class ModelAccessDenied(ModelError):
    default_user_message = texts.MODEL_QUOTA


class ModelNotFoundError(ModelError):
    default_user_message = texts.MODEL_NOT_FOUND


class ModelBadRequest(ModelError):
    default_user_message = texts.MODEL_BAD_REQUEST


class ModelPayloadTooLarge(ModelError):
    default_user_message = texts.MODEL_PAYLOAD_TOO_LARGE


class ContentFiltered(ModelError):
    default_user_message = texts.CONTENT_FILTERED


class ModelRateLimited(ModelError):
    default_user_message = texts.MODEL_RATE_LIMITED


class ModelServerError(ModelError):
    default_user_message = texts.MODEL_SERVER_ERROR


class ModelTimeout(ModelError):
    default_user_message = texts.MODEL_TIMEOUT


class ModelConnectionLost(ModelError):
    default_user_message = texts.MODEL_CONNECTION_LOST
