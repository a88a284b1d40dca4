"""A Slack user's language: their Slack locale (``users.info`` with ``include_locale``)."""

from __future__ import annotations

from bot import texts
from bot.i18n import Lang, tr
from tests.slack.conftest import DM, USER, SlackBot, clip


async def test_a_user_whose_slack_speaks_chinese_is_answered_in_chinese(http_bot: SlackBot) -> None:
    bot = http_bot
    bot.fake.add_user(USER, locale="zh-CN")

    answer = await bot.command("help")
    assert answer["text"].startswith(tr(texts.SLACK_HELP_INTRO, Lang.ZH))
    assert "/voicebot new — 开始新对话" in answer["text"]

    bot.dashscope.queue_error(status=429, code="Throttling.RateQuota")
    await bot.send_event(bot.file_message(bot.fake.add_file(clip())))
    [reply] = await bot.replies(DM)
    assert reply.text == "模型现在有点忙，请过一分钟再试。"
    # One users.info answers the locale for both (kept for a while), asked as Slack needs.
    [info] = bot.fake.calls_to("users.info")
    assert info.args["include_locale"] in ("1", "true")
