"""Telegram acceptance tests: the real ``voicebot run`` against fake Bot API and DashScope servers.

Black-box: the bot is a subprocess configured only through the documented environment
variables, and every assertion is about what a Telegram user would see in the chat (or what
the bot sent over the wire to Telegram and DashScope).
"""

from __future__ import annotations

import json
import math
import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.telegram_server import (
    ApiError,
    Call,
    DashScopeScript,
    FakeDashScope,
    FakeServers,
    FakeTelegram,
)
from tests.audio.synth import FORMATS, encode, speech_like
from tests.process import LoggedBot, clean_env, patience

# One worker runs the whole module: one ``voicebot run`` serves all its tests (module
# fixture), instead of one per xdist worker (see tests/acceptance/conftest.py).
pytestmark = pytest.mark.xdist_group("telegram-blackbox")

WEBHOOK_SECRET = "qa_Secret-123"


class TelegramBotProcess(LoggedBot):
    """``voicebot run`` as a subprocess, in its own working directory (HTTP_PORT=0, JSON logs
    in ``bot.log``)."""

    def __init__(self, workdir: Path, servers: FakeServers, **extra: str) -> None:
        env = clean_env()
        env.update(
            TELEGRAM_BOT_TOKEN=servers.telegram.token,
            TELEGRAM_API_BASE=servers.telegram_base,
            DASHSCOPE_API_KEY=servers.dashscope.api_key,
            DASHSCOPE_BASE_URL=servers.dashscope_base,
            DASHSCOPE_MAX_RETRIES="1",
            # No TTS voice notes for the text-only model here (tests/telegram covers them).
            TTS_MODEL="off",
            DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'bot.db'}",
            HTTP_HOST="127.0.0.1",
            TELEGRAM_EDIT_INTERVAL="0.2",
            USER_RATE_LIMIT="0",
            AUDIO_WORKERS="1",
            LOG_LEVEL="INFO",
        )
        env.update(extra)
        super().__init__(env, cwd=workdir)

    def wait_handled(self, update: dict[str, Any], *, times: int = 1) -> None:
        """Until the bot is done with ``update`` (its turn finished, if it made one), or
        with ``times`` deliveries of it.

        The bot logs the end of every stored update's job (``telegram.update_done``) and
        every delivery it drops as a duplicate; the ids of one bot are unique, so the
        line names this update only."""
        uid = update["update_id"]
        ends = ("telegram.update_done", "telegram.duplicate_update")
        self.wait_log(lambda e: e.get("event") in ends and e.get("update_id") == uid, count=times)

    def post(self, path: str, body: Any, headers: dict[str, str]) -> int:
        req = urllib.request.Request(
            f"{self.base}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status: int = r.status
                return status
        except urllib.error.HTTPError as e:
            return e.code

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; the exit status and how long it took to exit."""
        return self.stop(signal.SIGTERM)


# ---------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def telegram_voice() -> bytes:
    return encode(speech_like(1.5), FORMATS["voice.ogg"])


@pytest.fixture(scope="module")
def telegram_env(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[FakeServers, TelegramBotProcess]]:
    """One polling bot for the module; each test talks in its own chats."""
    servers = FakeServers().start()
    servers.dashscope.scripts += [
        DashScopeScript(
            "QA-THROTTLE",
            429,
            "Throttling.RateQuota",
            "Requests rate limit exceeded, please try again later.",
        ),
        DashScopeScript(
            "QA-INSPECT",
            400,
            "DataInspectionFailed",
            "Input or output data may contain inappropriate content.",
        ),
        DashScopeScript("QA-EMOJI", chunks=("😀" * 1500, "🎤" * 1500, "🔊" * 1500)),
        DashScopeScript("QA-MARKDOWN", chunks=("😀 **Bold", "** and `co", "de` done")),
        DashScopeScript("QA-SPACES", chunks=("Hello", " ", "\n", " there")),
        DashScopeScript("QA-SLOW", chunks=tuple(f"word{i} " for i in range(40))),
        DashScopeScript(
            "QA-MIDSTREAM",
            mid_stream_error=True,
            code="DataInspectionFailed",
            message="Output data may contain inappropriate content.",
            chunks=("Well, ", "this is "),
        ),
    ]
    bot = TelegramBotProcess(tmp_path_factory.mktemp("telegram_polling"), servers)
    try:
        bot.wait_ready()
        servers.telegram.wait_for(
            lambda: servers.telegram.calls_to("getUpdates", ok=None), what="first getUpdates"
        )
        yield servers, bot
    finally:
        bot.close()
        servers.stop()


@pytest.fixture
def tg(telegram_env: tuple[FakeServers, TelegramBotProcess]) -> FakeTelegram:
    return telegram_env[0].telegram


@pytest.fixture
def ds(telegram_env: tuple[FakeServers, TelegramBotProcess]) -> FakeDashScope:
    return telegram_env[0].dashscope


@pytest.fixture
def bot(telegram_env: tuple[FakeServers, TelegramBotProcess]) -> TelegramBotProcess:
    return telegram_env[1]


_ids = iter(range(7001, 9000))


def new_user() -> dict[str, Any]:
    uid = next(_ids)
    return {"id": uid, "is_bot": False, "first_name": f"Tester{uid}", "language_code": "en"}


def private_chat(user: dict[str, Any]) -> dict[str, Any]:
    return {"id": user["id"], "type": "private", "first_name": user["first_name"]}


def group_chat() -> dict[str, Any]:
    return {"id": -1001000000000 - next(_ids), "type": "supergroup", "title": "QA group"}


def voice_fields(
    tg: FakeTelegram, data: bytes, *, claimed_size: int | None = None
) -> dict[str, Any]:
    f = tg.add_file(data, claimed_size=claimed_size)
    return {
        "voice": {
            "file_id": f.file_id,
            "file_unique_id": f.file_unique_id,
            "duration": 2,
            "mime_type": "audio/ogg",
            "file_size": f.file_size,
        }
    }


def final_texts(tg: FakeTelegram, chat_id: int) -> list[str]:
    return [m.text for m in tg.bot_messages(chat_id)]


def wait_text(tg: FakeTelegram, chat_id: int, needle: str, timeout: float | None = None) -> str:
    timeout = patience(20) if timeout is None else timeout

    def found() -> str | None:
        return next((t for t in final_texts(tg, chat_id) if needle in t), None)

    result: str = tg.wait_for(found, timeout=timeout, what=f"{needle!r} in chat {chat_id}")
    return result


def wait_any_message(tg: FakeTelegram, chat_id: int, after: int = 0) -> list[str]:
    def some() -> list[str]:
        return [m.text for m in tg.bot_messages(chat_id) if m.message_id > after]

    result: list[str] = tg.wait_for(
        some, timeout=patience(20), what=f"a bot message in chat {chat_id}"
    )
    return result


def last_user_content(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body["input"]["messages"]
    user = [m for m in messages if m["role"] == "user"]
    content: list[dict[str, Any]] = user[-1]["content"]
    return content


def audio_parts(content: list[dict[str, Any]]) -> list[str]:
    return [str(p["audio"]) for p in content if isinstance(p, dict) and "audio" in p]


def command(
    tg: FakeTelegram, chat: dict[str, Any], user: dict[str, Any], text: str
) -> dict[str, Any]:
    name = text.split()[0]
    return tg.push_message(
        tg.user_message(
            chat,
            user,
            text=text,
            entities=[{"type": "bot_command", "offset": 0, "length": len(name)}],
        )
    )


def callback(tg: FakeTelegram, user: dict[str, Any], message: Any, data: str) -> dict[str, Any]:
    msg = {
        "message_id": message.message_id,
        "date": int(time.time()),
        "chat": {"id": message.chat_id, "type": "private" if message.chat_id > 0 else "supergroup"},
        "from": tg.bot_user,
        "text": message.text,
        "reply_markup": message.reply_markup,
    }
    cq = {
        "id": f"cbq{next(_ids)}",
        "from": user,
        "chat_instance": f"ci{message.chat_id}",
        "message": msg,
        "data": data,
    }
    return tg.push(tg.make_update(callback_query=cq))


# ---------------------------------------------------------------------------------------
# Private chats


def test_telegram_private_voice_note_typing_drafts_then_final(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    before = len(ds.snapshot())
    tg.push_message(tg.user_message(chat, user, **voice_fields(tg, telegram_voice)))

    final = wait_text(tg, chat["id"], ds.reply_text)
    assert final.strip() == ds.reply_text.strip()

    actions = tg.calls_to("sendChatAction", chat_id=chat["id"])
    assert actions and actions[0].get("action") in ("typing", "record_voice")
    drafts = tg.calls_to("sendMessageDraft", chat_id=chat["id"])
    assert drafts, "a private reply streams with sendMessageDraft"
    assert all(int(d.get("draft_id")) != 0 for d in drafts)
    assert any(d.get("text") and d.get("text") in ds.reply_text for d in drafts)
    sends = [c for c in tg.calls_to("sendMessage", chat_id=chat["id"])]
    assert len(sends) == 1, "one final message"
    assert sends[0].at > drafts[0].at
    assert not tg.calls_to("sendMessageDraft", chat_id=chat["id"], ok=False)

    requests = ds.snapshot()[before:]
    assert len(requests) == 1
    audio = audio_parts(last_user_content(requests[0]))
    assert audio and audio[0].startswith("data:")


def test_telegram_caption_is_the_instruction(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    before = len(ds.snapshot())
    caption = "Which language is spoken here? Answer in one word."
    tg.push_message(
        tg.user_message(chat, user, caption=caption, **voice_fields(tg, telegram_voice))
    )
    wait_text(tg, chat["id"], ds.reply_text)
    body = ds.snapshot()[before]
    content = last_user_content(body)
    assert any(p.get("text") and caption in p["text"] for p in content)
    audio = audio_parts(content)
    assert audio and re.match(r"data:[\w/.+-]*;base64,[A-Za-z0-9+/]+=*$", audio[0])


def test_telegram_text_reply_to_a_voice_note_analyses_it(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    voice_msg = tg.user_message(chat, user, **voice_fields(tg, telegram_voice))
    tg.push_message(voice_msg)
    wait_text(tg, chat["id"], ds.reply_text)
    first_reply = max(m.message_id for m in tg.bot_messages(chat["id"]))

    before = len(ds.snapshot())
    question = "How fast does the speaker talk?"
    reply = tg.user_message(chat, user, text=question, reply_to_message=voice_msg)
    tg.push_message(reply)
    tg.wait_for(lambda: len(ds.snapshot()) > before, what="a model request for the text reply")
    wait_any_message(tg, chat["id"], after=first_reply)
    content = last_user_content(ds.snapshot()[before])
    assert any(p.get("text") and question in p["text"] for p in content)
    assert audio_parts(content), "the replied-to voice note is sent with the question"


def test_telegram_file_over_20_mb_is_refused_without_download(
    tg: FakeTelegram, ds: FakeDashScope, bot: TelegramBotProcess, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    before = len(ds.snapshot())
    fields = voice_fields(tg, telegram_voice, claimed_size=25 * 1024 * 1024)
    update = tg.push_message(tg.user_message(chat, user, **fields))
    texts = wait_any_message(tg, chat["id"])
    assert texts[0].strip()
    assert re.search(r"20\s?MB|too (big|large)|large", texts[0], re.I), texts[0]
    bot.wait_handled(update)
    assert final_texts(tg, chat["id"]) == texts[:1]
    file_id = fields["voice"]["file_id"]
    assert not [c for c in tg.calls_to("getFile", ok=None) if c.get("file_id") == file_id]
    assert len(ds.snapshot()) == before


# ---------------------------------------------------------------------------------------
# Groups


def test_telegram_group_plain_voice_ignored_mention_answered(
    tg: FakeTelegram, ds: FakeDashScope, bot: TelegramBotProcess, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = group_chat()
    before = len(ds.snapshot())
    plain = voice_fields(tg, telegram_voice)
    bot.wait_handled(tg.push_message(tg.user_message(chat, user, **plain)))
    assert not tg.bot_messages(chat["id"])
    assert not [
        c for c in tg.calls_to("getFile", ok=None) if c.get("file_id") == plain["voice"]["file_id"]
    ]
    assert len(ds.snapshot()) == before

    mention = f"@{tg.bot_username} what is said here?"
    tg.push_message(
        tg.user_message(
            chat,
            user,
            caption=mention,
            caption_entities=[{"type": "mention", "offset": 0, "length": len(tg.bot_username) + 1}],
            **voice_fields(tg, telegram_voice),
        )
    )
    wait_text(tg, chat["id"], ds.reply_text)
    assert len(ds.snapshot()) == before + 1
    assert not tg.calls_to("sendMessageDraft", chat_id=chat["id"], ok=None), "no drafts in groups"
    assert len(tg.bot_messages(chat["id"])) == 1


def test_telegram_group_voice_replying_to_the_bot_is_answered(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = group_chat()
    # An earlier answer of the bot in this group, which the user now replies to by voice.
    command(tg, chat, user, f"/help@{tg.bot_username}")
    help_text = wait_any_message(tg, chat["id"])
    bot_msg = tg.bot_messages(chat["id"])[-1]
    reply_to = {
        "message_id": bot_msg.message_id,
        "date": int(time.time()),
        "chat": chat,
        "from": tg.bot_user,
        "text": help_text[-1],
    }
    tg.push_message(
        tg.user_message(chat, user, reply_to_message=reply_to, **voice_fields(tg, telegram_voice))
    )
    wait_text(tg, chat["id"], ds.reply_text)


def test_telegram_group_edit_429_is_respected_and_reply_completes(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = group_chat()
    fail_in_chat(tg, "editMessageText", chat, retry_after_1())
    tg.push_message(
        tg.user_message(
            chat,
            user,
            caption=f"@{tg.bot_username} hi",
            caption_entities=[{"type": "mention", "offset": 0, "length": len(tg.bot_username) + 1}],
            **voice_fields(tg, telegram_voice),
        )
    )
    wait_text(tg, chat["id"], ds.reply_text)
    edits = tg.calls_to("editMessageText", chat_id=chat["id"], ok=None)
    limited = [c for c in edits if c.ok is False]
    assert limited, "the fake rejected one edit with 429"
    later = [c for c in edits if c.at > limited[0].at]
    assert later and later[0].at - limited[0].at >= 0.9, "no edit before retry_after passed"


def retry_after_1() -> ApiError:
    """Telegram's flood-control answer, asking to wait one second."""
    return ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1})


def fail_in_chat(
    tg: FakeTelegram, method: str, chat: dict[str, Any], error: ApiError, *, times: int = 1
) -> None:
    """Answer ``method`` calls for ``chat`` (only) with ``error``."""
    chat_id = str(chat["id"])
    tg.inject(method, error, match=lambda p: str(p.get("chat_id")) == chat_id, times=times)


# ---------------------------------------------------------------------------------------
# Flood control and model errors in private chats


def test_telegram_send_429_is_respected_and_reply_arrives(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    fail_in_chat(tg, "sendMessage", chat, retry_after_1())
    tg.push_message(tg.user_message(chat, user, **voice_fields(tg, telegram_voice)))
    wait_text(tg, chat["id"], ds.reply_text)
    sends = tg.calls_to("sendMessage", chat_id=chat["id"], ok=None)
    assert sends[0].ok is False and sends[-1].ok is True
    assert sends[1].at - sends[0].at >= 0.9, "no retry before retry_after passed"
    assert final_texts(tg, chat["id"]).count(ds.reply_text) == 1


def _error_reply(tg: FakeTelegram, bot: TelegramBotProcess, update: dict[str, Any]) -> str:
    chat_id = update["message"]["chat"]["id"]
    wait_any_message(tg, chat_id)
    bot.wait_handled(update)  # the turn is over: what the chat shows now is final
    texts = final_texts(tg, chat_id)
    assert len(texts) == 1, texts
    text = texts[0]
    assert 0 < len(text) <= 500, text
    assert "Traceback" not in text and "request_id" not in text and "{" not in text
    return text


@pytest.mark.parametrize(
    ("marker", "pattern"),
    [
        ("QA-THROTTLE", r"busy|rate|limit|later|again|many"),
        ("QA-INSPECT", r"content|inappropriate|filter|safety|moderation|declin|refus|can't|cannot"),
    ],
)
def test_telegram_dashscope_error_becomes_a_short_message(
    tg: FakeTelegram,
    ds: FakeDashScope,
    bot: TelegramBotProcess,
    telegram_voice: bytes,
    marker: str,
    pattern: str,
) -> None:
    user = new_user()
    chat = private_chat(user)
    before = len(ds.snapshot())
    update = tg.push_message(
        tg.user_message(
            chat, user, caption=f"{marker} summarise", **voice_fields(tg, telegram_voice)
        )
    )
    text = _error_reply(tg, bot, update)
    assert re.search(pattern, text, re.I), text
    # The model was asked (and answered with the scripted error).
    asked = ds.snapshot()[before:]
    assert asked and all(marker in FakeDashScope.texts(r) for r in asked)


def test_telegram_dashscope_error_mid_stream_is_reported(
    tg: FakeTelegram, ds: FakeDashScope, bot: TelegramBotProcess, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    before = len(ds.snapshot())
    update = tg.push_message(
        tg.user_message(chat, user, caption="QA-MIDSTREAM go", **voice_fields(tg, telegram_voice))
    )
    wait_any_message(tg, chat["id"])
    bot.wait_handled(update)
    texts = final_texts(tg, chat["id"])
    assert texts
    assert any(t.strip() != "Well, this is" for t in texts), "the user is told the reply broke off"
    # The stream was the scripted one, cut by its error event (text already streamed: once).
    (asked,) = ds.snapshot()[before:]
    assert "QA-MIDSTREAM" in FakeDashScope.texts(asked)


# ---------------------------------------------------------------------------------------
# Commands


def test_telegram_start_and_help(tg: FakeTelegram) -> None:
    user = new_user()
    chat = private_chat(user)
    command(tg, chat, user, "/start")
    start = wait_any_message(tg, chat["id"])[0]
    assert re.search(r"voice", start, re.I)
    last = tg.bot_messages(chat["id"])[-1].message_id
    command(tg, chat, user, "/help")
    help_text = wait_any_message(tg, chat["id"], after=last)[0]
    for name in ("/new", "/model", "/usage", "/forget"):
        assert name in help_text


def _keyboard_buttons(markup: Any) -> list[dict[str, Any]]:
    assert markup and "inline_keyboard" in markup, markup
    return [b for row in markup["inline_keyboard"] for b in row]


def test_telegram_model_keyboard_switches_model(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    command(tg, chat, user, "/model")
    text = wait_any_message(tg, chat["id"])[0]
    assert "qwen-audio-turbo-latest" in text, "the current (default) model is shown"
    message = tg.bot_messages(chat["id"])[-1]
    buttons = _keyboard_buttons(message.reply_markup)
    target = next(b for b in buttons if "qwen2-audio-instruct" in b["text"])
    assert target.get("callback_data")

    callback(tg, user, message, target["callback_data"])
    tg.wait_for(lambda: tg.calls_to("answerCallbackQuery"), what="answerCallbackQuery")

    before = len(ds.snapshot())
    tg.push_message(tg.user_message(chat, user, **voice_fields(tg, telegram_voice)))
    tg.wait_for(lambda: len(ds.snapshot()) > before, what="a model request")
    assert ds.snapshot()[before]["model"] == "qwen2-audio-instruct"
    wait_text(tg, chat["id"], ds.reply_text)


def test_telegram_model_by_name(tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes) -> None:
    user = new_user()
    chat = private_chat(user)
    command(tg, chat, user, "/model qwen-audio-turbo-2024-12-04")
    wait_any_message(tg, chat["id"])
    before = len(ds.snapshot())
    tg.push_message(tg.user_message(chat, user, **voice_fields(tg, telegram_voice)))
    tg.wait_for(lambda: len(ds.snapshot()) > before, what="a model request")
    assert ds.snapshot()[before]["model"] == "qwen-audio-turbo-2024-12-04"


def test_telegram_new_starts_a_fresh_conversation(
    tg: FakeTelegram, ds: FakeDashScope, bot: TelegramBotProcess, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    tg.push_message(tg.user_message(chat, user, **voice_fields(tg, telegram_voice)))
    wait_text(tg, chat["id"], ds.reply_text)

    before = len(ds.snapshot())
    last = tg.bot_messages(chat["id"])[-1].message_id
    follow_up = tg.push_message(tg.user_message(chat, user, text="And what else?"))
    tg.wait_for(lambda: len(ds.snapshot()) > before, what="follow-up request")
    roles = [m["role"] for m in ds.snapshot()[before]["input"]["messages"]]
    assert "assistant" in roles, "a follow-up carries the conversation"
    wait_any_message(tg, chat["id"], after=last)
    bot.wait_handled(follow_up)

    last = tg.bot_messages(chat["id"])[-1].message_id
    command(tg, chat, user, "/new")
    wait_any_message(tg, chat["id"], after=last)

    before = len(ds.snapshot())
    tg.push_message(tg.user_message(chat, user, **voice_fields(tg, telegram_voice)))
    tg.wait_for(lambda: len(ds.snapshot()) > before, what="request after /new")
    roles = [m["role"] for m in ds.snapshot()[before]["input"]["messages"]]
    assert "assistant" not in roles and roles.count("user") == 1


def test_telegram_usage_and_forget(
    tg: FakeTelegram, ds: FakeDashScope, bot: TelegramBotProcess, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    tg.push_message(tg.user_message(chat, user, **voice_fields(tg, telegram_voice)))
    wait_text(tg, chat["id"], ds.reply_text)

    last = tg.bot_messages(chat["id"])[-1].message_id
    command(tg, chat, user, "/usage")
    usage = "\n".join(wait_any_message(tg, chat["id"], after=last))
    assert "qwen-audio-turbo-latest" in usage
    assert re.search(r"\d", usage)

    last = tg.bot_messages(chat["id"])[-1].message_id
    command(tg, chat, user, "/forget")
    wait_any_message(tg, chat["id"], after=last)
    confirm = tg.bot_messages(chat["id"])[-1]
    buttons = _keyboard_buttons(confirm.reply_markup)
    assert len(buttons) >= 2, "confirm and cancel"
    yes = buttons[0]
    calls_before = len(tg.calls_to("answerCallbackQuery"))
    press = callback(tg, user, confirm, yes["callback_data"])
    tg.wait_for(
        lambda: len(tg.calls_to("answerCallbackQuery")) > calls_before, what="answerCallbackQuery"
    )
    bot.wait_handled(press)  # the chat is forgotten

    last = tg.bot_messages(chat["id"])[-1].message_id
    command(tg, chat, user, "/usage")
    after = "\n".join(wait_any_message(tg, chat["id"], after=last))
    assert after != usage, "usage detail is gone after /forget"


# ---------------------------------------------------------------------------------------
# Webhook mode and shutdown (a process of their own)


def test_telegram_webhook_secret_dedupe_and_sigterm(tmp_path: Path, telegram_voice: bytes) -> None:
    servers = FakeServers().start()
    tg, ds = servers.telegram, servers.dashscope
    ds.chunk_delay = 0.3
    bot = TelegramBotProcess(
        tmp_path,
        servers,
        TELEGRAM_MODE="webhook",
        TELEGRAM_WEBHOOK_URL="https://bot.example.com/telegram/webhook",
        TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    try:
        bot.wait_ready()
        hook = tg.wait_for(lambda: tg.calls_to("setWebhook"), what="setWebhook")[0]
        assert isinstance(hook, Call)
        assert hook.get("url") == "https://bot.example.com/telegram/webhook"
        assert hook.get("secret_token") == WEBHOOK_SECRET

        user = new_user()
        chat = private_chat(user)
        update = tg.make_update(
            message=tg.user_message(chat, user, **voice_fields(tg, telegram_voice))
        )
        path = "/telegram/webhook"
        header = "X-Telegram-Bot-Api-Secret-Token"
        # Refused: the update never reaches the bot (the checks at the end show it was not
        # answered more than once, from the accepted delivery).
        assert bot.post(path, update, {header: "wrong"}) in (401, 403)
        assert bot.post(path, update, {}) in (401, 403)
        assert not ds.snapshot() and not tg.bot_messages(chat["id"])

        assert bot.post(path, update, {header: WEBHOOK_SECRET}) == 200
        assert not tg.calls_to("sendMessage", chat_id=chat["id"], ok=None), (
            "the webhook is acknowledged at once, not after the whole reply"
        )
        assert bot.post(path, update, {header: WEBHOOK_SECRET}) == 200  # Telegram's retry
        wait_text(tg, chat["id"], ds.reply_text)
        # The bot is done with both deliveries, and knew the second for the same update.
        bot.wait_handled(update, times=2)
        assert bot.wait_log(
            lambda e: (
                e.get("event") == "telegram.duplicate_update"
                and e.get("update_id") == update["update_id"]
            )
        )
        assert len(ds.snapshot()) == 1, "the same update is answered once"
        assert final_texts(tg, chat["id"]) == [ds.reply_text]
        assert not tg.calls_to("getUpdates", ok=None), "no polling in webhook mode"

        # SIGTERM while a reply is streaming: exit 0 within 10 s, and the user is not left
        # without a message.
        chat2 = private_chat(new_user())
        user2 = {"id": chat2["id"], "is_bot": False, "first_name": "T"}
        update2 = tg.make_update(
            message=tg.user_message(chat2, user2, **voice_fields(tg, telegram_voice))
        )
        assert bot.post(path, update2, {header: WEBHOOK_SECRET}) == 200
        tg.wait_for(lambda: tg.calls_to("sendMessageDraft", chat_id=chat2["id"]), what="a draft")
        code, took = bot.terminate()
        assert code == 0, bot.output()
        assert took < 10
        assert tg.bot_messages(chat2["id"]), "the reply in flight was finished or closed"
    finally:
        bot.close()
        servers.stop()


# ---------------------------------------------------------------------------------------
# Long and formatted replies, topics, stop button, platform errors


def _mention_voice(
    tg: FakeTelegram,
    chat: dict[str, Any],
    user: dict[str, Any],
    voice: bytes,
    text: str,
    **extra: Any,
) -> dict[str, Any]:
    caption = f"@{tg.bot_username} {text}"
    return tg.user_message(
        chat,
        user,
        caption=caption,
        caption_entities=[{"type": "mention", "offset": 0, "length": len(tg.bot_username) + 1}],
        **voice_fields(tg, voice),
        **extra,
    )


def _no_emoji_lost(tg: FakeTelegram, chat_id: int) -> None:
    expected = "😀" * 1500 + "🎤" * 1500 + "🔊" * 1500

    def complete() -> bool:
        joined = "".join("".join(t.split()) for t in final_texts(tg, chat_id))
        return joined == expected

    tg.wait_for(complete, what="the whole long reply, split under 4096 UTF-16 units")
    assert len(tg.bot_messages(chat_id)) >= 3


def test_telegram_long_reply_is_split_by_utf16_length_private(
    tg: FakeTelegram, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    tg.push_message(
        tg.user_message(chat, user, caption="QA-EMOJI please", **voice_fields(tg, telegram_voice))
    )
    _no_emoji_lost(tg, chat["id"])
    bad_drafts = [c for c in tg.calls_to("sendMessageDraft", chat_id=chat["id"], ok=False)]
    assert not bad_drafts, [c.error for c in bad_drafts]


def test_telegram_long_reply_is_split_by_utf16_length_group(
    tg: FakeTelegram, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = group_chat()
    tg.push_message(_mention_voice(tg, chat, user, telegram_voice, "QA-EMOJI please"))
    _no_emoji_lost(tg, chat["id"])
    failed = tg.calls_to("editMessageText", chat_id=chat["id"], ok=False)
    failed += tg.calls_to("sendMessage", chat_id=chat["id"], ok=False)
    assert not failed, [c.error for c in failed]


def test_telegram_markdown_becomes_entities_with_utf16_offsets(
    tg: FakeTelegram, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    tg.push_message(
        tg.user_message(chat, user, caption="QA-MARKDOWN now", **voice_fields(tg, telegram_voice))
    )
    wait_text(tg, chat["id"], "done")
    message = tg.bot_messages(chat["id"])[-1]
    assert message.text.strip() == "😀 Bold and code done"
    kinds = {e["type"]: (e["offset"], e["length"]) for e in message.entities}
    assert kinds.get("bold") == (3, 4), message.entities
    assert kinds.get("code") == (message.text.index("code") + 1, 4), message.entities
    assert not tg.calls_to("sendMessageDraft", chat_id=chat["id"], ok=False)


def test_telegram_group_identical_edit_is_harmless(
    tg: FakeTelegram, bot: TelegramBotProcess, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = group_chat()
    update = tg.push_message(_mention_voice(tg, chat, user, telegram_voice, "QA-SPACES"))
    wait_text(tg, chat["id"], "there")
    bot.wait_handled(update)
    texts = final_texts(tg, chat["id"])
    assert len(texts) == 1 and texts[0].split() == ["Hello", "there"]


def test_telegram_forum_topic_reply_stays_in_the_topic(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = {**group_chat(), "is_forum": True}
    tg.push_message(
        _mention_voice(
            tg, chat, user, telegram_voice, "hi", message_thread_id=77, is_topic_message=True
        )
    )
    wait_text(tg, chat["id"], ds.reply_text)
    sends = tg.calls_to("sendMessage", chat_id=chat["id"])
    assert sends and all(c.get("message_thread_id") == "77" for c in sends)


def test_telegram_stop_button_ends_the_reply(
    tg: FakeTelegram, bot: TelegramBotProcess, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    updates = [c for c in tg.calls_to("getUpdates", ok=None) if c.get("allowed_updates")]
    assert updates and "stopped_message_generation" in updates[-1].json("allowed_updates")
    voice = tg.push_message(
        tg.user_message(chat, user, caption="QA-SLOW talk", **voice_fields(tg, telegram_voice))
    )
    draft = tg.wait_for(
        lambda: tg.calls_to("sendMessageDraft", chat_id=chat["id"]), what="a draft"
    )[0]
    tg.push(
        tg.make_update(
            stopped_message_generation={"chat": chat, "draft_id": int(draft.get("draft_id"))}
        )
    )
    wait_any_message(tg, chat["id"])
    bot.wait_handled(voice)  # the stopped turn is over
    texts = final_texts(tg, chat["id"])
    assert len(texts) == 1
    assert "word39" not in texts[0], "generation stopped before the model finished"
    drafts_after = [
        c
        for c in tg.calls_to("sendMessageDraft", chat_id=chat["id"])
        if c.at > tg.calls_to("sendMessage", chat_id=chat["id"])[0].at
    ]
    assert not drafts_after


def test_telegram_draft_429_still_delivers_the_final_message(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    fail_in_chat(tg, "sendMessageDraft", chat, retry_after_1())
    tg.push_message(tg.user_message(chat, user, **voice_fields(tg, telegram_voice)))
    wait_text(tg, chat["id"], ds.reply_text)
    assert final_texts(tg, chat["id"]) == [ds.reply_text]
    assert len(tg.served("sendMessageDraft", chat_id=chat["id"])) == 1


def test_telegram_blocked_user_does_not_stop_the_bot(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    blocked = new_user()
    chat = private_chat(blocked)
    forbidden = ApiError(403, "Forbidden: bot was blocked by the user")
    for method in ("sendChatAction", "sendMessageDraft", "sendMessage"):
        fail_in_chat(tg, method, chat, forbidden, times=50)
    tg.push_message(tg.user_message(chat, blocked, **voice_fields(tg, telegram_voice)))
    tg.wait_for(
        lambda: tg.calls_to("sendMessage", chat_id=chat["id"], ok=False), what="a refused send"
    )
    assert tg.served("sendMessage", chat_id=chat["id"])
    assert not tg.bot_messages(chat["id"])

    user = new_user()
    other = private_chat(user)
    tg.push_message(tg.user_message(other, user, **voice_fields(tg, telegram_voice)))
    wait_text(tg, other["id"], ds.reply_text)


def test_telegram_non_audio_document_gets_a_short_message(
    tg: FakeTelegram, ds: FakeDashScope, bot: TelegramBotProcess
) -> None:
    user = new_user()
    chat = private_chat(user)
    before = len(ds.snapshot())
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    f = tg.add_file(png, ext="png")
    doc = {
        "document": {
            "file_id": f.file_id,
            "file_unique_id": f.file_unique_id,
            "file_name": "picture.png",
            "mime_type": "image/png",
            "file_size": len(png),
        }
    }
    update = tg.push_message(tg.user_message(chat, user, **doc))
    texts = wait_any_message(tg, chat["id"])
    assert 0 < len(texts[0]) <= 500
    bot.wait_handled(update)
    assert final_texts(tg, chat["id"]) == texts[:1]
    assert len(ds.snapshot()) == before


# ---------------------------------------------------------------------------------------
# More group behaviour, ordering, admin rights


def test_telegram_group_mention_in_reply_to_a_voice_note_analyses_it(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    author, asker = new_user(), new_user()
    chat = group_chat()
    voice_msg = tg.user_message(chat, author, **voice_fields(tg, telegram_voice))
    tg.push_message(voice_msg)
    before = len(ds.snapshot())
    text = f"@{tg.bot_username} what mood is the speaker in?"
    tg.push_message(
        tg.user_message(
            chat,
            asker,
            text=text,
            entities=[{"type": "mention", "offset": 0, "length": len(tg.bot_username) + 1}],
            reply_to_message=voice_msg,
        )
    )
    wait_text(tg, chat["id"], ds.reply_text)
    requests = ds.snapshot()[before:]
    assert len(requests) == 1, "the plain voice note alone was not answered"
    content = last_user_content(requests[0])
    assert audio_parts(content)
    assert any("what mood" in p.get("text", "") for p in content)


def test_telegram_group_command_for_another_bot_is_ignored(
    tg: FakeTelegram, bot: TelegramBotProcess
) -> None:
    user = new_user()
    chat = group_chat()
    bot.wait_handled(command(tg, chat, user, "/help@some_other_bot"))
    assert not tg.bot_messages(chat["id"])
    command(tg, chat, user, f"/help@{tg.bot_username}")
    texts = wait_any_message(tg, chat["id"])
    assert len(texts) == 1 and "/new" in texts[0]


def test_telegram_group_model_button_needs_an_admin(
    tg: FakeTelegram, ds: FakeDashScope, bot: TelegramBotProcess, telegram_voice: bytes
) -> None:
    member, admin = new_user(), new_user()
    chat = group_chat()
    tg.chat_members[(chat["id"], admin["id"])] = "administrator"
    command(tg, chat, member, f"/model@{tg.bot_username}")
    wait_any_message(tg, chat["id"])
    message = tg.bot_messages(chat["id"])[-1]
    button = next(
        b for b in _keyboard_buttons(message.reply_markup) if "qwen2-audio-instruct" in b["text"]
    )
    answered = len(tg.calls_to("answerCallbackQuery"))
    press = callback(tg, member, message, button["callback_data"])
    tg.wait_for(lambda: len(tg.calls_to("answerCallbackQuery")) > answered, what="an answer")
    bot.wait_handled(press)

    before = len(ds.snapshot())
    tg.push_message(_mention_voice(tg, chat, member, telegram_voice, "hi"))
    tg.wait_for(lambda: len(ds.snapshot()) > before, what="a model request")
    assert ds.snapshot()[before]["model"] == "qwen-audio-turbo-latest", "a member cannot switch"
    wait_text(tg, chat["id"], ds.reply_text)

    answered = len(tg.calls_to("answerCallbackQuery"))
    press = callback(tg, admin, message, button["callback_data"])
    tg.wait_for(lambda: len(tg.calls_to("answerCallbackQuery")) > answered, what="an answer")
    bot.wait_handled(press)
    before = len(ds.snapshot())
    tg.push_message(_mention_voice(tg, chat, member, telegram_voice, "again"))
    tg.wait_for(lambda: len(ds.snapshot()) > before, what="a model request")
    assert ds.snapshot()[before]["model"] == "qwen2-audio-instruct", "an admin can switch"


def test_telegram_anonymous_group_admin_is_answered(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    chat = group_chat()
    anonymous = {
        "id": 1087968824,
        "is_bot": True,
        "first_name": "Group",
        "username": "GroupAnonymousBot",
    }
    tg.push_message(_mention_voice(tg, chat, anonymous, telegram_voice, "hi", sender_chat=chat))
    wait_text(tg, chat["id"], ds.reply_text)


def test_telegram_two_voice_notes_in_a_row_are_answered_in_order(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    before = len(ds.snapshot())
    tg.push_message(
        tg.user_message(chat, user, caption="first one", **voice_fields(tg, telegram_voice))
    )
    tg.push_message(
        tg.user_message(chat, user, caption="second one", **voice_fields(tg, telegram_voice))
    )
    tg.wait_for(lambda: final_texts(tg, chat["id"]).count(ds.reply_text) == 2, what="two replies")
    mine = [
        FakeDashScope.texts(r)
        for r in ds.snapshot()[before:]
        if "first one" in FakeDashScope.texts(r) or "second one" in FakeDashScope.texts(r)
    ]
    assert len(mine) == 2, mine
    assert "second one" not in mine[0], "the first voice note is answered first"
    second = next(r for r in ds.snapshot()[before:] if "second one" in FakeDashScope.texts(r))
    roles = [m["role"] for m in second["input"]["messages"]]
    assert "assistant" in roles, f"the second turn sees the first one's answer: {roles}"


def test_telegram_polling_sigterm_exits_zero_within_10_s(
    tmp_path: Path, telegram_voice: bytes
) -> None:
    servers = FakeServers().start()
    tg = servers.telegram
    servers.dashscope.chunk_delay = 0.3
    bot = TelegramBotProcess(tmp_path, servers)
    try:
        bot.wait_ready()
        tg.wait_for(lambda: tg.calls_to("getUpdates", ok=None), what="polling")
        user = new_user()
        chat = private_chat(user)
        tg.push_message(tg.user_message(chat, user, **voice_fields(tg, telegram_voice)))
        tg.wait_for(lambda: tg.calls_to("sendMessageDraft", chat_id=chat["id"]), what="a draft")
        code, took = bot.terminate()
        assert code == 0, bot.output()
        assert took < 10
        assert tg.bot_messages(chat["id"]), "the reply in flight was finished or closed"
    finally:
        bot.close()
        servers.stop()


# ---------------------------------------------------------------------------------------
# Flood control and server errors on every kind of reply


def test_telegram_command_reply_survives_429(tg: FakeTelegram) -> None:
    user = new_user()
    chat = private_chat(user)
    fail_in_chat(tg, "sendMessage", chat, retry_after_1())
    command(tg, chat, user, "/help")
    texts = wait_any_message(tg, chat["id"])
    assert "/new" in texts[0]
    assert len(tg.served("sendMessage", chat_id=chat["id"])) == 1
    assert len(texts) == 1, "the help is shown once"


def test_telegram_group_first_send_429_and_chat_action_429(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = group_chat()
    for method in ("sendMessage", "sendChatAction"):
        fail_in_chat(tg, method, chat, retry_after_1())
    tg.push_message(_mention_voice(tg, chat, user, telegram_voice, "hi"))
    wait_text(tg, chat["id"], ds.reply_text)
    assert final_texts(tg, chat["id"]) == [ds.reply_text]
    for method in ("sendMessage", "sendChatAction"):
        assert len(tg.served(method, chat_id=chat["id"])) == 1, method


def test_telegram_final_send_survives_a_bad_gateway(
    tg: FakeTelegram, ds: FakeDashScope, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    fail_in_chat(tg, "sendMessage", chat, ApiError(502, "Bad Gateway"))
    tg.push_message(tg.user_message(chat, user, **voice_fields(tg, telegram_voice)))
    wait_text(tg, chat["id"], ds.reply_text)
    assert len(tg.served("sendMessage", chat_id=chat["id"])) == 1
    assert final_texts(tg, chat["id"]) == [ds.reply_text]  # shown once


def test_telegram_button_is_answered_when_the_admin_check_fails(tg: FakeTelegram) -> None:
    member = new_user()
    chat = group_chat()
    command(tg, chat, member, f"/model@{tg.bot_username}")
    wait_any_message(tg, chat["id"])
    message = tg.bot_messages(chat["id"])[-1]
    button = _keyboard_buttons(message.reply_markup)[-1]
    fail_in_chat(tg, "getChatMember", chat, ApiError(400, "Bad Request: member not found"))
    press = callback(tg, member, message, button["callback_data"])
    query_id = press["callback_query"]["id"]

    def answered() -> list[Call]:
        return [
            c for c in tg.calls_to("answerCallbackQuery") if c.get("callback_query_id") == query_id
        ]

    (answer,) = tg.wait_for(answered, what="the answer to the press")
    assert len(tg.served("getChatMember", chat_id=chat["id"])) == 1
    assert answer.get("text"), "the user is told why nothing changed"


# ---------------------------------------------------------------------------------------
# Voice replies (Qwen-Omni speaks; the bot sends the speech as a voice note)


def _ogg_seconds(ogg: bytes) -> float:
    """How long an OGG/Opus file plays, decoded frame by frame."""
    import io

    import av

    with av.open(io.BytesIO(ogg)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        samples = rate = 0
        for frame in container.decode(stream):
            samples += frame.samples
            rate = frame.sample_rate
    return samples / rate


def test_telegram_omni_voice_note_gets_the_text_then_a_voice_note(
    tg: FakeTelegram, ds: FakeDashScope, bot: TelegramBotProcess, telegram_voice: bytes
) -> None:
    user = new_user()
    chat = private_chat(user)
    command(tg, chat, user, "/model qwen3-omni-flash")
    wait_any_message(tg, chat["id"])
    before = len(ds.omni.snapshot())
    note = tg.user_message(chat, user, **voice_fields(tg, telegram_voice))
    update = tg.push_message(note)
    bot.wait_handled(update)

    (call,) = ds.omni.snapshot()[before:]
    assert call.body["model"] == "qwen3-omni-flash" and call.body["stream"] is True
    assert call.wants_speech and call.voice, "a voice note in a private chat asks for speech"
    assert call.speech, "the model spoke"
    (voice,) = tg.voice_notes(chat["id"])
    assert voice.voice is not None and voice.voice.data[:4] == b"OggS"
    spoken = len(call.speech) / (2 * 24_000)
    assert abs(_ogg_seconds(voice.voice.data) - spoken) <= 0.05
    assert voice.reply_to == note["message_id"]
    # The text once, then the voice note: one upload, multipart, after the final text.
    assert [t for t in final_texts(tg, chat["id"])[1:] if t] == [ds.omni.reply_text]
    (send,) = tg.calls_to("sendVoice", chat_id=chat["id"], ok=None)
    assert send.ok and send.content_type == "multipart/form-data"
    assert str(send.get("voice")).startswith("attach://")
    assert send.int("duration") == math.ceil(spoken)  # whole seconds
    finals = tg.calls_to("sendMessage", chat_id=chat["id"])
    assert finals[-1].at < send.at
