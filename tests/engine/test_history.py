"""The input budget planner, as pure functions (CONTRACT.md fill order)."""

from __future__ import annotations

import pytest

from bot import texts
from bot.catalog import CATALOG, audio_tokens
from bot.engine.history import (
    ClipMeta,
    PastPair,
    audio_budget_seconds,
    clip_tokens,
    input_budget,
    pair_tokens,
    plan_request,
    text_tokens,
)
from bot.errors import UnsupportedRequest
from tests.fakes.dashscope import count_text_tokens

TURBO = CATALOG["qwen-audio-turbo-latest"]
ASR = CATALOG["qwen3-asr-flash"]
CAPTION = CATALOG["qwen3-omni-30b-a3b-captioner"]


def pair(i: int, *, seconds: tuple[float, ...] = (), text: str | None = None) -> PastPair:
    return PastPair(
        user_turn_id=i,
        user_text=text,
        clips=tuple(ClipMeta(clip_id=i * 10 + k, duration=s) for k, s in enumerate(seconds)),
        assistant_text=f"reply {i}",
    )


def test_text_estimate_is_never_below_what_a_tokenizer_counts() -> None:
    for sample in ("hello world", "1234567890", "欢迎使用阿里云", "Привет, мир", "🎙️🎧"):
        assert text_tokens(sample) >= count_text_tokens(sample)
        assert text_tokens(sample) >= len(sample)
    assert text_tokens("欢迎") == 3  # 6 UTF-8 bytes / 2
    assert text_tokens(None) == 0


def test_budget_keeps_a_reserve_below_the_service_limit() -> None:
    budget = input_budget(TURBO)
    assert budget is not None
    assert 5800 < budget < 6144
    assert input_budget(ASR) is None


def test_history_is_filled_newest_first_with_whole_pairs_and_stays_chronological() -> None:
    history = [pair(i, seconds=(30.0,)) for i in range(1, 11)]  # 10 pairs of 30 s each
    plan = plan_request(
        TURBO,
        system_prompt="Be brief.",
        current_text=None,
        current_clips=[30.0],
        history=history,
    )
    assert plan.current_clips == 1
    kept = [p.user_turn_id for p in plan.history]
    # 750 tokens per 30 s clip: the current clip plus the newest pairs that fit, in order.
    assert kept == list(range(11 - len(kept), 11))
    assert 5 <= len(kept) <= 7
    assert plan.skipped_pairs == 10 - len(kept)
    assert plan.budget is not None and plan.estimated_tokens <= plan.budget
    # One more pair would not have fit: the budget is used, not wasted.
    one_more = pair_tokens(TURBO, history[10 - len(kept) - 1], instruction=None)
    assert plan.estimated_tokens + one_more > plan.budget


def test_current_audio_goes_before_history_and_is_cut_in_order() -> None:
    history = [pair(1, seconds=(30.0,))]
    clips = [30.0] * 10  # five minutes of audio, 7,500 tokens
    plan = plan_request(
        TURBO,
        system_prompt=None,
        current_text="summarise",
        current_clips=clips,
        history=history,
    )
    assert 6 <= plan.current_clips <= 7
    assert plan.history == ()  # no room left for the past pair
    assert plan.budget is not None and plan.estimated_tokens <= plan.budget


def test_system_prompt_too_long_for_any_audio_is_refused_clearly() -> None:
    prompt = "x" * 5800  # fits alone, but not with 5 s of audio
    with pytest.raises(UnsupportedRequest) as err:
        plan_request(
            TURBO, system_prompt=prompt, current_text=None, current_clips=[5.0], history=[]
        )
    assert err.value.user_message == texts.NO_ROOM_FOR_AUDIO
    with pytest.raises(UnsupportedRequest) as err2:
        plan_request(
            TURBO, system_prompt=prompt * 2, current_text="hi", current_clips=[], history=[]
        )
    assert err2.value.user_message == texts.TEXT_TOO_LONG


def test_single_turn_models_get_no_history_and_one_clip() -> None:
    history = [pair(1, seconds=(3.0,))]
    for spec in (ASR, CAPTION):
        plan = plan_request(
            spec,
            system_prompt="context",
            current_text=None,
            current_clips=[3.0, 3.0],
            history=history,
        )
        assert plan.history == ()
        assert plan.current_clips == 1
    assert (
        plan_request(
            CAPTION, system_prompt="ignored", current_text=None, current_clips=[3.0], history=[]
        ).system_prompt
        is None
    )  # the captioner takes no system message
    assert (
        plan_request(
            ASR, system_prompt="names: Qwen", current_text=None, current_clips=[3.0], history=[]
        ).system_prompt
        == "names: Qwen"
    )


def test_replayed_audio_alone_is_charged_with_the_default_instruction() -> None:
    p = pair(1, seconds=(2.0,))
    plain = pair_tokens(TURBO, p, instruction=None)
    instructed = pair_tokens(
        CATALOG["qwen-audio-turbo"], p, instruction=texts.VOICE_CHAT_INSTRUCTION
    )
    assert instructed - plain == text_tokens(texts.VOICE_CHAT_INSTRUCTION)


def test_conversion_budget_never_lets_clips_exceed_the_planner() -> None:
    for system in (None, "s" * 500, "s" * 4000):
        seconds = audio_budget_seconds(TURBO, system_prompt=system, current_text="why?")
        assert seconds is not None
        clips: list[float] = []
        left = seconds
        while left > 0:  # cut as the pipeline does, counting at least 1 s per clip
            clips.append(min(30.0, max(left, 1.0)))
            left -= 30.0
        plan = plan_request(
            TURBO, system_prompt=system, current_text="why?", current_clips=clips, history=[]
        )
        assert plan.current_clips == len(clips)


def test_audio_tokens_match_the_service_rule() -> None:
    assert audio_tokens(TURBO, 0.3) == 25  # under 1 s counts as 1 s
    assert audio_tokens(TURBO, 45.0) == 750  # only the first 30 s count
    assert clip_tokens(TURBO, 30.0) > 750


def test_only_complete_pairs_become_history() -> None:
    from bot.engine.store import past_pairs
    from bot.storage.tables import Turn

    def t(
        seq: int, role: str, status: str, text: str | None = None, kind: str = "analysis"
    ) -> Turn:
        return Turn(id=seq, seq=seq, role=role, status=status, text=text, kind=kind, clips=[])

    turns = [
        t(1, "user", "complete", "q1"),
        t(2, "assistant", "complete", "a1"),
        t(3, "user", "failed", "audio failed"),  # no reply follows
        t(4, "user", "complete", "q2"),
        t(5, "assistant", "stopped", "par"),
        t(6, "user", "complete", "q3"),
        t(7, "assistant", "failed", None),
        t(8, "user", "complete", "q4"),
        t(9, "assistant", "streaming", "crash"),  # interrupted
        t(10, "user", "complete", "ignored", kind="transcription"),
        t(11, "assistant", "complete", "transcript"),
    ]
    pairs = past_pairs(turns)
    assert [(p.user_text, p.assistant_text) for p in pairs] == [
        ("q1", "a1"),
        (None, "transcript"),  # the text an ASR model ignored is not replayed
    ]
