"""The conversation engine: the one facade the platform adapters and the CLI call.

Adapters translate platform events into :class:`~bot.engine.ports.IncomingTurn` and
implement :class:`~bot.engine.ports.ReplySink`; everything else — access, rate limits,
ordering, settings, history, the model request, storage and usage — happens here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import structlog

from bot import texts
from bot.audio.types import AudioConverter
from bot.catalog import CATALOG, ModelSpec
from bot.config import Settings
from bot.engine import chat_store, conversations
from bot.engine.access import AccessPolicy, RateLimiter
from bot.engine.conversations import ConversationHandle
from bot.engine.intake import Arrival
from bot.engine.ordering import KeyedLocks, conversation_key
from bot.engine.ports import (
    AdminCheck,
    ChatRef,
    ConsoleLinks,
    ConsoleScope,
    IncomingTurn,
    ReplySink,
    TurnOutcome,
)
from bot.engine.settings import (
    SETTING_KEYS,
    ChatSettingsView,
    check_model,
    check_voice,
    coerce_value,
    effective,
)
from bot.engine.transcripts import Transcriber, Transcript, TranscriptRequest
from bot.engine.turn import TurnDeps, abandon_turn, run_turn, safe_fail
from bot.engine.usage import UsageReport
from bot.errors import AccessDenied, BotError, InvalidSetting, NotChatAdmin, ShuttingDown
from bot.i18n import Lang, choose, use
from bot.llm.types import ModelClient, SpeechSynthesizer
from bot.metrics import Metrics
from bot.storage.database import Database
from bot.storage.repositories import ForgetCounts
from bot.storage.tables import utcnow

log = structlog.get_logger(__name__)

# How long processed platform event ids are kept for exactly-once handling.
EVENT_RETENTION = dt.timedelta(days=7)
# No turn runs this long (model and delivery timeouts are minutes): a reply still pending
# or streaming after it has no job left to finish it (e.g. a killed ``voicebot ask``).
ORPHAN_AGE = dt.timedelta(minutes=30)


class Engine:
    """Voice chat and audio analysis turns with SQL history, for every platform."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        model_client: ModelClient,
        audio: AudioConverter,
        metrics: Metrics,
        synthesizer: SpeechSynthesizer | None = None,
        tts_model: str | None = None,
        console_links: ConsoleLinks | None = None,
    ) -> None:
        self.settings = settings
        # The admin console's sign-in links (None: ADMIN_CONSOLE is off).
        self.console_links = console_links
        self.database = database
        self.metrics = metrics
        self.transcriber = Transcriber(
            database=database, model_client=model_client, metrics=metrics
        )
        self._deps = TurnDeps(
            settings=settings,
            database=database,
            model_client=model_client,
            audio=audio,
            metrics=metrics,
            transcriber=self.transcriber,
            synthesizer=synthesizer,
            tts_model=tts_model,
        )
        self.access = AccessPolicy(
            allowed_users=settings.ALLOWED_USERS,
            allowed_chats=settings.ALLOWED_CHATS,
            bot_admins=settings.BOT_ADMINS,
        )
        self.rate_limiter = RateLimiter(
            limit=settings.USER_RATE_LIMIT, window=settings.USER_RATE_WINDOW
        )
        self._locks = KeyedLocks()
        self._active: set[asyncio.Event] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False

    # --- who ----------------------------------------------------------------------------

    @property
    def allowed_models(self) -> list[ModelSpec]:
        """The models admins may choose from, in ALLOWED_MODELS order."""
        return [CATALOG[name] for name in self.settings.ALLOWED_MODELS]

    @property
    def choosable_models(self) -> list[ModelSpec]:
        """The allowed models a chat may choose now: retired ones left out (they keep
        their catalog rows, shown to admins with their replacement)."""
        return [spec for spec in self.allowed_models if spec.choosable]

    def is_allowed(self, chat: ChatRef, user_id: str) -> bool:
        """ALLOWED_USERS / ALLOWED_CHATS / BOT_ADMINS (see :class:`AccessPolicy`)."""
        return self.access.is_allowed(chat, user_id)

    async def can_manage(self, chat: ChatRef, user_id: str, admin: AdminCheck) -> bool:
        """May this user change the chat's settings or forget it?"""
        return await self.access.can_manage(chat, user_id, admin)

    async def console_scope(
        self, chat: ChatRef, user_id: str, admin: AdminCheck, *, private_kinds: frozenset[str]
    ) -> ConsoleScope:
        """What this user may manage in the admin console: every chat for BOT_ADMINS; else
        the shared chats of its platform where the platform says they are an admin
        (private chats never: one's own has /settings). Raises :class:`NotChatAdmin` when
        that is nothing."""
        if self.access.is_bot_admin(chat.platform, user_id):
            return ConsoleScope(platform=chat.platform, user_id=user_id, chats=None)
        rows = await chat_store.known_chats(self.database, platform=chat.platform)
        shared = [r for r in rows if r.kind not in private_kinds]
        gate = asyncio.Semaphore(8)  # a bounded burst of platform admin checks

        async def admin_of(row: Any) -> int | None:
            ref = ChatRef(platform=row.platform, chat_id=row.external_id, kind=row.kind)
            async with gate:
                return row.id if await admin.is_admin(ref, user_id) else None

        managed = [i for i in await asyncio.gather(*map(admin_of, shared)) if i is not None]
        if not managed:
            raise NotChatAdmin("no chat to manage", user_message=texts.CONSOLE_NOT_ADMIN)
        return ConsoleScope(platform=chat.platform, user_id=user_id, chats=tuple(managed))

    # --- turns --------------------------------------------------------------------------

    def arrive_job(self, platform: str, *, attempt: int) -> Arrival:
        """A queued job's event (bot.queue): claimed when it was accepted, and run in its
        conversation's order by the queue; ``attempt`` runs of it came before."""
        return Arrival(platform=platform, runner=self, attempt=attempt)

    async def handle_turn(
        self,
        turn: IncomingTurn,
        sink: ReplySink,
        *,
        stop: asyncio.Event | None = None,
    ) -> TurnOutcome:
        """Answer one message. Setting ``stop`` ends the reply early, kept as ``stopped``.

        Refusals (access, rate limit, shutting down) store nothing. Turns of one
        conversation run one at a time (across replicas the turn queue orders them; the
        in-process lock also covers ``voicebot ask`` and /new); others run concurrently.
        Everything the turn shows, and the instruction it sends, is in the language
        :meth:`language` picks for its chat and sender (read once the turn has its place
        in the line: taking the place comes before any await, so that turns keep their
        arrival order).
        """
        chat = turn.chat
        refusal: BotError | None = None
        if self._draining:
            refusal = ShuttingDown()
        elif not self.is_allowed(chat, turn.user_id):
            refusal = AccessDenied(f"{chat.platform} user not allowed")
        else:
            try:
                self.rate_limiter.check(f"{chat.platform}:{turn.user_id}")
            except BotError as exc:
                refusal = exc
        if refusal is not None:
            log.info("turn.refused", platform=chat.platform, reason=type(refusal).__name__)
            self.metrics.turns.labels(chat.platform, "-", "-", "refused").inc()
            with use(await self.language(chat, turn.user_language)):
                shown = await safe_fail(sink, refusal, "")
            return TurnOutcome(status="refused", error=refusal, message_ids=shown)

        internal = asyncio.Event()
        relay: asyncio.Task[None] | None = None
        if stop is not None:
            relay = asyncio.create_task(_relay(stop, internal))
        self._active.add(internal)
        self._idle.clear()
        key = conversation_key(
            platform=chat.platform,
            chat_id=chat.chat_id,
            thread_key=turn.thread_key,
            conversation_id=turn.conversation_id,
        )
        try:
            async with self._locks.hold(key):
                with use(await self.language(chat, turn.user_language)):
                    if self._draining:
                        # Queued behind a turn when shutdown began: not accepted, nothing
                        # stored.
                        err = ShuttingDown()
                        shown = await safe_fail(sink, err, "")
                        return TurnOutcome(status="refused", error=err, message_ids=shown)
                    return await run_turn(self._deps, turn, sink, internal)
        finally:
            if relay is not None:
                relay.cancel()
            self._active.discard(internal)
            if not self._active:
                self._idle.set()

    async def abandon(self, turn: IncomingTurn, sink: ReplySink) -> TurnOutcome:
        """The turn's job is given up (every run crashed): apologise, store it failed."""
        try:
            with use(await self.language(turn.chat, turn.user_language)):
                return await abandon_turn(self._deps, turn, sink)
        except Exception as exc:  # the apology is best effort; the job ends either way
            log.error("turn.abandon_failed", error=type(exc).__name__)
            return TurnOutcome(status="failed", error=BotError(type(exc).__name__))

    async def claim_event(self, platform: str, event_id: str) -> bool:
        """``True`` the first time an event id is seen (across restarts), else ``False``."""
        first = await chat_store.claim_event(self.database, platform=platform, event_id=event_id)
        if not first:
            self.metrics.duplicate_events.labels(platform).inc()
        return first

    async def new_conversation(self, chat: ChatRef, thread_key: str | None) -> None:
        """Start a fresh conversation (``/new``), after any turn already queued there."""
        key = conversation_key(
            platform=chat.platform,
            chat_id=chat.chat_id,
            thread_key=thread_key,
            conversation_id=None,
        )
        async with self._locks.hold(key):
            await chat_store.close_conversations(self.database, chat, thread_key)

    async def conversation(self, chat: ChatRef, reference: int | str) -> ConversationHandle:
        """The conversation an id or a name refers to in ``chat`` (``voicebot ask
        --conversation``): an id must exist there (else :class:`ConversationNotFound`); a
        name is started on first use, once even when two processes start it together."""
        return await conversations.find_or_start(self.database, chat, reference)

    # --- settings, usage, forget ----------------------------------------------------------

    async def language(self, chat: ChatRef, user_language: str | None) -> Lang:
        """The language to speak to this user in this chat: the chat's ``language``
        setting, else (``auto``) the user's own language tag. A database that can't be
        read leaves it to the user's tag: the language never holds up an answer."""
        try:
            stored = await chat_store.stored_settings(self.database, chat)
        except Exception as exc:
            log.warning("engine.language_unread", error=type(exc).__name__)
            stored = None
        return choose(stored.language if stored is not None else None, user_language)

    async def get_settings(self, chat: ChatRef) -> ChatSettingsView:
        """The chat's effective settings (defaults applied)."""
        return self._view(await chat_store.stored_settings(self.database, chat))

    async def update_settings(
        self,
        chat: ChatRef,
        user_id: str,
        admin: AdminCheck,
        *,
        via: str = "chat",
        actor: str | None = None,
        **changes: Any,
    ) -> ChatSettingsView:
        """Change settings (``None`` resets a key to the default); admins only in groups.
        ``via`` names where the change was made and ``actor`` who made it, for the audit
        (default: ``platform:user_id`` of the chat's platform).

        Raises :class:`NotChatAdmin`, :class:`InvalidSetting` or :class:`UnknownModel`;
        nothing is changed unless every value is valid.
        """
        if not await self.can_manage(chat, user_id, admin):
            raise NotChatAdmin(f"{chat.platform} user may not manage chat")
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in SETTING_KEYS:
                raise InvalidSetting(f"unknown setting {key!r}")
            if key == "model" and value is not None:
                check_model(str(value), self.settings.ALLOWED_MODELS)
                clean[key] = str(value)
            else:
                clean[key] = coerce_value(key, value)
        if clean.get("voice") is not None:
            # A voice is one of the model's: the one chosen with it, else the chat's.
            model = clean.get("model") or (await self.get_settings(chat)).model
            spec = check_model(model, self.settings.ALLOWED_MODELS)
            clean["voice"] = check_voice(clean["voice"], spec)
        stored = await chat_store.change_settings(
            self.database,
            chat,
            changes=clean,
            changed_by=actor or f"{chat.platform}:{user_id}",
            via=via,
        )
        view = self._view(stored)
        log.info("settings.updated", platform=chat.platform, keys=sorted(clean))
        return view

    async def usage(self, chat: ChatRef) -> UsageReport:
        """The chat's usage by day and model, with totals."""
        return UsageReport.from_rows(await chat_store.usage_rows(self.database, chat))

    async def forget(self, chat: ChatRef, user_id: str, admin: AdminCheck) -> ForgetCounts:
        """Delete the chat's conversations, turns, audio and usage detail (settings stay)."""
        if not await self.can_manage(chat, user_id, admin):
            raise NotChatAdmin(f"{chat.platform} user may not forget chat")
        counts = await chat_store.forget(self.database, chat)
        log.info(
            "chat.forgotten",
            platform=chat.platform,
            conversations=counts.conversations,
            turns=counts.turns,
            clips=counts.audio_clips,
        )
        return counts

    # --- transcripts -----------------------------------------------------------------------

    async def find_transcript(self, chat: ChatRef, value: str) -> TranscriptRequest:
        """The reply a Transcript button's ``value`` names in ``chat`` (SQL only, quick);
        raises :class:`~bot.errors.TranscriptUnavailable` saying why it can't be done."""
        return await self.transcriber.find(chat, value)

    def transcript_in_progress(self, request: TranscriptRequest) -> bool:
        """An earlier press of the same button is making this transcript right now."""
        return self.transcriber.in_progress(request)

    async def transcript(
        self, request: TranscriptRequest, *, chat: ChatRef, user_id: str
    ) -> Transcript | None:
        """The transcript to post (stored clips reused, usage recorded); ``None`` when an
        earlier press of the same button posts it. Raises ``ModelError`` subclasses."""
        return await self.transcriber.transcribe(request, user_id=user_id, platform=chat.platform)

    # --- lifecycle ------------------------------------------------------------------------

    async def prune_events(self, *, keep: dt.timedelta = EVENT_RETENTION) -> int:
        """Forget exactly-once records older than ``keep`` (platforms redeliver within
        minutes: Slack retries for ~5 min, Telegram re-sends only unconfirmed updates)."""
        count = await chat_store.prune_events(self.database, before=utcnow() - keep)
        if count:
            log.info("engine.events_pruned", count=count)
        return count

    async def recover(self, *, older_than: dt.timedelta = ORPHAN_AGE) -> int:
        """Replies left half-done for longer than ``older_than`` are marked failed (never
        replayed to the model as complete answers). Younger ones belong to jobs that the
        turn queue runs again (bot.queue), which finish them. Returns how many."""
        count = await chat_store.recover_interrupted(self.database, before=utcnow() - older_than)
        if count:
            log.warning("engine.recovered_interrupted_turns", count=count)
        return count

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 - bootstrap calls it so
        """Take no new turns; let in-flight ones finish for most of ``timeout``, then stop
        the rest (their replies are finalised and stored as ``stopped``)."""
        self._draining = True
        if not self._active:
            return
        grace = max(0.0, timeout * 0.6)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=grace)
        if not self._active:
            return
        log.info("engine.stopping_turns", count=len(self._active))
        for event in list(self._active):
            event.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=max(0.5, timeout - grace))

    def _view(self, stored: Any) -> ChatSettingsView:
        return effective(
            stored,
            default_model=self.settings.DEFAULT_MODEL,
            allowed=self.settings.ALLOWED_MODELS,
            tts_model=self.settings.tts_model,
        )


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()
