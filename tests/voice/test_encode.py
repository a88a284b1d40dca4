"""The voice note encoder (PCM → OGG/Opus), the spoken part's cap, and speakable text."""

from __future__ import annotations

import pytest

from bot.i18n import Lang, use
from bot.voice.encode import encode_voice_note
from bot.voice.reply import SpeechBuffer
from bot.voice.speakable import speakable
from tests.fakes.audio import decoded_seconds
from tests.fakes.dashscope import speech_tone as pcm


@pytest.mark.parametrize("seconds", [0.02, 0.5, 1.234, 7.0, 61.3])
def test_a_decoded_note_lasts_as_long_as_the_pcm(seconds: float) -> None:
    ogg = encode_voice_note(pcm(seconds))
    assert ogg[:4] == b"OggS"
    assert decoded_seconds(ogg) == pytest.approx(seconds, abs=0.05)


def test_no_pcm_is_no_voice_note() -> None:
    with pytest.raises(ValueError):
        encode_voice_note(b"")
    with pytest.raises(ValueError):
        encode_voice_note(b"\x01")  # half a sample
    assert SpeechBuffer().note(max_seconds=120) is None


def test_the_buffer_cuts_at_the_cap_and_says_so() -> None:
    buffer = SpeechBuffer()
    for _ in range(5):
        buffer.add(pcm(1.0))
    buffer.add(b"")
    assert buffer.seconds == pytest.approx(5.0)
    note = buffer.note(max_seconds=2.5)
    assert note is not None and note.truncated
    assert note.seconds == pytest.approx(2.5) and note.spoken_seconds == pytest.approx(5.0)
    assert decoded_seconds(note.ogg) == pytest.approx(2.5, abs=0.05)
    whole = buffer.note(max_seconds=120)
    assert whole is not None and not whole.truncated
    assert decoded_seconds(whole.ogg) == pytest.approx(5.0, abs=0.05)


def test_markdown_is_spoken_as_plain_text() -> None:
    md = (
        "# The **plan**\n\n"
        "Use *this* and __that__, see [the docs](https://example.com/x_y) or `ls -l`.\n\n"
        "- first **step**\n- second_step\n\n"
        "```python\nprint('*not read*')\n```\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "A stray * star and ~~gone~~ text.<br>"
    )
    with use(Lang.EN):
        spoken = speakable(md)
    assert spoken.splitlines() == [
        "The plan",
        "Use this and that, see the docs or ls -l.",
        "first step",
        "second step",
        "(code in the text)",
        "a, b",
        "1, 2",
        "A stray star and gone text.",
    ]
    for mark in "*_`#[]()":
        assert mark not in spoken.replace("(code in the text)", "")
    assert "example.com" not in spoken and "print" not in spoken


def test_code_is_announced_in_the_readers_language() -> None:
    with use(Lang.ZH):
        assert speakable("看这里：\n\n```\nx = 1\n```") == "看这里：\n（代码见文字）"
    assert speakable("") == ""
    assert speakable("```\nonly code\n```") != ""


def test_text_for_tts_is_cut_at_sentence_ends_within_the_limit() -> None:
    from bot.engine.speech import tts_pieces

    text = "One sentence here. " * 50 + "好的。" * 10
    pieces = tts_pieces(text, limit=100)
    assert all(0 < len(p) <= 100 for p in pieces)
    assert all(p.endswith((".", "。")) for p in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")
    assert tts_pieces("x" * 250, limit=100) == ["x" * 100, "x" * 100, "x" * 50]
    assert tts_pieces("  ") == []
