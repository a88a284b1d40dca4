"""The fake Slack speaks the real wire formats; escaping and splitting helpers."""

from __future__ import annotations

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack.markup import escape, split_point
from tests.fakes.slack import LOGIN_PAGE, FakeSlack


async def test_fake_checks_tokens_and_reads_every_body_kind(fake_slack: FakeSlack) -> None:
    good = AsyncWebClient(token=fake_slack.bot_token, base_url=fake_slack.base_url)
    bad = AsyncWebClient(token="xoxb-wrong", base_url=fake_slack.base_url)
    assert (await good.auth_test())["user_id"] == fake_slack.bot_user_id
    with pytest.raises(SlackApiError) as err:
        await bad.auth_test()
    assert err.value.response["error"] == "invalid_auth"

    fake_slack.add_user("U1", admin=True)
    assert (await good.users_info(user="U1"))["user"]["is_admin"] is True  # GET + query
    assert fake_slack.calls_to("users.info")[0].http_method == "GET"
    resp = await good.api_call("chat.postMessage", data={"channel": "C1", "text": "form"})
    assert resp["ok"] and fake_slack.calls_to("chat.postMessage")[0].content_type == (
        "application/x-www-form-urlencoded"
    )

    # The SDK helper sends chunks; direct calls may send markdown_text: both are accepted.
    stream = await good.chat_stream(channel="D1", thread_ts="1.1", buffer_size=5)
    await stream.append(markdown_text="hello ")
    await stream.append(markdown_text="world")
    await stream.stop()
    start = await good.chat_startStream(channel="D1", thread_ts="1.1", markdown_text="md")
    await good.chat_stopStream(channel="D1", ts=start["ts"], markdown_text=" text")
    assert [m.text for m in fake_slack.bot_messages("D1")] == ["hello world", "md text"]
    with pytest.raises(SlackApiError):  # channels need the recipient
        await good.chat_startStream(channel="C1", thread_ts="1.1", markdown_text="x")

    fake_slack.script("chat.update", retry_after=3)
    with pytest.raises(SlackApiError) as err:
        await good.chat_update(channel="C1", ts=resp["ts"], text="x")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "3"

    app = AsyncWebClient(token=fake_slack.app_token, base_url=fake_slack.base_url)
    assert (await app.apps_connections_open(app_token=fake_slack.app_token))["url"].startswith(
        "ws://"
    )


async def test_fake_serves_files_only_with_the_bot_token(fake_slack: FakeSlack) -> None:
    f = fake_slack.add_file(b"ID3audio")
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {fake_slack.bot_token}"}
        async with session.get(f["url_private_download"], headers=headers) as resp:
            assert await resp.read() == b"ID3audio"
        async with session.get(f["url_private_download"]) as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            assert await resp.text() == LOGIN_PAGE


async def test_fake_pages_threads_and_leaves_tombstones_like_slack(
    fake_slack: FakeSlack,
) -> None:
    client = AsyncWebClient(token=fake_slack.bot_token, base_url=fake_slack.base_url)
    parent = fake_slack.seed_message("C1", text="root", user="U1")
    for i in range(2):
        fake_slack.seed_message("C1", text=f"reply {i}", user="U2", thread_ts=parent.ts)

    first = await client.conversations_replies(channel="C1", ts=parent.ts, limit=1)
    [root] = first["messages"]
    assert (root["ts"], root["thread_ts"], root["reply_count"], root["reply_users"]) == (
        parent.ts,
        parent.ts,
        2,
        ["U2"],
    )
    assert first["has_more"] is True
    rest = await client.conversations_replies(
        channel="C1", ts=parent.ts, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["reply 0", "reply 1"]
    assert rest["has_more"] is False and rest["messages"][0]["parent_user_id"] == "U1"

    # Deleted with replies: a tombstone stays; without replies: the thread is gone.
    fake_slack.delete_message("C1", parent.ts)
    deleted = await client.conversations_replies(channel="C1", ts=parent.ts, limit=1)
    [gone] = deleted["messages"]
    assert (gone["subtype"], gone["text"], gone.get("hidden")) == (
        "tombstone",
        "This message was deleted.",
        True,
    )
    alone = fake_slack.seed_message("C1", text="alone")
    unthreaded = await client.conversations_replies(channel="C1", ts=alone.ts)
    assert [m["ts"] for m in unthreaded["messages"]] == [alone.ts]
    fake_slack.delete_message("C1", alone.ts)
    with pytest.raises(SlackApiError) as err:
        await client.conversations_replies(channel="C1", ts=alone.ts)
    assert err.value.response["error"] == "thread_not_found"
    assert fake_slack.calls_to("conversations.replies")[0].http_method == "GET"


def test_mrkdwn_escape_covers_slacks_control_characters() -> None:
    assert escape("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"
    assert escape("**Bold** _it_") == "**Bold** _it_"  # formatting is left alone


def test_split_point_prefers_paragraphs_then_lines_then_spaces() -> None:
    text = "a" * 60 + "\n\n" + "b" * 60
    assert split_point(text, 100) == 62
    assert split_point("x" * 70 + "\n" + "y" * 70, 100) == 71
    assert split_point("z" * 300, 100) == 100
    assert split_point("short", 100) == 5
