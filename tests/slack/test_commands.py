"""``/voicebot``: acked at once, answered ephemerally through response_url; admin checks."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

from bot import texts
from tests.slack.conftest import CHANNEL, DM, TEAM, USER, SlackBot, clip


def buttons(answer: dict[str, Any]) -> dict[str, str]:
    """The buttons of an answer's Block Kit: action id → label."""
    return {
        element["action_id"]: element["text"]["text"]
        for block in answer.get("blocks", [])
        if block["type"] == "actions"
        for element in block["elements"]
    }


def block_actions(
    bot: SlackBot,
    answer: dict[str, Any],
    action_id: str,
    *,
    user: str,
    channel: str,
    channel_name: str,
    key: str,
) -> dict[str, Any]:
    """The ``block_actions`` payload Slack sends when ``action_id`` of an ephemeral
    answer is pressed."""
    [(block, element)] = [
        (block, element)
        for block in answer["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action_id
    ]
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "verification-token",
        "container": {
            "type": "message",
            "message_ts": "1700000000.000100",
            "channel_id": channel,
            "is_ephemeral": True,
        },
        "trigger_id": f"tr.{key}",
        "team": {"id": TEAM, "domain": "fake"},
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel_name},
        "state": {"values": {}},
        "response_url": bot.fake.response_url(key),
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block.get("block_id", "b0"),
                "text": element["text"],
                "value": element["value"],
                "action_ts": "1700000001.000200",
            }
        ],
    }


async def press(
    bot: SlackBot,
    answer: dict[str, Any],
    action_id: str,
    *,
    user: str = USER,
    channel: str = DM,
    channel_name: str = "directmessage",
) -> dict[str, Any]:
    """Press a button of an ephemeral answer; returns what the bot posted back."""
    key = uuid.uuid4().hex
    payload = block_actions(
        bot, answer, action_id, user=user, channel=channel, channel_name=channel_name, key=key
    )
    await bot.interactive(payload)
    await bot.fake.wait_for(lambda: any(r["_key"] == key for r in bot.fake.responses))
    [posted] = [r for r in bot.fake.responses if r["_key"] == key]
    return {k: v for k, v in posted.items() if k != "_key"}


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
        "/voicebot admin",
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

    # forget asks first, with Block Kit buttons; Cancel deletes nothing.
    ask = await bot.command("forget")
    assert ask["response_type"] == "ephemeral" and ask["text"] == texts.FORGET_CONFIRM
    assert buttons(ask) == {"forget:yes": "Yes, delete", "forget:no": "Cancel"}
    cancelled = await press(bot, ask, "forget:no")
    assert cancelled == {"text": texts.FORGET_CANCELLED, "replace_original": True}
    assert "Total: 2 turns" in (await bot.command("usage"))["text"]

    done = await press(bot, await bot.command("forget"), "forget:yes")
    assert done["replace_original"] is True and "blocks" not in done
    assert done["text"].startswith("Done. I deleted 2 conversations")
    assert (await bot.command("usage"))["text"] == texts.USAGE_EMPTY


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
    ask = await bot.command("forget", user="U0ADMIN", **where)
    assert ask["text"] == texts.FORGET_CONFIRM and "forget:yes" in buttons(ask)
    # The prompt is ephemeral, but a press is checked again (as Telegram's are): a member
    # gets a line of their own and the prompt stays.
    member = await press(bot, ask, "forget:yes", user=USER, **where)
    assert member == {
        "text": refused["text"],
        "response_type": "ephemeral",
        "replace_original": False,
    }
    done = await press(bot, ask, "forget:yes", user="U0ADMIN", **where)
    assert done["text"].startswith("Done. I deleted 0 conversations")
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


async def test_an_unsigned_press_is_refused(http_bot: SlackBot) -> None:
    await http_bot.send_event(http_bot.file_message(http_bot.fake.add_file(clip())))
    await http_bot.turns(1)
    ask = await http_bot.command("forget")
    payload = block_actions(
        http_bot,
        ask,
        "forget:yes",
        user=USER,
        channel=DM,
        channel_name="directmessage",
        key="forged",
    )
    body = urlencode({"payload": json.dumps(payload)})
    resp = await http_bot.post(body, content_type="application/x-www-form-urlencoded", signed=False)
    assert resp.status == 401
    # Signed, the same press deletes: the forged one reached no listener.
    done = await press(http_bot, ask, "forget:yes")
    assert done["text"].startswith("Done. I deleted 1 conversations")
    assert [r["_key"] for r in http_bot.fake.responses].count("forged") == 0


def test_answers_with_buttons_as_block_kit() -> None:
    from bot.adapters.slack.commands import SECTION_LIMIT, blocks, read_action
    from bot.adapters.slack.markup import escape
    from bot.commands.buttons import forget_buttons

    # Long text, an entity straddling the first cut: sections stay whole and in order.
    text = "x" * (SECTION_LIMIT - 2) + "&" + "y" * 5000
    out = blocks(text, forget_buttons())
    sections = [b["text"]["text"] for b in out if b["type"] == "section"]
    assert all(len(part) <= SECTION_LIMIT for part in sections) and len(sections) == 3
    assert "".join(sections) == escape(text) and sections[1].startswith("&amp;")
    [actions] = [b for b in out if b["type"] == "actions"]
    assert [(e["action_id"], e["value"], e.get("style")) for e in actions["elements"]] == [
        ("forget:yes", "yes", "danger"),  # red: it can't be undone
        ("forget:no", "no", None),
    ]
    assert read_action({"action_id": "forget:yes", "value": "yes"}) == ("forget", "yes")
    assert read_action({"action_id": "somebody_elses", "value": "yes"}) is None
    assert read_action({"action_id": "frobnicate:1", "value": "1"}) is None


async def test_voicebot_admin_sends_a_sign_in_link_to_an_admin_alone(
    fake_slack,
    dashscope_fake,
    db,  # type: ignore[no-untyped-def]
) -> None:
    import re

    import aiohttp

    from tests.slack.conftest import start_bot, stop_bot

    fake_slack.add_user(USER)
    fake_slack.add_user("U0OTHER")
    bot = await start_bot(
        mode="http",
        fake=fake_slack,
        dashscope=dashscope_fake,
        database=db,
        BOT_ADMINS="slack:U0USER",
        ADMIN_CONSOLE=True,
        ADMIN_URL="https://bot.example.com/",
    )
    try:
        answer = await bot.command("admin", channel=CHANNEL, channel_name="general")
        assert answer["response_type"] == "ephemeral"  # asked in a channel: only they see it
        found = re.search(r"https://bot\.example\.com/admin/login\?token=(\S+)", answer["text"])
        assert found and "every chat" in answer["text"], answer["text"]
        port = bot.http.bound_port
        async with (
            aiohttp.ClientSession() as browser,
            browser.get(
                f"http://127.0.0.1:{port}/admin/login?token={found.group(1)}", allow_redirects=False
            ) as resp,
        ):
            assert resp.status == 303
            assert "Secure" in resp.headers["Set-Cookie"]  # ADMIN_URL is https
        refused = await bot.command("admin", user="U0OTHER", channel=CHANNEL)
        assert "/admin/login" not in refused["text"] and "Only chat admins" in refused["text"]
    finally:
        await stop_bot(bot)
