"""The bot token goes only to Slack's file hosts (issue #10): foreign file URLs in events
and ``files.info`` answers are refused, redirects elsewhere are followed without it.

A second local server (:class:`~tests.fakes.foreign.ForeignHost`) stands for the
attacker's host, or for the CDN a Slack download legitimately redirects to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bot import texts
from tests.fakes.foreign import ForeignHost, foreign_host
from tests.fakes.slack import FakeSlack
from tests.slack.conftest import DM, SlackBot, clip

__all__ = ["foreign_host"]


class RedirectingSlack(FakeSlack):
    """The fake Slack, whose file host answers chosen downloads with a 302."""

    def __init__(self) -> None:
        super().__init__()
        self.redirects: dict[str, str] = {}  # request path with query -> Location

    async def _download(self, request: web.Request) -> web.StreamResponse:
        location = self.redirects.get(request.path_qs)
        if location is None:
            return await super()._download(request)
        authorised = request.headers.get("Authorization") == f"Bearer {self.bot_token}"
        self.downloads.append((request.match_info["file_id"].split("-", 1)[-1], authorised))
        return web.Response(status=302, headers={"Location": location})

    def redirect(self, file: dict[str, Any], location: str) -> None:
        """Answer the download of ``file`` with ``Location: location``."""
        self.redirects[_path_qs(file["url_private_download"])] = location


def _path_qs(url: str) -> str:
    return "/" + url.split("/", 3)[3]


@pytest.fixture
async def fake_slack() -> AsyncIterator[RedirectingSlack]:
    """This module's fake Slack can redirect downloads (overrides the shared fixture)."""
    fake = RedirectingSlack()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def fake_of(bot: SlackBot) -> RedirectingSlack:
    assert isinstance(bot.fake, RedirectingSlack)
    return bot.fake


def moved(file: dict[str, Any], url: str) -> dict[str, Any]:
    """``file`` as a crafted event would carry it: both file URLs point at ``url``."""
    return {**file, "url_private": url, "url_private_download": url + "?download=1"}


def assert_no_token_left(bot: SlackBot, foreign: ForeignHost) -> None:
    assert not foreign.saw(bot.fake.bot_token)
    assert all(r.authorization is None for r in foreign.requests)


async def test_event_file_on_a_foreign_host_is_refused_before_any_request(
    bot: SlackBot, foreign_host: ForeignHost
) -> None:
    foreign_host.body = clip()  # it would even serve audio: it still gets nothing
    f = bot.fake.add_file(clip())
    crafted = moved(f, foreign_host.url(f"/files-pri/T0TEAM-{f['id']}/audio_message.m4a"))
    await bot.send_event(bot.file_message(crafted))
    [reply] = await bot.replies(DM)
    assert reply.text == texts.SLACK_FILE_FOREIGN_HOST
    assert foreign_host.requests == []
    assert bot.fake.downloads == [] and not bot.dashscope.requests


async def test_files_info_naming_a_foreign_host_is_refused(
    bot: SlackBot, foreign_host: ForeignHost
) -> None:
    f = bot.fake.add_file(clip())
    evil = foreign_host.url(f"/files-pri/T0TEAM-{f['id']}/audio_message.m4a")
    bot.fake.files[f["id"]].update(url_private=evil, url_private_download=evil + "?download=1")
    stub = {"id": f["id"], "file_access": "check_file_info", "mode": "hidden_by_limit"}
    await bot.send_event(bot.file_message(stub))
    [reply] = await bot.replies(DM)
    assert reply.text == texts.SLACK_FILE_FOREIGN_HOST
    assert bot.fake.calls_to("files.info")
    assert foreign_host.requests == [] and bot.fake.downloads == []


async def test_redirect_to_another_host_is_followed_without_the_token(
    bot: SlackBot, foreign_host: ForeignHost
) -> None:
    foreign_host.body = clip()
    f = bot.fake.add_file(clip())
    fake_of(bot).redirect(f, foreign_host.url("/signed/audio_message.m4a?sig=abc&exp=99"))
    await bot.send_event(bot.file_message(f))
    [reply] = await bot.replies(DM)
    assert reply.text.startswith("Heard 1 audio clip(s)")
    assert bot.fake.downloads == [(f["id"], True)]  # Slack's own hop had the token
    [seen] = foreign_host.requests  # the CDN hop did not
    assert seen.raw_path == "/signed/audio_message.m4a?sig=abc&exp=99"
    assert_no_token_left(bot, foreign_host)


async def test_redirect_within_slack_keeps_the_token(http_bot: SlackBot) -> None:
    f = http_bot.fake.add_file(clip())
    fake_of(http_bot).redirect(f, _path_qs(f["url_private"]))  # relative Location
    await http_bot.send_event(http_bot.file_message(f))
    [reply] = await http_bot.replies(DM)
    assert reply.text.startswith("Heard 1 audio clip(s)")
    assert http_bot.fake.downloads == [(f["id"], True), (f["id"], True)]


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://files.slack.com/x", "self"])
async def test_redirects_to_other_schemes_or_in_a_loop_are_refused(
    http_bot: SlackBot, location: str
) -> None:
    f = http_bot.fake.add_file(clip())
    loop = location == "self"
    fake_of(http_bot).redirect(f, f["url_private_download"] if loop else location)
    await http_bot.send_event(http_bot.file_message(f))
    [reply] = await http_bot.replies(DM)
    assert reply.text == texts.SLACK_FILE_DOWNLOAD_FAILED
    assert len(http_bot.fake.downloads) == (6 if loop else 1)  # the first try and 5 redirects
    assert not http_bot.dashscope.requests


@pytest.mark.parametrize(
    "url",
    [
        "http://files.slack.com/files-pri/T0TEAM-{id}/a.m4a",  # Slack, but plain HTTP
        "https://files.slack.com.evil.example/files-pri/T0TEAM-{id}/a.m4a",
        "https://files.slack.com@evil.example/files-pri/T0TEAM-{id}/a.m4a",
        "http://localhost:{port}/files-pri/T0TEAM-{id}/audio_message.m4a",  # not the API host
        "https://127.0.0.1:{port}/files-pri/T0TEAM-{id}/audio_message.m4a",  # not its scheme
    ],
)
async def test_https_and_the_exact_host_are_required(http_bot: SlackBot, url: str) -> None:
    f = http_bot.fake.add_file(clip())
    crafted = moved(f, url.format(id=f["id"], port=http_bot.fake.port))
    await http_bot.send_event(http_bot.file_message(crafted))
    [reply] = await http_bot.replies(DM)
    assert reply.text == texts.SLACK_FILE_FOREIGN_HOST  # refused by the rule, not the network
    assert http_bot.fake.downloads == []
