"""Button presses through the core and the real engine: rights checked again, and what the
pressed message and the presser's notice then say; /forget and its confirmation."""

from __future__ import annotations

from bot import texts
from bot.commands import SLASH, Answer, Button, CommandProfile
from tests.commands.conftest import (
    SLACK,
    SLACK_CHANNEL,
    TELEGRAM,
    TG_GROUP,
    TG_PRIVATE,
    Caller,
    caller,
)
from tests.engine.conftest import Audio, Harness, voice


async def test_a_model_button_rechecks_admin_rights(h: Harness) -> None:
    group = caller(h, TELEGRAM, TG_GROUP, user="600")
    group.admins.ids.add("500")
    menu = await group.say("model")  # anyone may open the menu
    assert any(b.value == "qwen2-audio-instruct" for row in menu.buttons for b in row)

    refused = await group.press("model", "qwen2-audio-instruct")
    assert (refused.text, refused.notice, refused.alert) == (None, texts.NOT_ADMIN, True)
    assert (await h.engine.get_settings(TG_GROUP)).model == "qwen-audio-turbo-latest"

    chosen = await group.press("model", "qwen2-audio-instruct", user="500")
    assert chosen.notice == "Model set to qwen2-audio-instruct." and not chosen.alert
    assert chosen.text is not None and "• qwen2-audio-instruct (current)" in chosen.text
    assert chosen.text.endswith(texts.MODEL_PICK_BUTTONS.replace("{cmd:model}", "/model"))
    marked = [b for row in chosen.buttons for b in row if b.label.startswith("✓ ")]
    assert marked == [
        Button(label="✓ qwen2-audio-instruct", action="model", value="qwen2-audio-instruct")
    ]
    assert (await h.engine.get_settings(TG_GROUP)).model == "qwen2-audio-instruct"

    gone = await group.press("model", "no-such-model", user="500")
    assert gone.alert and gone.text is None and gone.notice is not None
    assert "no-such-model" in gone.notice


async def test_the_policy_buttons(h: Harness) -> None:
    group = caller(h, TELEGRAM, TG_GROUP, user="500")
    group.admins.ids.add("500")
    saved = await group.press("policy", "all_voice")
    assert saved.notice == texts.SETTING_SAVED and not saved.alert
    assert saved.text is not None and "In groups (group_policy): answers every voice" in saved.text
    assert [[b.label for b in row] for row in saved.buttons] == [
        [texts.POLICY_BUTTON_MENTION],
        ["✓ " + texts.POLICY_BUTTON_ALL_VOICE],
    ]
    assert (await h.engine.get_settings(TG_GROUP)).group_policy == "all_voice"
    refused = await group.press("policy", "mention", user="600")
    assert (refused.text, refused.notice, refused.alert) == (None, texts.NOT_ADMIN, True)


async def test_forget_asks_first_where_there_are_buttons(tg: Caller, h: Harness) -> None:
    await h.turn(audio=Audio(voice(1.5)))
    ask = await tg.say("forget")
    assert ask.confirm and ask.text == texts.FORGET_CONFIRM
    assert ask.buttons == (
        (
            Button(label=texts.FORGET_YES, action="forget", value="yes", danger=True),
            Button(label=texts.FORGET_NO, action="forget", value="no"),
        ),
    )
    assert len(await h.all_turns()) == 2  # nothing deleted yet

    cancelled = await tg.press("forget", "no")
    assert (cancelled.text, cancelled.buttons, cancelled.notice) == (
        texts.FORGET_CANCELLED,
        (),
        None,
    )
    assert len(await h.all_turns()) == 2

    done = await tg.press("forget", "yes")
    assert done.text == (
        "Done. I deleted 1 conversations, 2 messages and 1 recordings of this chat."
    )
    assert done.buttons == () and done.notice is None
    assert await h.all_turns() == [] and await h.clips() == []


async def test_forget_in_a_group_is_for_admins(h: Harness) -> None:
    group = caller(h, TELEGRAM, TG_GROUP, user="600")
    await h.turn(audio=Audio(voice(1.5)), chat=TG_GROUP, user_id="600")
    refused = await group.say("forget")
    assert (refused.text, refused.buttons, refused.confirm) == (texts.NOT_ADMIN, (), False)
    # A confirmation pressed by someone who is not (or no longer) an admin changes nothing,
    # and neither does their Cancel: the prompt stays for the admin who asked.
    for value in ("yes", "no"):
        pressed = await group.press("forget", value)
        assert (pressed.text, pressed.notice, pressed.alert) == (None, texts.NOT_ADMIN, True)
    assert len(await h.all_turns()) == 2
    group.admins.ids.add("500")
    cancelled = await group.press("forget", "no", user="500")
    assert (cancelled.text, cancelled.alert) == (texts.FORGET_CANCELLED, False)
    assert len(await h.all_turns()) == 2


async def test_slack_confirms_forget_but_keeps_its_menus_as_text(h: Harness) -> None:
    channel = caller(h, SLACK, SLACK_CHANNEL, user="U0USER")
    await h.turn(audio=Audio(voice(1.5)), chat=SLACK_CHANNEL, user_id="U0USER")
    # Only someone who could confirm is asked; the others hear why not.
    assert (await channel.say("forget")).text == texts.NOT_ADMIN
    channel.admins.ids.add("U0ADMIN")
    ask = await channel.say("forget", user="U0ADMIN")
    assert (ask.text, ask.confirm) == (texts.FORGET_CONFIRM, True)
    assert [b.value for row in ask.buttons for b in row] == ["yes", "no"]
    assert len(await h.all_turns()) == 2  # nothing deleted yet
    # A press by someone who may not manage the chat changes nothing (Telegram's rule).
    refused = await channel.press("forget", "yes")
    assert (refused.text, refused.notice, refused.alert) == (None, texts.NOT_ADMIN, True)
    done = await channel.press("forget", "yes", user="U0ADMIN")
    assert done.text is not None and done.text.startswith("Done. I deleted 1 conversations")
    assert await h.all_turns() == []
    # Menus stay text on Slack: no model buttons, and no word about them.
    menu = await channel.say("model")
    assert menu.buttons == () and menu.text is not None and "buttons" not in menu.text


async def test_forget_without_any_buttons_deletes_at_once(h: Harness) -> None:
    plain = caller(h, CommandProfile(style=SLASH), TG_PRIVATE)
    await h.turn(audio=Audio(voice(1.5)))
    done = await plain.say("forget")
    assert not done.confirm and done.buttons == ()
    assert done.text is not None and done.text.startswith("Done. I deleted 1 conversations")
    assert await h.all_turns() == []


async def test_presses_that_are_not_ours_change_nothing(tg: Caller, h: Harness) -> None:
    assert await tg.press("frobnicate", "1") == Answer()  # acknowledged, nothing shown
    assert (await h.engine.get_settings(tg.chat)).chosen == frozenset()
