"""The token-host rule (bot.net.hosts): exact origins, and the URL tricks it must not fall for."""

from __future__ import annotations

import pytest
from yarl import URL

from bot.adapters.slack.files import slack_file_hosts
from bot.net.hosts import TokenHosts, is_loopback, parse_url, redirect_target

SLACK = slack_file_hosts("https://slack.com/api/")
LOCAL = slack_file_hosts("http://127.0.0.1:8765/api/")


def allowed(hosts: TokenHosts, raw: str) -> bool:
    url = parse_url(raw)
    return url is not None and hosts.allows(url)


@pytest.mark.parametrize(
    "raw",
    [
        "https://files.slack.com/files-pri/T1-F1/download/a.m4a",
        "https://FILES.Slack.COM/files-pri/T1-F1/a.m4a",  # hosts are case-insensitive
        "HTTPS://files.slack.com/x",
        "https://files.slack.com:443/x",  # the default port, written out
        "https://slack.com/files-pri/T1-F1/a.m4a",  # SLACK_API_BASE's own host
        # Full-width letters: IDNA (UTS #46) maps them to ASCII, and aiohttp connects to
        # files.slack.com, which is what the rule judges.
        "https://ｆｉｌｅｓ.slack.com/x",
    ],
)
def test_slack_file_hosts_allow(raw: str) -> None:
    assert allowed(SLACK, raw)


@pytest.mark.parametrize(
    "raw",
    [
        "https://files.slack.com@evil.com/x",  # userinfo: the host is evil.com
        "https://user:pw@files.slack.com/x",  # userinfo on the right host: refused too
        "https://files.slack.com.evil.com/x",  # not a suffix match
        "https://evil.com/files.slack.com/x",
        "https://evil.com/?u=https://files.slack.com/",
        "https://evil.com#@files.slack.com/",
        "https://files.slack.com%40evil.com/x",
        "https://files.slack.com\\@evil.com/x",  # yarl refuses the backslash outright
        "https://evilfiles.slack.com/x",
        "https://slack.com.evil.com/x",
        "https://files.slack.com./x",  # the trailing-dot form is not the exact host
        "https://files.slаck.com/x",  # Cyrillic а: xn--slck-63d.com
        "https://files.slack.com:8443/x",  # another port
        "https://slack.com:444/x",
        "http://files.slack.com/x",  # plain HTTP to Slack
        "http://slack.com/x",
        "ftp://files.slack.com/x",
        "//files.slack.com/x",  # relative
        "/files-pri/T1-F1/x",
        "",
        "not a url",
    ],
)
def test_slack_file_hosts_refuse(raw: str) -> None:
    assert not allowed(SLACK, raw)


def test_loopback_http_api_base_allows_its_own_origin_only() -> None:
    assert allowed(LOCAL, "http://127.0.0.1:8765/files-pri/T1-F1/a.m4a")
    assert allowed(LOCAL, "https://files.slack.com/x")
    assert not allowed(LOCAL, "http://127.0.0.1:8766/x")  # port must match
    assert not allowed(LOCAL, "https://127.0.0.1:8765/x")  # and the scheme
    assert not allowed(LOCAL, "http://localhost:8765/x")  # and the host, as written
    assert not allowed(LOCAL, "http://127.0.0.2:8765/x")
    v6 = slack_file_hosts("http://[::1]:9000/api/")
    assert allowed(v6, "http://[::1]:9000/x") and not allowed(v6, "http://[::2]:9000/x")
    assert allowed(slack_file_hosts("http://localhost:9000/api/"), "http://localhost:9000/x")


@pytest.mark.parametrize(
    "base", ["http://slack.example.com/api/", "http://10.0.0.5:8080/api/", "http://127.1:80/"]
)
def test_plain_http_api_base_off_loopback_allows_nothing_of_its_own(base: str) -> None:
    hosts = slack_file_hosts(base)
    assert not allowed(hosts, base.replace("/api/", "/files-pri/T1-F1/a"))
    assert allowed(hosts, "https://files.slack.com/x")


def test_https_api_base_with_a_port_allows_that_port() -> None:
    gov = slack_file_hosts("https://slack-gov.example:8443/api/")
    assert allowed(gov, "https://slack-gov.example:8443/files-pri/x")
    assert not allowed(gov, "https://slack-gov.example/files-pri/x")


def test_same_origin_keeps_the_scheme_of_the_api_server() -> None:
    local = TokenHosts.same_origin("http://telegram-bot-api:8081/botTOKEN/getFile")
    assert allowed(local, "http://telegram-bot-api:8081/file/botTOKEN/voice/1.oga")
    assert not allowed(local, "https://telegram-bot-api:8081/file/botTOKEN/voice/1.oga")
    assert not allowed(local, "http://telegram-bot-api:8082/file/botTOKEN/voice/1.oga")
    public = TokenHosts.same_origin("https://api.telegram.org/botTOKEN/getFile")
    assert allowed(public, "https://api.telegram.org/file/botTOKEN/voice/1.oga")
    assert not allowed(public, "https://api.telegram.org.evil.com/file/botTOKEN/x")
    assert not TokenHosts.same_origin("not a url").origins


def test_is_loopback() -> None:
    assert all(is_loopback(h) for h in ("localhost", "127.0.0.1", "127.9.8.7", "::1"))
    assert not any(is_loopback(h) for h in ("localhost.evil.com", "128.0.0.1", "10.0.0.1", "::2"))


def test_redirect_target_resolves_and_refuses_other_schemes() -> None:
    here = URL("https://files.slack.com/files-pri/T1-F1/a.m4a")
    assert redirect_target(here, "/other") == URL("https://files.slack.com/other")
    assert redirect_target(here, "https://cdn.example/x?sig=1") == URL(
        "https://cdn.example/x?sig=1"
    )
    assert redirect_target(here, "//cdn.example/x") == URL("https://cdn.example/x")
    for bad in (None, "", "file:///etc/passwd", "ftp://files.slack.com/x", "javascript:x"):
        assert redirect_target(here, bad) is None
