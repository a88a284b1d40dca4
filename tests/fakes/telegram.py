"""A fake Telegram Bot API server that speaks the real wire format, for tests.

It follows /work/shared/reference/telegram-slack-facts.md (Bot API 10.3):

- ``POST /bot<token>/<method>``, form-encoded or multipart, every value a string (objects
  and lists JSON-encoded, ints and bools JSON-dumped); a wrong token gets 401
  ``Unauthorized``, an unknown method 404 ``Not Found``.
- Replies are ``{"ok":true,"result":…}`` or
  ``{"ok":false,"error_code":N,"description":"…","parameters":{…}}``.
- ``getUpdates`` long-polls (``timeout``, ``offset`` confirms, ``allowed_updates`` filters)
  and answers 409 while a webhook is set; with a webhook set, injected updates are POSTed to
  it with ``X-Telegram-Bot-Api-Secret-Token``, as Telegram does. Concurrent long polls are
  counted (:attr:`FakeTelegram.max_concurrent_polls`); with ``exclusive_polling`` a second
  one while another is open (its client still connected) gets Telegram's 409 "terminated by
  other getUpdates request" (:attr:`FakeTelegram.poll_conflicts` counts them).
- Text is validated as Telegram does: 1–4096 UTF-16 code units after entity parsing (0–4096
  for drafts), entities inside the text, ``parse_mode`` never combined with ``entities``.
- ``sendVoice`` takes the voice note as a multipart upload (``voice=attach://<part>`` or the
  file as the ``voice`` part itself), as aiogram's ``BufferedInputFile`` sends it; an empty
  file is refused, an OGG/Opus one becomes a voice message (anything else a document, as
  Telegram shows it), and the bytes are kept (:attr:`FakeTelegram.uploads`,
  :meth:`FakeTelegram.sent_voices`).
- ``editMessageText`` answers "message is not modified" when nothing changes, ``getFile``
  "file is too big" over 20 MB; scripted failures (:meth:`FakeTelegram.fail_next`) and a
  simple per-chat flood control (:meth:`FakeTelegram.flood_control`) give 429s with
  ``parameters.retry_after``.

Every call is recorded (:attr:`FakeTelegram.calls`), with its parameters decoded. Tests
build updates with the ``*_message`` helpers and :meth:`FakeTelegram.inject`::

    async def test_x(telegram_fake):
        chat = telegram_fake.private_chat(user)
        msg = telegram_fake.voice_message(chat=chat, user=user, data=ogg_bytes)
        telegram_fake.inject(message=msg)
        await telegram_fake.wait_for(lambda: telegram_fake.sent_texts(chat["id"]))
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

__all__ = [
    "ANONYMOUS_ADMIN_ID",
    "DOWNLOAD_LIMIT",
    "NOT_MODIFIED",
    "POLL_CONFLICT",
    "Call",
    "FakeTelegram",
    "Upload",
    "telegram_fake",
    "utf16_len",
]

DEFAULT_TOKEN = "123456789:TEST-fake-token_abcdefghijklmnop"
DOWNLOAD_LIMIT = 20 * 1024 * 1024
ANONYMOUS_ADMIN_ID = 1087968824
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
CANT_PARSE = (
    "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset {n}"
)
ENTITY_TYPES = {
    "mention",
    "hashtag",
    "cashtag",
    "bot_command",
    "url",
    "email",
    "phone_number",
    "bold",
    "italic",
    "underline",
    "strikethrough",
    "spoiler",
    "blockquote",
    "expandable_blockquote",
    "code",
    "pre",
    "text_link",
    "text_mention",
    "custom_emoji",
    "date_time",
}
# Methods whose ``text`` Telegram parses, and the range of its length after parsing.
# Methods that take file uploads (multipart parts that are files, not strings).
UPLOAD_METHODS = frozenset({"sendVoice"})
TEXT_METHODS = {"sendMessage": 1, "editMessageText": 1, "sendMessageDraft": 0}
FLOOD_METHODS = ("sendMessage", "editMessageText")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits and entity offsets."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class ApiError(Exception):
    """An error answer of the fake (``{"ok":false,…}``)."""

    def __init__(self, code: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            out["parameters"] = {"retry_after": self.retry_after}
        return out


@dataclass
class Call:
    """One Bot API request as the fake received it."""

    method: str
    params: dict[str, Any]  # JSON-decoded where the value is an object or list
    raw: dict[str, str]  # exactly as sent (all strings)
    content_type: str
    at: float = field(default_factory=time.monotonic)
    error: str | None = None  # the description, if the fake refused the call
    result: Any = None
    files: dict[str, Upload] = field(default_factory=dict)  # multipart uploads, by part name

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Upload:
    """One uploaded file part of a multipart request."""

    filename: str | None
    content_type: str
    data: bytes


@dataclass
class _Script:
    method: str
    error: ApiError
    times: int
    when: Callable[[dict[str, Any]], bool] | None


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    size: int  # what Telegram declares (may differ from len(data) to fake big files)
    path: str


class FakeTelegram:
    """The fake server; start it with :meth:`start` (the ``telegram_fake`` fixture does)."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        username: str = "voice_test_bot",
        first_name: str = "Voice Bot",
        exclusive_polling: bool = False,
    ) -> None:
        self.token = token
        # Opt-in: refuse a getUpdates while another one is open, as Telegram does.
        self.exclusive_polling = exclusive_polling
        self.max_concurrent_polls = 0  # the most getUpdates open at once (always counted)
        self.poll_conflicts = 0  # getUpdates refused with 409 for being concurrent
        self.bot_id = int(token.split(":", 1)[0])
        self.username = username
        self.first_name = first_name
        self.calls: list[Call] = []
        self.downloads: list[str] = []  # file paths fetched via /file/bot<token>/<path>
        self.webhook_posts: list[tuple[int, int]] = []  # (update_id, HTTP status)
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.files: dict[str, StoredFile] = {}
        self.uploads: list[Upload] = []  # files the bot uploaded (sendVoice), in order
        self.members: dict[tuple[int, int], str] = {}  # (chat, user) -> status
        self.webhook: dict[str, Any] | None = None
        self.pending: list[dict[str, Any]] = []  # unconfirmed updates
        self._update_ids = itertools.count(1000)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._file_ids = itertools.count(1)
        self._scripts: list[_Script] = []
        self._holds: dict[str, asyncio.Event] = {}
        self._flood_interval: float | None = None
        self._flood_burst = 1
        self._flood_tokens: dict[int, tuple[float, float]] = {}  # chat: (tokens, at)
        self._new_update = asyncio.Event()
        self._changed = asyncio.Event()
        self._open_polls: list[web.Request] = []  # getUpdates being answered
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._client: aiohttp.ClientSession | None = None
        self.port = 0

    # --- lifecycle ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What ``TELEGRAM_API_BASE`` should be."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._client = aiohttp.ClientSession()

    async def stop(self) -> None:
        self._closing = True
        self._new_update.set()  # release long polls the bot abandoned
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- scripting ------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        code: int = 400,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (matching ``when``) with an error.

        ``code=429`` defaults to ``Too Many Requests: retry after N``; ``code=400`` with no
        description to "can't parse entities".
        """
        if description is None:
            if code == 429:
                retry_after = 1 if retry_after is None else retry_after
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = CANT_PARSE.format(n=0)
        self._scripts.append(
            _Script(method, ApiError(code, description, retry_after=retry_after), times, when)
        )

    def hold(self, method: str, gate: asyncio.Event) -> None:
        """Answer ``method`` only once ``gate`` is set (the call is recorded at once)."""
        self._holds[method] = gate

    def clear_faults(self) -> None:
        """Drop every scripted error not served yet."""
        self._scripts.clear()

    def flood_control(self, min_interval: float | None, *, burst: int = 1) -> None:
        """Refuse sendMessage/editMessageText in a chat faster than one per
        ``min_interval`` on average: a token bucket of ``burst`` calls (Telegram tolerates
        a short burst above its one-message-a-second pace; ``burst=1`` is the strictest
        reading, no two calls sooner than ``min_interval`` apart)."""
        self._flood_interval = min_interval
        self._flood_burst = burst
        self._flood_tokens.clear()

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        """``creator``, ``administrator``, ``member``… for getChatMember."""
        self.members[(chat_id, user_id)] = status

    # --- building updates -----------------------------------------------------------

    @staticmethod
    def user(user_id: int, first_name: str = "User", username: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            out["username"] = username
        return out

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    @staticmethod
    def private_chat(user: dict[str, Any]) -> dict[str, Any]:
        return {"id": user["id"], "type": "private", "first_name": user["first_name"]}

    @staticmethod
    def group_chat(chat_id: int, title: str = "Group", *, forum: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"id": chat_id, "type": "supergroup", "title": title}
        if forum:
            out["is_forum"] = True
        return out

    def add_file(
        self, data: bytes, *, size: int | None = None, path_suffix: str = "oga"
    ) -> StoredFile:
        """Store a file to be fetched by getFile + download; ``size`` fakes a bigger one."""
        n = next(self._file_ids)
        stored = StoredFile(
            file_id=f"FILE{n:04d}-id",
            file_unique_id=f"U{n:04d}",
            data=data,
            size=len(data) if size is None else size,
            path=f"voice/file_{n}.{path_suffix}",
        )
        self.files[stored.file_id] = stored
        return stored

    def message(
        self,
        *,
        chat: dict[str, Any],
        user: dict[str, Any] | None,
        text: str | None = None,
        caption: str | None = None,
        reply_to: dict[str, Any] | None = None,
        thread_id: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A user's message (stored, so the bot may reply to it or a user reply to it).

        Mentions of the bot and ``/commands`` get their entities automatically.
        """
        mid = self._next_message_id(chat["id"])
        msg: dict[str, Any] = {"message_id": mid, "date": int(time.time()), "chat": chat}
        if user is not None:
            msg["from"] = user
        if thread_id is not None:
            msg["message_thread_id"] = thread_id
            if chat.get("is_forum"):
                msg["is_topic_message"] = True
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        elif thread_id is not None and chat.get("is_forum"):
            # As Telegram does: a topic message "replies" to the topic's creation message.
            msg["reply_to_message"] = {
                "message_id": thread_id,
                "date": msg["date"],
                "chat": chat,
                "from": user or self.user(1),
                "message_thread_id": thread_id,
                "is_topic_message": True,
                "forum_topic_created": {"name": f"Topic {thread_id}", "icon_color": 7322096},
            }
        body = text if text is not None else caption
        auto = entities if entities is not None else self._auto_entities(body or "")
        if text is not None:
            msg["text"] = text
            if auto:
                msg["entities"] = auto
        if caption is not None:
            msg["caption"] = caption
            if auto:
                msg["caption_entities"] = auto
        msg.update(extra)
        self.messages[(chat["id"], mid)] = msg
        return msg

    def voice_message(
        self,
        *,
        chat: dict[str, Any],
        user: dict[str, Any],
        data: bytes,
        kind: str = "voice",
        size: int | None = None,
        mime_type: str | None = "audio/ogg",
        file_name: str | None = None,
        duration: int = 2,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """A message with ``voice``/``audio``/``video_note``/``document`` carrying ``data``."""
        stored = self.add_file(data, size=size)
        media: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
        }
        if kind in ("voice", "audio", "video_note"):
            media["duration"] = duration
        if kind == "video_note":
            media["length"] = 240
        elif mime_type is not None:
            media["mime_type"] = mime_type
        if kind in ("audio", "document") and file_name:
            media["file_name"] = file_name
        return self.message(chat=chat, user=user, **{kind: media}, **kwargs)

    def inject(self, **update: Any) -> int:
        """Queue an update (``message=…``, ``callback_query=…``, ``stopped_message_generation=…``).

        With a webhook set it is POSTed there instead (in the background). Returns its id.
        """
        update_id = next(self._update_ids)
        body = {"update_id": update_id, **update}
        self.redeliver(body)
        return update_id

    def redeliver(self, body: dict[str, Any], *, secret: str | None = None) -> None:
        """Deliver an update (again): queued for getUpdates, or POSTed to the webhook."""
        if self.webhook is not None:
            asyncio.get_running_loop().create_task(self._post_webhook(body, secret))
        else:
            self.pending.append(body)
            self._new_update.set()

    def callback_query(
        self, *, message: dict[str, Any], user: dict[str, Any], data: str
    ) -> dict[str, Any]:
        return {
            "id": f"cq{next(self._update_ids)}",
            "from": user,
            "message": message,
            "chat_instance": "ci-1",
            "data": data,
        }

    # --- reading what the bot did ----------------------------------------------------

    def calls_of(self, method: str, *, ok: bool | None = True) -> list[Call]:
        return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    def sent(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages in a chat, as they are now (after edits), oldest first."""
        return [
            m
            for (cid, _), m in sorted(self.messages.items())
            if cid == chat_id and m.get("from", {}).get("id") == self.bot_id
        ]

    def sent_texts(self, chat_id: int) -> list[str]:
        return [m.get("text", "") for m in self.sent(chat_id)]

    def sent_voices(self, chat_id: int) -> list[tuple[dict[str, Any], bytes]]:
        """The bot's voice messages in a chat, oldest first, each with the bytes uploaded."""
        return [
            (m, self.files[m["voice"]["file_id"]].data) for m in self.sent(chat_id) if "voice" in m
        ]

    async def wait_for(self, predicate: Callable[[], Any], *, within: float = 15.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked whenever a call arrives)."""
        deadline = time.monotonic() + within
        while True:
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out; last calls: {[c.method for c in self.calls[-12:]]}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.2))

    # --- HTTP -----------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.match_info["token"], self.token):
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        raw: dict[str, str] = {}
        files: dict[str, Upload] = {}
        if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    raw[key] = value
                elif method in UPLOAD_METHODS:
                    files[key] = Upload(
                        filename=value.filename,
                        content_type=value.content_type,
                        data=value.file.read(),
                    )
                else:
                    raise AssertionError(f"{method}: field {key} is an upload, not expected")
        elif request.can_read_body:
            raise AssertionError(f"{method}: unexpected content type {request.content_type}")
        call = Call(
            method=method,
            params=_decode(raw),
            raw=raw,
            content_type=request.content_type,
            files=files,
        )
        self.calls.append(call)
        gate = self._holds.get(method)
        if gate is not None:
            self._changed.set()
            await gate.wait()
        handler = getattr(self, f"_m_{method}", None)
        try:
            if handler is None:
                raise ApiError(404, "Not Found")
            self._scripted(method, call.params)
            with self._poll(request, method):
                result = handler(call.params, call.files) if files else handler(call.params)
                if asyncio.iscoroutine(result):
                    result = await result
        except ApiError as exc:
            call.error = exc.description
            self._changed.set()
            return web.json_response(exc.body(), status=exc.code)
        call.result = result
        self._changed.set()
        return web.json_response({"ok": True, "result": result})

    @contextlib.contextmanager
    def _poll(self, request: web.Request, method: str) -> Iterator[None]:
        """Track a getUpdates while it is open; refuse a concurrent one if exclusive.

        A long poll whose client went away (a poller that cancelled it) no longer counts,
        although its handler may still be waiting out its timeout here.
        """
        if method != "getUpdates":
            yield
            return
        self._open_polls = [
            r for r in self._open_polls if r.transport is not None and not r.transport.is_closing()
        ]
        if self._open_polls and self.exclusive_polling:
            self.poll_conflicts += 1
            raise ApiError(409, POLL_CONFLICT)
        self._open_polls.append(request)
        self.max_concurrent_polls = max(self.max_concurrent_polls, len(self._open_polls))
        try:
            yield
        finally:
            self._open_polls = [r for r in self._open_polls if r is not request]

    async def _file(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.match_info["token"], self.token):
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        path = request.match_info["path"]
        for stored in self.files.values():
            if stored.path == path:
                self.downloads.append(path)
                self._changed.set()
                return web.Response(body=stored.data, content_type="application/octet-stream")
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    async def _post_webhook(self, body: dict[str, Any], secret: str | None) -> None:
        assert self.webhook is not None and self._client is not None
        headers = {"Content-Type": "application/json"}
        token = secret if secret is not None else self.webhook.get("secret_token")
        if token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = token
        async with self._client.post(
            self.webhook["url"], data=json.dumps(body), headers=headers
        ) as resp:
            await resp.read()
            self.webhook_posts.append((body["update_id"], resp.status))
        self._changed.set()

    def _scripted(self, method: str, params: dict[str, Any]) -> None:
        for script in self._scripts:
            if script.method == method and script.times > 0:
                if script.when is not None and not script.when(params):
                    continue
                script.times -= 1
                raise script.error
        if self._flood_interval is not None and method in FLOOD_METHODS:
            chat_id = int(params.get("chat_id", 0))
            now = time.monotonic()
            interval = self._flood_interval
            tokens, at = self._flood_tokens.get(chat_id, (float(self._flood_burst), now))
            tokens = min(float(self._flood_burst), tokens + (now - at) / interval)
            if tokens < 1.0:
                self._flood_tokens[chat_id] = (tokens, now)
                wait = max(1, round((1.0 - tokens) * interval + 0.49))
                raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
            self._flood_tokens[chat_id] = (tokens - 1.0, now)

    # --- methods --------------------------------------------------------------------

    def _m_getMe(self, _p: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _m_getUpdates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(p.get("offset", 0))
        if offset:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        allowed = p.get("allowed_updates")
        deadline = time.monotonic() + float(p.get("timeout", 0))
        while True:
            ready = [u for u in self.pending if _allowed(u, allowed)]
            left = deadline - time.monotonic()
            if ready or left <= 0 or self._closing:
                return ready[: int(p.get("limit", 100))]
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout=left)

    def _m_setWebhook(self, p: dict[str, Any]) -> bool:
        if not str(p.get("url", "")).startswith(("http://", "https://")):
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        secret = p.get("secret_token")
        if secret is not None and not (1 <= len(secret) <= 256):
            raise ApiError(400, "Bad Request: secret token is invalid")
        self.webhook = {
            "url": p["url"],
            "secret_token": secret,
            "allowed_updates": p.get("allowed_updates"),
        }
        if p.get("drop_pending_updates"):
            self.pending.clear()
        return True

    def _m_deleteWebhook(self, p: dict[str, Any]) -> bool:
        self.webhook = None
        if p.get("drop_pending_updates"):
            self.pending.clear()
        return True

    def _m_getWebhookInfo(self, _p: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.pending),
        }

    def _m_setMyCommands(self, p: dict[str, Any]) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list) or not commands:
            raise ApiError(400, "Bad Request: commands must be a non-empty list")
        for cmd in commands:
            if not (1 <= len(cmd.get("command", "")) <= 32) or not cmd.get("description"):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        return True

    def _m_sendChatAction(self, p: dict[str, Any]) -> bool:
        self._require_chat(p)
        return True

    def _m_answerCallbackQuery(self, p: dict[str, Any]) -> bool:
        if not p.get("callback_query_id"):
            raise ApiError(400, "Bad Request: query is too old and response timeout expired")
        return True

    def _m_getChatMember(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id, user_id = int(p["chat_id"]), int(p["user_id"])
        status = self.members.get((chat_id, user_id), "member")
        user = self.user(user_id)
        if status == "creator":
            return {"status": "creator", "user": user, "is_anonymous": False}
        if status == "administrator":
            flags = (
                "can_be_edited",
                "is_anonymous",
                "can_manage_chat",
                "can_delete_messages",
                "can_manage_video_chats",
                "can_restrict_members",
                "can_promote_members",
                "can_change_info",
                "can_invite_users",
                "can_post_stories",
                "can_edit_stories",
                "can_delete_stories",
                "can_send_welcome_messages",
            )
            return {"status": "administrator", "user": user, **dict.fromkeys(flags, False)}
        return {"status": status, "user": user}

    def _m_getFile(self, p: dict[str, Any]) -> dict[str, Any]:
        stored = self.files.get(str(p.get("file_id")))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if stored.size > DOWNLOAD_LIMIT:
            raise ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.path,
        }

    def _m_sendMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._require_chat(p)
        text, entities = self._check_text("sendMessage", p)
        msg: dict[str, Any] = {
            "message_id": self._next_message_id(chat["id"]),
            "date": int(time.time()),
            "chat": chat,
            "from": self.bot_user,
            "text": text,
        }
        if entities:
            msg["entities"] = entities
        if "parse_mode" in p:
            msg["parse_mode_used"] = p["parse_mode"]  # recorded for assertions only
        self._placed(chat, p, msg)
        if "reply_markup" in p:
            msg["reply_markup"] = p["reply_markup"]
        self.messages[(chat["id"], msg["message_id"])] = msg
        return msg

    def _m_sendVoice(
        self, p: dict[str, Any], files: dict[str, Upload] | None = None
    ) -> dict[str, Any]:
        chat = self._require_chat(p)
        upload = _attached(p.get("voice"), files or {}, "voice")
        if upload is None:
            raise ApiError(400, "Bad Request: there is no voice in the request")
        if not upload.data:
            raise ApiError(400, "Bad Request: file must be non-empty")
        caption = str(p.get("caption") or "")
        if utf16_len(caption) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        msg = self._placed(
            chat,
            p,
            {
                "message_id": self._next_message_id(chat["id"]),
                "date": int(time.time()),
                "chat": chat,
                "from": self.bot_user,
            },
        )
        stored = self.add_file(upload.data, path_suffix="oga")
        self.uploads.append(upload)
        media = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(upload.data),
        }
        # Telegram shows OGG/Opus as a voice note; other formats arrive as a document.
        if upload.data[:4] == b"OggS" and b"OpusHead" in upload.data[:512]:
            duration = p.get("duration")
            msg["voice"] = {**media, "duration": int(duration or 0), "mime_type": "audio/ogg"}
        else:
            msg["document"] = {**media, "file_name": upload.filename or "file"}
        if caption:
            msg["caption"] = caption
        self.messages[(chat["id"], msg["message_id"])] = msg
        return msg

    def _placed(
        self, chat: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]
    ) -> dict[str, Any]:
        """``msg`` in its topic and replying to its target, as ``p`` asks."""
        thread = p.get("message_thread_id")
        if thread is not None:
            msg["message_thread_id"] = int(thread)
            if chat.get("is_forum"):
                msg["is_topic_message"] = True
        reply = p.get("reply_parameters")
        if isinstance(reply, dict) and reply.get("message_id") is not None:
            target = self.messages.get((chat["id"], int(reply["message_id"])))
            if target is None and not reply.get("allow_sending_without_reply"):
                raise ApiError(400, "Bad Request: message to be replied not found")
            if target is not None:
                msg["reply_to_message"] = {
                    k: v for k, v in target.items() if k != "reply_to_message"
                }
        return msg

    def _m_sendMessageDraft(self, p: dict[str, Any]) -> bool:
        chat = self._require_chat(p)
        if chat.get("type") != "private":
            raise ApiError(400, "Bad Request: chat must be a private chat")
        if int(p.get("draft_id", 0)) == 0:
            raise ApiError(400, "Bad Request: draft_id must be non-zero")
        self._check_text("sendMessageDraft", p)
        return True

    def _m_editMessageText(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._own_message(p)
        text, entities = self._check_text("editMessageText", p)
        markup = p.get("reply_markup")
        if (
            msg.get("text") == text
            and (msg.get("entities") or []) == entities
            and msg.get("reply_markup") == markup
        ):
            raise ApiError(400, NOT_MODIFIED)
        msg["text"] = text
        msg.pop("entities", None)
        if entities:
            msg["entities"] = entities
        if markup is not None:
            msg["reply_markup"] = markup
        else:
            msg.pop("reply_markup", None)
        msg["edit_date"] = int(time.time())
        return msg

    def _m_deleteMessage(self, p: dict[str, Any]) -> bool:
        chat = self._require_chat(p)
        key = (chat["id"], int(p.get("message_id", 0)))
        if key not in self.messages:
            raise ApiError(400, "Bad Request: message to delete not found")
        if self.messages[key].get("from", {}).get("id") != self.bot_id:
            raise ApiError(400, "Bad Request: message can't be deleted")
        del self.messages[key]
        return True

    def _m_editMessageReplyMarkup(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._own_message(p)
        markup = p.get("reply_markup")
        if msg.get("reply_markup") == markup:
            raise ApiError(400, NOT_MODIFIED)
        if markup is None:
            msg.pop("reply_markup", None)
        else:
            msg["reply_markup"] = markup
        return msg

    # --- validation helpers -----------------------------------------------------------

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def _known_chats(self) -> dict[int, dict[str, Any]]:
        return {cid: m["chat"] for (cid, _), m in self.messages.items()}

    def _require_chat(self, p: dict[str, Any]) -> dict[str, Any]:
        if "chat_id" not in p:
            raise ApiError(400, "Bad Request: chat_id is empty")
        try:
            chat_id = int(p["chat_id"])
        except ValueError:
            raise ApiError(400, "Bad Request: chat not found") from None
        chat = self._known_chats().get(chat_id)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        thread = p.get("message_thread_id")
        if thread is not None and chat["type"] != "private" and not chat.get("is_forum"):
            # Telegram ignores it in plain groups, and rejects unknown topics in forums.
            pass
        return chat

    def _own_message(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._require_chat(p)
        msg = self.messages.get((chat["id"], int(p.get("message_id", 0))))
        if msg is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if msg.get("from", {}).get("id") != self.bot_id:
            raise ApiError(400, "Bad Request: message can't be edited")
        return msg

    def _check_text(self, method: str, p: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        text = p.get("text", "")
        if not isinstance(text, str):
            raise ApiError(400, "Bad Request: text must be a string")
        entities = p.get("entities") or []
        if "parse_mode" in p and "entities" in p:
            raise ApiError(400, "Bad Request: parse_mode can't be combined with entities")
        length = utf16_len(text)
        minimum = TEXT_METHODS[method]
        if minimum and not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if length > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        if not isinstance(entities, list):
            raise ApiError(400, "Bad Request: can't parse entities JSON object")
        for ent in entities:
            if not isinstance(ent, dict) or ent.get("type") not in ENTITY_TYPES:
                raise ApiError(400, "Bad Request: can't parse entities: unsupported entity type")
            offset, size = ent.get("offset"), ent.get("length")
            if not isinstance(offset, int) or not isinstance(size, int) or offset < 0 or size < 1:
                raise ApiError(400, "Bad Request: can't parse entities: bad entity bounds")
            if offset + size > length:
                raise ApiError(400, "Bad Request: can't parse entities: entity is out of text")
            if ent["type"] == "text_link" and not ent.get("url"):
                raise ApiError(400, "Bad Request: can't parse entities: text_link without url")
        return text, entities

    def _auto_entities(self, text: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        mention = f"@{self.username}"
        pos = text.find(mention)
        while pos >= 0:
            out.append(
                {"type": "mention", "offset": utf16_len(text[:pos]), "length": utf16_len(mention)}
            )
            pos = text.find(mention, pos + 1)
        if text.startswith("/"):
            word = text.split()[0]
            out.insert(0, {"type": "bot_command", "offset": 0, "length": utf16_len(word)})
        return out


# Parameters that travel as JSON-serialized objects or lists.
JSON_FIELDS = {
    "entities",
    "caption_entities",
    "reply_markup",
    "reply_parameters",
    "allowed_updates",
    "commands",
    "scope",
    "link_preview_options",
}
FREE_TEXT = {"text", "caption", "secret_token", "url", "data", "callback_query_id"}


def _attached(value: Any, files: dict[str, Upload], field_name: str) -> Upload | None:
    """The upload a file field names: ``attach://<part>``, or the part named as the field."""
    if isinstance(value, str) and value.startswith("attach://"):
        return files.get(value.removeprefix("attach://"))
    return files.get(field_name)


def _decode(raw: dict[str, str]) -> dict[str, Any]:
    """Undo aiogram's form encoding: JSON objects/lists and bools back to Python."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in JSON_FIELDS:
            try:
                out[key] = json.loads(value)
            except ValueError:
                raise AssertionError(f"{key} is not JSON: {value[:80]!r}") from None
        elif key not in FREE_TEXT and value in ("true", "false"):
            out[key] = value == "true"
        else:
            out[key] = value
    return out


def _allowed(update: dict[str, Any], allowed: Any) -> bool:
    if not allowed:  # Telegram: empty list = every type except a few opt-in ones
        return True
    return any(key in update for key in allowed)


@pytest.fixture
async def telegram_fake() -> AsyncIterator[FakeTelegram]:
    """A running :class:`FakeTelegram` on 127.0.0.1 with a free port (one per test)."""
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
