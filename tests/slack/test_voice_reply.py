"""Spoken replies on Slack, through real Bolt and slack-sdk against the fake Web API: the
streamed text, then the voice note uploaded into the same thread with ``files_upload_v2``
(getUploadURLExternal → upload → completeUploadExternal with channel_id + thread_ts).

The model's speech comes from :mod:`tests.voice.speaking` (until the fake DashScope
speaks Omni).
"""

from __future__ import annotations

import pytest

from bot import texts
from bot.engine.ports import ChatRef
from tests.engine.test_settings_usage import Admins
from tests.slack.conftest import DM, SlackBot, clip
from tests.voice.speaking import decoded_seconds, speak, speaking_model

DM_REF = ChatRef(platform="slack", chat_id=DM, kind="im", private=True)


@pytest.fixture(autouse=True)
def speaking(monkeypatch: pytest.MonkeyPatch) -> None:
    speaking_model(monkeypatch)


async def test_slack_defaults_to_text_only(http_bot: SlackBot) -> None:
    speak(http_bot.core.engine, seconds=1.0)
    root = http_bot.fake.seed_message(DM, text="thread")
    await http_bot.send_event(
        http_bot.file_message(http_bot.fake.add_file(clip()), thread_ts=root.ts)
    )
    await http_bot.replies(DM)
    assert http_bot.fake.uploads == [] and not http_bot.fake.calls_to("files.getUploadURLExternal")


async def test_the_voice_note_is_uploaded_into_the_thread(http_bot: SlackBot) -> None:
    fake = http_bot.fake
    speak(http_bot.core.engine, seconds=2.2)
    await http_bot.core.engine.update_settings(DM_REF, "U0USER", Admins(), voice_reply="auto")
    http_bot.dashscope.queue_reply(chunks=["Here ", "you go."])
    root = fake.seed_message(DM, text="thread")
    await http_bot.send_event(http_bot.file_message(fake.add_file(clip()), thread_ts=root.ts))
    [outcome] = await http_bot.turns(1)
    assert outcome.status == "complete" and outcome.voice_note is not None

    [upload] = fake.uploads
    assert upload["channel"] == DM and upload["thread_ts"] == root.ts
    assert upload["name"] == "reply.ogg" and upload["title"] == texts.VOICE_NOTE_TITLE
    assert outcome.voice_note.message_id == upload["id"]
    assert decoded_seconds(fake.uploaded(upload["id"])) == pytest.approx(2.2, abs=0.05)
    # The three real steps, in order, once each; then the file is shared in the thread.
    steps = [
        c.method
        for c in fake.calls
        if c.method in ("files.getUploadURLExternal", "files.completeUploadExternal")
    ]
    assert steps == ["files.getUploadURLExternal", "files.completeUploadExternal"]
    shared = [m for m in fake.messages if m.files and m.bot_id == fake.bot_id]
    assert len(shared) == 1 and shared[0].thread_ts == root.ts
    # The text reply was shown once, in the thread, before the note.
    texts_shown = [m for m in fake.bot_messages(DM) if not m.files]
    assert [m.text.strip() for m in texts_shown] == ["Here you go."]
    assert fake.messages.index(shared[0]) > fake.messages.index(texts_shown[0])


async def test_an_upload_slack_refuses_keeps_the_text_and_says_so(http_bot: SlackBot) -> None:
    fake = http_bot.fake
    speak(http_bot.core.engine, seconds=1.0)
    await http_bot.core.engine.update_settings(DM_REF, "U0USER", Admins(), voice_reply="always")
    fake.script("files.completeUploadExternal", error="not_in_channel")
    http_bot.dashscope.queue_reply(chunks=["Plain answer."])
    root = fake.seed_message(DM, text="thread")
    await http_bot.send_event(http_bot.text_message("hi", thread_ts=root.ts))
    [outcome] = await http_bot.turns(1)
    assert outcome.status == "complete" and outcome.voice_note is None
    shown = [m.text.strip() for m in fake.bot_messages(DM)]
    assert shown == ["Plain answer.", texts.VOICE_REPLY_FAILED]
    assert fake.uploads == []
