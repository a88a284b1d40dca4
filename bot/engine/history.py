"""The input budget planner: which text and audio one request carries (pure functions).

CONTRACT.md fixes the order in which a request's input budget is filled:

1. the system prompt;
2. the current turn: its text, then its audio segments in order, as many as fit;
3. past turns, newest first, whole user/assistant pairs only, while they still fit.

The service counts 25 tokens per audio second (the first ``clip_seconds`` of each clip, at
least 1 s) and answers 400 to a request over the model's max input, so the bot must never
send one. Text has no tokenizer here: it is counted conservatively (never fewer tokens than
characters, nor than half its UTF-8 bytes) and a reserve is kept for chat-template tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot import texts
from bot.catalog import ModelSpec, audio_tokens, turn_clip_cap
from bot.errors import UnsupportedRequest
from bot.i18n import tr

# Chat-template tokens per message (role markers, separators) and per audio item (tags).
MESSAGE_OVERHEAD = 8
CLIP_OVERHEAD = 8
# Room kept free below the service's limit: a fixed part plus a share of the limit.
RESERVE_TOKENS = 64
RESERVE_SHARE = 0.03


def text_tokens(text: str | None) -> int:
    """A conservative token estimate: max(characters, UTF-8 bytes / 2).

    Real tokenizers average 3–4 characters per token in English and about one per CJK
    character; digits and rare symbols can be one token each, hence never fewer than
    one token per character.
    """
    if not text:
        return 0
    return max(len(text), math.ceil(len(text.encode("utf-8")) / 2))


def clip_tokens(spec: ModelSpec, seconds: float) -> int:
    """Tokens one audio item costs in the budget (service count plus template tags)."""
    return audio_tokens(spec, seconds) + CLIP_OVERHEAD


def input_budget(spec: ModelSpec) -> int | None:
    """Tokens the bot allows itself per request (``None``: no documented limit)."""
    if spec.max_input_tokens is None:
        return None
    reserve = RESERVE_TOKENS + math.ceil(spec.max_input_tokens * RESERVE_SHARE)
    return spec.max_input_tokens - reserve


@dataclass(frozen=True, slots=True, kw_only=True)
class ClipMeta:
    """One stored or freshly converted audio item (bytes are loaded later)."""

    clip_id: int | None
    duration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PastPair:
    """A user turn and the complete assistant reply that answered it.

    ``assistant_text`` is ``None`` for the message a thread's conversation starts from
    when nobody answered it (:mod:`bot.engine.seeding`): it is sent, framed by
    :func:`context_text`, with the next user message, since a request alternates roles.
    """

    user_turn_id: int
    user_text: str | None
    clips: tuple[ClipMeta, ...]
    assistant_text: str | None

    @property
    def answered(self) -> bool:
        return self.assistant_text is not None


def context_text(user_text: str | None, *, has_audio: bool) -> str:
    """How an unanswered thread parent is introduced to the model, after its audio."""
    if has_audio and user_text:
        return tr(texts.THREAD_PARENT_AUDIO_TEXT).format(text=user_text)
    if has_audio:
        return tr(texts.THREAD_PARENT_AUDIO)
    return tr(texts.THREAD_PARENT_TEXT).format(text=user_text or "")


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestPlan:
    """What one request carries, and its estimated input size."""

    system_prompt: str | None
    current_text: str | None
    current_clips: int  # how many of the current turn's clips fit, in order
    history: tuple[PastPair, ...]  # chronological
    estimated_tokens: int
    budget: int | None
    skipped_pairs: int = 0  # older complete pairs left out for lack of room
    notes: tuple[str, ...] = field(default=())


def pair_tokens(spec: ModelSpec, pair: PastPair, *, instruction: str | None) -> int:
    """The cost of replaying one user/assistant pair (an unanswered thread parent is
    charged like a pair too: its framing stands in for the instruction)."""
    if pair.answered:
        user_text = pair.user_text or (instruction if pair.clips else None)
    else:
        user_text = context_text(pair.user_text, has_audio=bool(pair.clips))
    return (
        2 * MESSAGE_OVERHEAD
        + text_tokens(user_text)
        + sum(clip_tokens(spec, c.duration) for c in pair.clips)
        + text_tokens(pair.assistant_text)
    )


def fixed_tokens(spec: ModelSpec, *, system_prompt: str | None, current_text: str | None) -> int:
    """System prompt plus the current turn's text: what must fit before any audio."""
    used = MESSAGE_OVERHEAD + text_tokens(current_text)
    if system_prompt and spec.accepts_system:
        used += MESSAGE_OVERHEAD + text_tokens(system_prompt)
    return used


def audio_budget_seconds(
    spec: ModelSpec, *, system_prompt: str | None, current_text: str | None
) -> float | None:
    """Counted audio seconds the current turn may convert (``None``: no token limit).

    Slightly pessimistic (per-clip tags and rounding are charged for as many clips as
    the seconds could make); :func:`plan_request` checks the converted clips exactly.
    """
    budget = input_budget(spec)
    if budget is None:
        return None
    room = budget - fixed_tokens(spec, system_prompt=system_prompt, current_text=current_text)
    return _seconds_in(spec, room)


def parent_audio_budget_seconds(
    spec: ModelSpec,
    *,
    system_prompt: str | None,
    current_text: str | None,
    current_clips: Sequence[float],
    parent_text: str | None,
) -> float | None:
    """Counted audio seconds a thread's parent message may bring into its first request,
    beside the current turn (which comes first, CONTRACT.md) and the parent's own text
    (``None``: no token limit). Converting more would only be left out of the request."""
    budget = input_budget(spec)
    if budget is None:
        return None
    room = (
        budget
        - fixed_tokens(spec, system_prompt=system_prompt, current_text=current_text)
        - sum(clip_tokens(spec, seconds) for seconds in current_clips)
        # What pair_tokens charges for the parent besides its clips, with the framing of
        # a parent with audio (the longer one).
        - 2 * MESSAGE_OVERHEAD
        - text_tokens(context_text(parent_text, has_audio=True))
    )
    return _seconds_in(spec, room)


def _seconds_in(spec: ModelSpec, room: int) -> float:
    """Counted audio seconds that fit in ``room`` tokens, per-clip tags included."""
    if room <= 0:
        return 0.0
    per_clip = spec.clip_seconds * spec.audio_tokens_per_second
    clips = math.ceil(room / per_clip) + 1
    return max(0.0, (room - clips * (CLIP_OVERHEAD + 1)) / spec.audio_tokens_per_second)


def plan_request(
    spec: ModelSpec,
    *,
    system_prompt: str | None,
    current_text: str | None,
    current_clips: Sequence[float],
    history: Sequence[PastPair],
    instruction: str | None = None,
) -> RequestPlan:
    """Fill the budget in CONTRACT.md order. ``history`` is chronological.

    ``instruction`` is the text a user turn with audio alone is replayed with (models
    without voice chat get a default instruction). Raises :class:`UnsupportedRequest` if
    not even the system prompt and the current text fit, or no audio fits at all.
    """
    budget = input_budget(spec)
    limit = math.inf if budget is None else budget
    system = system_prompt if (system_prompt and spec.accepts_system) else None
    used = fixed_tokens(spec, system_prompt=system, current_text=current_text)
    if used > limit:
        raise UnsupportedRequest("text over the input budget", user_message=texts.TEXT_TOO_LONG)

    fitted = 0
    turn_cap = turn_clip_cap(spec)
    for seconds in current_clips:
        if turn_cap is not None and fitted >= turn_cap:
            break
        cost = clip_tokens(spec, seconds)
        if used + cost > limit:
            break
        used += cost
        fitted += 1
    if current_clips and fitted == 0:
        raise UnsupportedRequest("no room for audio", user_message=texts.NO_ROOM_FOR_AUDIO)

    chosen: list[PastPair] = []
    skipped = 0
    if spec.multi_turn:
        clips_used = fitted
        for pair in reversed(history):
            cost = pair_tokens(spec, pair, instruction=instruction)
            over_clips = (
                spec.max_clips is not None and clips_used + len(pair.clips) > spec.max_clips
            ) or (
                # A turn recorded for a 30 s window model (several clips) cannot be replayed
                # to a model that hears one item per message.
                spec.clips_per_message is not None and len(pair.clips) > spec.clips_per_message
            )
            if over_clips or used + cost > limit:
                # Stop at the first pair that does not fit: history stays contiguous.
                skipped = len(history) - len(chosen)
                break
            used += cost
            clips_used += len(pair.clips)
            chosen.append(pair)
    chosen.reverse()
    return RequestPlan(
        system_prompt=system,
        current_text=current_text,
        current_clips=fitted,
        history=tuple(chosen),
        estimated_tokens=used,
        budget=budget,
        skipped_pairs=skipped,
    )
