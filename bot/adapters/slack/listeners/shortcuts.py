"""The "Ask about this audio" message shortcut and its question modal.

The shortcut opens a small modal; its submission asks the engine about the message's
clip, answered in that message's thread. The modal carries where the clip lives in its
``private_metadata`` (Slack returns it untouched with the submission).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import structlog
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot import texts
from bot.adapters.slack.deps import SlackDeps
from bot.adapters.slack.events import PLATFORM, channel_kind, chat_ref, message_files
from bot.adapters.slack.files import is_audio_file
from bot.engine.ordering import conversation_key
from bot.engine.ports import AudioSource, ChatRef, IncomingTurn
from bot.i18n import Lang, from_tag, tr
from bot.queue.port import Job, RunningJob

log = structlog.get_logger(__name__)

SHORTCUT_ID = "ask_about_audio"
JOB_KIND = "question"  # a job's payload kind (message events carry none)
MODAL_ID = "ask_about_audio_modal"
_BLOCK = "question"
_ACTION = "question_input"


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def on_shortcut(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        await open_modal(deps, body=body, respond=respond)

    async def on_submit(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        # Stored as a job first, then the modal closes: a crash in between makes Slack
        # show an error, never a question silently dropped.
        await enqueue(deps, body=body, view=view)
        await ack()  # closes the modal; the answer appears in the thread

    app.shortcut(SHORTCUT_ID)(on_shortcut)
    app.view(MODAL_ID)(on_submit)


def modal(metadata: dict[str, Any], lang: Lang = Lang.EN) -> dict[str, Any]:
    """The question modal (Block Kit), in ``lang``."""
    return {
        "type": "modal",
        "callback_id": MODAL_ID,
        "title": {"type": "plain_text", "text": tr(texts.SLACK_MODAL_TITLE, lang)},
        "submit": {"type": "plain_text", "text": tr(texts.SLACK_MODAL_SUBMIT, lang)},
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "blocks": [
            {
                "type": "input",
                "block_id": _BLOCK,
                "label": {"type": "plain_text", "text": tr(texts.SLACK_MODAL_LABEL, lang)},
                "element": {
                    "type": "plain_text_input",
                    "action_id": _ACTION,
                    "multiline": True,
                    "max_length": 2000,
                    "placeholder": {
                        "type": "plain_text",
                        "text": tr(texts.SLACK_MODAL_PLACEHOLDER, lang),
                    },
                },
            }
        ],
    }


async def open_modal(deps: SlackDeps, *, body: dict[str, Any], respond: Any) -> None:
    message = body.get("message") or {}
    channel = (body.get("channel") or {}).get("id")
    clips = [f for f in message_files(message) if is_audio_file(f)]
    user = str((body.get("user") or {}).get("id") or "")
    locale = await deps.admins.locale(user) if user else None
    lang = (
        await deps.engine.language(chat_ref(channel, channel_kind(channel)), locale)
        if channel
        else from_tag(locale)
    )
    if not clips or not channel:
        await respond(text=tr(texts.SLACK_NO_CLIP, lang), response_type="ephemeral")
        return
    metadata = {
        "channel": channel,
        "ts": message.get("ts"),
        "thread_ts": message.get("thread_ts"),
        "file": clips[0].get("id"),
        "team": (body.get("team") or {}).get("id"),
    }
    try:
        await deps.client.views_open(trigger_id=body["trigger_id"], view=modal(metadata, lang))
    except SlackApiError as exc:
        log.warning("slack.views_open.failed", error=exc.response.get("error"))
        deps.metrics.platform_errors.labels(platform="slack", error="views_open").inc()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Question:
    """A submitted question modal, read from its private metadata."""

    channel: str
    ts: str  # the clip's message
    thread_ts: str  # the clip's thread: one conversation per thread, DMs included
    file_id: str
    user: str
    text: str | None
    team: str | None

    @property
    def chat(self) -> ChatRef:
        return chat_ref(self.channel, channel_kind(self.channel))

    def turn(self, *, audio: AudioSource | None = None) -> IncomingTurn:
        """The engine's turn for it (answering the clip's message, in its thread)."""
        return IncomingTurn(
            chat=self.chat,
            user_id=self.user,
            thread_key=self.thread_ts,
            text=self.text,
            audio=audio,
            source_message_id=self.ts,
        )


def _question(body: dict[str, Any], view: dict[str, Any]) -> _Question | None:
    meta = json.loads(view.get("private_metadata") or "{}")
    state = (view.get("state") or {}).get("values") or {}
    value = (state.get(_BLOCK, {}).get(_ACTION, {})).get("value")
    channel, ts, file_id = meta.get("channel"), meta.get("ts"), meta.get("file")
    user = (body.get("user") or {}).get("id")
    if not channel or not ts or not file_id or not user:
        return None
    return _Question(
        channel=channel,
        ts=ts,
        thread_ts=meta.get("thread_ts") or ts,
        file_id=file_id,
        user=user,
        text=(value or "").strip() or None,
        team=meta.get("team") or (body.get("team") or {}).get("id"),
    )


async def enqueue(deps: SlackDeps, *, body: dict[str, Any], view: dict[str, Any]) -> None:
    """Store the submitted question as a job (once per view submission)."""
    question = _question(body, view)
    if question is None:
        return
    await deps.queue.accept(
        platform=PLATFORM,
        keys=[f"view:{view.get('id')}:{view.get('hash', '')}"],
        job=Job(
            handler=PLATFORM,
            payload={"kind": JOB_KIND, "body": body, "view": view},
            lock=conversation_key(
                platform=PLATFORM,
                chat_id=question.channel,
                thread_key=question.thread_ts,
                conversation_id=None,
            ),
        ),
    )


async def run_job(deps: SlackDeps, job: RunningJob) -> None:
    """Answer a stored question about a clip, in the clip's thread."""
    question = _question(job.payload["body"], job.payload["view"])
    if question is None:
        return
    turn = question.turn(audio=await deps.audio_source({"id": question.file_id}))
    await deps.run_turn(
        turn,
        deps.engine.arrive_job(PLATFORM, attempt=job.attempt),
        channel=question.channel,
        thread_ts=question.thread_ts,
        team_id=question.team,
    )


async def give_up(deps: SlackDeps, job: RunningJob) -> None:
    """Every run of the question failed: apologise in the clip's thread."""
    question = _question(job.payload["body"], job.payload["view"])
    if question is None:
        return
    turn = question.turn()
    sink = deps.replier(
        channel=question.channel,
        thread_ts=question.thread_ts,
        team_id=question.team,
        user_id=question.user,
        listening=False,
    )
    await deps.engine.abandon(await deps.with_language(turn), sink)
