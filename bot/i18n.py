"""The bot's languages: English (the msgids of :mod:`bot.texts`) and Simplified Chinese.

Texts stay English in :mod:`bot.texts`, marked with :func:`N_` so Babel extracts them
(``python tools/catalogs.py``, see the README's Languages section); the Chinese lives in
the gettext catalog ``bot/locale/zh_Hans/LC_MESSAGES/voicebot.po`` (compiled to ``.mo``,
committed beside it).

Whoever receives a turn, a command or a button press resolves the language once (the
chat's ``language`` setting, else the user's own: :func:`choose`) and renders inside
:func:`use`; :func:`tr` then translates to that language. The language is a context
variable, like aiogram's own i18n middleware: tasks started inside inherit it, and two
turns running at once each keep their own. Texts that are built before anyone knows who
will read them, an error's ``user_message`` above all, stay lazy (:class:`Msg`: the msgid
and its fields) and are translated where they are shown. Always translate before
formatting: ``tr(texts.X).format(...)``, never the other way round.
"""

from __future__ import annotations

import contextlib
import functools
import gettext
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

DOMAIN = "voicebot"
LOCALE_DIR = Path(__file__).parent / "locale"


class Lang(StrEnum):
    """A language the bot speaks (the values of the ``language`` chat setting)."""

    EN = "en"
    ZH = "zh"


# The catalog directory of each language; English needs none (its texts are the msgids).
CATALOG_DIRS: Mapping[Lang, str] = {Lang.ZH: "zh_Hans"}

_current: ContextVar[Lang] = ContextVar("voicebot_language", default=Lang.EN)

# A language tag that means Chinese: "zh", "zh-hans", "zh-CN", "zh_TW.UTF-8", "zh@…".
_CHINESE = re.compile(r"zh(?:$|[-_.@])", re.IGNORECASE)


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated where it is shown (:func:`tr`)."""
    return message


@functools.cache
def catalog(lang: Lang) -> gettext.NullTranslations:
    """The compiled catalog of ``lang`` (English, or a missing file: the msgids as they are)."""
    directory = CATALOG_DIRS.get(lang)
    if directory is None:
        return gettext.NullTranslations()
    path = LOCALE_DIR / directory / "LC_MESSAGES" / f"{DOMAIN}.mo"
    try:
        with path.open("rb") as mo:
            return gettext.GNUTranslations(mo)
    except OSError:
        log.warning("i18n.catalog_missing", language=lang.value)
        return gettext.NullTranslations()


def current() -> Lang:
    """The language texts are rendered in here (English unless :func:`use` said otherwise)."""
    return _current.get()


def tr(msgid: str, lang: Lang | None = None) -> str:
    """``msgid`` (a text of :mod:`bot.texts`) in ``lang``, by default the current language.

    A text that is not in the catalog (already translated, or typed by a user) comes back
    unchanged, so translating twice is harmless.
    """
    return catalog(lang or _current.get()).gettext(msgid)


@contextlib.contextmanager
def use(lang: Lang) -> Iterator[Lang]:
    """Render in ``lang`` inside the block (and in the tasks it starts)."""
    token = _current.set(lang)
    try:
        yield lang
    finally:
        _current.reset(token)


def activate(lang: Lang) -> None:
    """Render in ``lang`` from here on, in this context (a command-line process)."""
    _current.set(lang)


def from_tag(tag: str | None) -> Lang:
    """A platform's or a locale's language tag as a language the bot speaks: any Chinese
    (``zh``, ``zh-hans``, ``zh-CN``, ``zh_TW.UTF-8``) is Chinese, anything else English."""
    return Lang.ZH if tag and _CHINESE.match(tag.strip()) else Lang.EN


def choose(setting: str | None, user_language: str | None) -> Lang:
    """The language to answer in: the chat's ``language`` setting (``None`` is ``auto``),
    else the user's own language tag (:func:`from_tag`)."""
    if setting is not None:
        try:
            return Lang(setting)
        except ValueError:
            pass
    return from_tag(user_language)


def terminal_language(environ: Mapping[str, str]) -> str | None:
    """The terminal's language tag, as POSIX picks the messages locale: ``LC_ALL``, then
    ``LC_MESSAGES``, then ``LANG`` (the first that is set and not empty)."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return value
    return None


class Msg:
    """A text to render later, in the language of whoever is shown it: a msgid of
    :mod:`bot.texts` and the ``str.format`` fields to fill in (a field may be a
    :class:`Msg` itself, rendered in the same language).

    A msgid without fields is not formatted: it may hold ``{cmd:NAME}`` fields, which
    :meth:`bot.errors.BotError.shown` spells per platform (texts with fields write them
    ``{{cmd:NAME}}``).
    """

    __slots__ = ("fields", "msgid")

    def __init__(self, msgid: str, /, **fields: object) -> None:
        self.msgid = msgid
        self.fields = fields

    @classmethod
    def of(cls, text: str | Msg) -> Msg:
        """``text`` as a :class:`Msg` (a plain string is a msgid without fields)."""
        return text if isinstance(text, Msg) else cls(text)

    def render(self, lang: Lang | None = None) -> str:
        """The text in ``lang`` (by default the current language), fields filled in."""
        text = tr(self.msgid, lang)
        if not self.fields:
            return text
        values = {k: v.render(lang) if isinstance(v, Msg) else v for k, v in self.fields.items()}
        return text.format(**values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Msg):
            return NotImplemented
        return (self.msgid, self.fields) == (other.msgid, other.fields)

    def __hash__(self) -> int:
        return hash(self.msgid)

    def __repr__(self) -> str:
        return f"Msg({self.msgid!r}, **{self.fields!r})"
