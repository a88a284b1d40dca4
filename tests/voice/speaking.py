"""A model that speaks, for tests of spoken replies before the fake DashScope speaks Omni.

STOPGAP (issue #15): :class:`SpeakingClient` wraps the engine's real DashScope client
(talking to the fake server over HTTP) and, when a request asks for speech
(``GenerationParams.voice``), adds :class:`~bot.llm.types.SpeechDelta` events of known PCM
after the text deltas, the way the Omni stream interleaves ``delta.audio`` with
``delta.content``. :func:`speaking_model` makes a catalog model speak for one test. Once
the fake DashScope serves Omni (``delta.audio.data``), tests should use it and the
real Omni catalog entries instead, and this module goes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import numpy as np
import pytest

from bot import catalog
from bot.engine.service import Engine
from bot.llm.types import (
    SPEECH_SAMPLE_RATE,
    ChatMessage,
    GenerationParams,
    ModelClient,
    SpeechDelta,
    StreamEvent,
    TextDelta,
)

SPEAKING_MODEL = "qwen-audio-turbo-latest"  # the default model, made to speak
VOICES = ("Cherry", "Ethan", "Eldric Sage")


def pcm(seconds: float, *, freq: float = 220.0) -> bytes:
    """``seconds`` of a tone as s16le mono at 24 kHz (what Omni streams)."""
    n = round(seconds * SPEECH_SAMPLE_RATE)
    t = np.arange(n) / SPEECH_SAMPLE_RATE
    return (np.sin(2 * np.pi * freq * t) * 9000).astype("<i2").tobytes()


class SpeakingClient:
    """The real client's stream, plus ``seconds`` of speech when a voice is asked for."""

    def __init__(self, inner: ModelClient, *, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds
        self.voices: list[str | None] = []  # GenerationParams.voice of each request
        self.sent = b""  # the PCM of the last spoken reply

    async def stream(
        self, *, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[StreamEvent]:
        self.voices.append(params.voice)
        speech = pcm(self.seconds) if params.voice is not None else b""
        self.sent = speech
        piece = 4800 * 2  # 0.2 s per chunk, as the service cuts it roughly
        pos = 0
        async for event in self.inner.stream(model=model, messages=messages, params=params):
            yield event
            if isinstance(event, TextDelta) and pos < len(speech):
                yield SpeechDelta(pcm=speech[pos : pos + piece])
                pos += piece
        while pos < len(speech):  # speech outlasting the text
            yield SpeechDelta(pcm=speech[pos : pos + piece])
            pos += piece

    async def aclose(self) -> None:
        await self.inner.aclose()


def speak(engine: Engine, *, seconds: float) -> SpeakingClient:
    """Make ``engine``'s turns stream through a :class:`SpeakingClient`."""
    deps = engine._deps  # test-only seam: the stopgap until the fake speaks Omni
    client = SpeakingClient(deps.model_client, seconds=seconds)
    deps.model_client = client
    return client


def speaking_model(monkeypatch: pytest.MonkeyPatch, name: str = SPEAKING_MODEL) -> None:
    """Give catalog model ``name`` speech output and :data:`VOICES` for this test."""
    spec = catalog.CATALOG[name]
    monkeypatch.setitem(
        catalog.CATALOG, name, dataclasses.replace(spec, speech_output=True, voices=VOICES)
    )


def decoded_seconds(ogg: bytes) -> float:
    """The duration of an OGG/Opus file as a decoder plays it (PyAV, every frame)."""
    import io

    import av

    with av.open(io.BytesIO(ogg)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        samples, rate = 0, 0
        for frame in container.decode(stream):
            samples += frame.samples
            rate = frame.sample_rate
    return samples / rate
