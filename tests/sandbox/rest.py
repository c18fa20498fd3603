"""Tiny HTTP helpers for the sandbox conformance tests (plain httpx, no project client)."""

from __future__ import annotations

from typing import Any

import httpx

from bitrix24_assets.sandbox import SandboxHandle
from bitrix24_assets.sandbox.phpquery import http_build_query

_client = httpx.Client(timeout=30.0)


def post(portal: SandboxHandle | str, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
    """JSON POST to ``<webhook>/<method>`` (a webhook URL string or the portal's admin webhook)."""
    base = portal if isinstance(portal, str) else portal.webhook_url
    return _client.post(base + method, json=params or {})


def form(portal: SandboxHandle | str, method: str, params: dict[str, Any]) -> httpx.Response:
    """Form POST with PHP bracket keys, as PHP's http_build_query encodes them."""
    base = portal if isinstance(portal, str) else portal.webhook_url
    return _client.post(base + method, data=dict(http_build_query(params)))


def get(portal: SandboxHandle | str, method: str, query: str = "") -> httpx.Response:
    base = portal if isinstance(portal, str) else portal.webhook_url
    return _client.get(base + method + (f"?{query}" if query else ""))


def result(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["result"]


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert "time" not in body and "result" not in body, body
    return response.status_code, body["error"], body["error_description"]
