"""HTTP errors, retries, the 10 MB refusal and non-streaming answers, against the fake."""

from __future__ import annotations

import httpx
import pytest

from bot import errors, texts
from bot.llm.client import DashScopeClient
from bot.llm.types import AudioPart, Finished, TextDelta
from tests.fakes.dashscope import Fail, FakeDashScope, Reply
from tests.llm.conftest import ClientFactory, collect, user

PROTOCOLS = ["native", "openai"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "Arrearage", errors.ModelAccessDenied),
        (403, "AllocationQuota.FreeTierOnly", errors.ModelAccessDenied),
        (403, "AccessDenied.Unpurchased", errors.ModelAccessDenied),
        (400, "InvalidParameter", errors.ModelBadRequest),
        (400, "InvalidURL", errors.ModelBadRequest),
        (400, "DataInspectionFailed", errors.ContentFiltered),
    ],
)
async def test_http_errors_map_and_are_not_retried(
    protocol: str,
    status: int,
    code: str,
    cls: type,
    make_client: ClientFactory,
    dashscope_fake: FakeDashScope,
    wav_1s: bytes,
) -> None:
    dashscope_fake.queue_error(status, code, "service says no")
    with pytest.raises(cls) as info:
        await collect(make_client(protocol=protocol), [user(AudioPart(wav_1s, "wav"))])
    exc = info.value
    assert exc.status == status
    assert exc.message == "service says no"
    assert exc.request_id
    assert exc.user_message == cls.default_user_message
    assert len(dashscope_fake.requests) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_wrong_api_key(protocol: str, make_client: ClientFactory, wav_1s: bytes) -> None:
    client = make_client(protocol=protocol, api_key="sk-wrong")
    with pytest.raises(errors.ModelAuthError) as info:
        await collect(client, [user(AudioPart(wav_1s, "wav"))])
    assert info.value.status == 401
    assert info.value.user_message == texts.MODEL_AUTH
    assert "sk-wrong" not in str(info.value) and "sk-wrong" not in repr(client)


@pytest.mark.parametrize(("protocol", "status"), [("native", 400), ("openai", 404)])
async def test_unknown_model(
    protocol: str, status: int, make_client: ClientFactory, wav_1s: bytes
) -> None:
    with pytest.raises(errors.ModelNotFoundError) as info:
        await collect(
            make_client(protocol=protocol), [user(AudioPart(wav_1s, "wav"))], model="qwen-nope"
        )
    assert info.value.status == status


async def test_input_over_model_limit_is_bad_request(
    make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    long_text = "word " * 30000  # far over 6144 tokens
    with pytest.raises(errors.ModelBadRequest) as info:
        await collect(make_client(), [user(AudioPart(wav_1s, "wav"), long_text)])
    assert info.value.message == "Range of input length should be [1, 6144]"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_rate_limit_retried_honouring_retry_after(
    protocol: str, make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_error(429, "Throttling.RateQuota", headers={"Retry-After": "0.3"})
    dashscope_fake.queue_reply(chunks=["ok"])
    events = await collect(make_client(protocol=protocol), [user(AudioPart(wav_1s, "wav"))])
    gap = dashscope_fake.requests[1].received_at - dashscope_fake.requests[0].received_at
    assert gap >= 0.3  # waited as long as the service asked
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["ok"]
    assert isinstance(events[-1], Finished)


async def test_sse_framed_429_before_stream_is_retried(
    make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue(
        Fail(
            status=429,
            code="Throttling.AllocationQuota",
            sse=True,
            headers={"retry-after-ms": "50"},
        ),
        Reply(chunks=["fine"]),
    )
    events = await collect(make_client(), [user(AudioPart(wav_1s, "wav"))])
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "fine"
    assert [r.status for r in dashscope_fake.requests] == [429, 200]


@pytest.mark.parametrize(
    "failure",
    [
        Fail(status=500, code="InternalError"),
        Fail(status=503, code="ServiceUnavailable"),
        Fail(drop=True),
    ],
    ids=["500", "503", "dropped"],
)
async def test_server_errors_and_dropped_connections_retried_with_backoff(
    failure: Fail, make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue(failure, failure, Reply(chunks=["third time"]))
    events = await collect(make_client(max_retries=2), [user(AudioPart(wav_1s, "wav"))])
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "third time"
    assert len(dashscope_fake.requests) == 3


async def test_retries_exhausted_raise_the_last_error(
    make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue(*[Fail(status=429, code="Throttling")] * 3)
    with pytest.raises(errors.ModelRateLimited) as info:
        await collect(make_client(max_retries=2), [user(AudioPart(wav_1s, "wav"))])
    assert info.value.code == "Throttling"
    assert len(dashscope_fake.requests) == 3


async def test_retry_after_longer_than_allowed_is_not_waited_for(
    make_client: ClientFactory, dashscope_fake: FakeDashScope, wav_1s: bytes
) -> None:
    dashscope_fake.queue_error(429, "Throttling.RateQuota", headers={"Retry-After": "120"})
    with pytest.raises(errors.ModelRateLimited) as info:
        await collect(make_client(max_retry_after=5.0), [user(AudioPart(wav_1s, "wav"))])
    assert info.value.retry_after == 120.0
    assert len(dashscope_fake.requests) == 1


async def test_connection_refused_is_connection_lost_after_retries(wav_1s: bytes) -> None:
    # A port nothing listens on: bound (so no one else can take it) but never listening,
    # for the whole test; connecting to it is refused.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        client = DashScopeClient(
            api_key="k",
            base_url=f"http://127.0.0.1:{port}/api/v1",
            max_retries=1,
            backoff_base=0.01,
            connect_timeout=1.0,
        )
        try:
            with pytest.raises(errors.ModelConnectionLost):
                await collect(client, [user(AudioPart(wav_1s, "wav"))])
        finally:
            await client.aclose()


async def test_clip_over_10_mb_refused_before_any_network_call(
    make_client: ClientFactory, dashscope_fake: FakeDashScope
) -> None:
    # 7,864,321 raw bytes → 10,485,764 base64 characters, just over 10 MiB.
    big = AudioPart(b"\0" * 7_864_321, "wav")
    client = make_client()
    with pytest.raises(errors.ModelPayloadTooLarge) as info:
        await collect(client, [user(big)])
    assert info.value.user_message == texts.MODEL_PAYLOAD_TOO_LARGE
    assert dashscope_fake.requests == []


async def test_clip_exactly_at_10_mb_is_sent(
    make_client: ClientFactory, dashscope_fake: FakeDashScope
) -> None:
    at_limit = AudioPart(b"\0" * 7_864_320, "wav")  # exactly 10,485,760 base64 characters
    with pytest.raises(errors.ModelBadRequest):  # not decodable, but it did go out
        await collect(make_client(max_retries=0), [user(at_limit)])
    assert dashscope_fake.last_request.audio == []  # rejected while decoding
    assert dashscope_fake.last_request.error_code == "InvalidParameter"


async def test_fake_rejects_more_than_10_mb(dashscope_fake: FakeDashScope) -> None:
    import base64

    url = "data:audio/wav;base64," + base64.b64encode(b"\0" * 7_864_323).decode()
    body = {
        "model": "qwen-audio-turbo-latest",
        "input": {"messages": [{"role": "user", "content": [{"audio": url}]}]},
        "parameters": {"result_format": "message"},
    }
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            dashscope_fake.native_base_url + "/services/aigc/multimodal-generation/generation",
            json=body,
            headers={"Authorization": f"Bearer {dashscope_fake.api_key}"},
        )
    assert resp.status_code == 400
    assert resp.json()["message"] == "Exceeded limit on max bytes per data-uri item : 10485760"
