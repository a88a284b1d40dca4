"""``voicebot ask --voice-reply PATH``: the spoken reply written as OGG/Opus, and ``--json``
saying where and how long.

The speaking model is the stopgap of :mod:`tests.voice.speaking`, so the speaking case runs
``bot.ask.ask`` in-process (its core built by the real ``build_core``, then made to
speak); the flag itself is also run through the real CLI in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

import bot.bootstrap
from bot.ask import ask
from bot.config import Settings
from bot.core import Core
from bot.storage.database import Database
from tests import zygote
from tests.engine.conftest import make_settings, voice
from tests.fakes.dashscope import FakeDashScope
from tests.voice.speaking import decoded_seconds, speak, speaking_model


@pytest.fixture
def note(tmp_path: Path) -> str:
    path = tmp_path / "note.ogg"
    path.write_bytes(voice(2.0))
    return str(path)


async def test_the_spoken_reply_is_written_to_the_path(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    dashscope_fake: FakeDashScope,
    db: Database,
    note: str,
    tmp_path: Path,
) -> None:
    speaking_model(monkeypatch)
    real_build = bot.bootstrap.build_core

    async def speaking_core(settings: Settings, **kw: Any) -> Core:
        core = await real_build(settings, **kw)
        speak(core.engine, seconds=1.8)
        return core

    monkeypatch.setattr(bot.bootstrap, "build_core", speaking_core)
    target = tmp_path / "reply.ogg"
    settings = make_settings(dashscope_fake, db)
    code = await ask(
        settings,
        file=note,
        prompt=None,
        model=None,
        conversation=None,
        as_json=True,
        voice_reply=str(target),
    )
    assert code == 0
    # In-process, the test's log lines share stdout: the JSON object is the last line.
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["voice_reply"] == {"path": str(target), "seconds": pytest.approx(1.8)}
    assert decoded_seconds(target.read_bytes()) == pytest.approx(1.8, abs=0.05)


def test_a_model_that_cannot_speak_writes_nothing(
    dashscope_fake: FakeDashScope, db_url: str, note: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.update(
        DATABASE_URL=db_url,
        DASHSCOPE_API_KEY=dashscope_fake.api_key,
        DASHSCOPE_BASE_URL=dashscope_fake.native_base_url,
        DASHSCOPE_MAX_RETRIES="0",
        LANG="C.UTF-8",
        TTS_MODEL="off",  # no text-to-speech either (test_a_text_model_is_voiced_by_tts)
    )
    target = tmp_path / "reply.ogg"
    done: subprocess.CompletedProcess[str] = zygote.run(
        ["ask", note, "--json", "--voice-reply", str(target)], env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["text"] and result["voice_reply"] is None
    assert not target.exists()
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
