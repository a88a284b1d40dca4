"""Black-box fakes for the Slack acceptance tests, written from Slack's and DashScope's docs.

* ``SlackFake``: the Slack Web API (``/api/<method>``), private file downloads, file uploads
  (``files.getUploadURLExternal``, the upload URL, ``files.completeUploadExternal``),
  ``response_url`` endpoints and a Socket Mode websocket, strict the way Slack is about
  tokens and arguments.
* ``SlackDashScopeFake``: DashScope's native multimodal-generation endpoint, answering with
  the native SSE framing (``id:``/``event:``/``data:`` with no space, no ``[DONE]``), and
  Qwen-Omni on the OpenAI-compatible endpoint (:mod:`tests.acceptance.omni`).

Both run on one background event loop (``SlackServers``) so that tests can stay synchronous
and drive the real ``voicebot run`` subprocess through the network only.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.acceptance.omni import OmniFake

SLACK_BOT_TOKEN = "xoxb-1111-2222-slackfaketoken"
SLACK_APP_TOKEN = "xapp-1-A0001-3333-slackfakeapptoken"
SLACK_TEAM = "T0SLACK01"
SLACK_BOT_USER = "U0BOTUSER"
SLACK_BOT_ID = "B0BOTID01"
DASHSCOPE_KEY = "sk-slack-acceptance"

LOGIN_PAGE = (
    "<!DOCTYPE html><html lang='en'><head><title>Slack</title></head>"
    "<body><h1>Sign in to Slack</h1><form action='/signin'></form></body></html>"
)

# chat.* methods Slack documents as taking JSON; the rest accept form/query too.
STREAM_METHODS = {"chat.startStream", "chat.appendStream", "chat.stopStream"}
MAX_MARKDOWN = 12_000


@dataclass
class SlackCall:
    method: str
    args: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)
    response: dict[str, Any] = field(default_factory=dict)
    injected: bool = False  # answered with an injected fault (not applied)


@dataclass
class SlackInjection:
    """Answer the next ``times`` calls of ``method`` matching ``match`` with a fault.

    ``status``/``body``/``headers`` is the HTTP answer; ``drop`` closes the connection
    without answering instead. The call is not applied, except with ``after_apply`` (only
    with ``drop``): Slack carried it out and the answer is lost. ``method`` may be a tuple:
    the ``times`` are then shared by all those methods.
    """

    method: str | tuple[str, ...]
    match: Callable[[dict[str, Any]], bool]
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    times: int = 1
    after_apply: bool = False

    def covers(self, method: str) -> bool:
        return method in (self.method if isinstance(self.method, tuple) else (self.method,))


@dataclass
class SlackMessage:
    channel: str
    ts: str
    text: str
    thread_ts: str | None
    streaming: bool = False
    blocks: list[Any] | None = None
    updates: int = 0
    streamed: bool = False  # created by chat.startStream
    replaced: bool = False  # chat.update replaced its content
    files: list[str] = field(default_factory=list)  # ids of the files it shares


@dataclass
class SlackFile:
    data: bytes
    content_type: str
    login_page: bool = False  # answer the HTML login page even with the right token


@dataclass
class SlackUpload:
    """A file the bot uploads (files.getUploadURLExternal → POST upload_url →
    files.completeUploadExternal)."""

    file_id: str
    filename: str
    length: int  # as declared to getUploadURLExternal
    key: str  # the upload URL's secret part
    data: bytes | None = None  # what was POSTed to the upload URL
    title: str | None = None
    channel: str | None = None  # where completeUploadExternal shared it
    thread_ts: str | None = None
    completed: bool = False


def _chunks_text(chunks: Any) -> str:
    out = []
    if isinstance(chunks, str):
        try:
            chunks = json.loads(chunks)
        except ValueError:
            return ""
    for c in chunks or []:
        if isinstance(c, dict) and c.get("type") == "markdown_text":
            out.append(str(c.get("text", "")))
    return "".join(out)


class SlackFake:
    """The Slack Web API + files + response_url + Socket Mode, recording what the bot does."""

    def __init__(self) -> None:
        self.base = ""  # http://127.0.0.1:PORT, set once listening
        self.calls: list[SlackCall] = []
        self.messages: dict[tuple[str, str], SlackMessage] = {}
        self.files: dict[str, SlackFile] = {}
        self.downloads: list[tuple[str, str | None]] = []  # (file id, Authorization)
        self.uploads: dict[str, SlackUpload] = {}  # by file id
        self._upload_ids = itertools.count(1)
        self.responses: list[dict[str, Any]] = []  # bodies POSTed to response_url
        self.users: dict[str, dict[str, Any]] = {}
        # method -> list of canned failures, consumed one per call: (status, body, headers)
        self.failures: dict[str, list[tuple[int, dict[str, Any], dict[str, str]]]] = {}
        # methods that always fail with this error (e.g. streaming unavailable)
        self.broken: dict[str, str] = {}
        # per-call faults matched on the arguments (see ``inject``)
        self.injections: list[SlackInjection] = []
        # chat.update on a message still streaming: refuse (default) or end the stream with
        # the update's text (the documented fallback for a stream that cannot be stopped)
        self.update_ends_stream = False
        self.ws: web.WebSocketResponse | None = None
        self.ws_connected = asyncio.Event()
        self.ws_received: list[dict[str, Any]] = []
        self.connections_opened = 0
        self.ws_count = 0
        self._ts = itertools.count(1)
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- helpers for tests
    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.messages.clear()
            self.downloads.clear()
            self.uploads.clear()
            self.responses.clear()
            self.failures.clear()
            self.broken.clear()

    def add_file(self, file_id: str, data: bytes, content_type: str, **kw: Any) -> str:
        self.files[file_id] = SlackFile(data, content_type, **kw)
        return f"{self.base}/files-pri/{SLACK_TEAM}-{file_id}/download/audio_message"

    def inject(
        self,
        method: str | tuple[str, ...],
        *,
        status: int = 200,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        drop: bool = False,
        after_apply: bool = False,
        match: Callable[[dict[str, Any]], bool] | None = None,
        times: int = 1,
    ) -> SlackInjection:
        injection = SlackInjection(
            method,
            match or (lambda _a: True),
            status,
            body or {"ok": False, "error": "internal_error"},
            headers or {},
            drop,
            times,
            after_apply,
        )
        with self._lock:
            self.injections.append(injection)
        return injection

    def served(self, method: str, channel: str) -> list[SlackCall]:
        """Calls of ``method`` in ``channel`` answered with an injected fault."""
        return [c for c in self.calls_to(method) if c.injected and c.args.get("channel") == channel]

    def calls_to(self, method: str) -> list[SlackCall]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def visible(self, channel: str) -> list[SlackMessage]:
        """Messages the bot posted in ``channel``, oldest first."""
        with self._lock:
            return sorted(
                (m for m in self.messages.values() if m.channel == channel),
                key=lambda m: float(m.ts),
            )

    # ---------------------------------------------------------------- app
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/files-pri/{fid}/download/{name}", self._file)
        app.router.add_post("/upload/v1/{key}", self._upload)
        app.router.add_post("/response/{rid}", self._response_url)
        app.router.add_get("/socket", self._socket)
        return app

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            raw = await request.read()
            if ctype == "application/json":
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise web.HTTPBadRequest()
                args.update(body)
            elif ctype in ("application/x-www-form-urlencoded", ""):
                args.update(dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True)))
            elif ctype.startswith("multipart/"):
                raise web.HTTPBadRequest(text="multipart not expected")
        return args

    @staticmethod
    def _token(request: web.Request, args: dict[str, Any]) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer ") :]
        tok = args.get("token")
        return str(tok) if tok else None

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args = await self._args(request)
        token = self._token(request, args)
        call = SlackCall(method, args, token)
        with self._lock:
            self.calls.append(call)
            injection = next(
                (
                    i
                    for i in self.injections
                    if i.covers(method)
                    and i.times > 0
                    and token == SLACK_BOT_TOKEN
                    and i.match(args)
                ),
                None,
            )
            if injection is not None:
                injection.times -= 1
                call.injected = True
        if injection is not None:
            if injection.drop:
                if injection.after_apply:
                    self._dispatch(method, args, token)  # applied; only the answer is lost
                call.response = {"dropped": True}
                if request.transport is not None:
                    request.transport.abort()
                raise web.HTTPServiceUnavailable()  # never reaches the client
            call.response = injection.body
            return web.json_response(
                injection.body, status=injection.status, headers=injection.headers
            )
        status, body, headers = self._dispatch(method, args, token)
        call.response = body
        return web.json_response(body, status=status, headers=headers)

    def _dispatch(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if token is None:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if method == "apps.connections.open":
            if token != SLACK_APP_TOKEN:
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            self.connections_opened += 1
            ws_url = self.base.replace("http://", "ws://") + "/socket?ticket=t1"
            return 200, {"ok": True, "url": ws_url}, {}
        if token != SLACK_BOT_TOKEN:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        with self._lock:
            queue = self.failures.get(method)
            if queue:
                return queue.pop(0)
        if method in self.broken:
            return 200, {"ok": False, "error": self.broken[method]}, {}
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        result: dict[str, Any] = handler(args)
        return 200, result, {}

    # ---------------------------------------------------------------- methods
    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "voicebot",
            "team_id": SLACK_TEAM,
            "user_id": SLACK_BOT_USER,
            "bot_id": SLACK_BOT_ID,
            "is_enterprise_install": False,
        }

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        uid = args.get("user")
        if not uid:
            return {"ok": False, "error": "invalid_arguments"}
        flags = self.users.get(str(uid), {})
        user = {
            "id": uid,
            "team_id": SLACK_TEAM,
            "name": str(uid).lower(),
            "deleted": False,
            "is_bot": False,
            "is_admin": bool(flags.get("is_admin", False)),
            "is_owner": bool(flags.get("is_owner", False)),
            "is_primary_owner": bool(flags.get("is_primary_owner", False)),
            "tz": "Europe/London",
            "profile": {"display_name": str(uid)},
        }
        return {"ok": True, "user": user}

    def _m_bots_info(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "bot": {"id": SLACK_BOT_ID, "user_id": SLACK_BOT_USER}}

    def _m_conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = str(args.get("channel", ""))
        return {
            "ok": True,
            "channel": {"id": ch, "is_im": ch.startswith("D"), "is_channel": ch.startswith("C")},
        }

    def _new_ts(self) -> str:
        return f"{1_800_000_000 + next(self._ts)}.000100"

    def _text_ok(self, args: dict[str, Any]) -> bool:
        return bool(
            args.get("text")
            or args.get("markdown_text")
            or args.get("blocks")
            or args.get("attachments")
        )

    @staticmethod
    def _shown_text(args: dict[str, Any]) -> str:
        """``markdown_text`` (docs.slack.dev: "Accepts message text formatted in markdown",
        not together with ``text``/``blocks``, ≤ 12,000 characters) is what is shown;
        otherwise ``text``."""
        md = args.get("markdown_text")
        return str(md) if md else str(args.get("text", ""))

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not self._text_ok(args):
            return {"ok": False, "error": "no_text"}
        if len(str(args.get("text", ""))) > 40_000:
            return {"ok": False, "error": "msg_too_long"}
        if len(str(args.get("markdown_text") or "")) > MAX_MARKDOWN:
            return {"ok": False, "error": "msg_too_long"}
        ts = self._new_ts()
        thread_ts = args.get("thread_ts") or None
        blocks = args.get("blocks")
        msg = SlackMessage(str(channel), ts, self._shown_text(args), thread_ts, blocks=blocks)
        with self._lock:
            self.messages[(msg.channel, ts)] = msg
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": msg.text, "ts": ts}}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel") or not args.get("user"):
            return {"ok": False, "error": "invalid_arguments"}
        if not self._text_ok(args):
            return {"ok": False, "error": "no_text"}
        with self._lock:
            self.responses.append({"via": "chat.postEphemeral", **args})
        return {"ok": True, "message_ts": self._new_ts()}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel", "")), str(args.get("ts", "")))
        with self._lock:
            msg = self.messages.get(key)
            if msg is None:
                return {"ok": False, "error": "message_not_found"}
            if not self._text_ok(args):
                return {"ok": False, "error": "no_text"}
            if len(str(args.get("markdown_text") or "")) > MAX_MARKDOWN:
                return {"ok": False, "error": "msg_too_long"}
            if msg.streaming and not self.update_ends_stream:
                return {"ok": False, "error": "cant_update_message"}
            msg.streaming = False
            msg.replaced = True
            if args.get("markdown_text"):
                msg.text, msg.blocks = str(args["markdown_text"]), None
            elif "text" in args:
                msg.text = str(args["text"])
            if "blocks" in args:
                msg.blocks = args["blocks"]
            msg.updates += 1
        return {"ok": True, "channel": key[0], "ts": key[1], "text": msg.text}

    def _m_chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel", "")), str(args.get("ts", "")))
        with self._lock:
            if self.messages.pop(key, None) is None:
                return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _stream_text(self, args: dict[str, Any]) -> tuple[str, str | None]:
        md = args.get("markdown_text")
        text = str(md) if md else _chunks_text(args.get("chunks"))
        if md is not None and len(str(md)) > MAX_MARKDOWN:
            return text, "msg_too_long"
        if len(text) > MAX_MARKDOWN:
            return text, "msg_too_long"
        return text, None

    def _m_chat_startStream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        if not channel.startswith("D") and not (
            args.get("recipient_user_id") and args.get("recipient_team_id")
        ):
            return {"ok": False, "error": "missing_recipient_user_id"}
        text, err = self._stream_text(args)
        if err:
            return {"ok": False, "error": err}
        ts = self._new_ts()
        msg = SlackMessage(channel, ts, text, str(args["thread_ts"]), streaming=True, streamed=True)
        with self._lock:
            self.messages[(channel, ts)] = msg
        return {"ok": True, "channel": channel, "ts": ts}

    def _stream_msg(self, args: dict[str, Any]) -> SlackMessage | dict[str, Any]:
        key = (str(args.get("channel", "")), str(args.get("ts", "")))
        msg = self.messages.get(key)
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if not msg.streaming:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        return msg

    def _m_chat_appendStream(self, args: dict[str, Any]) -> dict[str, Any]:
        text, err = self._stream_text(args)
        if err:
            return {"ok": False, "error": err}
        if not text:
            return {"ok": False, "error": "invalid_arguments"}
        with self._lock:
            msg = self._stream_msg(args)
            if isinstance(msg, dict):
                return msg
            msg.text += text
            msg.updates += 1
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _m_chat_stopStream(self, args: dict[str, Any]) -> dict[str, Any]:
        text, err = self._stream_text(args)
        if err:
            return {"ok": False, "error": err}
        with self._lock:
            msg = self._stream_msg(args)
            if isinstance(msg, dict):
                return msg
            msg.text += text
            msg.streaming = False
            if args.get("blocks"):
                msg.blocks = args["blocks"]
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "message": {"text": msg.text}}

    def _m_assistant_threads_setStatus(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel_id") or not args.get("thread_ts") or "status" not in args:
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True}

    def _m_reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def _m_reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def _m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id") or not args.get("view"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": {"id": "V0001"}}

    def _m_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "messages": [], "has_more": False}

    # ---------------------------------------------------------------- uploads
    def shared_files(self, channel: str) -> list[SlackUpload]:
        """Files the bot uploaded and shared in ``channel``, in the order they were shared."""
        with self._lock:
            done = [u for u in self.uploads.values() if u.completed and u.channel == channel]
        return done

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        """docs.slack.dev/reference/methods/files.getUploadURLExternal: ``filename`` and
        ``length`` (bytes) are required; answers ``upload_url`` and ``file_id``."""
        filename = str(args.get("filename") or "")
        try:
            length = int(args.get("length", ""))
        except (TypeError, ValueError):
            return {"ok": False, "error": "invalid_arguments"}
        if not filename or length <= 0:
            return {"ok": False, "error": "invalid_arguments"}
        n = next(self._upload_ids)
        upload = SlackUpload(
            file_id=f"F0UP{n:06d}", filename=filename, length=length, key=f"up{n:04d}k"
        )
        with self._lock:
            self.uploads[upload.file_id] = upload
        return {
            "ok": True,
            "upload_url": f"{self.base}/upload/v1/{upload.key}",
            "file_id": upload.file_id,
        }

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        """The upload URL: the file's bytes, raw or as multipart form data; Slack answers
        ``OK - <length>`` in plain text."""
        key = request.match_info["key"]
        with self._lock:
            upload = next((u for u in self.uploads.values() if u.key == key), None)
        if upload is None or upload.completed:
            return web.Response(status=404, text="not found")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = form.get("file") or next(
                (v for v in form.values() if not isinstance(v, str)), None
            )
            data = part.file.read() if part is not None and not isinstance(part, str) else b""
        else:
            data = await request.read()
        upload.data = data
        return web.Response(text=f"OK - {len(data)}")

    def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        """docs.slack.dev/reference/methods/files.completeUploadExternal: ``files`` is a
        JSON array of ``{id, title?}``; with ``channel_id`` (and ``thread_ts``) the files are
        shared there."""
        raw = args.get("files")
        try:
            items = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(items, list) or not items:
            return {"ok": False, "error": "invalid_arguments"}
        channel = str(args.get("channel_id") or args.get("channels") or "") or None
        thread_ts = str(args.get("thread_ts") or "") or None
        if thread_ts and not channel:
            return {"ok": False, "error": "invalid_arguments"}
        done: list[SlackUpload] = []
        with self._lock:
            for item in items:
                upload = self.uploads.get(str(item.get("id") if isinstance(item, dict) else ""))
                # Not uploaded (or not all of it): Slack has no such file to complete.
                if upload is None or upload.data is None or len(upload.data) != upload.length:
                    return {"ok": False, "error": "file_not_found"}
                done.append(upload)
        shown: list[dict[str, Any]] = []
        for upload, item in zip(done, items, strict=True):
            upload.title = str(item.get("title") or upload.filename)
            upload.channel, upload.thread_ts, upload.completed = channel, thread_ts, True
            shown.append(
                {
                    "id": upload.file_id,
                    "name": upload.filename,
                    "title": upload.title,
                    "size": upload.length,
                }
            )
        if channel is not None:
            # The files appear in the channel (or thread) as a message of their own.
            ts = self._new_ts()
            msg = SlackMessage(
                channel,
                ts,
                str(args.get("initial_comment") or ""),
                thread_ts,
                files=[u.file_id for u in done],
            )
            with self._lock:
                self.messages[(channel, ts)] = msg
        return {"ok": True, "files": shown}

    # ---------------------------------------------------------------- files
    async def _file(self, request: web.Request) -> web.StreamResponse:
        fid = request.match_info["fid"].split("-", 1)[-1]
        auth = request.headers.get("Authorization")
        with self._lock:
            self.downloads.append((fid, auth))
        f = self.files.get(fid)
        if f is None:
            return web.Response(status=404, text="not found")
        if f.login_page or auth != f"Bearer {SLACK_BOT_TOKEN}":
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        return web.Response(body=f.data, content_type=f.content_type)

    async def _response_url(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        with self._lock:
            self.responses.append({"via": "response_url", "rid": request.match_info["rid"], **body})
        return web.Response(text="ok")

    # ---------------------------------------------------------------- socket mode
    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.ws = ws
        self.ws_count += 1
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "fake", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0SLACKAPP"},
            }
        )
        self.ws_connected.set()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                with self._lock:
                    self.ws_received.append(json.loads(msg.data))
        if self.ws is ws:
            self.ws_connected.clear()
        return ws


@dataclass
class DashScopeCall:
    body: dict[str, Any]
    headers: dict[str, str]


class SlackDashScopeFake:
    """DashScope native multimodal generation, answering every request with ``reply``."""

    def __init__(self) -> None:
        self.calls: list[DashScopeCall] = []
        self.reply: list[str] = ["Hello ", "from the ", "fake model."]
        self.omni = OmniFake(api_key=DASHSCOPE_KEY, chunks=("Hello ", "from the ", "fake model."))
        self.delay = 0.0  # seconds between SSE events
        # "before": answer HTTP 429 Throttling; "midstream": an event:error after some text
        self.error: str | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(
            "/api/v1/services/aigc/multimodal-generation/generation", self._generation
        )
        self.omni.mount(app)
        return app

    async def _generation(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {DASHSCOPE_KEY}":
            return web.json_response(
                {
                    "code": "InvalidApiKey",
                    "message": "Invalid API-key provided.",
                    "request_id": "r",
                },
                status=401,
            )
        body = await request.json()
        self.calls.append(DashScopeCall(body, dict(request.headers)))
        if self.error == "before":
            return web.json_response(
                {
                    "code": "Throttling.RateQuota",
                    "message": "Requests rate limit exceeded, please try again later.",
                    "request_id": "req-429",
                },
                status=429,
            )
        pieces = list(self.reply)
        incremental = bool(body.get("parameters", {}).get("incremental_output"))
        usage = {"input_tokens": 60, "output_tokens": 0, "audio_tokens": 50}
        if request.headers.get("X-DashScope-SSE") != "enable":
            usage["output_tokens"] = len(pieces)
            return web.json_response(
                {
                    "output": {
                        "choices": [
                            {
                                "finish_reason": "stop",
                                "message": {
                                    "role": "assistant",
                                    "content": [{"text": "".join(pieces)}],
                                },
                            }
                        ]
                    },
                    "usage": usage,
                    "request_id": "req-1",
                }
            )
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream;charset=UTF-8"},
        )
        await resp.prepare(request)
        sofar = ""
        events = [*pieces, ""]
        for i, piece in enumerate(events, start=1):
            last = i == len(events)
            sofar += piece
            usage["output_tokens"] = i
            data = {
                "output": {
                    "choices": [
                        {
                            "message": {
                                "content": [{"text": piece if incremental else sofar}],
                                "role": "assistant",
                            },
                            "finish_reason": "stop" if last else "null",
                        }
                    ]
                },
                "usage": usage,
                "request_id": "req-1",
            }
            frame = f"id:{i}\nevent:result\n:HTTP_STATUS/200\ndata:{json.dumps(data)}\n\n"
            if self.error == "midstream" and i == 2:
                err = {
                    "code": "DataInspectionFailed",
                    "message": "Output data may contain inappropriate content.",
                    "request_id": "req-1",
                }
                frame = f"id:{i}\nevent:error\n:HTTP_STATUS/400\ndata:{json.dumps(err)}\n\n"
                await resp.write(frame.encode())
                break
            await resp.write(frame.encode())
            if self.delay and not last:
                await asyncio.sleep(self.delay)
        await resp.write_eof()
        return resp


class SlackServers:
    """Runs the fakes on a background event loop; ``run`` executes coroutines on it."""

    def __init__(self) -> None:
        self.slack = SlackFake()
        self.dashscope = SlackDashScopeFake()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._runners: list[web.AppRunner] = []
        self.slack_port = 0
        self.dashscope_port = 0

    def start(self) -> None:
        self._thread.start()
        self.slack_port = self.run(self._serve(self.slack.app()))
        self.dashscope_port = self.run(self._serve(self.dashscope.app()))
        self.slack.base = f"http://127.0.0.1:{self.slack_port}"

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _serve(self, app: web.Application) -> int:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None)
        assert sockets
        return int(sockets[0].getsockname()[1])

    def stop(self) -> None:
        async def _cleanup() -> None:
            if self.slack.ws is not None:
                await self.slack.ws.close()
            for r in self._runners:
                await r.cleanup()

        self.run(_cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    # -------------------------------------------------------------- socket mode helpers
    def socket_send(self, envelope: dict[str, Any]) -> None:
        async def _send() -> None:
            await asyncio.wait_for(self.slack.ws_connected.wait(), 20)
            assert self.slack.ws is not None
            await self.slack.ws.send_json(envelope)

        self.run(_send())

    def socket_wait_connected(self, timeout: float = 20) -> bool:
        async def _wait() -> bool:
            try:
                await asyncio.wait_for(self.slack.ws_connected.wait(), timeout)
            except TimeoutError:
                return False
            return True

        return bool(self.run(_wait(), timeout + 5))


def wait_for(pred: Callable[[], Any], timeout: float = 15.0, step: float = 0.05) -> Any:
    """Poll ``pred`` until it returns something truthy (returned), or None at the timeout."""
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            return None
        time.sleep(step)
