"""Telegram: an hour-long voice note is answered with a note on what was heard; an
accidental tap gets a hint and leaves nothing behind (issue #14, items 1 and 2)."""

from __future__ import annotations

from sqlalchemy import func, select

from bot import texts
from bot.storage.tables import Turn
from tests.audio import synth
from tests.telegram.conftest import Harness, Running, voice


async def turns_stored(harness: Harness) -> int:
    async with harness.db.sessions() as session:
        return int(await session.scalar(select(func.count(Turn.id))) or 0)


async def test_an_hour_long_voice_note_is_answered_with_what_was_heard(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    meeting = synth.long_opus(3600.0)  # 2.6 MB at 6 kbit/s: well under the 20 MB limit
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=meeting, duration=3600))
    [reply] = await harness.replies(chat, 1)
    assert reply.endswith("\n\nI listened to the first 3:30 of 1:00:00.")
    assert [round(d or 0) for d in harness.ds.requests[-1].audio_durations] == [30] * 7


async def test_an_accidental_tap_gets_a_hint_and_nothing_is_stored(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tap = tg.voice_message(chat=chat, user=ann, data=voice(0.2), duration=0)
    tg.inject(message=tap)
    await harness.replies(chat, 1)
    [reply] = tg.sent(chat["id"])
    assert reply["text"] == (
        "That voice note was too short for me to hear anything — hold the button a bit longer."
    )
    assert reply["text"] == texts.AUDIO_TOO_SHORT
    assert reply["reply_to_message"]["message_id"] == tap["message_id"]
    assert not harness.ds.requests
    assert await turns_stored(harness) == 0
