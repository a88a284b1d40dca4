"""Groups and forum topics: when the bot answers, the group policy, and topic isolation."""

from __future__ import annotations

from bot import texts
from tests.telegram.conftest import Harness, Running, voice


async def test_plain_voice_note_in_a_group_is_ignored(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    group = harness.group()
    ann = harness.user()
    tg.inject(message=tg.voice_message(chat=group, user=ann, data=voice()))
    tg.inject(message=tg.message(chat=group, user=ann, text="just chatting"))
    # A later addressed message is answered, so the earlier ones were seen and skipped.
    marker = tg.message(chat=group, user=ann, text=f"@{tg.username} ping")
    tg.inject(message=marker)
    await harness.replies(group, 1)
    assert len(tg.sent(group["id"])) == 1
    assert tg.sent(group["id"])[0]["reply_to_message"]["message_id"] == marker["message_id"]
    assert not tg.calls_of("getFile")
    assert len(harness.ds.requests) == 1


async def test_voice_replying_to_the_bot_and_caption_mention_are_answered(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    group = harness.group()
    ann = harness.user()
    first = tg.message(chat=group, user=ann, text=f"hi @{tg.username}")
    tg.inject(message=first)
    await harness.replies(group, 1)
    bot_msg = tg.sent(group["id"])[0]
    # Edits, not drafts, in groups.
    assert not tg.calls_of("sendMessageDraft")

    tg.inject(message=tg.voice_message(chat=group, user=ann, data=voice(), reply_to=bot_msg))
    await harness.replies(group, 2)
    assert tg.sent_texts(group["id"])[-1].startswith("Heard 1 audio clip(s)")

    tg.inject(
        message=tg.voice_message(
            chat=group, user=ann, data=voice(), caption=f"@{tg.username} translate this"
        )
    )
    await harness.replies(group, 3)
    assert "Prompt: “translate this”" in tg.sent_texts(group["id"])[-1]


async def test_mention_in_reply_to_anyones_voice_note_analyses_it(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    group = harness.group()
    note = tg.voice_message(chat=group, user=harness.user(222, "Bob"), data=voice(2.0))
    tg.inject(message=note)
    tg.inject(
        message=tg.message(
            chat=group,
            user=harness.user(),
            reply_to=note,
            text=f"@{tg.username} what is he saying?",
        )
    )
    await harness.replies(group, 1)
    text = tg.sent_texts(group["id"])[-1]
    assert "Heard 1 audio clip(s): 2.00 s" in text
    assert "Prompt: “what is he saying?”" in text


async def test_all_voice_policy_is_for_admins_and_then_answers_every_voice_note(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    group = harness.group()
    admin = harness.user(500, "Admin")
    member = harness.user(600, "Member")
    tg.set_member(group["id"], admin["id"], "administrator")

    refused = tg.message(chat=group, user=member, text="/settings group_policy all_voice")
    tg.inject(message=refused)
    await harness.replies(group, 1)
    assert tg.sent_texts(group["id"])[-1] == texts.NOT_ADMIN

    tg.inject(message=tg.message(chat=group, user=admin, text="/settings group_policy all_voice"))
    await harness.replies(group, 2)
    summary = tg.sent(group["id"])[-1]
    assert texts.GROUP_POLICY_ALL_VOICE in summary["text"]
    assert summary["reply_markup"]["inline_keyboard"]  # policy buttons in groups

    tg.inject(message=tg.voice_message(chat=group, user=member, data=voice()))
    await harness.replies(group, 3)
    assert tg.sent_texts(group["id"])[-1].startswith("Heard 1 audio clip(s)")


async def test_policy_button_rechecks_admin_rights(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    group = harness.group()
    admin = harness.user(500, "Admin")
    member = harness.user(600, "Member")
    tg.set_member(group["id"], admin["id"], "creator")
    tg.inject(message=tg.message(chat=group, user=member, text="/settings"))
    await harness.replies(group, 1)
    menu = tg.sent(group["id"])[-1]
    data = "policy:all_voice"
    assert data in str(menu["reply_markup"])

    tg.inject(callback_query=tg.callback_query(message=menu, user=member, data=data))
    await harness.until(lambda: tg.calls_of("answerCallbackQuery"))
    answer = tg.calls_of("answerCallbackQuery")[-1].params
    assert answer["text"] == texts.NOT_ADMIN and answer["show_alert"] is True

    tg.inject(callback_query=tg.callback_query(message=menu, user=admin, data=data))
    await harness.until(lambda: len(tg.calls_of("answerCallbackQuery")) == 2)
    assert texts.GROUP_POLICY_ALL_VOICE in tg.sent(group["id"])[-1]["text"]
    assert {c.params["user_id"] for c in tg.calls_of("getChatMember")} == {
        str(member["id"]),
        str(admin["id"]),
    }


async def test_forum_topics_are_separate_conversations(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    forum = harness.group(-100777, forum=True)
    ann = harness.user()
    mention = f"@{tg.username}"
    tg.inject(message=tg.message(chat=forum, user=ann, thread_id=10, text=f"{mention} one"))
    await harness.replies(forum, 1)
    tg.inject(message=tg.message(chat=forum, user=ann, thread_id=10, text=f"{mention} two"))
    await harness.replies(forum, 2)
    tg.inject(message=tg.message(chat=forum, user=ann, thread_id=20, text=f"{mention} three"))
    await harness.replies(forum, 3)

    by_topic = [(m["message_thread_id"], m["text"]) for m in tg.sent(forum["id"])]
    assert [t for t, _ in by_topic] == [10, 10, 20]
    assert "History: 1 earlier" in by_topic[1][1]
    assert "History" not in by_topic[2][1]
    # What the model was sent: topic 10's second turn carried its first; topic 20 none.
    roles = [r.roles for r in harness.ds.requests]
    assert roles == [["user"], ["user", "assistant", "user"], ["user"]]
    assert all(
        c.params.get("message_thread_id") in ("10", "20") for c in tg.calls_of("sendMessage")
    )
