"""What the composition root hands to every front end: :class:`Core` and the
:class:`Platform` protocol.

A leaf for the front ends: :mod:`bot.bootstrap` builds these, and the platform adapters
and the CLI receive them, so neither imports the other (no import cycle).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.audio.pipeline import AudioPipeline
from bot.config import Settings
from bot.engine.ports import AdminCheck
from bot.engine.service import Engine
from bot.llm.client import DashScopeClient
from bot.llm.tts import DashScopeTTS
from bot.metrics import Metrics
from bot.queue.port import TurnQueue
from bot.storage.database import Database
from bot.web.console.links import SignInLinks


class Platform(Protocol):
    """A running chat platform adapter."""

    name: str

    async def start(self) -> None:
        """Begin receiving (polling, socket, or webhook routes already registered)."""
        ...

    async def stop(self) -> None:
        """Stop receiving new events (in-flight turns go on: the engine drains them)."""
        ...

    async def aclose(self) -> None:
        """Release sessions and connections, once in-flight replies are delivered."""
        ...

    def readiness(self) -> dict[str, Any]:
        """Fields for ``/readyz`` (e.g. whether this replica polls Telegram)."""
        ...


@dataclass(kw_only=True)
class Core:
    """The platform-neutral components, shared by every adapter and the CLI."""

    settings: Settings
    database: Database
    metrics: Metrics
    model_client: DashScopeClient
    audio: AudioPipeline
    engine: Engine
    queue: TurnQueue  # every accepted platform event becomes a job here
    # Text to speech for voice replies of models without speech output (TTS_MODEL).
    tts: DashScopeTTS | None = None
    # Each started platform's admin check, by platform name: the admin console re-checks
    # a chat admin's rights with it before a change (BOT_ADMINS need none).
    admin_checks: dict[str, AdminCheck] = field(default_factory=dict)
    # The admin console's sign-in links (ADMIN_CONSOLE=true), else None.
    console_links: SignInLinks | None = None

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.queue.aclose()
        with contextlib.suppress(Exception):
            await self.model_client.aclose()
        if self.tts is not None:
            with contextlib.suppress(Exception):
                await self.tts.aclose()
        with contextlib.suppress(Exception):
            await self.audio.aclose()
        await self.database.dispose()
