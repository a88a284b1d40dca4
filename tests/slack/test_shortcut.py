"""The "Ask about this audio" message shortcut: modal, then analysis in the thread."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.slack.conftest import CHANNEL, TEAM, USER, SlackBot, clip


def shortcut(bot: SlackBot, message: dict[str, Any], channel: str = CHANNEL) -> dict[str, Any]:
    return {
        "type": "message_action",
        "token": "verification-token",
        "action_ts": "1700000000.1",
        "team": {"id": TEAM, "domain": "fake"},
        "user": {"id": USER, "name": "user"},
        "channel": {"id": channel, "name": "general"},
        "is_enterprise_install": False,
        "callback_id": "ask_about_audio",
        "trigger_id": f"tr.{uuid.uuid4().hex}",
        "message_ts": message["ts"],
        "message": message,
        "response_url": bot.fake.response_url(),
    }


def submission(view: dict[str, Any], question: str) -> dict[str, Any]:
    view = {
        **view,
        "hash": uuid.uuid4().hex,
        "state": {
            "values": {
                "question": {"question_input": {"type": "plain_text_input", "value": question}}
            }
        },
    }
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "fake"},
        "user": {"id": USER, "name": "user"},
        "view": view,
        "api_app_id": "A0APP",
        "trigger_id": f"tr.{uuid.uuid4().hex}",
    }


async def test_shortcut_opens_modal_and_answers_in_the_clips_thread(bot: SlackBot) -> None:
    f = bot.fake.add_file(clip(2.5))
    event = bot.file_message(f, channel=CHANNEL)
    message = {k: event[k] for k in ("type", "user", "ts", "text", "files")}
    await bot.interactive(shortcut(bot, message))
    await bot.fake.wait_for(lambda: bot.fake.calls_to("views.open"))
    opened = bot.fake.calls_to("views.open")[0].args
    view = opened["view"] if isinstance(opened["view"], dict) else json.loads(opened["view"])
    assert view["type"] == "modal" and view["callback_id"] == "ask_about_audio_modal"

    await bot.interactive(submission({**view, "id": "V0MODAL"}, "Is anyone laughing?"))
    [reply] = await bot.replies(CHANNEL)
    assert reply.thread_ts == event["ts"]
    assert "Heard 1 audio clip(s): 2.5" in reply.text
    assert "Prompt: “Is anyone laughing?”" in reply.text


async def test_shortcut_on_a_message_without_audio_says_so(bot: SlackBot) -> None:
    stored = bot.fake.seed_message(CHANNEL, text="just text")
    await bot.interactive(shortcut(bot, stored.as_api()))
    await bot.fake.wait_for(lambda: bot.fake.responses)
    assert bot.fake.responses[0]["text"].startswith("That message has no audio clip")
    assert not bot.fake.calls_to("views.open")
