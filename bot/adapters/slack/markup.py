"""Model markdown for Slack: ``mrkdwn`` for classic messages, and where to split long text.

The streaming methods take real markdown (``markdown_text``); ``chat.postMessage`` and
``chat.update`` text is Slack's own ``mrkdwn`` (``*bold*``, ``_italic_``, ``<url|label>``,
and ``&``, ``<``, ``>`` escaped), so the fallback path converts.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^[ ]{0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.MULTILINE)
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![*\w])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")


def to_mrkdwn(markdown: str) -> str:
    """Convert common markdown to Slack mrkdwn; code spans and blocks are kept verbatim."""
    out: list[str] = []
    pos = 0
    for match in _FENCE.finditer(markdown):
        out.append(_convert_prose(markdown[pos : match.start()]))
        block = match.group(0)
        # Slack ignores a language tag after the fence and would show it as code text.
        block = re.sub(r"^```[\w+-]*\n", "```\n", block)
        out.append(escape(block))
        pos = match.end()
    out.append(_convert_prose(markdown[pos:]))
    return "".join(out)


def _convert_prose(text: str) -> str:
    out: list[str] = []
    pos = 0
    for match in _INLINE_CODE.finditer(text):
        out.append(_convert_inline(text[pos : match.start()]))
        out.append(escape(match.group(0)))
        pos = match.end()
    out.append(_convert_inline(text[pos:]))
    return "".join(out)


def _convert_inline(text: str) -> str:
    links: list[str] = []

    def keep_link(match: re.Match[str]) -> str:
        links.append(f"<{match.group(2)}|{escape(match.group(1))}>")
        return f"\x00{len(links) - 1}\x00"

    text = _LINK.sub(keep_link, text)
    text = escape(text)
    text = _BULLET.sub(lambda m: f"{m.group(1)}• ", text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _BOLD.sub(r"*\2*", text)
    text = _HEADING.sub(r"*\1*", text)
    text = _STRIKE.sub(r"~\1~", text)
    return re.sub("\x00(\\d+)\x00", lambda m: links[int(m.group(1))], text)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def split_point(text: str, limit: int) -> int:
    """Where to end a message of at most ``limit`` characters taken from ``text``.

    Prefers a paragraph break, then a line break, then a space, in the second half of the
    window, so messages do not end mid-word; falls back to a hard cut.
    """
    if len(text) <= limit:
        return len(text)
    window = text[:limit]
    floor = limit // 2
    for sep in ("\n\n", "\n", " "):
        at = window.rfind(sep)
        if at >= floor:
            return at + len(sep)
    return limit
