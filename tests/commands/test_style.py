"""Command spelling per platform, and the texts that name commands."""

from __future__ import annotations

import string
import subprocess
import sys

import pytest

from bot import texts
from bot.commands import COMMAND_NAMES, CommandStyle
from tests.commands.conftest import SLACK, TELEGRAM


def _texts() -> dict[str, str]:
    return {k: v for k, v in vars(texts).items() if k.isupper() and isinstance(v, str)}


def test_each_platform_spells_commands_its_way() -> None:
    template = "Pick another with {cmd:model}, or see {cmd:help} ({n} models)."
    assert (
        TELEGRAM.style.format(template, n=3) == "Pick another with /model, or see /help (3 models)."
    )
    assert SLACK.style.format(template, n=3) == (
        "Pick another with /voicebot model, or see /voicebot help (3 models)."
    )
    assert SLACK.style.command("usage") == "/voicebot usage"
    assert f"{TELEGRAM.style:new}" == "/new"
    with pytest.raises(ValueError, match="modle"):
        CommandStyle(prefix="/").format("{cmd:modle}")


def test_texts_name_commands_through_the_style() -> None:
    for name, text in _texts().items():
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        if "cmd" in fields:
            values = dict.fromkeys(fields - {"cmd"}, "x")
            for style in (TELEGRAM.style, SLACK.style):
                assert "{" not in style.format(text, **values), name
        for command in COMMAND_NAMES:
            # A literal "/model" would read wrong on Slack.
            assert f" /{command}" not in text and not text.startswith(f"/{command}"), name


def test_the_command_core_imports_no_platform_sdk() -> None:
    code = (
        "import sys, bot.commands;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('aiogram', 'slack_sdk',"
        " 'slack_bolt') or m.startswith('bot.adapters'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_platform_without_a_command_line_names_its_controls() -> None:
    """The browser playground: "/model" in a text is its Model menu, in the reader's
    language; commands it has no control for keep their spelling."""
    from bot.i18n import Lang, tr, use
    from bot.web.playground.platform import STYLE

    assert STYLE.format("Pick another with {cmd:model}.") == "Pick another with “Model”."
    assert STYLE.format("{cmd:new} starts afresh") == "“New conversation” starts afresh"
    assert STYLE.format("see {cmd:settings}") == "see /settings"
    with use(Lang.ZH):
        assert STYLE.command("model") == f"“{tr(texts.PLAYGROUND_MODEL)}”" != "“Model”"
