"""Sign-in link tokens and session cookies: signed, salted per purpose, and expiring."""

from __future__ import annotations

from bot.engine.ports import ConsoleScope
from bot.web.console.signing import Signer

SCOPE = ConsoleScope(platform="telegram", user_id="42", chats=(3, 5))


def test_a_link_token_gives_back_its_nonce_until_it_expires() -> None:
    signer = Signer(key="k" * 32)
    token = signer.link_token("nonce-1")
    assert signer.link_nonce(token) == "nonce-1"
    assert signer.link_nonce(token, max_age=-1) is None  # older than allowed


def test_a_tampered_or_foreign_token_is_refused() -> None:
    signer = Signer(key="k" * 32)
    token = signer.link_token("nonce-1")
    assert signer.link_nonce(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]) is None
    assert Signer(key="other" * 8).link_nonce(token) is None  # another key
    assert signer.link_nonce("garbage") is None


def test_a_session_cookie_holds_the_scope_and_a_csrf_token() -> None:
    signer = Signer(key="k" * 32)
    cookie, made = signer.session_cookie(SCOPE)
    read = signer.session(cookie)
    assert read is not None
    assert read.scope == SCOPE and read.csrf == made.csrf and len(made.csrf) >= 24
    assert read.may_see(5) and not read.may_see(4)
    assert read.csrf_ok(made.csrf) and not read.csrf_ok("x") and not read.csrf_ok(None)
    everything = signer.session(
        signer.session_cookie(ConsoleScope(platform="slack", user_id="U1", chats=None))[0]
    )
    assert everything is not None and everything.may_see(12345)


def test_a_session_cookie_expires_and_cannot_be_forged() -> None:
    signer = Signer(key="k" * 32)
    cookie, _ = signer.session_cookie(SCOPE)
    assert signer.session(cookie, max_age=-1) is None
    assert signer.session(cookie.replace(".", "x", 1)) is None
    assert signer.session(None) is None and signer.session("") is None
    # A sign-in token is not a session (its salt differs), nor the other way round.
    assert signer.session(signer.link_token("n")) is None
    assert signer.link_nonce(cookie) is None
