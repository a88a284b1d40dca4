"""``voicebot ask --voice-reply PATH``: the spoken reply written as OGG/Opus, and ``--json``
saying where and how long. The real CLI in a subprocess against the fake DashScope, whose
Qwen-Omni models speak (``RecordedRequest.speech`` is the PCM it sent)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bot.catalog import CATALOG
from bot.config import Settings
from tests import zygote
from tests.engine.conftest import voice
from tests.fakes.audio import decoded_seconds, pcm_seconds
from tests.fakes.dashscope import FakeDashScope, Reply

OMNI = "qwen3-omni-flash"


@pytest.fixture
def note(tmp_path: Path) -> str:
    path = tmp_path / "note.ogg"
    path.write_bytes(voice(2.0))
    return str(path)


@pytest.fixture
def env(dashscope_fake: FakeDashScope, db_url: str) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    values.update(
        DATABASE_URL=db_url,
        DASHSCOPE_API_KEY=dashscope_fake.api_key,
        DASHSCOPE_BASE_URL=dashscope_fake.native_base_url,
        DASHSCOPE_MAX_RETRIES="0",
        LANG="C.UTF-8",
        TTS_MODEL="off",  # no text-to-speech either (test_a_text_model_is_voiced_by_tts)
    )
    return values


def test_the_spoken_reply_is_written_to_the_path(
    dashscope_fake: FakeDashScope, env: dict[str, str], note: str, tmp_path: Path
) -> None:
    dashscope_fake.queue(Reply(chunks=["Here ", "it is."], speech_seconds=1.8))
    target = tmp_path / "reply.ogg"
    done: subprocess.CompletedProcess[str] = zygote.run(
        ["ask", note, "--json", "--model", OMNI, "--voice-reply", str(target)],
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    req = dashscope_fake.last_request
    assert req.wants_speech and req.voice == CATALOG[OMNI].voices[0]
    sent = pcm_seconds(req.speech)
    assert sent == pytest.approx(1.8, abs=0.001)
    result = json.loads(done.stdout)
    assert result["text"] == "Here it is."
    assert result["voice_reply"] == {"path": str(target), "seconds": pytest.approx(sent)}
    assert decoded_seconds(target.read_bytes()) == pytest.approx(sent, abs=0.05)


def test_a_model_that_cannot_speak_writes_nothing(
    dashscope_fake: FakeDashScope, env: dict[str, str], note: str, tmp_path: Path
) -> None:
    target = tmp_path / "reply.ogg"
    done: subprocess.CompletedProcess[str] = zygote.run(
        ["ask", note, "--json", "--voice-reply", str(target)], env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["text"] and result["voice_reply"] is None
    assert not target.exists()
    assert not dashscope_fake.last_request.wants_speech
    plain = zygote.run(["ask", note, "--json"], env=env, cwd=tmp_path)
    assert plain.returncode == 0 and "voice_reply" not in json.loads(plain.stdout)
    missing = zygote.run(
        ["ask", note, "--voice-reply", str(tmp_path / "no" / "such" / "dir.ogg")],
        env=env,
        cwd=tmp_path,
    )
    assert missing.returncode == 2 and "no such directory" in missing.stderr


def test_a_text_model_is_voiced_by_tts(
    dashscope_fake: FakeDashScope, db_url: str, note: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.update(
        DATABASE_URL=db_url,
        DASHSCOPE_API_KEY=dashscope_fake.api_key,
        DASHSCOPE_BASE_URL=dashscope_fake.native_base_url,
        DASHSCOPE_MAX_RETRIES="0",
        LANG="C.UTF-8",
    )
    target = tmp_path / "reply.ogg"
    done: subprocess.CompletedProcess[str] = zygote.run(
        ["ask", note, "--json", "--voice-reply", str(target)], env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    tts = dashscope_fake.tts_requests
    # Plain text already: spoken as it is, in order.
    assert " ".join(t for r in tts for _, t in r.texts) == result["text"]
    spoken = sum(len(r.speech) for r in tts) / 48_000
    assert result["voice_reply"] == {"path": str(target), "seconds": pytest.approx(spoken)}
    assert decoded_seconds(target.read_bytes()) == pytest.approx(spoken, abs=0.05)
