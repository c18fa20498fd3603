"""REST errors as Bitrix24 sends them: an HTTP status and ``{"error", "error_description"}``."""

from __future__ import annotations

from typing import Any


class RestError(Exception):
    """An error response. Handlers raise it; the app turns it into the error envelope (no ``time``)."""

    def __init__(self, status: int, code: str, description: str, **extra: Any) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.extra = extra
        self.cost = 0.0  # modelled seconds the failed call took (set by the portal that ran it)

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description, **self.extra}


def method_not_found() -> RestError:
    return RestError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")


def insufficient_scope(*, oauth: bool = False, in_batch: bool = False) -> RestError:
    if in_batch:
        return RestError(403, "insufficient_scope", "")
    holder = "access token" if oauth else "webhook token"
    return RestError(
        403, "insufficient_scope", f"The request requires higher privileges than provided by the {holder}"
    )


def query_limit_exceeded() -> RestError:
    return RestError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")


def operation_time_limit() -> RestError:
    return RestError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")


def internal_error() -> RestError:
    return RestError(500, "INTERNAL_SERVER_ERROR", "Internal server error")
