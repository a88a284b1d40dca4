"""Black-box acceptance tests for Slack: the real ``voicebot run`` against fake Slack/DashScope.

The bot is driven only through the network: signed Events API / slash command / interactivity
requests to ``POST /slack/events`` (HTTP mode) or envelopes over the Socket Mode websocket, and
whatever it does is observed on the fake Slack Web API and the fake DashScope server.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import signal
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.slack_server import (
    DASHSCOPE_KEY,
    SLACK_APP_TOKEN,
    SLACK_BOT_ID,
    SLACK_BOT_TOKEN,
    SLACK_BOT_USER,
    SLACK_TEAM,
    SlackMessage,
    SlackServers,
    wait_for,
)
from tests.audio.synth import FORMATS, encode, png_bytes, speech_like
from tests.process import LoggedBot, patience

# One worker runs the whole module: one ``voicebot run`` serves all its tests (module
# fixture), instead of one per xdist worker (see tests/acceptance/conftest.py).
pytestmark = pytest.mark.xdist_group("slack-blackbox")

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
REPLY = "Hello from the fake model."
LATER_REPLY = "The later answer."
LATER_TEXT = "one more question"
DEFAULT_MODEL = "qwen-audio-turbo-latest"

_ids = itertools.count(1)


def _uid(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 1000:03d}{next(_ids):05d}"


def _ts() -> str:
    return f"{int(time.time())}.{next(_ids):06d}"


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def slack_servers() -> Iterator[SlackServers]:
    servers = SlackServers()
    servers.start()
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def slack_clips() -> dict[str, bytes]:
    x = speech_like(2.0)
    return {"webm": encode(x, FORMATS["clip.webm"]), "mp4": encode(x, FORMATS["clip.m4a"])}


class SlackBot(LoggedBot):
    """``voicebot run`` (HTTP_PORT=0, JSON logs in ``bot.log``), ready before any test."""

    @property
    def url(self) -> str:
        return f"{self.base}/slack/events"

    def duplicates(self) -> float:
        """Events the bot recognised as already processed (retries, redeliveries)."""
        return self.metric("voicebot_duplicate_events_total", {"platform": "slack"})


def _start_bot(servers: SlackServers, tmp: Path, mode: str) -> SlackBot:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bot.db",
        "DASHSCOPE_API_KEY": DASHSCOPE_KEY,
        "DASHSCOPE_BASE_URL": f"http://127.0.0.1:{servers.dashscope_port}/api/v1",
        "DASHSCOPE_MAX_RETRIES": "0",
        "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
        "SLACK_MODE": mode,
        "SLACK_API_BASE": f"{servers.slack.base}/api/",
        "HTTP_HOST": "127.0.0.1",
        "USER_RATE_LIMIT": "0",
        "AUDIO_WORKERS": "1",
        "LOG_LEVEL": "INFO",
    }
    if mode == "http":
        env["SLACK_SIGNING_SECRET"] = SLACK_SECRET
    else:
        env["SLACK_APP_TOKEN"] = SLACK_APP_TOKEN
    bot = SlackBot(env, cwd=tmp)
    try:
        bot.wait_ready()  # /slack/events answers 503 until then
    except BaseException:
        bot.close()
        raise
    return bot


@pytest.fixture(scope="module")
def slack_http_bot(
    slack_servers: SlackServers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SlackBot]:
    bot = _start_bot(slack_servers, tmp_path_factory.mktemp("slack_http"), "http")
    try:
        yield bot
        code, took = bot.stop(signal.SIGTERM)
        assert took < 10
        assert code == 0, bot.output()
    finally:
        bot.close()


@pytest.fixture(autouse=True)
def _slack_reset(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "slack_servers" in request.fixturenames:
        servers: SlackServers = request.getfixturevalue("slack_servers")
        servers.slack.reset()
        servers.slack.users.clear()
        servers.dashscope.reply = ["Hello ", "from the ", "fake model."]
        servers.dashscope.delay = 0.0
        servers.dashscope.error = None


# ---------------------------------------------------------------------------- payloads
def _sign(body: bytes, ts: int | None = None, secret: str = SLACK_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    base = b"v0:" + stamp.encode() + b":" + body
    sig = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": sig}


def _post_json(bot: SlackBot, payload: dict[str, Any], **headers: str) -> httpx.Response:
    body = json.dumps(payload).encode()
    hdrs = {"Content-Type": "application/json", **_sign(body), **headers}
    return httpx.post(bot.url, content=body, headers=hdrs, timeout=10)


def _post_form(bot: SlackBot, form: dict[str, str]) -> httpx.Response:
    body = urllib.parse.urlencode(form).encode()
    hdrs = {"Content-Type": "application/x-www-form-urlencoded", **_sign(body)}
    return httpx.post(bot.url, content=body, headers=hdrs, timeout=10)


def _clip_file(
    servers: SlackServers, data: bytes, kind: str = "webm", *, login_page: bool = False
) -> dict[str, Any]:
    fid = _uid("F")
    mimetype = "audio/webm" if kind == "webm" else "audio/mp4"
    url = servers.slack.add_file(fid, data, mimetype, login_page=login_page)
    return {
        "id": fid,
        "created": int(time.time()),
        "timestamp": int(time.time()),
        "name": f"audio_message.{kind if kind == 'webm' else 'm4a'}",
        "title": "audio_message",
        "mimetype": mimetype,
        "filetype": kind if kind == "webm" else "m4a",
        "pretty_type": "WebM" if kind == "webm" else "MPEG 4 Audio",
        "user": "U0",
        "mode": "hosted",
        "editable": False,
        "is_external": False,
        "external_type": "",
        "size": len(data),
        "url_private": url,
        "url_private_download": url,
        "subtype": "slack_audio",
        "media_display_type": "audio",
        "duration_ms": 2000,
        "transcription": {"status": "processing"},
        "is_public": False,
        "has_rich_preview": False,
    }


def _message(
    channel: str,
    user: str,
    text: str,
    files: list[dict[str, Any]] | None,
    *,
    channel_type: str,
    ts: str | None = None,
    thread_ts: str | None = None,
    event_type: str = "message",
) -> dict[str, Any]:
    ts = ts or _ts()
    ev: dict[str, Any] = {
        "type": event_type,
        "text": text,
        "user": user,
        "ts": ts,
        "team": SLACK_TEAM,
        "channel": channel,
        "event_ts": ts,
        "client_msg_id": _uid("cm-"),
    }
    if event_type == "message":
        ev["channel_type"] = channel_type
    if files:
        for f in files:
            f["user"] = user
        ev["files"] = files
        ev["upload"] = False
        ev["display_as_bot"] = False
        if event_type == "message":
            ev["subtype"] = "file_share"
    if thread_ts:
        ev["thread_ts"] = thread_ts
    return ev


def _callback(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "token": "legacy-verification-token",
        "team_id": SLACK_TEAM,
        "context_team_id": SLACK_TEAM,
        "api_app_id": "A0SLACKAPP",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or _uid("Ev"),
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": SLACK_TEAM,
                "user_id": SLACK_BOT_USER,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def _command(
    servers: SlackServers, text: str, *, user: str, channel: str, channel_name: str
) -> dict[str, str]:
    rid = _uid("R")
    return {
        "token": "legacy-verification-token",
        "team_id": SLACK_TEAM,
        "team_domain": "fake",
        "channel_id": channel,
        "channel_name": channel_name,
        "user_id": user,
        "user_name": user.lower(),
        "command": "/voicebot",
        "text": text,
        "api_app_id": "A0SLACKAPP",
        "is_enterprise_install": "false",
        "response_url": f"{servers.slack.base}/response/{rid}",
        "trigger_id": f"{next(_ids)}.1.abcdef",
    }


def _replies(servers: SlackServers, channel: str, needle: str = REPLY) -> list[SlackMessage]:
    return [m for m in servers.slack.visible(channel) if needle in m.text]


def _final_reply(
    servers: SlackServers, channel: str, thread_ts: str | None = None, timeout: float | None = None
) -> SlackMessage:
    """Wait until the full reply is visible in ``channel`` (and finished, if streamed)."""
    timeout = patience(20) if timeout is None else timeout

    def done() -> SlackMessage | None:
        for m in _replies(servers, channel):
            if not m.streaming and (thread_ts is None or m.thread_ts == thread_ts):
                return m
        return None

    msg: SlackMessage | None = wait_for(done, timeout=timeout)
    assert msg is not None, (
        f"no finished reply in {channel}; visible: {servers.slack.visible(channel)}; "
        f"calls: {[(c.method, c.response.get('error')) for c in servers.slack.calls]}"
    )
    return msg


def _later_message_answered(
    bot: SlackBot,
    servers: SlackServers,
    channel: str,
    user: str,
    *,
    channel_type: str = "im",
    thread_ts: str | None = None,
    mention: bool = False,
) -> SlackMessage:
    """Send one more text message in the conversation and wait for its answer.

    The turns of a conversation run in the order their messages arrived, so once this later
    message is answered the bot is done with everything it got there before: what the
    conversation shows then is all that the earlier messages made the bot do.
    """
    servers.dashscope.error = None
    servers.dashscope.reply = ["The later ", "answer."]
    text = f"<@{SLACK_BOT_USER}> {LATER_TEXT}" if mention else LATER_TEXT
    event = _message(channel, user, text, None, channel_type=channel_type, thread_ts=thread_ts)
    assert _post_json(bot, _callback(event)).status_code == 200

    def answered() -> SlackMessage | None:
        return next(
            (
                m
                for m in servers.slack.visible(channel)
                if LATER_REPLY in m.text and not m.streaming and m.thread_ts == thread_ts
            ),
            None,
        )

    msg: SlackMessage | None = wait_for(answered, timeout=patience(20))
    assert msg is not None, f"the later message was not answered: {servers.slack.visible(channel)}"
    return msg


def _answer_text(resp: httpx.Response, servers: SlackServers, before: int) -> dict[str, Any]:
    """The ephemeral answer to a slash command: in the HTTP response or via response_url."""
    if resp.content.strip():
        try:
            body = resp.json()
        except ValueError:
            return {"text": resp.text}
        if isinstance(body, dict) and (body.get("text") or body.get("blocks")):
            return body

    def posted() -> dict[str, Any] | None:
        return servers.slack.responses[before] if len(servers.slack.responses) > before else None

    answer = wait_for(posted, timeout=patience(10))
    assert answer is not None, "no answer to the slash command"
    return dict(answer)


def _visible_text(answer: dict[str, Any]) -> str:
    return json.dumps(answer.get("text", "")) + json.dumps(answer.get("blocks", ""))


def _user_text(call_body: dict[str, Any]) -> str:
    msgs = call_body["input"]["messages"]
    user = [m for m in msgs if m["role"] == "user"][-1]
    return " ".join(str(c["text"]) for c in user["content"] if "text" in c)


def _has_audio(call_body: dict[str, Any]) -> bool:
    msgs = call_body["input"]["messages"]
    user = [m for m in msgs if m["role"] == "user"][-1]
    return any("audio" in c for c in user["content"])


def _slash(
    bot: SlackBot, servers: SlackServers, text: str, *, user: str, channel: str
) -> dict[str, Any]:
    """Run ``/voicebot <text>`` in ``channel``; its (ephemeral) answer."""
    before = len(servers.slack.responses)
    resp = _post_form(bot, _command(servers, text, user=user, channel=channel, channel_name="dm"))
    assert resp.status_code == 200
    return _answer_text(resp, servers, before)


def _ogg_seconds(ogg: bytes) -> float:
    """How long an OGG/Opus file plays, decoded frame by frame."""
    import io

    import av

    with av.open(io.BytesIO(ogg)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        samples = rate = 0
        for frame in container.decode(stream):
            samples += frame.samples
            rate = frame.sample_rate
    return samples / rate


# ---------------------------------------------------------------------------- HTTP mode
def test_slack_url_verification(slack_http_bot: SlackBot) -> None:
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    resp = _post_json(
        slack_http_bot,
        {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge, "type": "url_verification"},
    )
    assert resp.status_code == 200
    try:
        got = resp.json().get("challenge")
    except ValueError:
        got = resp.text
    assert got == challenge


def test_slack_rejects_unsigned_badly_signed_and_stale(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, user = _uid("D"), _uid("U")
    f = _clip_file(slack_servers, slack_clips["webm"])
    body = json.dumps(_callback(_message(channel, user, "", [f], channel_type="im"))).encode()
    url = slack_http_bot.url
    ctype = {"Content-Type": "application/json"}
    unsigned = httpx.post(url, content=body, headers=ctype, timeout=10)
    bad = httpx.post(
        url, content=body, headers={**ctype, **_sign(body, secret="not-the-secret")}, timeout=10
    )
    stale = httpx.post(
        url, content=body, headers={**ctype, **_sign(body, ts=int(time.time()) - 360)}, timeout=10
    )
    future = httpx.post(
        url, content=body, headers={**ctype, **_sign(body, ts=int(time.time()) + 360)}, timeout=10
    )
    form = urllib.parse.urlencode(
        _command(slack_servers, "help", user=user, channel=channel, channel_name="dm")
    ).encode()
    command = httpx.post(
        url,
        content=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    tampered_headers = {**ctype, **_sign(body)}
    tampered = httpx.post(url, content=body + b" ", headers=tampered_headers, timeout=10)
    codes = [r.status_code for r in (unsigned, bad, stale, future, command, tampered)]
    assert codes == [401] * 6
    # None of it reached the bot: a signed message sent after them is the first thing the
    # bot hears in the DM.
    ds_before = len(slack_servers.dashscope.calls)
    later = _later_message_answered(slack_http_bot, slack_servers, channel, user)
    assert slack_servers.slack.visible(channel) == [later]
    assert slack_servers.slack.downloads == []
    assert slack_servers.slack.responses == []
    (call,) = slack_servers.dashscope.calls[ds_before:]
    assert LATER_TEXT in _user_text(call.body) and not _has_audio(call.body)


@pytest.mark.parametrize("kind", ["webm", "mp4"])
def test_slack_dm_clip_is_downloaded_with_bot_token_and_answered(
    slack_http_bot: SlackBot,
    slack_servers: SlackServers,
    slack_clips: dict[str, bytes],
    kind: str,
) -> None:
    channel, user = _uid("D"), _uid("U")
    f = _clip_file(slack_servers, slack_clips[kind], kind)
    ds_before = len(slack_servers.dashscope.calls)
    resp = _post_json(
        slack_http_bot, _callback(_message(channel, user, "", [f], channel_type="im"))
    )
    assert resp.status_code == 200
    _final_reply(slack_servers, channel)
    downloads = [d for d in slack_servers.slack.downloads if d[0] == f["id"]]
    assert downloads
    assert all(auth == f"Bearer {SLACK_BOT_TOKEN}" for _, auth in downloads)
    new = slack_servers.dashscope.calls[ds_before:]
    assert len(new) == 1
    assert _has_audio(new[0].body)
    assert new[0].body["model"] == DEFAULT_MODEL


def test_slack_text_with_clip_is_the_instruction(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, user = _uid("D"), _uid("U")
    f = _clip_file(slack_servers, slack_clips["webm"])
    instruction = "What language is spoken here, and how does the speaker feel?"
    ds_before = len(slack_servers.dashscope.calls)
    _post_json(
        slack_http_bot, _callback(_message(channel, user, instruction, [f], channel_type="im"))
    )
    _final_reply(slack_servers, channel)
    new = slack_servers.dashscope.calls[ds_before:]
    assert len(new) == 1
    assert instruction in _user_text(new[0].body)
    assert _has_audio(new[0].body)


def test_slack_channel_clip_needs_a_mention_and_is_answered_in_thread(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, user = _uid("C"), _uid("U")
    ds_before = len(slack_servers.dashscope.calls)
    duplicates = slack_http_bot.duplicates()
    plain = _clip_file(slack_servers, slack_clips["webm"])
    resp = _post_json(
        slack_http_bot,
        _callback(_message(channel, user, "", [plain], channel_type="channel")),
    )
    assert resp.status_code == 200

    mentioned = _clip_file(slack_servers, slack_clips["webm"])
    ts = _ts()
    text = f"<@{SLACK_BOT_USER}> summarise this please"
    # Slack delivers both a message.channels event and an app_mention event for the post.
    _post_json(
        slack_http_bot,
        _callback(_message(channel, user, text, [mentioned], channel_type="channel", ts=ts)),
    )
    _post_json(
        slack_http_bot,
        _callback(
            _message(
                channel,
                user,
                text,
                [dict(mentioned)],
                channel_type="channel",
                ts=ts,
                event_type="app_mention",
            )
        ),
    )
    reply = _final_reply(slack_servers, channel, thread_ts=ts)
    assert reply.thread_ts == ts
    # The second delivery of the post was recognised as the same message; the plain clip,
    # posted before the mention, had long been dealt with: not downloaded, not answered.
    slack_http_bot.wait_metric(
        "voicebot_duplicate_events_total", {"platform": "slack"}, at_least=duplicates + 1
    )
    assert slack_servers.slack.visible(channel) == [reply]
    assert not [d for d in slack_servers.slack.downloads if d[0] == plain["id"]]
    new = slack_servers.dashscope.calls[ds_before:]
    assert len(new) == 1
    assert "summarise this please" in _user_text(new[0].body)


def test_slack_retried_event_is_answered_once(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, user = _uid("D"), _uid("U")
    f = _clip_file(slack_servers, slack_clips["webm"])
    payload = _callback(_message(channel, user, "", [f], channel_type="im"))
    ds_before = len(slack_servers.dashscope.calls)
    duplicates = slack_http_bot.duplicates()
    first = _post_json(slack_http_bot, payload)
    retry1 = _post_json(
        slack_http_bot,
        payload,
        **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    _final_reply(slack_servers, channel)
    retry2 = _post_json(
        slack_http_bot, payload, **{"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_error"}
    )
    assert [r.status_code for r in (first, retry1, retry2)] == [200, 200, 200]
    # Both retries were recognised as the event already handled.
    slack_http_bot.wait_metric(
        "voicebot_duplicate_events_total", {"platform": "slack"}, at_least=duplicates + 2
    )
    assert len(_replies(slack_servers, channel)) == 1
    assert len(slack_servers.dashscope.calls) - ds_before == 1


def test_slack_help_is_ephemeral_and_within_3s(
    slack_http_bot: SlackBot, slack_servers: SlackServers
) -> None:
    before = len(slack_servers.slack.responses)
    form = _command(slack_servers, "help", user=_uid("U"), channel=_uid("C"), channel_name="gen")
    start = time.monotonic()
    resp = _post_form(slack_http_bot, form)
    elapsed = time.monotonic() - start
    assert resp.status_code == 200
    assert elapsed < 3.0
    answer = _answer_text(resp, slack_servers, before)
    assert answer.get("response_type", "ephemeral") == "ephemeral"
    assert "/voicebot" in _visible_text(answer)
    assert slack_servers.slack.visible(form["channel_id"]) == []


def test_slack_model_change_is_for_admins_in_channels(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, member, admin = _uid("C"), _uid("U"), _uid("U")
    slack_servers.slack.users[member] = {"is_admin": False, "is_owner": False}
    slack_servers.slack.users[admin] = {"is_admin": True}
    target = "qwen2-audio-instruct"

    def clip_model() -> str:
        ds_before = len(slack_servers.dashscope.calls)
        ts = _ts()
        f = _clip_file(slack_servers, slack_clips["webm"])
        ev = _message(channel, member, f"<@{SLACK_BOT_USER}>", [f], channel_type="channel", ts=ts)
        _post_json(slack_http_bot, _callback(ev))
        _final_reply(slack_servers, channel, thread_ts=ts)
        new = slack_servers.dashscope.calls[ds_before:]
        assert len(new) == 1
        return str(new[0].body["model"])

    before = len(slack_servers.slack.responses)
    form = _command(
        slack_servers, f"model {target}", user=member, channel=channel, channel_name="general"
    )
    resp = _post_form(slack_http_bot, form)
    assert resp.status_code == 200
    answer = _answer_text(resp, slack_servers, before)
    assert answer.get("response_type", "ephemeral") == "ephemeral"
    assert clip_model() == DEFAULT_MODEL

    before = len(slack_servers.slack.responses)
    form = _command(
        slack_servers, f"model {target}", user=admin, channel=channel, channel_name="general"
    )
    resp = _post_form(slack_http_bot, form)
    assert resp.status_code == 200
    _answer_text(resp, slack_servers, before)
    assert clip_model() == target

    owner, other = _uid("U"), "qwen-audio-turbo-2024-12-04"
    slack_servers.slack.users[owner] = {"is_admin": False, "is_owner": True}
    before = len(slack_servers.slack.responses)
    form = _command(
        slack_servers, f"model {other}", user=owner, channel=channel, channel_name="general"
    )
    resp = _post_form(slack_http_bot, form)
    assert resp.status_code == 200
    _answer_text(resp, slack_servers, before)
    assert clip_model() == other


def test_slack_login_page_download_gives_short_error_and_no_model_call(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, user = _uid("D"), _uid("U")
    f = _clip_file(slack_servers, slack_clips["webm"], login_page=True)
    ds_before = len(slack_servers.dashscope.calls)
    _post_json(slack_http_bot, _callback(_message(channel, user, "", [f], channel_type="im")))

    def said() -> list[SlackMessage]:
        return [m for m in slack_servers.slack.visible(channel) if m.text and not m.streaming]

    msgs = wait_for(said, timeout=patience(15))
    assert msgs, f"no error message; calls: {[c.method for c in slack_servers.slack.calls]}"
    # The login page was what the download got (with the bot token).
    downloads = [d for d in slack_servers.slack.downloads if d[0] == f["id"]]
    assert downloads and all(auth == f"Bearer {SLACK_BOT_TOKEN}" for _, auth in downloads)
    assert len(slack_servers.dashscope.calls) == ds_before
    later = _later_message_answered(slack_http_bot, slack_servers, channel, user)
    (error,) = [m for m in slack_servers.slack.visible(channel) if m is not later]
    assert 0 < len(error.text) < 500
    assert "<html" not in error.text.lower()
    assert REPLY not in error.text
    # Only the later message reached the model.
    (call,) = slack_servers.dashscope.calls[ds_before:]
    assert LATER_TEXT in _user_text(call.body)


@pytest.mark.parametrize("error", ["not_allowed", "unknown_method"])
def test_slack_reply_arrives_when_streaming_is_unavailable(
    slack_http_bot: SlackBot,
    slack_servers: SlackServers,
    slack_clips: dict[str, bytes],
    error: str,
) -> None:
    slack_servers.slack.broken["chat.startStream"] = error
    channel, user = _uid("C"), _uid("U")
    ts = _ts()
    f = _clip_file(slack_servers, slack_clips["webm"])
    ev = _message(channel, user, f"<@{SLACK_BOT_USER}> hi", [f], channel_type="channel", ts=ts)
    _post_json(slack_http_bot, _callback(ev))
    reply = _final_reply(slack_servers, channel, thread_ts=ts)
    assert reply.text.strip().endswith(REPLY)
    assert slack_servers.slack.visible(channel) == [reply]
    # The bot did try to stream, and Slack refused it.
    tried = [
        c
        for c in slack_servers.slack.calls_to("chat.startStream")
        if c.args.get("channel") == channel
    ]
    assert tried and all(c.response.get("error") == error for c in tried)


def test_slack_update_rate_limited_reply_still_completes(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    words = [f"word{i} " for i in range(12)]
    slack_servers.dashscope.reply = words
    slack_servers.dashscope.delay = 0.25
    slack_servers.slack.broken["chat.startStream"] = "unknown_method"
    channel, user = _uid("C"), _uid("U")
    slack_servers.slack.inject(
        "chat.update",
        status=429,
        body={"ok": False, "error": "ratelimited"},
        headers={"Retry-After": "1"},
        match=lambda args: args.get("channel") == channel,
    )
    ts = _ts()
    f = _clip_file(slack_servers, slack_clips["webm"])
    ev = _message(channel, user, f"<@{SLACK_BOT_USER}> go", [f], channel_type="channel", ts=ts)
    _post_json(slack_http_bot, _callback(ev))
    full = "".join(words).strip()

    def complete() -> SlackMessage | None:
        for m in slack_servers.slack.visible(channel):
            if m.thread_ts == ts and full in m.text:
                return m
        return None

    msg = wait_for(complete, timeout=patience(25))
    assert msg is not None, (
        f"reply never completed: {slack_servers.slack.visible(channel)}; "
        f"calls: {[(c.method, c.response.get('error')) for c in slack_servers.slack.calls]}"
    )
    assert [m for m in slack_servers.slack.visible(channel) if full in m.text] == [msg]
    # The rate limit was served, and waited out before the next chat.update.
    (limited,) = slack_servers.slack.served("chat.update", channel)
    later = [
        c
        for c in slack_servers.slack.calls_to("chat.update")
        if c.args.get("channel") == channel and c.at > limited.at
    ]
    assert later and later[0].at - limited.at >= 0.9, "no retry before Retry-After passed"


def test_slack_message_shortcut_opens_a_modal(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, user = _uid("C"), _uid("U")
    f = _clip_file(slack_servers, slack_clips["webm"])
    msg = _message(channel, _uid("U"), "", [f], channel_type="channel")
    trigger = f"{next(_ids)}.2.trigger"
    payload = {
        "type": "message_action",
        "token": "legacy-verification-token",
        "action_ts": _ts(),
        "team": {"id": SLACK_TEAM, "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": SLACK_TEAM, "name": "u"},
        "channel": {"id": channel, "name": "general"},
        "is_enterprise_install": False,
        "callback_id": "ask_about_audio",
        "trigger_id": trigger,
        "response_url": f"{slack_servers.slack.base}/response/{_uid('R')}",
        "message_ts": msg["ts"],
        "message": {k: v for k, v in msg.items() if k not in ("channel", "channel_type")},
    }
    start = time.monotonic()
    resp = _post_form(slack_http_bot, {"payload": json.dumps(payload)})
    elapsed = time.monotonic() - start
    assert resp.status_code == 200
    assert elapsed < 3.0
    opened = wait_for(lambda: slack_servers.slack.calls_to("views.open"), timeout=patience(5))
    assert opened, [c.method for c in slack_servers.slack.calls]
    assert opened[0].args["trigger_id"] == trigger
    assert opened[0].response.get("ok") is True


def test_slack_event_is_acked_within_3s_and_unseen_retry_is_answered(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    # The original delivery never reached the bot; Slack's first retry must still be answered.
    slack_servers.dashscope.delay = 0.3
    channel, user = _uid("D"), _uid("U")
    f = _clip_file(slack_servers, slack_clips["webm"])
    payload = _callback(_message(channel, user, "", [f], channel_type="im"))
    start = time.monotonic()
    resp = _post_json(
        slack_http_bot, payload, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"}
    )
    elapsed = time.monotonic() - start
    assert resp.status_code == 200
    assert elapsed < 3.0
    _final_reply(slack_servers, channel)


def test_slack_ignores_its_own_messages_and_edits(
    slack_http_bot: SlackBot, slack_servers: SlackServers
) -> None:
    channel, user = _uid("D"), _uid("U")
    ds_before = len(slack_servers.dashscope.calls)
    own = _message(channel, SLACK_BOT_USER, REPLY, None, channel_type="im")
    own["bot_id"] = SLACK_BOT_ID
    own["app_id"] = "A0SLACKAPP"
    bot_message = _message(channel, SLACK_BOT_USER, REPLY, None, channel_type="im")
    bot_message.pop("user")
    bot_message.update({"subtype": "bot_message", "bot_id": SLACK_BOT_ID, "username": "voicebot"})
    edited_ts = _ts()
    changed = {
        "type": "message",
        "subtype": "message_changed",
        "channel": channel,
        "channel_type": "im",
        "hidden": True,
        "ts": _ts(),
        "event_ts": _ts(),
        "message": {"type": "message", "user": user, "text": "edited words", "ts": edited_ts},
        "previous_message": {"type": "message", "user": user, "text": "words", "ts": edited_ts},
    }
    for ev in (own, bot_message, changed):
        assert _post_json(slack_http_bot, _callback(ev)).status_code == 200
    # A user's message after them is the first thing the bot answers in the DM.
    later = _later_message_answered(slack_http_bot, slack_servers, channel, user)
    assert slack_servers.slack.visible(channel) == [later]
    (call,) = slack_servers.dashscope.calls[ds_before:]
    assert LATER_TEXT in _user_text(call.body) and "edited words" not in _user_text(call.body)


@pytest.mark.parametrize("event_type", ["message", "app_mention"])
def test_slack_mention_with_clip_alone_is_answered(
    slack_http_bot: SlackBot,
    slack_servers: SlackServers,
    slack_clips: dict[str, bytes],
    event_type: str,
) -> None:
    channel, user = _uid("C"), _uid("U")
    ts = _ts()
    f = _clip_file(slack_servers, slack_clips["mp4"], "mp4")
    text = f"<@{SLACK_BOT_USER}> who is speaking?"
    ev = _message(channel, user, text, [f], channel_type="channel", ts=ts, event_type=event_type)
    ds_before = len(slack_servers.dashscope.calls)
    _post_json(slack_http_bot, _callback(ev))
    reply = _final_reply(slack_servers, channel, thread_ts=ts)
    assert reply.thread_ts == ts
    (call,) = slack_servers.dashscope.calls[ds_before:]
    assert _has_audio(call.body)
    assert "who is speaking?" in _user_text(call.body)
    assert SLACK_BOT_USER not in _user_text(call.body)  # the mention is not the question


def test_slack_dm_thread_clip_is_answered_in_the_thread(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, user = _uid("D"), _uid("U")
    parent = _ts()
    f = _clip_file(slack_servers, slack_clips["webm"])
    ev = _message(channel, user, "", [f], channel_type="im", thread_ts=parent)
    _post_json(slack_http_bot, _callback(ev))
    reply = _final_reply(slack_servers, channel, thread_ts=parent)
    assert reply.thread_ts == parent


def test_slack_dm_text_follow_up_keeps_the_audio_in_context(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, user = _uid("D"), _uid("U")
    f = _clip_file(slack_servers, slack_clips["webm"])
    _post_json(slack_http_bot, _callback(_message(channel, user, "", [f], channel_type="im")))
    _final_reply(slack_servers, channel)
    ds_before = len(slack_servers.dashscope.calls)
    slack_servers.dashscope.reply = ["Second ", "answer."]
    follow = "And what was the second word?"
    _post_json(slack_http_bot, _callback(_message(channel, user, follow, None, channel_type="im")))
    assert wait_for(
        lambda: _replies(slack_servers, channel, "Second answer."), timeout=patience(20)
    )
    new = slack_servers.dashscope.calls[ds_before:]
    assert len(new) == 1
    msgs = new[0].body["input"]["messages"]
    assert follow in _user_text(new[0].body)
    assert any("audio" in c for m in msgs if m["role"] == "user" for c in m["content"])
    assert any(m["role"] == "assistant" for m in msgs)


@pytest.mark.parametrize("case", ["oversize", "image"])
def test_slack_unusable_file_gets_a_short_message_and_no_model_call(
    slack_http_bot: SlackBot,
    slack_servers: SlackServers,
    slack_clips: dict[str, bytes],
    case: str,
) -> None:
    channel, user = _uid("D"), _uid("U")
    if case == "oversize":
        f = _clip_file(slack_servers, slack_clips["webm"])
        f["size"] = 200 * 1024 * 1024
    else:
        f = _clip_file(slack_servers, png_bytes())
        f.update(mimetype="image/png", filetype="png", name="screenshot.png", pretty_type="PNG")
        f.pop("subtype")
        f.pop("duration_ms")
        f["media_display_type"] = "unknown"
        f["size"] = len(png_bytes())
    ds_before = len(slack_servers.dashscope.calls)
    _post_json(slack_http_bot, _callback(_message(channel, user, "", [f], channel_type="im")))
    msgs = wait_for(lambda: slack_servers.slack.visible(channel), timeout=patience(15))
    assert msgs, [c.method for c in slack_servers.slack.calls]
    later = _later_message_answered(slack_http_bot, slack_servers, channel, user)
    (told,) = [m for m in slack_servers.slack.visible(channel) if m is not later]
    assert 0 < len(told.text) < 500
    assert REPLY not in told.text
    # Only the later message reached the model.
    (call,) = slack_servers.dashscope.calls[ds_before:]
    assert LATER_TEXT in _user_text(call.body)
    if case == "oversize":
        assert not [d for d in slack_servers.slack.downloads if d[0] == f["id"]]


def test_slack_post_message_rate_limited_reply_still_arrives(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, user = _uid("D"), _uid("U")
    slack_servers.slack.inject(
        "chat.postMessage",
        status=429,
        body={"ok": False, "error": "ratelimited"},
        headers={"Retry-After": "1"},
        match=lambda args: args.get("channel") == channel,
    )
    f = _clip_file(slack_servers, slack_clips["webm"])
    _post_json(slack_http_bot, _callback(_message(channel, user, "", [f], channel_type="im")))
    reply = _final_reply(slack_servers, channel)
    assert slack_servers.slack.visible(channel) == [reply]  # posted once, not twice
    (limited,) = slack_servers.slack.served("chat.postMessage", channel)
    posts = [
        c
        for c in slack_servers.slack.calls_to("chat.postMessage")
        if c.args.get("channel") == channel and c.at > limited.at
    ]
    assert posts and posts[0].at - limited.at >= 0.9, "no retry before Retry-After passed"


def test_slack_long_streamed_reply_is_shown_whole(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    pieces = [f"{i:05d} " + "lorem ipsum dolor sit amet " * 3 + "\n" for i in range(180)]
    slack_servers.dashscope.reply = pieces
    channel, user = _uid("C"), _uid("U")
    ts = _ts()
    f = _clip_file(slack_servers, slack_clips["webm"])
    ev = _message(channel, user, f"<@{SLACK_BOT_USER}> talk", [f], channel_type="channel", ts=ts)
    _post_json(slack_http_bot, _callback(ev))
    last = f"{len(pieces) - 1:05d} "

    def finished() -> list[SlackMessage] | None:
        msgs = [m for m in slack_servers.slack.visible(channel) if m.thread_ts == ts]
        if msgs and not any(m.streaming for m in msgs) and any(last in m.text for m in msgs):
            return msgs
        return None

    msgs = wait_for(finished, timeout=patience(30))
    assert msgs, (
        f"calls: {[(c.method, c.response.get('error')) for c in slack_servers.slack.calls]}"
    )
    shown = "".join(m.text for m in msgs)
    for i in range(len(pieces)):
        assert f"{i:05d} " in shown


@pytest.mark.parametrize("sub", ["new", "model", "settings", "usage", "forget", "frobnicate"])
def test_slack_subcommands_answer_ephemerally_within_3s(
    slack_http_bot: SlackBot, slack_servers: SlackServers, sub: str
) -> None:
    before = len(slack_servers.slack.responses)
    channel = _uid("D")
    form = _command(slack_servers, sub, user=_uid("U"), channel=channel, channel_name="dm")
    start = time.monotonic()
    resp = _post_form(slack_http_bot, form)
    elapsed = time.monotonic() - start
    assert resp.status_code == 200
    assert elapsed < 3.0
    answer = _answer_text(resp, slack_servers, before)
    assert answer.get("response_type", "ephemeral") == "ephemeral"
    assert _visible_text(answer).strip('"') != ""
    assert slack_servers.slack.visible(channel) == []


def test_slack_video_mp4_clip_is_answered(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, user = _uid("D"), _uid("U")
    f = _clip_file(slack_servers, slack_clips["mp4"], "mp4")
    f.update(mimetype="video/mp4", filetype="mp4", name="audio_message.mp4")
    slack_servers.slack.files[f["id"]].content_type = "video/mp4"
    ds_before = len(slack_servers.dashscope.calls)
    _post_json(slack_http_bot, _callback(_message(channel, user, "", [f], channel_type="im")))
    _final_reply(slack_servers, channel)
    assert [d for d in slack_servers.slack.downloads if d[0] == f["id"]]
    (call,) = slack_servers.dashscope.calls[ds_before:]
    assert _has_audio(call.body)  # the video's sound was heard


def test_slack_two_clips_in_one_message_are_both_heard(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, user = _uid("D"), _uid("U")
    files = [
        _clip_file(slack_servers, slack_clips["webm"]),
        _clip_file(slack_servers, slack_clips["mp4"], "mp4"),
    ]
    ds_before = len(slack_servers.dashscope.calls)
    _post_json(
        slack_http_bot,
        _callback(_message(channel, user, "compare these", files, channel_type="im")),
    )
    _final_reply(slack_servers, channel)
    new = slack_servers.dashscope.calls[ds_before:]
    assert len(new) == 1
    user_msg = [m for m in new[0].body["input"]["messages"] if m["role"] == "user"][-1]
    assert sum(1 for c in user_msg["content"] if "audio" in c) >= 2


def test_slack_thread_follow_up_without_mention_is_answered(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, user = _uid("C"), _uid("U")
    ts = _ts()
    f = _clip_file(slack_servers, slack_clips["webm"])
    ev = _message(channel, user, f"<@{SLACK_BOT_USER}> hi", [f], channel_type="channel", ts=ts)
    _post_json(slack_http_bot, _callback(ev))
    _final_reply(slack_servers, channel, thread_ts=ts)
    slack_servers.dashscope.reply = ["Thread ", "follow-up."]
    ds_before = len(slack_servers.dashscope.calls)
    follow = _message(channel, user, "and louder?", None, channel_type="channel", thread_ts=ts)
    _post_json(slack_http_bot, _callback(follow))

    def answered() -> list[SlackMessage]:
        return [
            m
            for m in _replies(slack_servers, channel, "Thread follow-up.")
            if m.thread_ts == ts and not m.streaming
        ]

    assert wait_for(answered, timeout=patience(20)), slack_servers.slack.visible(channel)
    new = slack_servers.dashscope.calls[ds_before:]
    assert len(new) == 1
    assert "and louder?" in _user_text(new[0].body)


@pytest.mark.parametrize("error", ["before", "midstream"])
def test_slack_model_error_is_told_to_the_user(
    slack_http_bot: SlackBot,
    slack_servers: SlackServers,
    slack_clips: dict[str, bytes],
    error: str,
) -> None:
    slack_servers.dashscope.error = error
    slack_servers.dashscope.reply = ["Partial ", "answer ", "never finished."]
    channel, user = _uid("C"), _uid("U")
    ts = _ts()
    f = _clip_file(slack_servers, slack_clips["webm"])
    ds_before = len(slack_servers.dashscope.calls)
    ev = _message(channel, user, f"<@{SLACK_BOT_USER}> hi", [f], channel_type="channel", ts=ts)
    _post_json(slack_http_bot, _callback(ev))

    def told() -> list[SlackMessage]:
        msgs = [m for m in slack_servers.slack.visible(channel) if m.thread_ts == ts]
        return msgs if msgs and not any(m.streaming for m in msgs) else []

    msgs = wait_for(told, timeout=patience(20))
    assert msgs, (
        f"{slack_servers.slack.visible(channel)}; "
        f"calls: {[(c.method, c.response.get('error')) for c in slack_servers.slack.calls]}"
    )
    # The model was asked once (no retries are configured) and answered with the error.
    assert len(slack_servers.dashscope.calls) == ds_before + 1
    # Once a later message in the thread is answered, the failed turn is over for good.
    later = _later_message_answered(
        slack_http_bot,
        slack_servers,
        channel,
        user,
        channel_type="channel",
        thread_ts=ts,
        mention=True,
    )
    told_user = [m for m in slack_servers.slack.visible(channel) if m is not later]
    assert told_user and all(0 < len(m.text) < 500 for m in told_user), told_user
    shown = " ".join(m.text for m in told_user)
    assert "never finished." not in shown
    assert "{" not in shown  # no raw JSON / error payloads


def test_slack_forget_in_channel_is_for_admins(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    channel, member, admin = _uid("C"), _uid("U"), _uid("U")
    slack_servers.slack.users[member] = {"is_admin": False}
    slack_servers.slack.users[admin] = {"is_admin": True}
    ts = _ts()
    f = _clip_file(slack_servers, slack_clips["webm"])
    ev = _message(channel, member, f"<@{SLACK_BOT_USER}> hi", [f], channel_type="channel", ts=ts)
    _post_json(slack_http_bot, _callback(ev))
    _final_reply(slack_servers, channel, thread_ts=ts)

    def forget_then_ask(user: str) -> dict[str, Any]:
        before = len(slack_servers.slack.responses)
        form = _command(slack_servers, "forget", user=user, channel=channel, channel_name="g")
        resp = _post_form(slack_http_bot, form)
        assert resp.status_code == 200
        answer = _answer_text(resp, slack_servers, before)
        assert answer.get("response_type", "ephemeral") == "ephemeral"
        # A confirmation button, if the bot asks for one, is pressed by the same user.
        for block in answer.get("blocks") or []:
            for el in block.get("elements", []) if isinstance(block, dict) else []:
                if el.get("type") == "button" and el.get("style") == "danger":
                    action = {
                        "type": "block_actions",
                        "team": {"id": SLACK_TEAM, "domain": "fake"},
                        "user": {"id": user, "username": "u", "team_id": SLACK_TEAM},
                        "channel": {"id": channel, "name": "g"},
                        "container": {"type": "message", "is_ephemeral": True},
                        "trigger_id": f"{next(_ids)}.4.trigger",
                        "response_url": form["response_url"],
                        "actions": [
                            {
                                "type": "button",
                                "action_id": el.get("action_id"),
                                "block_id": block.get("block_id"),
                                "value": el.get("value", ""),
                                "action_ts": _ts(),
                            }
                        ],
                    }
                    pressed = len(slack_servers.slack.responses)
                    _post_form(slack_http_bot, {"payload": json.dumps(action)})
                    # The press is answered (the ephemeral message updated) once it is done.
                    assert wait_for(
                        lambda: len(slack_servers.slack.responses) > pressed,  # noqa: B023
                        timeout=patience(10),
                    ), "no answer to the confirmation"
        ds_before = len(slack_servers.dashscope.calls)
        follow = _message(
            channel,
            member,
            f"<@{SLACK_BOT_USER}> and then?",
            None,
            channel_type="channel",
            thread_ts=ts,
        )
        _post_json(slack_http_bot, _callback(follow))
        assert wait_for(
            lambda: len(slack_servers.dashscope.calls) > ds_before, timeout=patience(20)
        )
        body: dict[str, Any] = slack_servers.dashscope.calls[ds_before].body
        return body

    kept = forget_then_ask(member)
    assert any(m["role"] == "assistant" for m in kept["input"]["messages"])
    gone = forget_then_ask(admin)
    assert not any(m["role"] == "assistant" for m in gone["input"]["messages"])


# ---------------------------------------------------------------------------- Socket Mode
def test_slack_socket_mode_acks_and_answers_then_stops_on_sigterm(
    slack_servers: SlackServers, slack_clips: dict[str, bytes], tmp_path: Path
) -> None:
    bot = _start_bot(slack_servers, tmp_path, "socket")
    try:
        assert slack_servers.socket_wait_connected(20), bot.output()
        opens = slack_servers.slack.calls_to("apps.connections.open")
        assert opens and opens[-1].token == SLACK_APP_TOKEN

        # A DM clip over the websocket: acked with its envelope_id, then answered.
        channel, user = _uid("D"), _uid("U")
        f = _clip_file(slack_servers, slack_clips["mp4"], "mp4")
        env_id = "a5b1c2d3-0000-4000-8000-" + f"{next(_ids):012d}"
        slack_servers.socket_send(
            {
                "envelope_id": env_id,
                "type": "events_api",
                "payload": _callback(_message(channel, user, "", [f], channel_type="im")),
                "accepts_response_payload": False,
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )

        def acked() -> bool:
            return any(m.get("envelope_id") == env_id for m in slack_servers.slack.ws_received)

        assert wait_for(acked, timeout=3), slack_servers.slack.ws_received
        _final_reply(slack_servers, channel)

        # A slash command over the websocket: answered ephemerally (ack payload or response_url).
        before = len(slack_servers.slack.responses)
        cmd_env = "c0mmand0-0000-4000-8000-" + f"{next(_ids):012d}"
        form = _command(slack_servers, "help", user=user, channel=channel, channel_name="dm")
        slack_servers.socket_send(
            {
                "envelope_id": cmd_env,
                "type": "slash_commands",
                "payload": form,
                "accepts_response_payload": True,
            }
        )

        def cmd_ack() -> dict[str, Any] | None:
            for m in slack_servers.slack.ws_received:
                if m.get("envelope_id") == cmd_env:
                    return m
            return None

        ack = wait_for(cmd_ack, timeout=3)
        assert ack is not None
        in_ack = ack.get("payload") or {}
        if not (in_ack.get("text") or in_ack.get("blocks")):
            got = wait_for(
                lambda: len(slack_servers.slack.responses) > before, timeout=patience(10)
            )
            assert got, "no answer to /voicebot help over Socket Mode"
            in_ack = slack_servers.slack.responses[before]
        assert "/voicebot" in _visible_text(in_ack)

        # Slack redelivers the same event (retry_attempt 1): acked, not answered twice.
        ds_before = len(slack_servers.dashscope.calls)
        duplicates = bot.duplicates()
        channel3 = _uid("D")
        f3 = _clip_file(slack_servers, slack_clips["webm"])
        payload3 = _callback(_message(channel3, user, "", [f3], channel_type="im"))
        for attempt, env in enumerate(("r3try000-0000-4000-8000-1", "r3try000-0000-4000-8000-2")):
            slack_servers.socket_send(
                {
                    "envelope_id": env,
                    "type": "events_api",
                    "payload": payload3,
                    "accepts_response_payload": False,
                    "retry_attempt": attempt,
                    "retry_reason": "timeout" if attempt else "",
                }
            )
        _final_reply(slack_servers, channel3)
        assert wait_for(
            lambda: (
                {m.get("envelope_id") for m in slack_servers.slack.ws_received}
                >= {"r3try000-0000-4000-8000-1", "r3try000-0000-4000-8000-2"}
            ),
            timeout=3,
        )
        bot.wait_metric(
            "voicebot_duplicate_events_total", {"platform": "slack"}, at_least=duplicates + 1
        )
        assert len(_replies(slack_servers, channel3)) == 1
        assert len(slack_servers.dashscope.calls) - ds_before == 1

        # The message shortcut over the websocket opens the modal.
        channel4 = _uid("C")
        f4 = _clip_file(slack_servers, slack_clips["webm"])
        msg4 = _message(channel4, _uid("U"), "", [f4], channel_type="channel")
        trigger = f"{next(_ids)}.3.trigger"
        slack_servers.socket_send(
            {
                "envelope_id": "1nt3ract-0000-4000-8000-000000000001",
                "type": "interactive",
                "payload": {
                    "type": "message_action",
                    "callback_id": "ask_about_audio",
                    "trigger_id": trigger,
                    "action_ts": _ts(),
                    "team": {"id": SLACK_TEAM, "domain": "fake"},
                    "user": {"id": user, "username": "u", "team_id": SLACK_TEAM},
                    "channel": {"id": channel4, "name": "general"},
                    "response_url": f"{slack_servers.slack.base}/response/{_uid('R')}",
                    "message_ts": msg4["ts"],
                    "message": {k: v for k, v in msg4.items() if k != "channel_type"},
                },
                "accepts_response_payload": False,
            }
        )
        opened = wait_for(lambda: slack_servers.slack.calls_to("views.open"), timeout=patience(5))
        assert opened and opened[-1].args["trigger_id"] == trigger

        # Slack asks the app to reconnect: it opens a new connection and keeps answering.
        generation = slack_servers.slack.ws_count
        slack_servers.socket_send(
            {"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "x"}}
        )
        assert wait_for(lambda: slack_servers.slack.ws_count > generation, timeout=patience(15))
        assert slack_servers.socket_wait_connected(10)
        channel5 = _uid("D")
        f5 = _clip_file(slack_servers, slack_clips["webm"])
        slack_servers.socket_send(
            {
                "envelope_id": "aft3rr3c-0000-4000-8000-000000000001",
                "type": "events_api",
                "payload": _callback(_message(channel5, user, "", [f5], channel_type="im")),
                "accepts_response_payload": False,
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        _final_reply(slack_servers, channel5)

        # SIGTERM while a reply is in flight: exit 0 within 10 s, nothing left streaming.
        slack_servers.dashscope.reply = [f"part{i} " for i in range(40)]
        slack_servers.dashscope.delay = 0.2
        channel2 = _uid("D")
        f2 = _clip_file(slack_servers, slack_clips["webm"])
        slack_servers.socket_send(
            {
                "envelope_id": "f1n15h00-0000-4000-8000-" + f"{next(_ids):012d}",
                "type": "events_api",
                "payload": _callback(_message(channel2, user, "", [f2], channel_type="im")),
                "accepts_response_payload": False,
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        assert wait_for(
            lambda: [m for m in slack_servers.slack.visible(channel2) if "part1" in m.text],
            timeout=patience(20),
        ), slack_servers.slack.visible(channel2)
        code, took = bot.stop(signal.SIGTERM)
        assert took < 10
        assert code == 0, bot.output()
        assert not [m for m in slack_servers.slack.visible(channel2) if m.streaming]
    finally:
        bot.close()


def test_slack_voice_reply_is_off_until_set_then_uploaded_into_the_thread(
    slack_http_bot: SlackBot, slack_servers: SlackServers, slack_clips: dict[str, bytes]
) -> None:
    slack, omni = slack_servers.slack, slack_servers.dashscope.omni
    channel, user = _uid("D"), _uid("U")
    _slash(slack_http_bot, slack_servers, "model qwen3-omni-flash", user=user, channel=channel)

    # Slack's default is text only, even for a clip to a model that can speak.
    before = len(omni.snapshot())
    parent = _ts()
    f = _clip_file(slack_servers, slack_clips["webm"])
    ev = _message(channel, user, "", [f], channel_type="im", thread_ts=parent)
    _post_json(slack_http_bot, _callback(ev))
    _final_reply(slack_servers, channel, thread_ts=parent)
    # Once a later message is answered, the bot is done with the clip's turn.
    omni.chunks = ("The later ", "answer.")
    try:
        _later_message_answered(slack_http_bot, slack_servers, channel, user, thread_ts=parent)
    finally:
        omni.chunks = ("Hello ", "from the ", "fake model.")
    calls = omni.snapshot()[before:]
    assert calls and calls[0].body["model"] == "qwen3-omni-flash"
    assert not any(c.wants_speech for c in calls)
    assert slack.calls_to("files.getUploadURLExternal") == [] and slack.uploads == {}

    answer = _slash(
        slack_http_bot, slack_servers, "settings voice_reply always", user=user, channel=channel
    )
    assert "voice_reply" in _visible_text(answer)
    before = len(omni.snapshot())
    parent = _ts()
    f = _clip_file(slack_servers, slack_clips["webm"])
    ev = _message(channel, user, "", [f], channel_type="im", thread_ts=parent)
    _post_json(slack_http_bot, _callback(ev))
    text = _final_reply(slack_servers, channel, thread_ts=parent)
    shared = wait_for(lambda: slack.shared_files(channel), timeout=patience(20))
    assert shared, f"no file shared; calls: {[c.method for c in slack.calls]}"
    (call,) = omni.snapshot()[before:]
    assert call.wants_speech and call.voice and call.speech

    (upload,) = shared
    assert upload.thread_ts == parent, "the voice reply is in the thread"
    assert upload.data is not None and upload.data[:4] == b"OggS"
    assert abs(_ogg_seconds(upload.data) - len(call.speech) / (2 * 24_000)) <= 0.05
    steps = [
        c.method
        for c in slack.calls
        if c.method in ("files.getUploadURLExternal", "files.completeUploadExternal")
    ]
    assert steps == ["files.getUploadURLExternal", "files.completeUploadExternal"]
    # The text once, then the file, both in the thread.
    in_thread = [m for m in slack.visible(channel) if m.thread_ts == parent]
    assert [m.text.strip() for m in in_thread if not m.files] == [REPLY]
    (note,) = [m for m in in_thread if m.files]
    assert note.files == [upload.file_id] and float(note.ts) > float(text.ts)
