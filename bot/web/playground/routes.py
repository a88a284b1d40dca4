"""The playground's HTTP side: requests in, server-sent events and small JSON answers out.

Translation only. ``GET /`` serves the page (and starts a browser session);
``POST /playground/turn`` takes a recording (the body, an audio or video type, at most
``AUDIO_MAX_BYTES``: refused by its ``Content-Length`` before it is read, or cut off as
soon as it runs past) and answers
with the reply as a stream of server-sent events; ``/playground/new``, ``/model`` and
``/transcript`` are the ``new`` command, the model menu's button and the Transcript
button, answered by the command core. Every POST needs the session cookie and the
session's CSRF token (header ``X-Playground-Token``), and, when the browser sends one, an
``Origin`` of this server.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from importlib import resources
from typing import Any

import structlog
from aiohttp import web

from bot import texts
from bot.commands.ports import MODEL_ACTION, TRANSCRIPT_ACTION, ButtonAction, ChatCommand
from bot.errors import AudioTooLarge, QueueUnavailable, ShuttingDown
from bot.http import paths
from bot.http.server import HttpServer
from bot.i18n import Lang, choose, tr, use
from bot.web.console.signing import COOKIE as CONSOLE_COOKIE
from bot.web.playground.page import render_page
from bot.web.playground.platform import PlaygroundPlatform, chat_of
from bot.web.playground.session import COOKIE, TOKEN_HEADER

log = structlog.get_logger(__name__)

TURN = "/playground/turn"
NEW = "/playground/new"
MODEL = "/playground/model"
TRANSCRIPT = "/playground/transcript"
STATIC = {
    "/playground/playground.js": ("playground.js", "text/javascript"),
    "/playground/playground.css": ("playground.css", "text/css"),
}
# What a recording may be sent as: what MediaRecorder and a file picker give (the engine
# recognises the content itself; this only turns away what is plainly no recording).
_MEDIA_TYPES = ("audio/", "video/")
_OTHER_MEDIA = frozenset({"application/ogg", "application/octet-stream"})
_JSON_MAX = 4096  # bytes of a command's JSON body
_READ_CHUNK = 64 * 1024
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; media-src 'self' data: blob:; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _language_tag(request: web.Request) -> str | None:
    """The first language of ``Accept-Language`` (``zh-CN,zh;q=0.9`` → ``zh-CN``)."""
    header = request.headers.get("Accept-Language", "")
    first = header.split(",", 1)[0].split(";", 1)[0].strip()
    return first or None


class PlaygroundRoutes:
    """The playground's request handlers (see the module docstring)."""

    def __init__(self, *, platform: PlaygroundPlatform) -> None:
        self._platform = platform
        self._engine = platform.engine
        self._signer = platform.signer
        self._max_bytes = platform.core.settings.AUDIO_MAX_BYTES
        self._static: dict[str, bytes] = {}

    def register(self, http: HttpServer) -> None:
        http.add_route("GET", paths.PLAYGROUND, self.page)
        for path in STATIC:
            http.add_route("GET", path, self.static)
        http.add_route("POST", TURN, self.turn)
        http.add_route("POST", NEW, self.new)
        http.add_route("POST", MODEL, self.model)
        http.add_route("POST", TRANSCRIPT, self.transcript)

    # --- the page -----------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        if not await self._signed_in(request):
            return web.Response(
                status=401,
                text="Sign in first: send /admin to the bot (Telegram, in a private chat) or "
                "/voicebot admin (Slack), open the link, then come back to this page.",
                headers=_HEADERS,
            )
        session = self._signer.session_of(request.cookies.get(COOKIE))
        fresh = session is None
        if session is None:
            session = self._signer.new_session()
        lang = await self._language(session, request)
        view = await self._engine.get_settings(chat_of(session))
        with use(lang):
            body = render_page(
                lang=lang,
                token=self._signer.token(session),
                models=self._engine.allowed_models,
                current=view.model,
                max_bytes=self._max_bytes,
            )
        response = web.Response(text=body, content_type="text/html", headers=_HEADERS)
        if fresh:
            response.set_cookie(
                COOKIE,
                self._signer.cookie_value(session),
                httponly=True,
                samesite="Strict",
                secure=request.secure,
                path="/",
            )
        return response

    async def static(self, request: web.Request) -> web.Response:
        name, content_type = STATIC[request.path]
        body = self._static.get(name)
        if body is None:
            body = resources.files(__package__).joinpath("static", name).read_bytes()
            self._static[name] = body
        return web.Response(
            body=body,
            content_type=content_type,
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    # --- a recording --------------------------------------------------------------------

    async def turn(self, request: web.Request) -> web.StreamResponse:
        session, lang = await self._authorised(request)
        if not self._platform.accepting:  # shutting down: the page may try again
            with use(lang):
                return _error(503, ShuttingDown().user_message)
        media = request.content_type.lower()
        if not (media.startswith(_MEDIA_TYPES) or media in _OTHER_MEDIA):
            return _error(415, tr(texts.PLAYGROUND_NOT_AUDIO_TYPE, lang))
        too_large = AudioTooLarge(size=request.content_length, limit=self._max_bytes)
        # Refused before reading when the declared length is over the limit; a body sent
        # without one (chunked) is cut off where it passes the limit.
        if request.content_length is not None and request.content_length > self._max_bytes:
            with use(lang):
                return _error(413, too_large.user_message)
        data = await _read(request, self._max_bytes)
        if data is None:
            with use(lang):
                return _error(413, too_large.user_message)
        reply = secrets.token_urlsafe(12)
        platform = self._platform
        channel = platform.channels.open(reply)
        try:
            try:
                await platform.accept(
                    session=session,
                    reply=reply,
                    audio=data,
                    mime_type=media,
                    lang=_language_tag(request),
                )
            except QueueUnavailable:
                return _error(503, tr(texts.ERROR_GENERIC, lang))
            response = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-store",
                    "X-Accel-Buffering": "no",  # a proxy in front must not hold the stream
                }
            )
            await response.prepare(request)
            try:
                await _write(response, "accepted", {"reply": reply})
                while True:
                    event = await channel.get()
                    await _write(response, event.name, event.data)
                    if event.name == "done":
                        break
                await response.write_eof()
            except ConnectionResetError:
                # The page went away: the turn goes on (it is stored), unseen.
                log.info("web.stream_closed", reply=reply)
            return response
        finally:
            platform.channels.close(reply)

    # --- commands and buttons -----------------------------------------------------------

    async def new(self, request: web.Request) -> web.Response:
        session, _lang = await self._authorised(request)
        answer = await self._platform.commands.run(
            ChatCommand(
                name="new",
                args="",
                chat=chat_of(session),
                user_id=session,
                user_language=_language_tag(request),
            )
        )
        return web.json_response({"ok": True, "message": answer.text})

    async def model(self, request: web.Request) -> web.Response:
        session, _lang = await self._authorised(request)
        body = await _json(request)
        name = str(body.get("model", ""))
        answer = await self._platform.commands.press(
            self._press(request, session, MODEL_ACTION, name)
        )
        view = await self._engine.get_settings(chat_of(session))
        return web.json_response(
            {"ok": not answer.alert, "message": answer.notice, "model": view.model},
            status=400 if answer.alert else 200,
        )

    async def transcript(self, request: web.Request) -> web.Response:
        session, _lang = await self._authorised(request)
        body = await _json(request)
        action = self._press(request, session, TRANSCRIPT_ACTION, str(body.get("value", "")))
        answer = await self._platform.commands.press(action)
        if answer.later is not None:
            answer = await answer.later()
        if answer.post is not None:
            return web.json_response({"ok": True, "text": answer.post})
        return web.json_response(
            {"ok": not answer.alert, "message": answer.notice}, status=400 if answer.alert else 200
        )

    def _press(self, request: web.Request, session: str, action: str, value: str) -> ButtonAction:
        return ButtonAction(
            action=action,
            value=value,
            chat=chat_of(session),
            user_id=session,
            user_language=_language_tag(request),
        )

    # --- checks -------------------------------------------------------------------------

    async def _signed_in(self, request: web.Request) -> bool:
        """Off the loopback interface only admins signed in to the console may use the
        page (anyone reaching the port would talk on the operator's DashScope key)."""
        links = self._platform.core.console_links
        if self._platform.core.settings.http_host_loopback:
            return True
        if links is None:  # Settings refuses this; never serve unsigned off loopback
            return False
        signer = await links.keys.signer()
        return signer.session(request.cookies.get(CONSOLE_COOKIE)) is not None

    async def _authorised(self, request: web.Request) -> tuple[str, Lang]:
        """The session of a POST with its cookie, its token and (if sent) our origin."""
        if not await self._signed_in(request):
            raise web.HTTPUnauthorized(
                text=json.dumps({"ok": False, "error": "sign in to the admin console first"}),
                content_type="application/json",
            )
        session = self._signer.session_of(request.cookies.get(COOKIE))
        lang = choose(None, _language_tag(request))
        origin = request.headers.get("Origin")
        same_origin = origin is None or origin == f"{request.scheme}://{request.host}"
        token = request.headers.get(TOKEN_HEADER)
        if session is None or not same_origin or not self._signer.token_ok(session, token):
            log.info("web.refused", reason="session" if session is None else "csrf")
            raise web.HTTPForbidden(
                text=json.dumps({"ok": False, "error": tr(texts.PLAYGROUND_SESSION_ENDED, lang)}),
                content_type="application/json",
            )
        return session, await self._language(session, request)

    async def _language(self, session: str, request: web.Request) -> Lang:
        return await self._engine.language(chat_of(session), _language_tag(request))


async def _read(request: web.Request, limit: int) -> bytes | None:
    """The body, or ``None`` once it runs past ``limit`` (whatever Content-Length said)."""
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_READ_CHUNK)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)


async def _json(request: web.Request) -> dict[str, Any]:
    if request.content_length is None or request.content_length > _JSON_MAX:
        raise web.HTTPRequestEntityTooLarge(
            max_size=_JSON_MAX, actual_size=request.content_length or 0
        )
    with contextlib.suppress(ValueError):
        body = await request.json()
        if isinstance(body, dict):
            return body
    raise web.HTTPBadRequest()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


async def _write(response: web.StreamResponse, name: str, data: dict[str, Any]) -> None:
    payload = json.dumps(data, ensure_ascii=False)
    await response.write(f"event: {name}\ndata: {payload}\n\n".encode())
