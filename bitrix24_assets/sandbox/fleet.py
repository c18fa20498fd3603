"""Many small portals in one sandbox process (benches and tests of the hourly fleet).

Each portal has its own listening port on 127.0.0.1, so it is its own origin: the client paces
per origin as Bitrix24 counts per portal, and every portal keeps its own leaky bucket, operating
budget, costs, counters and webhook. One uvicorn server serves all the ports and routes a request
by the port it arrived on.

Memory-light: portals built from one of a few seeded templates share that template's data (the
hourly sync only reads it); a write through one portal's admin API is seen by every portal of its
template. ``python -m bitrix24_assets.sandbox.fleet --portals 1000 --urls-file urls.json`` serves
them until SIGINT/SIGTERM and writes the webhook URLs (secrets of the sandbox only) to the file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import Receive, Scope, Send

from .app import build_app
from .config import SandboxConfig
from .portal import Portal
from .server import _Server, _uvicorn_config, bind_socket
from .store import PortalState

__all__ = ["FleetHandle", "build_fleet", "main", "running_fleet"]


class _TemplatePortal(Portal):
    """A portal whose data is a shared template's (seeding 200 tasks costs ~0.1 s per portal)."""

    def __init__(self, config: SandboxConfig, template: PortalState) -> None:
        self._template = template
        super().__init__(config)

    def reseed(self) -> None:
        self.state = self._template


@dataclass
class FleetHandle:
    """The running portals, in order; ``webhook_urls[i]`` opens ``portals[i]``."""

    portals: list[Portal]

    @property
    def webhook_urls(self) -> list[str]:
        return [p.webhook_url(p.admin_webhook) for p in self.portals]


def _token(index: int, seed: int) -> str:
    return hashlib.sha1(f"sandbox-fleet-{seed}-{index}".encode()).hexdigest()[:16]


def build_fleet(count: int, config: SandboxConfig, templates: int = 8) -> list[Portal]:
    """``count`` portals like ``config``; portal ``i`` has template ``i % templates`` (seed + t)."""
    seeded = [
        Portal(dataclasses.replace(config, seed=config.seed + t)).state for t in range(max(1, templates))
    ]
    return [
        _TemplatePortal(
            dataclasses.replace(
                config, seed=config.seed + i % len(seeded), webhook_token=_token(i, config.seed)
            ),
            seeded[i % len(seeded)],
        )
        for i in range(count)
    ]


class _ByPort:
    """ASGI app: the portal of the port a request arrived on (its Starlette app built on first use)."""

    def __init__(self, portals: dict[int, Portal]) -> None:
        self.portals = portals
        self.apps: dict[int, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") or ("", 0)
        port = int(server[1] or 0)
        app = self.apps.get(port)
        if app is None:
            app = self.apps[port] = build_app(self.portals[port])
        await app(scope, receive, send)


@contextlib.contextmanager
def running_fleet(
    count: int, config: SandboxConfig | None = None, templates: int = 8
) -> Iterator[FleetHandle]:
    """Serve ``count`` portals on free ports of 127.0.0.1 in a background thread; stop them on exit."""
    config = config or SandboxConfig()
    portals = build_fleet(count, config, templates)
    sockets: list[socket.socket] = []
    by_port: dict[int, Portal] = {}
    try:
        for portal in portals:
            sock = bind_socket(config.host, 0)
            sockets.append(sock)
            host, port = sock.getsockname()[:2]
            portal.bind(host, port)
            by_port[port] = portal
        server = _Server(_uvicorn_config(_ByPort(by_port)))
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=sockets)),
            name="bitrix24-sandbox-fleet",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox fleet of {count} portals did not start")
            time.sleep(0.01)
        try:
            yield FleetHandle(portals)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    finally:
        for sock in sockets:
            sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--portals", type=int, default=200)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--templates", type=int, default=8)
    parser.add_argument("--profile", default="cloud", choices=["instant", "cloud", "enterprise"])
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument(
        "--urls-file", type=Path, required=True, help="where to write the webhook URLs (JSON)"
    )
    args = parser.parse_args(argv)
    config = SandboxConfig(
        users=args.users,
        tasks=args.tasks,
        events=args.events,
        seed=args.seed,
        profile=args.profile,
        time_scale=args.time_scale,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with running_fleet(args.portals, config, args.templates) as fleet:
        tmp = args.urls_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(fleet.webhook_urls))
        tmp.replace(args.urls_file)
        print(f"Serving {args.portals} sandbox portals; webhook URLs in {args.urls_file}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
