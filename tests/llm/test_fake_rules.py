"""The fake's per-model rules (what the real service would refuse), over raw HTTP."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.fakes.audio import sine_wav
from tests.fakes.dashscope import FakeDashScope


def audio_item(data: bytes) -> dict[str, str]:
    return {"audio": "data:audio/wav;base64," + base64.b64encode(data).decode()}


async def post_native(
    fake: FakeDashScope, model: str, messages: list[dict[str, Any]]
) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            fake.native_base_url + "/services/aigc/multimodal-generation/generation",
            json={"model": model, "input": {"messages": messages}, "parameters": {}},
            headers={"Authorization": f"Bearer {fake.api_key}"},
        )


async def test_not_decodable_audio(dashscope_fake: FakeDashScope) -> None:
    resp = await post_native(
        dashscope_fake,
        "qwen-audio-turbo-latest",
        [{"role": "user", "content": [audio_item(b"this is not audio at all" * 10)]}],
    )
    assert resp.status_code == 400
    assert resp.json()["code"] == "InvalidParameter"
    assert resp.json()["request_id"]


async def test_captioner_refuses_text(dashscope_fake: FakeDashScope, wav_1s: bytes) -> None:
    resp = await post_native(
        dashscope_fake,
        "qwen3-omni-30b-a3b-captioner",
        [{"role": "user", "content": [audio_item(wav_1s), {"text": "describe"}]}],
    )
    assert resp.status_code == 400
    assert "text" in resp.json()["message"]


async def test_single_turn_model_refuses_history(
    dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    resp = await post_native(
        dashscope_fake,
        "qwen3-asr-flash",
        [
            {"role": "user", "content": [audio_item(wav_1s)]},
            {"role": "assistant", "content": [{"text": "hello"}]},
            {"role": "user", "content": [audio_item(wav_1s)]},
        ],
    )
    assert resp.status_code == 400
    assert resp.json()["code"] == "InvalidParameter"


async def test_asr_needs_audio(dashscope_fake: FakeDashScope) -> None:
    resp = await post_native(
        dashscope_fake, "qwen3-asr-flash", [{"role": "user", "content": [{"text": "hi"}]}]
    )
    assert resp.status_code == 400


async def test_text_only_turn_is_fine_for_chat_models(dashscope_fake: FakeDashScope) -> None:
    resp = await post_native(
        dashscope_fake, "qwen-audio-turbo-latest", [{"role": "user", "content": [{"text": "hi"}]}]
    )
    assert resp.status_code == 200
    assert dashscope_fake.last_request.input_tokens == 1


async def test_token_limit_counts_first_30_s_of_each_clip(dashscope_fake: FakeDashScope) -> None:
    # 8 clips of 31 s count as 8 × 30 s × 25 = 6000 tokens (under 6144); 40 s would add none.
    clip = sine_wav(31.0, rate=8000)
    ok = await post_native(
        dashscope_fake,
        "qwen-audio-turbo-latest",
        [{"role": "user", "content": [audio_item(clip)] * 8}],
    )
    assert ok.status_code == 200, ok.text
    assert dashscope_fake.last_request.input_tokens == 6000
    over = await post_native(
        dashscope_fake,
        "qwen-audio-turbo-latest",
        [{"role": "user", "content": [audio_item(clip)] * 8 + [{"text": "x" * 600}]}],
    )
    assert over.status_code == 400
    assert over.json() == {
        "code": "InvalidParameter",
        "message": "Range of input length should be [1, 6144]",
        "request_id": over.json()["request_id"],
    }


async def test_short_clip_counts_as_one_second(dashscope_fake: FakeDashScope) -> None:
    resp = await post_native(
        dashscope_fake,
        "qwen-audio-turbo-latest",
        [{"role": "user", "content": [audio_item(sine_wav(0.2))]}],
    )
    assert resp.status_code == 200
    assert dashscope_fake.last_request.input_tokens == 25
    assert dashscope_fake.last_request.audio_durations == pytest.approx([0.2], abs=0.01)


async def test_native_sse_framing_is_byte_exact(
    dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_reply(chunks=["欢迎"])
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            dashscope_fake.native_base_url + "/services/aigc/multimodal-generation/generation",
            json={
                "model": "qwen-audio-turbo-latest",
                "input": {"messages": [{"role": "user", "content": [audio_item(wav_1s)]}]},
                "parameters": {"incremental_output": True, "result_format": "message"},
            },
            headers={
                "Authorization": f"Bearer {dashscope_fake.api_key}",
                "X-DashScope-SSE": "enable",
            },
        )
    assert resp.headers["content-type"] == "text/event-stream;charset=UTF-8"
    frames = resp.content.split(b"\n\n")
    assert frames[-1] == b""
    first = frames[0].split(b"\n")
    assert first[:3] == [b"id:1", b"event:result", b":HTTP_STATUS/200"]
    assert first[3].startswith(
        b'data:{"output":{"choices":[{"message":{"content":[{"text":"\xe6\xac\xa2'
    )
    assert b'"finish_reason":"null"' in frames[0]
    assert frames[1].startswith(b"id:2\n") and b'"finish_reason":"stop"' in frames[1]
    assert b"[DONE]" not in resp.content


async def test_compat_stream_ends_with_done(dashscope_fake: FakeDashScope, wav_1s: bytes) -> None:
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            dashscope_fake.compatible_base_url + "/chat/completions",
            json={
                "model": "qwen3-asr-flash",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "input_audio",
                                "input_audio": {"data": audio_item(wav_1s)["audio"]},
                            }
                        ],
                    }
                ],
            },
            headers={"Authorization": f"Bearer {dashscope_fake.api_key}"},
        )
    lines = [line for line in resp.text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    assert '"choices":[]' in lines[-2] and '"usage":{' in lines[-2]


async def test_requests_are_recorded_even_when_refused(dashscope_fake: FakeDashScope) -> None:
    await post_native(dashscope_fake, "qwen-nope", [{"role": "user", "content": [{"text": "hi"}]}])
    rec = dashscope_fake.last_request
    assert (rec.model, rec.status, rec.error_code) == ("qwen-nope", 400, "InvalidParameter")
