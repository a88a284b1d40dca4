"""The playground page: one HTML template filled in the reader's language.

The page is static apart from what is filled in here: the labels (texts of
:mod:`bot.texts`, translated), the model chooser (``ALLOWED_MODELS``, retired models shown
but not selectable), the session's CSRF token and the size limit. The few texts the
script shows itself travel as JSON data in the page (never run as script).
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Sequence
from importlib import resources
from string import Template

from bot import texts
from bot.catalog import ModelSpec
from bot.errors import AudioTooLarge
from bot.i18n import Lang, tr

# What the script shows by itself (the rest comes from the server, already translated).
_SCRIPT_TEXTS = {
    "record": texts.PLAYGROUND_RECORD,
    "stop": texts.PLAYGROUND_STOP,
    "you": texts.PLAYGROUND_YOU,
    "bot": texts.PLAYGROUND_BOT,
    "recording": texts.PLAYGROUND_RECORDING,
    "sending": texts.PLAYGROUND_SENDING,
    "working": texts.PLAYGROUND_WORKING,
    "voiceMessage": texts.PLAYGROUND_VOICE_MESSAGE,
    "voiceReply": texts.PLAYGROUND_VOICE_REPLY,
    "noMicrophone": texts.PLAYGROUND_NO_MICROPHONE,
    "notAudio": texts.PLAYGROUND_NOT_AUDIO_TYPE,
    "connectionLost": texts.PLAYGROUND_CONNECTION_LOST,
    "sessionEnded": texts.PLAYGROUND_SESSION_ENDED,
}


@functools.cache
def _template() -> Template:
    source = resources.files(__package__).joinpath("templates", "index.html").read_text("utf-8")
    return Template(source)


def _options(models: Sequence[ModelSpec], current: str) -> str:
    rows = []
    for spec in models:
        name = html.escape(spec.name)
        if not spec.choosable:
            label = html.escape(tr(texts.PLAYGROUND_RETIRED).format(model=spec.name))
            rows.append(f'<option value="{name}" disabled>{label}</option>')
        else:
            selected = " selected" if spec.name == current else ""
            rows.append(f'<option value="{name}"{selected}>{name}</option>')
    return "\n        ".join(rows)


def render_page(
    *, lang: Lang, token: str, models: Sequence[ModelSpec], current: str, max_bytes: int
) -> str:
    """The page's HTML, in the current language (:func:`bot.i18n.use`)."""
    script_texts = {key: tr(msgid) for key, msgid in _SCRIPT_TEXTS.items()}
    script_texts["tooLarge"] = AudioTooLarge(limit=max_bytes).user_message
    config = {"token": token, "maxBytes": max_bytes, "texts": script_texts}
    # JSON inside <script type="application/json">: only "</" could end it early.
    data = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")
    fields = {
        "lang": "zh-Hans" if lang is Lang.ZH else "en",
        "title": tr(texts.PLAYGROUND_TITLE),
        "intro": tr(texts.PLAYGROUND_INTRO),
        "record": tr(texts.PLAYGROUND_RECORD),
        "pick_file": tr(texts.PLAYGROUND_PICK_FILE),
        "new": tr(texts.PLAYGROUND_NEW),
        "model": tr(texts.PLAYGROUND_MODEL),
        "privacy": tr(texts.PLAYGROUND_PRIVACY),
    }
    escaped = {key: html.escape(value) for key, value in fields.items()}
    return _template().substitute(escaped, options=_options(models, current), config=data)
