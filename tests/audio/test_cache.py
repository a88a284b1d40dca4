"""The conversion cache: least recently used out first, bounded by the bytes it holds."""

from __future__ import annotations

from bot.audio.cache import CacheKey, ConversionCache
from bot.audio.pipeline import AudioPipeline
from bot.audio.types import AudioInput, AudioReport, ConvertedAudio


def _key(name: str) -> CacheKey:
    return CacheKey(name, "mp3", 30.0, None, None)


def _converted(size: int) -> ConvertedAudio:
    report = AudioReport(
        container="ogg",
        codec="opus",
        duration=1.0,
        total_seconds=1.0,
        sample_rate=48_000,
        channels=1,
        bytes_in=size,
        bytes_out=size,
        segments=0,
        seconds_sent=1.0,
        seconds_left_out=0.0,
    )
    return ConvertedAudio(segments=(), report=report)


def test_least_recently_used_goes_first_when_the_bytes_run_out() -> None:
    cache = ConversionCache(max_bytes=100)
    a, b, c = _converted(40), _converted(40), _converted(40)
    cache.put(_key("a"), a)
    cache.put(_key("b"), b)
    assert cache.get(_key("a")) is a  # now b is the least recently used
    cache.put(_key("c"), c)  # 120 bytes > 100: b goes
    assert len(cache) == 2
    assert cache.get(_key("b")) is None
    assert cache.get(_key("a")) is a and cache.get(_key("c")) is c
    assert (cache.hits, cache.misses) == (3, 1)


def test_a_conversion_larger_than_the_cache_is_not_kept() -> None:
    cache = ConversionCache(max_bytes=100)
    kept = _converted(60)
    cache.put(_key("kept"), kept)
    cache.put(_key("huge"), _converted(101))  # neither raises nor evicts
    assert cache.get(_key("huge")) is None
    assert cache.get(_key("kept")) is kept


def test_replacing_an_entry_counts_its_bytes_once() -> None:
    cache = ConversionCache(max_bytes=100)
    cache.put(_key("a"), _converted(50))
    newer = _converted(50)
    cache.put(_key("a"), newer)
    cache.put(_key("b"), _converted(50))  # 100 bytes in all: both fit
    assert cache.get(_key("a")) is newer
    assert cache.get(_key("b")) is not None
    cache.clear()
    assert len(cache) == 0


def test_zero_bytes_turns_the_cache_off() -> None:
    cache = ConversionCache(max_bytes=0)
    cache.put(_key("a"), _converted(1))
    assert len(cache) == 0 and cache.get(_key("a")) is None


async def test_the_pipeline_converts_the_same_audio_once(
    pipeline: AudioPipeline, formats: dict[str, bytes]
) -> None:
    audio = AudioInput(data=formats["voice.ogg"], mime_type="audio/ogg")
    first = await pipeline.convert(audio, segment_seconds=30.0)
    again = await pipeline.convert(audio, segment_seconds=30.0)
    assert again is first
    assert (pipeline.cache.hits, pipeline.cache.misses) == (1, 1)
    other = await pipeline.convert(audio, segment_seconds=10.0)  # another key: converted
    assert other is not first and len(pipeline.cache) == 2
