"""Proving an install request came from Bitrix24 for *our* application, before anything is stored.

Anyone can POST an install form, and every field in it, ``client_endpoint`` and ``domain``
included, is the sender's word. So the install's refresh token is exchanged at the OAuth server the
application is configured with (``BITRIX24_APP_TOKEN_URL``, never a URL from the request), with the
application's own ``client_id``/``client_secret``: the server only accepts a refresh token it issued
to this application, and its answer names the portal (``member_id``, ``client_endpoint``), which must
be the portal the request names. Then the portal itself must accept the new access token, and its
user must be an administrator (``profile``). Bitrix24 rotates refresh tokens
(docs/bitrix24-rest-api.md §1.1), so the pair this returns is the one to store; the request's pair
is spent, and a replayed install is refused.

``bind_app_events`` then binds the application's events to the receiver: Bitrix24 sends an
application's events only to handlers it bound with ``event.bind`` (api-reference/events/event-bind).
A failed binding is logged, not fatal: the account still syncs on schedule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from bitrix24_assets.bitrix24 import Bitrix24Client, Bitrix24Error, OAuthCredentials, errors

from .install_form import INSTALL_EVENT, UNINSTALL_EVENT, AppInstall

__all__ = [
    "InstallRefused",
    "InstallUnverifiable",
    "NotAnAdministrator",
    "VerifiedInstall",
    "bind_app_events",
    "lifecycle_events",
    "verify_install",
]

logger = logging.getLogger("bitrix24_assets.webhooks.install")

TIMEOUT_SECONDS = 20.0


class InstallRefused(Exception):
    """The request's tokens are not this application's tokens for that portal (answer 401)."""


class NotAnAdministrator(InstallRefused):
    """The tokens are genuine but their user is not a portal administrator (answer 403)."""


class InstallUnverifiable(Exception):
    """The OAuth server or the portal could not be asked (answer 503; Bitrix24 does not retry)."""


class VerifiedInstall(BaseModel):
    """What the OAuth server vouched for: the portal and a fresh token pair. ``repr`` hides secrets."""

    model_config = ConfigDict(frozen=True)

    member_id: str
    domain: str
    client_endpoint: str
    access_token: SecretStr
    refresh_token: SecretStr
    expires_at: float | None = None
    scope: tuple[str, ...] = ()

    def credentials(self, client_id: str, client_secret: SecretStr, token_url: str) -> OAuthCredentials:
        return OAuthCredentials(
            client_id=client_id,
            client_secret=client_secret,
            access_token=self.access_token,
            refresh_token=self.refresh_token,
            client_endpoint=self.client_endpoint,
            domain=self.domain,
            token_url=token_url,
            expires_at=self.expires_at,
        )


def verify_install(
    request: AppInstall, *, client_id: str, client_secret: SecretStr, token_url: str
) -> VerifiedInstall:
    """Exchange the request's refresh token at the OAuth server and check the portal accepts the result.

    Raises:
        InstallRefused: the OAuth server refused the token, named another portal, or the portal
            refused the new access token.
        InstallUnverifiable: the OAuth server or the portal was unreachable or answered garbage.
    """
    body = _refresh(request, client_id, client_secret, token_url)
    member_id = str(body.get("member_id") or "")
    if member_id.lower() != request.member_id.lower():
        raise InstallRefused(
            f"The OAuth server issued these tokens for another portal than member {request.member_id}; "
            "nothing was stored."
        )
    endpoint = str(
        body.get("client_endpoint") or request.client_endpoint or f"https://{request.domain}/rest/"
    )
    expires = body.get("expires")
    host = _host(endpoint)  # the OAuth server's word on where the portal is, not the request's
    verified = VerifiedInstall(
        member_id=request.member_id,
        domain=host or request.domain,
        client_endpoint=endpoint,
        access_token=SecretStr(str(body["access_token"])),
        refresh_token=SecretStr(str(body.get("refresh_token") or request.refresh_token.get_secret_value())),
        expires_at=_unix_time(expires),
        scope=tuple(s for s in str(body.get("scope") or ",".join(request.scope)).split(",") if s),
    )
    return _portal_accepts(verified, client_id, client_secret, token_url)


def _host(url: str) -> str:
    try:
        return httpx.URL(url).netloc.decode("ascii", "replace") if "://" in url else ""
    except (httpx.InvalidURL, ValueError):
        return ""


def _unix_time(value: Any) -> float | None:
    """The token answer's ``expires`` (Unix seconds, a number or digits), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 10**12:
        return float(value)  # a NaN fails the comparison, a huge int never reaches float()
    text = str(value or "")
    return float(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None


def _refresh(request: AppInstall, client_id: str, client_secret: SecretStr, token_url: str) -> dict[str, Any]:
    params = {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "client_secret": client_secret.get_secret_value(),
        "refresh_token": request.refresh_token.get_secret_value(),
    }
    try:
        with httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False) as http:
            response = http.post(token_url, data=params)
    except httpx.HTTPError as exc:
        raise InstallUnverifiable(
            f"The OAuth server could not be reached to verify the install on {request.domain} "
            f"({type(exc).__name__}); nothing was stored, install the application again."
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("access_token"):
        return body
    if response.status_code >= 500 or not isinstance(body, dict):
        raise InstallUnverifiable(
            f"The OAuth server answered HTTP {response.status_code} when verifying the install on "
            f"{request.domain}; nothing was stored, install the application again."
        )
    code = str(body.get("error") or f"HTTP {response.status_code}")[:40]
    raise InstallRefused(
        f"The OAuth server did not accept the install's refresh token for this application ({code}); "
        f"nothing was stored for {request.domain}."
    )


def _portal_accepts(
    verified: VerifiedInstall, client_id: str, client_secret: SecretStr, token_url: str
) -> VerifiedInstall:
    """``profile`` with the new token: the portal the OAuth server named must accept it, and the
    token's user must be an administrator.

    OAuth calls run with the rights of the token's user; a sync needs an administrator's, who sees
    every user's tasks and calendars. A non-administrator's token (someone opening the application's
    page, or installing it with mere install rights) must not replace the administrator's.
    """
    refreshed: list[dict[str, Any]] = []
    oauth = verified.credentials(client_id, client_secret, token_url)
    try:
        with Bitrix24Client(
            oauth=oauth, timeout=TIMEOUT_SECONDS, on_token_refresh=refreshed.append
        ) as client:
            profile = client.call("profile")
    except errors.AuthError as exc:
        raise InstallRefused(
            f"The portal {verified.domain} did not accept the new access token ({exc.code}); "
            "nothing was stored."
        ) from None
    except Bitrix24Error as exc:
        raise InstallUnverifiable(
            f"The portal {verified.domain} could not be asked to confirm the install ({exc.code}); "
            "nothing was stored, install the application again."
        ) from None
    if not isinstance(profile, dict) or profile.get("ADMIN") is not True:
        raise NotAnAdministrator(
            f"The application on {verified.domain} was installed or opened by a user who is not a "
            "Bitrix24 administrator; nothing was stored: an administrator must install it, so the "
            "sync sees every user's tasks and calendars."
        )
    if refreshed:  # the portal said the brand-new token had expired: keep the pair it was refreshed to
        latest = refreshed[-1]
        return verified.model_copy(
            update={
                "access_token": SecretStr(str(latest["access_token"])),
                "refresh_token": SecretStr(str(latest["refresh_token"])),
            }
        )
    return verified


def bind_app_events(
    oauth: OAuthCredentials,
    bindings: Iterable[tuple[str, str]],
    on_token_refresh: Callable[[dict[str, Any]], None] | None = None,
) -> list[str]:
    """Bind each ``(event, handler URL)`` the application has not bound yet; the events that failed.

    One failure (e.g. a scope the application lacks) does not stop the others; each is logged.
    ``on_token_refresh`` persists a pair the client had to refresh to meanwhile (the stored one is
    then spent).
    """
    failed: list[str] = []
    with Bitrix24Client(oauth=oauth, timeout=TIMEOUT_SECONDS, on_token_refresh=on_token_refresh) as client:
        try:
            bound = client.call("event.get")
        except Bitrix24Error as exc:
            logger.warning(
                "Could not list the application's event handlers on %s (%s).", oauth.domain, exc.code
            )
            return [event for event, _ in bindings]
        existing = {
            (str(b.get("event", "")).upper(), str(b.get("handler", "")))
            for b in (bound if isinstance(bound, list) else [])
            if isinstance(b, dict)
        }
        for event, handler in bindings:
            if (event, handler) in existing:
                continue
            try:
                client.call("event.bind", {"event": event, "handler": handler}, idempotent=False)
            except Bitrix24Error as exc:
                logger.warning("Could not bind %s on %s (%s).", event, oauth.domain, exc.code)
                failed.append(event)
    return failed


def lifecycle_events(request: AppInstall) -> tuple[str, ...]:
    """ONAPPUNINSTALL always; ONAPPINSTALL too when the request had no application token to store."""
    return (UNINSTALL_EVENT,) if request.application_token else (UNINSTALL_EVENT, INSTALL_EVENT)
