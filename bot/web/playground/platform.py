"""The playground as a platform (``web``): its jobs, its sinks, and its place in ``run``.

A recording posted from the page becomes one job of the turn queue, like a Telegram update
or a Slack event (:meth:`PlaygroundPlatform.accept`); its run hands the turn to the engine
with a sink over a :class:`~bot.web.playground.surface.WebSurface`, so the reply comes
through the same intake, engine and delivery sink as every chat platform's, and streams
into the page that posted it. Each browser session is one private chat of its own.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import structlog

from bot import texts
from bot.commands.handler import CommandHandler
from bot.commands.ports import CommandProfile
from bot.commands.style import CommandStyle
from bot.core import Core
from bot.delivery.sink import DeliveryPolicy, StreamingSink
from bot.engine.ordering import conversation_key
from bot.engine.ports import ChatRef, IncomingTurn
from bot.queue.port import Job, RunningJob
from bot.web.playground.session import SessionSigner
from bot.web.playground.surface import ReplyChannels, WebSurface

if TYPE_CHECKING:
    pass

# The page has no command line: "/model" in a text names the page's Model menu, "/new"
# its New conversation button.
STYLE = CommandStyle(
    prefix="/",
    controls=(("model", texts.PLAYGROUND_MODEL), ("new", texts.PLAYGROUND_NEW)),
)

log = structlog.get_logger(__name__)

PLATFORM = "web"


def chat_of(session: str) -> ChatRef:
    """The chat a browser session talks in (private: its user manages its settings)."""
    return ChatRef(
        platform=PLATFORM, chat_id=session, kind="browser", title="Browser playground", private=True
    )


class UploadedAudio:
    """An :class:`~bot.engine.ports.AudioSource` over a recording the page posted."""

    def __init__(self, *, data: bytes, mime_type: str | None, file_name: str | None) -> None:
        self._data = data
        self._mime = mime_type
        self._name = file_name

    @property
    def declared_size(self) -> int | None:
        return len(self._data)

    @property
    def mime_type(self) -> str | None:
        return self._mime

    @property
    def file_name(self) -> str | None:
        return self._name

    @property
    def source_key(self) -> str | None:
        return None  # each upload is a recording of its own

    async def fetch(self) -> bytes:
        return self._data


class NoPlatformAdmins:
    """A playground chat is private: its one user manages it (BOT_ADMINS aside)."""

    async def is_admin(self, chat: ChatRef, user_id: str) -> bool:
        del chat, user_id
        return False


class PlaygroundPlatform:
    """Implements bootstrap's ``Platform`` for the browser playground."""

    name = PLATFORM

    def __init__(self, *, core: Core) -> None:
        settings = core.settings
        assert settings.DASHSCOPE_API_KEY is not None  # build_core insists on it
        self.core = core
        self.engine = core.engine
        self.channels = ReplyChannels()
        self.signer = SessionSigner(secret=settings.DASHSCOPE_API_KEY.get_secret_value())
        self.commands = CommandHandler(
            engine=core.engine, admins=NoPlatformAdmins(), profile=CommandProfile(style=STYLE)
        )
        self.accepting = False

    # --- turns --------------------------------------------------------------------------

    async def accept(
        self, *, session: str, reply: str, audio: bytes, mime_type: str, lang: str | None
    ) -> bool:
        """Store the posted recording as a job of its session's conversation (the turn
        queue runs it, in order, and its events go to ``reply``'s channel)."""
        payload: dict[str, Any] = {
            "session": session,
            "reply": reply,
            "audio": base64.b64encode(audio).decode("ascii"),
            "mime": mime_type,
            "lang": lang,
        }
        lock = conversation_key(
            platform=PLATFORM, chat_id=session, thread_key=None, conversation_id=None
        )
        return await self.core.queue.accept(
            platform=PLATFORM,
            keys=[f"reply:{reply}"],
            job=Job(handler=PLATFORM, payload=payload, lock=lock),
        )

    def sink(self, reply: str) -> StreamingSink:
        return StreamingSink(
            surface=WebSurface(channels=self.channels, reply=reply),
            policy=DeliveryPolicy(timeout=self.core.settings.DELIVERY_TIMEOUT),
            metrics=self.core.metrics,
            platform=PLATFORM,
            style=STYLE,
        )

    async def run_job(self, job: RunningJob) -> None:
        """Answer a posted recording (raising makes the queue run it again)."""
        payload = job.payload
        reply = str(payload["reply"])
        turn = _turn(payload, with_audio=True)
        arrival = self.engine.arrive_job(PLATFORM, attempt=job.attempt)
        outcome = await arrival.answer(turn, self.sink(reply))
        self.channels.put(reply, "done", status=outcome.status)
        log.info("web.turn", status=outcome.status, attempt=job.attempt)

    async def give_up(self, job: RunningJob, error: BaseException | None) -> None:
        """Every run failed: apologise in the page, store the turn failed."""
        log.warning(
            "web.job_given_up",
            job_id=job.id,
            error=type(error).__name__ if error is not None else "crashed",
        )
        reply = str(job.payload["reply"])
        outcome = await self.engine.abandon(_turn(job.payload, with_audio=False), self.sink(reply))
        self.channels.put(reply, "done", status=outcome.status)

    # --- Platform -------------------------------------------------------------------------

    async def start(self) -> None:
        self.accepting = True

    async def stop(self) -> None:
        self.accepting = False

    async def aclose(self) -> None:
        return None

    def readiness(self) -> dict[str, Any]:
        return {}


def _turn(payload: dict[str, Any], *, with_audio: bool) -> IncomingTurn:
    session = str(payload["session"])
    audio = (
        UploadedAudio(
            data=base64.b64decode(payload["audio"]),
            mime_type=payload.get("mime"),
            file_name=None,
        )
        if with_audio
        else None
    )
    return IncomingTurn(
        chat=chat_of(session),
        user_id=session,
        audio=audio,
        source_message_id=str(payload["reply"]),
        user_language=payload.get("lang"),
    )
