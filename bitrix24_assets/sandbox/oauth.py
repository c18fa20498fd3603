"""OAuth mode: apps with access + refresh tokens, a Bitrix-style token endpoint, expiry.

REST calls authenticate with ``/rest/<method>?auth=<access_token>`` (or ``auth`` in the body).
An unknown token gives 401 ``invalid_token``; an expired one 401 ``expired_token`` so a client
can refresh at ``/oauth/token/?grant_type=refresh_token&client_id&client_secret&refresh_token``.
Refresh tokens rotate: a used refresh token stops working (as on oauth.bitrix.info).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from .clock import ModelledClock
from .errors import RestError


@dataclass
class OAuthApp:
    client_id: str
    client_secret: str
    user_id: int
    scopes: frozenset[str]
    expires_in: int = 3600


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

    def expire_all(self) -> int:
        """Expire every access token now (refresh tokens keep working)."""
        now = self.clock.now()
        for token, (client_id, _) in list(self._access.items()):
            self._access[token] = (client_id, now)
        return len(self._access)
