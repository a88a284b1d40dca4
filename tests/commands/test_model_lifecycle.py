"""The catalog lifecycle in the commands: ``model`` lists trial and retired models marked
(a retired one never as a button), and ``settings`` tells admins when the chat's chosen
model was retired and what answers instead."""

from __future__ import annotations

import pytest

from bot.engine import chat_store
from tests.commands.conftest import (
    SLACK,
    SLACK_CHANNEL,
    TELEGRAM,
    TG_GROUP,
    TG_PRIVATE,
    Caller,
    caller,
)
from tests.engine.conftest import EngineFactory, Harness

RETIRED, REPLACEMENT = "qwen-audio-asr", "qwen3-asr-flash"
TRIAL, LIVE = "qwen-audio-turbo-latest", "qwen3-omni-flash"


@pytest.fixture
async def lifecycle(engine_factory: EngineFactory) -> Harness:
    return await engine_factory(ALLOWED_MODELS=",".join([TRIAL, RETIRED, REPLACEMENT, LIVE]))


async def test_the_model_menu_marks_trial_and_retired_models(lifecycle: Harness) -> None:
    h = lifecycle
    menu = await caller(h, TELEGRAM, TG_GROUP).say("model")
    assert menu.text is not None
    lines = menu.text.split("\n\n")[0].splitlines()
    assert lines[1].startswith(f"• {TRIAL} (current) (trial) — voice chat")
    assert lines[2] == f"• {RETIRED} (retired → {REPLACEMENT}) — transcription"
    assert lines[3] == f"• {REPLACEMENT} — transcription"
    assert lines[4].startswith(f"• {LIVE} — voice chat")
    # A retired model is never a button; the others are, by name.
    values = [b.value for row in menu.buttons for b in row]
    assert values == [TRIAL, REPLACEMENT, LIVE]
    assert [b.label for row in menu.buttons for b in row] == [f"✓ {TRIAL}", REPLACEMENT, LIVE]
    # Slack lists the same, in text only.
    plain = await caller(h, SLACK, SLACK_CHANNEL).say("model")
    assert plain.text == menu.text.split("\n\n")[0] and plain.buttons == ()
    private = caller(h, TELEGRAM, TG_PRIVATE)
    await private.say("settings language zh")
    zh = (await private.say("model")).text
    assert zh is not None
    assert f"• {RETIRED}（已下线 → {REPLACEMENT}）" in zh and f"{TRIAL}（当前）（试用）" in zh


async def test_a_retired_model_pressed_anyway_is_refused(lifecycle: Harness) -> None:
    group = caller(lifecycle, TELEGRAM, TG_GROUP, user="500")
    group.admins.ids.add("500")
    # An old menu's button (from before the model was retired) is still pressable.
    refused = await group.press("model", RETIRED)
    assert refused.alert and refused.notice is not None
    assert refused.notice.startswith(f"DashScope has retired “{RETIRED}”")
    assert (await lifecycle.engine.get_settings(TG_GROUP)).model == TRIAL


async def test_settings_tell_admins_the_chosen_model_was_retired(lifecycle: Harness) -> None:
    h = lifecycle
    # The chats chose the model before DashScope retired it.
    for chat in (TG_GROUP, TG_PRIVATE, SLACK_CHANNEL):
        await chat_store.change_settings(h.db, chat, changes={"model": RETIRED}, changed_by="test")
    note = (
        f"DashScope has retired {RETIRED}, the model this chat chose, so {REPLACEMENT} "
        "answers instead. Choose another with {cmd}."
    )
    group: Caller = caller(h, TELEGRAM, TG_GROUP, user="600")
    group.admins.ids.add("500")
    member = await group.say("settings")
    assert member.text is not None and f"Model (model): {REPLACEMENT}" in member.text
    assert "retired" not in member.text  # members see what answers, not the note
    admin = await group.say("settings", user="500")
    assert admin.text is not None and admin.text.endswith(note.format(cmd="/model"))
    # In a private chat its person manages it; Slack spells its command.
    private = await caller(h, TELEGRAM, TG_PRIVATE).say("settings")
    assert private.text is not None and private.text.endswith(note.format(cmd="/model"))
    channel = caller(h, SLACK, SLACK_CHANNEL, user="U0OWNER")
    channel.admins.ids.add("U0OWNER")
    shown = await channel.say("settings")
    assert shown.text is not None and shown.text.endswith(note.format(cmd="/voicebot model"))
    zh = (await caller(h, TELEGRAM, TG_PRIVATE).say("settings language zh")).text
    assert zh is not None and f"DashScope 已下线本聊天所选的 {RETIRED}" in zh
    # Once the chat chooses another model, the note is gone.
    await group.say(f"model {LIVE}", user="500")
    after = await group.say("settings", user="500")
    assert after.text is not None and "retired" not in after.text


async def test_a_chat_on_a_live_model_never_asks_who_is_admin(lifecycle: Harness) -> None:
    group = caller(lifecycle, TELEGRAM, TG_GROUP, user="600")
    shown = await group.say("settings")
    assert shown.text is not None and "retired" not in shown.text
    assert group.admins.asked == 0


async def test_settings_tell_admins_when_dashscope_refused_the_model(lifecycle: Harness) -> None:
    h = lifecycle
    await chat_store.change_settings(h.db, TG_GROUP, changes={"model": LIVE}, changed_by="t")
    group: Caller = caller(h, TELEGRAM, TG_GROUP, user="600")
    group.admins.ids.add("500")
    # The key has no access to the chat's model: the user is told at once (the turn's
    # error), and from then on the admins see it in settings, with the date.
    h.fake.queue_error(404, "ModelNotFound", "Model not exist.")
    failed, sink = await h.turn(text="hello", chat=TG_GROUP, user_id="600")
    assert failed.status == "failed"
    assert sink.error is not None and LIVE in sink.error.user_message
    admin = await group.say("settings", user="500")
    assert admin.text is not None
    said = admin.text.split("\n\n")[-1]
    assert said.startswith("On 20") and said.endswith(
        f"DashScope said {LIVE} doesn't exist or isn't available to this bot's key."
        " Choose another with /model."
    )
    member = await group.say("settings")
    assert member.text is not None and "DashScope said" not in member.text
    # A turn on it that works (the key got access) clears the note.
    done, _ = await h.turn(text="hello again", chat=TG_GROUP, user_id="600")
    assert done.status == "complete"
    again = await group.say("settings", user="500")
    assert again.text is not None and "DashScope said" not in again.text
