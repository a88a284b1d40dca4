"""A clock the test moves by hand, for the adapters' TTL caches.

``SlackAdminCheck``, ``ThreadInspector`` and ``TelegramAdmins`` build a
``cachetools.TTLCache`` on the real monotonic clock and take no clock of their own, so
:func:`ttl_caches_on` makes their module build it on a :class:`FakeClock`: expiry is then
tested by moving the clock, not by sleeping.
"""

from __future__ import annotations

import functools
from types import ModuleType

import cachetools
import pytest


class FakeClock:
    """Monotonic seconds that only move when :meth:`advance` is called."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def ttl_caches_on(clock: FakeClock, monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> None:
    """``TTLCache`` objects built by ``module`` from now on (this test only) use ``clock``."""
    monkeypatch.setattr(module, "TTLCache", functools.partial(cachetools.TTLCache, timer=clock))
