"""The playground's browser sessions: a random id in a signed cookie, and a CSRF token.

No new secret is needed: the signing key is derived from the DashScope API key (which the
playground spends anyway), so sessions survive a restart and hold on every replica. The
cookie is ``HttpOnly`` and ``SameSite=Strict``; every POST must also carry the session's
token (an HMAC of its id) in a header, which a page of another origin cannot read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

COOKIE = "voicebot_playground"
TOKEN_HEADER = "X-Playground-Token"
# Ids are 24 random bytes in URL-safe base64 (32 characters).
_ID_BYTES = 24
_ID_LENGTH = 32


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class SessionSigner:
    """Makes and checks session cookies and their CSRF tokens."""

    def __init__(self, *, secret: str) -> None:
        # A key of its own for this use, so a signature shows nothing about the API key.
        self._key = hmac.new(
            secret.encode(), b"voicebot web playground session v1", hashlib.sha256
        ).digest()

    def new_session(self) -> str:
        """A fresh random session id."""
        return _b64(secrets.token_bytes(_ID_BYTES))

    def cookie_value(self, session: str) -> str:
        """What the cookie holds: the id and its signature."""
        return f"{session}.{self._sign('cookie', session)}"

    def session_of(self, cookie: str | None) -> str | None:
        """The session id a cookie value carries, or ``None`` if it is missing or forged."""
        if not cookie:
            return None
        session, sep, signature = cookie.partition(".")
        if not sep or len(session) != _ID_LENGTH:
            return None
        if not hmac.compare_digest(signature, self._sign("cookie", session)):
            return None
        return session

    def token(self, session: str) -> str:
        """The session's CSRF token (shown in its page, sent back with every POST)."""
        return self._sign("csrf", session)

    def token_ok(self, session: str, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.token(session))

    def _sign(self, purpose: str, session: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}:{session}".encode(), hashlib.sha256).digest())
