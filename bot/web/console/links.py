"""One-time sign-in links (implements :class:`bot.engine.ports.ConsoleLinks`)."""

from __future__ import annotations

import datetime as dt
import secrets
from urllib.parse import quote

import structlog

from bot.engine.ports import ConsoleScope
from bot.storage.database import Database
from bot.storage.repositories import console as repo
from bot.storage.tables import utcnow
from bot.web.console.signing import LINK_SECONDS, Signer

log = structlog.get_logger(__name__)


class ConsoleKeys:
    """The signer, with the database's key loaded once (made on first use)."""

    def __init__(self, *, database: Database) -> None:
        self._database = database
        self._signer: Signer | None = None

    async def signer(self) -> Signer:
        if self._signer is None:
            async with self._database.sessions() as session, session.begin():
                key = await repo.signing_key(session)
            self._signer = Signer(key=key)
        return self._signer


class SignInLinks:
    """Makes a link valid for :data:`LINK_SECONDS`, usable once, on any replica."""

    def __init__(self, *, database: Database, keys: ConsoleKeys, base_url: str) -> None:
        self._database = database
        self.keys = keys
        self._base = base_url.rstrip("/")

    async def issue(self, scope: ConsoleScope) -> str:
        nonce = secrets.token_urlsafe(24)
        async with self._database.sessions() as session, session.begin():
            await repo.add_link(
                session,
                nonce=nonce,
                platform=scope.platform,
                user_id=scope.user_id,
                chat_ids=None if scope.chats is None else list(scope.chats),
                expires_at=utcnow() + dt.timedelta(seconds=LINK_SECONDS),
            )
        token = (await self.keys.signer()).link_token(nonce)
        log.info("console.link_issued", platform=scope.platform, all=scope.chats is None)
        return f"{self._base}/admin/login?token={quote(token)}"

    async def redeem(self, token: str) -> ConsoleScope | None:
        """The scope of a genuine, unexpired, unused link, now used; else ``None``."""
        nonce = (await self.keys.signer()).link_nonce(token)
        if nonce is None:
            return None
        async with self._database.sessions() as session, session.begin():
            link = await repo.use_link(session, nonce)
            if link is None:
                return None
            chats = link.chat_ids
            return ConsoleScope(
                platform=link.platform,
                user_id=link.user_id,
                chats=None if chats is None else tuple(int(c) for c in chats),
            )
