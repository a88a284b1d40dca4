"""A turn's spoken reply: whether one is wanted, how the model is asked for it, and its
delivery after the text.

The model speaks in the same stream as it writes (``spec.speech_output``, Qwen-Omni):
:func:`bot.engine.requests.generation_params` adds the chat's voice to the request, the stream's
:class:`~bot.llm.types.SpeechDelta` events collect in ``ReplyState.speech``
(:mod:`bot.engine.streaming`), and :class:`VoicePhase` encodes them once (while the final
text is being delivered) and sends the voice note after it. A model without speech output
gets a voice only through a :class:`~bot.llm.types.SpeechSynthesizer` (TTS), the hook
:func:`synthesize` (``TurnDeps.synthesizer``; none is wired yet, so such models reply
in text only).

A voice note is extra: whatever happens to it, the text reply stands; a failure to send
it is said in a short note.
"""

from __future__ import annotations

import asyncio

import structlog

from bot import texts
from bot.audio.report import format_duration
from bot.engine.domain import VoiceReply
from bot.engine.ports import IncomingTurn, ReplySink
from bot.engine.settings import ChatSettingsView
from bot.errors import Undelivered
from bot.i18n import tr
from bot.llm.types import SpeechSynthesizer
from bot.voice.reply import SpeechBuffer, VoiceNote
from bot.voice.speakable import speakable

log = structlog.get_logger(__name__)

# The TTS request limit (qwen3-tts-flash: 600 characters per request).
TTS_CHARS = 600


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

    def __init__(self, speech: SpeechBuffer, *, max_seconds: float) -> None:
        self._speech = speech
        self._max_seconds = max_seconds
        self._task: asyncio.Task[VoiceNote | None] | None = None

    def cut_note(self) -> str | None:
        """The reply's note when the speech is longer than the cap (said with the text)."""
        if self._speech.seconds <= self._max_seconds:
            return None
        return tr(texts.VOICE_REPLY_CUT).format(spoken=format_duration(self._max_seconds))

    def start_encoding(self) -> None:
        """Encode in a thread while the final text goes out (the note is ready sooner)."""
        if self._task is None and len(self._speech):
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
    async def say_failed(sink: ReplySink) -> None:
        """The short note that the voice could not be sent (best effort)."""
        try:
            await sink.follow_up(tr(texts.VOICE_REPLY_FAILED))
        except Exception as exc:
            log.warning("turn.voice_note_failed", error=type(exc).__name__)
