"""Typed commands through the core and the real engine, as each platform shows them."""

from __future__ import annotations

from bot import texts
from bot.commands import Button
from tests.commands.conftest import (
    SLACK,
    SLACK_CHANNEL,
    SLACK_DM,
    TELEGRAM,
    TG_GROUP,
    Caller,
    caller,
)
from tests.engine.conftest import Audio, EngineFactory, Harness, voice


async def test_help_names_the_platforms_commands(tg: Caller, slack: Caller, h: Harness) -> None:
    answer = await tg.say("help")
    assert answer.text is not None and answer.ephemeral and not answer.buttons
    assert answer.text.startswith(texts.HELP_INTRO)
    assert "/new — start a fresh conversation" in answer.text
    assert answer.text.endswith("Current model: qwen-audio-turbo-latest.")
    # /start, an empty command, "?" and odd spellings are all help.
    for typed in ("start", "", "?", "/HELP"):
        assert (await tg.say(typed)).text == answer.text

    in_group = (await tg.say("help", chat=TG_GROUP)).text
    assert in_group is not None and in_group.startswith(answer.text + "\n\nIn groups, reply")
    assert "mention @voicebot_test: in a voice message's caption" in in_group
    assert in_group.endswith("Admins can make me answer every voice message with /settings.")

    on_slack = (await slack.say("help")).text
    assert on_slack is not None and on_slack.startswith(texts.SLACK_HELP_INTRO)
    assert "/voicebot usage — what this chat has used" in on_slack
    assert "caption" not in on_slack
    # Slack has nothing to add in channels.
    assert (await slack.say("help", chat=SLACK_CHANNEL)).text == on_slack


async def test_unknown_commands_point_to_help(tg: Caller, slack: Caller) -> None:
    assert (await slack.say("Frobnicate now")).text == (
        "I don't know “frobnicate”. Try `/voicebot help`."
    )
    assert (await tg.say("frobnicate")).text == "I don't know “frobnicate”. Try `/help`."


async def test_refused_users_get_nothing_else(engine_factory: EngineFactory) -> None:
    h = await engine_factory(ALLOWED_USERS="telegram:1")
    stranger = caller(h, TELEGRAM, TG_GROUP, user="2")
    for typed in ("help", "model qwen-audio-chat", "settings temperature 0.1", "forget"):
        answer = await stranger.say(typed)
        assert answer.text == texts.ACCESS_DENIED and not answer.buttons
    press = await stranger.press("model", "qwen-audio-chat")
    assert (press.text, press.notice, press.alert) == (None, texts.ACCESS_DENIED, True)
    assert (await h.engine.get_settings(TG_GROUP)).model == "qwen-audio-turbo-latest"
    assert stranger.admins.asked == 0


async def test_model_menu_with_and_without_buttons(engine_factory: EngineFactory) -> None:
    allowed = ["qwen-audio-turbo-latest", "qwen2-audio-instruct", "qwen3-asr-flash"]
    h = await engine_factory(ALLOWED_MODELS=",".join(allowed))
    menu = await caller(h, TELEGRAM, TG_GROUP).say("model")
    assert menu.text is not None
    assert "• qwen-audio-turbo-latest (current) (trial) — voice chat" in menu.text
    assert "• qwen3-asr-flash — transcription" in menu.text
    assert menu.text.endswith("\n\nAdmins can choose with the buttons below, or with /model NAME.")
    assert menu.buttons == (
        (Button(label="✓ qwen-audio-turbo-latest", action="model", value=allowed[0]),),
        (Button(label="qwen2-audio-instruct", action="model", value=allowed[1]),),
        (Button(label="qwen3-asr-flash", action="model", value=allowed[2]),),
    )
    # Slack shows no buttons, so it does not mention them either.
    plain = await caller(h, SLACK, SLACK_CHANNEL).say("model")
    assert plain.text == menu.text.split("\n\n")[0] and plain.buttons == ()


async def test_model_by_name(tg: Caller, slack: Caller, h: Harness) -> None:
    assert (await tg.say("model qwen-audio-chat")).text == "Model set to qwen-audio-chat."
    assert (await h.engine.get_settings(tg.chat)).model == "qwen-audio-chat"
    # A model name has no spaces: the first word is the name, on every platform.
    answer = await slack.say("model  qwen2-audio-instruct  please")
    assert answer.text == "Model set to qwen2-audio-instruct."
    refused = (await tg.say("model nonsense-model")).text
    assert refused is not None and refused.startswith("I don't know the model “nonsense-model”")
    assert (await h.engine.get_settings(tg.chat)).model == "qwen-audio-chat"


async def test_changes_in_groups_are_for_admins(tg: Caller, slack: Caller, h: Harness) -> None:
    group = caller(h, TELEGRAM, TG_GROUP, user="600")
    group.admins.ids.add("500")
    assert (await group.say("model qwen-audio-chat")).text == texts.NOT_ADMIN
    assert (await group.say("settings temperature 0.2")).text == texts.NOT_ADMIN
    assert (await group.say("model qwen-audio-chat", user="500")).text == (
        "Model set to qwen-audio-chat."
    )
    # Anyone may read.
    shown = await group.say("settings")
    assert shown.text is not None and "Model (model): qwen-audio-chat" in shown.text

    channel = caller(h, SLACK, SLACK_CHANNEL, user="U0USER")
    assert (await channel.say("settings group_policy all_voice")).text == texts.NOT_ADMIN
    channel.admins.ids.add("U0OWNER")
    changed = await channel.say("settings group_policy all_voice", user="U0OWNER")
    assert changed.text is not None and "answers every voice message" in changed.text


async def test_bot_admins_manage_any_chat(engine_factory: EngineFactory) -> None:
    h = await engine_factory(BOT_ADMINS="telegram:900,slack:U0OP")
    group = caller(h, TELEGRAM, TG_GROUP, user="900")
    assert (await group.say("model qwen-audio-chat")).text == "Model set to qwen-audio-chat."
    channel = caller(h, SLACK, SLACK_CHANNEL, user="U0OP")
    assert (await channel.say("model qwen-audio-chat")).text == "Model set to qwen-audio-chat."
    assert group.admins.asked == channel.admins.asked == 0  # never asked the platform


async def test_settings_show_and_change(tg: Caller, slack: Caller, h: Harness) -> None:
    changed = await tg.say("settings temperature 0.3")
    assert changed.text is not None and "Temperature (temperature): 0.3" in changed.text
    assert changed.buttons == ()  # no group policy to choose in a private chat
    prompt = (await tg.say("settings prompt Answer briefly.")).text
    assert prompt is not None and "System prompt (system_prompt): “Answer briefly.”" in prompt
    assert (await tg.say("settings temperature 9")).text == (
        "“temperature” must be a number from 0.0 to 1.99."
    )
    assert (await h.engine.get_settings(tg.chat)).temperature == 0.3
    await h.turn(text="hi")
    assert h.fake.last_request.parameters.get("temperature") == 0.3

    # In a group Telegram offers the group policy as buttons; Slack never has buttons.
    group = await tg.say("settings", chat=TG_GROUP)
    assert [[b.label for b in row] for row in group.buttons] == [
        ["✓ " + texts.POLICY_BUTTON_MENTION],
        [texts.POLICY_BUTTON_ALL_VOICE],
    ]
    assert [b.value for row in group.buttons for b in row] == ["mention", "all_voice"]
    assert (await slack.say("settings", chat=SLACK_CHANNEL)).buttons == ()
    slack_shown = (await slack.say("settings")).text
    assert slack_shown is not None and slack_shown.startswith(texts.SETTINGS_HEADER)


async def test_new_resets_the_conversation_it_is_typed_in(tg: Caller, h: Harness) -> None:
    await h.turn(audio=Audio(voice(1.5)))
    await h.turn(audio=Audio(voice(1.5, seed=1)), thread_key="42")
    assert (await tg.say("new", thread="42")).text == texts.NEW_CONVERSATION
    await h.turn(text="and in the topic?", thread_key="42")
    assert h.fake.last_request.roles == ["user"]  # the topic starts afresh
    await h.turn(text="and here?")
    assert h.fake.last_request.roles == ["user", "assistant", "user"]  # the chat does not


async def test_new_in_a_slack_channel_explains_threads(slack: Caller, h: Harness) -> None:
    await h.turn(audio=Audio(voice(1.5)), chat=SLACK_CHANNEL, user_id="U0USER")
    assert (await slack.say("new", chat=SLACK_CHANNEL)).text == texts.SLACK_NEW_IN_CHANNEL
    await h.turn(text="still there?", chat=SLACK_CHANNEL, user_id="U0USER")
    assert h.fake.last_request.roles == ["user", "assistant", "user"]  # nothing was reset
    # In a DM it resets the DM's own conversation.
    await h.turn(audio=Audio(voice(1.5)), chat=SLACK_DM, user_id="U0USER")
    assert (await slack.say("new")).text == texts.NEW_CONVERSATION
    await h.turn(text="and now?", chat=SLACK_DM, user_id="U0USER")
    assert h.fake.last_request.roles == ["user"]


async def test_usage(tg: Caller, h: Harness) -> None:
    assert (await tg.say("usage")).text == texts.USAGE_EMPTY
    await h.turn(audio=Audio(voice(1.5)))
    usage = (await tg.say("usage")).text
    assert usage is not None and usage.startswith(texts.USAGE_HEADER)
    assert "qwen-audio-turbo-latest: 1 turns" in usage and "Total: 1 turns" in usage
