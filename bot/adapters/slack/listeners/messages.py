"""``message`` and ``app_mention`` events: clips, instructions and follow-ups.

A mention in a channel arrives twice (a ``message`` and an ``app_mention`` event, with
different event ids); both name the same message, so the claim on the message makes one
reply. Slack's retries and Socket Mode redeliveries repeat the event id.

Every such event that may be for the bot becomes a durable job before Slack gets its
acknowledgement (:func:`enqueue`, a global Bolt middleware, so it runs before Bolt acks):
the event's ids are claimed and the event stored in one transaction. The job's run
(:func:`run_job`, on any replica) decides whether the message is for the bot and answers
it; messages of one conversation run one at a time, in arrival order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.adapters.slack.deps import SlackDeps
from bot.adapters.slack.events import PLATFORM, SlackMessage, instruction, read_message
from bot.engine.domain import GroupPolicy
from bot.engine.intake import Arrival
from bot.engine.ordering import conversation_key
from bot.engine.ports import IncomingTurn
from bot.queue.port import Job, RunningJob

log = structlog.get_logger(__name__)


_QUEUED_EVENTS = frozenset({"message", "app_mention"})


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def enqueue_middleware(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        if await enqueue(deps, body=body, context=context):
            return BoltResponse(status=200, body="")  # stored: acknowledge, Bolt stops here
        await next()
        return None

    # Message events never reach a listener: the middleware stores and acknowledges them.
    app.use(enqueue_middleware)

    async def ignore() -> None:
        # Acknowledged so Slack does not retry events this app subscribes to but ignores.
        return None

    for name in ("file_shared", "assistant_thread_started", "assistant_thread_context_changed"):
        app.event(name)(ignore)


async def enqueue(deps: SlackDeps, *, body: dict[str, Any], context: AsyncBoltContext) -> bool:
    """Store a message event as a job; ``True`` if it was handled here (stored, or a
    duplicate, or nothing the bot could answer), ``False`` for other requests."""
    event = body.get("event") if body.get("type") == "event_callback" else None
    if not isinstance(event, dict) or event.get("type") not in _QUEUED_EVENTS:
        return False
    bot_user_id: str | None = context.get("bot_user_id")
    msg = read_message(event, bot_user_id=bot_user_id)
    if msg is None or not _may_be_for_bot(msg, bot_user_id, event):
        return True  # acknowledged; nobody spoke to the bot (no job for channel chatter)
    accepted = deps.queue.accept(
        platform=PLATFORM,
        keys=[str(body.get("event_id") or ""), *msg.dedupe_keys()],
        job=Job(
            handler=PLATFORM,
            payload={
                "body": body,
                "context": {k: context.get(k) for k in ("bot_user_id", "bot_id", "team_id")},
            },
            lock=conversation_key(
                platform=PLATFORM,
                chat_id=msg.channel,
                thread_key=msg.thread_key,
                conversation_id=None,
            ),
        ),
    )
    if not await accepted:
        log.info("slack.duplicate_event")
    return True


def _may_be_for_bot(msg: SlackMessage, bot_user_id: str | None, event: dict[str, Any]) -> bool:
    """Cheap, without Slack calls: a top-level channel message that neither mentions the
    bot nor carries a file can't be for it. The job's run decides the rest."""
    return (
        msg.is_dm
        or msg.in_thread
        or bool(msg.files)
        or event.get("type") == "app_mention"
        or msg.mentions(bot_user_id)
    )


async def run_job(deps: SlackDeps, job: RunningJob) -> None:
    """Answer a stored message event (any replica; the claim was made on receipt)."""
    body: dict[str, Any] = job.payload["body"]
    event: dict[str, Any] = body["event"]
    await handle_message(
        deps,
        body=body,
        event=event,
        context=job.payload.get("context") or {},
        via_mention=event.get("type") == "app_mention",
        arrival=deps.engine.arrive_job(PLATFORM, attempt=job.attempt),
    )


async def give_up(deps: SlackDeps, job: RunningJob, error: BaseException | None) -> None:
    """Every run of this event failed: apologise in its thread, once."""
    log.warning(
        "slack.job_given_up",
        job_id=job.id,
        error=type(error).__name__ if error is not None else "crashed",
    )
    body: dict[str, Any] = job.payload["body"]
    context: dict[str, Any] = job.payload.get("context") or {}
    msg = read_message(body["event"], bot_user_id=context.get("bot_user_id"))
    if msg is None:
        return
    turn = IncomingTurn(
        chat=msg.chat,
        user_id=msg.user,
        thread_key=msg.thread_key,
        text=msg.text or None,
        source_message_id=msg.ts,
    )
    sink = deps.replier(
        channel=msg.channel,
        thread_ts=msg.reply_thread_ts,
        team_id=msg.team or body.get("team_id") or context.get("team_id"),
        user_id=msg.user,
        listening=False,
    )
    await deps.engine.abandon(await deps.with_language(turn), sink)


async def handle_message(
    deps: SlackDeps,
    *,
    body: dict[str, Any],
    event: dict[str, Any],
    context: Mapping[str, Any],
    via_mention: bool,
    arrival: Arrival,
) -> None:
    """Decide whether the stored message is for the bot; if so, answer it (it was claimed
    when it was accepted: :func:`enqueue`)."""
    bot_user_id: str | None = context.get("bot_user_id")
    msg = read_message(event, bot_user_id=bot_user_id)
    if msg is None:
        return
    await _handle(deps, msg, arrival, body=body, context=context, via_mention=via_mention)


async def _handle(
    deps: SlackDeps,
    msg: SlackMessage,
    arrival: Arrival,
    *,
    body: dict[str, Any],
    context: Mapping[str, Any],
    via_mention: bool,
) -> None:
    bot_user_id: str | None = context.get("bot_user_id")
    text = instruction(msg.text, bot_user_id=bot_user_id)
    audio = msg.audio_files()
    # A file that does not look like audio is still tried when it is all the user sent:
    # the pipeline then says what it is, rather than the bot staying silent.
    file = audio[0] if audio else (msg.files[0] if msg.files and not text else None)
    if file is None and text is None:
        return

    known_parent: dict[str, Any] | None = None
    if not msg.is_dm:
        addressed, file, known_parent = await _addressed_in_channel(
            deps, msg, file, context, via_mention
        )
        if not addressed:
            return

    source = await deps.audio_source(file) if file is not None else None
    # Several audio files in one message are heard together, in order ("compare these").
    extra = audio[1:] if audio and file is audio[0] else []
    turn = IncomingTurn(
        chat=msg.chat,
        user_id=msg.user,
        thread_key=msg.thread_key,
        text=text,
        audio=source,
        more_audio=tuple([await deps.audio_source(f) for f in extra]),
        source_message_id=msg.ts,
        # A new thread's conversation starts from the message it replies to.
        parent=deps.thread_parent(
            channel=msg.channel,
            thread_ts=msg.thread_ts,
            bot_user_id=bot_user_id,
            known=known_parent,
        )
        if msg.in_thread and msg.thread_ts
        else None,
    )
    team = msg.team or body.get("team_id") or context.get("team_id")
    await deps.run_turn(
        turn, arrival, channel=msg.channel, thread_ts=msg.reply_thread_ts, team_id=team
    )


async def _addressed_in_channel(
    deps: SlackDeps,
    msg: SlackMessage,
    file: dict[str, Any] | None,
    context: Mapping[str, Any],
    via_mention: bool,
) -> tuple[bool, dict[str, Any] | None, dict[str, Any] | None]:
    """Whether a channel message is for the bot, the clip to analyse with it, and its
    thread's first message if that was read on the way."""
    bot_user_id: str | None = context.get("bot_user_id")
    mentioned = via_mention or msg.mentions(bot_user_id)
    parent: dict[str, Any] | None = None
    if msg.in_thread and msg.thread_ts and (file is None or not mentioned):
        joined = msg.parent_user_id == bot_user_id or deps.threads.known_joined(
            msg.channel, msg.thread_ts
        )
        if file is None or not joined:
            info = await deps.threads.inspect(
                channel=msg.channel,
                thread_ts=msg.thread_ts,
                before_ts=msg.ts,
                bot_user_id=bot_user_id,
                bot_id=context.get("bot_id"),
            )
            joined = joined or info.bot_takes_part
            parent = info.parent
            if file is None and info.unheard_clip is not None and (mentioned or joined):
                file = info.unheard_clip  # "@bot what is said here?" under a clip
        if mentioned or joined:
            return True, file, parent
    if mentioned:
        return True, file, parent
    if file is not None and msg.audio_files():
        settings = await deps.engine.get_settings(msg.chat)
        return settings.group_policy == GroupPolicy.ALL_VOICE, file, None
    return False, None, None
