"""The ASGI app: the REST surface ``/rest/...``, the token endpoint ``/oauth/token/``, admin ``/_sandbox/``.

Transport rules (docs/bitrix24-rest-api.md §1): ``/rest/{user_id}/{token}/{method}[.json]`` for webhooks,
``/rest/{method}?auth=...`` for OAuth; GET query, form POST with PHP brackets, JSON POST; method
names case-insensitive; ``Content-Type: application/json; charset=utf-8``; errors are
``{"error", "error_description"}`` with their HTTP status and never a stack trace.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from .admin import admin_routes
from .errors import RestError, internal_error, method_not_found, query_limit_exceeded
from .faults import AFTER_CALL
from .methods import CallContext
from .phpquery import PhpArray, php_map, request_params
from .portal import Portal

log = logging.getLogger("bitrix24_assets.sandbox")
JSON_TYPE = "application/json; charset=utf-8"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        media_type=JSON_TYPE,
        headers=headers,
    )


def error_response(error: RestError) -> Response:
    return json_response(error.body(), error.status)


class BrokenResponse(Response):
    """Fault injection: headers promise a body that never (fully) arrives."""

    def __init__(self, body: bytes, declared_length: int) -> None:
        super().__init__()
        self._partial = body
        self._declared = declared_length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", JSON_TYPE.encode()),
                        (b"content-length", str(self._declared).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": self._partial, "more_body": False})
        except Exception:  # the server refuses the short body and closes the connection: intended
            return


async def read_params(request: Request) -> PhpArray:
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    form_pairs: list[tuple[str, Any]] | None = None
    if media == "multipart/form-data":
        try:
            form = await request.form()
            form_pairs = [(k, v if isinstance(v, str) else "") for k, v in form.multi_items()]
        except Exception:
            form_pairs = None
    return request_params(request.url.query, content_type, body, form_pairs, request.method == "POST")


def split_path(path: str) -> tuple[str | None, str | None, str]:
    """``1/tok/user.get.json`` -> ("1", "tok", "user.get"); ``user.get`` -> (None, None, "user.get")."""
    parts = [p for p in path.split("/") if p != ""]
    method = parts[-1] if parts else ""
    if method.lower().endswith(".json"):
        method = method[: -len(".json")]
    if len(parts) == 3:
        return parts[0], parts[1], method.lower()
    if len(parts) == 1:
        return None, None, method.lower()
    return "", "", ""  # malformed (e.g. the USER_ID segment is missing)


def build_app(portal: Portal) -> Starlette:
    async def rest(request: Request) -> Response:
        portal.counters.requests += 1
        arrived = portal.clock.now()
        user_id, token, method = split_path(request.path_params.get("path", ""))
        try:
            params = await read_params(request)
        except Exception:
            params = {}
        auth_token = params.pop("auth", None)
        fault = portal.faults.draw(method) if method else None
        if fault:
            portal.count(portal.counters.faults, fault)
            if fault == "slow":
                await portal.clock.sleep(portal.faults.plan.slow_seconds)
            elif fault not in AFTER_CALL:
                return _fault_response(fault)
        try:
            if user_id == "" and token == "":
                raise method_not_found()
            portal.admit()
            ctx: CallContext = (
                portal.authenticate_webhook(user_id, token or "")
                if user_id is not None
                else portal.authenticate_oauth(auth_token)
            )
            outcome = await portal.call(ctx, method, params, start=arrived)
        except RestError as exc:
            if exc.code in (
                "NO_AUTH_FOUND",
                "INVALID_CREDENTIALS",
                "invalid_token",
                "expired_token",
                "ERROR_METHOD_NOT_FOUND",
                "insufficient_scope",
            ):
                portal.count(portal.counters.errors, exc.code)
            return error_response(exc)
        except Exception:
            log.exception("sandbox request failed")
            return error_response(internal_error())
        headers = {}
        if portal.budget.enabled:
            headers = {
                "X-Bitrix-Rest-Time": f"{outcome.processing:.4f}",
                "X-Bitrix-Rest-User-Time": f"{outcome.processing * 0.8:.4f}",
                "X-Bitrix-Rest-System-Time": f"{outcome.processing * 0.2:.4f}",
            }
        body = portal.envelope(outcome)
        if fault in AFTER_CALL:
            return _spoiled(fault, body, portal, headers)
        return json_response(body, 200, headers)

    async def token(request: Request) -> Response:
        params = await read_params(request)
        status, body = portal.oauth.refresh(params, portal_info=portal.oauth_portal_info())
        return json_response(body, status)

    async def not_found(request: Request) -> Response:
        return error_response(method_not_found())

    routes = [
        Route("/rest/{path:path}", rest, methods=["GET", "POST"]),
        Route("/oauth/token/", token, methods=["GET", "POST"]),
        Route("/oauth/token", token, methods=["GET", "POST"]),
        Mount("/_sandbox", routes=admin_routes(portal)),
        Route("/rest", not_found, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.portal = portal
    return app


def _fault_response(kind: str) -> Response:
    if kind == "500":
        return error_response(internal_error())
    if kind == "query_limit":
        return error_response(query_limit_exceeded())
    if kind in ("502", "503"):
        title = "502 Bad Gateway" if kind == "502" else "503 Service Temporarily Unavailable"
        html = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        return Response(html, status_code=int(kind), media_type="text/html")
    if kind == "truncate":
        return Response(
            b'{"result":{"tasks":[{"id":"1","title":"Trunc', status_code=200, media_type=JSON_TYPE
        )
    return BrokenResponse(b"", 4096)  # drop


# What PHP prints before the JSON when a module raises a notice with display_errors on.
_PHP_NOTICE = (
    b'<br />\n<b>Warning</b>:  Undefined array key "ID" in '
    b"<b>/home/bitrix/www/bitrix/modules/rest/lib/api/user.php</b> on line <b>412</b><br />\n"
)
_RESULT_MAPS = ("result", "result_error", "result_total", "result_next", "result_time")


def _spoiled(kind: str, body: dict[str, Any], portal: Portal, headers: dict[str, str]) -> Response:
    """An answer of a call that ran, spoiled on its way out (``garbled``, ``empty``, ``missing_key``,
    ``drop_after``)."""
    if kind == "drop_after":
        return BrokenResponse(b"", 4096)
    if kind == "garbled":
        raw = _PHP_NOTICE + json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return Response(raw, status_code=200, media_type=JSON_TYPE, headers=headers)
    if kind == "empty":
        return json_response({"result": [], "time": body["time"]}, 200, headers)
    inner = body.get("result")  # missing_key: batch answers only
    if isinstance(inner, dict):
        maps = {name: _as_dict(inner.get(name)) for name in _RESULT_MAPS}
        keys = sorted({key for m in maps.values() for key in m})
        gone = portal.faults.pick(keys)
        for name, mapping in maps.items():
            if gone is not None:
                mapping.pop(gone, None)
            inner[name] = php_map(mapping)
    return json_response(body, 200, headers)


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}
