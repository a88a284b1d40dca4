"""The Transcript button under replies to voice, on Slack: a Block Kit button on the final
message, pressed through Interactivity (signed, HTTP mode), answered in the reply's place."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from bot import texts
from bot.adapters.slack.commands import STYLE
from bot.storage.tables import AudioClip
from tests.fakes.dashscope import Fail, Reply, model_answers, request_audio
from tests.fakes.slack import FakeMessage
from tests.slack.conftest import DM, TEAM, USER, SlackBot, clip

ASR = "qwen3-asr-flash"


def transcript_button(message: FakeMessage) -> dict[str, Any] | None:
    buttons = [
        element
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]
    assert len(buttons) <= 1
    return buttons[0] if buttons else None


async def press(bot: SlackBot, message: FakeMessage, *, user: str = USER) -> str:
    """Press the Transcript button of a bot message as Slack sends it; returns the key of
    the press's response_url (where ephemeral answers arrive)."""
    button = transcript_button(message)
    assert button is not None
    key = uuid.uuid4().hex
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message.ts,
        "channel_id": message.channel,
        "is_ephemeral": False,
    }
    if message.thread_ts:
        container["thread_ts"] = message.thread_ts
    await bot.interactive(
        {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": TEAM},
            "api_app_id": "A0APP",
            "token": "verification-token",
            "container": container,
            "trigger_id": f"tr.{key}",
            "team": {"id": TEAM, "domain": "fake"},
            "is_enterprise_install": False,
            "channel": {"id": message.channel, "name": "directmessage"},
            "message": {**message.as_api(), "user": bot.fake.bot_user_id},
            "state": {"values": {}},
            "response_url": bot.fake.response_url(key),
            "actions": [
                {
                    "type": "button",
                    "action_id": button["action_id"],
                    "block_id": "b0",
                    "text": button["text"],
                    "value": button["value"],
                    "action_ts": "1700000001.000200",
                }
            ],
        }
    )
    return key


async def ephemeral(bot: SlackBot, key: str) -> dict[str, Any]:
    await bot.fake.wait_for(lambda: any(r["_key"] == key for r in bot.fake.responses))
    [answer] = [r for r in bot.fake.responses if r["_key"] == key]
    return answer


def asr_requests(bot: SlackBot) -> int:
    return sum(1 for r in bot.dashscope.requests if r.model == ASR)


async def test_transcript_button_in_a_thread_and_top_level(http_bot: SlackBot) -> None:
    bot = http_bot
    fake = bot.fake
    bot.dashscope.script(
        model_answers(
            ASR,
            Fail(status=500, code="InternalError"),
            Reply(chunks=["so *this* is <it>"], language="en"),
        )
    )
    # In a DM thread the reply streams: stopStream appends the button under it.
    root = fake.seed_message(DM, text="thread")
    await bot.send_event(bot.file_message(fake.add_file(clip()), thread_ts=root.ts))
    [reply] = await bot.replies(DM)
    assert reply.streamed and reply.text.startswith("Heard 1 audio clip(s)")
    button = transcript_button(reply)
    assert button is not None and button["text"]["text"] == texts.TRANSCRIPT_BUTTON
    [stop] = fake.calls_to("chat.stopStream")
    assert stop.args["blocks"] == reply.blocks

    # DashScope fails: the presser alone is told, nothing is stored.
    failed = await ephemeral(bot, await press(bot, reply))
    assert failed["response_type"] == "ephemeral"
    assert failed["text"] == texts.TRANSCRIPT_FAILED.format(reason=texts.MODEL_SERVER_ERROR)
    assert len(fake.bot_messages(DM)) == 1

    # Pressed again: the transcript, for everyone, in the thread, shown as said.
    await press(bot, reply)
    await fake.wait_for(lambda: len(fake.bot_messages(DM)) == 2)
    posted = fake.bot_messages(DM)[1]
    assert posted.thread_ts == root.ts and posted.mrkdwn is False
    assert posted.text == "Transcript (English):\nso *this* is &lt;it&gt;"
    assert asr_requests(bot) == 2
    async with bot.core.database.sessions() as session:
        stored = (await session.execute(select(AudioClip.data))).scalars().all()
    assert request_audio(bot.dashscope.requests[-1]) == [bytes(d) for d in stored]
    downloads = len(fake.downloads)

    # A second press costs nothing.
    await press(bot, reply)
    await fake.wait_for(lambda: len(fake.bot_messages(DM)) == 3)
    assert fake.bot_messages(DM)[2].text == posted.text
    assert asr_requests(bot) == 2 and len(fake.downloads) == downloads

    # Top level in a DM the reply is posted and updated: its final text goes in a
    # markdown block beside the button. A text-only turn gets none.
    await bot.send_event(bot.file_message(fake.add_file(clip(seed=4))))
    await bot.turns(2)
    top = fake.bot_messages(DM)[-1]
    assert top.thread_ts is None and not top.streamed
    assert [b["type"] for b in top.blocks] == ["markdown", "actions"]
    assert top.blocks[0]["text"] == top.text
    await bot.send_event(bot.text_message("and now?"))
    await bot.turns(3)
    assert transcript_button(fake.bot_messages(DM)[-1]) is None

    # After forget the button says why it can't work any more.
    ask = await bot.command("forget")
    assert ask["text"] == texts.FORGET_CONFIRM
    from tests.slack.test_commands import press as press_answer

    await press_answer(bot, ask, "forget:yes")
    gone = await ephemeral(bot, await press(bot, top))
    assert gone["text"] == STYLE.format(texts.TRANSCRIPT_TURN_GONE)
    assert "/voicebot forget" in gone["text"]
    assert asr_requests(bot) == 2


async def test_always_posts_the_transcript_in_the_thread(http_bot: SlackBot) -> None:
    bot = http_bot
    bot.dashscope.script(model_answers(ASR, Reply(chunks=["hola"], language="es")))
    answer = await bot.command("settings transcript always")
    assert "Transcripts (transcript): posted with every reply to voice" in answer["text"]
    root = bot.fake.seed_message(DM, text="thread")
    await bot.send_event(bot.file_message(bot.fake.add_file(clip()), thread_ts=root.ts))
    await bot.turns(1)
    reply, posted = bot.fake.bot_messages(DM)
    assert transcript_button(reply) is None
    assert (posted.thread_ts, posted.text) == (root.ts, "Transcript (Spanish):\nhola")
