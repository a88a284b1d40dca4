"""Fixtures for the model client tests: tiny audio clips and clients pointed at the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.llm.client import DashScopeClient
from bot.llm.types import AudioPart, ChatMessage, GenerationParams, StreamEvent, TextPart
from tests.fakes.audio import sine_mp3, sine_wav
from tests.fakes.dashscope import FakeDashScope

ClientFactory = Callable[..., DashScopeClient]


@pytest.fixture(scope="session")
def mp3_2s() -> bytes:
    return sine_mp3(2.0)


@pytest.fixture(scope="session")
def wav_1s() -> bytes:
    return sine_wav(1.0)


@pytest.fixture
async def make_client(dashscope_fake: FakeDashScope) -> AsyncIterator[ClientFactory]:
    """Build clients against the fake with short timeouts and backoff; closed afterwards."""
    made: list[DashScopeClient] = []

    def factory(**overrides: Any) -> DashScopeClient:
        kwargs: dict[str, Any] = {
            "api_key": dashscope_fake.api_key,
            "protocol": "native",
            "base_url": dashscope_fake.native_base_url,
            "compatible_base_url": dashscope_fake.compatible_base_url,
            "connect_timeout": 2.0,
            "first_byte_timeout": 2.0,
            "idle_timeout": 2.0,
            "max_retries": 2,
            "backoff_base": 0.01,
            "backoff_max": 0.05,
        }
        kwargs.update(overrides)
        client = DashScopeClient(**kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


def user(*parts: AudioPart | TextPart | str) -> ChatMessage:
    return ChatMessage("user", tuple(TextPart(p) if isinstance(p, str) else p for p in parts))


async def collect(
    client: DashScopeClient,
    messages: list[ChatMessage],
    *,
    model: str = "qwen-audio-turbo-latest",
    params: GenerationParams | None = None,
    into: list[StreamEvent] | None = None,
) -> list[StreamEvent]:
    """All events of one stream (appended to ``into`` as they come, to keep them on error)."""
    events = into if into is not None else []
    async for event in client.stream(
        model=model, messages=messages, params=params or GenerationParams()
    ):
        events.append(event)
    return events
