"""The Bot API HTTP session: aiogram's aiohttp session, closed without a fixed pause."""

from __future__ import annotations

from aiogram.client.session.aiohttp import AiohttpSession


class PromptClosingSession(AiohttpSession):
    """``AiohttpSession`` whose ``close`` returns as soon as aiohttp has closed.

    aiogram sleeps 250 ms after closing so that SSL transports of old aiohttp releases can
    finish; aiohttp 3.9+ waits for its connections itself in ``ClientSession.close``, so the
    pause only delays every shutdown (and every test that stops a bot).
    """

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
