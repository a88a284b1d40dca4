"""Messages in, replies out: DMs, channels, threads, policy, errors, exactly-once.

Every test runs the whole bot in HTTP mode (signed requests) and in Socket Mode (the
fake websocket), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio

from tests.slack.conftest import CHANNEL, DM, SlackBot, clip


def texts_in(bot: SlackBot, channel: str) -> list[str]:
    return [m.text for m in bot.fake.bot_messages(channel)]


async def test_dm_clip_gets_a_reply_with_status_and_no_thread(bot: SlackBot) -> None:
    f = bot.fake.add_file(clip())
    await bot.send_event(bot.file_message(f))
    [reply] = await bot.replies(DM)
    assert reply.text.startswith("Heard 1 audio clip(s)")
    assert reply.thread_ts is None  # a top-level DM message is answered in the DM
    # The clip was downloaded with the bot token, once.
    assert bot.fake.downloads == [(f["id"], True)]
    [req] = bot.dashscope.requests
    assert len(req.audio) == 1 and not any(role == "assistant" for role in req.roles)


async def test_dm_thread_clip_streams_natively_with_status(bot: SlackBot) -> None:
    root = bot.fake.seed_message(DM, text="let's talk")
    bot.dashscope.queue_reply(chunks=["Hello ", "there, ", "I heard ", "you."], chunk_delay=0.05)
    f = bot.fake.add_file(clip())
    await bot.send_event(bot.file_message(f, thread_ts=root.ts))
    [reply] = await bot.replies(DM)
    assert reply.streamed and reply.thread_ts == root.ts
    assert reply.text == "Hello there, I heard you."
    status = bot.fake.calls_to("assistant.threads.setStatus")
    assert status and status[0].args["status"] == "is listening…"
    start = bot.fake.calls_to("chat.startStream")[0]
    assert start.content_type == "application/json" and start.token == bot.fake.bot_token


async def test_text_with_clip_is_the_instruction(bot: SlackBot) -> None:
    f = bot.fake.add_file(clip())
    await bot.send_event(bot.file_message(f, text="What language is this?"))
    [reply] = await bot.replies(DM)
    assert "Prompt: “What language is this?”" in reply.text
    assert bot.dashscope.requests[0].audio


async def test_channel_policy_mentions_and_threads(bot: SlackBot) -> None:
    # Not mentioned, not in a thread the bot is in: ignored.
    f = bot.fake.add_file(clip())
    await bot.send_event(bot.file_message(f, channel=CHANNEL))
    await bot.send_event(bot.text_message("hello all", channel=CHANNEL))
    await bot.deliveries_done(2)
    assert not bot.fake.bot_messages(CHANNEL) and not bot.dashscope.requests
    assert not bot.fake.downloads

    # A clip that mentions the bot: answered in a new thread under it, streamed.
    g = bot.fake.add_file(clip(seed=1))
    event = bot.file_message(g, channel=CHANNEL, text=f"{bot.mention()} summarise please")
    await bot.send_event(event)
    [reply] = await bot.replies(CHANNEL)
    assert reply.thread_ts == event["ts"] and reply.streamed
    start = bot.fake.calls_to("chat.startStream")[0].args
    assert start["recipient_user_id"] == "U0USER" and start["recipient_team_id"] == "T0TEAM"
    assert "Prompt: “summarise please”" in reply.text

    # In that thread the bot answers without a mention, with the history.
    await bot.send_event(bot.text_message("and the tone?", channel=CHANNEL, thread_ts=event["ts"]))
    replies = await bot.replies(CHANNEL, 2)
    assert "History: 1 earlier repl(ies)." in replies[1].text
    assert replies[1].thread_ts == event["ts"]

    # In another thread it does not take part in: still ignored.
    other = bot.fake.seed_message(CHANNEL, text="unrelated")
    await bot.send_event(bot.text_message("chatting", channel=CHANNEL, thread_ts=other.ts))
    await bot.deliveries_done(5)
    assert len(bot.fake.bot_messages(CHANNEL)) == 2
    assert len(bot.dashscope.requests) == 2


async def test_mention_in_thread_holding_a_clip_analyses_that_clip(bot: SlackBot) -> None:
    f = bot.fake.add_file(clip(3.0))
    parent = bot.file_message(f, channel=CHANNEL)
    await bot.send_event(parent)  # not for the bot
    await bot.deliveries_done(1)
    assert not bot.dashscope.requests and not bot.fake.downloads
    ask = bot.text_message(
        f"{bot.mention()} who is speaking?",
        channel=CHANNEL,
        thread_ts=parent["ts"],
        kind="app_mention",
    )
    await bot.send_event(ask)
    [reply] = await bot.replies(CHANNEL)
    assert reply.thread_ts == parent["ts"]
    assert "Heard 1 audio clip(s): 3" in reply.text and "Prompt: “who is speaking?”" in reply.text
    assert bot.fake.downloads == [(f["id"], True)]


async def test_mention_arriving_as_message_and_app_mention_gets_one_reply(bot: SlackBot) -> None:
    f = bot.fake.add_file(clip())
    event = bot.file_message(f, channel=CHANNEL, text=f"{bot.mention()} hi")
    mention = {**event, "type": "app_mention"}
    mention.pop("subtype")
    mention.pop("channel_type")
    await asyncio.gather(bot.send_event(event), bot.send_event(mention))
    await bot.replies(CHANNEL)
    await bot.deliveries_done(2)
    assert len(bot.fake.bot_messages(CHANNEL)) == 1
    assert len(bot.dashscope.requests) == 1
    assert bot.duplicates() == 1  # the second one named a message already answered


async def test_retries_and_redeliveries_reply_once(bot: SlackBot) -> None:
    f = bot.fake.add_file(clip())
    event = bot.file_message(f)
    event_id = await bot.send_event(event)
    await bot.send_event(event, event_id=event_id, retry_num=1)
    await bot.send_event(event, event_id=event_id, retry_num=2)
    # Same message under a new event id (a redelivery): still the same client_msg_id/ts.
    await bot.send_event(event)
    await bot.replies(DM)
    await bot.deliveries_done(4)
    assert len(bot.fake.bot_messages(DM)) == 1
    assert len(bot.dashscope.requests) == 1
    assert bot.duplicates() == 3


async def test_long_reply_continues_in_new_messages(bot: SlackBot) -> None:
    root = bot.fake.seed_message(DM, text="thread")
    paragraph = "word " * 150 + "\n\n"  # 752 characters
    bot.dashscope.queue_reply(chunks=[paragraph] * 12, chunk_delay=0.01)
    f = bot.fake.add_file(clip())
    await bot.send_event(bot.file_message(f, thread_ts=root.ts))
    replies = await bot.replies(DM)
    assert len(replies) >= 3
    assert all(len(m.text) <= 3900 for m in replies)
    assert all(m.thread_ts == root.ts for m in replies)
    joined = " ".join(m.text for m in replies)
    assert joined.count("word") == 150 * 12


async def test_markdown_is_sent_as_markdown_text_streamed_or_posted(bot: SlackBot) -> None:
    md = "# Summary\n\n**Bold** and *italic*, `code` and [link](https://example.com) <tag>"
    bot.dashscope.queue_reply(chunks=[md])
    root = bot.fake.seed_message(DM, text="thread")
    await bot.send_event(bot.file_message(bot.fake.add_file(clip()), thread_ts=root.ts))
    [streamed] = await bot.replies(DM)
    assert streamed.text == md  # markdown_text is real markdown

    bot.dashscope.queue_reply(chunks=[md])
    await bot.send_event(bot.file_message(bot.fake.add_file(clip(seed=2))))  # top level
    posted = (await bot.replies(DM, 2))[1]
    assert posted.text == md  # chat.postMessage / chat.update render Markdown too
    classic = [
        *bot.fake.calls_to("chat.postMessage"),
        *bot.fake.calls_to("chat.update"),
    ]
    assert classic
    for call in classic[:-1]:  # markdown_text replaces text: Slack wants one or the other
        assert "markdown_text" in call.args and "text" not in call.args
    # The final text comes with the Transcript button: in a markdown block beside it
    # (markdown_text takes no blocks), ``text`` the notification's fallback.
    final = classic[-1].args
    assert "markdown_text" not in final
    assert final["blocks"][0] == {"type": "markdown", "text": md}  # the whole reply
    assert [b["type"] for b in final["blocks"]] == ["markdown", "actions"]


async def test_rate_limited_updates_slow_down_and_the_reply_completes(bot: SlackBot) -> None:
    bot.fake.script("chat.update", error="ratelimited", retry_after=1, times=3)
    bot.dashscope.queue_reply(chunks=[f"part {i}. " for i in range(20)], chunk_delay=0.03)
    await bot.send_event(bot.file_message(bot.fake.add_file(clip())))
    [reply] = await bot.replies(DM)
    assert len(bot.fake.calls_to("chat.update")) >= 4  # three refused, then accepted
    assert reply.text == "".join(f"part {i}. " for i in range(20)).strip()


async def test_streaming_unavailable_falls_back_to_post_and_update(bot: SlackBot) -> None:
    bot.fake.script("chat.startStream", error="not_allowed_token_type", times=1)
    bot.dashscope.queue_reply(chunks=["one ", "two ", "three"], chunk_delay=0.05)
    root = bot.fake.seed_message(CHANNEL, text="root")
    event = bot.file_message(
        bot.fake.add_file(clip()), channel=CHANNEL, text=bot.mention(), thread_ts=root.ts
    )
    await bot.send_event(event)
    [reply] = await bot.replies(CHANNEL)
    assert reply.text == "one two three"
    assert not reply.streamed and reply.thread_ts == root.ts
    assert bot.fake.calls_to("chat.postMessage")


async def test_stream_broken_midway_continues_in_a_classic_message(bot: SlackBot) -> None:
    bot.fake.script("chat.appendStream", error="streaming_state_conflict", times=5)
    bot.dashscope.queue_reply(chunks=["alpha ", "beta ", "gamma ", "delta"], chunk_delay=0.1)
    root = bot.fake.seed_message(DM, text="thread")
    await bot.send_event(bot.file_message(bot.fake.add_file(clip()), thread_ts=root.ts))
    await bot.turns()
    final = [m for m in bot.fake.bot_messages(DM) if m.text.endswith("delta")]
    assert final[-1].text == "alpha beta gamma delta"


async def test_engine_errors_become_short_replies_in_the_thread(bot: SlackBot) -> None:
    bot.dashscope.queue_error(429, "Throttling.RateQuota")
    root = bot.fake.seed_message(DM, text="thread")
    await bot.send_event(bot.file_message(bot.fake.add_file(clip()), thread_ts=root.ts))
    [reply] = await bot.replies(DM)
    assert reply.thread_ts == root.ts
    assert reply.text == "The model is busy right now. Please try again in a minute."


async def test_not_audio_is_refused_by_the_pipeline(bot: SlackBot) -> None:
    f = bot.fake.add_file(
        b"%PDF-1.4 not audio at all" * 50,
        name="doc.pdf",
        mimetype="application/pdf",
        filetype="pdf",
        subtype=None,
    )
    await bot.send_event(bot.file_message(f))
    [reply] = await bot.replies(DM)
    assert reply.text == "That doesn't look like an audio or video file."


async def test_file_over_20_mb_is_refused_before_download(bot: SlackBot) -> None:
    f = bot.fake.add_file(clip(), size=25 * 1024 * 1024)
    await bot.send_event(bot.file_message(f))
    [reply] = await bot.replies(DM)
    assert reply.text == "That file is too large for me (the limit is 20 MB)."
    assert bot.fake.downloads == [] and not bot.dashscope.requests


async def test_html_login_page_is_an_error_not_audio(bot: SlackBot) -> None:
    f = bot.fake.add_file(clip())
    f["url_private_download"] = f["url_private_download"].replace(f["id"], "FMISSING")
    await bot.send_event(bot.file_message(f))
    [reply] = await bot.replies(DM)
    assert "sign-in page" in reply.text
    assert not bot.dashscope.requests


async def test_slack_connect_stub_file_is_completed_with_files_info(bot: SlackBot) -> None:
    f = bot.fake.add_file(clip())
    stub = {"id": f["id"], "file_access": "check_file_info", "mode": "hidden_by_limit"}
    await bot.send_event(bot.file_message(stub))
    [reply] = await bot.replies(DM)
    assert reply.text.startswith("Heard 1 audio clip(s)")
    assert bot.fake.calls_to("files.info")[0].http_method in ("GET", "POST")
