"""Plain-text views both platforms show: help, settings, models, usage, forget.

Short, friendly, texts from :mod:`bot.texts` in the current language (:mod:`bot.i18n`);
:mod:`bot.commands` puts them into answers.
Commands are spelt with the platform's prefix (``CommandStyle.prefix``): ``/new`` on
Telegram, ``/voicebot new`` on Slack.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot import texts
from bot.audio.report import format_duration
from bot.catalog import ModelKind, ModelSpec, ModelStatus
from bot.engine.domain import GroupPolicy, TranscriptMode, VoiceReply
from bot.engine.ports import ChatRef
from bot.engine.settings import SETTING_KEYS, ChatSettingsView
from bot.engine.usage import UsageReport
from bot.i18n import tr
from bot.storage.repositories import ForgetCounts

_PROMPT_PREVIEW = 80


def help_text(*, model: str, prefix: str = "/", intro: str = texts.HELP_INTRO) -> str:
    """What the bot does and its commands (``prefix`` + name: a ``CommandStyle.prefix``)."""
    commands = "\n".join(f"{prefix}{name} — {tr(what)}" for name, what in texts.HELP_COMMANDS)
    return tr(texts.HELP_TEXT).format(intro=tr(intro), commands=commands, model=model)


def capabilities(spec: ModelSpec) -> str:
    """E.g. "voice chat, audio + instructions, remembers the conversation"."""
    parts: list[str] = []
    if spec.kind is ModelKind.ASR:
        parts.append(texts.MODEL_CAPABILITY_ASR)
    elif spec.kind is ModelKind.CAPTION:
        parts.append(texts.MODEL_CAPABILITY_CAPTION)
    else:
        if spec.voice_chat:
            parts.append(texts.MODEL_CAPABILITY_VOICE_CHAT)
        if spec.instruction:
            parts.append(texts.MODEL_CAPABILITY_ANALYSIS)
    if spec.multi_turn:
        parts.append(texts.MODEL_CAPABILITY_HISTORY)
    return tr(texts.LIST_SEPARATOR).join(tr(part) for part in parts)


def lifecycle_mark(spec: ModelSpec) -> str:
    """The model's status as the list shows it: trial, retired (with the model to use
    instead), or nothing for a live model."""
    if spec.status is ModelStatus.RETIRED:
        if spec.replacement is None:
            return tr(texts.MODEL_RETIRED_MARK_BARE)
        return tr(texts.MODEL_RETIRED_MARK).format(replacement=spec.replacement)
    if spec.status is ModelStatus.TRIAL:
        return tr(texts.MODEL_TRIAL_MARK)
    return ""


def model_list(models: Sequence[ModelSpec], *, current: str) -> str:
    """The allowed models, one line each: the chat's current one marked, and trial and
    retired ones (a retired model keeps its row, with what to use instead)."""
    lines = [tr(texts.MODELS_HEADER)]
    for spec in models:
        mark = tr(texts.MODEL_CURRENT_MARK) if spec.name == current else ""
        lines.append(f"• {spec.name}{mark}{lifecycle_mark(spec)} — {capabilities(spec)}")
    return "\n".join(lines)


def _show(view: ChatSettingsView, key: str, chat: ChatRef | None) -> str:
    value = view.value(key)
    if key == "voice_reply":
        return _show_voice_reply(view, chat)
    if key == "voice":
        speaker = view.speaker()
        return speaker if speaker is not None else tr(texts.VOICE_NONE)
    if key == "model":
        return str(value)
    if key == "group_policy":
        return tr(
            texts.GROUP_POLICY_ALL_VOICE
            if value is GroupPolicy.ALL_VOICE
            else texts.GROUP_POLICY_MENTION
        )
    if key == "transcript":
        return {
            TranscriptMode.BUTTON: tr(texts.TRANSCRIPT_MODE_BUTTON),
            TranscriptMode.ALWAYS: tr(texts.TRANSCRIPT_MODE_ALWAYS),
            TranscriptMode.OFF: tr(texts.TRANSCRIPT_MODE_OFF),
        }[TranscriptMode(value)]
    if key == "language":
        return f"{texts.LANGUAGE_NAMES[value]} ({value})" if value else tr(texts.LANGUAGE_AUTO)
    if value is None:
        return tr(texts.SETTINGS_DEFAULT)
    if isinstance(value, bool):
        return tr(texts.SETTINGS_ON if value else texts.SETTINGS_OFF)
    if key == "system_prompt":
        text = str(value).replace("\n", " ")
        return f"“{text[:_PROMPT_PREVIEW]}…”" if len(text) > _PROMPT_PREVIEW else f"“{text}”"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _show_voice_reply(view: ChatSettingsView, chat: ChatRef | None) -> str:
    mode = view.voice_reply
    if mode is None and chat is not None:
        mode = view.voice_reply_for(chat)
    if mode is None:
        return tr(texts.SETTINGS_DEFAULT)
    shown = tr(
        {
            VoiceReply.OFF: texts.VOICE_REPLY_MODE_OFF,
            VoiceReply.AUTO: texts.VOICE_REPLY_MODE_AUTO,
            VoiceReply.ALWAYS: texts.VOICE_REPLY_MODE_ALWAYS,
        }[mode]
    )
    if mode is not VoiceReply.OFF:
        # What speaking costs: the usage report counts the seconds spoken.
        if view.spec.speech_output:
            key = texts.VOICE_REPLY_COST
        elif view.tts_model is not None and view.spec.kind is ModelKind.CHAT:
            key = texts.VOICE_REPLY_TTS  # a text-only model, voiced by the TTS
        else:
            key = texts.VOICE_REPLY_NO_SPEECH
        shown += f" ({tr(key).format(model=view.spec.name, tts=view.tts_model)})"
    return shown


def settings_summary(view: ChatSettingsView, chat: ChatRef | None = None) -> str:
    """Every setting with its effective value; keys the chat did not choose say "default"
    (``chat`` resolves defaults that depend on it: ``voice_reply``)."""
    lines = [tr(texts.SETTINGS_HEADER)]
    for key in SETTING_KEYS:
        label = tr(texts.SETTING_LABELS.get(key, key))
        lines.append(f"• {label} ({key}){tr(texts.LABEL_COLON)}{_show(view, key, chat)}")
    lines.append(tr(texts.SETTINGS_HOW_TO_CHANGE))
    return "\n".join(lines)


def usage_summary(report: UsageReport) -> str:
    """Usage by day and model, then the totals."""
    if not report.rows:
        return tr(texts.USAGE_EMPTY)
    lines = [tr(texts.USAGE_HEADER)]
    read_aloud: dict[str, int] = {}
    for row in report.rows:
        if row.tts_characters:
            read_aloud[row.model] = read_aloud.get(row.model, 0) + row.tts_characters
        if not row.turns:
            continue  # a TTS model's line: said below, with its characters
        lines.append(
            tr(texts.USAGE_LINE).format(
                day=row.day.isoformat(),
                model=row.model,
                turns=row.turns,
                audio=format_duration(row.audio_seconds),
                input=row.input_tokens,
                output=row.output_tokens,
            )
        )
    t = report.totals
    lines.append(
        tr(texts.USAGE_TOTAL).format(
            turns=t.turns,
            audio=format_duration(t.audio_seconds),
            input=t.input_tokens,
            output=t.output_tokens,
            audio_tokens=t.audio_tokens,
        )
    )
    if t.speech_seconds > 0 and t.speech_tokens > 0:
        lines.append(
            tr(texts.USAGE_SPOKEN_TOKENS).format(
                spoken=format_duration(t.speech_seconds), tokens=t.speech_tokens
            )
        )
    elif t.speech_seconds > 0:
        lines.append(tr(texts.USAGE_SPOKEN).format(spoken=format_duration(t.speech_seconds)))
    for model, characters in sorted(read_aloud.items()):
        lines.append(tr(texts.USAGE_TTS).format(characters=characters, model=model))
    return "\n".join(lines)


def forget_summary(counts: ForgetCounts) -> str:
    return tr(texts.FORGET_DONE).format(
        conversations=counts.conversations, turns=counts.turns, clips=counts.audio_clips
    )
