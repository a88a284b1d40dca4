"""The Qwen TTS client (bot.llm.tts) against the fake DashScope over HTTP, and the official
``dashscope`` SDK's TTS call against the same fake (evidence its wire format is faithful).
"""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import AsyncIterator, Callable
from typing import Any

import dashscope
import pytest
from dashscope import MultiModalConversation

from bot import errors
from bot.catalog import TTS_CATALOG
from bot.config import Settings
from bot.errors import ConfigError
from bot.llm.tts import DashScopeTTS
from tests.fakes.dashscope import (
    TTS_SECONDS_PER_CHAR,
    Fail,
    FakeDashScope,
    TtsReply,
    speech_tone,
)

MODEL = "qwen3-tts-flash"
TtsFactory = Callable[..., DashScopeTTS]


@pytest.fixture
async def make_tts(dashscope_fake: FakeDashScope) -> AsyncIterator[TtsFactory]:
    made: list[DashScopeTTS] = []

    def factory(**overrides: Any) -> DashScopeTTS:
        kwargs: dict[str, Any] = {
            "api_key": dashscope_fake.api_key,
            "base_url": dashscope_fake.native_base_url,
            "connect_timeout": 2.0,
            "first_byte_timeout": 2.0,
            "idle_timeout": 2.0,
            "max_retries": 2,
            "backoff_base": 0.01,
            "backoff_max": 0.02,
        }
        kwargs.update(overrides)
        client = DashScopeTTS(**kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


async def speak(client: DashScopeTTS, text: str, voice: str = "Cherry", **kw: Any) -> bytes:
    out = b""
    async for pcm in client.synthesize(model=MODEL, text=text, voice=voice, **kw):
        assert pcm, "never an empty chunk"
        out += pcm
    return out


def test_the_catalog_keeps_tts_apart_from_chat_models() -> None:
    spec = TTS_CATALOG[MODEL]
    assert spec.max_chars == 600 and spec.sample_rate == 24_000 and "Cherry" in spec.voices
    settings = Settings.load()
    assert settings.TTS_MODEL == MODEL
    assert MODEL not in settings.ALLOWED_MODELS, "a TTS model is never a chat's model"
    with pytest.raises(ConfigError, match="ALLOWED_MODELS"):
        Settings.load(ALLOWED_MODELS=MODEL)
    with pytest.raises(ConfigError, match="unknown TTS model"):
        Settings.load(TTS_MODEL="qwen-tts")
    assert Settings.load(TTS_MODEL="off").tts_model is None
    assert Settings.load().tts_model == MODEL


async def test_streams_the_pcm_the_service_sent(
    make_tts: TtsFactory, dashscope_fake: FakeDashScope
) -> None:
    dashscope_fake.queue_tts(TtsReply(seconds=1.3, chunk_seconds=0.25))
    pcm = await speak(make_tts(), "Hello there.", language="en")
    [req] = dashscope_fake.tts_requests
    assert pcm == req.speech == speech_tone(1.3)
    assert req.stream and req.headers["X-DashScope-SSE"] == "enable"
    assert req.body == {
        "model": MODEL,
        "input": {"text": "Hello there.", "voice": "Cherry", "language_type": "English"},
    }


async def test_a_url_answer_is_fetched_without_the_key(
    make_tts: TtsFactory, dashscope_fake: FakeDashScope
) -> None:
    dashscope_fake.queue_tts(TtsReply(seconds=0.8, url_only=True))
    pcm = await speak(make_tts(), "Hi.")
    assert pcm == speech_tone(0.8)
    [req] = dashscope_fake.tts_requests
    assert req.headers["Authorization"] == f"Bearer {dashscope_fake.api_key}"
    [download] = dashscope_fake.downloads
    assert "Authorization" not in download.headers, "the key goes to the DashScope API only"
    assert all(dashscope_fake.api_key not in v for v in download.headers.values())


async def test_errors_map_into_the_model_error_tree(
    make_tts: TtsFactory, dashscope_fake: FakeDashScope
) -> None:
    client = make_tts()
    with pytest.raises(errors.ModelBadRequest):
        await speak(client, "Hi.", voice="Nobody")
    with pytest.raises(errors.ModelAuthError):
        await speak(make_tts(api_key="sk-wrong"), "Hi.")
    dashscope_fake.queue_tts(Fail(status=403, code="AllocationQuota.FreeTierOnly"))
    with pytest.raises(errors.ModelAccessDenied):
        await speak(client, "Hi.")
    dashscope_fake.queue_tts(TtsReply(seconds=2.0, chunk_seconds=0.2, drop=True))
    with pytest.raises(errors.ModelConnectionLost):
        await speak(client, "Hi.")


async def test_more_than_600_characters_are_refused_before_the_network(
    make_tts: TtsFactory, dashscope_fake: FakeDashScope
) -> None:
    with pytest.raises(errors.ModelBadRequest) as err:
        await speak(make_tts(), "x" * 601)
    assert err.value.code == "TextTooLong" and dashscope_fake.tts_requests == []
    # (The fake refuses it like the service: test_dashscope_sdk_sees_the_600_…)
    assert len(await speak(make_tts(), "y" * 600)) > 0


async def test_rate_limits_and_5xx_are_retried_before_the_first_byte(
    make_tts: TtsFactory, dashscope_fake: FakeDashScope
) -> None:
    dashscope_fake.queue_tts(
        Fail(status=429, code="Throttling.RateQuota", headers={"Retry-After": "0"}),
        Fail(status=500, code="InternalError"),
        TtsReply(seconds=0.5),
    )
    assert await speak(make_tts(), "Hi.") == speech_tone(0.5)
    assert [r.status for r in dashscope_fake.tts_requests] == [429, 500, 200]


# --- the official SDK ----------------------------------------------------------------------


@pytest.fixture
def sdk_base(dashscope_fake: FakeDashScope, monkeypatch: pytest.MonkeyPatch) -> FakeDashScope:
    monkeypatch.setattr(dashscope, "base_http_api_url", dashscope_fake.native_base_url)
    return dashscope_fake


def test_dashscope_sdk_tts_non_streaming_gets_a_url_to_a_wav(sdk_base: FakeDashScope) -> None:
    import httpx

    resp = MultiModalConversation.call(
        api_key=sdk_base.api_key, model=MODEL, text="Hello there.", voice="Cherry"
    )
    assert resp.status_code == 200
    audio = resp.output.audio
    assert audio.url and audio.expires_at and resp.output.finish_reason == "stop"
    assert resp.usage["characters"] == len("Hello there.")
    wav = httpx.get(audio.url).content
    with wave.open(io.BytesIO(wav)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24_000, 1, 2)
        seconds = w.getnframes() / 24_000
    assert seconds == pytest.approx(TTS_SECONDS_PER_CHAR * len("Hello there."), abs=0.001)


def test_dashscope_sdk_tts_streaming_gets_base64_pcm(sdk_base: FakeDashScope) -> None:
    sdk_base.queue_tts(TtsReply(seconds=0.9, chunk_seconds=0.3))
    responses = list(
        MultiModalConversation.call(
            api_key=sdk_base.api_key,
            model=MODEL,
            text="你好。",
            voice="Ethan",
            language_type="Chinese",
            stream=True,
        )
    )
    assert all(r.status_code == 200 for r in responses)
    pcm = b"".join(base64.b64decode(r.output.audio.data or "") for r in responses)
    assert pcm == speech_tone(0.9)
    assert responses[-1].output.finish_reason == "stop"
    assert sdk_base.last_request.body["input"] == {
        "text": "你好。",
        "voice": "Ethan",
        "language_type": "Chinese",
    }


def test_dashscope_sdk_sees_the_600_character_refusal(sdk_base: FakeDashScope) -> None:
    resp = MultiModalConversation.call(
        api_key=sdk_base.api_key, model=MODEL, text="x" * 601, voice="Cherry"
    )
    assert resp.status_code == 400 and resp.code == "InvalidParameter"
