"""Spoken replies through the real engine: when a reply is spoken, the voice note after
the text (once, never empty, cut at the cap), what is stored, and failures keeping the text.

The model's speech comes from :mod:`tests.voice.speaking` (the stopgap until the fake
DashScope speaks Omni): the real client streams the text from the fake server and the
speech is added to the same stream.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import texts
from bot.engine import presenters
from bot.engine.domain import VoiceReply
from bot.engine.ports import ChatRef
from bot.errors import DeliveryTransient, InvalidSetting, Undelivered
from bot.i18n import Lang, tr, use
from bot.storage.tables import Turn
from tests.engine.conftest import GROUP, PRIVATE, Audio, EngineFactory, Harness, Sink, voice
from tests.engine.test_settings_usage import Admins
from tests.fakes.dashscope import Reply
from tests.voice.speaking import VOICES, decoded_seconds, speak, speaking_model

SLACK_DM = ChatRef(platform="slack", chat_id="D1", kind="im", private=True)


@pytest.fixture
def speaking(monkeypatch: pytest.MonkeyPatch) -> None:
    speaking_model(monkeypatch)


async def _assistant(h: Harness, turn_id: int | None) -> Turn:
    async with h.db.sessions() as s:
        row = await s.scalar(select(Turn).where(Turn.id == turn_id))
    assert row is not None
    return row


@pytest.mark.usefixtures("speaking")
async def test_a_voice_message_gets_text_then_one_voice_note(h: Harness) -> None:
    model = speak(h.engine, seconds=3.3)
    h.fake.queue(Reply(chunks=["Hello ", "**there**, ", "friend."]))
    outcome, sink = await h.turn(audio=Audio(voice(2.0)))

    assert outcome.status == "complete"
    assert model.voices == [VOICES[0]]  # the model's first voice, asked for once
    # The text is the reply as streamed (no speech in it), delivered once, then the note.
    assert sink.final is not None and sink.final.text == "Hello **there**, friend."
    assert sink.calls.count("finish") == 1
    assert sink.calls.index("voice") > sink.calls.index("finish")
    [(ogg, seconds)] = sink.voices
    assert seconds == pytest.approx(3.3, abs=0.001)
    assert decoded_seconds(ogg) == pytest.approx(3.3, abs=0.05)
    assert outcome.voice_note is not None and outcome.voice_note.message_id == "voice-1"
    row = await _assistant(h, outcome.assistant_turn_id)
    assert row.text == "Hello **there**, friend."  # history is the text
    assert row.voice_note_id == "voice-1" and row.voice_seconds == pytest.approx(3.3)
    # The usage report counts the seconds spoken.
    with use(Lang.EN):
        report = presenters.usage_summary(await h.engine.usage(PRIVATE))
    assert "Spoken replies: 0:03" in report


@pytest.mark.usefixtures("speaking")
async def test_a_text_message_gets_text_only_and_groups_default_to_off(h: Harness) -> None:
    model = speak(h.engine, seconds=2.0)
    _, sink = await h.turn(text="What is 2+2?")
    assert sink.voices == [] and model.voices == [None]
    _, sink = await h.turn(audio=Audio(voice(2.0)), chat=GROUP)
    assert sink.voices == [] and model.voices[-1] is None
    _, sink = await h.turn(audio=Audio(voice(2.0)), chat=SLACK_DM)
    assert sink.voices == [], "Slack defaults to off: teams read"


@pytest.mark.usefixtures("speaking")
async def test_always_speaks_every_turn_with_the_chosen_voice(h: Harness) -> None:
    model = speak(h.engine, seconds=1.0)
    admins = Admins("5")
    view = await h.engine.update_settings(
        GROUP, "5", admins, voice_reply="always", voice="eldric  sage"
    )
    assert view.voice_reply is VoiceReply.ALWAYS and view.voice == "Eldric Sage"
    _, sink = await h.turn(text="Say hi", chat=GROUP)
    assert model.voices == ["Eldric Sage"] and len(sink.voices) == 1
    await h.engine.update_settings(GROUP, "5", admins, voice_reply="off")
    _, sink = await h.turn(audio=Audio(voice(2.0)), chat=GROUP)
    assert sink.voices == [] and model.voices[-1] is None


async def test_a_model_that_cannot_speak_answers_in_text(h: Harness) -> None:
    model = speak(h.engine, seconds=1.0)
    outcome, sink = await h.turn(audio=Audio(voice(2.0)))
    assert outcome.status == "complete" and sink.final is not None
    assert model.voices == [None] and sink.voices == [] and outcome.voice_note is None
    with pytest.raises(InvalidSetting) as err:
        await h.engine.update_settings(PRIVATE, "7", Admins(), voice="Cherry")
    with use(Lang.EN):
        assert "can't speak" in err.value.user_message


@pytest.mark.usefixtures("speaking")
async def test_voice_settings_are_validated_and_shown(h: Harness) -> None:
    admins = Admins()
    with pytest.raises(InvalidSetting) as err:
        await h.engine.update_settings(PRIVATE, "7", admins, voice="Nobody")
    with use(Lang.EN):
        assert err.value.user_message == "“voice” must be one of: Cherry, Ethan, Eldric Sage."
    with pytest.raises(InvalidSetting):
        await h.engine.update_settings(PRIVATE, "7", admins, voice_reply="sometimes")
    view = await h.engine.get_settings(PRIVATE)
    with use(Lang.EN):
        shown = presenters.settings_summary(view, PRIVATE)
        assert "• Voice replies (voice_reply): auto (a voice message gets a voice reply)" in shown
        assert "seconds spoken show in the usage report" in shown
        assert "• Voice (voice): Cherry" in shown
        assert "• Voice replies (voice_reply): off" in presenters.settings_summary(
            await h.engine.get_settings(GROUP), GROUP
        )
    view = await h.engine.update_settings(PRIVATE, "7", admins, voice="ethan", voice_reply="off")
    with use(Lang.ZH):
        shown = presenters.settings_summary(view, PRIVATE)
    assert "语音回复 (voice_reply)：关" in shown and "音色 (voice)：Ethan" in shown


@pytest.mark.usefixtures("speaking")
async def test_long_speech_is_cut_at_the_cap_and_the_reply_says_so(
    engine_factory: EngineFactory,
) -> None:
    h = await engine_factory(VOICE_REPLY_MAX_SECONDS=2)
    speak(h.engine, seconds=5.0)
    _, sink = await h.turn(audio=Audio(voice(2.0)))
    [(ogg, seconds)] = sink.voices
    assert seconds == pytest.approx(2.0) and decoded_seconds(ogg) == pytest.approx(2.0, abs=0.05)
    assert sink.final is not None
    with use(Lang.EN):
        assert tr(texts.VOICE_REPLY_CUT).format(spoken="0:02") in sink.final.notes


@pytest.mark.usefixtures("speaking")
async def test_a_voice_note_that_cannot_be_sent_keeps_the_text_and_says_so(h: Harness) -> None:
    speak(h.engine, seconds=1.5)
    sink = Sink(voice_error=Undelivered(cause=DeliveryTransient(code="http_500")))
    h.fake.queue(Reply(chunks=["All ", "good."]))
    outcome, sink = await h.turn(sink, audio=Audio(voice(2.0)))
    assert outcome.status == "complete" and outcome.voice_note is None
    assert sink.final is not None and sink.final.text == "All good."
    assert sink.calls.count("finish") == 1
    with use(Lang.EN):
        assert sink.follow_ups == [tr(texts.VOICE_REPLY_FAILED)]
    row = await _assistant(h, outcome.assistant_turn_id)
    assert row.status == "complete" and row.text == "All good." and row.voice_note_id is None


@pytest.mark.usefixtures("speaking")
async def test_no_speech_no_voice_note(h: Harness) -> None:
    model = speak(h.engine, seconds=0.0)  # asked to speak, the model said nothing aloud
    outcome, sink = await h.turn(audio=Audio(voice(2.0)))
    assert model.voices == [VOICES[0]]
    assert outcome.status == "complete" and sink.voices == [] and "voice" not in sink.calls


@pytest.mark.usefixtures("speaking")
async def test_a_rerun_never_sends_the_voice_note_again(h: Harness) -> None:
    speak(h.engine, seconds=1.0)
    audio = Audio(voice(2.0), key="clip-1")
    first, sink = await h.turn(audio=audio, source_message_id="m1")
    assert len(sink.voices) == 1
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
