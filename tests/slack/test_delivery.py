"""Delivery truth on Slack: streams and posts that Slack rate-limits still end with the whole
reply, shown once; a reply Slack never takes is kept and delivered at the next message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot import texts
from bot.storage.database import Database
from bot.storage.tables import Turn, TurnRole
from tests.fakes.dashscope import FakeDashScope
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.slack.conftest import DM, USER, SlackBot, clip, start_bot, stop_bot

# ~5,200 characters in 40 pieces: more than one Slack message, streamed in many steps.
PIECES = [
    f"Paragraph {i} says something useful about the recording. " * 2 + "\n\n" for i in range(40)
]
REPLY = "".join(PIECES)


def norm(text: str) -> str:
    return " ".join(text.split())


def readable(messages: list[FakeMessage]) -> str:
    """What a user can read: every finished message of the bot, in order."""
    assert not any(m.streaming for m in messages), "a message was left streaming"
    return norm(" ".join(m.text for m in messages))


async def reply_statuses(db: Database) -> list[str]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(Turn.status).where(Turn.role == TurnRole.ASSISTANT.value).order_by(Turn.id)
        )
        return [str(r[0]) for r in rows.all()]


@pytest.fixture
async def slow_bot(
    fake_slack: FakeSlack, dashscope_fake: FakeDashScope, db: Database
) -> AsyncIterator[SlackBot]:
    fake_slack.add_user(USER)
    running = await start_bot(
        mode="http", fake=fake_slack, dashscope=dashscope_fake, database=db, DELIVERY_TIMEOUT=20
    )
    try:
        yield running
    finally:
        await stop_bot(running)


async def stream_a_reply(bot: SlackBot) -> list[FakeMessage]:
    bot.dashscope.queue_reply(chunks=PIECES, chunk_delay=0.005)
    root = bot.fake.seed_message(DM, text="thread")
    await bot.send_event(bot.file_message(bot.fake.add_file(clip()), thread_ts=root.ts))
    return await bot.replies(DM)


@pytest.mark.parametrize("method", ["chat.stopStream", "chat.startStream", "chat.appendStream"])
async def test_a_stream_rate_limited_three_times_shows_the_reply_exactly_once(
    slow_bot: SlackBot, db: Database, method: str
) -> None:
    fake = slow_bot.fake
    fake.script(method, times=3)  # 429 ratelimited, Retry-After: 1
    messages = await stream_a_reply(slow_bot)
    assert readable(messages) == norm(REPLY)
    assert len(messages) >= 2  # the reply is longer than one message
    calls = len(fake.calls_to(method))
    if method == "chat.stopStream":
        # Three refused for the first message, which is then finished another way.
        assert calls >= 4 and fake.calls_to("chat.update")
    elif method == "chat.startStream":
        assert calls == 3 and fake.calls_to("chat.postMessage")  # then posted instead
    else:
        # At least one append was refused; what it carried went with a later call.
        left = sum(script.times for script in fake._scripts.get(method, []))
        assert calls >= 1 and left < 3
    if method != "chat.appendStream":
        assert not fake._scripts.get(method)  # all three refusals were served
    assert await reply_statuses(db) == ["complete"]


async def test_a_reply_slack_never_takes_is_delivered_at_the_next_message(
    fake_slack: FakeSlack, dashscope_fake: FakeDashScope, db: Database
) -> None:
    fake_slack.add_user(USER)
    bot = await start_bot(
        mode="http", fake=fake_slack, dashscope=dashscope_fake, database=db, DELIVERY_TIMEOUT=1.5
    )
    try:
        fake_slack.script("chat.postMessage", times=50)  # ratelimited, Retry-After: 1
        dashscope_fake.queue_reply(chunks=["The first ", "answer."])
        await bot.send_event(bot.text_message("hello"))  # top level: posted, then updated
        [outcome] = await bot.turns(1)
        assert outcome.status == "undelivered"
        assert fake_slack.bot_messages(DM) == []
        assert await reply_statuses(db) == ["undelivered"]

        fake_slack._scripts.clear()  # Slack takes messages again
        dashscope_fake.queue_reply(chunks=["The second answer."])
        await bot.send_event(bot.text_message("still there?"))
        await bot.turns(2)
        late, second = (m.text for m in fake_slack.bot_messages(DM))
        assert late == f"_{texts.DELIVERED_LATE}_\n\nThe first answer."
        assert second == "The second answer."
        assert await reply_statuses(db) == ["complete", "complete"]
    finally:
        await stop_bot(bot)


async def test_an_error_notice_names_slacks_own_command(slow_bot: SlackBot) -> None:
    slow_bot.dashscope.queue_error(status=404, code="ModelNotFound")
    await slow_bot.send_event(slow_bot.text_message("hello"))
    await slow_bot.turns(1)
    [notice] = slow_bot.fake.bot_messages(DM)
    assert notice.text == (
        "DashScope says qwen-audio-turbo-latest doesn't exist or isn't available to this bot's"
        " key. An admin can pick another with /voicebot model."
    )
