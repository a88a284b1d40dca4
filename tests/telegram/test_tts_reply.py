"""Voice replies of a text-only model through TTS (qwen3-tts-flash), on Telegram: real
aiogram against the fake Bot API, the real TTS client against the fake DashScope.

The reply is streamed as text; its complete sentences are synthesized while the model is
still writing (the fake holds the model's stream until the first TTS request arrived, and
the test checks the fakes' recorded times: no guessed delays); the voice note comes after
the final text, once, and holds exactly the PCM the fake TTS sent.
"""

from __future__ import annotations

import pytest

from bot import texts
from bot.engine import presenters
from bot.engine.ports import ChatRef
from bot.i18n import Lang, use
from tests.fakes.audio import decoded_seconds
from tests.fakes.dashscope import Fail, Reply
from tests.telegram.conftest import Harness, voice

TTS = {"TTS_MODEL": "qwen3-tts-flash"}
LONG = " ".join(f"Sentence number {i} of the long middle part, spoken in turn." for i in range(14))


async def test_a_voice_note_to_a_text_model_gets_text_then_one_synthesized_note(
    harness: Harness,
) -> None:
    bot = await harness.start(**TTS)
    tg, ds = harness.tg, harness.ds
    # The model writes on only once the TTS has started on its first sentence.
    held = ds.tts_started
    chunks = ["Hello **Ann**. ", LONG + " ", "And `that` is all."]
    ds.queue(Reply(chunks=chunks, hold=held, hold_at=1))
    ann = harness.user()
    chat = harness.private(ann)
    msg = tg.voice_message(chat=chat, user=ann, data=voice())
    tg.inject(message=msg)

    await harness.until(lambda: tg.sent_voices(chat["id"]) and harness.idle())
    [text] = [m["text"] for m in tg.sent(chat["id"]) if "text" in m]
    assert text.startswith("Hello Ann. Sentence number 0") and text.endswith("that is all.")
    [(note, data)] = tg.sent_voices(chat["id"])
    assert note["reply_to_message"]["message_id"] == msg["message_id"]
    assert tg.calls.index(tg.calls_of("sendVoice")[0]) > tg.calls.index(
        tg.calls_of("sendMessage")[-1]
    ), "the voice note follows the final text"

    chat_req = next(r for r in ds.requests if r.model == "qwen-audio-turbo-latest")
    tts = ds.tts_requests
    assert chat_req.finished_at is not None and tts[0].finished_at is not None
    assert tts[0].received_at < chat_req.finished_at, "TTS starts while the model writes"
    # Pieces of at most 600 characters, cut at sentence ends, spoken as plain text.
    spoken = [t for r in tts for _, t in r.texts]
    assert len(spoken) >= 3 and all(len(t) <= 600 for t in spoken)
    assert spoken[0] == "Hello Ann."
    assert all(t.rstrip().endswith((".", "!", "?")) for t in spoken)
    assert " ".join(spoken).endswith("And that is all.") and "*" not in "".join(spoken)
    # The note is exactly the speech the fake sent (±50 ms), in order.
    sent_seconds = sum(len(r.speech) for r in tts) / 48_000
    assert decoded_seconds(data) == pytest.approx(sent_seconds, abs=0.05)

    ref = ChatRef(platform="telegram", chat_id=str(chat["id"]), kind="private", private=True)
    with use(Lang.EN):
        report = presenters.usage_summary(await bot.core.engine.usage(ref))
        shown = presenters.settings_summary(await bot.core.engine.get_settings(ref), ref)
    assert f"Read aloud: {sum(len(t) for t in spoken)} characters (qwen3-tts-flash)" in report
    assert "Total: 1 turns" in report, "TTS is not counted as a turn"
    assert "read aloud by qwen3-tts-flash: characters show in the usage report" in shown


async def test_a_text_message_gets_no_tts(harness: Harness) -> None:
    await harness.start(**TTS)
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.message(chat=chat, user=ann, text="hello"))
    await harness.replies(chat, 1)
    assert harness.ds.tts_requests == [] and tg.calls_of("sendVoice", ok=None) == []


async def test_tts_failure_keeps_the_text_and_says_the_voice_could_not_be_made(
    harness: Harness,
) -> None:
    await harness.start(**TTS)
    tg, ds = harness.tg, harness.ds
    ds.queue_tts(Fail(status=400, code="InvalidParameter"))
    ds.queue(Reply(chunks=["The whole ", "answer."]))
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    shown = await harness.replies(chat, 2)
    assert shown == ["The whole answer.", texts.VOICE_REPLY_NOT_MADE]
    assert tg.calls_of("sendVoice", ok=None) == []
    assert [r.status for r in ds.tts_requests] == [400]


async def test_a_tts_the_key_cannot_use_is_left_alone_and_nothing_is_said(
    harness: Harness,
) -> None:
    # DashScope says the TTS model is not there for this key: an operator's matter. The
    # user gets the text only, with no note about a voice, and the next turns do not try
    # the TTS again (for TTS_UNAVAILABLE_PAUSE).
    await harness.start(**TTS)
    tg, ds = harness.tg, harness.ds
    ds.queue_tts(Fail(status=404, code="ModelNotFound", message="Model not exist."))
    ds.queue(Reply(chunks=["First ", "answer."]))
    ds.queue(Reply(chunks=["Second ", "answer."]))
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    assert await harness.replies(chat, 1) == ["First answer."]
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice(seed=1)))
    await harness.until(lambda: len(tg.sent(chat["id"])) >= 2)
    await harness.until(harness.idle)
    assert [m.get("text") for m in tg.sent(chat["id"])] == ["First answer.", "Second answer."]
    assert [r.status for r in ds.tts_requests] == [404]  # tried once, then left alone
    assert tg.calls_of("sendVoice", ok=None) == []


async def test_a_spoken_reply_past_the_cap_is_cut_and_says_so(harness: Harness) -> None:
    await harness.start(VOICE_REPLY_MAX_SECONDS=2, **TTS)
    tg, ds = harness.tg, harness.ds
    ds.queue(Reply(chunks=["One two three four. ", "Five six seven eight. ", "Nine ten."]))
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    await harness.until(lambda: tg.sent_voices(chat["id"]) and harness.idle())
    [(_, data)] = tg.sent_voices(chat["id"])
    assert decoded_seconds(data) == pytest.approx(2.0, abs=0.05)
    texts_shown = [m["text"] for m in tg.sent(chat["id"]) if "text" in m]
    assert texts_shown[0].startswith("One two three four.")
    with use(Lang.EN):
        assert any("The voice note reads the first" in t for t in texts_shown)
    spoken = sum(len(r.speech) for r in ds.tts_requests) / 48_000
    assert spoken >= 2.0


def test_tts_pieces_come_from_the_catalog_limit() -> None:
    from bot.catalog import TTS_CATALOG
    from bot.engine.speech import TTS_CHARS, settled

    assert TTS_CHARS == TTS_CATALOG["qwen3-tts-flash"].max_chars == 600
    assert settled("One. Two") == len("One. ")
    assert settled("Code:\n```\nx = 1.\ny") == len("Code:\n"), "never inside a code block"
    assert settled("no end yet") == 0
