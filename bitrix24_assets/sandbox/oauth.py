"""OAuth mode: apps with access + refresh tokens, a Bitrix-style token endpoint, expiry, and the
application's life cycle on the portal (install, ``event.bind``, uninstall).

REST calls authenticate with ``/rest/<method>?auth=<access_token>`` (or ``auth`` in the body).
An unknown token gives 401 ``invalid_token``; an expired one 401 ``expired_token`` so a client
can refresh at ``/oauth/token/?grant_type=refresh_token&client_id&client_secret&refresh_token``.
Refresh tokens rotate: a used refresh token stops working (as on oauth.bitrix.info).

Installing an app (admin ``POST /_sandbox/oauth/install``) issues the installing user's tokens and
a new application token, then POSTs them to the app's install handler in one of the two shapes
Bitrix24 documents (apidocs.bitrix24.com: settings/app-installation, local-integrations/
serverside-local-app-with-ui, api-reference/events/safe-event-handlers): the installation
callback / ``ONAPPINSTALL`` event form (``event``, ``data[...]``, ``ts``, ``auth[...]``), or the
installer page a browser opens (``AUTH_ID``, ``REFRESH_ID``, ``APPLICATION_TOKEN``, ``member_id``
in the body, ``DOMAIN``, ``PROTOCOL``, ``LANG``, ``APP_SID`` in the query). Uninstalling
(``POST /_sandbox/oauth/uninstall``) revokes every token of the app and POSTs ``ONAPPUNINSTALL``
(no OAuth tokens, only the application token) to the handlers the app bound with ``event.bind``;
the bindings go with the app.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from .clock import ModelledClock
from .errors import RestError
from .methods import CallContext, MethodResult, router
from .phpquery import http_build_query, upper_keys

if TYPE_CHECKING:
    from .portal import Portal

SERVER_ENDPOINT = "https://oauth.bitrix.info/rest/"


@dataclass
class OAuthApp:
    client_id: str
    client_secret: str
    user_id: int
    scopes: frozenset[str]
    expires_in: int = 3600
    application_token: str | None = None  # issued by each installation
    installed: bool = False
    bindings: dict[str, list[str]] = field(default_factory=dict)  # EVENT -> handler URLs


@dataclass
class OAuthRegistry:
    clock: ModelledClock
    apps: dict[str, OAuthApp] = field(default_factory=dict)
    _access: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (client_id, expires_at)
    _refresh: dict[str, str] = field(default_factory=dict)  # token -> client_id

    def create_app(self, *, scopes: frozenset[str], user_id: int = 1, expires_in: int = 3600) -> OAuthApp:
        app = OAuthApp(
            client_id=f"local.{secrets.token_hex(7)}",
            client_secret=secrets.token_urlsafe(24),
            user_id=user_id,
            scopes=scopes,
            expires_in=expires_in,
        )
        self.apps[app.client_id] = app
        return app

    def issue(self, app: OAuthApp, *, portal_info: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        access, refresh = secrets.token_hex(24), secrets.token_hex(24)
        self._access[access] = (app.client_id, now + app.expires_in)
        self._refresh[refresh] = app.client_id
        return {
            "access_token": access,
            "expires": int(now + app.expires_in),
            "expires_in": app.expires_in,
            "scope": ",".join(sorted(app.scopes)),
            "domain": "oauth.bitrix.info",
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "status": "L",
            "user_id": app.user_id,
            "refresh_token": refresh,
            **portal_info,
        }

    def authenticate(self, token: str) -> OAuthApp:
        found = self._access.get(token)
        if found is None:
            raise RestError(401, "invalid_token", "Unable to get application by token")
        client_id, expires_at = found
        if self.clock.now() >= expires_at:
            raise RestError(401, "expired_token", "The access token provided has expired.")
        return self.apps[client_id]

    def refresh(self, params: dict[str, Any], *, portal_info: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Token endpoint: (HTTP status, JSON body)."""
        grant = str(params.get("grant_type", ""))
        if grant != "refresh_token":
            return 400, {"error": "invalid_request", "error_description": "Unsupported grant_type"}
        app = self.apps.get(str(params.get("client_id", "")))
        if app is None:
            # b24pysdk: oauth.bitrix.info answers a wrong client_id with HTTP 200 + error
            return 200, {"error": "wrong_client", "error_description": "Wrong client"}
        if not secrets.compare_digest(str(params.get("client_secret", "")), app.client_secret):
            return 401, {"error": "invalid_client", "error_description": "Invalid client credentials"}
        token = str(params.get("refresh_token", ""))
        if self._refresh.get(token) != app.client_id:
            return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
        del self._refresh[token]
        return 200, self.issue(app, portal_info=portal_info)

    def get(self, client_id: Any) -> OAuthApp:
        app = self.apps.get(str(client_id or ""))
        if app is None:
            raise ValueError(f"no OAuth app {client_id!r}: create it with POST /_sandbox/oauth/apps")
        return app

    def install(self, app: OAuthApp, *, portal_info: dict[str, Any]) -> dict[str, Any]:
        """Install (or re-install) the app: a new application token and the installer's tokens."""
        app.application_token = secrets.token_hex(16)
        app.installed = True
        return self.issue(app, portal_info=portal_info)

    def uninstall(self, app: OAuthApp) -> list[str]:
        """Remove the app: its tokens stop working and its handlers go; returns the
        ``ONAPPUNINSTALL`` handlers to notify."""
        handlers = list(app.bindings.get("ONAPPUNINSTALL", []))
        app.installed = False
        app.bindings.clear()
        self._access = {t: v for t, v in self._access.items() if v[0] != app.client_id}
        self._refresh = {t: c for t, c in self._refresh.items() if c != app.client_id}
        return handlers

    def expire_all(self) -> int:
        """Expire every access token now (refresh tokens keep working)."""
        now = self.clock.now()
        for token, (client_id, _) in list(self._access.items()):
            self._access[token] = (client_id, now)
        return len(self._access)


# ---- event.bind / event.get / event.unbind (application context only) ---------------------------


def _calling_app(ctx: CallContext) -> OAuthApp:
    if ctx.auth_kind != "oauth":
        raise RestError(401, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method")
    return ctx.portal.oauth.get(ctx.auth_key.removeprefix("app:"))


def _event_and_handler(params: dict[str, Any]) -> tuple[str, str]:
    p = upper_keys(params)
    event, handler = str(p.get("EVENT") or "").strip().upper(), str(p.get("HANDLER") or "").strip()
    if not event or not handler.startswith(("http://", "https://")):
        raise RestError(400, "ERROR_EVENT_NOT_FOUND", "Event and handler URL are required")
    return event, handler


@router.method("event.bind")
def event_bind(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    app = _calling_app(ctx)
    event, handler = _event_and_handler(params)
    handlers = app.bindings.setdefault(event, [])
    if handler in handlers:
        raise RestError(400, "", "Handler already binded")
    handlers.append(handler)
    return MethodResult(True)


@router.method("event.unbind")
def event_unbind(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    app = _calling_app(ctx)
    event, handler = _event_and_handler(params)
    handlers = app.bindings.get(event, [])
    count = handlers.count(handler)
    app.bindings[event] = [h for h in handlers if h != handler]
    return MethodResult({"count": count})


@router.method("event.get")
def event_get(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    app = _calling_app(ctx)
    return MethodResult(
        [
            {"event": event, "handler": handler, "auth_type": "0", "offline": 0}
            for event, handlers in app.bindings.items()
            for handler in handlers
        ]
    )


# ---- install / uninstall (admin API) ------------------------------------------------------------


def install_event_form(portal: Portal, app: OAuthApp, tokens: dict[str, Any]) -> list[tuple[str, str]]:
    """The installation callback / ``ONAPPINSTALL`` event as a form (PHP bracket keys)."""
    now = int(portal.clock.now())
    return http_build_query(
        {
            "event": "ONAPPINSTALL",
            "data": {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "en"},
            "ts": str(now),
            "auth": {
                "access_token": tokens["access_token"],
                "expires": str(tokens["expires"]),
                "expires_in": str(tokens["expires_in"]),
                "scope": tokens["scope"],
                "domain": portal.domain,
                "server_endpoint": SERVER_ENDPOINT,
                "status": "L",
                "client_endpoint": f"{portal.base_url}/rest/",
                "member_id": portal.member_id,
                "user_id": str(app.user_id),
                "refresh_token": tokens["refresh_token"],
                "application_token": app.application_token or "",
            },
        }
    )


def placement_form(
    portal: Portal, app: OAuthApp, tokens: dict[str, Any]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The installer page's request: (query pairs, body pairs)."""
    query = [("DOMAIN", portal.domain), ("PROTOCOL", "0"), ("LANG", "en"), ("APP_SID", secrets.token_hex(16))]
    body = [
        ("AUTH_ID", str(tokens["access_token"])),
        ("AUTH_EXPIRES", str(tokens["expires_in"])),
        ("REFRESH_ID", str(tokens["refresh_token"])),
        ("SERVER_ENDPOINT", SERVER_ENDPOINT),
        ("APPLICATION_TOKEN", app.application_token or ""),
        ("APPLICATION_SCOPE", str(tokens["scope"])),
        ("member_id", portal.member_id),
        ("status", "L"),
        ("PLACEMENT", "DEFAULT"),
        ("PLACEMENT_OPTIONS", "{}"),
    ]
    return query, body


def uninstall_event_form(portal: Portal, app: OAuthApp, *, clean: bool) -> list[tuple[str, str]]:
    """``ONAPPUNINSTALL``: no OAuth tokens (the app is gone), only the application token."""
    return http_build_query(
        {
            "event": "ONAPPUNINSTALL",
            "data": {"LANGUAGE_ID": "en", "CLEAN": "1" if clean else "0"},
            "ts": str(int(portal.clock.now())),
            "auth": {
                "domain": portal.domain,
                "client_endpoint": f"{portal.base_url}/rest/",
                "server_endpoint": SERVER_ENDPOINT,
                "member_id": portal.member_id,
                "application_token": app.application_token or "",
            },
        }
    )


async def deliver(
    url: str, body: list[tuple[str, str]], query: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """POST one form to a handler (as Bitrix24 does, once, no retry); the handler's answer."""
    target = f"{url}{'&' if '?' in url else '?'}{urlencode(query)}" if query else url
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:
            response = await client.post(
                target, content=urlencode(body), headers={"Content-Type": "application/x-www-form-urlencoded"}
            )
    except httpx.HTTPError as exc:
        return {"url": url, "status": 0, "answer": type(exc).__name__}
    return {"url": url, "status": response.status_code, "answer": response.text[:2000]}


async def install_app(portal: Portal, body: dict[str, Any]) -> dict[str, Any]:
    """Admin: install an app on this portal and call its install handler.

    ``body``: ``handler_url`` (required), ``client_id`` (an app made by ``/oauth/apps``; a new one
    when absent, with ``scopes``/``user_id``/``expires_in``), ``variant`` (``"event"``: the
    installation callback / ONAPPINSTALL form, default; ``"placement"``: the installer page),
    ``page_token`` (placement only, default true: false leaves ``APPLICATION_TOKEN`` out of the page,
    as older portals do). After the installer page, the portal counts the app installed (the page's
    ``BX24.installFinish()``) and sends ``ONAPPINSTALL`` to the handlers the app bound to it.
    """
    url = str(body.get("handler_url") or "")
    if not url.startswith(("http://", "https://")):
        raise ValueError("handler_url must be an http(s) URL")
    variant = str(body.get("variant") or "event")
    if variant not in ("event", "placement"):
        raise ValueError("variant must be 'event' or 'placement'")
    if body.get("client_id"):
        app = portal.oauth.get(body["client_id"])
    else:
        from .methods.system import ALL_SCOPES

        app = portal.oauth.create_app(
            scopes=frozenset(str(s) for s in body.get("scopes", list(ALL_SCOPES))),
            user_id=int(body.get("user_id", 1)),
            expires_in=int(body.get("expires_in", 3600)),
        )
    tokens = portal.oauth.install(app, portal_info=portal.oauth_portal_info())
    if variant == "event":
        query: list[tuple[str, str]] = []
        form = install_event_form(portal, app, tokens)
    else:
        query, form = placement_form(portal, app, tokens)
        if not body.get("page_token", True):
            form = [(k, v) for k, v in form if k != "APPLICATION_TOKEN"]
    delivered = await deliver(url, form, query)
    finished: list[dict[str, Any]] = []
    if variant == "placement":
        for handler in list(app.bindings.get("ONAPPINSTALL", [])):
            event_form = install_event_form(
                portal, app, portal.oauth.issue(app, portal_info=portal.oauth_portal_info())
            )
            finished.append(await deliver(handler, event_form))
    return {
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "token_url": f"{portal.base_url}/oauth/token/",
        "member_id": portal.member_id,
        "domain": portal.domain,
        "application_token": app.application_token,
        "variant": variant,
        "query": query,
        "form": form,
        "install_event": finished,
        **delivered,
    }


async def uninstall_app(portal: Portal, body: dict[str, Any]) -> dict[str, Any]:
    """Admin: remove an app; ``ONAPPUNINSTALL`` goes to the handlers it bound (and ``handler_url``)."""
    app = portal.oauth.get(body.get("client_id"))
    form = uninstall_event_form(portal, app, clean=bool(body.get("clean", False)))
    handlers = portal.oauth.uninstall(app)
    if body.get("handler_url"):
        handlers.append(str(body["handler_url"]))
    return {"form": form, "delivered": [await deliver(url, form) for url in handlers]}
