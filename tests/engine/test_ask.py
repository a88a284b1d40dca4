"""``voicebot ask`` and ``voicebot conversations``: the real CLI in a subprocess against the
fake DashScope server (the rest of named conversations: test_conversation_names.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from bot import texts
from bot.config import Settings
from tests import zygote
from tests.engine.conftest import voice
from tests.fakes.dashscope import FakeDashScope


@pytest.fixture
def run(dashscope_fake: FakeDashScope, db_url: str, tmp_path: Path) -> object:
    # The terminal's language decides the CLI's (bot.i18n): English unless a test says.
    locale = ("LC_ALL", "LC_MESSAGES", "LANG")
    env = {
        k: v for k, v in os.environ.items() if k not in Settings.model_fields and k not in locale
    }
    env.update(
        DATABASE_URL=db_url,
        DASHSCOPE_API_KEY=dashscope_fake.api_key,
        DASHSCOPE_BASE_URL=dashscope_fake.native_base_url,
        DASHSCOPE_MAX_RETRIES="0",
    )

    def voicebot(
        *args: str, command: str = "ask", lang: str = "C.UTF-8"
    ) -> subprocess.CompletedProcess[str]:
        return zygote.run([command, *args], env={**env, "LANG": lang}, cwd=tmp_path)

    return voicebot


@pytest.fixture
def note(tmp_path: Path) -> str:
    path = tmp_path / "note.ogg"
    path.write_bytes(voice(3.0))
    return str(path)


def test_ask_names_a_conversation_continues_it_and_lists_it(
    run: object, note: str, dashscope_fake: FakeDashScope
) -> None:
    first = run(note, "--json", "--conversation", "standup")  # type: ignore[operator]
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["text"] == "Heard 1 audio clip(s): 3.00 s."
    assert result["model"] == "qwen-audio-turbo-latest"
    assert result["usage"]["audio_tokens"] == 75
    assert result["audio_seconds_sent"] == pytest.approx(3.0, abs=0.05)
    assert result["conversation"] == "standup" and isinstance(result["conversation_id"], int)
    assert "continue with" not in first.stderr  # --json: the object says it all

    # The name continues it: the stored history is replayed (audio included). The reply
    # alone is on stdout; how to go on is the last line on stderr.
    second = run(note, "--prompt", "what did I say?", "--conversation", "standup")  # type: ignore[operator]
    assert second.returncode == 0, second.stderr
    reply = dashscope_fake.last_request
    assert reply.roles == ["user", "assistant", "user"]
    assert [round(a.duration or 0) for a in reply.audio] == [3, 3]
    assert reply.texts[-1] == ("user", "what did I say?")
    assert second.stdout == (
        "Heard 1 audio clip(s): 3.00 s. Prompt: “what did I say?”. History: 1 earlier repl(ies).\n"
    )
    assert second.stderr.strip().splitlines()[-1] == "continue with --conversation standup"

    # Without --conversation every call starts afresh, and names its id to continue by.
    third = run(note, "--model", "qwen3-asr-flash")  # type: ignore[operator]
    assert third.returncode == 0, third.stderr
    assert dashscope_fake.last_request.roles == ["user"]
    assert dashscope_fake.last_request.model == "qwen3-asr-flash"
    hint = third.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"continue with --conversation \d+", hint), hint
    fresh = hint.rsplit(" ", 1)[1]

    listed = run(command="conversations")  # type: ignore[operator]
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "TURNS", "LAST", "ACTIVITY"]
    assert [row.split()[:3] for row in rows] == [
        [fresh, "-", "1"],
        [str(result["conversation_id"]), "standup", "2"],
    ]


def test_ask_errors_go_to_stderr_with_a_non_zero_exit(
    run: object, note: str, tmp_path: Path, dashscope_fake: FakeDashScope
) -> None:
    missing = run(str(tmp_path / "nope.ogg"))  # type: ignore[operator]
    assert missing.returncode == 2 and "no such file" in missing.stderr

    unknown = run(note, "--model", "gpt-4o")  # type: ignore[operator]
    assert unknown.returncode == 2 and "gpt-4o" in unknown.stderr

    no_conv = run(note, "--conversation", "999")  # type: ignore[operator]
    assert no_conv.returncode == 2
    assert no_conv.stderr.strip().splitlines()[-1] == (
        f"voicebot: {texts.CONVERSATION_ID_NOT_FOUND.format(id=999)}"
    )

    dashscope_fake.queue_error(429, "Throttling.RateQuota")
    busy = run(note)  # type: ignore[operator]
    assert busy.returncode == 1 and busy.stdout == ""
    assert busy.stderr.strip().splitlines()[-1] == f"voicebot: {texts.MODEL_RATE_LIMITED}"

    junk = tmp_path / "notes.txt"
    junk.write_text("not audio at all " * 50)
    bad = run(str(junk))  # type: ignore[operator]
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1] == f"voicebot: {texts.NOT_AUDIO}"


# The language is the same on every database: one run, on SQLite (a subprocess is costly).
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_ask_speaks_the_terminals_language(
    run: object, note: str, dashscope_fake: FakeDashScope
) -> None:
    dashscope_fake.queue_error(429, "Throttling.RateQuota")
    busy = run(note, lang="zh_CN.UTF-8")  # type: ignore[operator]
    assert busy.returncode == 1 and busy.stdout == ""
    assert busy.stderr.strip().splitlines()[-1] == "voicebot: 模型现在有点忙，请过一分钟再试。"


def test_ask_with_an_omni_model_answers_over_the_compatible_endpoint(
    run: object, note: str, dashscope_fake: FakeDashScope
) -> None:
    # DASHSCOPE_PROTOCOL is native (the default): Qwen-Omni goes compatible all the same.
    done = run(note, "--json", "--model", "qwen3-omni-flash")  # type: ignore[operator]
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["text"] == "Heard 1 audio clip(s): 3.00 s."
    assert result["model"] == "qwen3-omni-flash"
    assert result["usage"]["audio_tokens"] == 38  # 3 s at 12.5 tokens/s, rounded up
    assert result["usage"]["audio_output_tokens"] is None  # text only: no speech asked for
    req = dashscope_fake.last_request
    assert req.protocol == "openai" and req.body["stream"] is True
    assert "modalities" not in req.body


def test_ask_refuses_a_retired_model(run: object, note: str) -> None:
    refused = run(note, "--model", "qwen-audio-asr")  # type: ignore[operator]
    assert refused.returncode != 0
    assert "DashScope has retired “qwen-audio-asr”" in refused.stderr
