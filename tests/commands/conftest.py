"""The command core through the real engine (SQLite and PostgreSQL, fake DashScope), with
the platforms' real profiles; only the platforms' admin lookups are stood in for."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bot.adapters.slack.commands import PROFILE as SLACK
from bot.adapters.telegram.handlers.common import command_profile
from bot.commands import Answer, ButtonAction, ChatCommand, CommandHandler, CommandProfile
from bot.engine.ports import ChatRef
from tests.engine.conftest import Harness, engine_factory, h

__all__ = ["engine_factory", "h"]  # the engine fixtures, re-exported for pytest

TELEGRAM = command_profile("voicebot_test")

TG_PRIVATE = ChatRef(platform="telegram", chat_id="100", kind="private", private=True)
TG_GROUP = ChatRef(platform="telegram", chat_id="-200", kind="supergroup", title="Team")
SLACK_DM = ChatRef(platform="slack", chat_id="D0DM", kind="im", private=True)
SLACK_CHANNEL = ChatRef(platform="slack", chat_id="C0CHAN", kind="channel")


@dataclass
class Admins:
    """The platform's admin check (getChatMember / users.info), answering from a set."""

    ids: set[str] = field(default_factory=set)
    asked: int = 0

    async def is_admin(self, chat: ChatRef, user_id: str) -> bool:
        self.asked += 1
        return user_id in self.ids


@dataclass
class Caller:
    """One platform's command handler over the engine under test, and ways to use it."""

    handler: CommandHandler
    admins: Admins
    chat: ChatRef
    user: str

    async def say(
        self,
        text: str,
        *,
        user: str | None = None,
        chat: ChatRef | None = None,
        thread: str | None = None,
    ) -> Answer:
        """Type ``text`` (``"model qwen-audio-chat"``) as a command."""
        name, _, args = text.partition(" ")
        return await self.handler.run(
            ChatCommand(
                name=name,
                args=args,
                chat=chat or self.chat,
                user_id=user or self.user,
                thread_key=thread,
            )
        )

    async def press(
        self, action: str, value: str, *, user: str | None = None, chat: ChatRef | None = None
    ) -> Answer:
        return await self.handler.press(
            ButtonAction(
                action=action, value=value, chat=chat or self.chat, user_id=user or self.user
            )
        )


def caller(h: Harness, profile: CommandProfile, chat: ChatRef, user: str = "7") -> Caller:
    admins = Admins()
    handler = CommandHandler(engine=h.engine, admins=admins, profile=profile)
    return Caller(handler=handler, admins=admins, chat=chat, user=user)


@pytest.fixture
def tg(h: Harness) -> Caller:
    """Telegram's commands in a private chat with user 7."""
    return caller(h, TELEGRAM, TG_PRIVATE)


@pytest.fixture
def slack(h: Harness) -> Caller:
    """Slack's commands in a DM with U0USER."""
    return caller(h, SLACK, SLACK_DM, "U0USER")
