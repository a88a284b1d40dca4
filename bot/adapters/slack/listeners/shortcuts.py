"""The "Ask about this audio" message shortcut and its question modal.

The shortcut opens a small modal; its submission asks the engine about the message's
clip, answered in that message's thread. The modal carries where the clip lives in its
``private_metadata`` (Slack returns it untouched with the submission).
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot import texts
from bot.adapters.slack.deps import SlackDeps
from bot.adapters.slack.events import channel_kind, chat_ref, message_files
from bot.adapters.slack.files import is_audio_file
from bot.engine.ports import IncomingTurn

log = structlog.get_logger(__name__)

SHORTCUT_ID = "ask_about_audio"
MODAL_ID = "ask_about_audio_modal"
_BLOCK = "question"
_ACTION = "question_input"


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def on_shortcut(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        await open_modal(deps, body=body, respond=respond)

    async def on_submit(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()  # closes the modal; the answer appears in the thread
        await answer(deps, body=body, view=view)

    app.shortcut(SHORTCUT_ID)(on_shortcut)
    app.view(MODAL_ID)(on_submit)


def modal(metadata: dict[str, Any]) -> dict[str, Any]:
    """The question modal (Block Kit)."""
    return {
        "type": "modal",
        "callback_id": MODAL_ID,
        "title": {"type": "plain_text", "text": texts.SLACK_MODAL_TITLE},
        "submit": {"type": "plain_text", "text": texts.SLACK_MODAL_SUBMIT},
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "blocks": [
            {
                "type": "input",
                "block_id": _BLOCK,
                "label": {"type": "plain_text", "text": texts.SLACK_MODAL_LABEL},
                "element": {
                    "type": "plain_text_input",
                    "action_id": _ACTION,
                    "multiline": True,
                    "max_length": 2000,
                    "placeholder": {"type": "plain_text", "text": texts.SLACK_MODAL_PLACEHOLDER},
                },
            }
        ],
    }


async def open_modal(deps: SlackDeps, *, body: dict[str, Any], respond: Any) -> None:
    message = body.get("message") or {}
    channel = (body.get("channel") or {}).get("id")
    clips = [f for f in message_files(message) if is_audio_file(f)]
    if not clips or not channel:
        await respond(text=texts.SLACK_NO_CLIP, response_type="ephemeral")
        return
    metadata = {
        "channel": channel,
        "ts": message.get("ts"),
        "thread_ts": message.get("thread_ts"),
        "file": clips[0].get("id"),
        "team": (body.get("team") or {}).get("id"),
    }
    try:
        await deps.client.views_open(trigger_id=body["trigger_id"], view=modal(metadata))
    except SlackApiError as exc:
        log.warning("slack.views_open.failed", error=exc.response.get("error"))
        deps.metrics.platform_errors.labels(platform="slack", error="views_open").inc()


async def answer(deps: SlackDeps, *, body: dict[str, Any], view: dict[str, Any]) -> None:
    meta = json.loads(view.get("private_metadata") or "{}")
    value = (((view.get("state") or {}).get("values") or {}).get(_BLOCK, {}).get(_ACTION, {})).get(
        "value"
    )
    channel, ts, file_id = meta.get("channel"), meta.get("ts"), meta.get("file")
    user = (body.get("user") or {}).get("id")
    if not channel or not ts or not file_id or not user:
        return
    # The answer belongs to the clip's thread: one conversation per thread, DMs included.
    thread_ts = meta.get("thread_ts") or ts
    chat = chat_ref(channel, channel_kind(channel))
    arrival = deps.engine.arrive(chat, thread_ts)
    try:
        if not await arrival.claim([f"view:{view.get('id')}:{view.get('hash', '')}"]):
            return
        turn = IncomingTurn(
            chat=chat,
            user_id=user,
            thread_key=thread_ts,
            text=(value or "").strip() or None,
            audio=await deps.audio_source({"id": file_id}),
            source_message_id=ts,
        )
        team = meta.get("team") or (body.get("team") or {}).get("id")
        await deps.run_turn(turn, arrival, channel=channel, thread_ts=thread_ts, team_id=team)
    finally:
        arrival.release()
