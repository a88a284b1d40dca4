"""Typed configuration from the environment and a ``.env`` file (CONTRACT.md names).

``Settings.load()`` is the only way to build it; it turns pydantic's validation errors into
one :class:`~bot.errors.ConfigError` naming the variable at fault. Nothing is read at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.catalog import CATALOG, DEFAULT_MODEL, DEFAULT_TTS_MODEL, TTS_CATALOG
from bot.errors import ConfigError

PLATFORMS = ("telegram", "slack")


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _check_http_url(name: str, value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    del name
    return value


class Settings(BaseSettings):
    """Every setting of the bot. Field names are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
        # `FOO=` in a .env or compose file means "not set", not an empty secret or URL.
        env_ignore_empty=True,
    )

    # --- storage
    DATABASE_URL: str = "sqlite+aiosqlite:///./data/bot.db"
    AUTO_MIGRATE: bool = True

    # --- DashScope
    DASHSCOPE_API_KEY: SecretStr | None = None
    DASHSCOPE_BASE_URL: str = "https://dashscope.aliyuncs.com/api/v1"
    DASHSCOPE_PROTOCOL: Literal["native", "openai"] = "native"
    DASHSCOPE_COMPATIBLE_BASE_URL: str | None = None
    DASHSCOPE_CONNECT_TIMEOUT: float = Field(default=10.0, gt=0)
    DASHSCOPE_FIRST_BYTE_TIMEOUT: float = Field(default=60.0, gt=0)
    DASHSCOPE_IDLE_TIMEOUT: float = Field(default=60.0, gt=0)
    DASHSCOPE_MAX_RETRIES: int = Field(default=3, ge=0, le=10)

    # --- models and access
    DEFAULT_MODEL: str = DEFAULT_MODEL
    ALLOWED_MODELS: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(CATALOG))
    BOT_ADMINS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ALLOWED_USERS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ALLOWED_CHATS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    USER_RATE_LIMIT: int = Field(default=20, ge=0)  # turns per user per window; 0 = off
    USER_RATE_WINDOW: float = Field(default=60.0, gt=0)

    # --- audio
    AUDIO_MAX_BYTES: int = Field(default=20 * 1024 * 1024, gt=0)
    # Seconds of a recording decoded at most: a bound on the work, not on the length.
    # Longer recordings are answered from their start (only what the model can be sent
    # is decoded anyway), and a header that lies about the length cannot make more.
    AUDIO_MAX_SECONDS: float = Field(default=15 * 60.0, gt=0)
    AUDIO_FORMAT: Literal["mp3", "wav"] = "mp3"
    AUDIO_WORKERS: int = Field(default=0, ge=0)  # 0 = number of cores
    AUDIO_TIMEOUT: float = Field(default=60.0, gt=0)

    # --- delivery to the chat platforms
    # Seconds the final text of a reply may take to reach the user, retries included;
    # after that the turn is stored ``undelivered`` and delivered at the chat's next message.
    DELIVERY_TIMEOUT: float = Field(default=60.0, gt=0)
    # Seconds of a spoken reply (a voice note) at most: longer speech is cut there and the
    # reply says so; the text is always whole.
    VOICE_REPLY_MAX_SECONDS: float = Field(default=120.0, gt=0, le=3600)
    # The TTS model that speaks replies of models without speech output (bot.catalog
    # TTS_CATALOG); "off": such models answer voice requests in text only.
    TTS_MODEL: str = DEFAULT_TTS_MODEL
    # On SIGTERM/SIGINT: seconds running turns get to finish before they are closed as
    # stopped (one process) or interrupted for another replica (several). Within Docker's
    # and Kubernetes' default 10 s / 30 s stop timeouts with the other shutdown steps.
    SHUTDOWN_GRACE: float = Field(default=5.0, gt=0, le=300)

    # --- the turn queue (bot.queue): in-process on SQLite, procrastinate on PostgreSQL
    # Turns (jobs) one process runs at once.
    WORKER_CONCURRENCY: int = Field(default=50, ge=1, le=1000)
    # A job whose worker sent no heartbeat for this long is run again (elsewhere).
    JOB_STALL_SECONDS: float = Field(default=30.0, ge=2, le=3600)
    # Fallback poll for jobs (procrastinate); new jobs and freed conversations wake
    # workers at once through LISTEN/NOTIFY.
    JOB_POLL_INTERVAL: float = Field(default=1.0, gt=0, le=60)

    # --- Telegram
    TELEGRAM_BOT_TOKEN: SecretStr | None = None
    TELEGRAM_API_BASE: str = "https://api.telegram.org"
    TELEGRAM_MODE: Literal["polling", "webhook"] = "polling"
    TELEGRAM_WEBHOOK_URL: str | None = None
    TELEGRAM_WEBHOOK_SECRET: SecretStr | None = None
    TELEGRAM_EDIT_INTERVAL: float = Field(default=1.0, gt=0)
    # Bot API calls a second for every chat's previews together (Telegram: ~30 messages a
    # second per bot); shared evenly among the chats streaming. 0 turns the limit off.
    TELEGRAM_GLOBAL_RATE: float = Field(default=25.0, ge=0)

    # --- Slack
    SLACK_BOT_TOKEN: SecretStr | None = None
    SLACK_MODE: Literal["socket", "http"] = "socket"
    SLACK_APP_TOKEN: SecretStr | None = None
    SLACK_SIGNING_SECRET: SecretStr | None = None
    SLACK_API_BASE: str = "https://slack.com/api/"

    # --- HTTP server and logs
    HTTP_HOST: str = "127.0.0.1"
    HTTP_PORT: int = Field(default=8080, ge=0, le=65535)
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    LOG_FORMAT: Literal["console", "json"] = "console"
    # The browser voice playground at ``/`` (bot.web.playground). ``None`` (unset): on
    # when no chat platform is configured and HTTP_HOST is a loopback address.
    WEB_PLAYGROUND: bool | None = None
    # The admin console at /admin/ (bot.web.console), and the public base of its sign-in
    # links (unset: http://HTTP_HOST:HTTP_PORT).
    ADMIN_CONSOLE: bool = False
    ADMIN_URL: str | None = None

    # --- validators ---------------------------------------------------------------
    @field_validator(
        "ALLOWED_MODELS", "BOT_ADMINS", "ALLOWED_USERS", "ALLOWED_CHATS", mode="before"
    )
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "DASHSCOPE_PROTOCOL", "TELEGRAM_MODE", "SLACK_MODE", "LOG_FORMAT", mode="before"
    )
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator(
        "DASHSCOPE_BASE_URL",
        "DASHSCOPE_COMPATIBLE_BASE_URL",
        "TELEGRAM_API_BASE",
        "TELEGRAM_WEBHOOK_URL",
        "SLACK_API_BASE",
    )
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url("", value)

    @field_validator("ALLOWED_MODELS")
    @classmethod
    def _models_known(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in CATALOG]
        if unknown:
            raise ValueError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(CATALOG)}")
        if not value:
            raise ValueError("must name at least one model")
        return value

    @field_validator("TTS_MODEL")
    @classmethod
    def _tts_known(cls, value: str) -> str:
        if value in ("", "off"):
            return "off"
        spec = TTS_CATALOG.get(value)
        if spec is None:
            raise ValueError(f"unknown TTS model {value!r}; known: {', '.join(TTS_CATALOG)}")
        if spec.status == "retired":
            successor = f"; use {spec.replacement!r}" if spec.replacement else ""
            raise ValueError(f"{value!r} was retired by DashScope{successor}")
        return value

    @field_validator("BOT_ADMINS", "ALLOWED_USERS", "ALLOWED_CHATS")
    @classmethod
    def _platform_ids(cls, value: list[str]) -> list[str]:
        for item in value:
            platform, sep, ident = item.partition(":")
            if not sep or platform.lower() not in PLATFORMS or not ident.strip():
                raise ValueError(f"{item!r} is not of the form telegram:<id> or slack:<id>")
        return [f"{i.partition(':')[0].lower()}:{i.partition(':')[2].strip()}" for i in value]

    @field_validator("DATABASE_URL")
    @classmethod
    def _db_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {exc}") from None
        if url.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
            raise ValueError(
                "use sqlite+aiosqlite://… or postgresql+asyncpg://… "
                f"(an async driver), got {url.drivername!r}"
            )
        return value

    @field_validator("TELEGRAM_WEBHOOK_SECRET")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        import re

        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("TELEGRAM_BOT_TOKEN")
    @classmethod
    def _tg_token(cls, value: SecretStr | None) -> SecretStr | None:
        import re

        if value is not None and not re.fullmatch(r"\d+:\S+", value.get_secret_value()):
            raise ValueError("must look like 123456:ABC… (the token from @BotFather)")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.DEFAULT_MODEL not in CATALOG:
            raise _field_error("DEFAULT_MODEL", f"{self.DEFAULT_MODEL!r} is not in the catalog")
        if self.DEFAULT_MODEL not in self.ALLOWED_MODELS:
            raise _field_error("DEFAULT_MODEL", f"{self.DEFAULT_MODEL!r} is not in ALLOWED_MODELS")
        if not CATALOG[self.DEFAULT_MODEL].choosable:
            successor = CATALOG[self.DEFAULT_MODEL].replacement
            raise _field_error(
                "DEFAULT_MODEL",
                f"{self.DEFAULT_MODEL!r} was retired by DashScope"
                + (f"; use {successor!r}" if successor else ""),
            )
        if self.TELEGRAM_BOT_TOKEN and self.TELEGRAM_MODE == "webhook":
            if not self.TELEGRAM_WEBHOOK_URL:
                raise _field_error("TELEGRAM_WEBHOOK_URL", "required when TELEGRAM_MODE=webhook")
            if not self.TELEGRAM_WEBHOOK_SECRET:
                raise _field_error("TELEGRAM_WEBHOOK_SECRET", "required when TELEGRAM_MODE=webhook")
        if self.SLACK_BOT_TOKEN:
            if self.SLACK_MODE == "http" and not self.SLACK_SIGNING_SECRET:
                raise _field_error("SLACK_SIGNING_SECRET", "required when SLACK_MODE=http")
            if self.SLACK_MODE == "socket" and not self.SLACK_APP_TOKEN:
                raise _field_error("SLACK_APP_TOKEN", "required when SLACK_MODE=socket (xapp-…)")
        if self.SLACK_APP_TOKEN and not self.SLACK_APP_TOKEN.get_secret_value().startswith("xapp-"):
            raise _field_error("SLACK_APP_TOKEN", "must be an app-level token starting with xapp-")
        if self.ADMIN_URL and not self.ADMIN_URL.startswith(("http://", "https://")):
            raise _field_error("ADMIN_URL", "must be an http:// or https:// URL")
        if self.WEB_PLAYGROUND and not self.http_host_loopback and not self.ADMIN_CONSOLE:
            # Anyone who reaches the port could talk on the operator's DashScope key: off
            # the loopback interface the page needs a sign-in (the admin console's).
            raise _field_error(
                "WEB_PLAYGROUND",
                f"on a non-loopback HTTP_HOST ({self.HTTP_HOST}) the playground needs the "
                "admin console's sign-in (ADMIN_CONSOLE=true); serve it on 127.0.0.1, or "
                "unset WEB_PLAYGROUND",
            )
        return self

    # --- derived values -----------------------------------------------------------
    @property
    def compatible_base_url(self) -> str:
        """The OpenAI-compatible base: explicit, or derived from DASHSCOPE_BASE_URL."""
        if self.DASHSCOPE_COMPATIBLE_BASE_URL:
            return self.DASHSCOPE_COMPATIBLE_BASE_URL.rstrip("/")
        base = self.DASHSCOPE_BASE_URL.rstrip("/")
        if base.endswith("/api/v1"):
            return base[: -len("/api/v1")] + "/compatible-mode/v1"
        return base + "/compatible-mode/v1"

    @property
    def tts_model(self) -> str | None:
        """The TTS model voicing text-only models, or ``None`` (``TTS_MODEL=off``)."""
        return None if self.TTS_MODEL == "off" else self.TTS_MODEL

    @property
    def telegram_enabled(self) -> bool:
        return self.TELEGRAM_BOT_TOKEN is not None

    @property
    def slack_enabled(self) -> bool:
        return self.SLACK_BOT_TOKEN is not None

    @property
    def http_host_loopback(self) -> bool:
        """HTTP_HOST is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
        import ipaddress

        host = self.HTTP_HOST.strip().strip("[]")
        if host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def admin_url(self) -> str:
        """The public base of the console's sign-in links, without a trailing slash."""
        if self.ADMIN_URL:
            return self.ADMIN_URL.rstrip("/")
        host = self.HTTP_HOST.strip() or "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 literal in a URL
        return f"http://{host}:{self.HTTP_PORT}"

    @property
    def playground_enabled(self) -> bool:
        """Serve the browser voice playground at ``/`` (WEB_PLAYGROUND, or its default:
        no chat platform configured and a loopback HTTP_HOST)."""
        if self.WEB_PLAYGROUND is not None:
            return self.WEB_PLAYGROUND
        return not self.telegram_enabled and not self.slack_enabled and self.http_host_loopback

    @property
    def audio_workers(self) -> int:
        import os

        return self.AUDIO_WORKERS or os.cpu_count() or 1

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Read the environment (and ``.env``); raise :class:`ConfigError` on a bad value."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise _to_config_error(exc) from None

    def describe(self) -> dict[str, str]:
        """The effective configuration for ``voicebot check``, secrets masked."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                shown = "********"
            elif value is None:
                shown = "(not set)"
            elif isinstance(value, list):
                shown = ",".join(value) if value else "(empty)"
            else:
                shown = str(value)
            out[name] = shown
        if not self.DASHSCOPE_COMPATIBLE_BASE_URL:
            out["DASHSCOPE_COMPATIBLE_BASE_URL"] = f"{self.compatible_base_url} (derived)"
        out["DATABASE_URL"] = _mask_db_password(self.DATABASE_URL)
        return out


class _FieldError(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


def _field_error(field: str, problem: str) -> _FieldError:
    return _FieldError(field, problem)


def _to_config_error(exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ()) if p != "__root__"]
    ctx = err.get("ctx") or {}
    inner = ctx.get("error")
    if isinstance(inner, _FieldError):
        return ConfigError(inner.field, inner.problem)
    variable = loc[0] if loc else "configuration"
    message = str(err.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    return ConfigError(variable, message)


def _mask_db_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.render_as_string(hide_password=True)


def data_dir_for(url: str) -> Path | None:
    """The folder a SQLite URL's file lives in (to create it), else ``None``."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return None
    return Path(parsed.database).expanduser().resolve().parent
