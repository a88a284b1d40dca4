"""``message`` and ``app_mention`` events: clips, instructions and follow-ups.

A mention in a channel arrives twice (a ``message`` and an ``app_mention`` event, with
different event ids); both name the same message, so the claim on the message makes one
reply. Slack's retries and Socket Mode redeliveries repeat the event id.
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.adapters.slack.deps import SlackDeps
from bot.adapters.slack.events import SlackMessage, instruction, read_message
from bot.engine.domain import GroupPolicy
from bot.engine.intake import Arrival
from bot.engine.ports import IncomingTurn

log = structlog.get_logger(__name__)


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def on_message(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        await handle_message(deps, body=body, event=event, context=context, via_mention=False)

    async def on_app_mention(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        await handle_message(deps, body=body, event=event, context=context, via_mention=True)

    async def ignore() -> None:
        # Acknowledged so Slack does not retry events this app subscribes to but ignores.
        return None

    app.event("message")(on_message)
    app.event("app_mention")(on_app_mention)
    for name in ("file_shared", "assistant_thread_started", "assistant_thread_context_changed"):
        app.event(name)(ignore)


async def handle_message(
    deps: SlackDeps,
    *,
    body: dict[str, Any],
    event: dict[str, Any],
    context: AsyncBoltContext,
    via_mention: bool,
) -> None:
    """Decide whether the message is for the bot; if so, answer it (once)."""
    bot_user_id: str | None = context.get("bot_user_id")
    msg = read_message(event, bot_user_id=bot_user_id)
    if msg is None:
        return
    # The message's place in its conversation, taken before the first await, so that two
    # messages arriving together are answered in the order they arrived.
    arrival = deps.engine.arrive(msg.chat, msg.thread_key)
    try:
        await _handle(deps, msg, arrival, body=body, context=context, via_mention=via_mention)
    finally:
        arrival.release()  # no-op once the turn ran


async def _handle(
    deps: SlackDeps,
    msg: SlackMessage,
    arrival: Arrival,
    *,
    body: dict[str, Any],
    context: AsyncBoltContext,
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

    if not msg.is_dm:
        addressed, file = await _addressed_in_channel(deps, msg, file, context, via_mention)
        if not addressed:
            return

    keys = [str(body.get("event_id") or ""), *msg.dedupe_keys()]
    if not await arrival.claim(keys):
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
    )
    team = msg.team or body.get("team_id") or context.get("team_id")
    await deps.run_turn(
        turn, arrival, channel=msg.channel, thread_ts=msg.reply_thread_ts, team_id=team
    )


async def _addressed_in_channel(
    deps: SlackDeps,
    msg: SlackMessage,
    file: dict[str, Any] | None,
    context: AsyncBoltContext,
    via_mention: bool,
) -> tuple[bool, dict[str, Any] | None]:
    """Whether a channel message is for the bot, and the clip to analyse with it."""
    bot_user_id: str | None = context.get("bot_user_id")
    mentioned = via_mention or msg.mentions(bot_user_id)
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
            if file is None and info.unheard_clip is not None and (mentioned or joined):
                file = info.unheard_clip  # "@bot what is said here?" under a clip
        if mentioned or joined:
            return True, file
    if mentioned:
        return True, file
    if file is not None and msg.audio_files():
        settings = await deps.engine.get_settings(msg.chat)
        return settings.group_policy == GroupPolicy.ALL_VOICE, file
    return False, None
