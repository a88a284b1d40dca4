"""Spoken replies on Slack, through real Bolt and slack-sdk against the fake Web API: the
streamed text, then the voice note uploaded into the same thread with ``files_upload_v2``
(getUploadURLExternal → upload → completeUploadExternal with channel_id + thread_ts).

The speech is Qwen-Omni's own: the bot's default model is an Omni model and the fake
DashScope streams its PCM (``RecordedRequest.speech``) beside the text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot import texts
from bot.engine.ports import ChatRef
from bot.storage.database import Database
from tests.engine.test_settings_usage import Admins
from tests.fakes.audio import decoded_seconds, pcm_seconds
from tests.fakes.dashscope import FakeDashScope
from tests.fakes.slack import FakeSlack
from tests.slack.conftest import DM, USER, SlackBot, clip, start_bot, stop_bot

DM_REF = ChatRef(platform="slack", chat_id=DM, kind="im", private=True)
OMNI = "qwen3-omni-flash"


@pytest.fixture
async def omni_bot(
    fake_slack: FakeSlack, dashscope_fake: FakeDashScope, db: Database
) -> AsyncIterator[SlackBot]:
    """HTTP mode, answering with a Qwen-Omni model by default."""
    fake_slack.add_user(USER)
    running = await start_bot(
        mode="http", fake=fake_slack, dashscope=dashscope_fake, database=db, DEFAULT_MODEL=OMNI
    )
    try:
        yield running
    finally:
        await stop_bot(running)


async def test_slack_defaults_to_text_only(omni_bot: SlackBot) -> None:
    root = omni_bot.fake.seed_message(DM, text="thread")
    await omni_bot.send_event(
        omni_bot.file_message(omni_bot.fake.add_file(clip()), thread_ts=root.ts)
    )
    await omni_bot.replies(DM)
    assert omni_bot.dashscope.last_request.model == OMNI
    assert not omni_bot.dashscope.last_request.wants_speech
    assert omni_bot.fake.uploads == []
    assert not omni_bot.fake.calls_to("files.getUploadURLExternal")


async def test_the_voice_note_is_uploaded_into_the_thread(omni_bot: SlackBot) -> None:
    fake = omni_bot.fake
    await omni_bot.core.engine.update_settings(DM_REF, "U0USER", Admins(), voice_reply="auto")
    omni_bot.dashscope.queue_reply(chunks=["Here ", "you go."], speech_seconds=2.2)
    root = fake.seed_message(DM, text="thread")
    await omni_bot.send_event(omni_bot.file_message(fake.add_file(clip()), thread_ts=root.ts))
    [outcome] = await omni_bot.turns(1)
    assert outcome.status == "complete" and outcome.voice_note is not None
    sent = pcm_seconds(omni_bot.dashscope.last_request.speech)
    assert sent == pytest.approx(2.2, abs=0.001)

    [upload] = fake.uploads
    assert upload["channel"] == DM and upload["thread_ts"] == root.ts
    assert upload["name"] == "reply.ogg" and upload["title"] == texts.VOICE_NOTE_TITLE
    assert outcome.voice_note.message_id == upload["id"]
    assert decoded_seconds(fake.uploaded(upload["id"])) == pytest.approx(sent, abs=0.05)
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


async def test_an_upload_slack_refuses_keeps_the_text_and_says_so(omni_bot: SlackBot) -> None:
    fake = omni_bot.fake
    await omni_bot.core.engine.update_settings(DM_REF, "U0USER", Admins(), voice_reply="always")
    fake.script("files.completeUploadExternal", error="not_in_channel")
    omni_bot.dashscope.queue_reply(chunks=["Plain answer."], speech_seconds=1.0)
    root = fake.seed_message(DM, text="thread")
    await omni_bot.send_event(omni_bot.text_message("hi", thread_ts=root.ts))
    [outcome] = await omni_bot.turns(1)
    assert omni_bot.dashscope.last_request.speech != b""
    assert outcome.status == "complete" and outcome.voice_note is None
    shown = [m.text.strip() for m in fake.bot_messages(DM)]
    assert shown == ["Plain answer.", texts.VOICE_REPLY_FAILED]
    assert fake.uploads == []
