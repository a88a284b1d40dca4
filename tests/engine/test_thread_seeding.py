"""A thread's conversation opens with the message it replies to (bot.engine.seeding):
once, whatever crashes or retries, and within the model's input budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from bot import texts
from bot.catalog import CATALOG
from bot.engine import store
from bot.engine.domain import THREAD_PARENT_KIND
from bot.engine.history import ClipMeta, PastPair, plan_request
from bot.engine.ports import ParentMessage
from bot.engine.requests import build_messages
from bot.llm.types import AudioPart, TextPart
from tests.engine.conftest import Audio, Harness, long_voice, voice


@dataclass
class Parent:
    """A :class:`~bot.engine.ports.ThreadParent` the test scripts, counting reads."""

    message_id: str
    message: ParentMessage | None
    error: BaseException | None = None
    fetches: int = 0

    async def fetch(self) -> ParentMessage | None:
        self.fetches += 1
        if self.error is not None:
            raise self.error
        return self.message


def in_thread(parent: Parent, **kw: Any) -> dict[str, Any]:
    return {"thread_key": parent.message_id, "parent": parent, **kw}


async def test_a_run_that_dies_after_opening_the_thread_does_not_open_it_again(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = Audio(voice(2.0), key="slack:F1")
    parent = Parent("p1", ParentMessage(text="the plan", recordings=(audio,)))
    real = store.store_turn_pair

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("INSERT INTO turns", {}, ConnectionError("server closed"))

    monkeypatch.setattr(store, "store_turn_pair", broken)
    with pytest.raises(OperationalError):  # the job runs again (bot.queue)
        await h.turn(text="q", source_message_id="m2", **in_thread(parent))
    monkeypatch.setattr(store, "store_turn_pair", real)

    again, sink = await h.turn(text="q", source_message_id="m2", attempt=1, **in_thread(parent))

    assert again.status == "complete" and sink.final is not None
    assert (parent.fetches, audio.fetches) == (1, 1)  # read and converted once
    assert again.conversation_id is not None
    rows = await h.turns(again.conversation_id)
    assert [(t.kind, t.role) for t in rows] == [
        (THREAD_PARENT_KIND, "user"),
        ("followup", "user"),
        ("followup", "assistant"),
    ]
    [req] = h.fake.requests  # the first run never reached the model
    assert [a.message_index for a in req.audio] == [0]
    assert [t for _, t in req.texts] == [
        texts.THREAD_PARENT_AUDIO_TEXT.format(text="the plan"),
        "q",
    ]


async def test_a_reply_cut_mid_stream_is_answered_again_from_the_same_opening(
    h: Harness,
) -> None:
    audio = Audio(voice(2.0), key="slack:F1")
    parent = Parent("p1", ParentMessage(text=None, recordings=(audio,)))
    first, _ = await h.turn(text="q", source_message_id="m2", **in_thread(parent))
    assert first.conversation_id is not None
    rows = await h.turns(first.conversation_id)
    async with h.db.sessions.begin() as s:  # as a process killed mid-stream leaves it
        reply = await s.get(type(rows[-1]), rows[-1].id)
        assert reply is not None
        reply.status, reply.text = "streaming", "half an ans"

    again, sink = await h.turn(text="q", source_message_id="m2", attempt=1, **in_thread(parent))

    assert again.status == "complete" and sink.final is not None
    assert texts.REPLY_RESTARTED in sink.final.notes
    assert (parent.fetches, audio.fetches) == (1, 1)
    rows = await h.turns(first.conversation_id)
    assert [t.kind for t in rows].count(THREAD_PARENT_KIND) == 1
    for req in h.fake.requests:  # both runs sent the parent's clip with the question
        assert [a.message_index for a in req.audio] == [0]


async def test_the_parents_audio_gets_only_the_room_the_turn_leaves(h: Harness) -> None:
    # A long question takes most of the 6,144-token budget; the parent's 40 s of audio
    # are converted only as far as the rest allows, and the reply says so.
    question = "Please compare this with what we said last week. " * 100
    audio = Audio(long_voice(40.0), key="slack:F1")
    parent = Parent("p1", ParentMessage(text="standup", recordings=(audio,)))
    h.fake.queue_reply(chunks=["Both were about the release."])

    outcome, sink = await h.turn(text=question, source_message_id="m2", **in_thread(parent))

    assert outcome.status == "complete" and sink.final is not None  # the fake's limit held
    [req] = h.fake.requests
    heard = sum(a.duration or 0 for a in req.audio)
    assert 3.0 < heard < 34.0
    [note] = [n for n in sink.final.notes if "this thread replies to" in n]
    assert note.startswith("Of the message this thread replies to, I listened to the first")
    assert note.endswith("of 0:40.")


async def test_a_thread_with_history_is_never_opened_later(h: Harness) -> None:
    parent = Parent("p1", ParentMessage(text="the plan"))
    await h.turn(text="first", source_message_id="m2", thread_key="p1")
    outcome, _ = await h.turn(text="second", source_message_id="m3", **in_thread(parent))
    assert outcome.status == "complete" and parent.fetches == 0
    assert outcome.conversation_id is not None
    assert THREAD_PARENT_KIND not in [t.kind for t in await h.turns(outcome.conversation_id)]


async def test_a_parent_that_fails_to_read_leaves_the_thread_answered_on_its_own(
    h: Harness,
) -> None:
    parent = Parent("p1", None, error=ConnectionError("platform down"))
    outcome, sink = await h.turn(text="q", source_message_id="m2", **in_thread(parent))
    assert outcome.status == "complete" and sink.final is not None
    assert not any("thread" in n for n in sink.final.notes)
    [req] = h.fake.requests
    assert req.roles == ["user"] and [t for _, t in req.texts] == ["q"]


def test_an_unanswered_parent_opens_the_next_user_message_and_goes_first() -> None:
    spec = CATALOG["qwen-audio-turbo-latest"]
    opening = PastPair(
        user_turn_id=1,
        user_text="the plan",
        clips=(ClipMeta(clip_id=10, duration=20.0),),
        assistant_text=None,
    )
    answered = PastPair(user_turn_id=2, user_text="q1", clips=(), assistant_text="a1")
    plan = plan_request(
        spec,
        system_prompt=None,
        current_text="q2",
        current_clips=[],
        history=[opening, answered],
    )
    audio = AudioPart(b"mp3", "mp3")
    messages = build_messages(plan, spec=spec, current_audio=[], history_audio={10: audio})
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    assert messages[0].parts == (
        audio,
        TextPart(texts.THREAD_PARENT_AUDIO_TEXT.format(text="the plan")),
        TextPart("q1"),
    )

    # Short of room, the opening (the oldest) is left out first, the later pair kept.
    tight = plan_request(
        spec,
        system_prompt=None,
        current_text="x" * ((plan.budget or 0) - 100),
        current_clips=[],
        history=[opening, answered],
    )
    assert tight.history == (answered,)
    alone = build_messages(tight, spec=spec, current_audio=[], history_audio={})
    assert [m.role for m in alone] == ["user", "assistant", "user"]
