"""``settings voice_reply`` and ``settings voice`` typed in a chat, as each platform shows them."""

from __future__ import annotations

from tests.commands.conftest import SLACK_DM, Caller
from tests.engine.conftest import Harness

OMNI = "qwen3.5-omni-flash"  # speaks with Tina, Ethan or Serena


async def test_voice_reply_and_voice_are_set_and_shown(
    tg: Caller, slack: Caller, h: Harness
) -> None:
    shown = (await tg.say("settings")).text
    assert shown is not None
    assert "Voice replies (voice_reply): auto (a voice message gets a voice reply) (" in shown
    assert "can't speak: replies stay text)" in shown
    assert "Voice (voice): none (the current model can't speak)" in shown
    assert (await tg.say("settings voice Cherry")).text == (
        "qwen-audio-turbo-latest can't speak, so it has no voices to choose from."
    )
    slack_shown = (await slack.say("settings", chat=SLACK_DM)).text
    assert slack_shown is not None and "Voice replies (voice_reply): off" in slack_shown

    # The chat chooses a model that speaks: its voices can be chosen.
    chosen = (await tg.say(f"model {OMNI}")).text
    assert chosen is not None and OMNI in chosen
    changed = (await tg.say("settings voice serena")).text
    assert changed is not None and "Voice (voice): Serena" in changed
    changed = (await tg.say("settings voice-reply always")).text
    assert changed is not None
    assert "Voice replies (voice_reply): every reply (seconds spoken show in the usage" in changed
    assert (await tg.say("settings voice_reply sometimes")).text == (
        "“voice_reply” must be one of: off, auto, always."
    )
    assert (await tg.say("settings voice Bob")).text == (
        "“voice” must be one of: Tina, Ethan, Serena."
    )
    view = await h.engine.get_settings(tg.chat)
    assert (view.model, view.voice_reply, view.voice) == (OMNI, "always", "Serena")
    reset = (await tg.say("settings voice default")).text
    assert reset is not None and "Voice (voice): Tina" in reset
