"""The playground's session cookie and CSRF token (bot.web.playground.session)."""

from __future__ import annotations

from bot.web.playground.session import SessionSigner


def test_a_cookie_carries_its_session_and_nothing_else() -> None:
    signer = SessionSigner(secret="sk-one")
    session = signer.new_session()
    assert signer.new_session() != session
    cookie = signer.cookie_value(session)
    assert signer.session_of(cookie) == session
    # Forged, tampered, or signed with another key: no session.
    other = signer.new_session()
    assert signer.session_of(f"{other}.{cookie.split('.', 1)[1]}") is None
    assert signer.session_of(cookie[:-1] + ("A" if cookie[-1] != "A" else "B")) is None
    assert SessionSigner(secret="sk-two").session_of(cookie) is None
    assert signer.session_of(session) is None
    assert signer.session_of("") is None
    assert signer.session_of(None) is None


def test_the_token_belongs_to_one_session() -> None:
    signer = SessionSigner(secret="sk-one")
    one, two = signer.new_session(), signer.new_session()
    assert signer.token_ok(one, signer.token(one))
    assert not signer.token_ok(one, signer.token(two))
    assert not signer.token_ok(one, None)
    assert not signer.token_ok(one, signer.cookie_value(one).split(".", 1)[1])  # not the cookie's
    # The same key (the same DashScope key) accepts it after a restart, on any replica.
    assert SessionSigner(secret="sk-one").token_ok(one, signer.token(one))
