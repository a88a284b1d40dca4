"""Wire error answers → bot.errors, for both protocols' shapes (no network)."""

from __future__ import annotations

import json

import pytest

from bot import errors, texts
from bot.llm.errors import error_from_body, map_error, parse_retry_after

CASES = [
    (401, "InvalidApiKey", errors.ModelAuthError),
    (401, "invalid_api_key", errors.ModelAuthError),
    (400, "Arrearage", errors.ModelAccessDenied),
    (403, "AccessDenied", errors.ModelAccessDenied),
    (403, "AccessDenied.Unpurchased", errors.ModelAccessDenied),
    (403, "AllocationQuota.FreeTierOnly", errors.ModelAccessDenied),
    (404, "ModelNotFound", errors.ModelNotFoundError),
    (404, "model_not_found", errors.ModelNotFoundError),
    (400, "InvalidParameter", errors.ModelBadRequest),
    (400, "InvalidURL", errors.ModelBadRequest),
    (400, "BadRequest.EmptyInput", errors.ModelBadRequest),
    (400, "DataInspectionFailed", errors.ContentFiltered),
    (400, "data_inspection_failed", errors.ContentFiltered),
    (429, "Throttling", errors.ModelRateLimited),
    (429, "Throttling.RateQuota", errors.ModelRateLimited),
    (429, "Throttling.AllocationQuota", errors.ModelRateLimited),
    (500, "InternalError", errors.ModelServerError),
    (500, "InternalError.Algo", errors.ModelServerError),
    (503, "ServiceUnavailable", errors.ModelServerError),
    (502, "SomethingNew", errors.ModelServerError),
    (418, None, errors.ModelBadRequest),
]


@pytest.mark.parametrize(("status", "code", "cls"), CASES)
def test_code_and_status_mapping(status: int, code: str | None, cls: type) -> None:
    exc = map_error(status=status, code=code, message="m", request_id="rid", retry_after=3.0)
    assert type(exc) is cls
    assert (exc.code, exc.message, exc.request_id, exc.status, exc.retry_after) == (
        code,
        "m",
        "rid",
        status,
        3.0,
    )
    assert exc.user_message == cls.default_user_message


def test_native_model_not_exist_is_model_not_found() -> None:
    exc = map_error(
        status=400, code="InvalidParameter", message="Model not exist.", request_id=None
    )
    assert isinstance(exc, errors.ModelNotFoundError)
    assert exc.user_message == texts.MODEL_NOT_FOUND


def test_native_json_body() -> None:
    body = json.dumps({"code": "Arrearage", "message": "no money", "request_id": "r1"}).encode()
    exc = error_from_body(body, status=400, headers={})
    assert isinstance(exc, errors.ModelAccessDenied)
    assert (exc.code, exc.message, exc.request_id, exc.status) == (
        "Arrearage",
        "no money",
        "r1",
        400,
    )


def test_compat_nested_body_and_header_request_id() -> None:
    body = json.dumps(
        {
            "error": {
                "message": "Incorrect API key provided. ",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
    ).encode()
    exc = error_from_body(body, status=401, headers={"x-request-id": "hdr"})
    assert isinstance(exc, errors.ModelAuthError)
    assert exc.request_id == "hdr"
    assert exc.message == "Incorrect API key provided. "


def test_sse_framed_error_body() -> None:
    body = (
        b"id:1\nevent:error\n:HTTP_STATUS/429\n"
        b'data:{"code":"Throttling.AllocationQuota","message":"quota","request_id":"r2"}\n\n'
    )
    exc = error_from_body(body, status=429, headers={}, retry_after=1.5)
    assert isinstance(exc, errors.ModelRateLimited)
    assert (exc.code, exc.request_id, exc.retry_after) == ("Throttling.AllocationQuota", "r2", 1.5)


def test_unparseable_body_maps_by_status() -> None:
    exc = error_from_body(b"<html>bad gateway</html>", status=502, headers={})
    assert isinstance(exc, errors.ModelServerError)
    assert exc.code is None and exc.status == 502


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "150", "retry-after": "9"}) == 0.15
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    when = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert parse_retry_after({"retry-after": when}, now=1445412480.0) == 10.0
