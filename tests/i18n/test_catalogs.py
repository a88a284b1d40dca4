"""The gettext catalogs: every text of bot/texts.py has its Chinese, with the same
placeholders, and the committed catalogs are what ``python tools/catalogs.py`` makes."""

from __future__ import annotations

import re
import tomllib
from pathlib import PurePosixPath

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from bot import i18n, texts
from bot.i18n import Lang, Msg, tr
from tools import catalogs

# A str.format field as written in a text: "{seconds}", "{cmd:model}", or an escaped
# "{{cmd:model}}" that a first format() turns into a field.
_FIELD = re.compile(r"\{+[^{}]*\}+")


@pytest.fixture(scope="module")
def chinese() -> Catalog:
    with catalogs.po_path("zh_Hans").open("rb") as f:
        return read_po(f, locale="zh_Hans")


def test_catalogs_are_up_to_date() -> None:
    # The .pot holds every N_() text of texts.py, the .po all of them (and nothing
    # removed), and the .mo is the .po compiled.
    assert catalogs.stale() == [], "run: python tools/catalogs.py"


def test_every_text_is_marked_for_translation() -> None:
    marked = {message.id for message in catalogs.template() if message.id}
    plain = {
        name: value
        for name, value in vars(texts).items()
        if name.isupper() and isinstance(value, str) and value not in marked
    }
    assert plain == {}, "mark them N_(…) in bot/texts.py, then run: python tools/catalogs.py"


def test_every_text_has_a_chinese_translation_with_the_same_placeholders(
    chinese: Catalog,
) -> None:
    problems = []
    for message in chinese:
        if not message.id:
            continue
        assert isinstance(message.id, str) and isinstance(message.string, str)
        if not message.string.strip():
            problems.append(f"untranslated: {message.id!r}")
        elif message.fuzzy:
            problems.append(f"fuzzy (check it, then delete the flag): {message.id!r}")
        elif sorted(_FIELD.findall(message.id)) != sorted(_FIELD.findall(message.string)):
            problems.append(f"placeholders differ: {message.id!r} → {message.string!r}")
        elif message.id.count("`") != message.string.count("`"):
            problems.append(f"Markdown differs: {message.id!r} → {message.string!r}")
    assert problems == []


def test_the_bot_reads_the_compiled_catalog(chinese: Catalog) -> None:
    for message in chinese:
        if message.id:
            assert tr(str(message.id), Lang.ZH) == message.string
            assert tr(str(message.id), Lang.EN) == message.id
    # A text not in the catalog (typed by a user, or already translated) stays as it is.
    assert tr("qwen-audio-turbo", Lang.ZH) == "qwen-audio-turbo"
    assert tr(tr(texts.MODEL_ERROR, Lang.ZH), Lang.ZH) == tr(texts.MODEL_ERROR, Lang.ZH)


def test_lazy_texts_render_where_they_are_shown() -> None:
    late = Msg(texts.SETTING_MUST_BE, key="top_k", rule=Msg(texts.SETTING_RULE_BOOL))
    assert late.render() == "“top_k” must be on or off."
    with i18n.use(Lang.ZH):
        assert late.render() == "“top_k”的值须为：on 或 off。"
        assert late.render(Lang.EN) == "“top_k” must be on or off."
    assert i18n.current() is Lang.EN


@pytest.mark.parametrize(
    ("setting", "tag", "expected"),
    [
        (None, "zh-hans", Lang.ZH),  # Telegram's language_code
        (None, "zh-CN", Lang.ZH),  # Slack's locale
        (None, "zh_TW.UTF-8", Lang.ZH),  # a terminal's LANG
        (None, "en-US", Lang.EN),
        (None, "de", Lang.EN),
        (None, "zu", Lang.EN),  # Zulu is not Chinese
        (None, None, Lang.EN),
        ("en", "zh-hans", Lang.EN),  # the chat's setting wins
        ("zh", None, Lang.ZH),
    ],
)
def test_choose(setting: str | None, tag: str | None, expected: Lang) -> None:
    assert i18n.choose(setting, tag) is expected


def test_terminal_language_follows_posix_precedence() -> None:
    env = {"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_CN.UTF-8", "LC_ALL": ""}
    assert i18n.terminal_language(env) == "zh_CN.UTF-8"
    assert i18n.terminal_language({**env, "LC_ALL": "C"}) == "C"
    assert i18n.terminal_language({}) is None


def test_the_compiled_catalogs_ship_in_the_wheel() -> None:
    project = tomllib.loads((catalogs.ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = project["tool"]["setuptools"]["package-data"]["bot"]
    mo = catalogs.mo_path("zh_Hans").relative_to(catalogs.ROOT / "bot")
    assert any(PurePosixPath(mo.as_posix()).match(pattern) for pattern in shipped)
