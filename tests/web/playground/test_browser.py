"""The playground in a real Chromium with a fake microphone: record, stop, and the reply
streams into the page (DashScope faked; the rest is ``voicebot run``'s own code)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import texts
from bot.i18n import tr
from bot.storage.database import Database
from tests.audio import synth
from tests.fakes.dashscope import FakeDashScope
from tests.web.browser import chromium
from tests.web.playground.harness import playground

_OTHER_MODEL = "qwen-audio-turbo-2024-12-04"


def _microphone(path: Path) -> Path:
    """A WAV the fake microphone plays (Chromium loops it while it records)."""
    fmt = synth.FORMATS["audio.wav"]
    path.write_bytes(synth.encode(synth.speech_like(3.0, rate=fmt.rate, seed=5), fmt))
    return path


# One browser test is enough on one database: the HTTP tests cover both.
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_record_stop_and_the_reply_streams_into_the_page(
    db: Database, dashscope_fake: FakeDashScope, tmp_path: Path
) -> None:
    wav = _microphone(tmp_path / "microphone.wav")
    dashscope_fake.queue_reply(chunks=["I heard ", "you ", "loud and clear."], chunk_delay=0.05)
    args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    async with playground(db, dashscope_fake) as pg, chromium(args) as browser:
        page = await browser.new_page()
        await page.goto(pg.base + "/")
        record = page.locator("#record")
        assert await record.text_content() == tr(texts.PLAYGROUND_RECORD)
        await record.click()
        # The page shows how long it has recorded: stop after a full second of it.
        # (A selector, not a script: the page's CSP forbids evaluating strings.)
        await page.locator("#record[data-seconds]:not([data-seconds='0'])").wait_for()
        assert await record.text_content() == tr(texts.PLAYGROUND_STOP)
        await record.click()

        final = page.locator("li.message.bot[data-state=final]")
        await final.first.wait_for()
        first = final.first
        assert (await first.locator(".body").inner_text()).strip() == "I heard you loud and clear."
        assert await first.locator("button.transcript").text_content() == tr(
            texts.TRANSCRIPT_BUTTON
        )
        spoken = page.locator("li.message.voice audio")
        await spoken.wait_for(state="attached")
        assert (await spoken.get_attribute("src") or "").startswith("data:audio/ogg;base64,")

        await first.locator("button.transcript").click()
        transcript = page.locator("li.message.follow .body")
        await transcript.wait_for()
        assert (await transcript.inner_text()).strip()
        assert dashscope_fake.requests[-1].model == "qwen3-asr-flash"

        # Another model from the chooser, then a file picked instead of a recording: the
        # same way in, and the conversation goes on.
        await page.select_option("#model", _OTHER_MODEL)
        status = page.locator("#status")
        changed = tr(texts.MODEL_CHANGED).format(model=_OTHER_MODEL)
        await page.locator(f"#status:text-is('{changed}')").wait_for()
        assert await status.text_content() == changed
        note = tmp_path / "note.ogg"
        fmt = synth.FORMATS["voice.ogg"]
        note.write_bytes(synth.encode(synth.speech_like(1.5, rate=fmt.rate, seed=6), fmt))
        dashscope_fake.queue_reply(chunks=["And that ", "one too."])
        await page.set_input_files("#file", str(note))
        await page.locator("li.message.bot[data-state=final]").nth(1).wait_for()
        assert await final.nth(1).locator(".body").inner_text() == "And that one too."
        second = next(r for r in dashscope_fake.requests if r.model == _OTHER_MODEL)
        assert "assistant" in second.roles  # the first exchange came along as history
        await page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)

        chat = next(r for r in dashscope_fake.requests if r.model == "qwen-audio-turbo-latest")
        (clip,) = chat.audio
        assert clip.duration is not None and clip.duration >= 0.8  # the microphone's audio
