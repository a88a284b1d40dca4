"""Black-box acceptance tests: the real ``voicebot ask`` against a strict fake DashScope.

The fake (``dashscope_server.py``) is written only from the public protocol notes and the
seed documents, never from the project's own fake. Each test runs ``python -m bot ask`` as
a subprocess with a fresh SQLite database.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.config import Settings
from tests import zygote
from tests.acceptance.dashscope_server import (
    API_KEY,
    COMPAT_PATH,
    NATIVE_PATH,
    DashScopeFake,
    DashscopePlan,
    DashscopeRequest,
)
from tests.audio import synth

REPLY = "Hello from the fake DashScope."


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dashscope_server() -> Iterator[DashScopeFake]:
    fake = DashScopeFake()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def dashscope(dashscope_server: DashScopeFake) -> Iterator[DashScopeFake]:
    dashscope_server.reset()
    yield dashscope_server
    dashscope_server.reset()


@pytest.fixture(scope="session")
def dashscope_audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Short, 70 s and 10 min recordings, generated once per session."""
    d = tmp_path_factory.mktemp("dashscope_audio")
    files: dict[str, Path] = {}
    short = d / "voice.ogg"
    short.write_bytes(synth.encode(synth.speech_like(3.0), synth.FORMATS["voice.ogg"]))
    files["short"] = short
    second = d / "second.ogg"
    second.write_bytes(synth.encode(synth.speech_like(2.0, seed=5), synth.FORMATS["voice.ogg"]))
    files["second"] = second

    def pcm16(seconds: float, rate: int) -> bytes:
        x = synth.speech_like(seconds, rate=rate)[0]
        return synth.wav_bytes((x * 32767).astype(np.int16), rate=rate, width=2)

    long70 = d / "long70.wav"
    long70.write_bytes(pcm16(70.0, 16_000))
    files["long70"] = long70
    x = synth.speech_like(600.0, rate=8_000)[0]
    ten = d / "ten_minutes.wav"
    ten.write_bytes(
        synth.wav_bytes(((x * 127) + 128).clip(0, 255).astype(np.uint8), rate=8_000, width=1)
    )
    files["ten"] = ten
    png = d / "picture.ogg"
    png.write_bytes(synth.png_bytes())
    files["png"] = png
    return files


def dashscope_env(tmp_path: Path, fake: DashScopeFake, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'dashscope.db'}",
        DASHSCOPE_API_KEY=API_KEY,
        DASHSCOPE_BASE_URL=fake.base_url,
    )
    env.update(extra)
    return env


def ask(
    tmp_path: Path, fake: DashScopeFake, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    # Forked from the warm interpreter of tests.zygote: a real process, without paying the
    # imports again (the streaming test below launches cold).
    result = zygote.run(["ask", *args], env=dashscope_env(tmp_path, fake, **env), cwd=tmp_path)
    assert API_KEY not in result.stdout + result.stderr
    return result


def ask_json(tmp_path: Path, fake: DashScopeFake, *args: str, **env: str) -> dict[str, Any]:
    result = ask(tmp_path, fake, *args, "--json", **env)
    assert result.returncode == 0, result.stderr
    obj = json.loads(result.stdout)
    assert isinstance(obj, dict)
    return obj


def native(fake: DashScopeFake) -> list[DashscopeRequest]:
    assert not fake.violations, fake.violations
    reqs = [r for r in fake.requests if r.path == NATIVE_PATH]
    for r in reqs:
        assert r.headers.get("X-DashScope-SSE") == "enable"
        assert "stream" not in r.body
        assert r.body["parameters"]["result_format"] == "message"
        assert r.body["parameters"]["incremental_output"] is True
    return reqs


def messages(req: DashscopeRequest) -> list[dict[str, Any]]:
    msgs = req.body["input"]["messages"]
    assert isinstance(msgs, list)
    return msgs


def non_system(req: DashscopeRequest) -> list[dict[str, Any]]:
    return [m for m in messages(req) if m["role"] != "system"]


def keys(message: dict[str, Any]) -> list[str]:
    return [next(iter(item)) for item in message["content"]]


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert len(lines[0]) <= 300
    assert "Traceback" not in result.stderr


# --- voice chat -----------------------------------------------------------------------


def test_dashscope_voice_chat_streams_partial_output_before_the_end(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    gate = threading.Event()
    dashscope.plans.append(DashscopePlan(chunks=("First words. ", "Then the rest."), gate=gate))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "ask", str(dashscope_audio["short"])],
        env=dashscope_env(tmp_path, dashscope),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        seen = b""
        while b"First words." not in seen:
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, f"no partial output; got {seen!r}"
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, f"stdout closed early; got {seen!r}"
            seen += chunk
        # The first delta is on stdout while the stream is still held open.
        assert not dashscope.stream_finished.is_set()
        assert b"Then the rest." not in seen
        gate.set()
        out, err = proc.communicate(timeout=60)
    finally:
        gate.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stdout = (seen + out).decode()
    assert proc.returncode == 0, err.decode()
    assert "First words. Then the rest." in stdout
    assert API_KEY not in stdout + err.decode()

    (req,) = native(dashscope)
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    assert req.body["model"] == "qwen-audio-turbo-latest"
    (user,) = non_system(req)
    assert user["role"] == "user"
    assert keys(user) == ["audio"]
    assert user["content"][0]["audio"].startswith("data:")
    assert 2.5 < req.audio_seconds[0] < 3.5


def test_dashscope_frames_split_mid_character_and_text_in_the_last_event(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    # TCP may cut a frame anywhere, even inside a UTF-8 character; the "stop" event may
    # carry text of its own.
    dashscope.plans.append(
        DashscopePlan(chunks=("你好，", "世界。"), final_text="结束😀", piece_bytes=5)
    )
    result = ask(tmp_path, dashscope, str(dashscope_audio["short"]))
    assert result.returncode == 0, result.stderr
    assert "你好，世界。结束😀" in result.stdout
    dashscope.plans.append(DashscopePlan(chunks=("cut ", "off"), finish_reason="length"))
    obj = ask_json(tmp_path, dashscope, str(dashscope_audio["short"]))
    assert obj["text"] == "cut off"


def test_dashscope_prompt_goes_with_the_audio_in_one_message(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    # LOG_LEVEL=DEBUG too: even debug logs never show the API key (ask() checks).
    result = ask(
        tmp_path,
        dashscope,
        str(dashscope_audio["short"]),
        "--prompt",
        "Summarise it",
        LOG_LEVEL="DEBUG",
    )
    assert result.returncode == 0, result.stderr
    assert REPLY in result.stdout
    (req,) = native(dashscope)
    (user,) = non_system(req)
    assert sorted(keys(user)) == ["audio", "text"]
    texts = [i["text"] for i in user["content"] if "text" in i]
    assert texts == ["Summarise it"]


def test_dashscope_model_without_voice_chat_gets_an_instruction(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    # qwen-audio-turbo does not answer audio alone: the request carries a text instruction.
    obj = ask_json(
        tmp_path, dashscope, str(dashscope_audio["short"]), "--model", "qwen-audio-turbo"
    )
    assert obj["model"] == "qwen-audio-turbo"
    (req,) = native(dashscope)
    (user,) = non_system(req)
    assert sorted(keys(user)) == ["audio", "text"]


def test_dashscope_json_output_fields(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    obj = ask_json(tmp_path, dashscope, str(dashscope_audio["short"]))
    assert obj["text"] == REPLY
    assert obj["model"] == "qwen-audio-turbo-latest"
    assert isinstance(obj["usage"], dict)
    assert obj["usage"]["output_tokens"] == 5
    assert obj["usage"]["audio_tokens"] == 75
    usage = obj["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert isinstance(obj["audio_seconds_sent"], int | float)
    assert 2.5 < obj["audio_seconds_sent"] < 3.5
    assert isinstance(obj["conversation"], str) and obj["conversation"]
    (req,) = native(dashscope)
    assert obj["audio_seconds_sent"] == pytest.approx(sum(req.audio_seconds), abs=0.2)


def test_dashscope_conversation_resends_history_in_order(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    dashscope.plans.append(DashscopePlan(chunks=("The first ", "answer.")))
    first = ask_json(tmp_path, dashscope, str(dashscope_audio["short"]))
    assert first["text"] == "The first answer."
    second = ask_json(
        tmp_path, dashscope, str(dashscope_audio["second"]), "--conversation", first["conversation"]
    )
    assert second["conversation"] == first["conversation"]
    assert second["text"] == REPLY
    r1, r2 = native(dashscope)
    msgs = messages(r2)
    if msgs[0]["role"] == "system":
        assert messages(r1)[0] == msgs[0]
    assert all(m["role"] != "system" for m in msgs[1:])
    convo = non_system(r2)
    assert [m["role"] for m in convo] == ["user", "assistant", "user"]
    assert keys(convo[0]) == ["audio"]
    assert convo[1]["content"] == [{"text": "The first answer."}]
    assert keys(convo[2]) == ["audio"]
    # The history re-sends the first turn's audio; the current clip comes last.
    assert r2.audio_seconds[0] == pytest.approx(r1.audio_seconds[0], abs=0.1)
    assert 1.5 < r2.audio_seconds[1] < 2.5


# --- other models ---------------------------------------------------------------------


def test_dashscope_asr_single_clip_no_history(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    first = ask_json(tmp_path, dashscope, str(dashscope_audio["short"]))
    dashscope.plans.append(DashscopePlan(chunks=("transcribed ", "words")))
    obj = ask_json(
        tmp_path,
        dashscope,
        str(dashscope_audio["long70"]),
        "--model",
        "qwen3-asr-flash",
        "--conversation",
        first["conversation"],
    )
    assert obj["model"] == "qwen3-asr-flash"
    assert "transcribed words" in obj["text"]
    chat, asr = native(dashscope)
    assert "asr_options" not in chat.body["parameters"]
    assert asr.body["model"] == "qwen3-asr-flash"
    (user,) = non_system(asr)  # no history for a transcription model
    assert keys(user) == ["audio"]
    # One clip, not cut into 30 s pieces (qwen3-asr-flash takes up to 5 minutes).
    (seconds,) = asr.audio_seconds
    assert seconds == pytest.approx(70.0, abs=1.0)
    options = asr.body["parameters"].get("asr_options")
    assert options is None or isinstance(options, dict)


def test_dashscope_captioner_single_turn_without_text(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    first = ask_json(tmp_path, dashscope, str(dashscope_audio["short"]))
    obj = ask_json(
        tmp_path,
        dashscope,
        str(dashscope_audio["second"]),
        "--model",
        "qwen3-omni-30b-a3b-captioner",
        "--conversation",
        first["conversation"],
    )
    assert obj["model"] == "qwen3-omni-30b-a3b-captioner"
    assert obj["text"] == REPLY
    _, cap = native(dashscope)
    assert [m["role"] for m in messages(cap)] == ["user"]
    assert keys(messages(cap)[0]) == ["audio"]

    # With a prompt: either refused before any request, or the prompt is not sent.
    before = len(dashscope.requests)
    result = ask(
        tmp_path,
        dashscope,
        str(dashscope_audio["second"]),
        "--model",
        "qwen3-omni-30b-a3b-captioner",
        "--prompt",
        "what is it",
    )
    if result.returncode != 0:
        assert len(dashscope.requests) == before
        assert result.stderr.strip()
    else:
        last = native(dashscope)[-1]
        assert [keys(m) for m in messages(last)] == [["audio"]]


def test_dashscope_70_seconds_is_cut_into_30_second_items(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    obj = ask_json(tmp_path, dashscope, str(dashscope_audio["long70"]))
    (req,) = native(dashscope)
    (user,) = non_system(req)
    assert set(keys(user)) == {"audio"}
    assert len(req.audio_seconds) >= 3
    assert all(s <= 30.1 for s in req.audio_seconds), req.audio_seconds
    assert sum(req.audio_seconds) == pytest.approx(70.0, abs=1.0)
    assert obj["audio_seconds_sent"] == pytest.approx(sum(req.audio_seconds), abs=0.5)


def test_dashscope_ten_minutes_never_over_the_input_limit(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    result = ask(tmp_path, dashscope, str(dashscope_audio["ten"]))
    assert result.returncode == 0, result.stderr
    (req,) = native(dashscope)  # the fake answers 400 over 6,144 input tokens
    assert req.answered == 200
    sent = sum(req.audio_seconds)
    assert 60.0 < sent < 600.0
    assert all(s <= 30.1 for s in req.audio_seconds)
    # Besides the reply, the output says how much of the recording was listened to.
    rest = result.stdout.replace(REPLY, "")
    assert any(ch.isdigit() for ch in rest), result.stdout

    dashscope.reset()
    obj = ask_json(tmp_path, dashscope, str(dashscope_audio["ten"]))
    (req,) = native(dashscope)
    assert obj["audio_seconds_sent"] == pytest.approx(sum(req.audio_seconds), abs=0.5)
    assert obj["audio_seconds_sent"] < 600.0


def test_dashscope_captioner_takes_ten_minutes_as_one_clip(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    # One clip under 10 MB as base64 (the fake refuses more), not cut into pieces.
    obj = ask_json(
        tmp_path, dashscope, str(dashscope_audio["ten"]), "--model", "qwen3-omni-30b-a3b-captioner"
    )
    (req,) = native(dashscope)
    (seconds,) = req.audio_seconds
    assert seconds == pytest.approx(600.0, abs=1.0)
    assert obj["audio_seconds_sent"] == pytest.approx(600.0, abs=1.0)


# --- errors ---------------------------------------------------------------------------


def test_dashscope_invalid_api_key(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    result = ask(
        tmp_path,
        dashscope,
        str(dashscope_audio["short"]),
        "--json",
        DASHSCOPE_API_KEY="sk-wrong-key-0000",
        LOG_LEVEL="DEBUG",
    )
    assert result.returncode != 0
    assert result.stdout.strip() == ""
    assert "sk-wrong-key-0000" not in result.stdout + result.stderr
    assert len(dashscope.requests) == 1  # an invalid key is not retried
    assert dashscope.requests[0].answered == 401
    plain = ask(tmp_path, dashscope, str(dashscope_audio["short"]), DASHSCOPE_API_KEY="sk-wrong")
    assert_one_line_error(plain)
    assert "sk-wrong" not in plain.stderr


@pytest.mark.parametrize("sse_framed", [False, True])
def test_dashscope_rate_limit_is_retried_then_succeeds(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path], sse_framed: bool
) -> None:
    msg = "Requests rate limit exceeded, please try again later."
    dashscope.plans.extend(
        [
            DashscopePlan(
                kind="error",
                status=429,
                code="Throttling.RateQuota",
                message=msg,
                sse_framed=sse_framed,
            ),
            DashscopePlan(
                kind="error",
                status=429,
                code="Throttling.RateQuota",
                message=msg,
                retry_after="1",
                sse_framed=sse_framed,
            ),
        ]
    )
    obj = ask_json(tmp_path, dashscope, str(dashscope_audio["short"]))
    assert obj["text"] == REPLY
    assert [r.answered for r in native(dashscope)] == [429, 429, 200]


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (400, "DataInspectionFailed", "Input or output data may contain inappropriate content."),
        (400, "Arrearage", "Access denied, plesase make sure your account is in good standing."),
        (403, "AllocationQuota.FreeTierOnly", "The free tier of the model has been exhausted."),
    ],
)
def test_dashscope_client_errors_are_not_retried(
    tmp_path: Path,
    dashscope: DashScopeFake,
    dashscope_audio: dict[str, Path],
    status: int,
    code: str,
    message: str,
) -> None:
    dashscope.default = DashscopePlan(kind="error", status=status, code=code, message=message)
    result = ask(tmp_path, dashscope, str(dashscope_audio["short"]), "--json")
    assert_one_line_error(result)
    assert result.stdout.strip() == ""
    assert [r.answered for r in dashscope.requests] == [status]  # served once, not retried


def test_dashscope_midstream_error_event(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    dashscope.default = DashscopePlan(
        kind="midstream_error",
        chunks=("Partial ", "answer "),
        status=400,
        code="DataInspectionFailed",
        message="Output data may contain inappropriate content.",
    )
    result = ask(tmp_path, dashscope, str(dashscope_audio["short"]), "--json")
    assert_one_line_error(result)
    assert result.stdout.strip() == ""  # no partial garbage in --json mode
    assert len(dashscope.requests) == 1  # text already streamed: not sent again
    # The error event was served: the stream ended, never with its final event.
    assert dashscope.stream_finished.is_set() and dashscope.requests[0].finished_at is None


def test_dashscope_connection_dropped_midstream(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    dashscope.default = DashscopePlan(kind="drop", chunks=("Partial ", "answer "))
    result = ask(tmp_path, dashscope, str(dashscope_audio["short"]), "--json")
    assert_one_line_error(result)
    assert result.stdout.strip() == ""
    # The connection was cut: no stream was ever finished.
    assert dashscope.stream_finished.is_set()
    assert dashscope.requests and all(r.finished_at is None for r in dashscope.requests)


def test_dashscope_internal_error(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    # Retry-After: 0 keeps the product's retries (if any) quick; they all fail.
    dashscope.default = DashscopePlan(
        kind="error",
        status=500,
        code="InternalError",
        message="An internal error occurred.",
        retry_after="0",
    )
    result = ask(tmp_path, dashscope, str(dashscope_audio["short"]), "--json")
    assert_one_line_error(result)
    assert result.stdout.strip() == ""
    assert dashscope.requests and all(r.answered == 500 for r in dashscope.requests)


def test_dashscope_unknown_model_sends_nothing(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    result = ask(tmp_path, dashscope, str(dashscope_audio["short"]), "--model", "qwen-nonexistent")
    assert_one_line_error(result)
    assert "qwen-nonexistent" in result.stderr
    assert dashscope.requests == []
    missing = ask(tmp_path, dashscope, str(dashscope_audio["short"]), "--conversation", "999")
    assert_one_line_error(missing)
    assert dashscope.requests == []


def test_dashscope_non_audio_file_sends_nothing(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    result = ask(tmp_path, dashscope, str(dashscope_audio["png"]), "--json")
    assert_one_line_error(result)
    assert result.stdout.strip() == ""
    assert dashscope.requests == []
    nokey = ask(tmp_path, dashscope, str(dashscope_audio["short"]), DASHSCOPE_API_KEY="")
    assert_one_line_error(nokey)
    assert "DASHSCOPE_API_KEY" in nokey.stderr
    assert dashscope.requests == []


# --- OpenAI-compatible protocol -------------------------------------------------------


def test_dashscope_openai_compatible_end_to_end(
    tmp_path: Path, dashscope: DashScopeFake, dashscope_audio: dict[str, Path]
) -> None:
    dashscope.plans.append(
        DashscopePlan(kind="error", status=429, code="Throttling.RateQuota", message="slow down")
    )
    obj = ask_json(
        tmp_path,
        dashscope,
        str(dashscope_audio["short"]),
        "--prompt",
        "Summarise it",
        DASHSCOPE_PROTOCOL="openai",
    )
    assert not dashscope.violations, dashscope.violations
    assert obj["text"] == REPLY
    assert obj["usage"]["output_tokens"] == 5
    assert obj["usage"]["audio_tokens"] == 75
    throttled, req = dashscope.requests
    assert throttled.answered == 429
    assert req.path == COMPAT_PATH
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    assert req.body["stream"] is True
    assert req.body["stream_options"] == {"include_usage": True}
    user = [m for m in req.body["messages"] if m["role"] == "user"]
    assert len(user) == 1
    types = sorted(p["type"] for p in user[0]["content"])
    assert types == ["input_audio", "text"]
    audio = next(p for p in user[0]["content"] if p["type"] == "input_audio")
    assert audio["input_audio"]["data"].startswith("data:")

    # History in compatible mode: the first turn's audio and reply, then this turn.
    again = ask_json(
        tmp_path,
        dashscope,
        str(dashscope_audio["second"]),
        "--conversation",
        obj["conversation"],
        DASHSCOPE_PROTOCOL="openai",
    )
    assert again["conversation"] == obj["conversation"]
    follow = dashscope.requests[-1]
    convo = [m for m in follow.body["messages"] if m["role"] != "system"]
    assert [m["role"] for m in convo] == ["user", "assistant", "user"]
    reply = convo[1]["content"]
    assert (reply if isinstance(reply, str) else reply[0]["text"]) == REPLY
    assert len(follow.audio_seconds) == 2

    result = ask(
        tmp_path,
        dashscope,
        str(dashscope_audio["short"]),
        DASHSCOPE_PROTOCOL="openai",
        DASHSCOPE_API_KEY="sk-bad-compat",
    )
    assert_one_line_error(result)
    assert "sk-bad-compat" not in result.stderr
