"""A fake Slack: Web API, private file hosting, response_url and a Socket Mode websocket.

It follows the wire formats of the real service (see
``/work/shared/reference/telegram-slack-facts.md`` §5-7), not what the adapter happens to
send: the Bearer token is checked on every call, bodies may be JSON, form-encoded or query
parameters, ``chat.*Stream`` accept both ``markdown_text`` and ``chunks``, files are only
served with the bot token (an HTML login page otherwise), and ``ratelimited`` comes as
HTTP 429 with ``Retry-After``. Uploads take Slack's three steps (``files_upload_v2``):
``files.getUploadURLExternal`` (filename, length) → a POST of the bytes to the upload URL
it returns → ``files.completeUploadExternal`` (files, channel_id, thread_ts), which shares
the file into the channel or thread as a message of the bot (:attr:`FakeSlack.uploads`).

Tests script it (:meth:`FakeSlack.script`, :meth:`FakeSlack.add_file`, ...) and read what
the bot did from :attr:`FakeSlack.calls`, :attr:`FakeSlack.messages`,
:attr:`FakeSlack.responses` and :attr:`FakeSlack.acks`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import WSMsgType, web

LOGIN_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><title>Slack</title></head>'
    "<body><h1>Sign in to your workspace</h1></body></html>"
)

# What Slack leaves of a deleted thread parent that has replies.
TOMBSTONE_TEXT = "This message was deleted."
# Methods that need the app-level (xapp-) token rather than the bot token.
_APP_TOKEN_METHODS = {"apps.connections.open"}
# The real limit of one markdown_text value in the streaming methods.
STREAM_TEXT_LIMIT = 12_000
POST_TEXT_LIMIT = 40_000


@dataclass
class ApiCall:
    """One Web API request as the fake received it."""

    method: str
    args: dict[str, Any]
    token: str | None
    http_method: str
    content_type: str


@dataclass
class FakeMessage:
    """A message in a channel, as the bot (or a seeded user) left it."""

    channel: str
    ts: str
    text: str = ""
    user: str | None = None
    bot_id: str | None = None
    thread_ts: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    streaming: bool = False  # between chat.startStream and chat.stopStream
    streamed: bool = False  # created by chat.startStream
    updates: int = 0  # chat.update / chat.appendStream calls on it
    subtype: str | None = None  # "tombstone" once deleted with replies
    hidden: bool = False
    blocks: list[dict[str, Any]] = field(default_factory=list)  # Block Kit, as last set
    mrkdwn: bool = True  # False: posted with mrkdwn=false (shown as typed)

    def as_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text}
        if self.subtype:
            out["subtype"] = self.subtype
        if self.hidden:
            out["hidden"] = True
        if self.user:
            out["user"] = self.user
        if self.bot_id:
            out["bot_id"] = self.bot_id
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.files:
            out["files"] = self.files
        if self.blocks:
            out["blocks"] = self.blocks
        return out


@dataclass
class _Script:
    error: str
    status: int
    retry_after: int | None
    times: int


class FakeSlack:
    """The fake service. Start with :meth:`start` (the ``fake_slack`` fixture does)."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-bot-token",
        app_token: str = "xapp-1-test-app-token",
        team_id: str = "T0TEAM",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.calls: list[ApiCall] = []
        self.messages: list[FakeMessage] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.locales: dict[str, str] = {}  # user id → Slack locale (users.info include_locale)
        self.files: dict[str, dict[str, Any]] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.downloads: list[tuple[str, bool]] = []  # (file id, authorised)
        # files.getUploadURLExternal: file id -> (filename, declared length, bytes or None)
        self._pending_uploads: dict[str, tuple[str, int, bytes | None]] = {}
        self.uploads: list[dict[str, Any]] = []  # files shared by completeUploadExternal
        self.responses: list[dict[str, Any]] = []  # posts to response_url
        self.acks: dict[str, dict[str, Any]] = {}  # envelope_id -> ack message
        self.disabled: set[str] = set()  # methods answering unknown_method
        # Channels whose history the app may not read: conversations.replies answers this
        # error (e.g. "missing_scope", "not_in_channel").
        self.unreadable: dict[str, str] = {}
        self._scripts: dict[str, list[_Script]] = {}
        self._ts = itertools.count(1)
        self._ws: list[web.WebSocketResponse] = []
        self._ws_connected = asyncio.Event()
        self._ack_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        app.router.add_post("/response/{key}", self._response_url)
        app.router.add_get("/link/", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        for ws in list(self._ws):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        """The Web API base, as SLACK_API_BASE."""
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, key: str | None = None) -> str:
        return f"http://127.0.0.1:{self.port}/response/{key or uuid.uuid4().hex}"

    # --- scripting ---------------------------------------------------------------------

    def script(
        self,
        method: str,
        *,
        error: str = "ratelimited",
        status: int | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``error``.

        ``error="ratelimited"`` answers HTTP 429 with ``Retry-After`` (default 1 s), like Slack.
        """
        if error == "ratelimited":
            status = status or 429
            retry_after = 1 if retry_after is None else retry_after
        self._scripts.setdefault(method, []).append(
            _Script(error=error, status=status or 200, retry_after=retry_after, times=times)
        )

    def add_user(
        self, user_id: str, *, admin: bool = False, owner: bool = False, locale: str = "en-US"
    ) -> None:
        """A workspace member; ``locale`` is their Slack language, which ``users.info``
        returns only when asked with ``include_locale``, as Slack does."""
        self.locales[user_id] = locale
        self.users[user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": user_id.lower(),
            "is_admin": admin,
            "is_owner": owner,
            "is_primary_owner": False,
            "is_bot": False,
        }

    def add_file(
        self,
        data: bytes,
        *,
        name: str = "audio_message.m4a",
        mimetype: str = "audio/mp4",
        filetype: str = "m4a",
        subtype: str | None = "slack_audio",
        size: int | None = None,
        duration_ms: int | None = 3000,
    ) -> dict[str, Any]:
        """Host a file and return its file object as it appears in events."""
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        url = f"http://127.0.0.1:{self.port}/files-pri/{self.team_id}-{file_id}/{name}"
        obj: dict[str, Any] = {
            "id": file_id,
            "created": 1700000000,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": "U0USER",
            "mode": "hosted",
            "size": len(data) if size is None else size,
            "url_private": url,
            "url_private_download": url + "?download=1",
            "permalink": f"https://example.slack.com/files/U0USER/{file_id}/{name}",
        }
        if subtype is not None:
            obj["subtype"] = subtype
        if duration_ms is not None:
            obj["duration_ms"] = duration_ms
        self.files[file_id] = obj
        self.file_bytes[f"{self.team_id}-{file_id}"] = data
        return dict(obj)

    def seed_message(
        self,
        channel: str,
        *,
        text: str = "",
        user: str = "U0USER",
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
        ts: str | None = None,
    ) -> FakeMessage:
        """A message already in the channel (for conversations.replies)."""
        msg = FakeMessage(
            channel=channel,
            ts=ts or self.next_ts(),
            text=text,
            user=user,
            thread_ts=thread_ts,
            files=files or [],
        )
        self.messages.append(msg)
        return msg

    def delete_message(self, channel: str, ts: str) -> None:
        """Delete a message as a person would: a thread parent with replies stays as
        Slack's tombstone, anything else is gone."""
        msg = next(m for m in self.messages if m.channel == channel and m.ts == ts)
        if any(m.channel == channel and m.thread_ts == ts and m.ts != ts for m in self.messages):
            msg.subtype, msg.text, msg.hidden = "tombstone", TOMBSTONE_TEXT, True
            msg.user, msg.files = "USLACKBOT", []
        else:
            self.messages.remove(msg)

    def next_ts(self) -> str:
        return f"1700000{next(self._ts):03d}.{next(self._ts):06d}"

    # --- reading what the bot did -------------------------------------------------------

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def bot_messages(self, channel: str | None = None) -> list[FakeMessage]:
        return [
            m
            for m in self.messages
            if m.bot_id == self.bot_id and (channel is None or m.channel == channel)
        ]

    async def wait_for(self, predicate: Any, within: float = 20.0) -> None:
        """Wait until ``predicate()`` is true (re-checked after every request)."""

        async def loop() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(loop(), within)

    async def wait_for_reply(
        self, channel: str, *, count: int = 1, within: float = 20.0
    ) -> list[FakeMessage]:
        """Wait until ``count`` bot messages in ``channel`` are final (not streaming)."""

        def done() -> bool:
            msgs = self.bot_messages(channel)
            return len(msgs) >= count and not any(m.streaming for m in msgs)

        await self.wait_for(done, within)
        return self.bot_messages(channel)

    # --- Socket Mode ----------------------------------------------------------------------

    async def wait_connected(self, within: float = 10.0) -> None:
        await asyncio.wait_for(self._ws_connected.wait(), within)

    async def send_envelope(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        envelope_id: str | None = None,
    ) -> str:
        """Deliver an envelope (``events_api``, ``slash_commands``, ``interactive``)."""
        await self.wait_connected()
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        self._ack_waiters[envelope_id] = asyncio.get_running_loop().create_future()
        await self._ws[-1].send_str(json.dumps(envelope))
        return envelope_id

    async def wait_ack(self, envelope_id: str, within: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(asyncio.shield(self._ack_waiters[envelope_id]), within)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._ws.append(ws)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._ws),
                    "debug_info": {"host": "fake", "approximate_connection_time": 3600},
                    "connection_info": {"app_id": "A0APP"},
                }
            )
        )
        self._ws_connected.set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                env_id = data.get("envelope_id")
                if env_id:
                    self.acks[env_id] = data
                    waiter = self._ack_waiters.get(env_id)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(data)
        finally:
            self._ws.remove(ws)
            if not self._ws:
                self._ws_connected.clear()
        return ws

    # --- HTTP handlers -----------------------------------------------------------------

    async def _response_url(self, request: web.Request) -> web.Response:
        body = await request.json()
        body["_key"] = request.match_info["key"]
        self.responses.append(body)
        await self._notify()
        return web.Response(text="ok")

    async def _download(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["file_id"]
        authorised = request.headers.get("Authorization") == f"Bearer {self.bot_token}"
        self.downloads.append((key.split("-", 1)[-1], authorised))
        await self._notify()
        if not authorised or key not in self.file_bytes:
            # What Slack does: a 200 with the sign-in page, not an error status.
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        return web.Response(body=self.file_bytes[key], content_type="application/octet-stream")

    async def _upload(self, request: web.Request) -> web.Response:
        """Step 2 of an upload: the bytes, raw or as a multipart ``file`` part."""
        file_id = request.match_info["file_id"]
        pending = self._pending_uploads.get(file_id)
        if pending is None:
            return web.Response(status=404, text="Not Found")
        if request.content_type == "multipart/form-data":
            part = (await request.post()).get("file")
            data = part.file.read() if part is not None and not isinstance(part, str) else b""
        else:
            data = await request.read()
        name, length, _ = pending
        if len(data) != length:
            # What the upload host answers when the bytes disagree with the declared length.
            return web.Response(status=400, text="Bad Request: length mismatch")
        self._pending_uploads[file_id] = (name, length, data)
        await self._notify()
        return web.Response(text=f"OK - {length}")

    def uploaded(self, file_id: str) -> bytes:
        """The bytes of a file the bot uploaded."""
        return self.file_bytes[f"{self.team_id}-{file_id}"]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        ctype = request.content_type
        if request.method == "POST" and request.can_read_body:
            if ctype == "application/json":
                args.update(await request.json())
            else:
                args.update({k: v for k, v in (await request.post()).items()})
        auth = request.headers.get("Authorization", "")
        token = (
            auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.pop("token", None)
        )
        self.calls.append(ApiCall(method, args, token, request.method, ctype))
        try:
            return await self._answer(method, args, token)
        finally:
            await self._notify()

    async def _answer(self, method: str, args: dict[str, Any], token: str | None) -> web.Response:
        expected = self.app_token if method in _APP_TOKEN_METHODS else self.bot_token
        if token is None:
            return _error("not_authed")
        if token != expected:
            return _error("invalid_auth")
        scripts = self._scripts.get(method)
        if scripts:
            script = scripts[0]
            script.times -= 1
            if script.times <= 0:
                scripts.pop(0)
            headers = {"Retry-After": str(script.retry_after)} if script.retry_after else {}
            return _error(script.error, status=script.status, headers=headers)
        if method in self.disabled:
            return _error("unknown_method")
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return _error("unknown_method")
        result: dict[str, Any] | web.Response = handler(args)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, **result})

    # --- Web API methods ---------------------------------------------------------------

    def _m_auth_test(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "voicebot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _m_apps_connections_open(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4().hex}"}

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any] | web.Response:
        user_id = str(args.get("user"))
        user = self.users.get(user_id)
        if user is None:
            return _error("user_not_found")
        if str(args.get("include_locale")).lower() in ("1", "true"):
            return {"user": {**user, "locale": self.locales.get(user_id, "en-US")}}
        return {"user": user}

    def _m_files_info(self, args: dict[str, Any]) -> dict[str, Any] | web.Response:
        obj = self.files.get(str(args.get("file")))
        if obj is None:
            return _error("file_not_found")
        return {"file": obj, "comments": [], "response_metadata": {"next_cursor": ""}}

    def _m_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any] | web.Response:
        """The thread of ``ts``, parent first, ``limit`` messages a page (default 1000),
        continued with ``cursor``; a parent with replies carries the thread's summary
        (``reply_count``, ``reply_users``, ``latest_reply``…), replies ``parent_user_id``.
        A message without replies is returned alone; one that does not exist (or was
        deleted without replies) is ``thread_not_found``."""
        channel, ts = args.get("channel"), args.get("ts")
        if not channel or not ts:
            return _error("invalid_arguments")
        if channel in self.unreadable:
            return _error(self.unreadable[channel])
        parent = next((m for m in self.messages if m.channel == channel and m.ts == ts), None)
        if parent is None:
            return _error("thread_not_found")
        replies = sorted(
            (m for m in self.messages if m.channel == channel and m.thread_ts == ts and m.ts != ts),
            key=lambda m: float(m.ts),
        )
        thread = [_with_thread(parent, replies), *(_reply(m, parent) for m in replies)]
        try:
            limit = max(1, min(int(args.get("limit") or 1000), 1000))
            start = _read_cursor(args.get("cursor"))
        except ValueError:
            return _error("invalid_cursor" if args.get("cursor") else "invalid_limit")
        page = thread[start : start + limit]
        more = start + limit < len(thread)
        out: dict[str, Any] = {"messages": page, "has_more": more}
        if more:
            out["response_metadata"] = {"next_cursor": _cursor(start + limit)}
        return out

    def _m_views_open(self, args: dict[str, Any]) -> dict[str, Any] | web.Response:
        view = args.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not args.get("trigger_id") or not isinstance(view, dict):
            return _error("invalid_arguments")
        return {"view": {"id": f"V{uuid.uuid4().hex[:10].upper()}", **view}}

    def _m_assistant_threads_setStatus(self, args: dict[str, Any]) -> dict[str, Any] | web.Response:
        if not args.get("channel_id") or not args.get("thread_ts") or "status" not in args:
            return _error("invalid_arguments")
        return {}

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any] | web.Response:
        filename = args.get("filename")
        try:
            length = int(args.get("length", ""))
        except ValueError:
            return _error("invalid_arguments")
        if not filename or length <= 0:
            return _error("invalid_arguments")
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        self._pending_uploads[file_id] = (str(filename), length, None)
        return {
            "upload_url": f"http://127.0.0.1:{self.port}/upload/v1/{file_id}",
            "file_id": file_id,
        }

    def _m_files_completeUploadExternal(
        self, args: dict[str, Any]
    ) -> dict[str, Any] | web.Response:
        try:
            listed = json.loads(args.get("files") or "")
        except ValueError:
            return _error("invalid_arguments")
        if not isinstance(listed, list) or not listed:
            return _error("invalid_arguments")
        channel = args.get("channel_id")
        thread_ts = args.get("thread_ts") or None
        if thread_ts and not channel:
            return _error("invalid_arguments")  # a thread belongs to a channel
        shared: list[dict[str, Any]] = []
        for item in listed:
            file_id = str(item.get("id"))
            pending = self._pending_uploads.get(file_id)
            if pending is None:
                return _error("file_not_found")
            name, _length, data = pending
            if data is None:
                return _error("file_upload_not_completed")  # step 2 never happened
            obj = self.add_file(
                data,
                name=name,
                mimetype="audio/ogg" if name.endswith((".ogg", ".oga")) else "binary",
                filetype="ogg" if name.endswith((".ogg", ".oga")) else "binary",
                subtype=None,
                duration_ms=None,
            )
            # add_file hosts under a new id: keep the id the upload was given.
            hosted = self.files.pop(obj["id"])
            self.file_bytes[f"{self.team_id}-{file_id}"] = self.file_bytes.pop(
                f"{self.team_id}-{obj['id']}"
            )
            hosted["id"] = file_id
            hosted["title"] = item.get("title") or name
            hosted["user"] = self.bot_user_id
            self.files[file_id] = hosted
            del self._pending_uploads[file_id]
            shared.append(hosted)
        if channel:
            # Slack shares the files as a message of the uploader in the channel / thread.
            msg = FakeMessage(
                channel=channel,
                ts=self.next_ts(),
                text=args.get("initial_comment") or "",
                bot_id=self.bot_id,
                user=self.bot_user_id,
                thread_ts=thread_ts,
                files=shared,
            )
            self.messages.append(msg)
        self.uploads.extend({**f, "channel": channel, "thread_ts": thread_ts} for f in shared)
        return {"files": [{"id": f["id"], "title": f["title"]} for f in shared]}

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any] | web.Response:
        channel = args.get("channel")
        text = args.get("text") or args.get("markdown_text") or ""
        if not channel:
            return _error("channel_not_found")
        if not text and not args.get("blocks"):
            return _error("no_text")
        if len(text) > POST_TEXT_LIMIT:
            return _error("msg_too_long")
        if args.get("markdown_text") and (args.get("text") or args.get("blocks")):
            return _error("markdown_text_conflict")  # Slack: markdown_text stands alone
        blocks = _blocks(args)
        if isinstance(blocks, web.Response):
            return blocks
        msg = FakeMessage(
            channel=channel,
            ts=self.next_ts(),
            text=text,
            bot_id=self.bot_id,
            user=self.bot_user_id,
            thread_ts=args.get("thread_ts") or None,
            blocks=blocks,
            mrkdwn=args.get("mrkdwn") not in (False, "false", "0"),
        )
        self.messages.append(msg)
        return {"channel": channel, "ts": msg.ts, "message": msg.as_api()}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any] | web.Response:
        msg = self._find(args)
        if isinstance(msg, web.Response):
            return msg
        text = args.get("text") or args.get("markdown_text") or ""
        if len(text) > POST_TEXT_LIMIT:
            return _error("msg_too_long")
        if msg.streaming:
            return _error("cant_update_message")
        if args.get("markdown_text") and (args.get("text") or args.get("blocks")):
            return _error("markdown_text_conflict")
        blocks = _blocks(args)
        if isinstance(blocks, web.Response):
            return blocks
        msg.text = text
        msg.blocks = blocks  # chat.update replaces the blocks too (none: removed)
        msg.updates += 1
        return {"channel": msg.channel, "ts": msg.ts, "text": text}

    def _m_chat_delete(self, args: dict[str, Any]) -> dict[str, Any] | web.Response:
        msg = self._find(args)
        if isinstance(msg, web.Response):
            return msg
        self.messages.remove(msg)
        return {"channel": msg.channel, "ts": msg.ts}

    def _m_chat_startStream(self, args: dict[str, Any]) -> dict[str, Any] | web.Response:
        channel, thread_ts = args.get("channel"), args.get("thread_ts")
        if not channel or not thread_ts:
            return _error("invalid_arguments")
        if not str(channel).startswith("D") and not (
            args.get("recipient_team_id") and args.get("recipient_user_id")
        ):
            return _error(
                "missing_recipient_team_id"
                if not args.get("recipient_team_id")
                else "missing_recipient_user_id"
            )
        text = _stream_text(args)
        if isinstance(text, web.Response):
            return text
        msg = FakeMessage(
            channel=channel,
            ts=self.next_ts(),
            text=text,
            bot_id=self.bot_id,
            user=self.bot_user_id,
            thread_ts=thread_ts,
            streaming=True,
            streamed=True,
        )
        self.messages.append(msg)
        return {"channel": channel, "ts": msg.ts}

    def _m_chat_appendStream(self, args: dict[str, Any]) -> dict[str, Any] | web.Response:
        msg = self._find(args)
        if isinstance(msg, web.Response):
            return msg
        if not msg.streaming:
            return _error("message_not_in_streaming_state")
        text = _stream_text(args)
        if isinstance(text, web.Response):
            return text
        if not text:
            return _error("no_text")
        msg.text += text
        msg.updates += 1
        return {"channel": msg.channel, "ts": msg.ts}

    def _m_chat_stopStream(self, args: dict[str, Any]) -> dict[str, Any] | web.Response:
        msg = self._find(args)
        if isinstance(msg, web.Response):
            return msg
        if not msg.streaming:
            return _error("message_not_in_streaming_state")
        text = _stream_text(args)
        if isinstance(text, web.Response):
            return text
        blocks = _blocks(args)
        if isinstance(blocks, web.Response):
            return blocks
        msg.text += text
        msg.blocks = blocks  # rendered at the bottom of the finished message
        msg.streaming = False
        return {"channel": msg.channel, "ts": msg.ts, "message": msg.as_api()}

    def _find(self, args: dict[str, Any]) -> FakeMessage | web.Response:
        for msg in self.messages:
            if msg.channel == args.get("channel") and msg.ts == args.get("ts"):
                if msg.bot_id != self.bot_id:
                    return _error("cant_update_message")
                return msg
        return _error("message_not_found")


def _with_thread(parent: FakeMessage, replies: list[FakeMessage]) -> dict[str, Any]:
    """A thread's parent as conversations.replies shows it: with its thread summary."""
    out = parent.as_api()
    if replies:
        users = list(dict.fromkeys(m.user or m.bot_id or "" for m in replies))
        out.update(
            thread_ts=parent.ts,
            reply_count=len(replies),
            reply_users_count=len(users),
            latest_reply=replies[-1].ts,
            reply_users=users,
            is_locked=False,
        )
    return out


def _reply(message: FakeMessage, parent: FakeMessage) -> dict[str, Any]:
    out = message.as_api()
    if parent.user:
        out["parent_user_id"] = parent.user
    return out


def _cursor(position: int) -> str:
    """Slack's cursors are opaque base64 ("bmV4dF90czox…" reads "next_ts:1…")."""
    return base64.b64encode(f"next:{position}".encode()).decode()


def _read_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    kind, _, position = base64.b64decode(cursor, validate=True).decode().partition(":")
    if kind != "next":
        raise ValueError(cursor)
    return int(position)


def _stream_text(args: dict[str, Any]) -> str | web.Response:
    """The text of a streaming call: ``markdown_text`` and/or markdown chunks."""
    text = args.get("markdown_text") or ""
    chunks = args.get("chunks") or []
    if isinstance(chunks, str):
        chunks = json.loads(chunks)
    for chunk in chunks:
        if chunk.get("type") == "markdown_text":
            text += chunk.get("text", "")
    if len(text) > STREAM_TEXT_LIMIT:
        return _error("msg_too_long")
    return str(text)


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]] | web.Response:
    """A call's Block Kit blocks (JSON, or a JSON string in a form body), checked the way
    Slack refuses them: every block typed, action ids unique, button texts plain_text."""
    raw = args.get("blocks") or []
    if isinstance(raw, str):
        raw = json.loads(raw)
    if not isinstance(raw, list) or len(raw) > 50:
        return _error("invalid_blocks")
    seen: set[str] = set()
    for block in raw:
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            return _error("invalid_blocks")
        if block["type"] == "markdown" and not str(block.get("text") or "").strip():
            return _error("invalid_blocks")
        for element in block.get("elements") or () if block["type"] == "actions" else ():
            action_id = str(element.get("action_id") or "")
            label = element.get("text") or {}
            if (
                element.get("type") != "button"
                or not action_id
                or action_id in seen
                or len(action_id) > 255
                or len(str(element.get("value") or "")) > 2000
                or label.get("type") != "plain_text"
                or not label.get("text")
            ):
                return _error("invalid_blocks")
            seen.add(action_id)
    return list(raw)


_BLOCK_TYPES = frozenset({"section", "actions", "markdown", "context", "divider"})


def _error(error: str, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"ok": False, "error": error}, status=status, headers=headers)


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A running :class:`FakeSlack` on a free port of 127.0.0.1."""
    fake = FakeSlack()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
