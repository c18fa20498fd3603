"""Keep query strings out of the receiver's access log.

uvicorn logs every request as ``<client> - "POST <path>?<query> HTTP/1.1" 200``. Bitrix24 sends its
token in the body, but a handler URL typed with ``?auth=...`` or ``?application_token=...`` (or a
caller probing the receiver) puts secrets in the query, and from there into every log line. The
receiver reads nothing from the query, so the access log shows ``?***`` in its place; the path goes
through :func:`~bitrix24_assets.bitrix24.redaction.redact` too (a webhook URL pasted as a path).

The filter sits on the ``uvicorn.access`` logger, so it applies whatever handlers and formatters a
deployment configures (uvicorn's ``dictConfig`` adds handlers but never removes a logger's filters).
"""

from __future__ import annotations

import logging
import re

from bitrix24_assets.bitrix24.redaction import MASK, redact

__all__ = ["ACCESS_LOGGER", "QueryStringFilter", "install_access_log_filter", "without_query"]

ACCESS_LOGGER = "uvicorn.access"

# a request line already formatted into the message: "POST /path?query HTTP/1.1"
_REQUEST_LINE_QUERY = re.compile(r"(\b[A-Z]+ [^\s?\"]*)\?[^\s\"]*")


def without_query(path: str) -> str:
    """``/bitrix24/events/<id>?auth=x`` -> ``/bitrix24/events/<id>?***`` (the mark says one was sent)."""
    path, question, _ = path.partition("?")
    return redact(path) + (f"?{MASK}" if question else "")


class QueryStringFilter(logging.Filter):
    """Replaces the query of the request path in uvicorn's access records (args or message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            # uvicorn's access record: (client_addr, method, full_path, http_version, status_code)
            record.args = (args[0], args[1], without_query(args[2]), args[3], args[4])
        elif isinstance(record.msg, str) and not args:
            record.msg = _REQUEST_LINE_QUERY.sub(lambda m: f"{m.group(1)}?{MASK}", redact(record.msg))
        return True


def install_access_log_filter() -> None:
    """Put the filter on ``uvicorn.access`` once per process (idempotent)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, QueryStringFilter) for f in logger.filters):
        logger.addFilter(QueryStringFilter())
