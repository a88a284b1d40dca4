"""The console's tests run the real bot (engine, Telegram adapter, HTTP server) against the
fake Telegram and DashScope servers, as tests/telegram does."""

from tests.telegram.conftest import harness, telegram_fake

__all__ = ["harness", "telegram_fake"]  # the fixtures, re-exported for pytest
