"""Outgoing events (docs/bitrix24-rest-api.md §7.2-7.3): form-encoded PHP-nested POSTs, fire-and-forget, no
retry.

The portal calls :meth:`EventSender.emit` after every write (API or admin). When a handler URL and
application token are configured (an outgoing webhook), and for every handler an installed OAuth app
bound to the event with ``event.bind`` (with that app's application token), one POST per change is
scheduled on the event loop:

    event=ONTASKUPDATE&event_handler_id=1&data[FIELDS_BEFORE][ID]=123&...&ts=1766047124
    &auth[domain]=...&auth[client_endpoint]=...&auth[server_endpoint]=...&auth[member_id]=...
    &auth[application_token]=...

Failures are counted and dropped (Bitrix logs them and the event is lost). An optional modelled
delay stands in for the queue server.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from .phpquery import http_build_query

if TYPE_CHECKING:
    from .portal import Portal

log = logging.getLogger("bitrix24_assets.sandbox.outgoing")


@dataclass
class EventSender:
    portal: Portal
    handler_url: str | None = None
    application_token: str | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _client: httpx.AsyncClient | None = None

    @property
    def configured(self) -> bool:
        return bool(self.handler_url and self.application_token)

    def configure(self, handler_url: str | None, application_token: str | None) -> None:
        self.handler_url = handler_url or None
        self.application_token = application_token or None

    def payload(
        self, event: str, data: dict[str, Any], application_token: str | None = None
    ) -> list[tuple[str, str]]:
        portal = self.portal
        pairs = [("event", event), ("event_handler_id", str(portal.config.event_handler_id))]
        pairs += http_build_query({"data": data})
        pairs.append(("ts", str(int(portal.clock.now()))))
        pairs += http_build_query(
            {
                "auth": {
                    "domain": portal.domain,
                    "client_endpoint": f"{portal.base_url}/rest/",
                    "server_endpoint": "https://oauth.bitrix.info/rest/",
                    "member_id": portal.member_id,
                    "application_token": application_token or self.application_token or "",
                }
            }
        )
        return pairs

    def emit(self, event: str, data: dict[str, Any]) -> None:
        """Schedule one POST to the outgoing webhook (if configured) and one to each handler an
        installed OAuth app bound to ``event`` (with that app's application token). Must be called
        on the server's event loop."""
        targets = [(self.handler_url or "", urlencode(self.payload(event, data)))] if self.configured else []
        for app in self.portal.oauth.apps.values():
            for url in app.bindings.get(event, []) if app.installed else []:
                targets.append((url, urlencode(self.payload(event, data, app.application_token))))
        if not targets:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - writes always happen on the loop
            return
        for url, body in targets:
            task = loop.create_task(self._send(url, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, url: str, body: str) -> None:
        """POST once to the handler configured when the change happened; count, never retry."""
        counters = self.portal.counters
        await self.portal.clock.sleep(self.portal.config.event_delay)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10.0)
        try:
            response = await self._client.post(
                url, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
            )
            if response.status_code >= 400:
                counters.events_failed += 1
            else:
                counters.events_sent += 1
        except httpx.HTTPError as exc:
            counters.events_failed += 1
            log.info("outgoing event to the handler failed and is dropped (no retry): %s", type(exc).__name__)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
