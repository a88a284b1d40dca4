"""Private chats: voice notes stream as drafts, then one final message."""

from __future__ import annotations

from tests.fakes.dashscope import Reply
from tests.telegram.conftest import Harness, Running, voice


async def test_voice_note_streams_drafts_then_final_message(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    harness.ds.queue(Reply(chunks=["Hello", " there,", " **friend**."], chunk_delay=0.15))
    ann = harness.user()
    chat = harness.private(ann)
    msg = tg.voice_message(chat=chat, user=ann, data=voice())
    tg.inject(message=msg)

    await harness.until(lambda: tg.sent(chat["id"]))
    final = tg.sent(chat["id"])[-1]
    assert final["text"] == "Hello there, friend."
    assert final["entities"] == [{"type": "bold", "offset": 13, "length": 6}]
    assert final["reply_to_message"]["message_id"] == msg["message_id"]
    drafts = tg.calls_of("sendMessageDraft")
    assert drafts, "expected drafts while streaming"
    assert {d.params["draft_id"] for d in drafts} == {drafts[0].params["draft_id"]}
    assert all("parse_mode" not in c.params for c in tg.calls_of("sendMessage"))
    assert tg.calls_of("sendChatAction")[0].params["action"] == "typing"
    # the audio went to the model
    assert harness.ds.requests[-1].audio_durations[0] is not None
    assert tg.downloads
