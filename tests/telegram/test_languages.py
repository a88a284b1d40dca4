"""A Telegram user's language: Chinese for a Chinese Telegram, until the chat says English."""

from __future__ import annotations

from bot import texts
from bot.i18n import Lang, tr
from tests.telegram.conftest import Harness, Running, voice


async def test_a_chinese_user_is_answered_in_chinese_until_the_chat_chooses_english(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    mei = {**harness.user(222, "Mei"), "language_code": "zh-hans"}
    chat = harness.private(mei)

    # The command menu has a Chinese edition for Chinese Telegram apps.
    [zh_menu] = [c for c in tg.calls_of("setMyCommands") if c.params.get("language_code") == "zh"]
    assert zh_menu.params["commands"][0] == {"command": "new", "description": "开始新对话"}

    tg.inject(message=tg.message(chat=chat, user=mei, text="/help"))
    [help_text] = await harness.replies(chat, 1)
    assert help_text.startswith(tr(texts.HELP_INTRO, Lang.ZH))
    assert "\n/new — 开始新对话\n" in help_text
    assert help_text.endswith("当前模型：qwen-audio-turbo-latest。")

    harness.ds.queue_error(status=429, code="Throttling.RateQuota")
    tg.inject(message=tg.voice_message(chat=chat, user=mei, data=voice()))
    await harness.replies(chat, 2)
    assert tg.sent_texts(chat["id"])[-1] == "模型现在有点忙，请过一分钟再试。"

    # The chat's setting wins over the app's language, and is answered in the new one.
    tg.inject(message=tg.message(chat=chat, user=mei, text="/settings language en"))
    await harness.replies(chat, 3)
    shown = tg.sent_texts(chat["id"])[-1]
    assert shown.startswith(texts.SETTINGS_HEADER)
    assert "• Bot language (language): English (en)" in shown

    harness.ds.queue_error(status=429, code="Throttling.RateQuota")
    tg.inject(message=tg.voice_message(chat=chat, user=mei, data=voice()))
    await harness.replies(chat, 4)
    assert tg.sent_texts(chat["id"])[-1] == texts.MODEL_RATE_LIMITED
