"""A turn's spoken reply: whether one is wanted, how the model is asked for it, and its
delivery after the text.

The model speaks in the same stream as it writes (``spec.speech_output``, Qwen-Omni):
:func:`bot.engine.requests.generation_params` adds the chat's voice to the request, the stream's
:class:`~bot.llm.types.SpeechDelta` events collect in ``ReplyState.speech``
(:mod:`bot.engine.streaming`), and :class:`VoicePhase` encodes them once (while the final
text is being delivered) and sends the voice note after it. A model without speech output
gets a voice through a :class:`~bot.llm.types.SpeechSynthesizer` (TTS_MODEL,
``TurnDeps.synthesizer``): :class:`Synthesis` speaks the reply's complete sentences in the
background while the model is still writing, in requests of at most the TTS model's
``max_chars``, so the voice note is ready soon after the text.

A voice note is extra: whatever happens to it, the text reply stands; a failure to send
it is said in a short note.
"""

from __future__ import annotations

import asyncio
import re

import structlog

from bot import texts
from bot.audio.report import format_duration
from bot.catalog import DEFAULT_TTS_MODEL, TTS_CATALOG
from bot.engine.domain import VoiceReply
from bot.engine.ports import IncomingTurn, ReplySink
from bot.engine.settings import ChatSettingsView
from bot.errors import Undelivered
from bot.i18n import tr
from bot.llm.types import SpeechSynthesizer
from bot.voice.reply import SpeechBuffer, VoiceNote
from bot.voice.speakable import speakable

log = structlog.get_logger(__name__)

# The default TTS request limit (the catalog's: qwen3-tts-flash takes 600 characters).
TTS_CHARS = TTS_CATALOG[DEFAULT_TTS_MODEL].max_chars

# TTS requests of one reply at once, and the characters a stretch of sentences gathers
# before it is sent (the first sentence goes at once).
IN_FLIGHT = 3
STRETCH_CHARS = 120

# Where a sentence (or a block) of the model's Markdown ends: cut there, never inside one.
_SENTENCE_END = re.compile(r"(?:[.!?;](?=\s)|[。！？；]|\n)\s*")


def voice_wanted(view: ChatSettingsView, turn: IncomingTurn) -> bool:
    """``always``: every turn; ``auto``: the user sent a recording; ``off``: never."""
    mode = turn.voice_reply or view.voice_reply_for(turn.chat)
    return mode is VoiceReply.ALWAYS or (mode is VoiceReply.AUTO and bool(turn.recordings))


async def synthesize(
    synthesizer: SpeechSynthesizer,
    *,
    model: str,
    text: str,
    voice: str,
    language: str | None,
    into: SpeechBuffer,
) -> None:
    """TTS of the final ``text`` (as speakable plain text), in requests of at most
    :data:`TTS_CHARS` characters cut at sentence ends, into ``into``. Raises
    :class:`bot.errors.ModelError` subclasses."""
    for piece in tts_pieces(speakable(text)):
        async for pcm in synthesizer.synthesize(
            model=model, text=piece, voice=voice, language=language
        ):
            into.add(pcm)


def settled(markdown: str) -> int:
    """How much of a reply still being written is whole sentences: the end of its last
    sentence outside a code block (0 if none). Text before it is spoken as it is now."""
    cut = last = 0
    backticks = tildes = 0  # fence marks so far (each stretch counted once)
    for match in _SENTENCE_END.finditer(markdown):
        stretch = markdown[last : match.end()]
        backticks += stretch.count("```")
        tildes += stretch.count("~~~")
        last = match.end()
        if backticks % 2 == 0 and tildes % 2 == 0:
            cut = last
    return cut


class Synthesis:
    """TTS of one reply while the model writes it.

    :meth:`feed` gets the reply's text so far (after every delta); a background task
    sends the first complete sentence (:func:`settled`) at once, then each stretch of at
    least :data:`STRETCH_CHARS` characters of complete sentences, cut into pieces of at
    most ``limit`` characters at sentence ends; up to :data:`IN_FLIGHT` requests run at
    once and their speech goes into ``into`` in order. :meth:`finish` gives the final
    text and waits for the last piece; it raises the TTS's :class:`bot.errors.ModelError`.
    Speech past ``max_seconds`` is not asked for (the voice note is cut there anyway).
    """

    def __init__(
        self,
        synthesizer: SpeechSynthesizer,
        *,
        model: str,
        voice: str,
        language: str | None,
        into: SpeechBuffer,
        limit: int,
        max_seconds: float,
    ) -> None:
        self._synthesizer = synthesizer
        self._model = model
        self._voice = voice
        self._language = language
        self._into = into
        self._limit = limit
        self._max_seconds = max_seconds
        self._text = ""
        self._final = False
        self._done = 0  # characters of the Markdown already handed to the TTS
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.chars = 0  # characters sent to the TTS (the usage it bills)
        self.requests = 0
        self.truncated = False  # speech stopped at max_seconds

    def feed(self, text: str) -> None:
        """The reply's text so far; starts the background task at the first sentence."""
        self._text = text
        if self._task is None and settled(text):
            self._task = asyncio.create_task(self._run(), name="voice-tts")
        self._wake.set()

    async def finish(self, text: str) -> None:
        """The final ``text``: speak what is left and wait for all of it."""
        self._text, self._final = text, True
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="voice-tts")
        await self._task

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        # Requests run side by side (at most IN_FLIGHT), their speech joined in order: the
        # time after the model's end is the last stretch's, not the whole reply's.
        slots = asyncio.Semaphore(IN_FLIGHT)
        order: list[asyncio.Task[bytes]] = []
        try:
            while True:
                self._wake.clear()
                final, text = self._final, self._text
                end = len(text) if final else self._done + settled(text[self._done :])
                # After the first sentence (the sooner the first request, the sooner the
                # note), stretches of a few sentences: fewer joins in the voice.
                enough = final or not order or end - self._done >= STRETCH_CHARS
                if end > self._done and enough:
                    stretch, self._done = text[self._done : end], end
                    for piece in tts_pieces(speakable(stretch), limit=self._limit):
                        order.append(asyncio.create_task(self._speak(piece, slots)))
                    self._collect(order)
                    if self.truncated:
                        return
                    continue
                if final:
                    break
                await self._wake.wait()
                self._collect(order)
            while order:
                await asyncio.wait({order[0]})
                self._collect(order)
                if self.truncated:
                    return
        finally:
            for task in order:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: a later piece's error is not the story
                task.cancel()

    def _collect(self, order: list[asyncio.Task[bytes]]) -> None:
        """Move finished speech into the buffer, in order; raise the first TTS error."""
        while order and order[0].done():
            pcm = order.pop(0).result()
            self._into.add(pcm)
            if self._into.seconds > self._max_seconds:
                self.truncated = True  # the voice note is cut there: ask for no more
                return

    async def _speak(self, piece: str, slots: asyncio.Semaphore) -> bytes:
        async with slots:
            self.requests += 1
            chunks: list[bytes] = []
            async for pcm in self._synthesizer.synthesize(
                model=self._model, text=piece, voice=self._voice, language=self._language
            ):
                chunks.append(pcm)
            self.chars += len(piece)  # billed once spoken (a refused request costs nothing)
            return b"".join(chunks)


def tts_pieces(text: str, *, limit: int = TTS_CHARS) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut after a sentence's end
    where there is one (else at a space, else hard)."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind(mark) for mark in (". ", "! ", "? ", "。", "！", "？", "\n"))
        if cut <= 0:
            cut = window.rfind(" ")
        cut = cut + 1 if cut > 0 else limit
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return pieces


class VoicePhase:
    """One reply's voice note: encoded once in a worker thread, sent once after the text."""

    def __init__(self, speech: SpeechBuffer, *, max_seconds: float, pending: bool = False) -> None:
        self._speech = speech
        self._max_seconds = max_seconds
        # The speech is still being made (TTS): nothing is encoded until it is complete.
        self._pending = pending
        self._task: asyncio.Task[VoiceNote | None] | None = None
        self.cut_said = False

    def cut_note(self) -> str | None:
        """The reply's note when the speech is longer than the cap (said with the text)."""
        if self._speech.seconds <= self._max_seconds:
            return None
        self.cut_said = True
        return self._cut_text()

    def _cut_text(self) -> str:
        return tr(texts.VOICE_REPLY_CUT).format(spoken=format_duration(self._max_seconds))

    async def say_cut(self, sink: ReplySink) -> None:
        """The cut note after the voice note, when it was not known with the text (TTS)."""
        self.cut_said = True
        try:
            await sink.follow_up(self._cut_text())
        except Exception as exc:
            log.warning("turn.voice_cut_note_failed", error=type(exc).__name__)

    def speech_complete(self) -> None:
        """The TTS is done: the speech may be encoded now."""
        self._pending = False

    def start_encoding(self) -> None:
        """Encode in a thread while the final text goes out (the note is ready sooner)."""
        if self._task is None and not self._pending and len(self._speech):
            self._task = asyncio.create_task(
                asyncio.to_thread(self._speech.note, max_seconds=self._max_seconds),
                name="voice-encode",
            )

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def note(self) -> VoiceNote | None:
        """The encoded note, or ``None`` if nothing was spoken (never an empty file)."""
        self.start_encoding()
        return await self._task if self._task is not None else None

    @staticmethod
    async def send(sink: ReplySink, note: VoiceNote) -> str | None:
        """Send ``note``; on failure say so (the text reply stands) and return ``None``."""
        try:
            return await sink.voice(note.ogg, note.seconds)
        except Exception as exc:
            code = exc.code if isinstance(exc, Undelivered) else type(exc).__name__
            log.warning("turn.voice_undelivered", error=code, seconds=round(note.seconds, 2))
        await VoicePhase.say_failed(sink)
        return None

    @staticmethod
    async def say_not_made(sink: ReplySink) -> None:
        """The short note that the voice could not be made (TTS failed; best effort)."""
        try:
            await sink.follow_up(tr(texts.VOICE_REPLY_NOT_MADE))
        except Exception as exc:
            log.warning("turn.voice_note_failed", error=type(exc).__name__)

    @staticmethod
    async def say_failed(sink: ReplySink) -> None:
        """The short note that the voice could not be sent (best effort)."""
        try:
            await sink.follow_up(tr(texts.VOICE_REPLY_FAILED))
        except Exception as exc:
            log.warning("turn.voice_note_failed", error=type(exc).__name__)
