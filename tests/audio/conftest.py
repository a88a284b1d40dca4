"""Fixtures of the audio pipeline tests: inputs generated once per session with PyAV."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.audio.pipeline import AudioPipeline
from tests.audio import synth

# Pauses in the 30 s fixtures; the one at 10 s is well inside a segment.
PAUSES_30S = ((10.0, 10.5),)


@pytest.fixture(scope="session")
def formats() -> dict[str, bytes]:
    """A 30 s speech-like recording in every input format the platforms send."""
    out: dict[str, bytes] = {}
    for name, fmt in synth.FORMATS.items():
        x = synth.speech_like(30.0, rate=fmt.rate, pauses=PAUSES_30S)
        out[name] = synth.encode(x, fmt)
    return out


@pytest.fixture
async def pipeline() -> AsyncIterator[AudioPipeline]:
    p = AudioPipeline(
        max_bytes=20 * 1024 * 1024, max_seconds=900.0, output_format="mp3", workers=2, timeout=60.0
    )
    yield p
    await p.aclose()


@pytest.fixture
async def wav_pipeline() -> AsyncIterator[AudioPipeline]:
    p = AudioPipeline(
        max_bytes=20 * 1024 * 1024, max_seconds=900.0, output_format="wav", workers=2, timeout=60.0
    )
    yield p
    await p.aclose()
