"""What the Slack adapter remembers: admin answers and joined threads, for a while and
up to a bound."""

from __future__ import annotations

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack import admins, threads
from bot.adapters.slack.admins import SlackAdminCheck
from bot.adapters.slack.threads import ThreadInspector
from bot.engine.ports import ChatRef
from tests.clock import FakeClock, ttl_caches_on
from tests.fakes.slack import FakeSlack

CHANNEL = ChatRef(platform="slack", chat_id="C1", kind="channel")


def _client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.bot_token, base_url=fake.base_url)


async def test_admin_answers_are_kept_for_the_ttl_and_failures_not_at_all(
    fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    ttl_caches_on(clock, monkeypatch, admins)
    check = SlackAdminCheck(client=_client(fake_slack), ttl=60.0)
    assert not await check.is_admin(CHANNEL, "U1")  # users.info fails: denied, not kept
    fake_slack.add_user("U1", admin=True)
    assert await check.is_admin(CHANNEL, "U1")
    fake_slack.users["U1"]["is_admin"] = False
    clock.advance(59.0)
    assert await check.is_admin(CHANNEL, "U1")  # the kept answer
    assert len(fake_slack.calls_to("users.info")) == 2
    clock.advance(1.0)
    assert not await check.is_admin(CHANNEL, "U1")  # expired: asked again
    assert len(fake_slack.calls_to("users.info")) == 3


async def test_admin_answers_are_bounded(fake_slack: FakeSlack) -> None:
    check = SlackAdminCheck(client=_client(fake_slack), size=2)
    for user in ("U1", "U2", "U3"):
        fake_slack.add_user(user, owner=True)
        assert await check.is_admin(CHANNEL, user)
    assert await check.is_admin(CHANNEL, "U3")  # kept
    assert len(fake_slack.calls_to("users.info")) == 3
    assert await check.is_admin(CHANNEL, "U1")  # the least recently used went first
    assert len(fake_slack.calls_to("users.info")) == 4


async def test_joined_threads_are_remembered_for_the_ttl_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    ttl_caches_on(clock, monkeypatch, threads)
    inspector = ThreadInspector(client=None, ttl=600.0, size=2)
    inspector.mark_joined("C1", "1.1")
    assert inspector.known_joined("C1", "1.1")
    assert not inspector.known_joined("C1", "2.2")
    inspector.mark_joined("C1", "2.2")
    inspector.mark_joined("C1", "3.3")  # a third thread: the oldest is forgotten
    assert not inspector.known_joined("C1", "1.1")
    assert inspector.known_joined("C1", "2.2") and inspector.known_joined("C1", "3.3")
    clock.advance(300.0)
    inspector.mark_joined("C1", "3.3")  # marking again starts the ttl anew
    clock.advance(300.0)
    assert not inspector.known_joined("C1", "2.2")
    assert inspector.known_joined("C1", "3.3")
    clock.advance(300.0)
    assert not inspector.known_joined("C1", "3.3")
