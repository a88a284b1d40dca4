"""Named CLI conversations in-process: what a name may be, one conversation per name (also
when two ``voicebot ask`` start it at once), continuing by id or name, and the listing.
``tests/engine/test_ask.py`` runs the same through the real ``voicebot`` processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import select

from bot import cli, texts
from bot.ask import CLI_CHAT, ask
from bot.engine.conversations import NAME_MAX, parse_reference
from bot.errors import ConversationNotFound, InvalidConversationName
from bot.storage import repositories as repo
from bot.storage.database import Database
from bot.storage.tables import Conversation
from tests.engine.conftest import PRIVATE, Audio, Harness, make_settings, voice
from tests.fakes.dashscope import FakeDashScope


def test_a_number_is_an_id_anything_else_a_checked_name() -> None:
    assert parse_reference("12") == 12
    assert parse_reference(" 0012 ") == 12
    assert parse_reference(" standup ") == "standup"
    assert parse_reference("2026-q1.retro_v2") == "2026-q1.retro_v2"
    assert parse_reference("站会") == "站会"  # letters of any script
    assert parse_reference("x" * NAME_MAX) == "x" * NAME_MAX
    cases = {
        "": texts.CONVERSATION_NAME_EMPTY,
        "   ": texts.CONVERSATION_NAME_EMPTY,
        "x" * (NAME_MAX + 1): texts.CONVERSATION_NAME_TOO_LONG.format(limit=NAME_MAX),
        "-standup": texts.CONVERSATION_NAME_INVALID,  # would read as an option
        "_x": texts.CONVERSATION_NAME_INVALID,
        "two words": texts.CONVERSATION_NAME_INVALID,
        "a/b": texts.CONVERSATION_NAME_INVALID,
        "12a?": texts.CONVERSATION_NAME_INVALID,
    }
    for raw, message in cases.items():
        with pytest.raises(InvalidConversationName) as caught:
            parse_reference(raw)
        assert caught.value.user_message == message, raw


async def test_a_name_is_one_conversation_of_its_chat_and_an_id_must_exist(h: Harness) -> None:
    standup = await h.engine.conversation(CLI_CHAT, "standup")
    assert (standup.name, standup.reference) == ("standup", "standup")
    assert await h.engine.conversation(CLI_CHAT, "standup") == standup
    assert await h.engine.conversation(CLI_CHAT, standup.id) == standup  # by id: its name
    first, _ = await h.turn(chat=CLI_CHAT, audio=Audio(voice(1.5)), conversation_id=standup.id)
    assert (first.status, first.conversation_id) == ("complete", standup.id)

    # An unnamed ask starts afresh, and leaves the named conversation as it was.
    fresh, _ = await h.turn(chat=CLI_CHAT, text="hello", fresh_conversation=True)
    assert fresh.conversation_id not in (None, standup.id)
    unnamed = await h.engine.conversation(CLI_CHAT, fresh.conversation_id or 0)
    assert (unnamed.name, unnamed.reference) == (None, str(fresh.conversation_id))
    again, _ = await h.turn(chat=CLI_CHAT, text="and?", conversation_id=standup.id)
    assert again.status == "complete"
    assert h.fake.last_request.roles == ["user", "assistant", "user"]
    assert [round(a.duration or 0, 1) for a in h.fake.last_request.audio] == [1.5]

    # Names and ids belong to their chat.
    elsewhere = await h.engine.conversation(PRIVATE, "standup")
    assert elsewhere.id != standup.id
    with pytest.raises(ConversationNotFound) as caught:
        await h.engine.conversation(CLI_CHAT, elsewhere.id)
    assert caught.value.user_message == texts.CONVERSATION_ID_NOT_FOUND.format(id=elsewhere.id)
    for missing in (999_999, 2**63):  # the second does not even fit the column
        with pytest.raises(ConversationNotFound):
            await h.engine.conversation(CLI_CHAT, missing)


async def test_losing_the_race_for_a_new_name_reads_the_winners_row(db: Database) -> None:
    async with db.sessions() as setup, setup.begin():
        chat = await repo.get_or_create_chat(
            setup, platform="cli", external_id="local", kind="cli", title=None
        )
    async with db.sessions() as loser, loser.begin():
        assert await repo.find_named_conversation(loser, chat_id=chat.id, name="standup") is None
        # Another process starts the same name in between, and commits first.
        async with db.sessions() as winner, winner.begin():
            won = await repo.named_conversation(winner, chat_id=chat.id, name="standup")
        lost = await repo.start_named_conversation(loser, chat_id=chat.id, name="standup")
        assert lost.id == won.id
    async with db.sessions() as check:
        rows = (await check.execute(select(Conversation.id, Conversation.name))).all()
    assert [tuple(r) for r in rows] == [(won.id, "standup")]


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    """Log events kept out of stdout, which holds only what ask prints (in-process,
    structlog is not configured as ``voicebot`` configures it: to stderr)."""
    with structlog.testing.capture_logs():
        yield


def _settings(dashscope: FakeDashScope, db: Database) -> Any:
    # LOG_LEVEL=WARNING: ask() leaves the process's logging alone (at INFO it quietens it).
    return make_settings(dashscope, db, AUTO_MIGRATE=False, AUDIO_WORKERS=1, LOG_LEVEL="WARNING")


async def test_two_asks_starting_one_name_at_once_end_in_one_conversation(
    dashscope_fake: FakeDashScope,
    db: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    quiet_logs: None,
) -> None:
    note = tmp_path / "note.ogg"
    note.write_bytes(voice(2.0))
    settings = _settings(dashscope_fake, db)

    async def one() -> int:
        # Each builds its own core (engine, locks, connection pool): two processes, as
        # far as the database can tell.
        return await ask(
            settings, file=str(note), prompt=None, model=None, conversation="standup", as_json=True
        )

    assert await asyncio.gather(one(), one()) == [0, 0]
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["conversation"] for r in results} == {"standup"}
    [conversation_id] = {r["conversation_id"] for r in results}
    async with db.sessions() as s:
        named = await s.execute(select(Conversation.id).where(Conversation.name.is_not(None)))
        assert named.scalars().all() == [conversation_id]
        turns = await repo.conversation_turns(s, conversation_id)
    assert [(t.seq, t.role, t.status) for t in turns] == [
        (1, "user", "complete"),
        (2, "assistant", "complete"),
        (3, "user", "complete"),
        (4, "assistant", "complete"),
    ]


async def test_ask_says_how_to_continue_and_refuses_names_it_cannot_take(
    h: Harness,
    dashscope_fake: FakeDashScope,
    db: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    quiet_logs: None,
) -> None:
    note = tmp_path / "note.ogg"
    note.write_bytes(voice(2.0))
    settings = _settings(dashscope_fake, db)

    async def run(conversation: str | None, *, as_json: bool = False) -> tuple[int, str, str]:
        status = await ask(
            settings,
            file=str(note),
            prompt=None,
            model=None,
            conversation=conversation,
            as_json=as_json,
        )
        out = capsys.readouterr()
        return status, out.out, out.err

    for bad, message in (
        ("", texts.CONVERSATION_NAME_EMPTY),
        ("x" * 65, texts.CONVERSATION_NAME_TOO_LONG.format(limit=NAME_MAX)),
        ("stand up", texts.CONVERSATION_NAME_INVALID),
    ):
        assert await run(bad) == (2, "", f"voicebot: {message}\n")
    assert dashscope_fake.requests == []  # refused before anything else happened

    # Unnamed: the id says how to continue; --json prints no hint and the same id.
    status, out, err = await run(None, as_json=True)
    unnamed = json.loads(out)
    assert status == 0 and err == ""
    assert unnamed["conversation"] == str(unnamed["conversation_id"])
    status, out, err = await run(unnamed["conversation"])
    assert (status, out) == (0, "Heard 1 audio clip(s): 2.00 s. History: 1 earlier repl(ies).\n")
    assert err == f"continue with --conversation {unnamed['conversation_id']}\n"

    # A named conversation continued by its id is still spoken of by its name.
    standup = await h.engine.conversation(CLI_CHAT, "standup")
    status, out, err = await run(str(standup.id))
    assert (status, err) == (0, "continue with --conversation standup\n")
    status, out, err = await run(str(standup.id), as_json=True)
    assert (json.loads(out)["conversation"], json.loads(out)["conversation_id"]) == (
        "standup",
        standup.id,
    )
    assert await run("424242") == (
        2,
        "",
        f"voicebot: {texts.CONVERSATION_ID_NOT_FOUND.format(id=424242)}\n",
    )


async def test_voicebot_conversations_lists_them(
    h: Harness,
    dashscope_fake: FakeDashScope,
    db: Database,
    capsys: pytest.CaptureFixture[str],
    quiet_logs: None,
) -> None:
    settings = _settings(dashscope_fake, db)

    async def listed(*, limit: int = cli.LIST_LIMIT, as_json: bool = False) -> str:
        assert await cli.conversations(settings, limit=limit, as_json=as_json) == 0
        return capsys.readouterr().out

    assert await listed() == texts.CLI_NO_CONVERSATIONS + "\n"
    assert await listed(as_json=True) == "[]\n"

    standup = await h.engine.conversation(CLI_CHAT, "standup")
    empty = await h.engine.conversation(CLI_CHAT, "later")  # started, nothing said yet
    for text in ("one", "two"):
        await h.turn(chat=CLI_CHAT, text=text, conversation_id=standup.id)
    fresh, _ = await h.turn(chat=CLI_CHAT, text="hi", fresh_conversation=True)
    await h.turn(text="not the CLI's")  # another chat's conversations are not listed

    lines = (await listed()).splitlines()
    assert re.split(r"\s{2,}", lines[0]) == list(texts.CLI_CONVERSATIONS_COLUMNS)
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]
    # Most recently active first: the fresh one, then standup, then the empty one.
    assert [row[:3] for row in rows] == [
        [str(fresh.conversation_id), "-", "1"],
        [str(standup.id), "standup", "2"],
        [str(empty.id), "later", "0"],
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", row[3]) for row in rows)

    items = json.loads(await listed(as_json=True))
    assert [(i["id"], i["name"], i["turns"]) for i in items] == [
        (fresh.conversation_id, None, 1),
        (standup.id, "standup", 2),
        (empty.id, "later", 0),
    ]
    last, started = (
        dt.datetime.fromisoformat(items[1][k]) for k in ("last_activity", "started_at")
    )
    assert last >= started and last.utcoffset() == dt.timedelta(0)

    lines = (await listed(limit=1)).splitlines()
    assert len(lines) == 3 and lines[-1] == texts.CLI_CONVERSATIONS_MORE.format(count=2)
    assert len((await listed(limit=0)).splitlines()) == 4  # 0: all of them


def test_conversations_takes_a_count(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["conversations", "--limit", "-1"])
    assert exited.value.code == 2
    assert "a whole number ≥ 0" in capsys.readouterr().err


def test_the_table_lines_up_on_a_terminal_cjk_names_included() -> None:
    now = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)
    rows = [
        repo.ConversationSummary(id=3, name="站会", turns=12, started_at=now, last_activity=now),
        repo.ConversationSummary(id=12, name="standup", turns=2, started_at=now, last_activity=now),
    ]
    header, *lines = cli.conversation_table(rows)
    # Where the last column starts on screen (CJK characters take two columns) is the
    # same on every line.
    starts = [
        cli.display_width(line[: line.index(at)])
        for line, at in zip([header, *lines], ["LAST", "2026", "2026"], strict=True)
    ]
    assert len(set(starts)) == 1, [header, *lines]
    assert lines[0].split()[:3] == ["3", "站会", "12"]
