"""A failure at each step leaves the stored conversation consistent and tells the user."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import func, select

from bot import texts
from bot.errors import AudioTooLarge, ModelConnectionLost, NotAudio, Undelivered
from bot.storage.tables import UsageEntry
from tests.engine.conftest import Audio, EngineFactory, Harness, Sink, make_turn, voice
from tests.fakes.dashscope import StreamError


async def statuses(h: Harness, conversation_id: int | None) -> list[tuple[str, str]]:
    assert conversation_id is not None
    return [(t.role, t.status) for t in await h.turns(conversation_id)]


async def usage_entries(h: Harness) -> int:
    async with h.db.sessions() as s:
        return int(await s.scalar(select(func.count(UsageEntry.id))) or 0)


async def followup_sees_no_failed_turns(h: Harness, *, complete_pairs: int) -> None:
    out, _ = await h.turn(text="what now?")
    assert out.status == "complete"
    assert h.fake.last_request.roles == ["user", "assistant"] * complete_pairs + ["user"]


async def test_download_failure_keeps_the_message_and_sends_nothing(h: Harness) -> None:
    out, sink = await h.turn(audio=Audio(b"", error=ConnectionError("reset")))
    assert out.status == "failed"
    assert sink.calls == ["start", "fail"] and sink.shown == texts.ERROR_GENERIC
    assert await statuses(h, out.conversation_id) == [("user", "failed")]
    assert h.fake.requests == []
    await followup_sees_no_failed_turns(h, complete_pairs=0)


async def test_unreadable_audio_is_refused_with_the_pipeline_message(h: Harness) -> None:
    out, sink = await h.turn(audio=Audio(b"just some text, not audio at all" * 20))
    assert isinstance(out.error, NotAudio)
    assert sink.shown == texts.NOT_AUDIO
    assert await statuses(h, out.conversation_id) == [("user", "failed")]
    assert await h.clips() == []


async def test_declared_size_is_checked_before_download(engine_factory: EngineFactory) -> None:
    h = await engine_factory(AUDIO_MAX_BYTES=1000)
    audio = Audio(voice(2.0), size=5000)
    out, sink = await h.turn(audio=audio)
    assert isinstance(out.error, AudioTooLarge) and audio.fetches == 0
    assert "limit" in sink.shown


async def test_model_error_before_any_text(h: Harness) -> None:
    await h.turn(audio=Audio(voice(2.0)))
    h.fake.queue_error(400, "DataInspectionFailed")
    out, sink = await h.turn(audio=Audio(voice(3.0, seed=1)), text="and this?")
    assert out.status == "failed"
    assert sink.shown == texts.CONTENT_FILTERED and sink.partial == ""
    stored = await h.turns(out.conversation_id)  # type: ignore[arg-type]
    assert [(t.role, t.status) for t in stored] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "failed"),
    ]
    assert stored[3].error_code == "DataInspectionFailed" and stored[3].text is None
    assert len(stored[2].clips) == 1  # the user's audio was kept
    assert await usage_entries(h) == 1
    await followup_sees_no_failed_turns(h, complete_pairs=1)


async def test_error_in_the_middle_of_the_stream_keeps_the_partial_text(h: Harness) -> None:
    h.fake.queue_reply(chunks=["Hel", "lo"], error=StreamError("InternalError"))
    out, sink = await h.turn(audio=Audio(voice(2.0)))
    assert out.status == "failed"
    assert sink.updates[-1][0] == "Hello" and sink.partial == "Hello"
    assert sink.shown == texts.MODEL_SERVER_ERROR
    stored = await h.turns(out.conversation_id)  # type: ignore[arg-type]
    assert (stored[1].status, stored[1].text, stored[1].error_code) == (
        "failed",
        "Hello",
        "InternalError",
    )
    await followup_sees_no_failed_turns(h, complete_pairs=0)


async def test_dropped_connection(h: Harness) -> None:
    h.fake.queue_reply(chunks=["par", "tial"], drop=True, chunk_delay=0.05)
    out, sink = await h.turn(text="hi")
    assert isinstance(out.error, ModelConnectionLost)
    assert sink.shown == texts.MODEL_CONNECTION_LOST
    assert (await statuses(h, out.conversation_id))[-1] == ("assistant", "failed")


async def test_sink_failure_stops_the_turn_consistently(h: Harness) -> None:
    h.fake.queue_reply(chunks=["a ", "b ", "c"], chunk_delay=0.05)
    out, sink = await h.turn(Sink(fail_on_update=1), text="hi")
    assert out.status == "failed"
    assert sink.calls == ["start", "update", "fail"]
    assert await statuses(h, out.conversation_id) == [("user", "complete"), ("assistant", "failed")]


async def test_platform_down_at_start_stores_nothing(h: Harness) -> None:
    out, _ = await h.turn(Sink(fail_on_start=True), text="hi")
    assert out.status == "failed"
    assert await h.all_turns() == [] and h.fake.requests == []


async def test_stop_finalises_the_reply_as_stopped(h: Harness) -> None:
    h.fake.queue_reply(chunks=["one ", "two ", "three ", "four "], chunk_delay=0.3)
    stop = asyncio.Event()
    sink = Sink(on_update=lambda text: stop.set())
    out = await h.engine.handle_turn(make_turn(audio=Audio(voice(2.0))), sink, stop=stop)
    assert out.status == "stopped"
    assert sink.final is not None and sink.final.status == "stopped"
    assert sink.final.text == "one " and sink.shown == "one\n\n" + texts.REPLY_STOPPED
    stored = await h.turns(out.conversation_id)  # type: ignore[arg-type]
    assert (stored[1].status, stored[1].text) == ("stopped", "one ")
    await followup_sees_no_failed_turns(h, complete_pairs=0)


async def test_drain_waits_then_stops_what_is_left(h: Harness) -> None:
    h.fake.queue_reply(chunks=[f"w{i} " for i in range(30)], chunk_delay=0.2)
    started = asyncio.Event()
    sink = Sink(on_update=lambda text: started.set())
    task = asyncio.create_task(h.engine.handle_turn(make_turn(text="long story"), sink))
    await started.wait()
    await h.engine.drain(timeout=1.0)
    out = await asyncio.wait_for(task, 1.0)
    assert out.status == "stopped" and sink.final is not None
    assert (await statuses(h, out.conversation_id))[-1] == ("assistant", "stopped")
    late, late_sink = await h.turn(text="anyone?")
    assert late.status == "refused" and late_sink.shown == texts.SHUTTING_DOWN


# "Created before one second from now": every turn of the test counts as old.
CRASHED_LONG_AGO = -dt.timedelta(seconds=1)


async def test_replies_interrupted_by_a_crash_are_marked_failed_at_start_up(h: Harness) -> None:
    await h.turn(audio=Audio(voice(2.0)))
    # A crash mid-reply: the process died with the assistant turn still "streaming".
    h.fake.queue_reply(chunks=["half an ans"], chunk_delay=0.01)
    out, _ = await h.turn(text="tell me more")
    stored = await h.turns(out.conversation_id)  # type: ignore[arg-type]
    async with h.db.sessions.begin() as s:
        crashed = await s.get(type(stored[3]), stored[3].id)
        assert crashed is not None
        crashed.status = "streaming"

    assert await h.engine.recover(older_than=CRASHED_LONG_AGO) == 1
    stored = await h.turns(out.conversation_id)  # type: ignore[arg-type]
    assert (stored[3].status, stored[3].error_code, stored[3].text) == (
        "failed",
        "interrupted",
        "half an ans",
    )
    assert stored[3].finished_at is not None
    assert await h.engine.recover(older_than=CRASHED_LONG_AGO) == 0  # idempotent
    # The half reply never goes back to the model as a complete answer.
    await followup_sees_no_failed_turns(h, complete_pairs=1)


async def test_a_reply_the_platform_never_confirms_is_kept_and_delivered_later(
    h: Harness,
) -> None:
    h.fake.queue_reply(chunks=["the first ", "answer"])
    out, sink = await h.turn(sink=Sink(finish_error=Undelivered("platform down")), text="q1")
    assert out.status == "undelivered"
    assert await statuses(h, out.conversation_id) == [
        ("user", "complete"),
        ("assistant", "undelivered"),
    ]
    # Not history yet: the user never read it.
    h.fake.queue_reply(chunks=["the second answer"])
    second, sink = await h.turn(text="q2")
    assert sink.calls[:2] == ["deliver_late", "start"]
    assert sink.late == [(f"_{texts.DELIVERED_LATE}_\n\nthe first answer", None)]
    assert second.status == "complete"
    # Delivered now, so it is history the model hears.
    assert h.fake.last_request.texts[-3:] == [
        ("user", "q1"),
        ("assistant", "the first answer"),
        ("user", "q2"),
    ]
    assert [s for _, s in await statuses(h, second.conversation_id)] == ["complete"] * 4


async def test_a_reply_whose_delivery_a_crash_cut_short_is_delivered_after_restart(
    h: Harness,
) -> None:
    h.fake.queue_reply(chunks=["kept answer"])
    out, _ = await h.turn(text="q1")
    stored = await h.turns(out.conversation_id)  # type: ignore[arg-type]
    async with h.db.sessions.begin() as s:
        crashed = await s.get(type(stored[1]), stored[1].id)
        assert crashed is not None
        crashed.status = "delivering"  # the process died while delivering the final text
    assert await h.engine.recover(older_than=CRASHED_LONG_AGO) == 1
    assert [t.status for t in await h.turns(out.conversation_id)] == ["complete", "undelivered"]  # type: ignore[arg-type]
    h.fake.queue_reply(chunks=["next"])
    _, sink = await h.turn(text="q2")
    assert sink.late == [(f"_{texts.DELIVERED_LATE}_\n\nkept answer", None)]
