"""What the model is sent follows the chat's language too: the default instruction of a
voice-only turn on a model without voice chat."""

from __future__ import annotations

from bot import texts
from bot.engine.ports import ChatRef
from bot.i18n import Lang, tr
from tests.engine.conftest import PRIVATE, Harness, voice
from tests.engine.conftest import Audio as Clip


class _Nobody:
    async def is_admin(self, chat: ChatRef, user_id: str) -> bool:
        return False


async def test_a_chinese_chat_sends_the_default_instruction_in_chinese(h: Harness) -> None:
    await h.engine.update_settings(PRIVATE, "7", _Nobody(), model="qwen-audio-turbo", language="zh")
    outcome, _ = await h.turn(audio=Clip(voice(1.5)))
    assert outcome.status == "complete"
    assert h.fake.last_request.texts[-1] == ("user", tr(texts.VOICE_CHAT_INSTRUCTION, Lang.ZH))
    assert h.fake.last_request.texts[-1][1].startswith("请听这段语音")

    # "auto": each sender's own language (here an English one).
    await h.engine.update_settings(PRIVATE, "7", _Nobody(), language="auto")
    await h.turn(audio=Clip(voice(1.5)), user_language="en-GB")
    assert h.fake.last_request.texts[-1] == ("user", texts.VOICE_CHAT_INSTRUCTION)
