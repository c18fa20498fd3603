"""Error typing, hints, the httpx boundary, and that no secret ever leaks through an exception."""

from __future__ import annotations

import inspect
import pickle
import traceback

import httpx
import pytest

from bitrix24_assets.bitrix24 import errors
from bitrix24_assets.bitrix24.transport import HTTPX_ERROR_MAP, translate_httpx_errors

PORTAL = "https://acme.bitrix24.ru/rest/1/***/"


def test_every_httpx_exception_is_mapped() -> None:
    exported = {obj for obj in vars(httpx).values() if inspect.isclass(obj) and issubclass(obj, Exception)}
    missing = sorted(cls.__name__ for cls in exported if cls not in HTTPX_ERROR_MAP)
    assert not missing, f"map these httpx exceptions in transport.HTTPX_ERROR_MAP: {missing}"


def test_translated_httpx_error_hides_url_and_vendor_chain() -> None:
    request = httpx.Request("POST", "https://acme.bitrix24.ru/rest/1/SECRETTOKEN/user.get")
    with pytest.raises(errors.ConnectError) as info, translate_httpx_errors("user.get", PORTAL):
        raise httpx.ConnectError("boom https://acme.bitrix24.ru/rest/1/SECRETTOKEN/user.get", request=request)
    text = "".join(traceback.format_exception(info.value))
    assert "SECRETTOKEN" not in text and info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    ("code", "status", "description", "expected", "config"),
    [
        ("NO_AUTH_FOUND", 401, "Wrong authorization data", errors.AuthError, True),
        ("INVALID_CREDENTIALS", 401, "Invalid request credentials", errors.AuthError, True),  # measured
        ("INVALID_CREDENTIALS", 403, "Invalid request credentials", errors.AuthError, True),  # docs
        ("INVALID_REQUEST", 400, "Https required.", errors.AuthError, True),
        ("insufficient_scope", 403, "", errors.ScopeError, True),
        ("ERROR_METHOD_NOT_FOUND", 404, "Method not found!", errors.MethodNotFoundError, True),
        ("QUERY_LIMIT_EXCEEDED", 503, "Too many requests", errors.RateLimitError, False),  # current
        ("QUERY_LIMIT_EXCEEDED", 429, "Too many requests", errors.RateLimitError, False),  # pre-2024-12
        ("OPERATION_TIME_LIMIT", 429, "Method is blocked", errors.OperationTimeLimitError, False),
        ("PORTAL_DELETED", 410, "Portal was deleted", errors.PortalUnavailableError, True),
        ("PORTAL_DELETED", 403, "Portal was deleted", errors.PortalUnavailableError, True),
        (
            "ACCESS_DENIED",
            403,
            "REST API is available only on commercial plans",
            errors.PortalUnavailableError,
            True,
        ),
        ("ACCESS_DENIED", 403, "Access denied!", errors.AccessDeniedError, True),
        ("PAYMENT_REQUIRED", 401, "Payment required", errors.PortalUnavailableError, True),
        ("INTERNAL_SERVER_ERROR", 500, "Internal server error", errors.ServerError, False),
        ("ERROR_CORE", 400, "Task title is not specified<br>", errors.BadRequestError, False),
        ("", 400, "Access denied", errors.BadRequestError, False),  # calendar's empty code
        ("expired_token", 401, "expired", errors.AuthError, True),
    ],
)
def test_error_codes_map_to_classes(
    code: str, status: int, description: str, expected: type, config: bool
) -> None:
    err = errors.error_from_response(code, description, status, method="tasks.task.list", portal=PORTAL)
    assert type(err) is expected
    assert err.is_configuration_error is config
    assert (err.code, err.status, err.method, err.portal) == (code, status, "tasks.task.list", PORTAL)
    text = str(err)
    assert text.startswith(
        "tasks.task.list on https://acme.bitrix24.ru/rest/1/***/ failed"
    ) and text.endswith(".")


def test_scope_error_names_the_missing_scope() -> None:
    err = errors.error_from_response("insufficient_scope", "", 403, method="tasks.task.list", portal=PORTAL)
    assert "scope 'task'" in str(err) and "adds the scope to the webhook" in str(err)
    assert "URL stays the same" in str(err)


def test_errors_survive_pickling() -> None:
    err = errors.error_from_response("NO_AUTH_FOUND", "x", 401, method="user.get", portal=PORTAL)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is errors.AuthError and str(again) == str(err)


def test_incomplete_read_is_one_retryable_sentence() -> None:
    err = errors.IncompleteReadError(
        "the read returned 2998 records with ID up to 3120 but the portal counts 3000",
        method="tasks.task.list",
        portal=PORTAL,
    )
    text = str(err)
    assert text.startswith(f"tasks.task.list on {PORTAL} failed (INCOMPLETE_READ): the read returned 2998")
    assert text.endswith(".") and text.count(". ") == 0 and "\n" not in text
    assert err.retryable and not err.is_configuration_error and isinstance(err, errors.ApiError)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is errors.IncompleteReadError and str(again) == text
    assert again.code == "INCOMPLETE_READ"
