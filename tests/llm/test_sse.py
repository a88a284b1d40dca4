"""The incremental SSE decoder, fed bytes split at awkward places."""

from __future__ import annotations

import pytest

from bot.llm.sse import SSEDecoder, SSEEvent

NATIVE = (
    'id:1\nevent:result\n:HTTP_STATUS/200\ndata:{"text":"欢迎"}\n\n'
    'id:2\nevent:error\n:HTTP_STATUS/400\ndata:{"code":"DataInspectionFailed"}\n\n'
).encode()


def decode_in_pieces(data: bytes, cuts: list[int]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    last = 0
    for cut in [*cuts, len(data)]:
        events += decoder.feed(data[last:cut])
        last = cut
    events += decoder.close()
    return events


def test_native_framing_no_space_comment_status_and_error_event() -> None:
    events = decode_in_pieces(NATIVE, [])
    assert [(e.id, e.event, e.status, e.data) for e in events] == [
        ("1", "result", 200, '{"text":"欢迎"}'),
        ("2", "error", 400, '{"code":"DataInspectionFailed"}'),
    ]
    assert events[1].is_error and not events[0].is_error


@pytest.mark.parametrize("cut", range(1, len(NATIVE)))
def test_every_single_split_point_gives_the_same_events(cut: int) -> None:
    # Covers cuts inside the 3-byte UTF-8 characters of "欢迎" and inside "\n\n".
    assert decode_in_pieces(NATIVE, [cut]) == decode_in_pieces(NATIVE, [])


def test_byte_by_byte_crlf_stream() -> None:
    data = NATIVE.replace(b"\n", b"\r\n")
    events = decode_in_pieces(data, list(range(1, len(data))))
    assert [e.data for e in events] == ['{"text":"欢迎"}', '{"code":"DataInspectionFailed"}']


def test_cr_at_chunk_end_followed_by_lf_is_one_line_break() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data:a\r") == []
    assert decoder.feed(b"\n\r") == []
    events = decoder.feed(b"\ndata:b\n\n")
    assert [e.data for e in events] == ["a", "b"]


def test_split_inside_multibyte_character() -> None:
    data = 'data:{"t":"é😀"}\n\n'.encode()
    cut = data.index("😀".encode()) + 2
    events = decode_in_pieces(data, [cut])
    assert [e.data for e in events] == ['{"t":"é😀"}']


def test_openai_framing_strips_one_space_and_keeps_done() -> None:
    data = b'data: {"a":1}\n\ndata: [DONE]\n\n'
    assert [e.data for e in decode_in_pieces(data, [7])] == ['{"a":1}', "[DONE]"]


def test_only_one_leading_space_is_stripped() -> None:
    assert decode_in_pieces(b"data:  x\n\n", [])[0].data == " x"


def test_multiline_data_is_joined_and_comment_only_blocks_are_ignored() -> None:
    events = decode_in_pieces(b": keep-alive\n\ndata:a\ndata:b\n\n", [])
    assert [e.data for e in events] == ["a\nb"]


def test_last_event_without_blank_line_is_flushed_at_eof() -> None:
    events = decode_in_pieces(b"id:9\nevent:result\ndata:{}", [3])
    assert [(e.id, e.data) for e in events] == [("9", "{}")]
