"""Per-chat settings and who may change them, usage, forget, and the shared presenters."""

from __future__ import annotations

import pytest

from bot import texts
from bot.engine import presenters
from bot.engine.ports import ChatRef
from bot.engine.settings import parse_setting_change
from bot.errors import InvalidSetting, NotChatAdmin, UnknownModel
from tests.engine.conftest import GROUP, PRIVATE, Audio, EngineFactory, Harness, voice


class Admins:
    def __init__(self, *ids: str) -> None:
        self.ids = set(ids)
        self.asked = 0

    async def is_admin(self, chat: ChatRef, user_id: str) -> bool:
        self.asked += 1
        return user_id in self.ids


def test_parse_setting_change() -> None:
    assert parse_setting_change("temp", "0,7") == {"temperature": 0.7}
    assert parse_setting_change("Top-K", "20") == {"top_k": 20}
    assert parse_setting_change("itn", "off") == {"asr_enable_itn": False}
    assert parse_setting_change("asr-language", "EN") == {"asr_language": "en"}
    # "language" is the bot's own language (CONTRACT.md): auto | en | zh.
    assert parse_setting_change("language", "zh-CN") == {"language": "zh"}
    assert parse_setting_change("lang", "auto") == {"language": None}
    assert parse_setting_change("system", "Answer in French.") == {
        "system_prompt": "Answer in French."
    }
    assert parse_setting_change("model", "default") == {"model": None}
    assert parse_setting_change("groups", "all_voice") == {"group_policy": "all_voice"}
    with pytest.raises(InvalidSetting) as err:
        parse_setting_change("temperature", "hot")
    assert err.value.user_message == "“temperature” must be a number from 0.0 to 1.99."
    with pytest.raises(InvalidSetting) as err:
        parse_setting_change("volume", "11")
    assert "volume" in err.value.user_message and "temperature" in err.value.user_message
    with pytest.raises(InvalidSetting):
        parse_setting_change("seed", "-1")


async def test_who_may_change_settings(engine_factory: EngineFactory) -> None:
    h = await engine_factory(BOT_ADMINS="telegram:99")
    admins = Admins("5")
    with pytest.raises(NotChatAdmin):
        await h.engine.update_settings(GROUP, "7", admins, temperature=0.5)
    view = await h.engine.update_settings(GROUP, "5", admins, temperature=0.5)
    assert view.temperature == 0.5 and "temperature" in view.chosen
    view = await h.engine.update_settings(GROUP, "99", Admins(), model="qwen-audio-turbo")
    assert view.model == "qwen-audio-turbo"
    # In a private chat the user is the admin of their own chat; the platform isn't asked.
    nobody = Admins()
    assert await h.engine.can_manage(PRIVATE, "7", nobody) and nobody.asked == 0
    # Anyone may read them; reading is the effective view with defaults applied.
    read = await h.engine.get_settings(GROUP)
    assert (read.model, read.temperature, read.top_p) == ("qwen-audio-turbo", 0.5, None)
    assert (await h.engine.get_settings(PRIVATE)).model == "qwen-audio-turbo-latest"
    # None resets to the default.
    view = await h.engine.update_settings(GROUP, "5", admins, model=None, temperature=None)
    assert view.model == "qwen-audio-turbo-latest" and view.chosen == frozenset()


async def test_models_outside_the_allow_list_are_refused(engine_factory: EngineFactory) -> None:
    h = await engine_factory(ALLOWED_MODELS="qwen-audio-turbo-latest,qwen3-asr-flash")
    assert [m.name for m in h.engine.allowed_models] == [
        "qwen-audio-turbo-latest",
        "qwen3-asr-flash",
    ]
    with pytest.raises(UnknownModel) as err:
        await h.engine.update_settings(PRIVATE, "7", Admins(), model="qwen-audio-chat")
    assert "qwen3-asr-flash" in err.value.user_message
    with pytest.raises(InvalidSetting):
        await h.engine.update_settings(PRIVATE, "7", Admins(), top_p=3)
    out, _sink = await h.turn(text="hi", model="qwen-audio-chat")
    assert out.status == "refused" and isinstance(out.error, UnknownModel)


async def test_usage_and_forget(h: Harness) -> None:
    await h.engine.update_settings(PRIVATE, "7", Admins(), temperature=0.2)
    await h.turn(audio=Audio(voice(4.0)))
    await h.turn(audio=Audio(voice(2.0, seed=1)), model="qwen3-asr-flash")
    await h.turn(text="thanks")
    report = await h.engine.usage(PRIVATE)
    by_model = {r.model: r for r in report.rows}
    assert by_model["qwen-audio-turbo-latest"].turns == 2
    assert by_model["qwen3-asr-flash"].turns == 1
    assert report.totals.turns == 3
    assert report.totals.audio_seconds == pytest.approx(6.0, abs=0.1)
    # 4 s on turbo, then the follow-up replays 4 s + 2 s of history (ASR bills seconds).
    assert report.totals.audio_tokens == 100 + 150
    summary = presenters.usage_summary(report)
    assert summary.startswith(texts.USAGE_HEADER) and "Total: 3 turns, 0:06 of audio" in summary

    with pytest.raises(NotChatAdmin):
        await h.engine.forget(GROUP, "7", Admins())
    counts = await h.engine.forget(PRIVATE, "7", Admins())
    assert (counts.conversations, counts.turns, counts.audio_clips, counts.usage_entries) == (
        1,
        6,
        2,
        3,
    )
    assert await h.all_turns() == [] and await h.clips() == []
    assert presenters.usage_summary(await h.engine.usage(PRIVATE)) == texts.USAGE_EMPTY
    assert (await h.engine.get_settings(PRIVATE)).temperature == 0.2  # settings stay
    assert "1 conversations, 6 messages and 2 recordings" in presenters.forget_summary(counts)
    out, _ = await h.turn(text="hello again")
    assert out.status == "complete" and h.fake.last_request.roles == ["user"]


async def test_presenters(h: Harness) -> None:
    view = await h.engine.update_settings(
        PRIVATE, "7", Admins(), temperature=0.3, system_prompt="Be brief.", asr_enable_itn=True
    )
    text = presenters.settings_summary(view)
    assert "Temperature (temperature): 0.3" in text
    assert "System prompt (system_prompt): “Be brief.”" in text
    assert "Top p (top_p): default" in text
    assert "Number formatting (ITN) (asr_enable_itn): on" in text
    assert "Model (model): qwen-audio-turbo-latest" in text
    models = presenters.model_list(h.engine.allowed_models, current="qwen3-asr-flash")
    assert "• qwen3-asr-flash (current) — transcription" in models
    assert "• qwen-audio-turbo-latest (trial) — voice chat, audio + instructions" in models
    help_tg = presenters.help_text(model="qwen-audio-turbo-latest")
    assert "/new — start a fresh conversation" in help_tg
    assert "/voicebot usage — " in presenters.help_text(model="x", prefix="/voicebot ")


def test_error_texts_spell_commands_for_the_platform() -> None:
    from bot.commands.style import SLASH, CommandStyle
    from bot.errors import ModelNotFoundError, UnknownModel, UnsupportedRequest

    slack = CommandStyle(prefix="/voicebot ")
    err = ModelNotFoundError("gone")
    assert err.shown(SLASH).endswith("pick another with /model.")
    assert err.shown(slack).endswith("pick another with /voicebot model.")
    asr = UnsupportedRequest(user_message=texts.NEEDS_AUDIO_ASR.format(model="qwen-audio-asr"))
    assert asr.shown(slack) == (
        "qwen-audio-asr only transcribes audio. Send a voice message, or choose another "
        "model with /voicebot model."
    )
    # Other braces (a name a user typed) are left alone: no str.format over user text.
    typed = UnknownModel("{0} {model", allowed=["a"])
    assert "“{0} {model”" in typed.shown(slack)
