"""The ``voicebot`` command line: run, migrate, ask, conversations, check (CONTRACT.md).

Exit status: 0 success, 1 a runtime failure (e.g. the model refused), 2 a usage or
configuration error (one line on stderr naming the variable and what is wrong). What the
bot says is in the terminal's language (``LC_ALL`` / ``LC_MESSAGES`` / ``LANG``: ``zh*`` is
Chinese, anything else English, :mod:`bot.i18n`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot import __version__, texts
from bot.commands.style import SLASH
from bot.config import Settings
from bot.console import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail
from bot.errors import BotError, ConfigError
from bot.i18n import activate, from_tag, terminal_language, tr

if TYPE_CHECKING:
    from bot.storage.repositories import ConversationSummary

# How many conversations ``voicebot conversations`` lists unless told otherwise.
LIST_LIMIT = 20


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicebot",
        description="Talk to Alibaba's Qwen-Audio models by voice from Telegram and Slack.",
    )
    parser.add_argument("--version", action="version", version=f"voicebot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="apply migrations and start every configured platform")
    sub.add_parser("migrate", help="upgrade the database to the latest schema")
    sub.add_parser("check", help="validate the configuration and say what run would start")
    ask = sub.add_parser("ask", help="one voice turn from the terminal")
    ask.add_argument("file", metavar="FILE", help="an audio or video file")
    ask.add_argument("--prompt", metavar="TEXT", help="an instruction about the audio")
    ask.add_argument("--model", metavar="NAME", help="a model from the catalog")
    ask.add_argument(
        "--conversation",
        metavar="ID|NAME",
        help="continue a stored conversation (its id), or the one of this name (started "
        "the first time)",
    )
    ask.add_argument(
        "--voice-reply",
        metavar="PATH",
        help="also speak the reply (models with speech output) and write it to PATH as "
        "an OGG/Opus voice note",
    )
    ask.add_argument("--json", action="store_true", help="print one JSON object at the end")
    listing = sub.add_parser("conversations", help="list the conversations of voicebot ask")
    listing.add_argument(
        "--limit",
        type=_count,
        default=LIST_LIMIT,
        metavar="N",
        help=f"the N most recently active (default {LIST_LIMIT}; 0 lists them all)",
    )
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    return parser


def _count(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"a whole number ≥ 0, not {raw!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voicebot`` console script and ``python -m bot``."""
    args = _parser().parse_args(argv)
    activate(from_tag(terminal_language(os.environ)))
    try:
        settings = Settings.load()
    except ConfigError as exc:
        fail(f"configuration error: {exc.variable}: {exc.problem}")
        return EXIT_USAGE

    from bot.logs import configure_logging

    configure_logging(level=settings.LOG_LEVEL, fmt=settings.LOG_FORMAT)
    try:
        if args.command == "check":
            return _check(settings)
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "run":
            from bot.bootstrap import run_forever

            return asyncio.run(run_forever(settings))
        if args.command == "conversations":
            return asyncio.run(conversations(settings, limit=args.limit, as_json=args.json))
        if args.command == "ask":
            from bot.ask import ask

            return asyncio.run(
                ask(
                    settings,
                    file=args.file,
                    prompt=args.prompt,
                    model=args.model,
                    conversation=args.conversation,
                    as_json=args.json,
                    voice_reply=args.voice_reply,
                )
            )
    except ConfigError as exc:
        fail(f"configuration error: {exc.variable}: {exc.problem}")
        return EXIT_USAGE
    except BotError as exc:
        fail(exc.shown(SLASH))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {args.command}")  # argparse prevents this


def _check(settings: Settings) -> int:
    from bot.bootstrap import plan

    width = max(len(name) for name in settings.describe())
    print("Effective configuration:")
    for name, value in settings.describe().items():
        print(f"  {name.ljust(width)}  {value}")
    print()
    print("voicebot run would start:")
    started, problems = plan(settings)
    for line in started:
        print(f"  - {line}")
    for line in problems:
        print(f"  ! {line}")
    if problems:
        return EXIT_USAGE
    print("Configuration OK.")
    return EXIT_OK


async def _migrate(settings: Settings) -> int:
    from bot.storage import migrations
    from bot.storage.database import Database

    db = Database(url=settings.DATABASE_URL)
    try:
        await migrations.upgrade(db)
        revision = await migrations.current_revision(db)
    except OSError as exc:
        fail(f"cannot reach the database: {exc}")
        return EXIT_FAILURE
    finally:
        await db.dispose()
    print(f"Database is at revision {revision}.")
    return EXIT_OK


async def conversations(settings: Settings, *, limit: int, as_json: bool) -> int:
    """``voicebot conversations``: the CLI's conversations, most recently active first
    (at most ``limit``; 0 lists all), as a table or (``as_json``) one JSON array."""
    from bot.ask import CLI_CHAT
    from bot.engine.conversations import listing
    from bot.storage import migrations
    from bot.storage.database import Database

    if settings.LOG_LEVEL == "INFO":
        # As in ask: the listing is the output; Alembic's progress lines are not news.
        logging.getLogger().setLevel(logging.ERROR)
    db = Database(url=settings.DATABASE_URL)
    try:
        if settings.AUTO_MIGRATE:  # as ask does: a fresh database lists nothing
            await migrations.upgrade(db)
        found = await listing(db, CLI_CHAT, limit=limit or None)
    except OSError as exc:
        fail(f"cannot reach the database: {exc}")
        return EXIT_FAILURE
    finally:
        await db.dispose()
    if as_json:
        print(json.dumps([_listed(c) for c in found.conversations], ensure_ascii=False))
        return EXIT_OK
    if not found.conversations:
        print(tr(texts.CLI_NO_CONVERSATIONS))
        return EXIT_OK
    print("\n".join(conversation_table(found.conversations)))
    if found.more:
        print(tr(texts.CLI_CONVERSATIONS_MORE).format(count=found.more))
    return EXIT_OK


def _listed(conv: ConversationSummary) -> dict[str, object]:
    return {
        "id": conv.id,
        "name": conv.name,
        "turns": conv.turns,
        "last_activity": conv.last_activity.isoformat(),
        "started_at": conv.started_at.isoformat(),
    }


def conversation_table(conversations: Sequence[ConversationSummary]) -> list[str]:
    """The lines of ``voicebot conversations``: a header, then one conversation a line
    (what ``--conversation`` takes is its name, else its id; times are local)."""
    rows = [
        (
            str(c.id),
            c.name or "-",
            str(c.turns),
            c.last_activity.astimezone().strftime("%Y-%m-%d %H:%M"),
        )
        for c in conversations
    ]
    header = tuple(tr(column) for column in texts.CLI_CONVERSATIONS_COLUMNS)
    columns = zip(header, *rows, strict=True)
    widths = [max(display_width(cell) for cell in column) for column in columns]
    numeric = (True, False, True, False)  # ids and counts line up on the right

    def line(cells: Sequence[str]) -> str:
        parts = []
        for cell, width, right in zip(cells, widths, numeric, strict=True):
            gap = " " * (width - display_width(cell))
            parts.append(gap + cell if right else cell + gap)
        return "  ".join(parts).rstrip()

    return [line(header), *(line(row) for row in rows)]


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: CJK characters (a name like 站会) take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
