"""Hand a Telegram message to the engine as one turn, with the right reply sink.

Also keeps the turns in flight, so a stop button press (``stopped_message_generation``)
finds its turn, and shutdown can wait for them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from aiogram import Bot
from aiogram.types import Message

from bot.adapters.telegram.admins import TelegramAdmins
from bot.adapters.telegram.audio import attached_audio
from bot.adapters.telegram.drafts import DraftSurface
from bot.adapters.telegram.edits import EditSurface
from bot.adapters.telegram.pacing import FairShare, Pacer
from bot.adapters.telegram.updates import Addressed, chat_ref, thread_key, topic_id
from bot.commands.style import SLASH as STYLE
from bot.config import Settings
from bot.delivery.sink import DeliveryPolicy, StreamingSink
from bot.delivery.surface import Surface
from bot.engine.intake import Arrival
from bot.engine.ports import IncomingTurn, TurnOutcome
from bot.engine.service import Engine
from bot.metrics import Metrics

log = structlog.get_logger(__name__)

# sendMessageDraft rate limits are not documented; telegramify's DraftStream uses 0.3 s.
DRAFT_INTERVAL = 0.3


@dataclass(kw_only=True)
class TelegramContext:
    """Everything the handlers use, built once per platform (``dp["tg"]``)."""

    engine: Engine
    settings: Settings
    metrics: Metrics
    admins: TelegramAdmins
    edit_pacer: Pacer
    draft_pacer: Pacer
    # (chat_id, draft_id) -> the stop event of the turn streaming into that draft
    stops: dict[tuple[int, int], asyncio.Event] = field(default_factory=dict)
    running: set[asyncio.Task[object]] = field(default_factory=set)

    @classmethod
    def build(
        cls, *, engine: Engine, settings: Settings, metrics: Metrics, bot: Bot
    ) -> TelegramContext:
        # One bot-wide budget for the previews of every chat, drafts and edits alike.
        rate = settings.TELEGRAM_GLOBAL_RATE
        share = FairShare(rate=rate) if rate > 0 else None
        return cls(
            engine=engine,
            settings=settings,
            metrics=metrics,
            admins=TelegramAdmins(bot=bot),
            edit_pacer=Pacer(interval=settings.TELEGRAM_EDIT_INTERVAL, share=share),
            draft_pacer=Pacer(
                interval=min(DRAFT_INTERVAL, settings.TELEGRAM_EDIT_INTERVAL), share=share
            ),
        )

    def sink_for(self, message: Message, bot: Bot) -> StreamingSink:
        """Drafts in private chats (Telegram has none in groups), edits elsewhere."""
        chat_id, topic, reply_to = message.chat.id, topic_id(message), str(message.message_id)
        surface: DraftSurface | EditSurface
        if message.chat.type == "private":
            surface = DraftSurface(
                bot=bot,
                chat_id=chat_id,
                topic_id=topic,
                reply_to=reply_to,
                pacer=self.edit_pacer,
                draft_pacer=self.draft_pacer,
            )
        else:
            surface = EditSurface(
                bot=bot, chat_id=chat_id, topic_id=topic, reply_to=reply_to, pacer=self.edit_pacer
            )
        return self._sink(surface)

    def follow_sink(self, message: Message, bot: Bot) -> StreamingSink:
        """Where a pressed button's follow-up goes (a transcript): a reply to the pressed
        ``message``, in its chat and topic, at the chat's pace."""
        surface = EditSurface(
            bot=bot,
            chat_id=message.chat.id,
            topic_id=topic_id(message),
            reply_to=str(message.message_id),
            pacer=self.edit_pacer,
        )
        return self._sink(surface)

    def _sink(self, surface: Surface) -> StreamingSink:
        return StreamingSink(
            surface=surface,
            policy=DeliveryPolicy(timeout=self.settings.DELIVERY_TIMEOUT),
            metrics=self.metrics,
            platform="telegram",
            style=STYLE,
        )

    def stop_turn(self, chat_id: int, draft_id: int) -> bool:
        """The user pressed stop on a draft: cancel that turn's model request."""
        event = self.stops.get((chat_id, draft_id))
        if event is None:
            return False
        event.set()
        return True


async def answer(
    ctx: TelegramContext,
    bot: Bot,
    message: Message,
    what: Addressed,
    *,
    arrival: Arrival,
) -> TurnOutcome:
    """Run one turn for ``message`` (the engine checks access, size, model and history).

    ``arrival`` is the claimed update; its place keeps the turn in arrival order within
    its conversation (see :mod:`bot.engine.intake`).
    """
    source = what.audio_message
    audio = (
        attached_audio(source, bot=bot, max_bytes=ctx.settings.AUDIO_MAX_BYTES)
        if source is not None
        else None
    )
    user = message.from_user
    turn = IncomingTurn(
        chat=chat_ref(message.chat),
        user_id=str(user.id if user is not None else message.chat.id),
        thread_key=thread_key(message),
        text=what.text,
        audio=audio,
        source_message_id=str(message.message_id),
        user_language=user.language_code if user is not None else None,
    )
    sink = ctx.sink_for(message, bot)
    stop = asyncio.Event()
    surface = sink.surface
    key = (message.chat.id, surface.draft_id) if isinstance(surface, DraftSurface) else None
    if key is not None:
        ctx.stops[key] = stop
    task = asyncio.current_task()
    if task is not None:
        ctx.running.add(task)
    try:
        outcome = await arrival.answer(turn, sink, stop=stop)
    finally:
        if key is not None:
            ctx.stops.pop(key, None)
        if task is not None:
            ctx.running.discard(task)
    log.info(
        "telegram.turn",
        chat_id=message.chat.id,
        status=outcome.status,
        audio=audio is not None,
        replies=len(outcome.message_ids),
    )
    return outcome
