"""What a model stream has said so far: text turned into deltas, usage, finish reason.

Pure bookkeeping shared by both wire protocols; no I/O.
"""

from __future__ import annotations

from bot.llm.types import AudioInfo, SpeechDelta, StreamEvent, TextDelta, Usage, UsageUpdate
from bot.llm.wire import Chunk

__all__ = ["StreamState", "TextAccumulator"]


class TextAccumulator:
    """Turns wire text into incremental deltas, whether the wire sends deltas or totals.

    Servers send either deltas (``incremental_output: true``, OpenAI style) or the whole
    text so far (native default, some compatible servers). The mode is decided once, at
    the second non-empty text: it is cumulative only if that text *strictly extends*
    everything received so far. A plain repeat ("哈", "哈") is a delta. Deciding once
    keeps later deltas that happen to repeat earlier text intact.
    """

    def __init__(self) -> None:
        self.text = ""
        self._cumulative: bool | None = None

    def push(self, text: str) -> str:
        """Take the text of one event; return what is new."""
        if not text:
            return ""
        if not self.text:
            self.text = text
            return text
        if self._cumulative is None:
            self._cumulative = len(text) > len(self.text) and text.startswith(self.text)
        if self._cumulative:
            if text.startswith(self.text):
                new = text[len(self.text) :]
                self.text = text
                return new
            # A total that does not extend the old one (a server-side rewrite): deltas
            # cannot take text back, so keep what was sent and wait for it to extend again.
            return ""
        self.text += text
        return text


class StreamState:
    """What a stream has said so far."""

    def __init__(self, *, request_id: str | None) -> None:
        self.request_id = request_id
        self.text = TextAccumulator()
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.audio_info: AudioInfo | None = None
        self.speech_bytes = 0  # PCM bytes of speech passed on (for the log)
        self._odd_byte = b""  # half a sample, kept for the next speech chunk
        self.done = False

    def apply(self, chunk: Chunk) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if chunk.request_id and not self.request_id:
            self.request_id = chunk.request_id
        if chunk.audio_info is not None and chunk.audio_info != self.audio_info:
            self.audio_info = chunk.audio_info
            out.append(chunk.audio_info)
        if chunk.text:
            new = self.text.push(chunk.text)
            if new:
                out.append(TextDelta(new))
        if chunk.speech:
            # Every SpeechDelta holds whole 16-bit samples, wherever the wire split them.
            pcm = self._odd_byte + chunk.speech
            whole = len(pcm) - len(pcm) % 2
            self._odd_byte = pcm[whole:]
            if whole:
                self.speech_bytes += whole
                out.append(SpeechDelta(pcm[:whole]))
        if chunk.usage is not None and chunk.usage != self.usage:
            self.usage = chunk.usage
            out.append(UsageUpdate(usage=chunk.usage))
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        return out
