"""Every turn kind end to end: engine → real pipeline → DashScope client → fake server."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.engine.ports import ChatRef
from bot.storage.tables import Chat, Turn
from tests.engine.conftest import GROUP, Audio, EngineFactory, Harness, long_voice, voice
from tests.fakes.dashscope import Reply


class Admin:
    async def is_admin(self, chat: ChatRef, user_id: str) -> bool:
        return True


def user_audio(req: object) -> list[tuple[int, float]]:
    """(message index, seconds) of every audio item in a recorded request."""
    return [(a.message_index, round(a.duration or 0, 1)) for a in req.audio]  # type: ignore[attr-defined]


async def test_multi_turn_conversation_resends_exactly_the_stored_audio_and_text(
    h: Harness,
) -> None:
    await h.engine.update_settings(h_chat(), "7", Admin(), system_prompt="Be brief.")
    first, s1 = await h.turn(audio=Audio(voice(4.0)))
    second, _s2 = await h.turn(audio=Audio(voice(6.0, seed=1)), text="Which language is this?")
    third, _s3 = await h.turn(text="And the speaker's mood?")
    assert [o.status for o in (first, second, third)] == ["complete"] * 3
    assert first.conversation_id == second.conversation_id == third.conversation_id

    r1, r2, r3 = h.fake.requests
    # 1: voice chat — system prompt, then the voice note alone.
    assert r1.roles == ["system", "user"]
    assert r1.texts == [("system", "Be brief.")]
    assert user_audio(r1) == [(1, 4.0)]
    assert s1.calls[0] == "start" and s1.calls[-1] == "finish" and "update" in s1.calls
    assert s1.shown == "Heard 1 audio clip(s): 4.00 s."
    # 2: audio analysis — history (4 s + reply), then 6 s with the question.
    assert r2.roles == ["system", "user", "assistant", "user"]
    assert r2.texts == [
        ("system", "Be brief."),
        ("assistant", s1.final.text),  # type: ignore[union-attr]
        ("user", "Which language is this?"),
    ]
    assert user_audio(r2) == [(1, 4.0), (3, 6.0)]
    # 3: a text follow-up; the history carries both recordings, replayed from storage.
    assert r3.roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [t for role, t in r3.texts if role == "user"] == [
        "Which language is this?",
        "And the speaker's mood?",
    ]
    assert user_audio(r3) == [(1, 4.0), (3, 6.0)]
    assert (
        h.fake.requests[2].body["input"]["messages"][1]["content"][0]["audio"]
        == (r1.body["input"]["messages"][1]["content"][0]["audio"])
    )

    stored = await h.turns(first.conversation_id)  # type: ignore[arg-type]
    assert [(t.role, t.kind, t.status) for t in stored] == [
        ("user", "voice_chat", "complete"),
        ("assistant", "voice_chat", "complete"),
        ("user", "analysis", "complete"),
        ("assistant", "analysis", "complete"),
        ("user", "followup", "complete"),
        ("assistant", "followup", "complete"),
    ]
    reply = stored[1]
    assert reply.model == "qwen-audio-turbo-latest"
    assert reply.finish_reason == "stop"
    assert reply.output_tokens and reply.audio_tokens == 100
    assert reply.started_at and reply.first_token_at and reply.finished_at
    assert reply.reply_message_ids == ["msg-1"]
    assert len(await h.clips()) == 2
    metrics = h.engine.metrics.render().decode()
    assert (
        'voicebot_turns_total{kind="followup",model="qwen-audio-turbo-latest",'
        'platform="telegram",status="complete"} 1.0' in metrics
    )
    assert 'voicebot_audio_seconds_sent_total{model="qwen-audio-turbo-latest"} 10.0' in metrics


def h_chat() -> ChatRef:
    from tests.engine.conftest import PRIVATE

    return PRIVATE


async def test_history_is_trimmed_to_the_budget_newest_pairs_first(h: Harness) -> None:
    clip = voice(30.0)
    for i in range(8):
        h.fake.queue_reply(chunks=[f"reply {i}"])
        out, _ = await h.turn(audio=Audio(clip))
        assert out.status == "complete"
    last = h.fake.last_request
    assert last.status == 200
    replayed = [t for role, t in last.texts if role == "assistant"]
    kept = len(replayed)
    assert 4 <= kept <= 6  # about 5,900 tokens at 750+ per 30 s pair
    assert replayed == [f"reply {i}" for i in range(7 - kept, 7)]
    assert len(last.audio) == kept + 1
    assert last.input_tokens is not None and last.input_tokens <= 6144


async def test_model_switch_mid_conversation(h: Harness) -> None:
    await h.turn(audio=Audio(voice(3.0)))
    # A model without native voice chat: audio alone gets the default instruction,
    # and so does the replayed voice note.
    await h.engine.update_settings(h_chat(), "7", Admin(), model="qwen-audio-turbo")
    out, _ = await h.turn(audio=Audio(voice(2.0, seed=2)))
    req = h.fake.last_request
    assert req.model == "qwen-audio-turbo"
    assert [t for role, t in req.texts if role == "user"] == [texts.VOICE_CHAT_INSTRUCTION] * 2
    assert user_audio(req) == [(0, 3.0), (2, 2.0)]

    # An ASR model: single turn, language/ITN from the settings, system prompt as context.
    await h.engine.update_settings(
        h_chat(),
        "7",
        Admin(),
        model="qwen3-asr-flash",
        asr_language="en",
        asr_enable_itn=True,
        system_prompt="Names: Qwen",
    )
    h.fake.queue_reply(chunks=["hello qwen"], language="en", emotion="happy")
    out, sink = await h.turn(audio=Audio(voice(2.0, seed=3)), text="please transcribe")
    req = h.fake.last_request
    assert req.roles == ["system", "user"] and req.texts == [("system", "Names: Qwen")]
    assert req.parameters["asr_options"] == {"language": "en", "enable_itn": True}
    assert sink.final is not None and sink.final.audio_info is not None
    assert sink.shown == (
        "hello qwen\n\n"
        + texts.INSTRUCTION_IGNORED.format(model="qwen3-asr-flash")
        + "\n\nDetected language: en, emotion: happy."
    )

    # Back to turbo: all three complete pairs are history, whatever model answered them.
    await h.engine.update_settings(h_chat(), "7", Admin(), model=None, system_prompt=None)
    await h.turn(text="summarise everything")
    req = h.fake.last_request
    assert req.model == "qwen-audio-turbo-latest"
    assert req.roles == ["user", "assistant"] * 3 + ["user"]
    assert user_audio(req) == [(0, 3.0), (2, 2.0), (4, 2.0)]
    stored = await h.turns(out.conversation_id)  # type: ignore[arg-type]
    assert [t.model for t in stored if t.role == "assistant"] == [
        "qwen-audio-turbo-latest",
        "qwen-audio-turbo",
        "qwen3-asr-flash",
        "qwen-audio-turbo-latest",
    ]


async def test_captioner_describes_single_turn_and_refuses_text_alone(h: Harness) -> None:
    await h.turn(audio=Audio(voice(2.0)))
    out, sink = await h.turn(
        audio=Audio(voice(3.0, seed=4)), text="what is it?", model="qwen3-omni-30b-a3b-captioner"
    )
    assert out.status == "complete"
    req = h.fake.last_request
    assert req.roles == ["user"] and req.texts == [] and user_audio(req) == [(0, 3.0)]
    assert texts.INSTRUCTION_IGNORED.format(model="qwen3-omni-30b-a3b-captioner") in sink.shown

    before = len(h.fake.requests)
    refused, sink = await h.turn(text="describe", model="qwen3-omni-30b-a3b-captioner")
    assert refused.status == "refused"
    assert sink.calls == ["fail"]
    assert sink.shown == texts.NEEDS_AUDIO_CAPTION.format(model="qwen3-omni-30b-a3b-captioner")
    assert len(h.fake.requests) == before
    assert len(await h.all_turns()) == 4  # the refusal stored nothing


async def test_asr_refuses_text_alone_and_notes_left_out_audio(h: Harness) -> None:
    refused, sink = await h.turn(text="hi", model="qwen3-asr-flash")
    assert refused.status == "refused"
    assert sink.shown == texts.NEEDS_AUDIO_ASR.format(model="qwen3-asr-flash")
    # qwen3-asr-flash hears one clip of at most 5 min (a WAV: the container is beside
    # the point, and encoding 5 min of Opus would cost the suite seconds).
    out, sink = await h.turn(audio=Audio(long_voice(310.0)), model="qwen3-asr-flash")
    assert out.status == "complete"
    assert user_audio(h.fake.last_request) == [(0, 300.0)]
    assert "I listened to the first 5:00 of 5:10." in sink.shown
    assert out.audio_seconds_sent == pytest.approx(300.0, abs=0.1)


async def test_long_voice_note_is_sent_as_consecutive_clips(h: Harness) -> None:
    out, sink = await h.turn(audio=Audio(voice(70.0)))
    assert user_audio(h.fake.last_request) == [(0, 30.0), (0, 30.0), (0, 10.0)]
    assert "I listened" not in sink.shown
    assert out.audio_seconds_sent == pytest.approx(70.0, abs=0.1)


async def test_same_recording_is_reused_from_storage_not_fetched_again(h: Harness) -> None:
    data = voice(4.0)
    first = Audio(data, key="telegram:abc")
    await h.turn(audio=first)
    again = Audio(b"", key="telegram:abc")  # would fail if it were downloaded
    out, sink = await h.turn(audio=again, text="What language is it?")
    assert out.status == "complete", sink.shown
    assert (first.fetches, again.fetches) == (1, 0)
    req = h.fake.last_request
    assert user_audio(req) == [(0, 4.0), (2, 4.0)]
    clips = await h.clips()
    assert len(clips) == 2 and clips[0].sha256 == clips[1].sha256


async def test_threads_have_their_own_conversations_and_new_starts_fresh(h: Harness) -> None:
    a, _ = await h.turn(chat=GROUP, thread_key="topic-1", audio=Audio(voice(2.0)))
    b, _ = await h.turn(chat=GROUP, thread_key="topic-2", text="hello")
    assert a.conversation_id != b.conversation_id
    assert h.fake.last_request.roles == ["user"]
    await h.engine.new_conversation(GROUP, "topic-1")
    c, _ = await h.turn(chat=GROUP, thread_key="topic-1", text="still there?")
    assert c.conversation_id not in (a.conversation_id, b.conversation_id)
    assert h.fake.last_request.roles == ["user"]


async def test_access_refusal_stores_nothing(engine_factory: EngineFactory) -> None:
    h = await engine_factory(ALLOWED_USERS="telegram:1", ALLOWED_CHATS="telegram:-200")
    out, sink = await h.turn(user_id="7", audio=Audio(voice(2.0)))
    assert out.status == "refused"
    assert sink.calls == ["fail"] and sink.shown == texts.ACCESS_DENIED
    assert h.fake.requests == []
    async with h.db.sessions() as s:
        assert await s.scalar(select(func.count(Chat.id))) == 0
        assert await s.scalar(select(func.count(Turn.id))) == 0
    # The allowed chat lets anyone in; the allowed user may talk anywhere.
    ok, _ = await h.turn(chat=GROUP, user_id="7", text="hi")
    ok2, _ = await h.turn(user_id="1", text="hi")
    assert (ok.status, ok2.status) == ("complete", "complete")


async def test_rate_limit_answers_with_a_clear_message(engine_factory: EngineFactory) -> None:
    h = await engine_factory(USER_RATE_LIMIT=2, USER_RATE_WINDOW=60)
    for _ in range(2):
        out, _ = await h.turn(text="hi")
        assert out.status == "complete"
    out, sink = await h.turn(text="hi")
    assert out.status == "refused"
    # The first of the two turns leaves the window within 60 s of when it came in.
    wait = re.search(r"Try again in (\d+) s\.", sink.shown)
    assert wait is not None and 1 <= int(wait.group(1)) <= 60
    other, _ = await h.turn(user_id="8", text="hi")
    assert other.status == "complete"
    assert len(h.fake.requests) == 3


async def test_settings_reach_the_request(h: Harness) -> None:
    await h.engine.update_settings(
        h_chat(), "7", Admin(), temperature=0.3, top_p=0.9, top_k=5, seed=42, max_tokens=4
    )
    h.fake.queue(Reply(chunks=["one ", "two ", "three ", "four ", "five ", "six"]))
    out, sink = await h.turn(text="count")
    params = h.fake.last_request.parameters
    assert (params["temperature"], params["top_p"], params["top_k"], params["seed"]) == (
        0.3,
        0.9,
        5,
        42,
    )
    assert params["max_tokens"] == 4
    assert out.reply is not None and out.reply.finish_reason == "length"
    assert texts.REPLY_CUT_AT_LIMIT in sink.shown


async def test_several_recordings_in_one_message_are_heard_together(h: Harness) -> None:
    one, two = Audio(voice(2.0), key="slack:F1"), Audio(voice(3.0, seed=1), key="slack:F2")
    out, sink = await h.turn(audio=one, more_audio=(two,), text="compare these")
    assert out.status == "complete", sink.shown
    # One request: both recordings, in order, in the one user message with the text.
    assert user_audio(h.fake.last_request) == [(0, 2.0), (0, 3.0)]
    assert h.fake.last_request.texts[-1] == ("user", "compare these")
    assert out.audio_seconds_sent == pytest.approx(5.0, abs=0.1)
    assert "I listened" not in sink.shown
    clips = await h.clips()
    assert [c.source_key for c in clips] == ["slack:F1", "slack:F2"]

    # Asking about the second file later replays only its clips, without a download.
    again = Audio(b"", key="slack:F2")
    out, sink = await h.turn(audio=again, text="and the second one?")
    assert out.status == "complete", sink.shown
    assert again.fetches == 0
    assert user_audio(h.fake.last_request)[-1:] == [(2, 3.0)]


async def test_recordings_share_one_budget_and_the_rest_is_reported(h: Harness) -> None:
    # 3 + 4 minutes: more than one request holds (6,144 tokens at 25 per second).
    first, second = Audio(long_voice(180.0)), Audio(long_voice(240.0, seed=2))
    out, sink = await h.turn(audio=first, more_audio=(second,), text="summarise both")
    assert out.status == "complete", sink.shown
    sent = user_audio(h.fake.last_request)
    # The first recording whole (6 clips of 30 s), then what still fits of the second.
    assert sent[:6] == [(0, 30.0)] * 6
    assert 6 < len(sent) < 14
    assert all(seconds <= 30.0 for _, seconds in sent)
    assert h.fake.last_request.input_tokens <= 6144
    listened = sum(seconds for _, seconds in sent)
    assert out.audio_seconds_sent == pytest.approx(listened, abs=0.5)
    assert "of 7:00." in sink.shown  # the note counts both recordings: 3:00 + 4:00
