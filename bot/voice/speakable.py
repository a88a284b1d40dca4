"""Markdown → the plain text a voice reads aloud.

Emphasis, headings and list markers are dropped (no "asterisk" read aloud), a link is its
text, an image its alt text, inline code its content, and a code block is replaced by a
short "(code in the text)" in the reader's language: code read aloud helps nobody, and
the text reply holds it. Blocks end in a line break, so a speaker pauses between them.
"""

from __future__ import annotations

import functools
import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

from bot import texts
from bot.i18n import tr

# Marks left over from Markdown the parser did not take as markup (an unmatched "*", a
# "snake_case" word): a voice would spell them out.
_MARKS = re.compile(r"[*_`~#|]+")
_SPACES = re.compile(r"[ \t]+")
_BLANK_LINES = re.compile(r"\n{2,}")


@functools.cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def speakable(markdown: str) -> str:
    """The words of ``markdown`` to speak, as plain text (empty if nothing is speakable)."""
    out: list[str] = []
    for token in _parser().parse(markdown):
        if token.type in ("fence", "code_block"):
            out.append(f"{tr(texts.VOICE_CODE_IN_TEXT)}\n")
        elif token.type == "inline":
            out.append(_inline(token.children or []))
        elif token.type in ("paragraph_close", "heading_close", "list_item_close", "tr_close"):
            out.append("\n")
        elif token.type in ("th_close", "td_close"):
            out.append(", ")
    return _tidy("".join(out))


def _inline(children: list[Token]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "image":
            parts.append(child.content)  # the alt text
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        # link_open/close, em/strong/s open/close and inline HTML say nothing.
    return "".join(parts)


def _tidy(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        line = _SPACES.sub(" ", _MARKS.sub(" ", line)).strip().rstrip(",").strip()
        lines.append(line)
    return _BLANK_LINES.sub("\n", "\n".join(lines)).strip()
