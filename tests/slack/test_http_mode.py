"""HTTP mode: Slack's signature and timestamp checks, retries headers, URL verification."""

from __future__ import annotations

import json
import time

from tests.slack.conftest import DM, SlackBot, clip


async def _only_a_later_message_is_answered(bot: SlackBot) -> None:
    """A signed message sent after refused requests is the only thing the bot handles."""
    await bot.send_event(bot.text_message("are you there?"))
    await bot.deliveries_done(1)
    assert bot.processed == 1  # the refused requests never reached a listener
    assert len(await bot.replies(DM)) == 1
    assert not bot.fake.downloads
    [req] = bot.dashscope.requests
    assert not req.audio and req.texts[-1] == ("user", "are you there?")


async def test_bad_signature_is_refused_and_nothing_happens(http_bot: SlackBot) -> None:
    body = json.dumps(http_bot.event_body(http_bot.file_message(http_bot.fake.add_file(clip()))))
    resp = await http_bot.post(
        body,
        content_type="application/json",
        signed=False,
        headers={
            "X-Slack-Request-Timestamp": str(int(time.time())),
            "X-Slack-Signature": "v0=" + "0" * 64,
        },
    )
    assert resp.status == 401
    unsigned = await http_bot.post(body, content_type="application/json", signed=False)
    assert unsigned.status == 401
    await _only_a_later_message_is_answered(http_bot)


async def test_old_timestamp_is_refused(http_bot: SlackBot) -> None:
    body = json.dumps(http_bot.event_body(http_bot.file_message(http_bot.fake.add_file(clip()))))
    resp = await http_bot.post(
        body, content_type="application/json", timestamp=int(time.time()) - 10 * 60
    )
    assert resp.status == 401
    await _only_a_later_message_is_answered(http_bot)


async def test_url_verification_challenge(http_bot: SlackBot) -> None:
    body = json.dumps(
        {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV", "type": "url_verification"}
    )
    async with http_bot._session.post(
        http_bot.url,
        data=body,
        headers={"Content-Type": "application/json", **_sign(body)},
    ) as resp:
        assert resp.status == 200
        assert "3eZbrw1aBm2rZgRNFdxV" in await resp.text()


async def test_retry_of_an_event_already_answered_across_restart(
    http_bot: SlackBot,
    fake_slack,
    dashscope_fake,
    db,  # type: ignore[no-untyped-def]
) -> None:
    from tests.slack.conftest import start_bot, stop_bot

    event = http_bot.file_message(http_bot.fake.add_file(clip()))
    event_id = await http_bot.send_event(event)
    await http_bot.turns(1)
    await stop_bot(http_bot)
    # A new process on the same database: Slack's retry must not be answered again.
    again = await start_bot(mode="http", fake=fake_slack, dashscope=dashscope_fake, database=db)
    try:
        await again.send_event(event, event_id=event_id, retry_num=1)
        await again.deliveries_done(1)
        assert again.duplicates() == 1  # recognised from the database
        assert len(fake_slack.bot_messages(DM)) == 1
        assert len(dashscope_fake.requests) == 1
    finally:
        await stop_bot(again)


def _sign(body: str) -> dict[str, str]:
    from tests.slack.conftest import sign

    return sign(body)
