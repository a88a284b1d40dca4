"""Translation of DashScope (and OpenAI-compatible) error answers into ``bot.errors``.

Both protocols' shapes are understood: the native flat ``{"code","message","request_id"}``
(as JSON, or SSE-framed with ``event:error``), and the compatible
``{"error":{"code","message","type"},"request_id"}``. The mapping goes by wire code first
and by HTTP status when the code is unknown, because compatible servers use their own codes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from bot import errors
from bot.llm.sse import SSEDecoder

__all__ = [
    "WireError",
    "error_from_body",
    "map_error",
    "parse_retry_after",
    "request_id_from_headers",
    "wire_error_from_json",
]

# Exact wire codes (native and compatible spellings).
_BY_CODE: dict[str, type[errors.ModelError]] = {
    "invalidapikey": errors.ModelAuthError,
    "invalid_api_key": errors.ModelAuthError,
    "arrearage": errors.ModelAccessDenied,
    "allocationquota.freetieronly": errors.ModelAccessDenied,
    "insufficient_quota": errors.ModelAccessDenied,
    "modelnotfound": errors.ModelNotFoundError,
    "model.notexist": errors.ModelNotFoundError,
    "model_not_found": errors.ModelNotFoundError,
    "datainspectionfailed": errors.ContentFiltered,
    "data_inspection_failed": errors.ContentFiltered,
    "content_filter": errors.ContentFiltered,
    "invalidparameter": errors.ModelBadRequest,
    "invalid_parameter": errors.ModelBadRequest,
    "invalid_parameter_error": errors.ModelBadRequest,
    "invalidurl": errors.ModelBadRequest,
    "rate_limit_exceeded": errors.ModelRateLimited,
    "internalerror": errors.ModelServerError,
    "internal_error": errors.ModelServerError,
    "serviceunavailable": errors.ModelServerError,
    "gatewaytimeout": errors.ModelServerError,
}

# Code families, matched by prefix (``Throttling.RateQuota``, ``InternalError.Algo`` …).
_BY_PREFIX: tuple[tuple[str, type[errors.ModelError]], ...] = (
    ("accessdenied", errors.ModelAccessDenied),
    ("throttling", errors.ModelRateLimited),
    ("internalerror", errors.ModelServerError),
    ("badrequest", errors.ModelBadRequest),
    ("invalidparameter", errors.ModelBadRequest),
)

_MODEL_NOT_EXIST = "model not exist"


class WireError:
    """An error answer as read off the wire, before translation."""

    __slots__ = ("code", "message", "request_id")

    def __init__(self, *, code: str | None, message: str | None, request_id: str | None) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id


def map_error(
    *,
    status: int | None,
    code: str | None,
    message: str | None,
    request_id: str | None,
    retry_after: float | None = None,
    detail: str = "",
) -> errors.ModelError:
    """The ``bot.errors`` exception for one error answer."""
    cls = _class_for(status, code, message)
    return cls(
        detail,
        code=code,
        message=message,
        request_id=request_id,
        status=status,
        retry_after=retry_after,
    )


def _class_for(
    status: int | None, code: str | None, message: str | None
) -> type[errors.ModelError]:
    key = (code or "").lower()
    # The native service reports an unknown model as a generic 400 InvalidParameter.
    if message and _MODEL_NOT_EXIST in message.lower():
        return errors.ModelNotFoundError
    if key in _BY_CODE:
        return _BY_CODE[key]
    for prefix, cls in _BY_PREFIX:
        if key.startswith(prefix):
            return cls
    return _class_for_status(status)


def _class_for_status(status: int | None) -> type[errors.ModelError]:
    if status is None:
        return errors.ModelError
    if status == 401:
        return errors.ModelAuthError
    if status in (402, 403):
        return errors.ModelAccessDenied
    if status == 404:
        return errors.ModelNotFoundError
    if status == 408:
        return errors.ModelTimeout
    if status == 413:
        return errors.ModelPayloadTooLarge
    if status == 429:
        return errors.ModelRateLimited
    if status >= 500:
        return errors.ModelServerError
    if 400 <= status < 500:
        return errors.ModelBadRequest
    return errors.ModelError


def wire_error_from_json(obj: Any) -> WireError | None:
    """Read either error shape from a decoded JSON value; ``None`` if it is not an error."""
    if not isinstance(obj, Mapping):
        return None
    request_id = _str_or_none(obj.get("request_id")) or _str_or_none(obj.get("id"))
    nested = obj.get("error")
    if isinstance(nested, Mapping):
        code = _str_or_none(nested.get("code")) or _str_or_none(nested.get("type"))
        return WireError(
            code=code, message=_str_or_none(nested.get("message")), request_id=request_id
        )
    if isinstance(nested, str):
        return WireError(code=None, message=nested, request_id=request_id)
    code = _str_or_none(obj.get("code"))
    if code:
        message = _str_or_none(obj.get("message")) or _str_or_none(obj.get("msg"))
        return WireError(code=code, message=message, request_id=request_id)
    return None


def error_from_body(
    body: bytes,
    *,
    status: int,
    headers: Mapping[str, str],
    retry_after: float | None = None,
) -> errors.ModelError:
    """Translate a non-2xx answer whose body is JSON, SSE-framed, or anything else."""
    wire: WireError | None = None
    text = body.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            wire = wire_error_from_json(json.loads(text))
        except ValueError:
            wire = None
    else:
        decoder = SSEDecoder()
        for event in [*decoder.feed(body), *decoder.close()]:
            try:
                wire = wire_error_from_json(json.loads(event.data))
            except ValueError:
                continue
            if wire is not None:
                break
    request_id = (wire.request_id if wire else None) or request_id_from_headers(headers)
    return map_error(
        status=status,
        code=wire.code if wire else None,
        message=wire.message if wire else None,
        request_id=request_id,
        retry_after=retry_after,
        detail=f"HTTP {status}",
    )


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def request_id_from_headers(headers: Mapping[str, str]) -> str | None:
    for name in ("x-request-id", "x-dashscope-request-id", "req-id"):
        value = headers.get(name)
        if value:
            return value
    return None


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return str(value) or None
