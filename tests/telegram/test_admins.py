"""Chat admins from getChatMember: kept for a while, up to a bound; failures not kept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.adapters.telegram import admins as admins_module
from bot.adapters.telegram.admins import TelegramAdmins
from bot.engine.ports import ChatRef
from tests.clock import FakeClock, ttl_caches_on
from tests.fakes.telegram import FakeTelegram

GROUP_ID = -100123
GROUP = ChatRef(platform="telegram", chat_id=str(GROUP_ID), kind="supergroup")


@pytest.fixture
async def tg_bot(telegram_fake: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram_fake.base_url))
    bot = Bot(token=telegram_fake.token, session=session)
    try:
        yield bot
    finally:
        await session.close()


def _asked(tg: FakeTelegram) -> int:
    return len(tg.calls_of("getChatMember", ok=None))


async def test_an_answer_is_kept_for_the_ttl(
    telegram_fake: FakeTelegram, tg_bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    ttl_caches_on(clock, monkeypatch, admins_module)
    admins = TelegramAdmins(bot=tg_bot, ttl=60.0)
    telegram_fake.set_member(GROUP_ID, 7, "administrator")
    assert await admins.is_admin(GROUP, "7")
    telegram_fake.set_member(GROUP_ID, 7, "member")  # demoted
    clock.advance(59.0)
    assert await admins.is_admin(GROUP, "7")  # the kept answer
    assert _asked(telegram_fake) == 1
    clock.advance(1.0)
    assert not await admins.is_admin(GROUP, "7")  # expired: asked again
    assert _asked(telegram_fake) == 2


async def test_a_failed_check_denies_and_is_not_kept(
    telegram_fake: FakeTelegram, tg_bot: Bot
) -> None:
    admins = TelegramAdmins(bot=tg_bot)
    telegram_fake.set_member(GROUP_ID, 8, "creator")
    telegram_fake.fail_next("getChatMember", code=400, description="Bad Request: chat not found")
    assert not await admins.is_admin(GROUP, "8")
    assert await admins.is_admin(GROUP, "8")  # asked again at once
    assert _asked(telegram_fake) == 2


async def test_answers_are_bounded(telegram_fake: FakeTelegram, tg_bot: Bot) -> None:
    admins = TelegramAdmins(bot=tg_bot, size=2)
    for user in ("1", "2", "3"):
        assert not await admins.is_admin(GROUP, user)
    assert not await admins.is_admin(GROUP, "3")  # kept
    assert _asked(telegram_fake) == 3
    assert not await admins.is_admin(GROUP, "1")  # the least recently used went first
    assert _asked(telegram_fake) == 4


async def test_private_chats_and_anonymous_admins_need_no_call(
    telegram_fake: FakeTelegram, tg_bot: Bot
) -> None:
    admins = TelegramAdmins(bot=tg_bot)
    private = ChatRef(platform="telegram", chat_id="42", kind="private", private=True)
    assert await admins.is_admin(private, "42")
    assert not await admins.is_admin(private, "43")
    assert await admins.is_admin(GROUP, "1087968824")  # posts as the group: an admin
    assert _asked(telegram_fake) == 0
