"""Serving a portal: in-process (``running_sandbox``) for tests/benches, or in the foreground (CLI).

``running_sandbox`` binds a socket on a free 127.0.0.1 port *before* starting uvicorn in a
background thread (no port race), waits until it serves, and yields a :class:`SandboxHandle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from .app import build_app
from .config import SandboxConfig
from .portal import Portal
from .store import PortalState


class AdminClient:
    """Small sync helper for the ``/_sandbox/`` admin surface (see README.md for the shapes)."""

    def __init__(self, base_url: str) -> None:
        self._http = httpx.Client(base_url=f"{base_url}/_sandbox", timeout=30.0)

    def _do(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(
                f"sandbox admin {method} {path} failed: {response.status_code} {response.text}"
            )
        return response.json()

    def info(self) -> dict[str, Any]:
        return self._do("GET", "/")

    def reset(self) -> dict[str, Any]:
        return self._do("POST", "/reset")

    def counters(self) -> dict[str, Any]:
        return self._do("GET", "/counters")

    def limits(self) -> dict[str, Any]:
        return self._do("GET", "/limits")

    def advance(self, seconds: float) -> dict[str, Any]:
        """Move the modelled clock forward (expire buckets, tokens, budget windows)."""
        return self._do("POST", "/clock", {"advance": seconds})

    def create_webhook(self, scopes: list[str], user_id: int = 1) -> dict[str, Any]:
        return self._do("POST", "/webhooks", {"scopes": scopes, "user_id": user_id})

    def set_webhook_scopes(self, webhook_id: int, scopes: list[str]) -> dict[str, Any]:
        return self._do("PATCH", f"/webhooks/{webhook_id}", {"scopes": scopes})

    def add_user(self, **fields: Any) -> dict[str, Any]:
        return self._do("POST", "/users", fields)

    def update_user(self, user_id: int, **fields: Any) -> dict[str, Any]:
        return self._do("PATCH", f"/users/{user_id}", fields)

    def deactivate_user(self, user_id: int) -> dict[str, Any]:
        return self.update_user(user_id, ACTIVE=False)

    def add_task(self, **fields: Any) -> dict[str, Any]:
        return self._do("POST", "/tasks", fields)

    def update_task(self, task_id: int, **fields: Any) -> dict[str, Any]:
        return self._do("PATCH", f"/tasks/{task_id}", fields)

    def delete_task(self, task_id: int) -> dict[str, Any]:
        return self._do("DELETE", f"/tasks/{task_id}")

    def add_event(self, **fields: Any) -> dict[str, Any]:
        return self._do("POST", "/events", fields)

    def update_event(self, event_id: int, **fields: Any) -> dict[str, Any]:
        return self._do("PATCH", f"/events/{event_id}", fields)

    def delete_event(self, event_id: int) -> dict[str, Any]:
        return self._do("DELETE", f"/events/{event_id}")

    def set_faults(self, **plan: Any) -> dict[str, Any]:
        return self._do("POST", "/faults", plan)

    def clear_faults(self) -> dict[str, Any]:
        return self._do("DELETE", "/faults")

    def override(
        self,
        entity: str,
        record_id: int,
        fields: dict[str, Any] | None = None,
        remove: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Make a stored record render these values (``entity``: users, tasks or events)."""
        body = {"entity": entity, "id": record_id, "fields": fields or {}, "remove": remove or []}
        return self._do("POST", "/overrides", body)

    def clear_overrides(self) -> dict[str, Any]:
        return self._do("DELETE", "/overrides")

    def create_oauth_app(self, scopes: list[str] | None = None, expires_in: int = 3600) -> dict[str, Any]:
        body: dict[str, Any] = {"expires_in": expires_in}
        if scopes is not None:
            body["scopes"] = scopes
        return self._do("POST", "/oauth/apps", body)

    def expire_tokens(self) -> dict[str, Any]:
        return self._do("POST", "/oauth/expire")

    def set_event_handler(self, url: str | None, application_token: str | None) -> dict[str, Any]:
        return self._do("PUT", "/event-handler", {"url": url, "application_token": application_token})

    def notifications(self) -> list[dict[str, Any]]:
        return self._do("GET", "/notifications")

    def close(self) -> None:
        self._http.close()


@dataclass
class SandboxHandle:
    """A running portal: URLs, admin helper, and the live state (read-only use)."""

    portal: Portal
    admin: AdminClient

    @property
    def base_url(self) -> str:
        return self.portal.base_url

    @property
    def webhook_url(self) -> str:
        return self.portal.webhook_url(self.portal.admin_webhook)

    @property
    def state(self) -> PortalState:
        return self.portal.state

    @property
    def config(self) -> SandboxConfig:
        return self.portal.config


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # a background thread must not touch signals
        return


def _uvicorn_config(app: Any, **kwargs: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30, **kwargs
    )


def bind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit TCP_NODELAY on Linux; without it small JSON replies wait ~40 ms
    # for a delayed ACK (Nagle), which would swamp the modelled costs
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@contextlib.contextmanager
def running_sandbox(config: SandboxConfig | None = None) -> Iterator[SandboxHandle]:
    """Start a portal on a free 127.0.0.1 port in a background thread; stop it on exit."""
    config = config or SandboxConfig()
    portal = Portal(config)
    sock = bind_socket(config.host, config.port)
    host, port = sock.getsockname()[:2]
    portal.bind(host, port)
    server = _Server(_uvicorn_config(build_app(portal)))
    thread = threading.Thread(
        target=lambda: asyncio.run(_serve(server, portal, sock)), name=f"bitrix24-sandbox-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the sandbox portal on {host}:{port} did not start")
        time.sleep(0.005)
    admin = AdminClient(portal.base_url)
    try:
        yield SandboxHandle(portal, admin)
    finally:
        admin.close()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


async def _serve(server: uvicorn.Server, portal: Portal, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    finally:
        await portal.events.close()
