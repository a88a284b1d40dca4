"""The real client over real HTTP against the fake: streaming, both protocols."""

from __future__ import annotations

import base64

import pytest

from bot import errors
from bot.llm.types import (
    AudioInfo,
    AudioPart,
    ChatMessage,
    Finished,
    GenerationParams,
    StreamEvent,
    TextDelta,
    TextPart,
    UsageUpdate,
)
from tests.fakes.dashscope import FakeDashScope, StreamError
from tests.llm.conftest import ClientFactory, collect, user

PROTOCOLS = ["native", "openai"]


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stream_reports_what_the_model_heard_and_ends_with_finished(
    protocol: str,
    make_client: ClientFactory,
    dashscope_fake: FakeDashScope,
    mp3_2s: bytes,
    wav_1s: bytes,
) -> None:
    client = make_client(protocol=protocol)
    messages = [user(AudioPart(mp3_2s, "mp3"), AudioPart(wav_1s, "wav"), "what is this")]
    events = await collect(client, messages)
    assert text_of(events) == "Heard 2 audio clip(s): 2.00 s, 1.00 s. Prompt: “what is this”."
    assert sum(isinstance(e, TextDelta) for e in events) > 1  # really streamed in pieces
    last = events[-1]
    assert isinstance(last, Finished)
    assert last.finish_reason == "stop"
    assert last.request_id
    assert last.usage.audio_tokens == 75  # 2 s + 1 s at 25 tokens/s
    assert last.usage.output_tokens is not None and last.usage.output_tokens > 0
    assert any(isinstance(e, UsageUpdate) for e in events)
    assert [type(e) for e in events].count(Finished) == 1
    recorded = dashscope_fake.last_request
    assert recorded.protocol == protocol and recorded.stream
    assert recorded.audio_durations == pytest.approx([2.0, 1.0], abs=0.05)


async def test_native_request_layout(
    make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    client = make_client()
    params = GenerationParams(
        temperature=0.7,
        top_p=0.8,
        top_k=20,
        seed=1,
        max_tokens=100,
        asr_language="en",
        asr_enable_itn=False,
    )
    messages = [
        ChatMessage("system", (TextPart("You are helpful."),)),
        user(AudioPart(wav_1s, "wav"), "what"),
        ChatMessage("assistant", (TextPart("a tone"),)),
        user("and now?", AudioPart(wav_1s, "wav")),
    ]
    await collect(client, messages, params=params)
    req = dashscope_fake.last_request
    assert req.path == "/api/v1/services/aigc/multimodal-generation/generation"
    assert req.headers["X-DashScope-SSE"] == "enable"
    assert req.headers["Authorization"] == f"Bearer {dashscope_fake.api_key}"
    body = req.body
    assert body["model"] == "qwen-audio-turbo-latest"
    assert "stream" not in body
    assert body["parameters"] == {
        "result_format": "message",
        "incremental_output": True,
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 20,
        "seed": 1,
        "max_tokens": 100,
        "asr_options": {"language": "en", "enable_itn": False},
    }
    msgs = body["input"]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[0]["content"] == [{"text": "You are helpful."}]
    audio_url = msgs[1]["content"][0]["audio"]
    assert audio_url.startswith("data:audio/wav;base64,")
    assert base64.b64decode(audio_url.split(",", 1)[1]) == wav_1s
    assert msgs[1]["content"][1] == {"text": "what"}
    assert msgs[3]["content"][0] == {"text": "and now?"}


async def test_compatible_request_layout(
    make_client: ClientFactory, dashscope_fake: FakeDashScope, mp3_2s: bytes
) -> None:
    client = make_client(protocol="openai")
    params = GenerationParams(asr_enable_itn=True, max_tokens=50)
    await collect(client, [user(AudioPart(mp3_2s, "mp3"))], model="qwen3-asr-flash", params=params)
    req = dashscope_fake.last_request
    assert req.path == "/compatible-mode/v1/chat/completions"
    body = req.body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["asr_options"] == {"enable_itn": True}
    assert body["max_tokens"] == 50
    part = body["messages"][0]["content"][0]
    assert part["type"] == "input_audio"
    assert part["input_audio"]["data"].startswith("data:audio/mpeg;base64,")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_asr_annotations_and_usage_seconds(
    protocol: str, make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_reply(chunks=["欢迎", "使用"], language="zh", emotion="happy")
    events = await collect(
        make_client(protocol=protocol), [user(AudioPart(wav_1s, "wav"))], model="qwen3-asr-flash"
    )
    assert AudioInfo(language="zh", emotion="happy") in events
    assert text_of(events) == "欢迎使用"
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.usage.seconds == 1.0


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_cumulative_wire_text_becomes_deltas(
    protocol: str, make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    # A server that ignores incremental_output and sends the text so far each time.
    dashscope_fake.queue_reply(chunks=["Hel", "lo, ", "wor", "ld"], cumulative=True)
    events = await collect(make_client(protocol=protocol), [user(AudioPart(wav_1s, "wav"))])
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo, ", "wor", "ld"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_repeated_deltas_are_not_mistaken_for_totals(
    protocol: str, make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_reply(chunks=["哈", "哈", "哈哈", "!"])
    events = await collect(make_client(protocol=protocol), [user(AudioPart(wav_1s, "wav"))])
    assert text_of(events) == "哈哈哈哈!"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_length_finish_reason(
    protocol: str, make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_reply(chunks=["one ", "two ", "three"], finish_reason="length")
    events = await collect(make_client(protocol=protocol), [user(AudioPart(wav_1s, "wav"))])
    assert text_of(events) == "one two three"
    assert isinstance(events[-1], Finished) and events[-1].finish_reason == "length"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("code", "cls"),
    [("DataInspectionFailed", errors.ContentFiltered), ("InternalError", errors.ModelServerError)],
)
async def test_mid_stream_error_after_partial_text(
    protocol: str,
    code: str,
    cls: type,
    make_client: ClientFactory,
    dashscope_fake: FakeDashScope,
    wav_1s: bytes,
) -> None:
    dashscope_fake.queue_reply(chunks=["Part", "ial"], error=StreamError(code))
    events: list[StreamEvent] = []
    with pytest.raises(cls) as info:
        await collect(make_client(protocol=protocol), [user(AudioPart(wav_1s, "wav"))], into=events)
    assert text_of(events) == "Partial"
    assert not any(isinstance(e, Finished) for e in events)
    assert info.value.request_id
    assert len(dashscope_fake.requests) == 1  # never retried after text


async def test_native_mid_stream_error_status_from_comment(
    make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_reply(chunks=["x"], error=StreamError("InternalError", status=500))
    with pytest.raises(errors.ModelServerError) as info:
        await collect(make_client(), [user(AudioPart(wav_1s, "wav"))])
    assert (info.value.code, info.value.status) == ("InternalError", 500)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_dropped_connection_mid_stream_is_connection_lost_and_not_retried(
    protocol: str, make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_reply(chunks=["Hello", " there"], drop=True)
    events: list[StreamEvent] = []
    with pytest.raises(errors.ModelConnectionLost) as info:
        await collect(make_client(protocol=protocol), [user(AudioPart(wav_1s, "wav"))], into=events)
    assert text_of(events) == "Hello there"
    assert info.value.user_message
    assert len(dashscope_fake.requests) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_idle_timeout_between_events(
    protocol: str, make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_reply(chunks=["a", "b"], chunk_delay=0.5)
    client = make_client(protocol=protocol, idle_timeout=0.1)
    events: list[StreamEvent] = []
    with pytest.raises(errors.ModelTimeout):
        await collect(client, [user(AudioPart(wav_1s, "wav"))], into=events)
    assert text_of(events) == "a"
    assert len(dashscope_fake.requests) == 1


@pytest.mark.parametrize("where", ["first_byte_delay", "first_token_delay"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_first_byte_timeout(
    protocol: str,
    where: str,
    make_client: ClientFactory,
    dashscope_fake: FakeDashScope,
    wav_1s: bytes,
) -> None:
    dashscope_fake.queue_reply(**{where: 0.6})
    client = make_client(protocol=protocol, first_byte_timeout=0.15, idle_timeout=5.0)
    with pytest.raises(errors.ModelTimeout) as info:
        await collect(client, [user(AudioPart(wav_1s, "wav"))])
    assert info.value.code == "FirstByteTimeout"
    assert len(dashscope_fake.requests) == 1


async def test_slow_first_token_within_timeout_then_fast_chunks(
    make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    # The first-byte budget is larger than the idle budget: a slow start is fine.
    dashscope_fake.queue_reply(chunks=["a", "b"], first_token_delay=0.2, chunk_delay=0.01)
    client = make_client(first_byte_timeout=1.0, idle_timeout=0.1)
    events = await collect(client, [user(AudioPart(wav_1s, "wav"))])
    assert text_of(events) == "ab"


async def test_caller_stopping_early_closes_cleanly(
    make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_reply(chunks=["a", "b", "c"], chunk_delay=0.01)
    client = make_client()
    gen = client.stream(
        model="qwen-audio-turbo-latest",
        messages=[user(AudioPart(wav_1s, "wav"))],
        params=GenerationParams(),
    )
    async for event in gen:
        if isinstance(event, TextDelta):
            break
    await gen.aclose()  # type: ignore[attr-defined]
    events = await collect(client, [user(AudioPart(wav_1s, "wav"))])  # pool still works
    assert isinstance(events[-1], Finished)
