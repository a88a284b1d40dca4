"""The catalog lifecycle in the engine (issue #15): a retired model cannot be chosen, a chat
that had chosen it is answered by its replacement and told so once; Qwen-Omni turns go
over the OpenAI-compatible endpoint with one whole clip per message."""

from __future__ import annotations

import pytest

from bot import texts
from bot.catalog import CATALOG, DEFAULT_MODEL, ModelStatus
from bot.config import Settings
from bot.engine import chat_store
from bot.errors import ConfigError, RetiredModel
from tests.engine.conftest import PRIVATE, Audio, EngineFactory, Harness, voice
from tests.engine.test_settings_usage import Admins

RETIRED = "qwen-audio-asr"
REPLACEMENT = "qwen3-asr-flash"


def test_catalog_statuses() -> None:
    assert CATALOG[RETIRED].status is ModelStatus.RETIRED
    assert CATALOG[RETIRED].replacement == REPLACEMENT
    assert CATALOG["qwen-audio-turbo"].status is ModelStatus.TRIAL
    # A fresh install's default is servable, and every replacement is in the catalog.
    assert CATALOG[DEFAULT_MODEL].choosable
    assert all(s.replacement in CATALOG for s in CATALOG.values() if s.replacement)
    for name in ("qwen3.5-omni-plus", "qwen3.5-omni-flash", "qwen3-omni-flash"):
        spec = CATALOG[name]
        assert spec.protocol == "compatible" and spec.speech_output and spec.voices
        assert spec.clips_per_message == 1
    assert CATALOG["qwen3-omni-flash"].audio_tokens_per_second == 12.5
    assert CATALOG["qwen3-omni-flash"].clip_seconds == 20 * 60


def test_a_retired_default_model_is_a_configuration_error() -> None:
    with pytest.raises((ConfigError, ValueError)) as info:
        Settings.load(DASHSCOPE_API_KEY="sk-x", DEFAULT_MODEL=RETIRED)
    assert "retired" in str(info.value) and REPLACEMENT in str(info.value)


async def test_a_retired_model_cannot_be_chosen(h: Harness) -> None:
    with pytest.raises(RetiredModel) as err:
        await h.engine.update_settings(PRIVATE, "7", Admins(), model=RETIRED)
    assert err.value.user_message.startswith(f"DashScope has retired “{RETIRED}”")
    assert RETIRED not in err.value.user_message.split("Choose one of:")[1]
    assert REPLACEMENT in err.value.user_message
    before = len(h.fake.requests)
    refused, _sink = await h.turn(audio=Audio(voice(2.0)), model=RETIRED)
    assert refused.status == "refused" and isinstance(refused.error, RetiredModel)
    assert len(h.fake.requests) == before
    # Its row stays: admins still see it, marked retired.
    assert RETIRED in [m.name for m in h.engine.allowed_models]
    assert RETIRED not in [m.name for m in h.engine.choosable_models]
    assert REPLACEMENT in [m.name for m in h.engine.choosable_models]


async def test_a_chat_on_a_retired_model_gets_the_replacement_and_is_told_once(
    h: Harness,
) -> None:
    # The chat chose the model before DashScope retired it.
    await chat_store.change_settings(
        h.db, PRIVATE, changes={"model": RETIRED}, changed_by="telegram:7"
    )
    view = await h.engine.get_settings(PRIVATE)
    assert (view.model, view.retired_model) == (REPLACEMENT, RETIRED)

    note = texts.MODEL_RETIRED_REPLACED.format(model=RETIRED, replacement=REPLACEMENT)
    first, sink = await h.turn(audio=Audio(voice(2.0)))
    assert first.status == "complete"
    assert h.fake.last_request.model == REPLACEMENT
    assert note in sink.shown

    second, sink = await h.turn(audio=Audio(voice(2.0, seed=1)))
    assert second.status == "complete"
    assert h.fake.last_request.model == REPLACEMENT
    assert note not in sink.shown
    assert (await h.engine.get_settings(PRIVATE)).retired_notice == RETIRED


async def test_a_failed_reply_does_not_use_up_the_notice(h: Harness) -> None:
    await chat_store.change_settings(
        h.db, PRIVATE, changes={"model": RETIRED}, changed_by="telegram:7"
    )
    h.fake.queue_error(400, "DataInspectionFailed")
    failed, _sink = await h.turn(audio=Audio(voice(2.0)))
    assert failed.status == "failed"
    note = texts.MODEL_RETIRED_REPLACED.format(model=RETIRED, replacement=REPLACEMENT)
    done, sink = await h.turn(audio=Audio(voice(2.0, seed=1)))
    assert done.status == "complete" and note in sink.shown


async def test_the_replacement_outside_the_allow_list_falls_back_to_the_default(
    engine_factory: EngineFactory,
) -> None:
    h = await engine_factory(ALLOWED_MODELS=f"{DEFAULT_MODEL},{RETIRED}")
    await chat_store.change_settings(
        h.db, PRIVATE, changes={"model": RETIRED}, changed_by="telegram:7"
    )
    view = await h.engine.get_settings(PRIVATE)
    assert (view.model, view.retired_model) == (DEFAULT_MODEL, RETIRED)


async def test_an_omni_turn_goes_compatible_with_one_whole_clip(h: Harness) -> None:
    # DASHSCOPE_PROTOCOL is native here (the engine fixture's default).
    out, sink = await h.turn(audio=Audio(voice(70.0)), model="qwen3-omni-flash")
    assert out.status == "complete"
    req = h.fake.last_request
    assert req.protocol == "openai" and req.model == "qwen3-omni-flash"
    assert req.body["stream"] is True
    # A voice note in a private chat (voice_reply auto) is answered with speech too.
    assert req.body["modalities"] == ["text", "audio"]
    # A 70 s note is one clip (Omni hears up to 20 min), not 30 s segments.
    assert req.audio_durations == [pytest.approx(70.0, abs=0.1)]
    assert "Heard 1 audio clip(s): 70.00 s." in sink.shown
    assert "I listened" not in sink.shown


async def test_an_omni_turn_over_a_multi_clip_history_keeps_one_clip_per_message(
    h: Harness,
) -> None:
    # Recorded on Qwen-Audio (three 30 s clips), continued on Qwen-Omni: the old turn
    # cannot be replayed with one item per message, so it is left out of the history.
    await h.turn(audio=Audio(voice(70.0)))
    out, _sink = await h.turn(audio=Audio(voice(5.0, seed=2)), model="qwen3-omni-flash")
    assert out.status == "complete"
    req = h.fake.last_request
    assert req.status == 200
    assert [a.message_index for a in req.audio] == [len(req.roles) - 1]


async def test_an_omni_thread_sends_the_parents_audio_in_its_own_message(h: Harness) -> None:
    from bot.engine.ports import ParentMessage
    from tests.engine.test_thread_seeding import Parent, in_thread

    parent = Parent("p1", ParentMessage(text=None, recordings=(Audio(voice(3.0, seed=4)),)))
    outcome, _sink = await h.turn(
        audio=Audio(voice(2.0)),
        model="qwen3-omni-flash",
        source_message_id="m2",
        **in_thread(parent),
    )
    assert outcome.status == "complete"
    req = h.fake.last_request
    assert req.roles == ["user", "user"]
    assert [(a.message_index, round(a.duration or 0)) for a in req.audio] == [(0, 3), (1, 2)]


def test_an_unknown_model_error_stays_one_short_line_naming_live_models_first() -> None:
    from bot.engine.settings import choosable_models
    from bot.errors import UnknownModel

    shown = UnknownModel("qwen-nope", allowed=choosable_models(list(CATALOG))).user_message
    assert len(shown) <= 220 and shown.endswith(", ….")
    assert "qwen3-omni-flash" in shown and RETIRED not in shown
