"""/start, /help, /new, /model, /settings, /usage, /forget and the command menu."""

from __future__ import annotations

from bot import texts
from bot.catalog import CATALOG
from tests.telegram.conftest import Harness, Running, voice


async def test_commands_are_registered(harness: Harness, bot: Running) -> None:
    calls = harness.tg.calls_of("setMyCommands")
    assert calls
    names = [c["command"] for c in calls[-1].params["commands"]]
    assert names == [name for name, _ in texts.HELP_COMMANDS]


async def test_help_explains_voice(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.message(chat=chat, user=ann, text="/start"))
    await harness.replies(chat, 1)
    assert "voice message" in tg.sent_texts(chat["id"])[0]
    group = harness.group()
    tg.inject(message=tg.message(chat=group, user=ann, text=f"/help@{tg.username}"))
    await harness.replies(group, 1)
    in_group = tg.sent_texts(group["id"])[0]
    assert f"@{tg.username}" in in_group
    assert in_group.endswith("Admins can make me answer every voice message with /settings.")


async def test_model_keyboard_and_callback_recheck_admin(harness: Harness) -> None:
    allowed = ["qwen-audio-turbo-latest", "qwen2-audio-instruct", "qwen-audio-chat"]
    await harness.start(ALLOWED_MODELS=",".join(allowed))
    tg = harness.tg
    group = harness.group()
    admin = harness.user(500, "Admin")
    member = harness.user(600, "Member")
    tg.set_member(group["id"], admin["id"], "administrator")
    tg.inject(message=tg.message(chat=group, user=member, text="/model"))
    await harness.replies(group, 1)
    menu = tg.sent(group["id"])[-1]
    buttons = [row[0] for row in menu["reply_markup"]["inline_keyboard"]]
    assert [b["callback_data"] for b in buttons] == [f"model:{m}" for m in allowed]
    assert "qwen-audio-turbo-latest (current)" in menu["text"]
    assert menu["text"].endswith("Admins can choose with the buttons below, or with /model NAME.")
    assert [b["text"] for b in buttons] == [f"✓ {allowed[0]}", *allowed[1:]]

    # A member pressing a button is refused (checked again on the callback).
    tg.inject(
        callback_query=tg.callback_query(
            message=menu, user=member, data="model:qwen2-audio-instruct"
        )
    )
    await harness.until(lambda: tg.calls_of("answerCallbackQuery"))
    assert tg.calls_of("answerCallbackQuery")[-1].params["text"] == texts.NOT_ADMIN

    tg.inject(
        callback_query=tg.callback_query(
            message=menu, user=admin, data="model:qwen2-audio-instruct"
        )
    )
    await harness.until(lambda: len(tg.calls_of("answerCallbackQuery")) == 2)
    assert "qwen2-audio-instruct (current)" in tg.sent(group["id"])[-1]["text"]
    assert tg.calls_of("answerCallbackQuery")[-1].params["text"] == (
        "Model set to qwen2-audio-instruct."
    )
    edited = tg.sent(group["id"])[-1]["reply_markup"]["inline_keyboard"]
    assert [row[0]["text"] for row in edited] == [allowed[0], f"✓ {allowed[1]}", allowed[2]]

    tg.inject(message=tg.message(chat=group, user=admin, text=f"@{tg.username} hello"))
    await harness.until(lambda: harness.ds.requests)
    assert harness.ds.requests[-1].model == "qwen2-audio-instruct"


async def test_model_by_name(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.message(chat=chat, user=ann, text="/model qwen-audio-chat"))
    await harness.replies(chat, 1)
    assert tg.sent_texts(chat["id"])[-1] == texts.MODEL_CHANGED.format(model="qwen-audio-chat")
    tg.inject(message=tg.message(chat=chat, user=ann, text="/model nonsense-model"))
    await harness.replies(chat, 2)
    assert "nonsense-model" in tg.sent_texts(chat["id"])[-1]
    assert "qwen-audio-chat" in CATALOG


async def test_settings_show_and_change_in_private(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.message(chat=chat, user=ann, text="/settings temperature 0.3"))
    await harness.replies(chat, 1)
    assert "temperature): 0.3" in tg.sent_texts(chat["id"])[-1]
    tg.inject(message=tg.message(chat=chat, user=ann, text="/settings prompt Answer briefly."))
    await harness.replies(chat, 2)
    assert "“Answer briefly.”" in tg.sent_texts(chat["id"])[-1]
    tg.inject(message=tg.message(chat=chat, user=ann, text="/settings temperature 9"))
    await harness.replies(chat, 3)
    assert "temperature" in tg.sent_texts(chat["id"])[-1]
    tg.inject(message=tg.message(chat=chat, user=ann, text=f"@{tg.username} hi"))
    await harness.until(lambda: harness.ds.requests)
    assert harness.ds.requests[-1].parameters.get("temperature") == 0.3


async def test_new_starts_a_fresh_conversation(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    await harness.replies(chat, 1)
    tg.inject(message=tg.message(chat=chat, user=ann, text="/new"))
    await harness.replies(chat, 2)
    assert tg.sent_texts(chat["id"])[-1] == texts.NEW_CONVERSATION
    tg.inject(message=tg.message(chat=chat, user=ann, text="and now?"))
    await harness.replies(chat, 3)
    assert "History" not in tg.sent_texts(chat["id"])[-1]
    assert harness.ds.requests[-1].roles == ["user"]  # nothing from before /new was sent


async def test_usage_after_a_turn(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.message(chat=chat, user=ann, text="/usage"))
    await harness.replies(chat, 1)
    assert tg.sent_texts(chat["id"])[-1] == texts.USAGE_EMPTY
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    await harness.replies(chat, 2)
    tg.inject(message=tg.message(chat=chat, user=ann, text="/usage"))
    await harness.replies(chat, 3)
    usage = tg.sent_texts(chat["id"])[-1]
    assert usage.startswith(texts.USAGE_HEADER) and "1 turns" in usage


async def test_forget_asks_first(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    await harness.replies(chat, 1)
    tg.inject(message=tg.message(chat=chat, user=ann, text="/forget"))
    await harness.replies(chat, 2)
    ask = tg.sent(chat["id"])[-1]
    assert ask["text"] == texts.FORGET_CONFIRM
    datas = [b["callback_data"] for b in ask["reply_markup"]["inline_keyboard"][0]]
    assert datas == ["forget:yes", "forget:no"]

    tg.inject(callback_query=tg.callback_query(message=ask, user=ann, data="forget:no"))
    await harness.until(lambda: tg.sent(chat["id"])[-1]["text"] == texts.FORGET_CANCELLED)

    tg.inject(message=tg.message(chat=chat, user=ann, text="/forget"))
    await harness.replies(chat, 3)
    ask = tg.sent(chat["id"])[-1]
    tg.inject(callback_query=tg.callback_query(message=ask, user=ann, data="forget:yes"))
    await harness.until(lambda: tg.sent(chat["id"])[-1]["text"].startswith("Done."))
    assert "1 conversations, 2 messages and 1 recordings" in tg.sent(chat["id"])[-1]["text"]
    assert "reply_markup" not in tg.sent(chat["id"])[-1]


async def test_forget_in_a_group_is_for_admins(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    group = harness.group()
    tg.inject(message=tg.message(chat=group, user=harness.user(600), text="/forget"))
    await harness.replies(group, 1)
    assert tg.sent_texts(group["id"])[-1] == texts.NOT_ADMIN


async def test_bot_admins_manage_any_chat(harness: Harness) -> None:
    await harness.start(BOT_ADMINS="telegram:900")
    tg = harness.tg
    group = harness.group()
    tg.inject(
        message=tg.message(chat=group, user=harness.user(900, "Op"), text="/model qwen-audio-chat")
    )
    await harness.replies(group, 1)
    assert tg.sent_texts(group["id"])[-1] == texts.MODEL_CHANGED.format(model="qwen-audio-chat")


async def test_group_policy_buttons(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    group = harness.group()
    admin = harness.user(500, "Admin")
    member = harness.user(600, "Member")
    tg.set_member(group["id"], admin["id"], "administrator")
    tg.inject(message=tg.message(chat=group, user=member, text="/settings"))
    await harness.replies(group, 1)
    shown = tg.sent(group["id"])[-1]
    assert shown["text"].startswith(texts.SETTINGS_HEADER)
    rows = shown["reply_markup"]["inline_keyboard"]
    assert [(r[0]["text"], r[0]["callback_data"]) for r in rows] == [
        ("✓ " + texts.POLICY_BUTTON_MENTION, "policy:mention"),
        (texts.POLICY_BUTTON_ALL_VOICE, "policy:all_voice"),
    ]

    tg.inject(callback_query=tg.callback_query(message=shown, user=member, data="policy:all_voice"))
    await harness.until(lambda: tg.calls_of("answerCallbackQuery"))
    refused = tg.calls_of("answerCallbackQuery")[-1].params
    assert refused["text"] == texts.NOT_ADMIN and refused["show_alert"] is True

    tg.inject(callback_query=tg.callback_query(message=shown, user=admin, data="policy:all_voice"))
    await harness.until(lambda: len(tg.calls_of("answerCallbackQuery")) == 2)
    assert tg.calls_of("answerCallbackQuery")[-1].params["text"] == texts.SETTING_SAVED
    edited = tg.sent(group["id"])[-1]
    assert "In groups (group_policy): answers every voice message" in edited["text"]
    assert edited["reply_markup"]["inline_keyboard"][1][0]["text"] == (
        "✓ " + texts.POLICY_BUTTON_ALL_VOICE
    )


async def test_commands_answer_in_their_forum_topic(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    forum = harness.group(-100777, forum=True)
    ann = harness.user()
    mention = f"@{tg.username}"
    tg.inject(message=tg.message(chat=forum, user=ann, thread_id=10, text=f"{mention} one"))
    await harness.replies(forum, 1)
    tg.inject(message=tg.message(chat=forum, user=ann, thread_id=20, text=f"{mention} two"))
    await harness.replies(forum, 2)
    tg.inject(message=tg.message(chat=forum, user=ann, thread_id=10, text="/new"))
    await harness.replies(forum, 3)
    answer = tg.sent(forum["id"])[-1]
    assert (answer["text"], answer["message_thread_id"]) == (texts.NEW_CONVERSATION, 10)
    # Only topic 10 starts afresh.
    tg.inject(message=tg.message(chat=forum, user=ann, thread_id=10, text=f"{mention} three"))
    await harness.replies(forum, 4)
    tg.inject(message=tg.message(chat=forum, user=ann, thread_id=20, text=f"{mention} four"))
    await harness.replies(forum, 5)
    assert [r.roles for r in harness.ds.requests[-2:]] == [
        ["user"],
        ["user", "assistant", "user"],
    ]


async def test_expired_and_foreign_buttons(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    # Telegram no longer shows the message to the bot: only chat, id and date 0 remain.
    gone = {"chat": chat, "message_id": 999, "date": 0}
    tg.inject(callback_query=tg.callback_query(message=gone, user=ann, data="forget:yes"))
    await harness.until(lambda: tg.calls_of("answerCallbackQuery"))
    expired = tg.calls_of("answerCallbackQuery")[-1].params
    assert expired["text"] == texts.TELEGRAM_BUTTON_EXPIRED and expired["show_alert"] is True
    # Data that is not one of our buttons is left alone (no handler answers it).
    tg.inject(message=tg.message(chat=chat, user=ann, text="/usage"))
    await harness.replies(chat, 1)
    usage = tg.sent(chat["id"])[-1]
    tg.inject(callback_query=tg.callback_query(message=usage, user=ann, data="other:thing"))
    tg.inject(message=tg.message(chat=chat, user=ann, text="/usage"))
    await harness.replies(chat, 2)
    assert len(tg.calls_of("answerCallbackQuery")) == 1
