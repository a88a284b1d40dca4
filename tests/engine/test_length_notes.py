"""Cut-off and mis-sized files end to end: the reply says what could not be read, and the
model still gets what was heard (engine → real pipeline → fake DashScope; ``voicebot ask``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bot.config import Settings
from tests import zygote
from tests.audio.test_lengths import lying_wav, truncated_voice_note
from tests.engine.conftest import Audio, Harness, voice
from tests.fakes.dashscope import FakeDashScope

CUT_OFF = "The file seems cut off after 0:01."
UNREAD = (
    "I could only read the first 0:03 of the file: its header says the audio ends there, "
    "but about 16:37 more follows."
)


def heard(h: Harness) -> list[float]:
    """Seconds of every audio item the model was sent in the last request."""
    return [round(a.duration or 0.0, 1) for a in h.fake.last_request.audio]


async def test_truncated_voice_note_is_answered_with_what_was_heard_and_a_note(
    h: Harness,
) -> None:
    outcome, sink = await h.turn(audio=Audio(truncated_voice_note()))
    assert outcome.status == "complete"
    assert sink.final is not None
    assert sink.final.notes == (CUT_OFF,)
    assert sink.shown == f"{sink.final.text}\n\n{CUT_OFF}"  # what the user reads
    assert heard(h) == [1.0]
    assert outcome.audio_seconds_sent == pytest.approx(1.0, abs=0.1)


async def test_wav_with_a_3_s_header_over_1000_s_of_samples(h: Harness) -> None:
    outcome, sink = await h.turn(audio=Audio(lying_wav(claims=3.0, holds=1000.0)))
    assert outcome.status == "complete"
    assert sink.final is not None
    assert sink.final.notes == (UNREAD,)
    assert sink.shown.endswith(f"\n\n{UNREAD}")
    assert heard(h) == [3.0]  # what FFmpeg reads: up to the data chunk's declared end


async def test_each_affected_recording_of_a_message_gets_its_own_note(h: Harness) -> None:
    outcome, sink = await h.turn(
        audio=Audio(voice(2.0)),
        more_audio=(Audio(truncated_voice_note()), Audio(lying_wav(claims=3.0, holds=10.0))),
    )
    assert outcome.status == "complete"
    assert sink.final is not None
    assert sink.final.notes == (
        "File 2 seems cut off after 0:01.",
        "I could only read the first 0:03 of file 3: its header says the audio ends there, "
        "but about 0:07 more follows.",
    )
    assert heard(h) == [2.0, 1.0, 3.0]


async def test_a_whole_recording_gets_no_note(h: Harness) -> None:
    _outcome, sink = await h.turn(audio=Audio(voice(3.0)))
    assert sink.final is not None and sink.final.notes == ()


@pytest.fixture
def ask_json(dashscope_fake: FakeDashScope, db_url: str, tmp_path: Path) -> object:
    """``voicebot ask FILE --json`` in a subprocess; env passed explicitly (no .env read)."""
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.update(
        DATABASE_URL=db_url,
        DASHSCOPE_API_KEY=dashscope_fake.api_key,
        DASHSCOPE_BASE_URL=dashscope_fake.native_base_url,
        DASHSCOPE_MAX_RETRIES="0",
    )

    def run(data: bytes, name: str) -> dict[str, object]:
        path = tmp_path / name
        path.write_bytes(data)
        # cwd: no developer .env in the working directory
        done = zygote.run(["ask", str(path), "--json"], env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        result: dict[str, object] = json.loads(done.stdout)
        return result

    return run


def test_ask_json_reports_the_notes(ask_json: object) -> None:
    cut = ask_json(truncated_voice_note(), "note.ogg")  # type: ignore[operator]
    assert cut["notes"] == [CUT_OFF]
    assert cut["audio_seconds_sent"] == pytest.approx(1.0, abs=0.1)
    lying = ask_json(lying_wav(claims=3.0, holds=1000.0), "memo.wav")  # type: ignore[operator]
    assert lying["notes"] == [UNREAD]
    assert lying["audio_seconds_sent"] == pytest.approx(3.0, abs=0.05)
