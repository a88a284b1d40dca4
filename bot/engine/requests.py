"""What kind of turn a message is for a model, and the request that carries it.

Turn kinds follow the catalog (CONTRACT.md): audio alone is voice chat (with a default
instruction on models without native voice chat), audio with text is audio analysis,
text alone is a follow-up whose history carries the earlier audio; ASR models transcribe
and the captioner describes, each in a single turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from bot import texts
from bot.audio.report import format_duration
from bot.audio.types import LengthMismatch, MismatchKind, Segment
from bot.catalog import ModelKind, ModelSpec
from bot.engine.history import RequestPlan, context_text
from bot.engine.settings import ChatSettingsView
from bot.errors import UnsupportedRequest
from bot.i18n import Msg, tr
from bot.llm.types import AudioInfo, AudioPart, ChatMessage, GenerationParams, Part, TextPart

# Left-out audio shorter than this is rounding, not worth a note.
_NOTE_THRESHOLD = 0.5


class TurnKind(StrEnum):
    VOICE_CHAT = "voice_chat"
    ANALYSIS = "analysis"
    FOLLOWUP = "followup"
    TRANSCRIPTION = "transcription"
    CAPTION = "caption"


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnShape:
    """The kind of a turn and the text the model gets with it (``None``: audio alone)."""

    kind: TurnKind
    model_text: str | None
    notes: tuple[str, ...] = ()


def shape_turn(spec: ModelSpec, *, text: str | None, has_audio: bool) -> TurnShape:
    """Decide the turn kind, or raise :class:`UnsupportedRequest` with a clear answer."""
    text = (text or "").strip() or None
    if text is None and not has_audio:
        raise UnsupportedRequest("empty turn", user_message=texts.NOTHING_TO_ANSWER)
    if spec.kind in (ModelKind.ASR, ModelKind.CAPTION):
        asr = spec.kind is ModelKind.ASR
        if not has_audio:
            template = texts.NEEDS_AUDIO_ASR if asr else texts.NEEDS_AUDIO_CAPTION
            raise UnsupportedRequest(
                f"{spec.name} needs audio", user_message=Msg(template, model=spec.name)
            )
        # These models take no instruction: answer the audio and say the text was unused.
        notes = (tr(texts.INSTRUCTION_IGNORED).format(model=spec.name),) if text else ()
        kind = TurnKind.TRANSCRIPTION if asr else TurnKind.CAPTION
        return TurnShape(kind=kind, model_text=None, notes=notes)
    if has_audio and text:
        return TurnShape(kind=TurnKind.ANALYSIS, model_text=text)
    if has_audio:
        instruction = None if spec.voice_chat else tr(texts.VOICE_CHAT_INSTRUCTION)
        return TurnShape(kind=TurnKind.VOICE_CHAT, model_text=instruction)
    return TurnShape(kind=TurnKind.FOLLOWUP, model_text=text)


def replay_instruction(spec: ModelSpec) -> str | None:
    """The text a past audio-only user turn is replayed with on this model."""
    return None if spec.voice_chat else tr(texts.VOICE_CHAT_INSTRUCTION)


def speech_voice(spec: ModelSpec, chosen: str | None = None) -> str | None:
    """The speaker for a spoken reply on ``spec``: ``chosen`` if the model has it, else the
    model's default (its first voice); ``None`` if the model does not speak."""
    return spec.voice_for(chosen) if spec.speech_output else None


def generation_params(
    view: ChatSettingsView, spec: ModelSpec, *, speak: bool = False, voice: str | None = None
) -> GenerationParams:
    """The chat's sampling settings, as far as the model takes them.

    ``speak`` asks a model with ``speech_output`` to answer with speech too, in ``voice``
    (see :func:`speech_voice`); on other models it changes nothing (their replies are
    synthesized afterwards, if at all).
    """
    if spec.kind is ModelKind.ASR:
        return GenerationParams(
            asr_language=view.asr_language if spec.asr_options else None,
            asr_enable_itn=view.asr_enable_itn if spec.asr_options else None,
        )
    max_tokens = view.max_tokens
    if max_tokens is not None and spec.max_output_tokens is not None:
        # A chat that chose 4096 on the captioner keeps working after switching to turbo.
        max_tokens = min(max_tokens, spec.max_output_tokens)
    return GenerationParams(
        temperature=view.temperature,
        top_p=view.top_p,
        top_k=view.top_k,
        seed=view.seed,
        max_tokens=max_tokens,
        voice=speech_voice(spec, voice) if speak else None,
    )


def build_messages(
    plan: RequestPlan,
    *,
    spec: ModelSpec,
    current_audio: Sequence[Segment],
    history_audio: Mapping[int, AudioPart],
) -> list[ChatMessage]:
    """The request's messages: system, history pairs (chronological), current turn.

    Audio comes before the text in a user message, as in DashScope's examples.
    ``history_audio`` maps stored clip ids to their bytes. An unanswered thread parent
    (see :class:`~bot.engine.history.PastPair`) opens the next user message, framed.
    """
    messages: list[ChatMessage] = []
    if plan.system_prompt:
        messages.append(ChatMessage(role="system", parts=(TextPart(plan.system_prompt),)))
    instruction = replay_instruction(spec)
    opening: list[Part] = []  # an unanswered parent, for the next user message
    for pair in plan.history:
        parts: list[Part] = []
        for clip in pair.clips:
            assert clip.clip_id is not None
            parts.append(history_audio[clip.clip_id])
        if pair.assistant_text is None:
            parts.append(TextPart(context_text(pair.user_text, has_audio=bool(pair.clips))))
            opening.extend(parts)
            continue
        user_text = pair.user_text or (instruction if pair.clips else None)
        if user_text:
            parts.append(TextPart(user_text))
        messages.extend(_user_messages(spec, opening, parts))
        messages.append(ChatMessage(role="assistant", parts=(TextPart(pair.assistant_text),)))
        opening = []
    current: list[Part] = [AudioPart(a.data, a.format) for a in current_audio]
    if plan.current_text:
        current.append(TextPart(plan.current_text))
    messages.extend(_user_messages(spec, opening, current))
    return messages


def _user_messages(spec: ModelSpec, opening: list[Part], parts: list[Part]) -> list[ChatMessage]:
    """A user message opened by an unanswered thread parent; as two consecutive user
    messages where one would hold more audio items than the model takes in a message
    (Qwen-Omni: one), so neither the parent's audio nor the user's is dropped."""
    limit = spec.clips_per_message
    audio = sum(isinstance(p, AudioPart) for p in (*opening, *parts))
    if opening and limit is not None and audio > limit:
        return [ChatMessage(role="user", parts=tuple(opening)), ChatMessage("user", tuple(parts))]
    return [ChatMessage(role="user", parts=(*opening, *parts))]


def left_out_note(*, sent: float, total: float, truncated: bool = False) -> str | None:
    """E.g. "I listened to the first 3:00 of 7:42." — never drop audio silently."""
    if truncated:
        return tr(texts.AUDIO_LEFT_OUT_AT_LEAST).format(
            sent=format_duration(sent), total=format_duration(total)
        )
    if total - sent < _NOTE_THRESHOLD:
        return None
    return tr(texts.AUDIO_LEFT_OUT).format(sent=format_duration(sent), total=format_duration(total))


def length_notes(mismatches: Sequence[LengthMismatch | None]) -> list[str]:
    """A note per recording whose file held more or less audio than its header says.

    ``mismatches`` has one entry per recording of the turn; with several, each note names
    its file by position ("File 2 seems cut off after 0:01.").
    """
    numbered = len(mismatches) > 1
    return [
        length_note(m, number=number if numbered else None)
        for number, m in enumerate(mismatches, start=1)
        if m is not None
    ]


def length_note(mismatch: LengthMismatch, *, number: int | None = None) -> str:
    """E.g. "The file seems cut off after 0:01." — say what could not be read."""
    heard = format_duration(mismatch.heard)
    if mismatch.kind is MismatchKind.UNREAD_TAIL:
        rest = format_duration(mismatch.unread or 0.0)
        if number is None:
            return tr(texts.AUDIO_UNREAD_TAIL).format(heard=heard, rest=rest)
        return tr(texts.AUDIO_UNREAD_TAIL_NTH).format(heard=heard, rest=rest, number=number)
    if mismatch.kind is MismatchKind.LONGER_THAN_HEADER:
        declared = format_duration(mismatch.declared or 0.0)  # always set for this kind
        if number is None:
            return tr(texts.AUDIO_LONGER_THAN_HEADER).format(heard=heard, declared=declared)
        return tr(texts.AUDIO_LONGER_THAN_HEADER_NTH).format(
            heard=heard, declared=declared, number=number
        )
    if number is None:
        return tr(texts.AUDIO_CUT_OFF).format(heard=heard)
    return tr(texts.AUDIO_CUT_OFF_NTH).format(heard=heard, number=number)


def audio_info_note(info: AudioInfo | None) -> str | None:
    """ "Detected language: en, emotion: happy." for ASR replies."""
    if info is None:
        return None
    details = []
    if info.language:
        details.append(tr(texts.ASR_LANGUAGE).format(language=info.language))
    if info.emotion:
        details.append(tr(texts.ASR_EMOTION).format(emotion=info.emotion))
    if not details:
        return None
    return tr(texts.ASR_DETECTED).format(details=tr(texts.LIST_SEPARATOR).join(details))
