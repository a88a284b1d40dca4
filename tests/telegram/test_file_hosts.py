"""The bot token (in every Telegram file URL) never goes to another host (issue #10).

The download URL must be on the Bot API server's origin; a redirect the server chooses is
followed, but not to another host while the URL still carries the token. A second local
server (:class:`~tests.fakes.foreign.ForeignHost`) stands for that other host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot import texts
from tests.fakes.foreign import ForeignHost, foreign_host
from tests.fakes.telegram import FakeTelegram
from tests.telegram.conftest import Harness, Running, voice

__all__ = ["foreign_host"]


class RedirectingTelegram(FakeTelegram):
    """The fake Bot API server, whose file endpoint answers chosen paths with a 302."""

    def __init__(self) -> None:
        super().__init__()
        self.redirects: dict[str, str] = {}  # file path -> Location
        self.redirected: list[str] = []

    async def _file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        location = self.redirects.get(path)
        if location is None or request.match_info["token"] != self.token:
            return await super()._file(request)
        self.redirected.append(path)
        return web.Response(status=302, headers={"Location": location})


@pytest.fixture
async def telegram_fake() -> AsyncIterator[RedirectingTelegram]:
    """This module's fake can redirect downloads (overrides the shared fixture)."""
    fake = RedirectingTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def fake_of(harness: Harness) -> RedirectingTelegram:
    assert isinstance(harness.tg, RedirectingTelegram)
    return harness.tg


async def send_voice(harness: Harness, data: bytes | None = None) -> tuple[str, str]:
    """A private voice note; returns (its file path at the fake, the bot's reply)."""
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    msg = tg.voice_message(chat=chat, user=ann, data=data or voice())
    tg.inject(message=msg)
    [reply] = await harness.replies(chat, 1)
    return tg.files[msg["voice"]["file_id"]].path, reply


async def test_file_url_template_on_another_host_is_refused(
    harness: Harness, bot: Running, foreign_host: ForeignHost
) -> None:
    # What a mis-set `file` template (or a hostile API answer) would make aiogram build.
    session = bot.platform.bot.session
    session.api = dataclasses.replace(session.api, file=foreign_host.url("/file/bot{token}/{path}"))
    foreign_host.body = voice()
    _, reply = await send_voice(harness)
    assert reply == texts.FILE_FOREIGN_HOST
    assert foreign_host.requests == []
    assert not harness.tg.downloads and not harness.ds.requests


async def test_redirect_elsewhere_with_the_token_in_the_url_is_refused(
    harness: Harness, bot: Running, foreign_host: ForeignHost
) -> None:
    tg = fake_of(harness)
    foreign_host.body = voice()
    path = f"voice/file_{len(tg.files) + 1}.oga"  # the next file the fake stores
    tg.redirects[path] = foreign_host.url(f"/file/bot{tg.token}/{path}")
    _, reply = await send_voice(harness)
    assert reply == texts.FILE_FOREIGN_HOST
    assert tg.redirected == [path]
    assert foreign_host.requests == [] and not foreign_host.saw(tg.token)


async def test_redirect_elsewhere_without_the_token_is_followed(
    harness: Harness, bot: Running, foreign_host: ForeignHost
) -> None:
    tg = fake_of(harness)
    foreign_host.body = voice()
    path = f"voice/file_{len(tg.files) + 1}.oga"
    tg.redirects[path] = foreign_host.url("/signed/voice.oga?sig=abc")
    _, reply = await send_voice(harness, data=b"not used: the CDN serves the audio")
    assert reply.startswith("Heard 1 audio clip(s)")
    assert tg.redirected == [path]
    [seen] = foreign_host.requests
    assert seen.raw_path == "/signed/voice.oga?sig=abc" and seen.authorization is None
    assert not foreign_host.saw(tg.token)


@pytest.mark.parametrize("location", ["file:///etc/passwd", "self"])
async def test_redirects_to_other_schemes_or_in_a_loop_are_refused(
    harness: Harness, bot: Running, location: str
) -> None:
    tg = fake_of(harness)
    path = f"voice/file_{len(tg.files) + 1}.oga"
    loop = location == "self"
    tg.redirects[path] = f"/file/bot{tg.token}/{path}" if loop else location
    _, reply = await send_voice(harness)
    assert reply == texts.TELEGRAM_DOWNLOAD_FAILED
    assert len(tg.redirected) == (6 if loop else 1)  # the first try and 5 redirects
    assert not harness.ds.requests


async def test_local_bot_api_server_mode_still_downloads(harness: Harness, bot: Running) -> None:
    session = bot.platform.bot.session
    session.api = dataclasses.replace(session.api, is_local=True)
    path, reply = await send_voice(harness)
    assert reply.startswith("Heard 1 audio clip(s)")
    assert harness.tg.downloads == [path]
