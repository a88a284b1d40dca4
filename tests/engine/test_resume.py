"""A turn whose job runs again (its process died mid-turn; bot.queue): answered once.

The earlier run's rows are found by the message the turn answers; what the user already
saw is finalised, never doubled.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot import texts
from bot.engine import store
from bot.engine.domain import TurnStatus
from bot.errors import TurnAbandoned
from bot.storage.tables import AudioClip
from tests.engine.conftest import Audio, Harness, Sink, make_turn, voice


async def _crash(h: Harness, conversation_id: int, *, status: str, ids: list[str]) -> None:
    """Leave the last reply as a process killed mid-turn would."""
    stored = await h.turns(conversation_id)
    async with h.db.sessions.begin() as s:
        reply = await s.get(type(stored[-1]), stored[-1].id)
        assert reply is not None
        reply.status = status
        reply.reply_message_ids = ids
        if status == "streaming":
            reply.text = "half an ans"


async def test_a_rerun_of_an_answered_turn_shows_and_asks_nothing(h: Harness) -> None:
    h.fake.queue_reply(chunks=["the answer"])
    first, _ = await h.turn(text="q1", source_message_id="m1")
    sent = len(h.fake.requests)

    again, sink = await h.turn(text="q1", source_message_id="m1", attempt=1)

    assert again.status == "duplicate"
    assert sink.calls == []
    assert len(h.fake.requests) == sent
    assert len(await h.turns(first.conversation_id)) == 2  # type: ignore[arg-type]


async def test_a_reply_cut_mid_stream_is_answered_again_in_the_same_rows(h: Harness) -> None:
    audio = Audio(voice(2.0), key="clip-1")
    h.fake.queue_reply(chunks=["first try"])
    first, _ = await h.turn(audio=audio, source_message_id="m1")
    conv = first.conversation_id
    assert conv is not None
    await _crash(h, conv, status="streaming", ids=["old-1", "old-2"])
    fetched = audio.fetches

    h.fake.queue_reply(chunks=["second ", "try"])
    again, sink = await h.turn(audio=audio, source_message_id="m1", attempt=1)

    assert again.status == "complete"
    # The half-written messages are removed before the new answer shows, with a note.
    assert sink.removed == ["old-1", "old-2"]
    assert sink.calls.index("remove") < sink.calls.index("start")
    assert sink.final is not None and sink.final.text == "second try"
    assert texts.REPLY_RESTARTED in sink.final.notes
    # The stored recording is reused: no second download, no second set of clips.
    assert audio.fetches == fetched
    async with h.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(AudioClip)) == 1
    rows = await h.turns(conv)
    assert [(t.role, t.status, t.text) for t in rows] == [
        ("user", "complete", None),
        ("assistant", "complete", "second try"),
    ]
    assert (again.user_turn_id, again.assistant_turn_id) == (rows[0].id, rows[1].id)


async def test_a_reply_generated_whole_is_delivered_from_storage(h: Harness) -> None:
    h.fake.queue_reply(chunks=["kept answer"])
    first, _ = await h.turn(text="q1", source_message_id="m1")
    conv = first.conversation_id
    assert conv is not None
    await _crash(h, conv, status="delivering", ids=["old-1"])
    sent = len(h.fake.requests)

    again, sink = await h.turn(text="q1", source_message_id="m1", attempt=1)

    assert again.status == "complete"
    assert len(h.fake.requests) == sent  # not asked again
    assert sink.late == [(f"kept answer\n\n_{texts.REPLY_RESTARTED}_", "m1")]
    assert sink.stale == ["old-1"]
    assert [t.status for t in await h.turns(conv)] == ["complete", "complete"]


async def test_a_turn_given_up_apologises_once_and_is_stored_failed(h: Harness) -> None:
    h.fake.queue_reply(chunks=["first try"])
    first, _ = await h.turn(text="q1", source_message_id="m1")
    conv = first.conversation_id
    assert conv is not None
    await _crash(h, conv, status="streaming", ids=["old-1"])

    sink = Sink()
    outcome = await h.engine.abandon(make_turn(text="q1", source_message_id="m1"), sink)

    assert outcome.status == "failed"
    assert isinstance(sink.error, TurnAbandoned)
    assert sink.removed == ["old-1"]
    rows = await h.turns(conv)
    assert (rows[1].status, rows[1].error_code) == (TurnStatus.FAILED.value, "abandoned")
    # Giving up an answered turn changes nothing.
    quiet = Sink()
    again = await h.engine.abandon(make_turn(text="q1", source_message_id="m1"), quiet)
    assert again.status == "duplicate" and quiet.calls == []


async def test_a_first_run_never_looks_for_an_earlier_one(h: Harness) -> None:
    # Two messages with one id (the CLI sends none; a platform never repeats one) still
    # get two answers: only a resumed job treats a stored turn as its own.
    h.fake.queue_reply(chunks=["one"])
    h.fake.queue_reply(chunks=["two"])
    await h.turn(text="q", source_message_id="m1")
    second, sink = await h.turn(text="q", source_message_id="m1")
    assert second.status == "complete" and sink.final is not None
    assert sink.final.text == "two"


async def test_young_half_done_replies_are_left_to_their_jobs(h: Harness) -> None:
    h.fake.queue_reply(chunks=["an answer"])
    first, _ = await h.turn(text="q1", source_message_id="m1")
    assert first.conversation_id is not None
    await _crash(h, first.conversation_id, status="streaming", ids=[])
    # Start-up of another replica: the reply may still be running elsewhere.
    assert await h.engine.recover() == 0
    rows = await h.turns(first.conversation_id)
    assert rows[1].status == "streaming"


async def test_a_database_failure_mid_turn_fails_the_run_and_the_rerun_answers(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.finish_assistant_turn

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("UPDATE turns", {}, ConnectionError("server closed"))

    monkeypatch.setattr(store, "finish_assistant_turn", broken)
    h.fake.queue_reply(chunks=["first try"])
    # The run ends with the error (its job runs again), not with "something went wrong".
    cut = Sink()
    with pytest.raises(OperationalError):
        await h.turn(sink=cut, text="q1", source_message_id="m1")
    assert cut.calls[-1] == "interrupt" and cut.error is None

    monkeypatch.setattr(store, "finish_assistant_turn", real)
    h.fake.queue_reply(chunks=["second try"])
    again, sink = await h.turn(text="q1", source_message_id="m1", attempt=1)
    assert again.status == "complete"
    assert sink.error is None
    assert sink.final is not None and sink.final.text == "second try"
    assert again.conversation_id is not None
    rows = await h.turns(again.conversation_id)
    assert [(t.role, t.status) for t in rows] == [("user", "complete"), ("assistant", "complete")]
