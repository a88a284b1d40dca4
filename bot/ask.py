"""``voicebot ask FILE``: one voice turn from the terminal, through the same engine.

The reply streams to stdout as it arrives (or, with ``--json``, one JSON object is printed
at the end); errors go to stderr as one line, and so does, after a reply, how to continue
its conversation (``continue with --conversation standup``). ``--conversation`` takes an
id or a name (:mod:`bot.engine.conversations`); without it every call starts afresh.
Exit status: 0 answered, 1 the turn failed (audio refused, model error…), 2 a usage error
(missing file, unknown model or conversation, a name it can't take), 130 stopped with
Ctrl-C (the partial reply is kept as ``stopped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from bot import texts
from bot.commands.style import SLASH
from bot.config import Settings
from bot.console import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from bot.console import fail as _fail
from bot.engine.conversations import ConversationHandle, parse_reference
from bot.engine.domain import VoiceReply
from bot.engine.ports import ChatRef, FinalReply, IncomingTurn, TurnOutcome
from bot.engine.settings import choosable_models
from bot.errors import (
    BotError,
    ConversationNotFound,
    InvalidConversationName,
    Undelivered,
    UnknownModel,
)
from bot.i18n import terminal_language, tr

# Every terminal conversation lives in one chat of its own: ids are the database's, and
# names (``--conversation standup``) are unique in it.
CLI_CHAT = ChatRef(platform="cli", chat_id="local", kind="cli", title="voicebot ask", operator=True)


class FileAudio:
    """An :class:`~bot.engine.ports.AudioSource` over a local file."""

    def __init__(self, *, path: Path) -> None:
        self.path = path

    @property
    def declared_size(self) -> int | None:
        return self.path.stat().st_size

    @property
    def mime_type(self) -> str | None:
        return None  # the pipeline recognises content, not names

    @property
    def file_name(self) -> str | None:
        return self.path.name

    @property
    def source_key(self) -> str | None:
        return None  # a local file may change between calls: always convert it

    async def fetch(self) -> bytes:
        return await asyncio.to_thread(self.path.read_bytes)


class TerminalSink:
    """Streams deltas to ``out`` (unless quiet); the caller prints errors and JSON."""

    def __init__(self, *, out: TextIO, stream: bool, voice_path: Path | None = None) -> None:
        self.out = out
        self.stream = stream
        self.printed = False
        self.voice_path = voice_path  # --voice-reply: where the spoken reply goes

    async def start(self) -> None:
        return None

    async def update(self, text: str, delta: str) -> None:
        if self.stream:
            self.out.write(delta)
            self.out.flush()
            self.printed = True

    async def finish(self, reply: FinalReply) -> list[str]:
        if self.stream:
            if not self.printed and reply.text:
                self.out.write(reply.text)
            tail = "\n".join(reply.notes)
            self.out.write("\n" + (f"\n{tail}\n" if tail else ""))
            self.out.flush()
        return []

    async def fail(self, error: BotError, partial_text: str) -> list[str]:
        if self.stream and self.printed:
            self.out.write("\n")
            self.out.flush()
        return []

    def track(self, on_visible: Callable[[list[str]], Awaitable[None]]) -> None:
        del on_visible  # stdout keeps no messages to record

    def interrupt(self) -> None:
        return None  # nothing runs in the background

    async def remove(self, message_ids: Sequence[str]) -> None:
        del message_ids

    async def follow_up(self, message: str | BotError) -> list[str]:
        if self.stream:
            text = message.user_message if isinstance(message, BotError) else message
            self.out.write(text + "\n")
            self.out.flush()
        return []

    async def voice(self, ogg: bytes, seconds: float) -> str:
        """Write the voice note to ``--voice-reply PATH`` (its "id" is the path)."""
        del seconds
        if self.voice_path is None:
            raise Undelivered("no --voice-reply path")
        await asyncio.to_thread(self.voice_path.write_bytes, ogg)
        return str(self.voice_path)

    async def deliver_late(
        self, text: str, *, reply_to: str | None, stale: Sequence[str] = ()
    ) -> list[str]:
        del reply_to, stale
        if self.stream:
            self.out.write(text + "\n\n")
            self.out.flush()
        return []


def _json_result(
    outcome: TurnOutcome,
    reply: FinalReply,
    conversation: ConversationHandle,
    *,
    voice_reply: bool = False,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "text": reply.text,
        "model": reply.model,
        "usage": dataclasses.asdict(reply.usage),
        "audio_seconds_sent": round(outcome.audio_seconds_sent or 0.0, 3),
        # What --conversation takes to continue it: the name if it has one, else the id.
        "conversation": conversation.reference,
        "conversation_id": conversation.id,
        "status": reply.status,
        "finish_reason": reply.finish_reason,
        "notes": list(reply.notes),
    }
    if voice_reply:  # --voice-reply: where the spoken reply went (null: none was spoken)
        note = outcome.voice_note
        result["voice_reply"] = (
            {"path": note.message_id, "seconds": round(note.seconds, 3)} if note else None
        )
    return result


async def ask(
    settings: Settings,
    *,
    file: str,
    prompt: str | None,
    model: str | None,
    conversation: str | None,
    as_json: bool,
    voice_reply: str | None = None,
) -> int:
    """Run one turn on FILE and print the reply; return the exit status. With
    ``voice_reply`` (a path) the reply is also spoken, as far as the model can, and the
    voice note written there."""
    path = Path(file).expanduser()  # noqa: ASYNC240 - one stat before any I/O starts
    if not path.is_file():
        _fail(f"no such file: {file}")
        return EXIT_USAGE
    voice_path = Path(voice_reply).expanduser() if voice_reply else None  # noqa: ASYNC240
    if voice_path is not None and not voice_path.parent.is_dir():
        _fail(f"no such directory: {voice_path.parent}")
        return EXIT_USAGE
    if model is not None and model not in settings.ALLOWED_MODELS:
        _fail(UnknownModel(model, allowed=choosable_models(settings.ALLOWED_MODELS)).shown(SLASH))
        return EXIT_USAGE
    reference: int | str | None = None
    if conversation is not None:
        try:
            reference = parse_reference(conversation)
        except InvalidConversationName as exc:
            _fail(exc.shown(SLASH))
            return EXIT_USAGE
    if settings.LOG_LEVEL == "INFO":
        # Progress logs would interleave with the streamed reply on a terminal, and
        # handled conditions (a retried 429/500) are not news: the outcome is printed as
        # one line on stderr. LOG_LEVEL=WARNING/DEBUG shows them.
        logging.getLogger().setLevel(logging.ERROR)

    from bot.bootstrap import build_core

    core = await build_core(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        handled = True
    try:
        engine = core.engine
        named: ConversationHandle | None = None
        if reference is not None:
            try:
                named = await engine.conversation(CLI_CHAT, reference)
            except ConversationNotFound as exc:
                _fail(exc.shown(SLASH))
                return EXIT_USAGE
        turn = IncomingTurn(
            chat=CLI_CHAT,
            user_id=_user_name(),
            text=prompt,
            audio=FileAudio(path=path),
            conversation_id=named.id if named is not None else None,
            fresh_conversation=named is None,
            model=model,
            user_language=terminal_language(os.environ),  # the engine answers in it
            voice_reply=VoiceReply.ALWAYS if voice_path is not None else VoiceReply.OFF,
        )
        sink = TerminalSink(out=sys.stdout, stream=not as_json, voice_path=voice_path)
        outcome = await engine.handle_turn(turn, sink, stop=stop)
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
        await core.aclose()

    if outcome.reply is not None and outcome.status in ("complete", "stopped"):
        continued = named or _unnamed(outcome)
        if as_json:
            result = _json_result(
                outcome, outcome.reply, continued, voice_reply=voice_path is not None
            )
            print(json.dumps(result, ensure_ascii=False))
        else:
            # After the reply, apart from it (stdout holds the reply alone): how to go on.
            hint = tr(texts.CLI_CONTINUE).format(conversation=continued.reference)
            print(hint, file=sys.stderr)
        return EXIT_INTERRUPTED if outcome.status == "stopped" else EXIT_OK
    error = outcome.error or BotError("no reply")
    _fail(error.shown(SLASH))
    if isinstance(error, ConversationNotFound | UnknownModel):
        return EXIT_USAGE
    return EXIT_FAILURE


def _unnamed(outcome: TurnOutcome) -> ConversationHandle:
    assert outcome.conversation_id is not None  # an answered turn is stored in one
    return ConversationHandle(id=outcome.conversation_id)


def _user_name() -> str:
    try:
        return getpass.getuser()[:64] or "cli"
    except Exception:
        return "cli"
