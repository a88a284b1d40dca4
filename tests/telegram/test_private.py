"""Private chats: every input kind, drafts then a final message, instructions, history."""

from __future__ import annotations

import pytest

from bot import texts
from tests.fakes.dashscope import Reply
from tests.telegram.conftest import Harness, Running, voice


async def test_voice_note_streams_drafts_then_final_message(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    harness.ds.queue(Reply(chunks=["Hello", " there,", " **friend**."], chunk_delay=0.15))
    ann = harness.user()
    chat = harness.private(ann)
    msg = tg.voice_message(chat=chat, user=ann, data=voice())
    tg.inject(message=msg)

    await harness.replies(chat, 1)
    final = tg.sent(chat["id"])[-1]
    assert final["text"] == "Hello there, friend."
    assert final["entities"] == [{"type": "bold", "offset": 13, "length": 6}]
    assert final["reply_to_message"]["message_id"] == msg["message_id"]
    drafts = tg.calls_of("sendMessageDraft")
    assert drafts, "expected drafts while streaming"
    assert {d.params["draft_id"] for d in drafts} == {drafts[0].params["draft_id"]}
    assert all(d.params.get("can_stop") is True for d in drafts)
    # The final message comes after the last draft, and nothing uses parse_mode.
    assert tg.calls.index(tg.calls_of("sendMessage")[-1]) > tg.calls.index(drafts[-1])
    assert all(
        "parse_mode" not in c.raw
        for c in tg.calls
        if c.method in ("sendMessage", "sendMessageDraft", "editMessageText")
    )
    # "typing…" before the first text.
    first_action = tg.calls.index(tg.calls_of("sendChatAction")[0])
    assert tg.calls_of("sendChatAction")[0].params["action"] == "typing"
    assert first_action < tg.calls.index(drafts[0])
    # The recording went to the model, downloaded once via getFile + file URL.
    assert harness.ds.requests[-1].audio_durations[0] == pytest.approx(1.5, abs=0.1)
    assert len(tg.downloads) == 1
    assert len(tg.sent(chat["id"])) == 1


@pytest.mark.parametrize(
    ("kind", "mime", "file_name"),
    [
        ("audio", "audio/mpeg", "song.ogg"),
        ("video_note", None, None),
        ("document", "audio/ogg", "memo.ogg"),
    ],
)
async def test_other_audio_inputs_are_heard(
    harness: Harness, bot: Running, kind: str, mime: str | None, file_name: str | None
) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    data = voice() if kind != "video_note" else _video_note()
    tg.inject(
        message=tg.voice_message(
            chat=chat,
            user=ann,
            data=data,
            kind=kind,
            mime_type=mime,
            file_name=file_name,
        )
    )
    await harness.replies(chat, 1)
    assert tg.sent_texts(chat["id"])[-1].startswith("Heard 1 audio clip(s)")


async def test_document_that_is_not_audio_gets_a_clear_answer(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    stored = tg.add_file(b"%PDF-1.4 not audio")
    tg.inject(
        message=tg.message(
            chat=chat,
            user=ann,
            document={
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "mime_type": "application/pdf",
                "file_name": "x.pdf",
                "file_size": stored.size,
            },
        )
    )
    await harness.replies(chat, 1)
    assert tg.sent_texts(chat["id"]) == [texts.NOT_AUDIO]
    assert not harness.ds.requests


async def test_caption_is_the_instruction(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(
        message=tg.voice_message(
            chat=chat, user=ann, data=voice(), caption="What language is this?"
        )
    )
    await harness.replies(chat, 1)
    assert "Prompt: “What language is this?”" in tg.sent_texts(chat["id"])[-1]
    assert harness.ds.requests[-1].audio


async def test_text_reply_to_a_voice_note_analyses_that_audio(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    # A voice note forwarded from someone else, answered first as voice chat.
    note = tg.voice_message(chat=chat, user=harness.user(222, "Bob"), data=voice(2.0))
    tg.inject(message=note)
    await harness.replies(chat, 1)
    tg.inject(message=tg.message(chat=chat, user=ann, text="Summarise it", reply_to=note))
    await harness.replies(chat, 2)
    request = harness.ds.requests[-1]
    assert request.texts[-1] == ("user", "Summarise it")
    assert request.audio and request.audio[-1].duration == pytest.approx(2.0, abs=0.1)
    # The same recording is neither downloaded nor converted twice.
    assert len(tg.downloads) == 1


async def test_text_alone_is_a_follow_up_turn(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    await harness.replies(chat, 1)
    tg.inject(message=tg.message(chat=chat, user=ann, text="And then?"))
    await harness.replies(chat, 2)
    assert "History: 1 earlier repl(ies)" in tg.sent_texts(chat["id"])[-1]
    assert "Prompt: “And then?”" in tg.sent_texts(chat["id"])[-1]


def _video_note() -> bytes:
    from tests.audio import synth

    fmt = synth.FORMATS["note.mp4"]
    return synth.encode(synth.speech_like(1.0, rate=fmt.rate), fmt)
