"""The playground over HTTP, as a browser uses it: a recording in, the reply streamed out
through the same engine, queue and delivery sink as the chat platforms (SQLite and
PostgreSQL), with DashScope faked at the network boundary."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from bot import texts
from bot.catalog import CATALOG
from bot.i18n import Lang, tr
from bot.storage.database import Database
from bot.web.playground.platform import chat_of
from tests.audio import synth
from tests.fakes.dashscope import FakeDashScope
from tests.web.playground.harness import playground

CATALOG_DEFAULT = "qwen-audio-turbo-latest"
_OTHER_MODEL = "qwen-audio-turbo-2024-12-04"
_RETIRED = next(name for name, spec in CATALOG.items() if not spec.choosable)


def voice(seconds: float, seed: int = 1) -> bytes:
    fmt = synth.FORMATS["voice.ogg"]
    return synth.encode(synth.speech_like(seconds, rate=fmt.rate, seed=seed), fmt)


def webm(seconds: float) -> bytes:
    fmt = synth.FORMATS["clip.webm"]
    return synth.encode(synth.speech_like(seconds, rate=fmt.rate, seed=2), fmt)


async def test_a_recording_is_answered_as_it_streams(
    db: Database, dashscope_fake: FakeDashScope
) -> None:
    """The page's WebM recording reaches the model; the reply streams back in steps, then
    its final text with the Transcript button, then the spoken reply; usage is counted."""
    dashscope_fake.queue_reply(chunks=["Hello ", "from ", "the ", "model."], chunk_delay=0.02)
    async with playground(db, dashscope_fake) as pg, pg.page() as page:
        reply = await page.send(webm(2.0), content_type="audio/webm")
        assert reply.status == 200
        assert reply.events[0][0] == "accepted"
        assert reply.named("progress"), "the reply streams before it is final"
        assert reply.final_text == "Hello from the model."
        request = next(r for r in dashscope_fake.requests if r.model == CATALOG_DEFAULT)
        assert request.audio[0].mime is not None
        assert request.audio_durations == [pytest.approx(2.0, abs=0.1)]
        (button,) = reply.named("final")[-1]["buttons"]
        assert button["label"] == tr(texts.TRANSCRIPT_BUTTON)
        (spoken,) = reply.named("voice")
        assert spoken["src"].startswith("data:audio/ogg;base64,") and spoken["seconds"] > 0
        assert reply.named("done")[0]["status"] == "complete"

        status, body = await page.post_json("/playground/transcript", {"value": button["value"]})
        assert status == 200 and body["text"], body
        assert dashscope_fake.requests[-1].model == "qwen3-asr-flash"

        # Counted in the session's chat, as /usage counts a chat's: the turn, its spoken
        # reply (TTS), and the transcript.
        usage = await pg.core.engine.usage(chat_of(page.session))
        by_model = {row.model: row for row in usage.rows}
        assert by_model[CATALOG_DEFAULT].turns == 1
        assert by_model[CATALOG_DEFAULT].audio_seconds == pytest.approx(2.0, abs=0.1)
        assert usage.totals.tts_characters == len("Hello from the model.")
        assert "qwen3-asr-flash" in by_model


async def test_new_conversation_and_the_model_chooser(
    db: Database, dashscope_fake: FakeDashScope
) -> None:
    async with playground(db, dashscope_fake, TTS_MODEL="off") as pg, pg.page() as page:
        first = await page.send(voice(1.0))
        assert first.final_text
        second = await page.send(voice(1.5, seed=2))
        assert second.final_text
        assert "assistant" in dashscope_fake.requests[-1].roles  # the history was sent

        status, body = await page.post_json("/playground/new", {})
        assert status == 200 and body["message"] == tr(texts.NEW_CONVERSATION)
        await page.send(voice(1.0, seed=3))
        fresh = dashscope_fake.requests[-1]
        assert "assistant" not in fresh.roles
        assert fresh.audio_durations == [pytest.approx(1.0, abs=0.1)]

        status, body = await page.post_json("/playground/model", {"model": _OTHER_MODEL})
        assert status == 200, body
        assert body["message"] == tr(texts.MODEL_CHANGED).format(model=_OTHER_MODEL)
        await page.send(voice(1.0))
        assert dashscope_fake.requests[-1].model == _OTHER_MODEL

        status, body = await page.post_json("/playground/model", {"model": _RETIRED})
        assert status == 400 and "retired" in body["message"], body
        assert body["model"] == _OTHER_MODEL

        html = await page.open()  # the chooser: retired models shown, not selectable
        assert f'<option value="{_RETIRED}" disabled>' in html
        assert f'<option value="{_OTHER_MODEL}" selected>' in html


async def test_refusals_are_short_and_specific(db: Database, dashscope_fake: FakeDashScope) -> None:
    async with playground(db, dashscope_fake, AUDIO_MAX_BYTES=50_000) as pg, pg.page() as page:
        big = await page.send(os.urandom(60_000))
        assert big.status == 413
        assert big.error == tr(texts.AUDIO_TOO_LARGE).format(limit_mb=0)

        corrupt = await page.send(os.urandom(4_000))
        assert corrupt.notices == [tr(texts.NOT_AUDIO)]
        assert not corrupt.named("final")

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: cut off at the cap
            for _ in range(8):
                yield os.urandom(10_000)

        async with page.client.post(
            page.base + "/playground/turn",
            data=chunked(),
            headers=page.headers(**{"Content-Type": "audio/ogg"}),
        ) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"] == big.error

        wrong_type = await page.send(b"hello", content_type="text/plain")
        assert wrong_type.status == 415
        assert wrong_type.error == tr(texts.PLAYGROUND_NOT_AUDIO_TYPE)
        assert dashscope_fake.requests == []  # nothing reached the model

        # CSRF: the cookie alone is not enough, nor another session's token.
        async with page.client.post(page.base + "/playground/new", json={}) as resp:
            assert resp.status == 403
        async with pg.page() as other:
            status, _ = await page.post_json("/playground/new", {})
            assert status == 200
            page.token = other.token
            status, body = await page.post_json("/playground/new", {})
            assert status == 403 and body["error"] == tr(texts.PLAYGROUND_SESSION_ENDED)
        page.token = page.config["token"]
        async with page.client.post(
            page.base + "/playground/new",
            json={},
            headers=page.headers(Origin="http://evil.example"),
        ) as resp:
            assert resp.status == 403


async def test_the_page_speaks_the_browsers_language(
    db: Database, dashscope_fake: FakeDashScope
) -> None:
    async with playground(db, dashscope_fake) as pg, pg.page() as page:
        html = await page.open(language="zh-CN,zh;q=0.9,en;q=0.5")
        assert tr(texts.PLAYGROUND_NEW, Lang.ZH) in html
        assert '<html lang="zh-Hans">' in html
        dashscope_fake.queue_reply(chunks=["好"])
        async with page.client.post(
            page.base + "/playground/turn",
            data=os.urandom(3_000),
            headers=page.headers(**{"Content-Type": "audio/ogg", "Accept-Language": "zh-CN"}),
        ) as resp:
            body = await resp.text()
        assert tr(texts.NOT_AUDIO, Lang.ZH) in body


async def test_a_long_recording_is_answered_with_the_note(
    db: Database, dashscope_fake: FakeDashScope
) -> None:
    """What was left out is said under the reply, as on the chat platforms."""
    dashscope_fake.queue_reply(chunks=["Short answer."])
    overrides = {"AUDIO_MAX_SECONDS": 2, "TTS_MODEL": "off"}
    async with playground(db, dashscope_fake, **overrides) as pg, pg.page() as page:
        reply = await page.send(voice(5.0))
        note = tr(texts.AUDIO_LEFT_OUT).format(sent="0:02", total="0:05")
        assert reply.final_text == f"Short answer.\n\n_{note}_"
        assert dashscope_fake.requests[-1].audio_durations == [pytest.approx(2.0, abs=0.1)]
