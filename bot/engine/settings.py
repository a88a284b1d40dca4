"""Per-chat settings: effective values, validation, and the shared "key value" parser.

A stored ``None`` means "the configured default"; :class:`ChatSettingsView` is what a
chat actually gets. Both adapters' ``/settings`` commands parse with
:func:`parse_setting_change`, so the accepted spellings are the same everywhere.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from bot import texts
from bot.catalog import ModelSpec, ModelStatus, get_model, resolve_model
from bot.engine.domain import GroupPolicy, TranscriptMode, VoiceReply
from bot.engine.ports import ChatRef
from bot.errors import InvalidSetting, RetiredModel, UnknownModel
from bot.i18n import Lang, Msg
from bot.storage.tables import ChatSettings

SETTING_KEYS: tuple[str, ...] = (
    "model",
    "system_prompt",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "max_tokens",
    "asr_language",
    "asr_enable_itn",
    "group_policy",
    "transcript",
    "language",
    "voice_reply",
    "voice",
)

# Spellings users type, mapped to the canonical key.
ALIASES: dict[str, str] = {
    "system": "system_prompt",
    "prompt": "system_prompt",
    "temp": "temperature",
    "topp": "top_p",
    "topk": "top_k",
    "max": "max_tokens",
    "maxtokens": "max_tokens",
    "lang": "language",
    "asrlang": "asr_language",
    "itn": "asr_enable_itn",
    "groups": "group_policy",
    "group": "group_policy",
    "transcripts": "transcript",
    "voicereply": "voice_reply",
    "voicereplies": "voice_reply",
    "speak": "voice_reply",
    "speaker": "voice",
}

SYSTEM_PROMPT_LIMIT = 2000  # characters; it is sent with every request of the chat
SEED_MAX = 2**31 - 1
_RESET_WORDS = frozenset({"", "default", "reset", "none", "off-default"})
_TRUE = frozenset({"on", "true", "yes", "1", "enable", "enabled"})
_FALSE = frozenset({"off", "false", "no", "0", "disable", "disabled"})
_LANGUAGE = re.compile(r"[a-z]{2,3}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatSettingsView:
    """A chat's effective settings (defaults applied), and which ones the chat chose."""

    model: str
    spec: ModelSpec
    system_prompt: str | None
    temperature: float | None
    top_p: float | None
    top_k: int | None
    seed: int | None
    max_tokens: int | None
    asr_language: str | None
    asr_enable_itn: bool | None
    group_policy: GroupPolicy
    transcript: TranscriptMode
    # The language the bot speaks in the chat: "en", "zh", or None (auto: each user's own).
    language: str | None
    # When replies are also spoken; ``None``: the chat's default (:func:`voice_reply_default`).
    voice_reply: VoiceReply | None = None
    # The chat's speaker: one of ``spec.voices``, or ``None`` (the model's first voice).
    voice: str | None = None
    chosen: frozenset[str] = frozenset()  # keys with a chat-specific value
    # The chat's stored model when DashScope retired it (``model`` is then its
    # replacement), and the retired model the chat was last told about.
    retired_model: str | None = None
    retired_notice: str | None = None
    # The chat's model DashScope last said does not exist or is not available to the key,
    # and when (None: every turn on it since went through).
    model_unavailable: str | None = None
    model_unavailable_at: dt.datetime | None = None
    # The TTS model that voices a model without speech output (TTS_MODEL; None: off).
    tts_model: str | None = None

    @property
    def retired_notice_due(self) -> bool:
        """The chat has not yet been told that its model was retired and replaced."""
        return self.retired_model is not None and self.retired_notice != self.retired_model

    def value(self, key: str) -> Any:
        return getattr(self, key)

    def voice_reply_for(self, chat: ChatRef) -> VoiceReply:
        """The chat's ``voice_reply``, its default applied."""
        return self.voice_reply if self.voice_reply is not None else voice_reply_default(chat)

    def speaker(self, spec: ModelSpec | None = None) -> str | None:
        """The voice to speak with on ``spec`` (default: the chat's model): the chat's voice
        if that model has it, else the model's first; ``None`` if it cannot speak."""
        return (spec or self.spec).voice_for(self.voice)


def voice_reply_default(chat: ChatRef) -> VoiceReply:
    """``auto`` in Telegram private chats and the browser playground (a voice page);
    ``off`` in groups and on Slack, where teams read."""
    if chat.platform in ("telegram", "web") and chat.private:
        return VoiceReply.AUTO
    return VoiceReply.OFF


def canonical_key(key: str) -> str:
    """The setting name for what a user typed, or :class:`InvalidSetting`."""
    norm = key.strip().lower().replace("-", "_")
    norm = ALIASES.get(norm.replace("_", ""), ALIASES.get(norm, norm))
    if norm not in SETTING_KEYS:
        raise InvalidSetting(
            f"unknown setting {key!r}",
            user_message=Msg(texts.UNKNOWN_SETTING, key=key, keys=", ".join(SETTING_KEYS)),
        )
    return norm


def _must(key: str, rule: str | Msg) -> InvalidSetting:
    return InvalidSetting(
        f"invalid value for {key}",
        user_message=Msg(texts.SETTING_MUST_BE, key=key, rule=Msg.of(rule)),
    )


def _number(key: str, raw: str, low: float, high: float) -> float:
    rule = Msg(texts.SETTING_RULE_NUMBER, low=low, high=high)
    try:
        value = float(raw.replace(",", "."))
    except ValueError:
        raise _must(key, rule) from None
    if not (low <= value <= high):
        raise _must(key, rule)
    return value


def _integer(key: str, raw: str, low: int, high: int) -> int:
    rule = Msg(texts.SETTING_RULE_INTEGER, low=low, high=high)
    try:
        value = int(raw)
    except ValueError:
        raise _must(key, rule) from None
    if not (low <= value <= high):
        raise _must(key, rule)
    return value


def parse_setting_change(key: str, raw: str) -> dict[str, Any]:
    """Parse "key value" as typed in a chat into ``{canonical_key: value}``.

    ``default`` (or an empty value) resets the key to the configured default (``None``).
    Only the value's syntax and range are checked here; whether a model is allowed is
    checked by :meth:`bot.engine.service.Engine.update_settings`.
    """
    name = canonical_key(key)
    text = raw.strip()
    if text.lower() in _RESET_WORDS:
        return {name: None}
    return {name: coerce_value(name, text)}


def coerce_value(name: str, value: Any) -> Any:
    """Check (and convert from text) one value; raise :class:`InvalidSetting`."""
    if value is None:
        return None
    raw = str(value).strip()
    if name == "model":
        return raw
    if name == "system_prompt":
        if len(raw) > SYSTEM_PROMPT_LIMIT:
            raise _must(name, Msg(texts.SETTING_RULE_TEXT, limit=SYSTEM_PROMPT_LIMIT))
        return raw or None
    if name == "temperature":
        return _number(name, raw, 0.0, 1.99)
    if name == "top_p":
        return _number(name, raw, 0.01, 1.0)
    if name == "top_k":
        return _integer(name, raw, 1, 100)
    if name == "seed":
        return _integer(name, raw, 0, SEED_MAX)
    if name == "max_tokens":
        return _integer(name, raw, 1, 32768)
    if name == "asr_language":
        low = raw.lower()
        if not _LANGUAGE.fullmatch(low):
            raise _must(name, texts.SETTING_RULE_LANGUAGE)
        return low
    if name == "asr_enable_itn":
        if isinstance(value, bool):
            return value
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise _must(name, texts.SETTING_RULE_BOOL)
    if name == "group_policy":
        choices = [p.value for p in GroupPolicy]
        if raw.lower() not in choices:
            raise _must(name, Msg(texts.SETTING_RULE_CHOICE, choices=", ".join(choices)))
        return raw.lower()
    if name == "transcript":
        modes = [m.value for m in TranscriptMode]
        if raw.lower() not in modes:
            raise _must(name, Msg(texts.SETTING_RULE_CHOICE, choices=", ".join(modes)))
        return raw.lower()
    if name == "language":
        return _language(raw)
    if name == "voice_reply":
        modes = [m.value for m in VoiceReply]
        if raw.lower() not in modes:
            raise _must(name, Msg(texts.SETTING_RULE_CHOICE, choices=", ".join(modes)))
        return raw.lower()
    if name == "voice":
        return raw  # checked against the model's voices by check_voice
    raise AssertionError(f"unhandled setting {canonical_key(name)}")


def _language(raw: str) -> str | None:
    """``auto`` (``None``: each user's own language), ``en`` or ``zh`` (``zh-CN``, ``zh_Hans``
    and the like are ``zh``)."""
    low = raw.lower()
    if low == "auto":
        return None
    code = low.replace("_", "-").split("-")[0]
    if code in {lang.value for lang in Lang}:
        return code
    choices = ", ".join(["auto", *(lang.value for lang in Lang)])
    raise _must("language", Msg(texts.SETTING_RULE_CHOICE, choices=choices))


def check_model(name: str, allowed: list[str]) -> ModelSpec:
    """The spec of an allowed model a chat may choose, or :class:`UnknownModel`
    (:class:`RetiredModel` for a model DashScope retired)."""
    spec = get_model(name)
    choosable = choosable_models(allowed)
    if spec is not None and name in allowed and not spec.choosable:
        raise RetiredModel(name, allowed=choosable)
    if spec is None or name not in allowed:
        raise UnknownModel(name, allowed=choosable)
    return spec


def choosable_models(allowed: list[str]) -> list[str]:
    """The allowed models a chat may choose (retired ones left out) as an error suggests
    them: live ones first, then trial ones, each in ``allowed`` order."""
    specs = [spec for name in allowed if (spec := get_model(name)) is not None]
    live = [s.name for s in specs if s.status is ModelStatus.LIVE]
    return live + [s.name for s in specs if s.choosable and s.status is not ModelStatus.LIVE]


def check_voice(raw: str, spec: ModelSpec) -> str:
    """The model's spelling of the voice ``raw`` (case and spaces aside), or
    :class:`InvalidSetting` naming the voices it has (or saying it cannot speak)."""
    if not spec.voices:
        raise InvalidSetting(
            f"{spec.name} has no voices",
            user_message=Msg(texts.VOICE_MODEL_CANNOT_SPEAK, model=spec.name),
        )
    wanted = " ".join(raw.split()).casefold()
    for voice in spec.voices:
        if voice.casefold() == wanted:
            return voice
    raise _must("voice", Msg(texts.SETTING_RULE_CHOICE, choices=", ".join(spec.voices)))


def effective(
    row: ChatSettings | None,
    *,
    default_model: str,
    allowed: list[str],
    tts_model: str | None = None,
) -> ChatSettingsView:
    """The view of a stored row with defaults applied.

    A stored model that is no longer allowed (ALLOWED_MODELS changed) falls back to the
    default instead of failing every turn of the chat. A stored model DashScope retired is
    answered for by its replacement (the default if that is not allowed), and the view
    names the retired model so the chat can be told once.
    """
    chosen: set[str] = set()
    values: dict[str, Any] = {}
    for key in SETTING_KEYS:
        stored = getattr(row, key, None) if row is not None else None
        if key == "group_policy":
            if stored and stored != GroupPolicy.MENTION.value:
                chosen.add(key)
            continue
        if key == "transcript":
            if stored is not None:
                chosen.add(key)
            continue
        values[key] = stored
        if stored is not None:
            chosen.add(key)
    model = values.pop("model") or default_model
    retired: str | None = None
    stored_spec = get_model(model) if model in allowed else None
    if stored_spec is not None and not stored_spec.choosable:
        retired = model
        successor = resolve_model(model)
        model = successor.name if successor and successor.name in allowed else default_model
    if model not in allowed or get_model(model) is None:
        model = default_model
        chosen.discard("model")
    spec = get_model(model)
    assert spec is not None  # Settings validates DEFAULT_MODEL against the catalog
    policy_raw = row.group_policy if row is not None and row.group_policy else "mention"
    try:
        policy = GroupPolicy(policy_raw)
    except ValueError:
        policy = GroupPolicy.MENTION
    try:
        transcript = TranscriptMode(row.transcript if row is not None and row.transcript else "")
    except ValueError:
        transcript = TranscriptMode.BUTTON
    try:
        values["voice_reply"] = VoiceReply(values["voice_reply"]) if values["voice_reply"] else None
    except ValueError:
        values["voice_reply"] = None
        chosen.discard("voice_reply")
    return ChatSettingsView(
        model=model,
        spec=spec,
        group_policy=policy,
        transcript=transcript,
        chosen=frozenset(chosen),
        retired_model=retired,
        retired_notice=row.retired_notice if row is not None else None,
        model_unavailable=row.model_unavailable if row is not None else None,
        model_unavailable_at=row.model_unavailable_at if row is not None else None,
        tts_model=tts_model,
        **values,
    )
