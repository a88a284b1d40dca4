"""Black-box fakes for the Telegram acceptance tests: a Bot API server and a DashScope server
(its Qwen-Omni endpoint: :mod:`tests.acceptance.omni`).

Written from the public Bot API documentation (core.telegram.org/bots/api, Bot API 10.3) and
the DashScope native protocol notes, not from the product or its own test doubles. Both run
in one background thread with its own event loop, so the tests themselves are plain
synchronous functions that start ``voicebot run`` as a subprocess.

The Bot API fake answers like Telegram: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "..."}``, accepts form-encoded, multipart and
JSON bodies (aiogram sends every value as a string), and rejects what Telegram rejects
(text over 4096 UTF-16 code units, identical edits, drafts outside private chats, ...).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html.parser
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from tests.acceptance.omni import OmniFake
from tests.process import patience

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
MAX_TEXT = 4096
MAX_DOWNLOAD = 20 * 1024 * 1024
CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


class ConnectionDrop(ApiError):
    """Injected as an error: the fake closes the connection without answering.

    ``after_apply``: the call is carried out first (the message is sent or edited), only the
    answer is lost, as when a connection breaks after Telegram has processed the request.
    """

    def __init__(self, *, after_apply: bool = False) -> None:
        super().__init__(
            0, "<connection dropped after applying>" if after_apply else "<connection dropped>"
        )
        self.after_apply = after_apply


def bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class Call:
    """One Bot API request as the fake received it (values as sent on the wire)."""

    method: str
    params: dict[str, Any]
    at: float
    ok: bool | None = True
    error: str | None = None
    injected: bool = False  # the answer was an injected fault, not the method's own
    content_type: str = ""  # of the request body (multipart/form-data for uploads)

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def json(self, name: str) -> Any:
        value = self.params.get(name)
        if isinstance(value, str):
            return json.loads(value)
        return value

    def int(self, name: str) -> int | None:
        value = self.params.get(name)
        if value is None:
            return None
        return int(value)


@dataclass
class StoredMessage:
    chat_id: int
    message_id: int
    text: str
    entities: list[dict[str, Any]]
    reply_markup: Any
    from_bot: bool
    voice: FakeFile | None = None  # a voice note the bot sent (sendVoice)
    reply_to: int | None = None  # the message it answers
    thread_id: int | None = None  # message_thread_id


@dataclass
class Injection:
    """A one-shot (or n-shot) error answer for the next matching call.

    ``method`` may be a tuple: the ``times`` are then shared by all those methods.
    """

    method: str | tuple[str, ...]
    match: Callable[[dict[str, Any]], bool]
    error: ApiError
    times: int = 1


# ---------------------------------------------------------------------------------------
# Formatting: what Telegram does with parse_mode (enough to catch broken markup)


class _HtmlToEntities(html.parser.HTMLParser):
    TAGS: ClassVar[dict[str, str]] = {
        "b": "bold",
        "strong": "bold",
        "i": "italic",
        "em": "italic",
        "u": "underline",
        "ins": "underline",
        "s": "strikethrough",
        "strike": "strikethrough",
        "del": "strikethrough",
        "code": "code",
        "pre": "pre",
        "a": "text_link",
        "tg-spoiler": "spoiler",
        "span": "spoiler",
        "blockquote": "blockquote",
        "tg-emoji": "custom_emoji",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.stack: list[tuple[str, int, dict[str, str | None]]] = []
        self.entities: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.TAGS:
            raise bad(f'can\'t parse entities: Unsupported start tag "{tag}"')
        self.stack.append((tag, utf16_len(self.text), dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1][0] != tag:
            raise bad(
                f"can't parse entities: Can't find end tag corresponding to start tag \"{tag}\""
            )
        name, start, attrs = self.stack.pop()
        length = utf16_len(self.text) - start
        if length:
            entity: dict[str, Any] = {"type": self.TAGS[name], "offset": start, "length": length}
            if name == "a":
                entity["url"] = attrs.get("href") or ""
            self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self.text += data


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    if re.search(r"<(?![a-zA-Z/])", text) or re.search(
        r"&(?![a-zA-Z]+;|#\d+;|#x[0-9a-fA-F]+;)", text
    ):
        raise bad("can't parse entities: Unsupported start tag or unescaped character")
    parser = _HtmlToEntities()
    parser.feed(text)
    parser.close()
    if parser.stack:
        raise bad(
            "can't parse entities: Can't find end tag corresponding to start tag "
            f'"{parser.stack[-1][0]}"'
        )
    return parser.text, sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))


MD2_RESERVED = set("_*[]()~`>#+-=|{}.!")
MD2_MARKS = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler"}


def parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    out = ""
    entities: list[dict[str, Any]] = []
    open_marks: dict[str, tuple[int, int]] = {}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 < len(text):
                out += text[i + 1]
                i += 2
                continue
            raise bad("can't parse entities: Character '\\' is reserved")
        if ch == "`":
            fence = "```" if text.startswith("```", i) else "`"
            end = text.find(fence, i + len(fence))
            if end < 0:
                raise bad(
                    "can't parse entities: Can't find end of the entity starting at byte "
                    f"offset {len(text[:i].encode())}"
                )
            body = text[i + len(fence) : end].replace("\\`", "`").replace("\\\\", "\\")
            start = utf16_len(out)
            out += body
            if body:
                entities.append(
                    {
                        "type": "pre" if fence == "```" else "code",
                        "offset": start,
                        "length": utf16_len(body),
                    }
                )
            i = end + len(fence)
            continue
        mark = next((m for m in ("__", "||") if text.startswith(m, i)), None) or (
            ch if ch in "*_~" else None
        )
        if mark is not None:
            if mark in open_marks:
                start, _ = open_marks.pop(mark)
                if utf16_len(out) > start:
                    entities.append(
                        {
                            "type": MD2_MARKS[mark],
                            "offset": start,
                            "length": utf16_len(out) - start,
                        }
                    )
            else:
                open_marks[mark] = (utf16_len(out), i)
            i += len(mark)
            continue
        if ch in MD2_RESERVED and ch not in "[]()":
            raise bad(
                f"can't parse entities: Character '{ch}' is reserved and must be escaped with "
                "the preceding '\\'"
            )
        if ch in "[]()":
            link = re.match(r"\[((?:[^\]\\]|\\.)*)\]\(((?:[^)\\]|\\.)*)\)", text[i:])
            if not link:
                raise bad(
                    f"can't parse entities: Character '{ch}' is reserved and must be escaped "
                    "with the preceding '\\'"
                )
            label = re.sub(r"\\(.)", r"\1", link.group(1))
            start = utf16_len(out)
            out += label
            entities.append(
                {
                    "type": "text_link",
                    "offset": start,
                    "length": utf16_len(label),
                    "url": link.group(2),
                }
            )
            i += link.end()
            continue
        out += ch
        i += 1
    if open_marks:
        _, pos = min(open_marks.values(), key=lambda v: v[1])
        raise bad(
            "can't parse entities: Can't find end of the entity starting at byte offset "
            f"{len(text[:pos].encode())}"
        )
    return out, entities


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


def check_entities(text: str, entities: Any) -> list[dict[str, Any]]:
    if not isinstance(entities, list):
        raise bad("can't parse entities: entities must be an array")
    size = utf16_len(text)
    for entity in entities:
        if not isinstance(entity, dict) or entity.get("type") not in ENTITY_TYPES:
            raise bad("can't parse entities: unsupported entity type")
        offset, length = entity.get("offset"), entity.get("length")
        if not isinstance(offset, int) or not isinstance(length, int):
            raise bad("can't parse entities: entity offset and length must be integers")
        if offset < 0 or length < 0 or offset + length > size:
            raise bad("can't parse entities: entity is out of the text bounds")
        if entity["type"] == "text_link" and not entity.get("url"):
            raise bad("can't parse entities: text_link without url")
    return entities


def formatted(params: dict[str, Any], text_key: str) -> tuple[str, list[dict[str, Any]]]:
    """The text and entities Telegram would store for ``params`` (raises like Telegram)."""
    text = params.get(text_key)
    text = "" if text is None else str(text)
    parse_mode = params.get("parse_mode")
    raw_entities = params.get("entities" if text_key == "text" else "caption_entities")
    if parse_mode and raw_entities is not None:
        raise bad("can't parse entities: parse_mode and entities can't be used together")
    if raw_entities is not None:
        entities = raw_entities if not isinstance(raw_entities, str) else json.loads(raw_entities)
        return text, check_entities(text, entities)
    if not parse_mode:
        return text, []
    mode = str(parse_mode).lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return re.sub(r"[*_`\[\]]", "", text), []
    raise bad("unsupported parse_mode")


# ---------------------------------------------------------------------------------------
# The Bot API


@dataclass
class FakeFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_size: int
    file_path: str


@dataclass
class FakeTelegram:
    """State of the fake Bot API. Methods named ``push_*``/``wait_*`` are for the tests."""

    token: str = "424242:AAF-acceptance-telegram-token"
    bot_id: int = 424242
    bot_username: str = "qa_voice_bot"
    calls: list[Call] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[tuple[int, int], StoredMessage] = field(default_factory=dict)
    files: dict[str, FakeFile] = field(default_factory=dict)
    injections: list[Injection] = field(default_factory=list)
    chat_members: dict[tuple[int, int], str] = field(default_factory=dict)
    webhook_url: str = ""
    webhook_secret: str | None = None
    confirmed_offset: int = 0
    closing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    loop: asyncio.AbstractEventLoop | None = None
    _wakeup: asyncio.Event | None = None
    _update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _message_ids: dict[int, itertools.count[int]] = field(default_factory=dict)

    # -- helpers for tests ----------------------------------------------------------------

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "QA Voice",
            "username": self.bot_username,
        }

    def next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def add_file(
        self, data: bytes, *, claimed_size: int | None = None, ext: str = "oga"
    ) -> FakeFile:
        n = len(self.files) + 1
        f = FakeFile(
            file_id=f"AwACAgIAAxkBAAI{n:06d}file",
            file_unique_id=f"AgAD{n:04d}",
            data=data,
            file_size=claimed_size if claimed_size is not None else len(data),
            file_path=f"voice/file_{n}.{ext}",
        )
        self.files[f.file_id] = f
        return f

    def user_message(
        self, chat: dict[str, Any], user: dict[str, Any], **fields: Any
    ) -> dict[str, Any]:
        """A message from a user (stored so that replies to it work), not yet delivered."""
        with self.lock:
            message_id = self.next_message_id(chat["id"])
            text = fields.get("text") or fields.get("caption") or ""
            self.messages[(chat["id"], message_id)] = StoredMessage(
                chat["id"], message_id, text, [], None, from_bot=False
            )
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": user,
            **fields,
        }

    def make_update(self, **payload: Any) -> dict[str, Any]:
        return {"update_id": next(self._update_ids), **payload}

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates."""
        with self.lock:
            self.updates.append(update)
        self._wake()
        return update

    def push_message(self, message: dict[str, Any]) -> dict[str, Any]:
        return self.push(self.make_update(message=message))

    def inject(
        self,
        method: str | tuple[str, ...],
        error: ApiError,
        *,
        match: Callable[[dict[str, Any]], bool] | None = None,
        times: int = 1,
    ) -> Injection:
        """Answer the next ``times`` calls of ``method`` matching ``match`` with ``error``.

        ``ConnectionDrop()`` closes the connection instead of answering (the call is not
        applied; with ``after_apply=True`` it is, and only the answer is lost). A tuple of
        methods shares the ``times``. Returns the injection (set ``times = 0`` to lift it).
        """
        injection = Injection(method, match or (lambda _p: True), error, times)
        with self.lock:
            self.injections.append(injection)
        return injection

    def served(self, method: str, *, chat_id: int | None = None) -> list[Call]:
        """The calls of ``method`` answered with an injected fault."""
        return [c for c in self.calls_to(method, chat_id=chat_id, ok=None) if c.injected]

    def snapshot(self) -> list[Call]:
        with self.lock:
            return list(self.calls)

    def calls_to(
        self, method: str, *, chat_id: int | None = None, ok: bool | None = True
    ) -> list[Call]:
        return [
            c
            for c in self.snapshot()
            if c.method == method
            and (chat_id is None or str(c.get("chat_id")) == str(chat_id))
            and (ok is None or c.ok == ok)
        ]

    def bot_messages(self, chat_id: int) -> list[StoredMessage]:
        with self.lock:
            return sorted(
                (m for (c, _), m in self.messages.items() if c == chat_id and m.from_bot),
                key=lambda m: m.message_id,
            )

    def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float | None = None, what: str = ""
    ) -> Any:
        deadline = time.monotonic() + (patience(20) if timeout is None else timeout)
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                methods = [
                    (c.method, c.params.get("chat_id"), c.error) for c in self.snapshot()[-30:]
                ]
                raise AssertionError(
                    f"timed out waiting for {what or predicate}; last calls: {methods}"
                )
            time.sleep(0.05)

    def _wake(self) -> None:
        loop, event = self.loop, self._wakeup
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)

    # -- the HTTP side --------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        return app

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method != "POST" or not request.can_read_body:
            return params
        ctype = request.content_type
        if ctype == "application/json":
            body = await request.json()
            params.update(body if isinstance(body, dict) else {})
        else:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str | bytes | bytearray):
                    params[key] = value
                else:
                    params[key] = value.file.read()
        return params

    async def _handle_method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        params = await self._read_params(request)
        call = Call(method, params, time.monotonic(), ok=None, content_type=request.content_type)
        with self.lock:
            self.calls.append(call)
        handler = getattr(self, f"m_{method.lower()}", None)
        try:
            if handler is None:
                raise ApiError(404, "Not Found")
            with self.lock:
                for inj in self.injections:
                    methods = inj.method if isinstance(inj.method, tuple) else (inj.method,)
                    if method in methods and inj.times > 0 and inj.match(params):
                        inj.times -= 1
                        call.injected = True
                        if isinstance(inj.error, ConnectionDrop) and inj.error.after_apply:
                            with contextlib.suppress(ApiError):
                                handler(params)  # applied (if valid); the answer gets lost
                        raise inj.error
            if method.lower() == "getupdates":
                result = await self.m_getupdates(params)
            else:
                with self.lock:
                    result = handler(params)
        except ApiError as e:
            call.ok, call.error = False, e.description
            if isinstance(e, ConnectionDrop):
                if request.transport is not None:
                    request.transport.abort()
                raise web.HTTPServiceUnavailable() from None  # never reaches the client
            body: dict[str, Any] = {"ok": False, "error_code": e.code, "description": e.description}
            if e.parameters:
                body["parameters"] = e.parameters
            return web.json_response(body, status=e.code)
        call.ok = True
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401, text="Unauthorized")
        path = request.match_info["path"]
        with self.lock:
            f = next((f for f in self.files.values() if f.file_path == path), None)
            self.calls.append(Call("<download>", {"file_path": path}, time.monotonic()))
        if f is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        return web.Response(body=f.data, content_type="application/octet-stream")

    # -- parameter helpers ----------------------------------------------------------------

    @staticmethod
    def _int(params: dict[str, Any], name: str, *, required: bool = True) -> int | None:
        value = params.get(name)
        if value is None or value == "":
            if required:
                raise bad(f"{name} is empty" if name != "chat_id" else "chat not found")
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad(f"invalid {name} specified") from None

    @staticmethod
    def _json(params: dict[str, Any], name: str) -> Any:
        value = params.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad(f"can't parse {name} JSON object") from None
        return value

    def _check_markup(self, params: dict[str, Any]) -> Any:
        markup = self._json(params, "reply_markup")
        if markup is None:
            return None
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad(
                    'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
                )
            for row in rows:
                for button in row:
                    if not button.get("text"):
                        raise bad("BUTTON_TEXT_EMPTY")
                    data = button.get("callback_data")
                    if data is not None and not (1 <= len(str(data).encode()) <= 64):
                        raise bad("BUTTON_DATA_INVALID")
        return markup

    def _check_reply(self, params: dict[str, Any], chat_id: int) -> None:
        reply = self._json(params, "reply_parameters")
        reply_to = self._int(params, "reply_to_message_id", required=False)
        if reply is not None:
            reply_to = reply.get("message_id")
            if reply.get("allow_sending_without_reply"):
                return
            target_chat = reply.get("chat_id", chat_id)
        else:
            target_chat = chat_id
        if reply_to is not None and (int(target_chat), int(reply_to)) not in self.messages:
            raise bad("message to be replied not found")

    def _store(
        self, chat_id: int, text: str, entities: list[dict[str, Any]], markup: Any
    ) -> dict[str, Any]:
        message_id = self.next_message_id(chat_id)
        self.messages[(chat_id, message_id)] = StoredMessage(
            chat_id, message_id, text, entities, markup, from_bot=True
        )
        chat_type = "private" if chat_id > 0 else "supergroup"
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type},
            "from": self.bot_user,
            "text": text,
        }
        if entities:
            message["entities"] = entities
        if markup:
            message["reply_markup"] = markup
        return message

    # -- methods ----------------------------------------------------------------------------

    def m_getme(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def m_getupdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = self._int(params, "offset", required=False) or 0
        timeout = min(self._int(params, "timeout", required=False) or 0, 50)
        limit = self._int(params, "limit", required=False) or 100
        deadline = time.monotonic() + timeout
        assert self._wakeup is not None
        while True:
            with self.lock:
                if offset:
                    self.confirmed_offset = max(self.confirmed_offset, offset)
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]
                pending = self.updates[:limit]
                self._wakeup.clear()
            if pending or self.closing or time.monotonic() >= deadline:
                return pending
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), deadline - time.monotonic())

    def m_setwebhook(self, params: dict[str, Any]) -> bool:
        url = str(params.get("url") or "")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise bad("secret token contains unallowed characters")
        if url and not url.startswith(("https://", "http://")):
            raise bad("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook_url = url
        self.webhook_secret = str(secret) if secret is not None else None
        return True

    def m_deletewebhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = ""
        self.webhook_secret = None
        return True

    def m_getwebhookinfo(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.webhook_url, "has_custom_certificate": False, "pending_update_count": 0}

    def m_setmycommands(self, params: dict[str, Any]) -> bool:
        commands = self._json(params, "commands")
        if not isinstance(commands, list):
            raise bad("commands must be an array")
        for c in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", c.get("command", "")):
                raise bad("BOT_COMMAND_INVALID")
            if not (1 <= len(c.get("description", "")) <= 256):
                raise bad("command description is empty")
        return True

    def m_deletemycommands(self, params: dict[str, Any]) -> bool:
        return True

    def m_setmydescription(self, params: dict[str, Any]) -> bool:
        return True

    def m_setmyshortdescription(self, params: dict[str, Any]) -> bool:
        return True

    def m_close(self, params: dict[str, Any]) -> bool:
        return True

    def m_logout(self, params: dict[str, Any]) -> bool:
        return True

    def m_sendchataction(self, params: dict[str, Any]) -> bool:
        self._int(params, "chat_id")
        if params.get("action") not in CHAT_ACTIONS:
            raise bad("wrong parameter action in request")
        return True

    def m_sendmessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._int(params, "chat_id")
        assert chat_id is not None
        text, entities = formatted(params, "text")
        if not text.strip():
            raise bad("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise bad("message is too long")
        markup = self._check_markup(params)
        self._check_reply(params, chat_id)
        return self._store(chat_id, text, entities, markup)

    def m_sendmessagedraft(self, params: dict[str, Any]) -> bool:
        chat_id = self._int(params, "chat_id")
        assert chat_id is not None
        if chat_id < 0:
            raise bad("draft messages can be sent only to private chats")
        draft_id = self._int(params, "draft_id")
        if not draft_id:
            raise bad("draft_id must be non-zero")
        text, _ = formatted(params, "text")
        if utf16_len(text) > MAX_TEXT:
            raise bad("message is too long")
        return True

    def m_editmessagetext(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        if params.get("inline_message_id"):
            return True
        chat_id = self._int(params, "chat_id")
        message_id = self._int(params, "message_id")
        assert chat_id is not None and message_id is not None
        stored = self.messages.get((chat_id, message_id))
        if stored is None:
            raise bad("message to edit not found")
        if not stored.from_bot:
            raise bad("message can't be edited")
        text, entities = formatted(params, "text")
        if not text.strip():
            raise bad("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise bad("message is too long")
        markup = self._check_markup(params)
        if text == stored.text and entities == stored.entities and markup == stored.reply_markup:
            raise bad(NOT_MODIFIED[len("Bad Request: ") :])
        stored.text, stored.entities, stored.reply_markup = text, entities, markup
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "edit_date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "from": self.bot_user,
            "text": text,
            **({"entities": entities} if entities else {}),
            **({"reply_markup": markup} if markup else {}),
        }

    def m_editmessagereplymarkup(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        chat_id = self._int(params, "chat_id")
        message_id = self._int(params, "message_id")
        assert chat_id is not None and message_id is not None
        stored = self.messages.get((chat_id, message_id))
        if stored is None:
            raise bad("message to edit not found")
        markup = self._check_markup(params)
        if markup == stored.reply_markup:
            raise bad(NOT_MODIFIED[len("Bad Request: ") :])
        stored.reply_markup = markup
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "text": stored.text,
        }

    def m_deletemessage(self, params: dict[str, Any]) -> bool:
        chat_id = self._int(params, "chat_id")
        message_id = self._int(params, "message_id")
        assert chat_id is not None and message_id is not None
        if self.messages.pop((chat_id, message_id), None) is None:
            raise bad("message to delete not found")
        return True

    def m_sendvoice(self, params: dict[str, Any]) -> dict[str, Any]:
        """sendVoice: ``voice`` is a file_id, or an upload (multipart/form-data: the file
        as a part, named by ``attach://<name>`` or sent as ``voice`` itself). Telegram
        plays OGG/Opus as a voice note; ``duration`` is in whole seconds."""
        chat_id = self._int(params, "chat_id")
        assert chat_id is not None
        raw = params.get("voice")
        if isinstance(raw, str) and raw.startswith("attach://"):
            raw = params.get(raw[len("attach://") :])
            if raw is None:
                raise bad("wrong file identifier/HTTP URL specified")
        if isinstance(raw, bytes | bytearray):
            if not raw:
                raise bad("file must be non-empty")
            f = self.add_file(bytes(raw), ext="ogg")
        elif isinstance(raw, str) and raw in self.files:
            f = self.files[raw]
        else:
            raise bad("there is no voice in the request" if not raw else "wrong file identifier")
        caption, entities = formatted(params, "caption") if params.get("caption") else ("", [])
        if utf16_len(caption) > 1024:
            raise bad("message caption is too long")
        duration = self._int(params, "duration", required=False)
        markup = self._check_markup(params)
        self._check_reply(params, chat_id)
        reply = self._json(params, "reply_parameters")
        reply_to = (
            reply.get("message_id")
            if isinstance(reply, dict)
            else self._int(params, "reply_to_message_id", required=False)
        )
        thread_id = self._int(params, "message_thread_id", required=False)
        message = self._store(chat_id, caption, entities, markup)
        stored = self.messages[(chat_id, message["message_id"])]
        stored.voice, stored.reply_to, stored.thread_id = f, reply_to, thread_id
        del message["text"]
        if caption:
            message["caption"] = caption
        message.pop("entities", None)
        if entities:
            message["caption_entities"] = entities
        message["voice"] = {
            "file_id": f.file_id,
            "file_unique_id": f.file_unique_id,
            "duration": duration or 0,
            "mime_type": "audio/ogg" if f.data[:4] == b"OggS" else "audio/mpeg",
            "file_size": f.file_size,
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
        return message

    def voice_notes(self, chat_id: int) -> list[StoredMessage]:
        """The voice notes the bot sent in ``chat_id``, oldest first."""
        return [m for m in self.bot_messages(chat_id) if m.voice is not None]

    def m_answercallbackquery(self, params: dict[str, Any]) -> bool:
        if not params.get("callback_query_id"):
            raise bad("query is too old and response timeout expired or query ID is invalid")
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise bad("MESSAGE_TOO_LONG")
        return True

    def m_getfile(self, params: dict[str, Any]) -> dict[str, Any]:
        f = self.files.get(str(params.get("file_id")))
        if f is None:
            raise bad("wrong file_id or the file is temporarily unavailable")
        if f.file_size > MAX_DOWNLOAD:
            raise bad("file is too big")
        return {
            "file_id": f.file_id,
            "file_unique_id": f.file_unique_id,
            "file_size": f.file_size,
            "file_path": f.file_path,
        }

    def m_getchatmember(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._int(params, "chat_id")
        user_id = self._int(params, "user_id")
        assert chat_id is not None and user_id is not None
        status = self.chat_members.get((chat_id, user_id), "member")
        user = {"id": user_id, "is_bot": user_id == self.bot_id, "first_name": f"user{user_id}"}
        member: dict[str, Any] = {"status": status, "user": user}
        if status == "administrator":
            member.update(
                can_be_edited=False,
                is_anonymous=False,
                can_manage_chat=True,
                can_delete_messages=True,
                can_manage_video_chats=True,
                can_restrict_members=True,
                can_promote_members=False,
                can_change_info=True,
                can_invite_users=True,
                can_post_stories=False,
                can_edit_stories=False,
                can_delete_stories=False,
                can_send_welcome_messages=False,
            )
        elif status == "creator":
            member.update(is_anonymous=False)
        return member

    def m_getchatadministrators(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        chat_id = self._int(params, "chat_id")
        return [
            self.m_getchatmember({"chat_id": str(chat_id), "user_id": str(u)})
            for (c, u), s in self.chat_members.items()
            if c == chat_id and s in ("creator", "administrator")
        ]


# ---------------------------------------------------------------------------------------
# DashScope (native protocol, SSE framing without spaces after the colons)


@dataclass
class DashScopeScript:
    """What the fake model does for a request whose texts contain ``marker``."""

    marker: str
    status: int = 200
    code: str = ""
    message: str = ""
    mid_stream_error: bool = False
    chunks: tuple[str, ...] = ()


@dataclass
class FakeDashScope:
    api_key: str = "sk-acceptance-telegram"
    default_chunks: tuple[str, ...] = ("Hello! ", "I heard ", "your voice ", "note clearly.")
    chunk_delay: float = 0.15
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    scripts: list[DashScopeScript] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Qwen-Omni models, over the OpenAI-compatible endpoint (tests/acceptance/omni.py)
    omni: OmniFake = field(init=False)

    def __post_init__(self) -> None:
        self.omni = OmniFake(api_key=self.api_key)

    @property
    def reply_text(self) -> str:
        return "".join(self.default_chunks)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_post(
            "/api/v1/services/aigc/multimodal-generation/generation", self._generation
        )
        self.omni.mount(app)
        return app

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)

    @staticmethod
    def texts(body: dict[str, Any]) -> str:
        out = []
        for message in body.get("input", {}).get("messages", []):
            for part in message.get("content", []):
                if isinstance(part, dict) and "text" in part:
                    out.append(str(part["text"]))
        return "\n".join(out)

    async def _generation(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(
                {
                    "code": "InvalidApiKey",
                    "message": "Invalid API-key provided.",
                    "request_id": "r0",
                },
                status=401,
            )
        body = await request.json()
        with self.lock:
            self.requests.append(body)
            self.headers.append(dict(request.headers))
        messages = body.get("input", {}).get("messages")
        if not body.get("model") or not messages:
            return web.json_response(
                {
                    "code": "InvalidParameter",
                    "message": "Required parameter(s) missing or invalid.",
                    "request_id": "r1",
                },
                status=400,
            )
        for message in messages:
            for part in message.get("content", []):
                audio = part.get("audio") if isinstance(part, dict) else None
                if audio is not None and not str(audio).startswith(("data:", "http", "oss://")):
                    return web.json_response(
                        {
                            "code": "InvalidParameter",
                            "message": "The audio is invalid.",
                            "request_id": "r2",
                        },
                        status=400,
                    )
                if audio is not None and str(audio).startswith("data:"):
                    b64 = str(audio).split(",", 1)[1]
                    base64.b64decode(b64, validate=True)
        script = next((s for s in self.scripts if s.marker in self.texts(body)), None)
        request_id = f"req-{len(self.requests)}"
        if script is not None and script.status != 200:
            return web.json_response(
                {"code": script.code, "message": script.message, "request_id": request_id},
                status=script.status,
                headers={"Retry-After": "0"} if script.status == 429 else None,
            )
        chunks = script.chunks if script is not None and script.chunks else self.default_chunks
        incremental = bool(body.get("parameters", {}).get("incremental_output"))
        sse = request.headers.get("X-DashScope-SSE", "").lower() == "enable"
        usage = {"input_tokens": 40, "output_tokens": 0, "audio_tokens": 25}
        if not sse:
            text = "".join(chunks)
            usage["output_tokens"] = len(text.split())
            return web.json_response(
                {
                    "output": {
                        "choices": [
                            {
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": [{"text": text}]},
                            }
                        ]
                    },
                    "usage": usage,
                    "request_id": request_id,
                }
            )
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream;charset=UTF-8"}
        )
        await response.prepare(request)
        sent = ""
        n = 0
        for i, chunk in enumerate(chunks):
            n += 1
            sent += chunk
            usage["output_tokens"] = len(sent.split())
            last = i == len(chunks) - 1 and not (script and script.mid_stream_error)
            payload = {
                "output": {
                    "choices": [
                        {
                            "message": {
                                "role": "assistant",
                                "content": [{"text": chunk if incremental else sent}],
                            },
                            "finish_reason": "stop" if last else "null",
                        }
                    ]
                },
                "usage": usage,
                "request_id": request_id,
            }
            data = json.dumps(payload, ensure_ascii=False)
            frame = f"id:{n}\nevent:result\n:HTTP_STATUS/200\ndata:{data}\n\n"
            await response.write(frame.encode())
            await asyncio.sleep(self.chunk_delay)
        if script is not None and script.mid_stream_error:
            err = {"code": script.code, "message": script.message, "request_id": request_id}
            frame = f"id:{n + 1}\nevent:error\n:HTTP_STATUS/400\ndata:{json.dumps(err)}\n\n"
            await response.write(frame.encode())
        await response.write_eof()
        return response


# ---------------------------------------------------------------------------------------
# Running both in a thread


class FakeServers:
    """Starts ``FakeTelegram`` and ``FakeDashScope`` on free local ports in a thread."""

    def __init__(self) -> None:
        self.telegram = FakeTelegram()
        self.dashscope = FakeDashScope()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runners: list[web.AppRunner] = []
        self.telegram_base = ""
        self.dashscope_base = ""

    async def _start_app(self, app: web.Application) -> str:
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.runners.append(runner)
        addresses = runner.addresses
        port = int(addresses[0][1])
        return f"http://127.0.0.1:{port}"

    async def _start(self) -> None:
        self.telegram.loop = self.loop
        self.telegram._wakeup = asyncio.Event()
        self.telegram_base = await self._start_app(self.telegram.app())
        self.dashscope_base = await self._start_app(self.dashscope.app()) + "/api/v1"

    def start(self) -> FakeServers:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        self.telegram.closing = True
        self.telegram._wake()

        async def _stop() -> None:
            for runner in self.runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
