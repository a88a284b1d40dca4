"""Spoken replies on Telegram, through real aiogram against the fake Bot API: the streamed
text, then one playable voice note (``sendVoice``, multipart) answering the user's message.

The speech is Qwen-Omni's own: the bot's default model is an Omni model and the fake
DashScope streams its PCM (``RecordedRequest.speech``) beside the text.
"""

from __future__ import annotations

import pytest

from bot import texts
from bot.catalog import CATALOG
from bot.engine.ports import ChatRef
from tests.engine.test_settings_usage import Admins
from tests.fakes.audio import decoded_seconds, pcm_seconds
from tests.fakes.dashscope import Reply
from tests.telegram.conftest import Harness, Running, voice

OMNI = "qwen3-omni-flash"


async def _start(harness: Harness, **overrides: object) -> Running:
    return await harness.start(DEFAULT_MODEL=OMNI, **overrides)


async def test_a_voice_note_gets_the_text_then_one_voice_note(harness: Harness) -> None:
    await _start(harness)
    tg = harness.tg
    harness.ds.queue(
        Reply(chunks=["Hi ", "**Ann**", ", here it is."], chunk_delay=0.05, speech_seconds=2.7)
    )
    ann = harness.user()
    chat = harness.private(ann)
    msg = tg.voice_message(chat=chat, user=ann, data=voice())
    tg.inject(message=msg)

    await harness.until(lambda: tg.sent_voices(chat["id"]) and harness.idle())
    req = harness.ds.last_request
    assert req.wants_speech and req.voice == CATALOG[OMNI].voices[0]
    sent = pcm_seconds(req.speech)
    assert sent == pytest.approx(2.7, abs=0.001)
    texts_sent = [m for m in tg.sent(chat["id"]) if "text" in m]
    assert [m["text"] for m in texts_sent] == ["Hi Ann, here it is."], "text sent once"
    [(note, data)] = tg.sent_voices(chat["id"])
    assert note["voice"]["mime_type"] == "audio/ogg"
    assert note["voice"]["duration"] == 3  # whole seconds, as the Bot API takes it
    assert decoded_seconds(data) == pytest.approx(sent, abs=0.05)
    assert note["reply_to_message"]["message_id"] == msg["message_id"]
    # After the final text; one upload, multipart, with the file as an attached part.
    [call] = tg.calls_of("sendVoice")
    assert call.content_type == "multipart/form-data"
    assert call.raw["voice"].startswith("attach://") and len(call.files) == 1
    assert tg.calls.index(call) > tg.calls.index(tg.calls_of("sendMessage")[-1])


async def test_a_text_message_gets_no_voice_note(harness: Harness) -> None:
    await _start(harness)
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.message(chat=chat, user=ann, text="hello"))
    await harness.replies(chat, 1)
    assert not harness.ds.last_request.wants_speech
    assert tg.calls_of("sendVoice", ok=None) == [] and tg.uploads == []


async def test_always_in_a_topic_sends_the_note_into_the_topic(harness: Harness) -> None:
    bot = await _start(harness, BOT_ADMINS="telegram:111")
    tg = harness.tg
    ann = harness.user()
    group = harness.group(forum=True)
    ref = ChatRef(platform="telegram", chat_id=str(group["id"]), kind="supergroup")
    await bot.core.engine.update_settings(ref, "111", Admins(), voice_reply="always")
    harness.ds.queue(Reply(chunks=["Hi all."], speech_seconds=1.2))
    msg = tg.message(chat=group, user=ann, text="@voice_test_bot hi", thread_id=77)
    tg.inject(message=msg)
    await harness.until(lambda: tg.sent_voices(group["id"]) and harness.idle())
    [(note, data)] = tg.sent_voices(group["id"])
    assert note["message_thread_id"] == 77
    assert note["reply_to_message"]["message_id"] == msg["message_id"]
    sent = pcm_seconds(harness.ds.last_request.speech)
    assert sent == pytest.approx(1.2, abs=0.001)
    assert decoded_seconds(data) == pytest.approx(sent, abs=0.05)


async def test_a_voice_note_telegram_refuses_keeps_the_text_and_says_so(
    harness: Harness,
) -> None:
    await _start(harness, DELIVERY_TIMEOUT=2)
    tg = harness.tg
    tg.fail_next("sendVoice", code=400, description="Bad Request: VOICE_MESSAGES_FORBIDDEN")
    harness.ds.queue(Reply(chunks=["The answer."], speech_seconds=1.0))
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    shown = await harness.replies(chat, 2)
    assert shown == ["The answer.", texts.VOICE_REPLY_FAILED]
    assert harness.ds.last_request.speech != b""
    assert tg.sent_voices(chat["id"]) == []
    assert len(tg.calls_of("sendVoice", ok=None)) == 1  # a refusal is not retried


async def test_a_rate_limited_voice_note_is_retried_and_sent_once(harness: Harness) -> None:
    await _start(harness)
    tg = harness.tg
    tg.fail_next("sendVoice", code=429, retry_after=1)
    harness.ds.queue(Reply(chunks=["Once."], speech_seconds=1.0))
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    await harness.until(lambda: tg.sent_voices(chat["id"]) and harness.idle())
    refused, sent = tg.calls_of("sendVoice", ok=None)
    assert not refused.ok and sent.ok
    assert sent.at - refused.at >= 1.0  # Telegram's retry_after was honoured
    [(_note, data)] = tg.sent_voices(chat["id"])
    assert decoded_seconds(data) == pytest.approx(
        pcm_seconds(harness.ds.last_request.speech), abs=0.05
    )
    assert len([m for m in tg.sent(chat["id"]) if "text" in m]) == 1
