"""The official SDKs parse the fake's answers: evidence that its wire format is faithful."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import dashscope
import openai
import pytest
from dashscope import MultiModalConversation

from tests.fakes.dashscope import FakeDashScope, StreamError


def data_url(audio: bytes, mime: str = "audio/wav") -> str:
    return f"data:{mime};base64,{base64.b64encode(audio).decode()}"


@pytest.fixture
def sdk_base(dashscope_fake: FakeDashScope, monkeypatch: pytest.MonkeyPatch) -> FakeDashScope:
    monkeypatch.setattr(dashscope, "base_http_api_url", dashscope_fake.native_base_url)
    return dashscope_fake


def ds_messages(audio: bytes) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": [{"text": "You are helpful."}]},
        {"role": "user", "content": [{"audio": data_url(audio)}, {"text": "what"}]},
    ]


def test_dashscope_sdk_non_streaming(sdk_base: FakeDashScope, wav_1s: bytes) -> None:
    resp = MultiModalConversation.call(
        api_key=sdk_base.api_key, model="qwen-audio-turbo-latest", messages=ds_messages(wav_1s)
    )
    assert resp.status_code == 200
    assert resp.output.choices[0].message.content == [
        {"text": "Heard 1 audio clip(s): 1.00 s. Prompt: “what”."}
    ]
    assert resp.output.choices[0].finish_reason == "stop"
    assert resp.usage["audio_tokens"] == 25
    assert resp.request_id


def test_dashscope_sdk_streaming(sdk_base: FakeDashScope, wav_1s: bytes) -> None:
    sdk_base.queue_reply(chunks=["欢迎", "使用"])
    responses = list(
        MultiModalConversation.call(
            api_key=sdk_base.api_key,
            model="qwen-audio-turbo-latest",
            messages=ds_messages(wav_1s),
            stream=True,
            incremental_output=True,
        )
    )
    assert all(r.status_code == 200 for r in responses)
    texts = [r.output.choices[0].message.content[0]["text"] for r in responses]
    assert "".join(texts) == "欢迎使用"
    assert [r.output.choices[0].finish_reason for r in responses] == ["null", "null", "stop"]
    req = sdk_base.last_request
    assert req.stream and req.headers["X-DashScope-SSE"] == "enable"
    assert "stream" not in req.body


def test_dashscope_sdk_sees_mid_stream_error(sdk_base: FakeDashScope, wav_1s: bytes) -> None:
    sdk_base.queue_reply(chunks=["par", "tial"], error=StreamError("DataInspectionFailed"))
    responses = list(
        MultiModalConversation.call(
            api_key=sdk_base.api_key,
            model="qwen-audio-turbo-latest",
            messages=ds_messages(wav_1s),
            stream=True,
            incremental_output=True,
        )
    )
    assert [r.status_code for r in responses] == [200, 200, 400]
    assert responses[-1].code == "DataInspectionFailed"
    assert responses[-1].message == "Output data may contain inappropriate content."


def test_dashscope_sdk_error_answers(sdk_base: FakeDashScope, wav_1s: bytes) -> None:
    bad_key = MultiModalConversation.call(
        api_key="sk-bad", model="qwen-audio-turbo-latest", messages=ds_messages(wav_1s)
    )
    assert (bad_key.status_code, bad_key.code) == (401, "InvalidApiKey")
    unknown = MultiModalConversation.call(
        api_key=sdk_base.api_key, model="qwen-nope", messages=ds_messages(wav_1s)
    )
    assert (unknown.status_code, unknown.code, unknown.message) == (
        400,
        "InvalidParameter",
        "Model not exist.",
    )


def oa_messages(audio: bytes) -> list[Any]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "input_audio", "input_audio": {"data": data_url(audio), "format": "wav"}},
            ],
        }
    ]


async def test_openai_sdk_streaming_with_usage(
    dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_reply(chunks=["Hello", " world"], language="en", emotion="happy")
    async with openai.AsyncOpenAI(
        api_key=dashscope_fake.api_key, base_url=dashscope_fake.compatible_base_url
    ) as client:
        stream = await client.chat.completions.create(
            model="qwen3-asr-flash",
            messages=oa_messages(wav_1s),
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"asr_options": {"enable_itn": False}},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello world"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 25
    assert dashscope_fake.last_request.body["asr_options"] == {"enable_itn": False}


async def test_openai_sdk_non_streaming(dashscope_fake: FakeDashScope, wav_1s: bytes) -> None:
    async with openai.AsyncOpenAI(
        api_key=dashscope_fake.api_key, base_url=dashscope_fake.compatible_base_url
    ) as client:
        done = await client.chat.completions.create(
            model="qwen-audio-turbo-latest", messages=oa_messages(wav_1s)
        )
    assert done.choices[0].message.content == "Heard 1 audio clip(s): 1.00 s."
    assert done.usage is not None and done.usage.total_tokens > 25


async def test_openai_sdk_raises_on_mid_stream_error(
    dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_reply(chunks=["par"], error=StreamError("DataInspectionFailed"))
    got: list[str] = []
    async with openai.AsyncOpenAI(
        api_key=dashscope_fake.api_key, base_url=dashscope_fake.compatible_base_url
    ) as client:
        stream = await client.chat.completions.create(
            model="qwen-audio-turbo-latest", messages=oa_messages(wav_1s), stream=True
        )

        async def drain() -> None:
            async for chunk in stream:
                if chunk.choices:
                    got.append(chunk.choices[0].delta.content or "")

        with pytest.raises(openai.APIError) as info:
            await drain()
    assert "".join(got) == "par"
    assert "inappropriate" in info.value.message


async def test_openai_sdk_error_shapes(dashscope_fake: FakeDashScope, wav_1s: bytes) -> None:
    async with openai.AsyncOpenAI(
        api_key="sk-bad", base_url=dashscope_fake.compatible_base_url, max_retries=0
    ) as bad:
        with pytest.raises(openai.AuthenticationError) as auth:
            await bad.chat.completions.create(model="qwen3-asr-flash", messages=oa_messages(wav_1s))
    assert auth.value.code == "invalid_api_key"
    async with openai.AsyncOpenAI(
        api_key=dashscope_fake.api_key, base_url=dashscope_fake.compatible_base_url, max_retries=0
    ) as client:
        with pytest.raises(openai.NotFoundError) as missing:
            await client.chat.completions.create(model="qwen-nope", messages=oa_messages(wav_1s))
    assert missing.value.code == "model_not_found"


async def test_sync_sdk_runs_beside_an_event_loop(sdk_base: FakeDashScope, wav_1s: bytes) -> None:
    # The fake has its own thread, so blocking SDK calls from async tests cannot deadlock.
    resp = await asyncio.to_thread(
        MultiModalConversation.call,
        api_key=sdk_base.api_key,
        model="qwen-audio-turbo-latest",
        messages=ds_messages(wav_1s),
    )
    assert resp.status_code == 200
