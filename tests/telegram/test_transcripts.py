"""The Transcript button under replies to voice, and the chat setting ``transcript``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot import texts
from bot.commands import SLASH
from bot.storage.tables import AudioClip
from tests.fakes.dashscope import Fail, RecordedRequest, Reply, model_answers, request_audio
from tests.telegram.conftest import Harness, Running, voice

ASR = "qwen3-asr-flash"


def asr_requests(harness: Harness) -> list[RecordedRequest]:
    return [r for r in harness.ds.requests if r.model == ASR]


async def stored_clips(harness: Harness) -> list[bytes]:
    async with harness.db.sessions() as session:
        rows = await session.execute(select(AudioClip.data).order_by(AudioClip.id))
        return [bytes(data) for data in rows.scalars().all()]


def keyboard(message: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return list((message.get("reply_markup") or {}).get("inline_keyboard") or [])


async def test_transcript_button_in_a_private_chat(harness: Harness, bot: Running) -> None:
    tg, ds = harness.tg, harness.ds
    ds.script(model_answers(ASR, Reply(chunks=["Guten ", "Morgen, alle."], language="de")))
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    [reply] = await harness.replies(chat, 1)
    assert reply.startswith("Heard 1 audio clip(s)")
    shown = tg.sent(chat["id"])[0]
    [[button]] = keyboard(shown)
    assert button["text"] == texts.TRANSCRIPT_BUTTON
    assert button["callback_data"].startswith("transcript:")
    assert len(button["callback_data"].encode()) <= 64

    # Anyone may press it: the callback is answered at once, the transcript follows as a
    # reply to the bot's message, with the detected language.
    tg.inject(
        callback_query=tg.callback_query(message=shown, user=ann, data=button["callback_data"])
    )
    await harness.until(lambda: len(tg.sent(chat["id"])) == 2 and harness.idle())
    assert tg.calls_of("answerCallbackQuery")[0].params.get("text") == texts.TRANSCRIPT_WORKING
    posted = tg.sent(chat["id"])[1]
    assert posted["text"] == "Transcript (German):\nGuten Morgen, alle."
    assert posted["reply_to_message"]["message_id"] == shown["message_id"]
    assert "reply_markup" not in posted
    # The clip exactly as stored went to the ASR model: no second download.
    [request] = asr_requests(harness)
    assert request_audio(request) == await stored_clips(harness)
    assert len(tg.calls_of("getFile")) == 1 and len(tg.downloads) == 1

    # A second press costs nothing: the stored transcript is posted again.
    tg.inject(
        callback_query=tg.callback_query(message=shown, user=ann, data=button["callback_data"])
    )
    await harness.until(lambda: len(tg.sent(chat["id"])) == 3)
    assert tg.sent(chat["id"])[2]["text"] == posted["text"]
    assert len(asr_requests(harness)) == 1
    assert tg.calls_of("answerCallbackQuery")[1].params.get("text") is None

    # A text-only turn has nothing to transcribe: no button.
    tg.inject(message=tg.message(chat=chat, user=ann, text="and what now?"))
    await harness.replies(chat, 4)
    assert keyboard(tg.sent(chat["id"])[3]) == []

    # /usage counts the transcript under its model.
    tg.inject(message=tg.message(chat=chat, user=ann, text="/usage"))
    await harness.replies(chat, 5)
    usage = tg.sent_texts(chat["id"])[4]
    assert f"· {ASR}: 1 turns" in usage


async def test_forgotten_turns_and_model_errors(harness: Harness, bot: Running) -> None:
    tg, ds = harness.tg, harness.ds
    ds.script(
        model_answers(
            ASR,
            Fail(status=429, code="Throttling.RateQuota"),
            Reply(chunks=["hello there"], language="en"),
        )
    )
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    await harness.replies(chat, 1)
    shown = tg.sent(chat["id"])[0]
    data = keyboard(shown)[0][0]["callback_data"]

    # DashScope refuses: a short message, nothing stored (the next press asks again).
    tg.inject(callback_query=tg.callback_query(message=shown, user=ann, data=data))
    await harness.until(lambda: len(tg.sent(chat["id"])) == 2 and harness.idle())
    assert tg.sent_texts(chat["id"])[1] == texts.TRANSCRIPT_FAILED.format(
        reason=texts.MODEL_RATE_LIMITED
    )
    tg.inject(callback_query=tg.callback_query(message=shown, user=ann, data=data))
    await harness.until(lambda: len(tg.sent(chat["id"])) == 3)
    assert tg.sent_texts(chat["id"])[2] == "Transcript (English):\nhello there"
    assert len(asr_requests(harness)) == 2

    # A forged press in another chat names a turn that isn't there: refused, no audio.
    bob = harness.user(222, "Bob")
    other = harness.private(bob)
    tg.inject(message=tg.message(chat=other, user=bob, text="/help"))
    await harness.replies(other, 1)
    answered = len(tg.calls_of("answerCallbackQuery"))
    tg.inject(
        callback_query=tg.callback_query(message=tg.sent(other["id"])[0], user=bob, data=data)
    )
    await harness.until(lambda: len(tg.calls_of("answerCallbackQuery")) > answered)
    gone = tg.calls_of("answerCallbackQuery")[-1].params
    assert gone["text"] == SLASH.format(texts.TRANSCRIPT_TURN_GONE)
    assert gone["show_alert"] is True

    # After /forget the button says why it can't work any more, as the callback answer.
    tg.inject(message=tg.message(chat=chat, user=ann, text="/forget"))
    await harness.replies(chat, 4)
    ask = tg.sent(chat["id"])[-1]
    answered = len(tg.calls_of("answerCallbackQuery"))
    tg.inject(callback_query=tg.callback_query(message=ask, user=ann, data="forget:yes"))
    await harness.until(lambda: len(tg.calls_of("answerCallbackQuery")) > answered)
    assert tg.sent(chat["id"])[-1]["text"].startswith("Done.")
    answered += 1
    tg.inject(callback_query=tg.callback_query(message=shown, user=ann, data=data))
    await harness.until(lambda: len(tg.calls_of("answerCallbackQuery")) > answered)
    forgotten = tg.calls_of("answerCallbackQuery")[-1].params
    assert (forgotten["text"], forgotten["show_alert"]) == (gone["text"], True)
    assert len(asr_requests(harness)) == 2


async def test_always_and_off_in_a_forum_topic(harness: Harness, bot: Running) -> None:
    tg, ds = harness.tg, harness.ds
    ds.script(model_answers(ASR, Reply(chunks=["bonjour"], language="fr")))
    forum = harness.group(-100777, forum=True)
    admin = harness.user(500, "Admin")
    tg.set_member(forum["id"], admin["id"], "administrator")
    mention = f"@{tg.username}"

    def note() -> dict[str, Any]:
        return tg.voice_message(
            chat=forum, user=admin, data=voice(), thread_id=10, caption=f"{mention} hi"
        )

    tg.inject(
        message=tg.message(chat=forum, user=admin, thread_id=10, text="/settings transcript always")
    )
    await harness.replies(forum, 1)
    assert (
        "Transcripts (transcript): posted with every reply to voice"
        in tg.sent_texts(forum["id"])[0]
    )

    # always: no button; the transcript follows the reply, answering it, in its topic.
    tg.inject(message=note())
    await harness.until(lambda: len(tg.sent(forum["id"])) == 3 and harness.idle())
    reply, posted = tg.sent(forum["id"])[1:]
    assert reply["text"].startswith("Heard 1 audio clip(s)") and keyboard(reply) == []
    assert posted["text"] == "Transcript (French):\nbonjour"
    assert posted["reply_to_message"]["message_id"] == reply["message_id"]
    assert posted["message_thread_id"] == 10

    # off: neither.
    tg.inject(
        message=tg.message(chat=forum, user=admin, thread_id=10, text="/settings transcript off")
    )
    await harness.replies(forum, 4)
    tg.inject(message=note())
    await harness.replies(forum, 5)
    assert keyboard(tg.sent(forum["id"])[4]) == []
    assert len(asr_requests(harness)) == 1

    # The default again: the group reply (edited in place) gets the button.
    tg.inject(
        message=tg.message(
            chat=forum, user=admin, thread_id=10, text="/settings transcript default"
        )
    )
    await harness.replies(forum, 6)
    tg.inject(message=note())
    await harness.replies(forum, 7)
    [[button]] = keyboard(tg.sent(forum["id"])[6])
    assert button["text"] == texts.TRANSCRIPT_BUTTON
