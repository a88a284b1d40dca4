"""Refusals and engine errors become short, specific replies to the user's message."""

from __future__ import annotations

import pytest

from bot import texts
from tests.fakes.dashscope import Reply, StreamError
from tests.fakes.telegram import DOWNLOAD_LIMIT
from tests.telegram.conftest import Harness, Running, voice


async def test_file_over_20_mb_is_refused_before_download(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    msg = tg.voice_message(chat=chat, user=ann, data=voice(), size=DOWNLOAD_LIMIT + 1)
    tg.inject(message=msg)
    await harness.replies(chat, 1)
    reply = tg.sent(chat["id"])[-1]
    assert reply["text"] == texts.AUDIO_TOO_LARGE.format(limit_mb=20)
    assert reply["reply_to_message"]["message_id"] == msg["message_id"]
    assert not tg.calls_of("getFile", ok=None)
    assert not tg.downloads
    assert not harness.ds.requests


async def test_telegram_limit_applies_even_with_a_higher_audio_limit(harness: Harness) -> None:
    await harness.start(AUDIO_MAX_BYTES=100 * 1024 * 1024)
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(
        message=tg.voice_message(
            chat=chat,
            user=ann,
            data=voice(),
            size=DOWNLOAD_LIMIT + 1,
            kind="document",
            mime_type="audio/mpeg",
            file_name="long.mp3",
        )
    )
    await harness.replies(chat, 1)
    assert tg.sent_texts(chat["id"])[-1] == texts.AUDIO_TOO_LARGE.format(limit_mb=20)
    assert not tg.calls_of("getFile", ok=None)
    assert not tg.downloads


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ({"status": 429, "code": "Throttling.RateQuota"}, texts.MODEL_RATE_LIMITED),
        ({"status": 400, "code": "Arrearage"}, texts.MODEL_QUOTA),
        (
            {"status": 404, "code": "ModelNotFound"},
            "DashScope says qwen-audio-turbo-latest doesn't exist or isn't available to this"
            " bot's key. An admin can pick another with /model.",
        ),
    ],
)
async def test_model_errors_become_short_replies(
    harness: Harness, bot: Running, script: dict[str, object], expected: str
) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    harness.ds.queue_error(**script)  # type: ignore[arg-type]
    msg = tg.voice_message(chat=chat, user=ann, data=voice())
    tg.inject(message=msg)
    await harness.replies(chat, 1)
    reply = tg.sent(chat["id"])[-1]
    assert reply["text"] == expected
    assert reply["reply_to_message"]["message_id"] == msg["message_id"]


async def test_content_filter_mid_stream_keeps_the_partial_text(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    group = harness.group()
    harness.ds.queue(
        Reply(
            chunks=["Part one ", "part two "],
            chunk_delay=0.1,
            error=StreamError("DataInspectionFailed"),
        )
    )
    msg = tg.message(chat=group, user=harness.user(), text=f"@{tg.username} say")
    tg.inject(message=msg)
    await harness.until(lambda: texts.CONTENT_FILTERED in tg.sent_texts(group["id"]))
    sent = tg.sent(group["id"])
    assert sent[0]["text"].startswith("Part one")
    assert sent[-1]["text"] == texts.CONTENT_FILTERED
    assert sent[-1]["reply_to_message"]["message_id"] == msg["message_id"]


async def test_unreadable_audio(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=b"OggS" + b"\x00" * 300))
    await harness.replies(chat, 1)
    assert tg.sent_texts(chat["id"])[-1] in (
        texts.AUDIO_UNREADABLE,
        texts.NOT_AUDIO,
        texts.AUDIO_EMPTY,
    )
    assert not harness.ds.requests


async def test_download_failure_is_explained(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.fail_next(
        "getFile",
        code=400,
        description="Bad Request: wrong file_id or the file is temporarily unavailable",
    )
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    await harness.replies(chat, 1)
    assert tg.sent_texts(chat["id"])[-1] == texts.TELEGRAM_DOWNLOAD_FAILED


async def test_users_not_allowed_get_a_polite_refusal(harness: Harness) -> None:
    await harness.start(ALLOWED_USERS="telegram:1")
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    await harness.replies(chat, 1)
    assert tg.sent_texts(chat["id"]) == [texts.ACCESS_DENIED]
    assert not tg.downloads
    tg.inject(message=tg.message(chat=chat, user=ann, text="/settings"))
    await harness.replies(chat, 2)
    assert tg.sent_texts(chat["id"])[-1] == texts.ACCESS_DENIED
