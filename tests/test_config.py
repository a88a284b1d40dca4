"""Configuration: CONTRACT.md names and defaults, .env support, one-line errors with exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.catalog import CATALOG
from bot.cli import main
from bot.config import Settings
from bot.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The suite's hermetic_settings fixture removed the product's variables and switched
    # .env off; here .env is what is tested, in a folder of the test's own.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(Settings.model_config, "env_file", ".env")


def test_defaults_follow_the_contract() -> None:
    s = Settings.load()
    assert s.DATABASE_URL == "sqlite+aiosqlite:///./data/bot.db"
    assert s.AUTO_MIGRATE is True
    assert s.DASHSCOPE_BASE_URL == "https://dashscope.aliyuncs.com/api/v1"
    assert s.DASHSCOPE_PROTOCOL == "native"
    assert s.compatible_base_url == "https://dashscope.aliyuncs.com/compatible-mode/v1"
    assert s.DEFAULT_MODEL == "qwen-audio-turbo-latest"
    assert list(CATALOG) == s.ALLOWED_MODELS
    assert s.BOT_ADMINS == [] and s.ALLOWED_USERS == [] and s.ALLOWED_CHATS == []
    assert s.TELEGRAM_API_BASE == "https://api.telegram.org"
    assert s.TELEGRAM_MODE == "polling"
    assert s.SLACK_MODE == "socket"
    assert s.SLACK_API_BASE == "https://slack.com/api/"
    assert (s.HTTP_HOST, s.HTTP_PORT) == ("127.0.0.1", 8080)
    assert (s.LOG_LEVEL, s.LOG_FORMAT) == ("INFO", "console")


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "DASHSCOPE_API_KEY=sk-from-dotenv\n"
        "ALLOWED_MODELS=qwen-audio-turbo-latest, qwen3-asr-flash\n"
        "BOT_ADMINS=telegram:42,Slack:U123\n"
        "DASHSCOPE_BASE_URL=https://dashscope-intl.aliyuncs.com/api/v1\n"
    )
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-from-env")  # the environment wins
    s = Settings.load()
    assert s.DASHSCOPE_API_KEY is not None
    assert s.DASHSCOPE_API_KEY.get_secret_value() == "sk-from-env"
    assert s.ALLOWED_MODELS == ["qwen-audio-turbo-latest", "qwen3-asr-flash"]
    assert s.BOT_ADMINS == ["telegram:42", "slack:U123"]
    assert s.compatible_base_url == "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DEFAULT_MODEL": "gpt-4o"}, "DEFAULT_MODEL"),
        ({"ALLOWED_MODELS": "qwen3-asr-flash"}, "DEFAULT_MODEL"),
        ({"ALLOWED_MODELS": "qwen-audio-turbo-latest,nope"}, "ALLOWED_MODELS"),
        ({"BOT_ADMINS": "42"}, "BOT_ADMINS"),
        ({"ALLOWED_USERS": "discord:1"}, "ALLOWED_USERS"),
        ({"ALLOWED_CHATS": "telegram:"}, "ALLOWED_CHATS"),
        ({"DASHSCOPE_BASE_URL": "ftp://x"}, "DASHSCOPE_BASE_URL"),
        ({"TELEGRAM_API_BASE": "localhost:8081"}, "TELEGRAM_API_BASE"),
        ({"DATABASE_URL": "postgresql://u@h/db"}, "DATABASE_URL"),
        ({"DASHSCOPE_PROTOCOL": "grpc"}, "DASHSCOPE_PROTOCOL"),
        ({"HTTP_PORT": "http"}, "HTTP_PORT"),
        ({"SHUTDOWN_GRACE": "0"}, "SHUTDOWN_GRACE"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_MODE": "http"}, "SLACK_SIGNING_SECRET"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_APP_TOKEN"),
        ({"SLACK_APP_TOKEN": "xoxb-wrong"}, "SLACK_APP_TOKEN"),
        ({"TELEGRAM_BOT_TOKEN": "not-a-token"}, "TELEGRAM_BOT_TOKEN"),
        ({"TELEGRAM_BOT_TOKEN": "1:a", "TELEGRAM_MODE": "webhook"}, "TELEGRAM_WEBHOOK_URL"),
        (
            {
                "TELEGRAM_BOT_TOKEN": "1:a",
                "TELEGRAM_MODE": "webhook",
                "TELEGRAM_WEBHOOK_URL": "https://bot.example/telegram/webhook",
            },
            "TELEGRAM_WEBHOOK_SECRET",
        ),
        ({"TELEGRAM_WEBHOOK_SECRET": "has spaces"}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    variable: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        Settings.load()
    assert info.value.variable == variable

    # The CLI turns it into exit status 2 and exactly one line naming the variable.
    assert main(["check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"voicebot: configuration error: {variable}: ")


def test_check_masks_secrets_and_says_what_run_would_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-very-secret-key")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:telegram-secret")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-slack-secret")
    monkeypatch.setenv("SLACK_MODE", "http")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://bot:db-password@db:5432/bot")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    for secret in (
        "sk-very-secret-key",
        "telegram-secret",
        "xoxb-slack-secret",
        "signing-secret",
        "db-password",
    ):
        assert secret not in out
    assert "DASHSCOPE_API_KEY" in out and "********" in out
    assert "postgresql+asyncpg://bot:***@db:5432/bot" in out
    assert "Telegram: long polling" in out
    assert "Slack: HTTP mode (POST /slack/events)" in out
    assert "database: PostgreSQL" in out
    assert "turn queue: procrastinate on PostgreSQL" in out


def test_check_says_sqlite_runs_the_queue_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-very-secret-key")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:telegram-secret")
    assert main(["check"]) == 0
    assert "turn queue: in-process (one process" in capsys.readouterr().out


def test_check_without_credentials_says_which_variables_to_set(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check"]) == 2
    out = capsys.readouterr().out
    assert "TELEGRAM_BOT_TOKEN" in out and "SLACK_BOT_TOKEN" in out
    assert "DASHSCOPE_API_KEY" in out


def test_empty_variables_mean_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # As compose files and .env templates write them: `TELEGRAM_BOT_TOKEN=`.
    for name in ("DASHSCOPE_API_KEY", "TELEGRAM_BOT_TOKEN", "SLACK_BOT_TOKEN", "HTTP_PORT"):
        monkeypatch.setenv(name, "")
    s = Settings.load()
    assert s.DASHSCOPE_API_KEY is None
    assert not s.telegram_enabled and not s.slack_enabled
    assert s.HTTP_PORT == 8080
