"""Every way a Bitrix24 call can fail, as one exception tree.

Hierarchy::

    Bitrix24Error                      base: .code .status .method .portal (redacted) .hint
    ├── ClientConfigError              misuse before any request (bad webhook URL, >50 batch commands)
    ├── TransportError                 no usable HTTP answer (network, timeout, non-JSON body)
    │   ├── ConnectError               the request never reached the portal (safe to retry writes)
    │   └── TimeoutError               no answer in time (the portal may have run the call)
    └── ApiError                       the portal answered with an error envelope
        ├── AuthError                  NO_AUTH_FOUND, INVALID_CREDENTIALS, invalid_token,
        │   │                          expired_token after a failed refresh, Https required, ...
        │   └── TokenRefreshError      the OAuth server refused the refresh token
        ├── ScopeError                 insufficient_scope
        ├── AccessDeniedError          ACCESS_DENIED for this user / WRONG_AUTH_TYPE
        ├── PortalUnavailableError     PORTAL_DELETED, PAYMENT_REQUIRED, plan ACCESS_DENIED, OVERLOAD_LIMIT
        ├── MethodNotFoundError        ERROR_METHOD_NOT_FOUND
        ├── RateLimitError             QUERY_LIMIT_EXCEEDED (503, or 429 before 2024-12)
        ├── OperationTimeLimitError    OPERATION_TIME_LIMIT (429): the method's server-time budget is spent
        ├── ServerError                5xx
        ├── BadRequestError            4xx validation errors (ERROR_CORE, ERROR_ARGUMENT, "" from calendar)
        ├── NotFoundError              the record does not exist (or is not visible to the webhook owner)
        ├── BatchCommandError          a sub-command of ``batch`` failed; ``.error`` is its typed error
        └── IncompleteReadError        the answers cannot prove a read complete (a batch command without
                                       result or error, pages that contradict each other, a count above
                                       what was read); retried like a 5xx, never a configuration error

``str(error)`` is one sentence naming the method, the portal and the fix. Nothing here ever holds the
webhook token or an OAuth token: the portal is stored redacted, descriptions are scrubbed by the
client's redactor, and vendor exceptions are never chained (``raise ... from None``).
``is_configuration_error`` is True for what only the account owner can fix (auth, scope, portal gone):
the Dagster layer does not retry those and marks the account in error.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccessDeniedError",
    "ApiError",
    "AuthError",
    "BadRequestError",
    "BatchCommandError",
    "Bitrix24Error",
    "ClientConfigError",
    "ConnectError",
    "IncompleteReadError",
    "MethodNotFoundError",
    "NotFoundError",
    "OperationTimeLimitError",
    "PortalUnavailableError",
    "RateLimitError",
    "ScopeError",
    "ServerError",
    "TimeoutError",
    "TokenRefreshError",
    "TransportError",
    "error_from_response",
    "scope_for_method",
]

_SCOPES = {
    "user": "user",
    "department": "department",
    "tasks": "task",
    "task": "task",
    "calendar": "calendar",
    "im": "im",
    "crm": "crm",
    "sonet_group": "sonet_group",
    "socialnetwork": "socialnetwork",
    "disk": "disk",
    "lists": "lists",
}


def scope_for_method(method: str) -> str:
    """The webhook scope a method needs (``tasks.task.list`` -> ``task``); a best guess for others."""
    head = method.lower().split(".", 1)[0]
    return _SCOPES.get(head, head)


class Bitrix24Error(Exception):
    """Base class. Catch this to handle any failure of the client."""

    default_hint: ClassVar[str] = "check the portal and the call's parameters"
    is_configuration_error: ClassVar[bool] = False
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        description: str = "",
        *,
        code: str | None = None,
        status: int | None = None,
        method: str | None = None,
        portal: str = "the portal",
        hint: str | None = None,
    ) -> None:
        self.description = description
        self.code = code
        self.status = status
        self.method = method
        self.portal = portal
        self.hint = hint or self.default_hint
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        what = f"{self.method} on {self.portal}" if self.method else f"Call to {self.portal}"
        detail = ", ".join(
            x for x in (self.code and f"{self.code}", self.status and f"HTTP {self.status}") if x
        )
        desc = f": {self.description.rstrip('.')}" if self.description else ""
        return f"{what} failed ({detail or type(self).__name__}){desc}; {self.hint}."

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, "
            f"method={self.method!r}, portal={self.portal!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across Dagster processes
        return (
            _rebuild,
            (type(self), self.description, self.code, self.status, self.method, self.portal, self.hint),
        )


def _rebuild(
    cls: type[Bitrix24Error],
    description: str,
    code: str | None,
    status: int | None,
    method: str | None,
    portal: str,
    hint: str,
) -> Bitrix24Error:
    return cls(description, code=code, status=status, method=method, portal=portal, hint=hint)


class ClientConfigError(Bitrix24Error, ValueError):
    """The client was set up or called wrongly; nothing was sent."""

    default_hint = "fix the client's arguments"
    is_configuration_error = True


class TransportError(Bitrix24Error):
    """No usable HTTP answer: network failure, timeout, or a body that is not a Bitrix24 envelope."""

    default_hint = "check that the portal is reachable from this host; the call was retried with backoff"
    retryable = True


class ConnectError(TransportError):
    """The connection could not be made, so the portal never saw the request."""


class TimeoutError(TransportError):
    """The portal did not answer in time; it may still have executed the call."""

    default_hint = "the portal did not answer in time; retry later or raise the client's timeout"


class ApiError(Bitrix24Error):
    """The portal answered ``{"error": CODE, "error_description": TEXT}``."""


class AuthError(ApiError):
    """The credentials were refused."""

    default_hint = (
        "the webhook was revoked or mistyped; create a new inbound webhook in Bitrix24 "
        "(Developer resources > Other > Inbound webhook) and store its URL for this account"
    )
    is_configuration_error = True


class TokenRefreshError(AuthError):
    """The OAuth server refused to refresh the access token."""

    default_hint = "the refresh token is no longer valid; re-install or re-authorize the application"


class ScopeError(ApiError):
    """The webhook/app lacks the scope the method needs."""

    is_configuration_error = True

    def __init__(self, description: str = "", **kw: Any) -> None:
        method = kw.get("method")
        if method and not kw.get("hint"):
            kw["hint"] = (
                f"the webhook lacks scope '{scope_for_method(method)}'; its owner adds the scope to the "
                "webhook in Bitrix24 (Developer resources > Integrations > Edit; the URL stays the same)"
            )
        super().__init__(description, **kw)

    default_hint = (
        "the webhook lacks the method's scope; its owner adds the scope to the webhook in Bitrix24 "
        "(Developer resources > Integrations > Edit; the URL stays the same)"
    )


class AccessDeniedError(ApiError):
    """The webhook owner may not do this (permissions of the user the webhook belongs to)."""

    default_hint = "the webhook's user lacks the rights; create the webhook as a portal administrator"
    is_configuration_error = True


class PortalUnavailableError(ApiError):
    """The portal cannot serve REST at all (deleted, unpaid, plan without REST, blocked by support)."""

    default_hint = "the portal cannot serve REST calls; check the portal's plan and status with its owner"
    is_configuration_error = True


class MethodNotFoundError(ApiError):
    """Unknown method, or a webhook URL without the ``<user id>/`` segment."""

    default_hint = (
        "check the method name and that the webhook URL has the form https://<portal>/rest/<user id>/<code>/"
    )
    is_configuration_error = True


class RateLimitError(ApiError):
    """``QUERY_LIMIT_EXCEEDED``: the portal's request-rate bucket overflowed."""

    default_hint = (
        "too many requests even after backoff; share one client per portal in the process "
        "or lower its concurrency"
    )
    retryable = True


class OperationTimeLimitError(ApiError):
    """``OPERATION_TIME_LIMIT``: this method used its server-time budget (480 s / 10 min)."""

    default_hint = (
        "the method's 10-minute server-time budget is spent; wait for the reset or read "
        "less per run (narrower filter, incremental cursor)"
    )
    retryable = True


class ServerError(ApiError):
    """A 5xx answer from the portal."""

    default_hint = "the portal had an internal error; the call was retried with backoff, try again later"
    retryable = True


class BadRequestError(ApiError):
    """The portal rejected the parameters."""

    default_hint = "fix the call's parameters as the error description says"


class NotFoundError(ApiError):
    """The record does not exist or the webhook's user cannot see it."""

    default_hint = "check the id, and that the webhook's user can see the record"


class BatchCommandError(ApiError):
    """A sub-command of ``batch`` failed; ``.key`` names it and ``.error`` is its typed error.

    ``.errors`` holds every failed sub-command of that batch (key -> typed error).
    """

    def __init__(
        self,
        description: str = "",
        *,
        key: str = "",
        error: ApiError | None = None,
        errors: dict[str, ApiError] | None = None,
        **kw: Any,
    ) -> None:
        self.key = key
        self.error = error
        self.errors = errors or {}
        if error is not None:
            kw.setdefault("hint", f"batch command '{key}' failed; {error.hint}")
            kw.setdefault("code", error.code)
            kw.setdefault("status", error.status)
        super().__init__(description, **kw)

    # per instance here (the failed command's error decides), a class constant on every other error;
    # mypy allows no property over a ClassVar, though no code reads the flag from the class
    @property
    def is_configuration_error(self) -> bool:  # type: ignore[override]
        return bool(self.error is not None and self.error.is_configuration_error)


class IncompleteReadError(ApiError):
    """A read could not be proven complete: using it to remove records could delete live data.

    Raised for a batch answer in which a command has neither a result nor an error, for pages that
    contradict each other (an empty ascending probe beside a non-empty descending one, a page that
    ends a counted read early), and when the portal counts more records than were read. Read-only
    requests are retried like a 5xx before this is raised.
    """

    default_hint = (
        "the portal's answers do not add up, so the read was not used; run it again later, and if it "
        "keeps failing check for a proxy or cache between this host and the portal"
    )
    retryable = True

    def __init__(self, description: str = "", **kw: Any) -> None:
        kw.setdefault("code", "INCOMPLETE_READ")
        super().__init__(description, **kw)


_BY_CODE: dict[str, type[ApiError]] = {
    "NO_AUTH_FOUND": AuthError,
    "INVALID_CREDENTIALS": AuthError,
    "invalid_token": AuthError,
    "expired_token": AuthError,
    "METHOD_CONFIRM_WAITING": AuthError,
    "METHOD_CONFIRM_DENIED": AuthError,
    "user_access_error": AuthError,
    "invalid_client": TokenRefreshError,
    "invalid_grant": TokenRefreshError,
    "wrong_client": TokenRefreshError,
    "insufficient_scope": ScopeError,
    "WRONG_AUTH_TYPE": AccessDeniedError,
    "PORTAL_DELETED": PortalUnavailableError,
    "PAYMENT_REQUIRED": PortalUnavailableError,
    "OVERLOAD_LIMIT": PortalUnavailableError,
    "ERROR_METHOD_NOT_FOUND": MethodNotFoundError,
    "QUERY_LIMIT_EXCEEDED": RateLimitError,
    "OPERATION_TIME_LIMIT": OperationTimeLimitError,
    "INTERNAL_SERVER_ERROR": ServerError,
    "ERROR_UNEXPECTED_ANSWER": ServerError,
    "NOT_FOUND": NotFoundError,
}

_HINTS: dict[str, str] = {
    "expired_token": "the access token expired and could not be refreshed; re-authorize the application",
    "invalid_token": "the application's token is unknown to the portal; re-install the application",
    "METHOD_CONFIRM_WAITING": "a portal administrator must confirm the application's access to this method",
    "METHOD_CONFIRM_DENIED": "a portal administrator denied this method; ask them to allow it",
    "user_access_error": "the application is restricted to some users; give the webhook's user access",
    "PORTAL_DELETED": "the portal was deleted; deactivate this account",
    "PAYMENT_REQUIRED": "the portal's subscription has ended; renew it or deactivate this account",
    "OVERLOAD_LIMIT": "Bitrix24 support blocked REST on this portal for overload; only support can lift it",
    "ERROR_BATCH_LENGTH_EXCEEDED": "send at most 50 commands per batch",
    "ERROR_BATCH_METHOD_NOT_ALLOWED": "call this method outside batch",
}


def error_from_response(
    code: str | None, description: str, status: int | None, *, method: str | None, portal: str
) -> ApiError:
    """The typed error for an error envelope (codes are matched as the portal sends them).

    Statuses on which the docs and live portals disagree are all accepted: ``QUERY_LIMIT_EXCEEDED``
    with 503 or 429, ``INVALID_CREDENTIALS`` with 401 or 403, ``PORTAL_DELETED`` with 403/410/500,
    ``INVALID_REQUEST`` ("Https required") with 400 or 401.
    """
    code_s = code if code is not None else ""
    cls: type[ApiError] | None = _BY_CODE.get(code_s)
    hint = _HINTS.get(code_s)
    if code_s == "INVALID_REQUEST" and "https" in description.lower():
        cls, hint = AuthError, "the portal requires HTTPS; use an https:// webhook URL"
    elif code_s == "ACCESS_DENIED":
        if "commercial" in description.lower():
            cls, hint = PortalUnavailableError, "REST is only available on commercial plans; upgrade the plan"
        else:
            cls = AccessDeniedError
    if cls is None:
        if status is not None and status >= 500:
            cls = ServerError
        elif status == 401:
            cls = AuthError
        elif status == 404:
            cls = NotFoundError
        else:
            cls = BadRequestError
    return cls(description, code=code_s, status=status, method=method, portal=portal, hint=hint)
