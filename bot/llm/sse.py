"""Incremental Server-Sent Events decoder for both DashScope framings.

The native protocol writes fields with no space after the colon (``data:{…}``) and adds
comment lines such as ``:HTTP_STATUS/400``; the OpenAI-compatible protocol writes
``data: {…}`` and ends with ``data: [DONE]``. Both are valid SSE, so one decoder serves
both: it strips at most one space after a field's colon, as the SSE standard says.

The decoder is fed raw bytes exactly as they come off the socket. Lines are split on the
byte level (``\\r\\n``, ``\\n`` or ``\\r``) before decoding, which is safe because those
bytes never occur inside a UTF-8 multi-byte sequence, so a chunk boundary inside a
character or inside a ``\\r\\n`` pair cannot corrupt the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SSEDecoder", "SSEEvent"]


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event.

    ``status`` is the number of a ``:HTTP_STATUS/NNN`` comment (native framing), or of a
    ``status:`` field, when the event carried one.
    """

    data: str
    event: str | None = None
    id: str | None = None
    status: int | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def is_error(self) -> bool:
        """True for an ``event:error`` frame."""
        return self.event == "error"


class SSEDecoder:
    """Turns a byte stream into :class:`SSEEvent` values, chunk by chunk.

    Call :meth:`feed` with each chunk and :meth:`close` at end of stream. An event is
    dispatched at the blank line that ends it; at end of stream a pending event that has
    data is dispatched too (a server may close right after the last ``data:`` line).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._status: int | None = None
        self._comments: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk``; return the events it completed, in order."""
        self._buffer.extend(chunk)
        events: list[SSEEvent] = []
        buf = self._buffer
        start = 0
        n = len(buf)
        i = 0
        while i < n:
            b = buf[i]
            if b == 0x0A:  # \n
                self._line(bytes(buf[start:i]), events)
                i += 1
                start = i
            elif b == 0x0D:  # \r, maybe the first half of \r\n
                if i + 1 == n:
                    break  # wait: the \n may be in the next chunk
                self._line(bytes(buf[start:i]), events)
                i += 2 if buf[i + 1] == 0x0A else 1
                start = i
            else:
                i += 1
        del buf[:start]
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: flush a last unterminated line and a pending event."""
        events: list[SSEEvent] = []
        if self._buffer:
            line = bytes(self._buffer).rstrip(b"\r")
            self._buffer.clear()
            self._line(line, events)
        if self._data:
            events.append(self._dispatch())
        self._reset()
        return events

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        line = raw.decode("utf-8", errors="replace")
        if not line:
            if self._data:
                events.append(self._dispatch())
            self._reset()
            return
        if line.startswith(":"):
            comment = line[1:]
            self._comments.append(comment)
            if comment.startswith("HTTP_STATUS/"):
                self._status = _int_or_none(comment[len("HTTP_STATUS/") :])
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "status":
            self._status = _int_or_none(value)
        # "retry" and unknown fields are ignored, as the standard says.

    def _dispatch(self) -> SSEEvent:
        return SSEEvent(
            data="\n".join(self._data),
            event=self._event,
            id=self._id,
            status=self._status,
            comments=list(self._comments),
        )


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None
