"""``/voicebot``: acked at once, answered ephemerally through response_url; admin checks."""

from __future__ import annotations

from tests.slack.conftest import CHANNEL, DM, USER, SlackBot, clip


async def test_help_model_settings_usage_in_a_dm(bot: SlackBot) -> None:
    answer = await bot.command("help")
    assert answer["response_type"] == "ephemeral"
    assert "/voicebot new" in answer["text"] and "qwen-audio-turbo-latest" in answer["text"]
    # Slack wording: clips and threads, not Telegram's captions.
    assert "Ask about this audio" in answer["text"] and "caption" not in answer["text"]

    answer = await bot.command("model")
    assert "qwen-audio-turbo-latest (current)" in answer["text"]

    # In their own DM anyone manages the chat.
    answer = await bot.command("model qwen2-audio-instruct")
    assert answer["text"] == "Model set to qwen2-audio-instruct."
    answer = await bot.command("model no-such-model")
    assert "no-such-model" in answer["text"]

    answer = await bot.command("settings temperature 0.5")
    assert "Temperature (temperature): 0.5" in answer["text"]
    answer = await bot.command("settings")
    assert "Model (model): qwen2-audio-instruct" in answer["text"]

    assert (await bot.command("usage"))["text"] == "No usage recorded in this chat yet."
    assert (await bot.command("frobnicate"))["text"] == (
        "I don't know “frobnicate”. Try `/voicebot help`."
    )


async def test_commands_are_spelt_the_slack_way(bot: SlackBot) -> None:
    answer = await bot.command("")  # a bare /voicebot is help
    assert answer["response_type"] == "ephemeral"
    lines = answer["text"].splitlines()
    listed = [line.split(" — ")[0] for line in lines if " — " in line]
    assert listed == [
        "/voicebot new",
        "/voicebot model",
        "/voicebot settings",
        "/voicebot usage",
        "/voicebot forget",
        "/voicebot help",
    ]
    # No buttons on Slack, so the model list does not mention any.
    models = await bot.command("model")
    assert "buttons" not in models["text"] and "blocks" not in models
    assert (await bot.command("HELP"))["text"] == answer["text"]


async def test_new_and_forget(bot: SlackBot) -> None:
    await bot.send_event(bot.file_message(bot.fake.add_file(clip())))
    await bot.turns(1)
    answer = await bot.command("usage")
    assert "Total: 1 turns" in answer["text"]

    assert "fresh conversation" in (await bot.command("new"))["text"]
    await bot.send_event(bot.file_message(bot.fake.add_file(clip(seed=3))))
    await bot.turns(2)
    assert "History" not in bot.fake.bot_messages(DM)[-1].text
    assert bot.dashscope.last_request.roles == ["user"]  # nothing from before "new" was sent

    answer = await bot.command("forget")
    assert answer["text"].startswith("Done. I deleted 2 conversations")


async def test_channel_settings_need_a_workspace_admin(bot: SlackBot) -> None:
    bot.fake.add_user("U0ADMIN", admin=True)
    bot.fake.add_user("U0OWNER", owner=True)
    where = {"channel": CHANNEL, "channel_name": "general"}

    # Anyone may read.
    assert "Models you can choose" in (await bot.command("model", **where))["text"]
    # A channel's conversations are its threads: "new" says how to start one instead.
    assert "every thread is its own conversation" in (await bot.command("new", **where))["text"]
    # Members may not change or forget.
    refused = await bot.command("model qwen2-audio-instruct", user=USER, **where)
    assert refused["text"] == "Only this chat's admins can change that."
    assert (await bot.command("forget", user=USER, **where))["text"] == refused["text"]
    # Admins and owners may (users.info says so).
    ok = await bot.command("model qwen2-audio-instruct", user="U0ADMIN", **where)
    assert ok["text"] == "Model set to qwen2-audio-instruct."
    ok = await bot.command("settings group_policy all_voice", user="U0OWNER", **where)
    assert "answers every voice message" in ok["text"]
    assert {c.args["user"] for c in bot.fake.calls_to("users.info")} >= {"U0ADMIN", "U0OWNER"}

    # With all_voice every clip in the channel is answered, mention or not.
    await bot.send_event(bot.file_message(bot.fake.add_file(clip()), channel=CHANNEL))
    [reply] = await bot.replies(CHANNEL)
    assert reply.text.startswith("Heard 1 audio clip(s)")
    assert bot.dashscope.requests[-1].model == "qwen2-audio-instruct"


async def test_bot_admins_manage_any_channel(
    fake_slack,
    dashscope_fake,
    db,  # type: ignore[no-untyped-def]
) -> None:
    from tests.slack.conftest import start_bot, stop_bot

    fake_slack.add_user(USER)
    bot = await start_bot(
        mode="http",
        fake=fake_slack,
        dashscope=dashscope_fake,
        database=db,
        BOT_ADMINS="slack:U0USER",
    )
    try:
        answer = await bot.command(
            "model qwen2-audio-instruct", channel=CHANNEL, channel_name="general"
        )
        assert answer["text"] == "Model set to qwen2-audio-instruct."
    finally:
        await stop_bot(bot)
