"""Slack: an accidental tap on the record button gets a hint and leaves nothing behind
(issue #14, item 2). HTTP mode only: the transport is beside the point here. Hour-long
browser clips (WebM without a duration): tests/audio/test_long_and_short.py and
tests/engine/test_long_and_short.py."""

from __future__ import annotations

from sqlalchemy import func, select

from bot import texts
from bot.storage.tables import Turn
from tests.slack.conftest import DM, SlackBot, clip


async def turns_stored(bot: SlackBot) -> int:
    async with bot.core.database.sessions() as session:
        return int(await session.scalar(select(func.count(Turn.id))) or 0)


async def test_an_accidental_tap_gets_a_hint_and_nothing_is_stored(http_bot: SlackBot) -> None:
    f = http_bot.fake.add_file(clip(0.2), duration_ms=200)
    await http_bot.send_event(http_bot.file_message(f))
    [reply] = await http_bot.replies(DM)
    assert reply.text == (
        "That voice note was too short for me to hear anything — hold the button a bit longer."
    )
    assert reply.text == texts.AUDIO_TOO_SHORT
    assert not http_bot.dashscope.requests
    assert await turns_stored(http_bot) == 0
