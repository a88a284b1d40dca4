"""Streaming into Telegram: long replies, entities and their fallback, 429s, stop."""

from __future__ import annotations

import threading

from bot import texts
from tests.fakes.dashscope import Reply
from tests.fakes.telegram import NOT_MODIFIED, utf16_len
from tests.telegram.conftest import Harness, Running, voice


def _long_reply(paragraphs: int = 14) -> list[str]:
    # ~6,000 characters in paragraphs, with some Markdown and non-BMP characters.
    return [
        f"**Part {i}** 🎧 " + "lorem ipsum dolor sit amet " * 16 + "\n\n" for i in range(paragraphs)
    ]


async def test_long_group_reply_continues_in_new_messages(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    group = harness.group()
    chunks = _long_reply()
    harness.ds.queue(Reply(chunks=chunks, chunk_delay=0.02))
    tg.inject(message=tg.message(chat=group, user=harness.user(), text=f"@{tg.username} talk"))
    await harness.until(
        lambda: (
            harness.ds.requests
            and len(tg.sent(group["id"])) >= 2
            and tg.sent(group["id"])[-1]["text"].rstrip().endswith("amet")
        )
    )
    await _settled(harness)
    sent = tg.sent(group["id"])
    assert len(sent) == 2
    assert all(1 <= utf16_len(m["text"]) <= 4096 for m in sent)
    joined = "".join(m["text"] for m in sent)
    assert joined.count("Part ") == len(chunks)
    assert "**" not in joined
    assert all(any(e["type"] == "bold" for e in m["entities"]) for m in sent)
    assert tg.calls_of("editMessageText"), "the first message is edited while streaming"


async def test_long_private_reply_is_split_into_final_messages(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    harness.ds.queue(Reply(chunks=_long_reply(), chunk_delay=0.01))
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    await harness.until(
        lambda: tg.sent(chat["id"]) and "Part 13" in tg.sent(chat["id"])[-1]["text"]
    )
    sent = tg.sent(chat["id"])
    assert len(sent) == 2
    assert all(utf16_len(m["text"]) <= 4096 for m in sent)
    assert all(utf16_len(c.params.get("text", "")) <= 4096 for c in tg.calls_of("sendMessageDraft"))


async def test_a_server_without_drafts_still_gets_the_final_message(
    harness: Harness, bot: Running
) -> None:
    # E.g. an older local Bot API server: sendMessageDraft is "Not Found".
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.fail_next("sendMessageDraft", code=404, description="Not Found", times=100)
    harness.ds.queue(Reply(chunks=["One, ", "two, ", "three."], chunk_delay=0.05))
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    await harness.until(lambda: tg.sent_texts(chat["id"]) == ["One, two, three."])
    await _settled(harness)
    # Tried once, then this reply stopped previewing instead of failing every update.
    assert len(tg.calls_of("sendMessageDraft", ok=None)) == 1
    assert tg.sent_texts(chat["id"]) == ["One, two, three."]


async def test_rejected_entities_fall_back_to_plain_text(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    group = harness.group()
    harness.ds.queue(Reply(chunks=["Some ", "**bold** ", "words."], chunk_delay=0.05))
    tg.fail_next("sendMessage", code=400, times=1, when=lambda p: bool(p.get("entities")))
    tg.fail_next("editMessageText", code=400, times=1, when=lambda p: bool(p.get("entities")))
    tg.inject(message=tg.message(chat=group, user=harness.user(), text=f"@{tg.username} hi"))
    await harness.until(
        lambda: tg.sent(group["id"]) and tg.sent(group["id"])[-1]["text"] == "Some bold words."
    )
    await _settled(harness)
    final = tg.sent(group["id"])[-1]
    assert "entities" not in final
    refused = [c for c in tg.calls if c.error and "can't parse entities" in c.error]
    assert refused


async def test_429_slows_edits_and_the_reply_still_completes(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    group = harness.group()
    words = [f"word{i} " for i in range(30)]
    harness.ds.queue(Reply(chunks=words, chunk_delay=0.03))
    tg.fail_next("editMessageText", code=429, retry_after=1, times=2)
    tg.inject(message=tg.message(chat=group, user=harness.user(), text=f"@{tg.username} go"))
    await harness.until(
        lambda: tg.sent(group["id"]) and tg.sent(group["id"])[-1]["text"] == "".join(words).strip()
    )
    limited = [c for c in tg.calls_of("editMessageText", ok=False) if "retry after" in c.error]
    assert len(limited) == 2
    # After a 429 nothing is sent to the chat before retry_after has passed (a lower
    # bound, so a slow machine can't make it flaky).
    after = [
        c
        for c in tg.calls
        if c.method in ("editMessageText", "sendMessage") and c.at > limited[0].at
    ]
    assert all(c.at - limited[0].at >= 0.95 for c in after)
    errors = harness.bots[0].core.metrics.registry.get_sample_value(
        "voicebot_platform_errors_total", {"platform": "telegram", "error": "retry_after"}
    )
    assert errors is not None and errors >= 2


async def _twenty_words_under_flood_control(harness: Harness, *, burst: int) -> int:
    """Stream 20 words into a group whose edits the fake floods at 0.25 s (a token bucket of
    ``burst``), until the whole reply shows; the group's id."""
    await harness.start(TELEGRAM_EDIT_INTERVAL=0.3)
    tg = harness.tg
    tg.flood_control(0.25, burst=burst)
    group = harness.group()
    words = [f"w{i} " for i in range(20)]
    harness.ds.queue(Reply(chunks=words, chunk_delay=0.05))
    tg.inject(message=tg.message(chat=group, user=harness.user(), text=f"@{tg.username} go"))
    await harness.until(
        lambda: tg.sent(group["id"]) and tg.sent(group["id"])[-1]["text"] == "".join(words).strip()
    )
    return int(group["id"])


async def test_flood_control_paces_edits_per_chat(harness: Harness) -> None:
    # Telegram tolerates a short burst above its pace; the final text may use it (once).
    await _twenty_words_under_flood_control(harness, burst=2)
    assert not [c for c in harness.tg.calls if c.error and "retry after" in c.error]


async def test_the_final_text_does_not_wait_for_the_last_previews_slot(harness: Harness) -> None:
    # A pace of one edit a minute: the preview takes the slot, and the final text still
    # comes at once (it skips the queue, once per interval) instead of a minute later.
    await harness.start(TELEGRAM_EDIT_INTERVAL=60.0)
    tg = harness.tg
    group = harness.group()
    gate = threading.Event()
    harness.ds.queue(Reply(chunks=["first ", "second"], hold=gate))
    tg.inject(message=tg.message(chat=group, user=harness.user(), text=f"@{tg.username} go"))
    await harness.until(lambda: [m for m in tg.sent(group["id"]) if m["text"] == "first"])
    gate.set()
    await harness.until(lambda: tg.sent(group["id"])[-1]["text"] == "first second")
    assert len(tg.sent(group["id"])) == 1  # the preview message, edited into the final text


async def test_a_strict_flood_limit_still_gets_the_whole_final_text_once(harness: Harness) -> None:
    # The strictest reading of Telegram's limit (no burst at all): the early final text may
    # meet a 429; it is retried after retry_after and shown exactly once, complete.
    group = await _twenty_words_under_flood_control(harness, burst=1)
    await _settled(harness)
    assert len(harness.tg.sent(group)) == 1
    limited = [c for c in harness.tg.calls if c.error and "retry after" in c.error]
    assert len(limited) <= 1
    # If the early final met the 429, nothing went to the chat before retry_after (1 s).
    later = [
        c
        for c in harness.tg.calls
        if limited and c.at > limited[0].at and c.method in ("sendMessage", "editMessageText")
    ]
    assert all(c.at - limited[0].at >= 0.95 for c in later)


async def test_message_not_modified_is_ignored(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    group = harness.group()
    harness.ds.queue(Reply(chunks=["one ", "two ", "three"], chunk_delay=0.1))
    tg.fail_next("editMessageText", code=400, description=f"Bad Request: {NOT_MODIFIED[13:]}")
    tg.inject(message=tg.message(chat=group, user=harness.user(), text=f"@{tg.username} go"))
    await harness.until(
        lambda: tg.sent(group["id"]) and tg.sent(group["id"])[-1]["text"] == "one two three"
    )
    await _settled(harness)
    assert tg.calls_of("editMessageText", ok=False)
    assert len(tg.sent(group["id"])) == 1  # no error notice


async def test_stop_button_cancels_generation(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    words = [f"word{i} " for i in range(60)]
    harness.ds.queue(Reply(chunks=words, chunk_delay=0.1))
    tg.inject(message=tg.voice_message(chat=chat, user=ann, data=voice()))
    draft = await harness.until(lambda: tg.calls_of("sendMessageDraft"))
    tg.inject(
        stopped_message_generation={
            "chat": chat,
            "draft_id": int(draft[0].params["draft_id"]),
        }
    )
    await harness.until(lambda: tg.sent(chat["id"]))
    final = tg.sent(chat["id"])[-1]["text"]
    assert final.endswith(texts.REPLY_STOPPED)
    assert "word59" not in final
    assert len(harness.ds.requests) == 1


async def test_typing_until_first_text(harness: Harness, bot: Running) -> None:
    tg = harness.tg
    group = harness.group()
    harness.ds.queue(Reply(chunks=["late answer"], first_token_delay=0.5))
    tg.inject(message=tg.message(chat=group, user=harness.user(), text=f"@{tg.username} q"))
    await harness.until(lambda: tg.sent(group["id"]))
    first_send = tg.calls.index(tg.calls_of("sendMessage")[0])
    actions = [tg.calls.index(c) for c in tg.calls_of("sendChatAction")]
    assert actions and all(i < first_send for i in actions)


async def _settled(harness: Harness) -> None:
    """Wait until no turn is in flight (the reply is final, notices included)."""
    await harness.until(harness.idle)
