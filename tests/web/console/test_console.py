"""The admin console over HTTP: sign-in links from the chat, sessions, CSRF, scope, the
audit, and the same validation as the chat commands (real bot, fake Telegram/DashScope)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import update

from bot.storage.tables import Chat, ConsoleLink, SettingsAudit
from tests.telegram.conftest import Harness, Running, voice

LINK = re.compile(r"(http://127\.0\.0\.1:\d+/admin/login\?token=\S+)")
ADMIN_ID = 111
NEW_MODEL = "qwen-audio-turbo-2024-12-04"
RETIRED = "qwen-audio-asr"


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: keep cookies for an IP address host (127.0.0.1), as a browser does.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def start(harness: Harness, **overrides: Any) -> Running:
    settings: dict[str, Any] = {"ADMIN_CONSOLE": "true", "BOT_ADMINS": f"telegram:{ADMIN_ID}"}
    settings.update(overrides)
    running = await harness.start(**settings)
    # Sign-in links point at the bot's own server (ADMIN_URL unset: HTTP_HOST:HTTP_PORT).
    return running


async def ask_link(harness: Harness, user: dict[str, Any], chat: dict[str, Any]) -> str:
    """``/admin`` from ``user`` in ``chat``; the bot's answer there."""
    tg = harness.tg
    before = len(tg.sent(chat["id"]))
    tg.inject(message=tg.message(chat=chat, user=user, text="/admin"))
    await harness.until(lambda: len(tg.sent(chat["id"])) > before)
    return str(tg.sent_texts(chat["id"])[-1])


def link_in(answer: str) -> str:
    found = LINK.search(answer)
    assert found, answer
    return found.group(1)


async def mention(harness: Harness, group: dict[str, Any], user: dict[str, Any]) -> None:
    """Someone talks to the bot in ``group``, so the bot knows the chat."""
    tg = harness.tg
    before = len(tg.sent(group["id"]))
    tg.inject(message=tg.message(chat=group, user=user, text=f"@{tg.username} hello"))
    await harness.replies(group, before + 1)


async def chat_id(harness: Harness, external: int) -> int:
    async with harness.db.sessions() as s:
        from sqlalchemy import select

        row = await s.scalar(select(Chat).where(Chat.external_id == str(external)))
        assert row is not None
        return row.id


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field in the page"
    return found.group(1)


async def test_a_bot_admin_signs_in_once_and_changes_a_chats_model(
    harness: Harness, client: aiohttp.ClientSession
) -> None:
    running = await start(harness)
    base = f"http://127.0.0.1:{running.http.bound_port}"
    ann, bob = harness.user(ADMIN_ID, "Ann"), harness.user(222, "Bob")
    group = harness.group()
    await mention(harness, group, bob)

    answer = await ask_link(harness, ann, harness.private(ann))
    assert "valid for 10 minutes" in answer and "every chat" in answer
    link = link_in(answer)
    async with client.get(link, allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/admin/"
        cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/;" in cookie
    assert "Max-Age=28800" in cookie
    async with client.get(f"{base}/admin/") as resp:
        page = await resp.text()
    assert resp.status == 200 and "Team" in page and "never message text" in page
    # The link works once.
    async with aiohttp.ClientSession() as other, other.get(link, allow_redirects=False) as resp:
        assert resp.status == 403
        assert "expired or was used" in await resp.text()

    gid = await chat_id(harness, group["id"])
    async with client.get(f"{base}/admin/chat?id={gid}") as resp:
        page = await resp.text()
    assert re.search(rf'<option value="{RETIRED}" disabled', page), "a retired model is choosable"
    token = csrf_of(page)
    # No CSRF token, or a wrong one: refused, nothing changes.
    for form in ({"model": NEW_MODEL}, {"model": NEW_MODEL, "csrf": "forged"}):
        async with client.post(f"{base}/admin/chat?id={gid}", data=form) as resp:
            assert resp.status == 403
    # A retired model sent anyway is refused with the chat command's message.
    async with client.post(
        f"{base}/admin/chat?id={gid}", data={"model": RETIRED, "csrf": token}
    ) as resp:
        assert resp.status == 400 and "retired" in (await resp.text()).lower()
    async with client.post(
        f"{base}/admin/chat?id={gid}",
        data={"model": NEW_MODEL, "csrf": token},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303
    async with client.get(f"{base}/admin/chat?id={gid}&saved=1") as resp:
        page = await resp.text()
    assert "Saved." in page
    audit = re.search(r"<table class=\"audit\">.*?</table>", page, re.S)
    assert audit and f"telegram:{ADMIN_ID}" in audit.group(0) and NEW_MODEL in audit.group(0)
    async with harness.db.sessions() as s:
        from sqlalchemy import select

        rows = (await s.scalars(select(SettingsAudit).where(SettingsAudit.chat_id == gid))).all()
    assert [(r.via, r.setting, r.old, r.new) for r in rows] == [
        ("console", "model", None, NEW_MODEL)
    ]

    # The group's next voice note is answered by the model chosen in the console.
    tg = harness.tg
    note = tg.voice_message(chat=group, user=bob, data=voice(), caption=f"@{tg.username} hi")
    tg.inject(message=note)
    await harness.replies(group, 2)
    assert harness.ds.requests[-1].model == NEW_MODEL


async def test_a_chat_admin_sees_only_the_chats_they_administer(
    harness: Harness, client: aiohttp.ClientSession
) -> None:
    running = await start(harness)
    base = f"http://127.0.0.1:{running.http.bound_port}"
    bob = harness.user(222, "Bob")
    mine, theirs = harness.group(-100500), harness.group(-100600)
    await mention(harness, mine, bob)
    await mention(harness, theirs, bob)
    harness.tg.set_member(mine["id"], 222, "administrator")
    harness.tg.set_member(theirs["id"], 222, "member")
    private = harness.private(bob)
    harness.tg.inject(message=harness.tg.message(chat=private, user=bob, text="hi"))
    await harness.replies(private, 1)  # the bot knows Bob's private chat too

    answer = await ask_link(harness, bob, private)
    assert "the 1 chats you administer" in answer
    async with client.get(link_in(answer)) as resp:
        page = await resp.text()
    mine_id, theirs_id = await chat_id(harness, mine["id"]), await chat_id(harness, theirs["id"])
    assert f'data-chat-id="{mine_id}"' in page and f'data-chat-id="{theirs_id}"' not in page
    assert f'data-chat-id="{await chat_id(harness, 222)}"' not in page  # not a private chat
    async with client.get(f"{base}/admin/chat?id={theirs_id}") as resp:
        assert resp.status == 404
    async with client.get(f"{base}/admin/chat?id={mine_id}") as resp:
        token = csrf_of(await resp.text())
    async with client.post(
        f"{base}/admin/chat?id={theirs_id}", data={"model": NEW_MODEL, "csrf": token}
    ) as resp:
        assert resp.status == 404


async def test_no_link_for_a_non_admin_nor_in_a_group_nor_with_the_console_off(
    harness: Harness, client: aiohttp.ClientSession
) -> None:
    running = await start(harness)
    carl, ann = harness.user(333, "Carl"), harness.user(ADMIN_ID, "Ann")
    group = harness.group()
    await mention(harness, group, carl)
    harness.tg.set_member(group["id"], 333, "member")
    refused = await ask_link(harness, carl, harness.private(carl))
    assert "Only chat admins" in refused and "/admin/login" not in refused
    in_group = await ask_link(harness, ann, group)
    assert "private chat" in in_group and "/admin/login" not in in_group
    async with harness.db.sessions() as s:
        from sqlalchemy import func, select

        assert await s.scalar(select(func.count()).select_from(ConsoleLink)) == 0
    # Without a session every page asks to sign in.
    base = f"http://127.0.0.1:{running.http.bound_port}"
    async with client.get(f"{base}/admin/usage") as resp:
        assert resp.status == 401 and "/admin" in await resp.text()
    await running.stop()

    off = await harness.start(BOT_ADMINS=f"telegram:{ADMIN_ID}")
    answer = await ask_link(harness, ann, harness.private(ann))
    assert "admin console is off" in answer
    async with client.get(f"http://127.0.0.1:{off.http.bound_port}/admin/") as resp:
        assert resp.status == 404


async def test_an_expired_link_is_refused(harness: Harness, client: aiohttp.ClientSession) -> None:
    await start(harness)
    ann = harness.user(ADMIN_ID, "Ann")
    link = link_in(await ask_link(harness, ann, harness.private(ann)))
    async with harness.db.sessions() as s, s.begin():
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        await s.execute(update(ConsoleLink).values(expires_at=past))
    async with client.get(link, allow_redirects=False) as resp:
        assert resp.status == 403 and "Set-Cookie" not in resp.headers


async def test_usage_charts_and_health_show_the_turns_just_made(
    harness: Harness, client: aiohttp.ClientSession
) -> None:
    running = await start(harness)
    base = f"http://127.0.0.1:{running.http.bound_port}"
    ann = harness.user(ADMIN_ID, "Ann")
    private = harness.private(ann)
    tg = harness.tg
    for n in range(1, 3):
        tg.inject(message=tg.voice_message(chat=private, user=ann, data=voice()))
        await harness.replies(private, n)
    async with client.get(link_in(await ask_link(harness, ann, private))):
        pass
    async with client.get(f"{base}/admin/usage") as resp:
        page = await resp.text()
    assert resp.status == 200 and "<svg" in page
    today = dt.date.today().isoformat()[5:]
    bars = re.findall(
        r'<rect class="bar"[^>]*data-series="turns" data-label="([^"]+)" data-value="([^"]+)"',
        page,
    )
    assert (today, "2") in bars
    assert "Turns per model" in page
    async with client.get(f"{base}/admin/health") as resp:
        health = await resp.text()
    assert resp.status == 200 and "Turn queue" in health and "connected" in health.lower()
    # Never message text: the bot's reply and the audio's "transcript" are not shown.
    for text in tg.sent_texts(private["id"])[:2]:
        assert text[:20] not in page and text[:20] not in health


async def test_a_bot_admin_manages_a_chat_of_another_platform_as_themselves(
    harness: Harness, client: aiohttp.ClientSession
) -> None:
    """BOT_ADMINS see every chat and may change any of them (a Slack channel, signed in
    from Telegram); the audit names the Telegram admin, not a Slack user of that id."""
    from bot.engine.chat_store import change_settings
    from bot.engine.ports import ChatRef

    running = await start(harness)
    base = f"http://127.0.0.1:{running.http.bound_port}"
    channel = ChatRef(platform="slack", chat_id="C0GENERAL", kind="channel", title="general")
    await change_settings(harness.db, channel, changes={}, changed_by="slack:U0")  # known
    ann = harness.user(ADMIN_ID, "Ann")
    async with client.get(link_in(await ask_link(harness, ann, harness.private(ann)))) as resp:
        assert "general" in await resp.text()
    cid = await chat_id(harness, "C0GENERAL")  # type: ignore[arg-type]
    async with client.get(f"{base}/admin/chat?id={cid}") as resp:
        token = csrf_of(await resp.text())
    async with client.post(
        f"{base}/admin/chat?id={cid}",
        data={"model": NEW_MODEL, "csrf": token},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303
    async with harness.db.sessions() as s:
        from sqlalchemy import select

        rows = (await s.scalars(select(SettingsAudit).where(SettingsAudit.chat_id == cid))).all()
    assert [(r.actor, r.via, r.new) for r in rows] == [
        (f"telegram:{ADMIN_ID}", "console", NEW_MODEL)
    ]
    await running.stop()
    # Out of BOT_ADMINS, the session that saw every chat is over.
    await start(harness, BOT_ADMINS="")
    async with client.get(
        f"{base.rsplit(':', 1)[0]}:{harness.bots[-1].http.bound_port}/admin/"
    ) as resp:
        assert resp.status == 401
