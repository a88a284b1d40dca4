"""A Slack thread's conversation starts from the message it replies to (issue #14, 3).

What the model is sent is read from the fake DashScope's requests; what the user sees,
from the fake Slack. Every test runs on SQLite and PostgreSQL; the first one in both
Slack modes too (the rest do not depend on how events arrive).
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot import texts
from bot.engine.domain import THREAD_PARENT_KIND
from bot.storage.tables import Turn
from tests.fakes.dashscope import RecordedRequest
from tests.slack.conftest import CHANNEL, DM, SlackBot, clip

QUESTION = "what did I just ask you?"


def user_texts(req: RecordedRequest) -> list[str]:
    return [text for role, text in req.texts if role == "user"]


def assistant_texts(req: RecordedRequest) -> list[str]:
    return [text for role, text in req.texts if role == "assistant"]


async def openings(bot: SlackBot) -> list[Turn]:
    """The stored turns that open thread conversations."""
    async with bot.core.database.sessions() as session:
        rows = await session.execute(
            select(Turn).where(Turn.kind == THREAD_PARENT_KIND).order_by(Turn.id)
        )
        return list(rows.scalars().all())


async def test_dm_thread_under_an_answered_clip_starts_from_the_clip_and_answer(
    bot: SlackBot,
) -> None:
    f = bot.fake.add_file(clip(2.0))
    note = bot.file_message(f)
    await bot.send_event(note)
    [answer] = await bot.replies(DM)
    assert answer.thread_ts is None  # answered at the top level

    await bot.send_event(bot.text_message(QUESTION, thread_ts=note["ts"]))
    replies = await bot.replies(DM, 2)
    assert replies[1].thread_ts == note["ts"]
    req = bot.dashscope.requests[1]
    # The parent clip, the bot's earlier answer, then the question.
    assert req.roles == ["user", "assistant", "user"]
    assert [(a.message_index, round(a.duration or 0, 1)) for a in req.audio] == [(0, 2.0)]
    assert assistant_texts(req) == [answer.text]
    assert user_texts(req) == [QUESTION]
    # From the stored turn: no second download, no Slack lookup of the parent.
    assert bot.fake.downloads == [(f["id"], True)]
    assert not bot.fake.calls_to("conversations.replies")

    # The next message in the thread has the same start, now followed by the first answer.
    await bot.send_event(bot.text_message("and before that?", thread_ts=note["ts"]))
    await bot.replies(DM, 3)
    later = bot.dashscope.requests[2]
    assert later.roles == ["user", "assistant", "user", "assistant", "user"]
    assert [a.message_index for a in later.audio] == [0]
    assert assistant_texts(later) == [answer.text, replies[1].text]
    assert len(await openings(bot)) == 2  # the parent and its answer, copied once


async def test_dm_thread_under_the_bots_answer_starts_from_the_same_exchange(
    http_bot: SlackBot,
) -> None:
    bot = http_bot
    f = bot.fake.add_file(clip(2.0))
    await bot.send_event(bot.file_message(f, text="Is this English?"))
    [answer] = await bot.replies(DM)

    await bot.send_event(bot.text_message(QUESTION, thread_ts=answer.ts))
    await bot.replies(DM, 2)
    req = bot.dashscope.requests[1]
    assert req.roles == ["user", "assistant", "user"]
    assert [a.message_index for a in req.audio] == [0]
    assert user_texts(req) == ["Is this English?", QUESTION]
    assert assistant_texts(req) == [answer.text]
    assert bot.fake.downloads == [(f["id"], True)]


async def test_dm_thread_under_a_text_message_starts_from_its_text_and_answer(
    http_bot: SlackBot,
) -> None:
    bot = http_bot
    hello = bot.text_message("Remember the number 42.")
    await bot.send_event(hello)
    [answer] = await bot.replies(DM)

    await bot.send_event(bot.text_message("Which number?", thread_ts=hello["ts"]))
    await bot.replies(DM, 2)
    req = bot.dashscope.requests[1]
    assert req.roles == ["user", "assistant", "user"] and not req.audio
    assert user_texts(req) == ["Remember the number 42.", "Which number?"]
    assert assistant_texts(req) == [answer.text]


async def test_channel_thread_under_a_clip_the_bot_answered_keeps_clip_and_answer(
    http_bot: SlackBot,
) -> None:
    bot = http_bot
    f = bot.fake.add_file(clip(2.0))
    note = bot.file_message(f, channel=CHANNEL, text=f"{bot.mention()} summarise this")
    await bot.send_event(note)
    [answer] = await bot.replies(CHANNEL)
    assert answer.thread_ts == note["ts"]

    await bot.send_event(bot.text_message(QUESTION, channel=CHANNEL, thread_ts=note["ts"]))
    await bot.replies(CHANNEL, 2)
    req = bot.dashscope.requests[1]
    assert req.roles == ["user", "assistant", "user"]
    assert [a.message_index for a in req.audio] == [0]
    assert user_texts(req) == ["summarise this", QUESTION]
    assert assistant_texts(req) == [answer.text]
    # The parent is the thread's own first turn: nothing copied, nothing read again.
    assert await openings(bot) == []
    assert bot.fake.downloads == [(f["id"], True)]


async def test_a_parent_the_bot_never_saw_is_read_from_slack_once(http_bot: SlackBot) -> None:
    bot = http_bot
    # A clip posted before the bot was added: Slack never sent it as an event.
    f = bot.fake.add_file(clip(3.0))
    parent = bot.fake.seed_message(DM, text="notes from the call", files=[f])

    await bot.send_event(bot.text_message(QUESTION, thread_ts=parent.ts))
    [first] = await bot.replies(DM)
    assert first.thread_ts == parent.ts and first.text.startswith("Heard 1 audio clip(s): 3")
    [read] = bot.fake.calls_to("conversations.replies")
    assert (read.args["ts"], read.args["limit"]) == (parent.ts, "1")
    assert read.http_method == "GET"
    req = bot.dashscope.requests[0]
    # Nobody answered the parent: it opens the question's message, framed.
    assert req.roles == ["user"]
    assert user_texts(req) == [
        texts.THREAD_PARENT_AUDIO_TEXT.format(text="notes from the call"),
        QUESTION,
    ]
    assert bot.fake.downloads == [(f["id"], True)]

    await bot.send_event(bot.text_message("and the date?", thread_ts=parent.ts))
    await bot.replies(DM, 2)
    later = bot.dashscope.requests[1]
    assert later.roles == ["user", "assistant", "user"]
    assert [a.message_index for a in later.audio] == [0]
    # Kept as the thread's history: not read, downloaded nor converted again.
    assert len(bot.fake.calls_to("conversations.replies")) == 1
    assert bot.fake.downloads == [(f["id"], True)]
    [opening] = await openings(bot)
    assert (opening.role, opening.source_message_id, len(opening.clips)) == ("user", parent.ts, 1)


async def test_channel_thread_under_someone_elses_message_starts_from_its_text(
    http_bot: SlackBot,
) -> None:
    bot = http_bot
    parent = bot.fake.seed_message(
        CHANNEL, user="U0OTHER", text="Shall we move the launch to Friday?"
    )
    ask = bot.text_message(
        f"{bot.mention()} what do you think?",
        channel=CHANNEL,
        thread_ts=parent.ts,
        kind="app_mention",
    )
    await bot.send_event(ask)
    [reply] = await bot.replies(CHANNEL)
    assert reply.thread_ts == parent.ts
    [req] = bot.dashscope.requests
    assert user_texts(req) == [
        texts.THREAD_PARENT_TEXT.format(text="Shall we move the launch to Friday?"),
        "what do you think?",
    ]
    # The thread was read once, to decide whether to answer; its parent came with it.
    assert len(bot.fake.calls_to("conversations.replies")) == 1
    [opening] = await openings(bot)
    assert opening.user_external_id == "U0OTHER"


@pytest.mark.parametrize("why", ["deleted", "missing_scope"])
async def test_a_parent_that_cannot_be_read_leaves_the_thread_on_its_own(
    http_bot: SlackBot, why: str
) -> None:
    bot = http_bot
    f = bot.fake.add_file(clip(2.0))
    parent = bot.fake.seed_message(DM, text="the plan", files=[f])
    first = bot.fake.seed_message(DM, text="ok", thread_ts=parent.ts)  # a reply: it stays
    if why == "deleted":
        bot.fake.delete_message(DM, parent.ts)  # Slack's tombstone, as it has a reply
    else:
        bot.fake.unreadable[DM] = "missing_scope"

    await bot.send_event(bot.text_message(QUESTION, thread_ts=parent.ts))
    [reply] = await bot.replies(DM)
    assert first.thread_ts == reply.thread_ts == parent.ts
    # Answered as a conversation of its own, plainly.
    assert reply.text == f"Heard 0 audio clip(s). Prompt: “{QUESTION}”."
    [req] = bot.dashscope.requests
    assert req.roles == ["user"] and not req.audio
    assert bot.fake.downloads == [] and await openings(bot) == []


async def test_a_parent_whose_audio_cannot_be_used_is_said_under_the_reply(
    http_bot: SlackBot,
) -> None:
    bot = http_bot
    f = bot.fake.add_file(clip(2.0))
    f["url_private_download"] = "https://files.attacker.example/steal.m4a"
    parent = bot.fake.seed_message(DM, text="listen to this", files=[f])

    await bot.send_event(bot.text_message(QUESTION, thread_ts=parent.ts))
    [reply] = await bot.replies(DM)
    assert reply.text.endswith(f"_{texts.THREAD_PARENT_AUDIO_FAILED}_")  # a note
    [req] = bot.dashscope.requests
    assert not req.audio and bot.fake.downloads == []  # the token never went there
    assert user_texts(req) == [
        texts.THREAD_PARENT_TEXT.format(text="listen to this"),
        QUESTION,
    ]


async def test_first_replies_arriving_together_open_the_thread_once(http_bot: SlackBot) -> None:
    bot = http_bot
    f = bot.fake.add_file(clip(2.0))
    parent = bot.fake.seed_message(DM, text="", files=[f])
    one = bot.text_message("first?", thread_ts=parent.ts)
    two = bot.text_message("second?", thread_ts=parent.ts)
    await asyncio.gather(bot.send_event(one), bot.send_event(two))
    await bot.replies(DM, 2)
    [opening] = await openings(bot)
    assert opening.text is None and len(opening.clips) == 1
    assert len(bot.fake.calls_to("conversations.replies")) == 1
    assert bot.fake.downloads == [(f["id"], True)]
    first, second = bot.dashscope.requests
    assert first.roles == ["user"] and [a.message_index for a in first.audio] == [0]
    assert second.roles == ["user", "assistant", "user"]
    assert [a.message_index for a in second.audio] == [0]
