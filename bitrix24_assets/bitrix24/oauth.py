"""OAuth 2.0 credentials of a Bitrix24 application and their refresh (docs/bitrix24-rest-api.md §1.1, §5).

Calls go to ``client_endpoint`` (``https://<domain>/rest/``) with ``auth=<access token>`` in the JSON
body (never the URL, so it cannot reach an access log). When the portal answers 401 ``expired_token``
the client refreshes once through ``token_url`` (``https://oauth.bitrix.info/oauth/token/`` in the
cloud) with ``grant_type=refresh_token``, stores the new pair here and hands it to
``on_token_refresh`` so the caller can persist it: Bitrix24 rotates the refresh token on every
refresh, and a lost refresh token means re-installing the application.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

__all__ = ["DEFAULT_TOKEN_URL", "OAuthCredentials"]

DEFAULT_TOKEN_URL = "https://oauth.bitrix.info/oauth/token/"


class OAuthCredentials(BaseModel):
    """Access + refresh token of one application on one portal. Secrets never show in ``repr``.

    Parameters:
        client_id, client_secret: the application's keys.
        access_token, refresh_token: the current pair.
        client_endpoint: ``https://<domain>/rest/``; derived from ``domain`` when omitted.
        domain: the portal host (``acme.bitrix24.ru``), used when ``client_endpoint`` is omitted.
        token_url: the OAuth server's token endpoint.
        expires_at: modelled Unix time the access token expires (refreshed a little before), optional.
    """

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    client_id: str
    client_secret: SecretStr
    access_token: SecretStr
    refresh_token: SecretStr
    client_endpoint: str | None = None
    domain: str | None = None
    token_url: str = DEFAULT_TOKEN_URL
    expires_at: float | None = None

    @model_validator(mode="after")
    def _endpoint(self) -> OAuthCredentials:
        if not self.client_endpoint:
            if not self.domain:
                raise ValueError("OAuthCredentials need client_endpoint or domain (e.g. 'acme.bitrix24.ru')")
            host = self.domain if "://" in self.domain else f"https://{self.domain}"
            object.__setattr__(self, "client_endpoint", host.rstrip("/") + "/rest/")
        elif not self.client_endpoint.endswith("/"):
            object.__setattr__(self, "client_endpoint", self.client_endpoint + "/")
        return self

    def apply_refresh(self, body: dict[str, Any]) -> None:
        """Take the new tokens (and endpoint, if the portal moved) from a token-endpoint answer.

        The answer's ``domain`` is the OAuth server's (``oauth.bitrix.info``), not the portal's, so
        the portal's host is read from ``client_endpoint`` instead.
        """
        self.access_token = SecretStr(str(body["access_token"]))
        if body.get("refresh_token"):
            self.refresh_token = SecretStr(str(body["refresh_token"]))
        if body.get("client_endpoint"):
            self.client_endpoint = str(body["client_endpoint"])
            host = httpx.URL(self.client_endpoint).netloc.decode("ascii", "replace")
            if host:
                self.domain = host

    def to_storage(self) -> dict[str, Any]:
        """Plain dict (secrets revealed) for the caller to persist; never log it."""
        data = self.model_dump()
        for key in ("client_secret", "access_token", "refresh_token"):
            data[key] = getattr(self, key).get_secret_value()
        return data
