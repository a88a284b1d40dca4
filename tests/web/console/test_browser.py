"""The admin console in a real browser (Debian's Chromium via Playwright): sign in with the
link the bot sent in Telegram, change a group's model in the page, and see the next voice
note answered by it and counted in the usage chart; a reused, an expired and a CSRF-less
request are refused; a chat admin's browser lists their chat only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.storage.tables import ConsoleLink
from tests.telegram.conftest import Harness, voice
from tests.web.browser import chromium
from tests.web.console.test_console import (
    ADMIN_ID,
    NEW_MODEL,
    RETIRED,
    ask_link,
    chat_id,
    link_in,
    mention,
    start,
)


# The HTTP tests cover both databases; the browser adds what only a browser checks.
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_sign_in_change_the_model_and_see_the_usage_chart(
    harness: Harness, tmp_path: Path
) -> None:
    await start(harness)
    tg = harness.tg
    ann, bob = harness.user(ADMIN_ID, "Ann"), harness.user(222, "Bob")
    group = harness.group()
    await mention(harness, group, bob)
    link = link_in(await ask_link(harness, ann, harness.private(ann)))
    gid = await chat_id(harness, group["id"])

    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(link)
        assert page.url.endswith("/admin/")
        row = page.locator(f'tr[data-chat-id="{gid}"]')
        assert "Team" in await row.inner_text()
        await row.get_by_role("link").click()
        await page.wait_for_url(f"**/admin/chat?id={gid}")

        retired = page.locator(f'#model option[value="{RETIRED}"]')
        assert await retired.is_disabled()
        await page.get_by_label("Model", exact=True).select_option(NEW_MODEL)
        await page.get_by_role("button", name="Save").click()
        await page.wait_for_url("**saved=1")
        assert await page.get_by_role("status").inner_text() == "Saved."
        audit = await page.locator("table.audit tbody").inner_text()
        assert f"telegram:{ADMIN_ID}" in audit and NEW_MODEL in audit and "console" in audit

        note = tg.voice_message(chat=group, user=bob, data=voice(), caption=f"@{tg.username} hi")
        tg.inject(message=note)
        await harness.replies(group, 2)
        assert harness.ds.requests[-1].model == NEW_MODEL

        await page.get_by_role("link", name="Usage").click()
        await page.wait_for_url("**/admin/usage")
        bar = page.locator(
            'svg[aria-label="Turns per model"] rect.bar[data-series="turns"]'
            f'[data-label="{NEW_MODEL}"]'
        )
        assert await bar.get_attribute("data-value") == "1"
        assert float(await bar.get_attribute("height") or 0) > 0
        await page.screenshot(path=str(tmp_path / "console-usage.png"), full_page=True)
        assert (tmp_path / "console-usage.png").stat().st_size > 0

        # A form posted without its CSRF token (with the session's cookie) is refused.
        refused = await page.request.post(
            page.url.split("/admin/")[0] + f"/admin/chat?id={gid}", form={"model": RETIRED}
        )
        assert refused.status == 403

        # The link works once: another browser opening it is refused.
        other = await browser.new_context()
        again = await other.new_page()
        answer = await again.goto(link)
        assert answer is not None and answer.status == 403
        assert "expired or was used" in await again.inner_text("main")

        # A chat admin's link shows their chat only; an expired link is refused.
        harness.tg.set_member(group["id"], 222, "administrator")
        bob_link = link_in(await ask_link(harness, bob, harness.private(bob)))
        await again.goto(bob_link)
        rows = again.locator("table.chats tbody tr")
        assert await rows.count() == 1 and "Team" in await rows.inner_text()
        late = link_in(await ask_link(harness, ann, harness.private(ann)))
        async with harness.db.sessions() as s, s.begin():
            await s.execute(
                update(ConsoleLink)
                .where(ConsoleLink.used_at.is_(None))
                .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
            )
        expired = await (await browser.new_context()).new_page()
        shown = await expired.goto(late)
        assert shown is not None and shown.status == 403
