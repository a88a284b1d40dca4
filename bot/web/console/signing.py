"""Signed tokens for the console: sign-in links and session cookies.

Both are signed (HMAC-SHA1 via :mod:`itsdangerous`, with a salt per purpose, so a link
token is never accepted as a session and vice versa) with the key the database keeps
(:func:`bot.storage.repositories.console.signing_key`): no operator secret, and every
replica agrees. A link token carries only a nonce; the one-time use is enforced in SQL.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from bot.engine.ports import ConsoleScope

#: The session cookie's name (Path=/: the playground off loopback asks for it too).
COOKIE = "voicebot_console"
LINK_SECONDS = 10 * 60
SESSION_SECONDS = 8 * 3600
_LINK_SALT = "voicebot.console.link"
_SESSION_SALT = "voicebot.console.session"


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A signed-in admin: who, what they may manage, and their CSRF token."""

    scope: ConsoleScope
    csrf: str

    @property
    def actor(self) -> str:
        return f"{self.scope.platform}:{self.scope.user_id}"

    def may_see(self, chat_id: int) -> bool:
        return self.scope.chats is None or chat_id in self.scope.chats

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf)


class Signer:
    """Signs and checks link tokens and session cookies with one key."""

    def __init__(self, *, key: str) -> None:
        self._links = URLSafeTimedSerializer(key, salt=_LINK_SALT)
        self._sessions = URLSafeTimedSerializer(key, salt=_SESSION_SALT)

    def link_token(self, nonce: str) -> str:
        return self._links.dumps({"n": nonce})

    def link_nonce(self, token: str, *, max_age: int = LINK_SECONDS) -> str | None:
        """The nonce of a genuine token not older than ``max_age``, else ``None``."""
        try:
            data: Any = self._links.loads(token, max_age=max_age)
        except BadSignature:  # also SignatureExpired
            return None
        nonce = data.get("n") if isinstance(data, dict) else None
        return nonce if isinstance(nonce, str) else None

    def session_cookie(self, scope: ConsoleScope) -> tuple[str, Session]:
        """A new session for ``scope`` (a fresh CSRF token) and its cookie value."""
        session = Session(scope=scope, csrf=secrets.token_urlsafe(24))
        value = self._sessions.dumps(
            {
                "p": scope.platform,
                "u": scope.user_id,
                "c": None if scope.chats is None else list(scope.chats),
                "x": session.csrf,
            }
        )
        return value, session

    def session(self, cookie: str | None, *, max_age: int = SESSION_SECONDS) -> Session | None:
        """The session a genuine, unexpired cookie holds, else ``None``."""
        if not cookie:
            return None
        try:
            data: Any = self._sessions.loads(cookie, max_age=max_age)
        except BadSignature:
            return None
        try:
            chats = data["c"]
            scope = ConsoleScope(
                platform=str(data["p"]),
                user_id=str(data["u"]),
                chats=None if chats is None else tuple(int(c) for c in chats),
            )
            return Session(scope=scope, csrf=str(data["x"]))
        except (KeyError, TypeError, ValueError):
            return None
