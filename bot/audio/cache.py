"""A small LRU cache of finished conversions, keyed by a hash of the input's content.

The same voice note is often converted more than once (a reply to it, a second question,
another model); its conversion is kept so the repeat costs a hash instead of an encode.
Used from the event loop only, so it needs no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from bot.audio.types import ConvertedAudio


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Everything a conversion's result depends on."""

    content_sha256: str
    fmt: str
    segment_seconds: float
    budget_seconds: float | None
    max_segments: int | None


class ConversionCache:
    """Least-recently-used conversions, bounded by the total bytes of their segments."""

    def __init__(self, *, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[CacheKey, ConvertedAudio] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: CacheKey) -> ConvertedAudio | None:
        """The cached conversion for ``key``, marked as recently used; counts hits/misses."""
        found = self._items.get(key)
        if found is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: CacheKey, value: ConvertedAudio) -> None:
        """Keep ``value``, evicting the least recently used until under the byte bound."""
        size = value.report.bytes_out
        if size > self._max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old.report.bytes_out
        self._items[key] = value
        self._bytes += size
        while self._bytes > self._max_bytes:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= evicted.report.bytes_out

    def clear(self) -> None:
        """Forget everything."""
        self._items.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)
