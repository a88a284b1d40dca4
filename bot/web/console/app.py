"""The console's pages on the bot's own aiohttp server (``/admin/…``, ADMIN_CONSOLE=true).

Server-rendered Jinja2 (plain :mod:`jinja2` with autoescaping: the routes are added to a
server that is already running, which ``aiohttp-jinja2``'s app-bound setup does not fit),
one stylesheet, no JavaScript. Every page needs the session cookie a one-time sign-in link
set; every POST needs the session's CSRF token. A chat admin's rights are re-checked with
their platform before any change (as the chat commands do); BOT_ADMINS need none.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from importlib import resources
from typing import Any

import structlog
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape
from multidict import MultiDictProxy

from bot.catalog import CATALOG
from bot.commands import SLASH
from bot.core import Core
from bot.engine.domain import GroupPolicy, TranscriptMode, VoiceReply
from bot.engine.ports import AdminCheck, ChatRef
from bot.engine.settings import SETTING_KEYS, ChatSettingsView
from bot.errors import BotError
from bot.http.server import HttpServer
from bot.storage.repositories import console as repo
from bot.storage.tables import Chat
from bot.web.console.charts import Series, bar_chart
from bot.web.console.links import SignInLinks
from bot.web.console.signing import COOKIE, SESSION_SECONDS, Session

log = structlog.get_logger(__name__)

PREFIX = "/admin"
# The settings the chat page edits, in its order, and how each is entered.
CHOICES: dict[str, list[str]] = {
    "group_policy": [p.value for p in GroupPolicy],
    "transcript": [t.value for t in TranscriptMode],
    "voice_reply": [v.value for v in VoiceReply],
    "language": ["en", "zh"],
    "asr_enable_itn": ["on", "off"],
}
_SORTS = {
    "title": lambda r: (r.title or r.external_id).lower(),
    "platform": lambda r: r.platform,
    "model": lambda r: r.model or "",
    "last": lambda r: r.last_activity or dt.datetime.min.replace(tzinfo=dt.UTC),
    "turns": lambda r: r.turns_week,
    "audio": lambda r: r.audio_seconds_week,
}


# The usage page's charts: title, what the bars are grouped by, (series, UsageLine field).
CHARTS: tuple[tuple[str, str, tuple[tuple[str, str], ...], str], ...] = (
    ("Turns and failures per day", "day", (("turns", "turns"), ("failures", "failures")), ""),
    (
        "Tokens per day",
        "day",
        (("input tokens", "input_tokens"), ("output tokens", "output_tokens")),
        "",
    ),
    (
        "Audio seconds per day",
        "day",
        (("audio in (s)", "audio_seconds_in"), ("spoken out (s)", "audio_seconds_out")),
        " s",
    ),
    ("Turns per model", "model", (("turns", "turns"), ("failures", "failures")), ""),
    ("Turns per chat", "chat", (("turns", "turns"), ("failures", "failures")), ""),
)


class AllowAll:
    """The admin check for a signed-in BOT_ADMINS member: every chat."""

    async def is_admin(self, chat: ChatRef, user_id: str) -> bool:
        return True


class DenyAll:
    """The admin check of a platform that is not running here: nobody (but BOT_ADMINS)."""

    async def is_admin(self, chat: ChatRef, user_id: str) -> bool:
        return False


class AdminConsole:
    """Registers the console's routes on ``http`` and serves them from ``core``."""

    def __init__(self, *, core: Core, links: SignInLinks) -> None:
        self._core = core
        self._links = links
        self._keys = links.keys
        self._secure = core.settings.admin_url.startswith("https://")
        self._env = Environment(
            loader=PackageLoader("bot.web.console", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._css = resources.files("bot.web.console").joinpath("static/console.css").read_bytes()

    def mount(self, http: HttpServer) -> None:
        for method, path, handler in (
            ("GET", f"{PREFIX}/login", self.login),
            ("GET", f"{PREFIX}/", self.chats),
            ("GET", PREFIX, self.chats),
            ("GET", f"{PREFIX}/chat", self.chat),
            ("POST", f"{PREFIX}/chat", self.save),
            ("GET", f"{PREFIX}/usage", self.usage),
            ("GET", f"{PREFIX}/health", self.health),
            ("POST", f"{PREFIX}/logout", self.logout),
            ("GET", f"{PREFIX}/console.css", self.css),
        ):
            http.add_route(method, path, handler)

    # --- sign-in --------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.StreamResponse:
        scope = await self._links.redeem(request.query.get("token", ""))
        if scope is None:
            log.info("console.login_refused")
            return self._page(
                "message.html",
                None,
                status=403,
                title="Sign-in link not valid",
                text="This sign-in link has expired or was used already. Send the bot "
                "/admin (Telegram, in a private chat) or /voicebot admin (Slack) for a new one.",
            )
        signer = await self._keys.signer()
        value, _ = signer.session_cookie(scope)
        response = web.HTTPSeeOther(f"{PREFIX}/")
        response.set_cookie(
            COOKIE,
            value,
            max_age=SESSION_SECONDS,
            # "/" and not "/admin": the playground off the loopback interface asks for it.
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self._secure,
        )
        log.info("console.signed_in", platform=scope.platform, all=scope.chats is None)
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        posted = await self._post_session(request)
        if isinstance(posted, web.StreamResponse):
            return posted
        response = web.HTTPSeeOther(f"{PREFIX}/")
        response.del_cookie(COOKIE, path="/")
        raise response

    async def _session(self, request: web.Request) -> Session | None:
        """The request's session; one for every chat ends once its holder has left
        BOT_ADMINS (a chat admin's rights are re-checked with the platform on change)."""
        signer = await self._keys.signer()
        session = signer.session(request.cookies.get(COOKIE))
        scope = session.scope if session is not None else None
        access = self._core.engine.access
        if (
            scope is not None
            and scope.chats is None
            and not access.is_bot_admin(scope.platform, scope.user_id)
        ):
            return None
        return session

    async def _get_session(self, request: web.Request) -> Session | web.StreamResponse:
        session = await self._session(request)
        if session is None:
            return self._page(
                "message.html",
                None,
                status=401,
                title="Sign in",
                text="Send the bot /admin (Telegram, in a private chat) or /voicebot admin "
                "(Slack) and open the link it sends you.",
            )
        return session

    async def _post_session(
        self, request: web.Request
    ) -> tuple[Session, MultiDictProxy[Any]] | web.StreamResponse:
        session = await self._session(request)
        form = await request.post()
        token = form.get("csrf")
        if session is None or not session.csrf_ok(token if isinstance(token, str) else None):
            log.warning("console.post_refused", signed_in=session is not None)
            return self._page(
                "message.html",
                None,
                status=403,
                title="Not allowed",
                text="This form has expired. Reload the page and try again.",
            )
        return session, form

    # --- pages ----------------------------------------------------------------------

    async def chats(self, request: web.Request) -> web.StreamResponse:
        session = await self._get_session(request)
        if isinstance(session, web.StreamResponse):
            return session
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
        async with self._core.database.sessions() as s:
            rows = await repo.chat_rows(s, ids=_ids(session), since=since)
        platform = request.query.get("platform", "")
        text = request.query.get("q", "").strip().lower()
        if platform:
            rows = [r for r in rows if r.platform == platform]
        if text:
            rows = [r for r in rows if text in f"{r.title or ''} {r.external_id}".lower()]
        sort = request.query.get("sort", "last")
        key = _SORTS.get(sort, _SORTS["last"])
        descending = request.query.get(
            "order", "desc" if sort in ("last", "turns", "audio") else "asc"
        )
        rows.sort(key=key, reverse=descending == "desc")
        return self._page(
            "chats.html",
            session,
            title="Chats",
            rows=rows,
            default_model=self._core.settings.DEFAULT_MODEL,
            platform=platform,
            q=request.query.get("q", ""),
            sort=sort,
            order=descending,
            platforms=sorted({r.platform for r in rows} | ({platform} if platform else set())),
        )

    async def chat(
        self,
        request: web.Request,
        *,
        error: str | None = None,
        saved: bool = False,
        status: int = 200,
    ) -> web.StreamResponse:
        session = await self._get_session(request)
        if isinstance(session, web.StreamResponse):
            return session
        found = await self._chat(request, session)
        if found is None:
            raise web.HTTPNotFound()
        row, ref = found
        view = await self._core.engine.get_settings(ref)
        async with self._core.database.sessions() as s:
            conversations = await repo.conversation_rows(s, row.id)
            audit = await repo.audit_rows(s, row.id)
        return self._page(
            "chat.html",
            session,
            status=status,
            title=row.title or row.external_id,
            chat=row,
            view=view,
            values=_form_values(view),
            models=self._model_options(view),
            choices=CHOICES,
            voices=view.spec.voices,
            conversations=conversations,
            audit=audit,
            error=error,
            saved=saved or request.query.get("saved") == "1",
        )

    async def save(self, request: web.Request) -> web.StreamResponse:
        posted = await self._post_session(request)
        if isinstance(posted, web.StreamResponse):
            return posted
        session, form = posted
        found = await self._chat(request, session)
        if found is None:
            raise web.HTTPNotFound()
        row, ref = found
        view = await self._core.engine.get_settings(ref)
        current = _form_values(view)
        changes: dict[str, Any] = {}
        for key in SETTING_KEYS:
            if key not in form:
                continue
            raw = str(form[key]).strip()
            if raw == current.get(key, ""):
                continue
            changes[key] = _parse(key, raw)
        if not changes:
            raise web.HTTPSeeOther(f"{PREFIX}/chat?id={row.id}")
        admin = self._admin_check(session, ref)
        try:
            await self._core.engine.update_settings(
                ref, session.scope.user_id, admin, via="console", actor=session.actor, **changes
            )
        except BotError as exc:
            log.info("console.change_refused", error=type(exc).__name__, keys=sorted(changes))
            return await self.chat(request, error=exc.shown(SLASH), status=400)
        log.info("console.changed", chat_id=row.id, keys=sorted(changes), platform=row.platform)
        raise web.HTTPSeeOther(f"{PREFIX}/chat?id={row.id}&saved=1")

    async def usage(self, request: web.Request) -> web.StreamResponse:
        session = await self._get_session(request)
        if isinstance(session, web.StreamResponse):
            return session
        try:
            days = max(1, min(int(request.query.get("days", "14")), 366))
        except ValueError:
            days = 14
        since = dt.date.today() - dt.timedelta(days=days - 1)
        ids = _ids(session)
        async with self._core.database.sessions() as s:
            by_day = await repo.usage_lines(s, by="day", since=since, ids=ids)
            by_model = await repo.usage_lines(s, by="model", since=since, ids=ids)
            by_chat = await repo.usage_lines(s, by="chat", since=since, ids=ids)
            names = {r.id: r for r in await repo.known_chats(s) if ids is None or r.id in ids}
        day_labels = [(since + dt.timedelta(days=i)).isoformat() for i in range(days)]
        day_map = {line.key: line for line in by_day}
        per_day = [day_map.get(d) for d in day_labels]

        def col(lines: list[Any], attr: str) -> list[float]:
            return [float(getattr(x, attr)) if x is not None else 0.0 for x in lines]

        def chat_label(key: str) -> str:
            row = names.get(int(key))
            return f"{row.platform}: {row.title or row.external_id}" if row else key

        day_short = [d[5:] for d in day_labels]
        sources: dict[str, tuple[list[str], list[Any]]] = {
            "day": (day_short, per_day),
            "model": ([line.key for line in by_model], by_model),
            "chat": ([chat_label(line.key) for line in by_chat], by_chat),
        }
        charts = []
        for title, by, series, unit in CHARTS:
            labels, lines = sources[by]
            charts.append(
                (
                    title,
                    bar_chart(
                        title=title,
                        labels=labels,
                        series=[Series(name=n, values=col(lines, attr)) for n, attr in series],
                        unit=unit,
                    ),
                )
            )
        return self._page(
            "usage.html",
            session,
            title="Usage",
            days=days,
            charts=charts,
            tables=[
                ("Per day", by_day),
                ("Per model", by_model),
                ("Per chat", [_relabel(x, chat_label(x.key)) for x in by_chat]),
            ],
        )

    async def health(self, request: web.Request) -> web.StreamResponse:
        session = await self._get_session(request)
        if isinstance(session, web.StreamResponse):
            return session
        queue = self._core.queue.health()
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=24)
        ids = _ids(session)
        async with self._core.database.sessions() as s:
            rates = await repo.turns_by_model(s, since=since, ids=ids)
            failures = await repo.failures_by_kind(s, since=since, ids=ids)
        return self._page(
            "health.html",
            session,
            title="Health",
            queue=queue,
            rates=rates,
            failures=failures,
        )

    async def css(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=self._css,
            content_type="text/css",
            headers={"Cache-Control": "max-age=3600"},
        )

    # --- helpers ----------------------------------------------------------------------

    async def _chat(self, request: web.Request, session: Session) -> tuple[Chat, ChatRef] | None:
        """The chat of ``?id=`` if the session may see it."""
        try:
            chat_id = int(request.query.get("id", ""))
        except ValueError:
            return None
        if not session.may_see(chat_id):
            return None
        async with self._core.database.sessions() as s:
            row = await s.get(Chat, chat_id)
        if row is None:
            return None
        ref = ChatRef(
            platform=row.platform,
            chat_id=row.external_id,
            kind=row.kind,
            title=row.title,
        )
        return row, ref

    def _admin_check(self, session: Session, ref: ChatRef) -> AdminCheck:
        if session.scope.chats is None:
            # A BOT_ADMINS member (still one: _session re-checks) manages every chat, of
            # any platform, whatever that platform would say of them.
            return AllowAll()
        if ref.platform != session.scope.platform:
            return DenyAll()  # a Telegram admin's rights say nothing about Slack
        return self._core.admin_checks.get(ref.platform, DenyAll())

    def _model_options(self, view: ChatSettingsView) -> list[dict[str, Any]]:
        options = []
        for name in self._core.settings.ALLOWED_MODELS:
            spec = CATALOG[name]
            options.append(
                {
                    "name": name,
                    "retired": not spec.choosable,
                    "selected": name == (view.model if "model" in view.chosen else ""),
                    "note": spec.status.value,
                    "replacement": spec.replacement,
                }
            )
        return options

    def _page(
        self, template: str, session: Session | None, *, status: int = 200, **context: Any
    ) -> web.Response:
        html = self._env.get_template(template).render(
            session=session, csrf=session.csrf if session else "", prefix=PREFIX, **context
        )
        return web.Response(
            text=html,
            status=status,
            content_type="text/html",
            headers={
                # No frames, no scripts, nothing from elsewhere: the pages need none.
                "Content-Security-Policy": "default-src 'none'; style-src 'self'; "
                "img-src 'self'; form-action 'self'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            },
        )


def _ids(session: Session) -> list[int] | None:
    return None if session.scope.chats is None else list(session.scope.chats)


def _relabel(line: repo.UsageLine, key: str) -> repo.UsageLine:
    return dataclasses.replace(line, key=key)


def _form_values(view: ChatSettingsView) -> dict[str, str]:
    """The form's value of every setting: the chat's own choice, or "" (the default)."""
    out: dict[str, str] = {}
    for key in SETTING_KEYS:
        if key not in view.chosen:
            out[key] = ""
            continue
        value = getattr(view, key)
        if isinstance(value, bool):
            out[key] = "on" if value else "off"
        elif value is None:
            out[key] = ""
        else:
            out[key] = str(getattr(value, "value", value))
    return out


def _parse(key: str, raw: str) -> Any:
    """A form value as the engine takes it: "" resets to the default."""
    if raw == "":
        return None
    return raw
