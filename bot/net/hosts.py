"""Which URLs may carry a bot token: the download-host rule both platform adapters apply.

A token is sent only to an exact origin (scheme, host and port) on an allow-list. URLs are
judged as the :class:`yarl.URL` that aiohttp then connects with, so the check and the
connection cannot read one URL two ways (``https://files.slack.com@evil.com/`` is a
request to ``evil.com``, and yarl says so). Hosts compare in their ASCII (IDNA) form,
exactly: no suffix match, no trailing-dot variant, no userinfo.

Redirects are the caller's to follow (aiohttp ``allow_redirects=False``), hop by hop, so
that each hop is judged again: :func:`redirect_target` resolves a ``Location`` and refuses
anything but http(s).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from yarl import URL

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
_SCHEMES = ("http", "https")


@dataclass(frozen=True, slots=True)
class Origin:
    """Scheme, ASCII host and effective port of an absolute http(s) URL."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: URL) -> Origin | None:
        """``url``'s origin; ``None`` unless absolute http(s) without userinfo."""
        if url.scheme not in _SCHEMES or not url.raw_host or url.port is None:
            return None
        if url.raw_user is not None or url.raw_password is not None:
            return None
        return cls(scheme=url.scheme, host=url.raw_host, port=url.port)


def parse_url(raw: str | URL) -> URL | None:
    """``raw`` as the URL aiohttp would request, or ``None`` if yarl refuses it."""
    if isinstance(raw, URL):
        return raw
    try:
        return URL(raw)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class TokenHosts:
    """The origins a bot token may be sent to."""

    origins: frozenset[Origin]

    @classmethod
    def same_origin(cls, base: str | URL) -> TokenHosts:
        """Only ``base``'s own origin, whatever its scheme (the API server itself)."""
        url = parse_url(base)
        origin = Origin.of(url) if url is not None else None
        return cls(origins=frozenset({origin} if origin else ()))

    @classmethod
    def for_api(cls, api_base: str, *, https_hosts: Iterable[str] = ()) -> TokenHosts:
        """``https_hosts`` over HTTPS (port 443), plus ``api_base``'s origin if it is HTTPS,
        or plain HTTP on a loopback host (a local test double)."""
        origins = {Origin(scheme="https", host=h.lower(), port=443) for h in https_hosts}
        url = parse_url(api_base)
        base = Origin.of(url) if url is not None else None
        if base is not None and (base.scheme == "https" or is_loopback(base.host)):
            origins.add(base)
        return cls(origins=frozenset(origins))

    def allows(self, url: URL) -> bool:
        """Whether a request to ``url`` may carry the token."""
        origin = Origin.of(url)
        return origin is not None and origin in self.origins


def redirect_target(current: URL, location: str | None) -> URL | None:
    """Where a redirect from ``current`` points; ``None`` if missing, malformed or not
    http(s) (``file:``, ``ftp:``, ``javascript:``…)."""
    if not location:
        return None
    target = parse_url(location)
    if target is None:
        return None
    try:
        target = current.join(target)
    except ValueError:
        return None
    return target if target.scheme in _SCHEMES and target.raw_host else None
