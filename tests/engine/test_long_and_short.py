"""An hour-long recording is answered with what the model could hear of it; a tap on the
record button is no message (issue #14, items 1 and 2). Engine → real pipeline → DashScope
client → fake DashScope, on both databases; and ``voicebot ask`` for the tap."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.config import Settings
from bot.storage.database import Database
from bot.storage.tables import Turn
from tests import zygote
from tests.audio import synth
from tests.engine.conftest import Audio, EngineFactory, Harness, voice
from tests.fakes.dashscope import FakeDashScope

HOUR = 3600.0


def hour() -> bytes:
    """A one-hour meeting recording as a 6 kbit/s Opus voice note (2.6 MB)."""
    return synth.long_opus(HOUR)


def tap() -> bytes:
    """What an accidental tap on Telegram's record button sends: 0.2 s of Opus."""
    return voice(0.2)


def heard(h: Harness) -> list[float]:
    """Seconds of every audio item the model was sent in the last request."""
    return [round(a.duration or 0.0, 1) for a in h.fake.last_request.audio]


async def user_turns(h: Harness) -> list[Turn]:
    return [t for t in await h.all_turns() if t.role == "user"]


async def test_an_hour_long_recording_is_answered_with_what_was_heard(h: Harness) -> None:
    outcome, sink = await h.turn(audio=Audio(hour(), key="telegram:meeting"))
    assert outcome.status == "complete", sink.shown
    assert sink.final is not None
    assert sink.final.notes == ("I listened to the first 3:30 of 1:00:00.",)
    assert sink.shown == f"{sink.final.text}\n\nI listened to the first 3:30 of 1:00:00."
    # As many 30 s clips as the 6,144-token budget holds, from the start, in one request.
    assert heard(h) == [30.0] * 7
    assert h.fake.last_request.input_tokens <= 6144
    assert outcome.audio_seconds_sent == pytest.approx(210.0, abs=0.1)
    [user] = await user_turns(h)
    assert user.audio_seconds_total == pytest.approx(HOUR, abs=0.05)

    # Asked about again, the stored clips are replayed and the note still knows the hour.
    again = Audio(b"", key="telegram:meeting")
    outcome, sink = await h.turn(audio=again, text="What was decided?")
    assert outcome.status == "complete", sink.shown
    assert again.fetches == 0
    assert sink.final is not None
    assert sink.final.notes == ("I listened to the first 3:30 of 1:00:00.",)


async def test_asr_transcribes_its_five_minutes_of_an_hour(h: Harness) -> None:
    outcome, sink = await h.turn(audio=Audio(hour()), model="qwen3-asr-flash")
    assert outcome.status == "complete", sink.shown
    assert heard(h) == [300.0]  # qwen3-asr-flash: one clip of at most 5 minutes
    assert "I listened to the first 5:00 of 1:00:00." in sink.shown


async def test_the_captioner_hears_up_to_the_decode_bound(engine_factory: EngineFactory) -> None:
    """The captioner takes one clip of up to 32 minutes (10 MB of MP3); AUDIO_MAX_SECONDS
    bounds the decoding below that, and the reply says how much of the hour it heard."""
    h = await engine_factory(AUDIO_MAX_SECONDS=60)
    outcome, sink = await h.turn(audio=Audio(hour()), model="qwen3-omni-30b-a3b-captioner")
    assert outcome.status == "complete", sink.shown
    assert heard(h) == [60.0]
    assert "I listened to the first 1:00 of 1:00:00." in sink.shown


async def test_a_tap_gets_a_hint_and_nothing_is_sent_or_stored(h: Harness) -> None:
    outcome, sink = await h.turn(audio=Audio(tap()))
    assert outcome.status == "refused"
    assert sink.shown == (
        "That voice note was too short for me to hear anything — hold the button a bit longer."
    )
    assert sink.calls == ["start", "fail"]
    assert h.fake.requests == []
    assert await h.all_turns() == []

    # The next real message is answered as if the tap had never been sent.
    outcome, sink = await h.turn(audio=Audio(voice(2.0)))
    assert outcome.status == "complete", sink.shown
    assert h.fake.last_request.roles == ["user"]
    assert [t.role for t in await h.all_turns()] == ["user", "assistant"]


async def test_ask_refuses_a_tap_on_stderr_with_a_non_zero_exit(
    db: Database, dashscope_fake: FakeDashScope, tmp_path: Path
) -> None:
    note = tmp_path / "tap.ogg"
    note.write_bytes(tap())
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.update(
        DATABASE_URL=db.url,
        DASHSCOPE_API_KEY=dashscope_fake.api_key,
        DASHSCOPE_BASE_URL=dashscope_fake.native_base_url,
        DASHSCOPE_MAX_RETRIES="0",
    )
    # cwd: no developer .env in the working directory
    done = await asyncio.to_thread(zygote.run, ["ask", str(note)], env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"voicebot: {texts.AUDIO_TOO_SHORT}\n"
    assert dashscope_fake.requests == []
    async with db.sessions() as session:
        assert await session.scalar(select(func.count(Turn.id))) == 0
