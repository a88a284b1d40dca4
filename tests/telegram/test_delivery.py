"""Delivery truth on Telegram: a reply is ``complete`` only once the user can read all of it.

Faults are injected at the Bot API (the fake answers with Telegram's own error bodies); each
test asserts what the chat shows afterwards and what the database says about the turn.
"""

from __future__ import annotations

from sqlalchemy import select

from bot import texts
from bot.storage.tables import Turn, TurnRole
from tests.fakes.dashscope import Reply
from tests.fakes.telegram import NOT_MODIFIED
from tests.telegram.conftest import Harness, Running

CHUNKS = ["**Here is** the answer ", "to what you asked, ", "in several ", "pieces, and complete."]
PLAIN = "Here is the answer to what you asked, in several pieces, and complete."


async def reply_statuses(harness: Harness) -> list[str]:
    async with harness.db.sessions() as session:
        rows = await session.execute(
            select(Turn.status).where(Turn.role == TurnRole.ASSISTANT.value).order_by(Turn.id)
        )
        return [str(r[0]) for r in rows.all()]


def whole(params: dict[str, object]) -> bool:
    return str(params.get("text", "")).endswith("and complete.")


async def ask_in_group(harness: Harness) -> dict[str, object]:
    tg = harness.tg
    group = harness.group()
    harness.ds.queue(Reply(chunks=CHUNKS, chunk_delay=0.05))
    tg.inject(message=tg.message(chat=group, user=harness.user(), text=f"@{tg.username} hi"))
    await harness.until(
        lambda: harness.idle() and len(harness.ds.requests) == 1 and tg.sent(group["id"])
    )
    await harness.until(harness.idle)
    return group


async def test_group_edit_refusing_entities_twice_still_shows_the_whole_reply(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    tg.fail_next("editMessageText", code=400, times=2, when=whole)  # can't parse entities
    group = await ask_in_group(harness)
    await harness.until(lambda: tg.sent_texts(group["id"]) == [PLAIN])
    refused = [c for c in tg.calls_of("editMessageText", ok=False) if whole(c.params)]
    assert len(refused) == 2
    assert await reply_statuses(harness) == ["complete"]


async def test_not_modified_while_the_text_changed_shows_the_reply_anew(
    harness: Harness, bot: Running
) -> None:
    tg = harness.tg
    tg.fail_next("editMessageText", code=400, description=NOT_MODIFIED, when=whole)
    group = await ask_in_group(harness)
    # The message that still showed part of the reply is replaced by one with all of it.
    await harness.until(lambda: tg.sent_texts(group["id"]) == [PLAIN])
    assert [c for c in tg.calls_of("editMessageText", ok=False) if whole(c.params)]
    assert await reply_statuses(harness) == ["complete"]


async def test_a_final_text_that_cannot_be_delivered_is_kept_and_delivered_later(
    harness: Harness,
) -> None:
    await harness.start(DELIVERY_TIMEOUT=1.5)
    tg = harness.tg
    ann = harness.user()
    chat = harness.private(ann)
    tg.fail_next("sendMessage", code=429, retry_after=1, times=50, when=whole)
    harness.ds.queue(Reply(chunks=CHUNKS, chunk_delay=0.01))
    tg.inject(message=tg.message(chat=chat, user=ann, text="hello"))
    await harness.until(lambda: harness.ds.requests and harness.idle())
    await harness.until(harness.idle)
    assert tg.sent_texts(chat["id"]) == []  # nothing readable reached the chat
    assert await reply_statuses(harness) == ["undelivered"]
    served = len([c for c in tg.calls_of("sendMessage", ok=False) if whole(c.params)])
    assert served >= 2  # retried, honouring retry_after, within DELIVERY_TIMEOUT

    tg.clear_faults()  # Telegram is fine again
    harness.ds.queue(Reply(chunks=["Second answer."]))
    tg.inject(message=tg.message(chat=chat, user=ann, text="are you there?"))
    await harness.until(lambda: len(tg.sent(chat["id"])) >= 2 and harness.idle())
    late, second = tg.sent_texts(chat["id"])
    assert late == f"{texts.DELIVERED_LATE}\n\n{PLAIN}"
    assert second == "Second answer."
    assert await reply_statuses(harness) == ["complete", "complete"]
    # The delivered reply is history now: the second request carried it.
    assert ("assistant", PLAIN) in [
        (r, t.replace("**", "")) for r, t in harness.ds.requests[-1].texts
    ]
