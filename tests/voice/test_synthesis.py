"""The TTS of a reply while it is written (bot.engine.speech.Synthesis), with the real TTS
client against the fake DashScope: pieces at sentence ends, sent while the text grows,
several at once, and their speech joined in the order of the text whatever order they
finish in."""

from __future__ import annotations

import asyncio

import pytest

from bot import errors
from bot.engine.speech import Synthesis
from bot.llm.tts import DashScopeTTS
from bot.voice.reply import SpeechBuffer
from tests.fakes.dashscope import Fail, FakeDashScope, TtsReply, speech_tone

SENTENCES = [
    "First sentence comes at once.",
    "Then a second, longer one, which the model writes a little later on.",
    "A third one closes the middle of the reply and makes the stretch long enough.",
    "The end.",
]


async def arrived(fake: FakeDashScope, count: int) -> None:
    """Until the fake received ``count`` TTS requests (polled, no fixed wait)."""
    for _ in range(5000):
        if len(fake.tts_requests) >= count:
            return
        await asyncio.sleep(0.002)
    raise TimeoutError(f"{count} TTS request(s) expected")


def synthesis(fake: FakeDashScope, client: DashScopeTTS, into: SpeechBuffer) -> Synthesis:
    return Synthesis(
        client,
        model="qwen3-tts-flash",
        voice="Cherry",
        language=None,
        into=into,
        limit=600,
        max_seconds=120.0,
    )


async def test_speech_is_joined_in_text_order_whatever_finishes_first(
    dashscope_fake: FakeDashScope,
) -> None:
    # The first piece is the slowest to answer: the later ones finish before it. Each
    # piece's length is not a whole number of the tone's periods, so any other order of
    # the same pieces gives other bytes.
    expected = [SENTENCES[0], " ".join(SENTENCES[1:3]), SENTENCES[3]]
    seconds = dict(zip(expected, (0.3013, 0.7027, 0.5011), strict=True))
    dashscope_fake.tts_script = lambda text: TtsReply(
        seconds=seconds[text], first_byte_delay=0.3 if text == SENTENCES[0] else 0.0
    )
    client = DashScopeTTS(api_key=dashscope_fake.api_key, base_url=dashscope_fake.native_base_url)
    into = SpeechBuffer()
    tts = synthesis(dashscope_fake, client, into)
    try:
        # As the model writes: the first sentence, then the next two (one stretch).
        text = SENTENCES[0] + " "
        tts.feed(text)
        await arrived(dashscope_fake, 1)
        text += " ".join(SENTENCES[1:3]) + " "
        tts.feed(text)
        await arrived(dashscope_fake, 2)
        await tts.finish(text + SENTENCES[3])
    finally:
        await client.aclose()
    spoken = [t for r in dashscope_fake.tts_requests for _, t in r.texts]
    assert sorted(spoken) == sorted(expected)
    joined = b"".join(speech_tone(seconds[t]) for t in expected)
    assert into.pcm == joined
    assert tts.chars == sum(len(t) for t in expected) and tts.requests == 3


async def test_a_failed_piece_fails_the_whole_and_bills_nothing_for_it(
    dashscope_fake: FakeDashScope,
) -> None:
    dashscope_fake.tts_script = lambda text: (
        Fail(status=500, code="InternalError") if text == "The end." else None
    )
    client = DashScopeTTS(
        api_key=dashscope_fake.api_key, base_url=dashscope_fake.native_base_url, max_retries=0
    )
    tts = synthesis(dashscope_fake, client, SpeechBuffer())
    try:
        tts.feed(SENTENCES[0] + " ")
        await arrived(dashscope_fake, 1)
        with pytest.raises(errors.ModelServerError):
            await tts.finish(SENTENCES[0] + " The end.")
    finally:
        await client.aclose()
    assert tts.chars == len(SENTENCES[0])
