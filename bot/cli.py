"""The ``voicebot`` command line: run, migrate, ask, check (CONTRACT.md).

Exit status: 0 success, 1 a runtime failure (e.g. the model refused), 2 a usage or
configuration error (one line on stderr naming the variable and what is wrong).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bot import __version__
from bot.commands.style import SLASH
from bot.config import Settings
from bot.console import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail
from bot.errors import BotError, ConfigError


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
    ask.add_argument("--conversation", metavar="ID", help="continue a stored conversation (its id)")
    ask.add_argument("--json", action="store_true", help="print one JSON object at the end")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voicebot`` console script and ``python -m bot``."""
    args = _parser().parse_args(argv)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
