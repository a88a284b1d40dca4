"""Qwen-Omni over the OpenAI-compatible endpoint: the request the client builds, the
speech it streams back, its usage, and the fake's refusals (omni-tts-facts.md).

The official ``openai`` SDK parses the fake's Omni stream (evidence that it is faithful);
:class:`DashScopeClient` is then checked against that same fake.
"""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest

from bot import errors, texts
from bot.catalog import CATALOG
from bot.llm.state import StreamState
from bot.llm.types import (
    AudioPart,
    ChatMessage,
    Finished,
    GenerationParams,
    SpeechDelta,
    TextDelta,
    TextPart,
)
from bot.llm.wire import Chunk
from tests.fakes.dashscope import FakeDashScope, speech_tone
from tests.llm.conftest import ClientFactory, collect, user

OMNI = "qwen3-omni-flash"
VOICE = CATALOG[OMNI].voices[0]


def oa_audio(audio: bytes) -> dict[str, Any]:
    url = f"data:audio/wav;base64,{base64.b64encode(audio).decode()}"
    return {"type": "input_audio", "input_audio": {"data": url, "format": "wav"}}


# --- the official SDK parses the fake's Omni stream -------------------------------------


async def test_openai_sdk_streams_text_and_speech(
    dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_reply(chunks=["Hello", " there"], speech_seconds=1.0)
    async with openai.AsyncOpenAI(
        api_key=dashscope_fake.api_key, base_url=dashscope_fake.compatible_base_url
    ) as client:
        stream = await client.chat.completions.create(
            model=OMNI,
            messages=[{"role": "user", "content": [oa_audio(wav_1s)]}],
            modalities=["text", "audio"],
            audio={"voice": VOICE, "format": "wav"},
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    pcm = b"".join(
        base64.b64decode(c.choices[0].delta.audio.data)
        for c in chunks
        if c.choices and c.choices[0].delta.audio and c.choices[0].delta.audio.data
    )
    assert text == "Hello there"
    assert pcm == speech_tone(1.0) == dashscope_fake.last_request.speech
    assert len(pcm) == 2 * 24_000  # one second of s16le mono 24 kHz
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.audio_tokens == 13  # 1 s at the fake's 12.5/s
    assert dashscope_fake.last_request.voice == VOICE


async def test_openai_sdk_sees_the_transcript_when_sent(
    dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_reply(chunks=["Hi"], speech_seconds=0.2, speech_transcript=True)
    async with openai.AsyncOpenAI(
        api_key=dashscope_fake.api_key, base_url=dashscope_fake.compatible_base_url
    ) as client:
        stream = await client.chat.completions.create(
            model=OMNI,
            messages=[{"role": "user", "content": [oa_audio(wav_1s)]}],
            modalities=["text", "audio"],
            audio={"voice": VOICE, "format": "wav"},
            stream=True,
        )
        transcripts = [
            c.choices[0].delta.audio.transcript
            async for c in stream
            if c.choices and c.choices[0].delta.audio
        ]
    assert transcripts == ["Hi"]


async def test_openai_sdk_non_streaming_omni_is_refused(
    dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    async with openai.AsyncOpenAI(
        api_key=dashscope_fake.api_key, base_url=dashscope_fake.compatible_base_url, max_retries=0
    ) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model=OMNI, messages=[{"role": "user", "content": [oa_audio(wav_1s)]}]
            )
    assert info.value.code == "invalid_parameter_error"
    assert "only support stream mode" in info.value.message


async def test_openai_sdk_two_audio_items_in_one_message_are_refused(
    dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    async with openai.AsyncOpenAI(
        api_key=dashscope_fake.api_key, base_url=dashscope_fake.compatible_base_url, max_retries=0
    ) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model=OMNI,
                messages=[{"role": "user", "content": [oa_audio(wav_1s), oa_audio(wav_1s)]}],
                stream=True,
            )
    assert info.value.status_code == 400
    assert "2 audio items" in info.value.message


async def test_fake_refuses_unknown_voice_and_audio_in_assistant_history(
    dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    async with openai.AsyncOpenAI(
        api_key=dashscope_fake.api_key, base_url=dashscope_fake.compatible_base_url, max_retries=0
    ) as client:
        with pytest.raises(openai.BadRequestError) as voice:
            await client.chat.completions.create(
                model="qwen3.5-omni-plus",
                messages=[{"role": "user", "content": "hi"}],
                modalities=["text", "audio"],
                audio={"voice": "Cherry", "format": "wav"},
                stream=True,
            )
        with pytest.raises(openai.BadRequestError) as history:
            await client.chat.completions.create(
                model=OMNI,
                messages=[
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [oa_audio(wav_1s)]},  # type: ignore[list-item]
                    {"role": "user", "content": "again"},
                ],
                stream=True,
            )
    assert voice.value.message.endswith("Voice 'Cherry' is not supported")
    assert "text only" in history.value.message


# --- the bot's client ----------------------------------------------------------------------


async def test_omni_goes_compatible_with_speech_even_when_native_is_configured(
    dashscope_fake: FakeDashScope, make_client: ClientFactory, mp3_2s: bytes
) -> None:
    dashscope_fake.queue_reply(chunks=["Hel", "lo"], speech_seconds=0.75, speech_chunk_seconds=0.1)
    client = make_client(protocol="native")
    messages = [
        ChatMessage("system", (TextPart("Be brief."),)),
        user(AudioPart(mp3_2s, "mp3")),
        ChatMessage("assistant", (TextPart("Earlier answer"),)),
        user(AudioPart(mp3_2s, "mp3"), "and this?"),
    ]
    events = await collect(
        client, messages, model=OMNI, params=GenerationParams(voice="Ethan", max_tokens=100)
    )
    req = dashscope_fake.last_request
    assert req.protocol == "openai" and req.path.endswith("/compatible-mode/v1/chat/completions")
    assert req.body["stream"] is True
    assert req.body["stream_options"] == {"include_usage": True}
    assert req.body["modalities"] == ["text", "audio"]
    assert req.body["audio"] == {"voice": "Ethan", "format": "wav"}
    assert req.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert req.body["messages"][2] == {"role": "assistant", "content": "Earlier answer"}
    # One audio item per user message.
    per_message = [[a for a in req.audio if a.message_index == i] for i in (1, 3)]
    assert [len(items) for items in per_message] == [1, 1]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    pcm = b"".join(e.pcm for e in events if isinstance(e, SpeechDelta))
    assert text == "Hello"
    assert pcm == req.speech == speech_tone(0.75)
    assert sum(isinstance(e, SpeechDelta) for e in events) == 8  # 0.1 s chunks, as sent
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.finish_reason == "stop"
    assert finished.usage.audio_output_tokens == 10  # ceil(0.75 s × 12.5)
    assert finished.usage.output_tokens == 10 + dashscope_fake.text_tokens("Hello")


async def test_omni_without_a_voice_asks_for_text_only(
    dashscope_fake: FakeDashScope, make_client: ClientFactory, mp3_2s: bytes
) -> None:
    client = make_client(protocol="native")
    events = await collect(client, [user(AudioPart(mp3_2s, "mp3"))], model=OMNI)
    req = dashscope_fake.last_request
    assert req.protocol == "openai"
    assert "modalities" not in req.body and "audio" not in req.body
    assert not any(isinstance(e, SpeechDelta) for e in events)
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.usage.audio_output_tokens is None
    assert req.speech == b""


async def test_a_voice_for_a_model_without_speech_output_is_not_sent(
    dashscope_fake: FakeDashScope, make_client: ClientFactory, mp3_2s: bytes
) -> None:
    client = make_client(protocol="openai")
    await collect(
        client,
        [user(AudioPart(mp3_2s, "mp3"))],
        model="qwen-audio-turbo-latest",
        params=GenerationParams(voice="Cherry"),
    )
    body = dashscope_fake.last_request.body
    assert "modalities" not in body and "audio" not in body


def test_speech_split_mid_sample_comes_out_in_whole_samples() -> None:
    state = StreamState(request_id=None)
    out = [*state.apply(Chunk(speech=b"\x01\x02\x03")), *state.apply(Chunk(speech=b"\x04"))]
    assert out == [SpeechDelta(b"\x01\x02"), SpeechDelta(b"\x03\x04")]


async def test_unknown_model_names_the_model_and_the_command(
    dashscope_fake: FakeDashScope, make_client: ClientFactory, mp3_2s: bytes
) -> None:
    dashscope_fake.models.pop(OMNI)  # as if the key could not use it
    client = make_client()
    with pytest.raises(errors.ModelNotFoundError) as info:
        await collect(client, [user(AudioPart(mp3_2s, "mp3"))], model=OMNI)
    assert info.value.status == 404 and info.value.code == "model_not_found"
    assert info.value.user_message == texts.MODEL_NOT_FOUND_NAMED.format(model=OMNI)

    class Slash:
        def command(self, name: str) -> str:
            return f"/{name}"

    assert info.value.shown(Slash()).endswith("An admin can pick another with /model.")
    assert dashscope_fake.last_request.status == 404


def test_speech_voice_and_generation_params() -> None:
    from bot.engine.requests import generation_params, speech_voice
    from bot.engine.settings import effective

    omni, turbo = CATALOG[OMNI], CATALOG["qwen-audio-turbo-latest"]
    assert speech_voice(omni) == "Cherry"  # the first voice is the default
    assert speech_voice(omni, "Ethan") == "Ethan"
    assert speech_voice(omni, "Tina") == "Cherry"  # not one of this model's voices
    assert speech_voice(turbo, "Ethan") is None
    view = effective(None, default_model=OMNI, allowed=[OMNI])
    assert generation_params(view, omni).voice is None
    assert generation_params(view, omni, speak=True, voice="Ryan").voice == "Ryan"
    assert generation_params(view, turbo, speak=True, voice="Ryan").voice is None


def test_body_rules_for_speech() -> None:
    from bot.llm import compatible

    messages = [
        ChatMessage("system", (TextPart("Be brief."),)),
        ChatMessage("user", (TextPart("hi"),)),
        # Never audio in assistant history, whatever the caller passes.
        ChatMessage("assistant", (AudioPart(b"RIFF", "wav"), TextPart("hello"))),
        ChatMessage("user", (TextPart("again"),)),
    ]
    params = GenerationParams(voice="Tina")
    body = compatible.build_body(
        model="qwen3.5-omni-plus",
        messages=messages,
        params=params,
        stream=True,
        speech=True,
        system_as_user=True,
    )
    assert body["modalities"] == ["text", "audio"]
    assert body["audio"] == {"voice": "Tina", "format": "wav"}
    assert body["messages"][:2] == [
        {"role": "user", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "assistant", "content": "OK."},
    ]
    assert body["messages"][3] == {"role": "assistant", "content": "hello"}
    plain = compatible.build_body(
        model="qwen3.5-omni-plus", messages=messages, params=params, stream=True
    )
    assert "modalities" not in plain and plain["messages"][0]["role"] == "system"
