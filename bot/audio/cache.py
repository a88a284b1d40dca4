"""A small LRU cache of finished conversions, keyed by a hash of the input's content.

The same voice note is often converted more than once (a reply to it, a second question,
another model); its conversion is kept so the repeat costs a hash instead of an encode.
Used from the event loop only, by plain (non-async) code, so it needs no lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import LRUCache

from bot.audio.types import ConvertedAudio


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Everything a conversion's result depends on."""

    content_sha256: str
    fmt: str
    segment_seconds: float
    budget_seconds: float | None
    max_segments: int | None


def _size(value: ConvertedAudio) -> int:
    return value.report.bytes_out


class ConversionCache:
    """Least-recently-used conversions, bounded by the total bytes of their segments."""

    def __init__(self, *, max_bytes: int) -> None:
        self._items: LRUCache[CacheKey, ConvertedAudio] = LRUCache(
            maxsize=max_bytes, getsizeof=_size
        )
        self.hits = 0
        self.misses = 0

    def get(self, key: CacheKey) -> ConvertedAudio | None:
        """The cached conversion for ``key``, marked as recently used; counts hits/misses."""
        found = self._items.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        return found

    def put(self, key: CacheKey, value: ConvertedAudio) -> None:
        """Keep ``value``, evicting the least recently used until under the byte bound."""
        if _size(value) > self._items.maxsize:
            return  # larger than the whole cache (cachetools would raise ValueError)
        self._items[key] = value

    def clear(self) -> None:
        """Forget everything."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
