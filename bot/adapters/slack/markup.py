"""Slack text helpers: ``mrkdwn`` escaping, and where to split a long reply.

Replies are Markdown on every path (``markdown_text`` on the streaming methods and on
``chat.postMessage`` / ``chat.update``), so no conversion is needed. Command answers are
classic ``text``, Slack's own ``mrkdwn``, where ``&``, ``<`` and ``>`` must be escaped.
"""

from __future__ import annotations


def escape(text: str) -> str:
    """``text`` made safe for a ``mrkdwn`` field (Slack's three control characters)."""
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
