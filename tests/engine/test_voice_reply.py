"""Spoken replies through the real engine: when a reply is spoken, the voice note after
the text (once, never empty, cut at the cap), what is stored, and failures keeping the text.

The speech is Qwen-Omni's own: the chat's model is an Omni model and the fake DashScope
streams base64 PCM in ``delta.audio.data`` beside the text (``RecordedRequest.speech``
is what it sent).
"""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from bot import texts
from bot.catalog import CATALOG
from bot.engine import presenters
from bot.engine.domain import VoiceReply
from bot.engine.ports import ChatRef
from bot.errors import DeliveryTransient, InvalidSetting, Undelivered
from bot.i18n import Lang, tr, use
from bot.storage.tables import Turn
from tests.engine.conftest import GROUP, PRIVATE, Audio, EngineFactory, Harness, Sink, voice
from tests.engine.test_settings_usage import Admins
from tests.fakes.audio import decoded_seconds, pcm_seconds
from tests.fakes.dashscope import SPEECH_TOKENS_PER_SECOND, Reply

SLACK_DM = ChatRef(platform="slack", chat_id="D1", kind="im", private=True)
OMNI = "qwen3.5-omni-flash"  # three voices: short lists in the messages below
VOICES = CATALOG[OMNI].voices


@pytest.fixture
async def omni(engine_factory: EngineFactory) -> Harness:
    """An engine whose chats answer with a Qwen-Omni model by default."""
    return await engine_factory(DEFAULT_MODEL=OMNI)


async def _assistant(h: Harness, turn_id: int | None) -> Turn:
    async with h.db.sessions() as s:
        row = await s.scalar(select(Turn).where(Turn.id == turn_id))
    assert row is not None
    return row


async def test_a_voice_message_gets_text_then_one_voice_note(omni: Harness) -> None:
    h = omni
    h.fake.queue(Reply(chunks=["Hello ", "**there**, ", "friend."], speech_seconds=3.3))
    outcome, sink = await h.turn(audio=Audio(voice(2.0)))

    assert outcome.status == "complete"
    req = h.fake.last_request
    assert req.protocol == "openai" and req.wants_speech
    assert req.voice == VOICES[0]  # the model's first voice, asked for once
    assert len(h.fake.requests) == 1
    sent = pcm_seconds(req.speech)
    assert sent == pytest.approx(3.3, abs=0.001)
    # The text is the reply as streamed (no speech in it), delivered once, then the note.
    assert sink.final is not None and sink.final.text == "Hello **there**, friend."
    assert sink.calls.count("finish") == 1
    assert sink.calls.index("voice") > sink.calls.index("finish")
    [(ogg, seconds)] = sink.voices
    assert seconds == pytest.approx(sent, abs=0.001)
    assert decoded_seconds(ogg) == pytest.approx(sent, abs=0.05)
    assert outcome.voice_note is not None and outcome.voice_note.message_id == "voice-1"
    row = await _assistant(h, outcome.assistant_turn_id)
    assert row.text == "Hello **there**, friend."  # history is the text
    assert row.voice_note_id == "voice-1" and row.voice_seconds == pytest.approx(sent)
    # The usage report counts the seconds spoken and the speech tokens the model billed.
    with use(Lang.EN):
        report = presenters.usage_summary(await h.engine.usage(PRIVATE))
    tokens = math.ceil(3.3 * SPEECH_TOKENS_PER_SECOND)
    assert f"Spoken replies: 0:03 ({tokens} speech tokens)" in report


async def test_a_text_message_gets_text_only_and_groups_default_to_off(omni: Harness) -> None:
    h = omni
    _, sink = await h.turn(text="What is 2+2?")
    assert sink.final is not None and sink.voices == []
    assert not h.fake.last_request.wants_speech and h.fake.last_request.speech == b""
    _, sink = await h.turn(audio=Audio(voice(2.0)), chat=GROUP)
    assert sink.voices == [] and not h.fake.last_request.wants_speech
    _, sink = await h.turn(audio=Audio(voice(2.0)), chat=SLACK_DM)
    assert sink.voices == [], "Slack defaults to off: teams read"
    assert not h.fake.last_request.wants_speech


async def test_always_speaks_every_turn_with_the_chosen_voice(omni: Harness) -> None:
    h = omni
    admins = Admins("5")
    view = await h.engine.update_settings(
        GROUP, "5", admins, voice_reply="always", voice="  SERENA "
    )
    assert view.voice_reply is VoiceReply.ALWAYS and view.voice == "Serena"
    h.fake.queue(Reply(chunks=["Hi!"], speech_seconds=1.0))
    _, sink = await h.turn(text="Say hi", chat=GROUP)
    assert h.fake.last_request.voice == "Serena"
    [(ogg, _seconds)] = sink.voices
    assert decoded_seconds(ogg) == pytest.approx(pcm_seconds(h.fake.last_request.speech), abs=0.05)
    await h.engine.update_settings(GROUP, "5", admins, voice_reply="off")
    _, sink = await h.turn(audio=Audio(voice(2.0)), chat=GROUP)
    assert sink.voices == [] and not h.fake.last_request.wants_speech


async def test_a_model_that_cannot_speak_answers_in_text(h: Harness) -> None:
    outcome, sink = await h.turn(audio=Audio(voice(2.0)))  # the default model: no speech
    assert outcome.status == "complete" and sink.final is not None
    assert not h.fake.last_request.wants_speech and h.fake.last_request.voice is None
    assert sink.voices == [] and outcome.voice_note is None
    with pytest.raises(InvalidSetting) as err:
        await h.engine.update_settings(PRIVATE, "7", Admins(), voice="Cherry")
    with use(Lang.EN):
        assert "can't speak" in err.value.user_message


async def test_voice_settings_are_validated_and_shown(omni: Harness) -> None:
    h = omni
    admins = Admins()
    with pytest.raises(InvalidSetting) as err:
        await h.engine.update_settings(PRIVATE, "7", admins, voice="Nobody")
    with use(Lang.EN):
        assert err.value.user_message == "“voice” must be one of: Tina, Ethan, Serena."
    with pytest.raises(InvalidSetting):
        await h.engine.update_settings(PRIVATE, "7", admins, voice_reply="sometimes")
    view = await h.engine.get_settings(PRIVATE)
    with use(Lang.EN):
        shown = presenters.settings_summary(view, PRIVATE)
        assert "• Voice replies (voice_reply): auto (a voice message gets a voice reply)" in shown
        assert "seconds spoken show in the usage report" in shown
        assert "• Voice (voice): Tina" in shown
        assert "• Voice replies (voice_reply): off" in presenters.settings_summary(
            await h.engine.get_settings(GROUP), GROUP
        )
    view = await h.engine.update_settings(PRIVATE, "7", admins, voice="ethan", voice_reply="off")
    with use(Lang.ZH):
        shown = presenters.settings_summary(view, PRIVATE)
    assert "语音回复 (voice_reply)：关" in shown and "音色 (voice)：Ethan" in shown


async def test_long_speech_is_cut_at_the_cap_and_the_reply_says_so(
    engine_factory: EngineFactory,
) -> None:
    h = await engine_factory(DEFAULT_MODEL=OMNI, VOICE_REPLY_MAX_SECONDS=2)
    h.fake.queue(Reply(chunks=["A long ", "answer."], speech_seconds=5.0))
    _, sink = await h.turn(audio=Audio(voice(2.0)))
    assert pcm_seconds(h.fake.last_request.speech) == pytest.approx(5.0, abs=0.001)
    [(ogg, seconds)] = sink.voices
    assert seconds == pytest.approx(2.0) and decoded_seconds(ogg) == pytest.approx(2.0, abs=0.05)
    assert sink.final is not None
    with use(Lang.EN):
        assert tr(texts.VOICE_REPLY_CUT).format(spoken="0:02") in sink.final.notes


async def test_a_voice_note_that_cannot_be_sent_keeps_the_text_and_says_so(
    omni: Harness,
) -> None:
    h = omni
    sink = Sink(voice_error=Undelivered(cause=DeliveryTransient(code="http_500")))
    h.fake.queue(Reply(chunks=["All ", "good."], speech_seconds=1.5))
    outcome, sink = await h.turn(sink, audio=Audio(voice(2.0)))
    assert h.fake.last_request.speech != b""  # the model did speak
    assert outcome.status == "complete" and outcome.voice_note is None
    assert sink.final is not None and sink.final.text == "All good."
    assert sink.calls.count("finish") == 1 and sink.calls.count("voice") == 1
    with use(Lang.EN):
        assert sink.follow_ups == [tr(texts.VOICE_REPLY_FAILED)]
    row = await _assistant(h, outcome.assistant_turn_id)
    assert row.status == "complete" and row.text == "All good." and row.voice_note_id is None


async def test_no_speech_no_voice_note(omni: Harness) -> None:
    h = omni
    # Asked to speak, the model said nothing aloud.
    h.fake.queue(Reply(chunks=["Silent."], speech_seconds=0.0))
    outcome, sink = await h.turn(audio=Audio(voice(2.0)))
    assert h.fake.last_request.voice == VOICES[0] and h.fake.last_request.speech == b""
    assert outcome.status == "complete" and sink.final is not None
    assert sink.voices == [] and "voice" not in sink.calls


async def test_a_rerun_never_sends_the_voice_note_again(omni: Harness) -> None:
    h = omni
    audio = Audio(voice(2.0), key="clip-1")
    first, sink = await h.turn(audio=audio, source_message_id="m1")
    assert len(sink.voices) == 1 and h.fake.last_request.speech != b""
    # The job runs again (its process died after the reply): answered, nothing resent.
    again, sink = await h.turn(audio=audio, source_message_id="m1", attempt=1)
    assert again.status == "duplicate" and sink.voices == [] and sink.calls == []
    # A run that died streaming after its voice note went on record (the note is stored
    # once): answered again in text, the note is not sent a second time.
    async with h.db.sessions.begin() as s:
        row = await s.get(Turn, first.assistant_turn_id)
        assert row is not None and row.voice_note_id == "voice-1"
        row.status = "streaming"
    again, sink = await h.turn(audio=audio, source_message_id="m1", attempt=1)
    assert again.status == "complete" and sink.final is not None
    assert sink.voices == [] and again.voice_note is None
    row = await _assistant(h, first.assistant_turn_id)
    assert row.voice_note_id == "voice-1"
