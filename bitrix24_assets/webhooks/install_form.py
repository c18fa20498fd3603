"""Reading Bitrix24's application life-cycle requests: install and uninstall.

Bitrix24 tells an application that it was installed in one of two documented shapes
(apidocs.bitrix24.com: settings/app-installation/local-apps/installation-callback,
api-reference/common/events/on-app-install, local-integrations/serverside-local-app-with-ui):

* the **installation callback / ``ONAPPINSTALL`` event**, POSTed by Bitrix24's servers:
  ``event=ONAPPINSTALL``, ``data[VERSION|ACTIVE|INSTALLED|LANGUAGE_ID]``, ``ts`` and
  ``auth[access_token|refresh_token|expires|expires_in|scope|domain|server_endpoint|client_endpoint|
  member_id|user_id|status|application_token]``;
* the **installer page** (an application with an interface), POSTed by the administrator's browser:
  ``AUTH_ID``, ``AUTH_EXPIRES``, ``REFRESH_ID``, ``SERVER_ENDPOINT``, ``APPLICATION_TOKEN`` (older
  portals omit it), ``APPLICATION_SCOPE``, ``member_id``, ``status``, ``PLACEMENT`` in the body and
  ``DOMAIN``, ``PROTOCOL`` (1 = https), ``LANG``, ``APP_SID`` in the query string.

``ONAPPUNINSTALL`` carries no OAuth tokens, only ``auth[domain|client_endpoint|member_id|
application_token]`` and ``data[CLEAN]`` (1 when the administrator asked to delete the app's data)
(api-reference/events/safe-event-handlers): its application token is the only proof of origin.

The parser only reads shapes; nothing here is trusted until ``install_verify`` checked the tokens
with the OAuth server. It never raises anything but :class:`InstallPayloadError` (one sentence,
never a field's value), and secrets are ``SecretStr`` so no ``repr`` shows them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

__all__ = ["AppInstall", "AppUninstall", "InstallPayloadError", "parse_app_request"]

_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,512}")
_MEMBER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?")
_DIGITS = re.compile(r"[0-9]{1,18}")
_ENDPOINT = re.compile(r"https?://[A-Za-z0-9.:-]{1,260}/rest/")
_SCOPE = re.compile(r"[A-Za-z0-9_.,-]{0,2000}")

INSTALL_EVENT = "ONAPPINSTALL"
UNINSTALL_EVENT = "ONAPPUNINSTALL"


class InstallPayloadError(ValueError):
    """The request is not a readable install/uninstall request; the message is one sentence."""


class AppInstall(BaseModel):
    """An install request as sent: unverified until the OAuth server accepted its refresh token."""

    model_config = ConfigDict(frozen=True)

    variant: Literal["event", "placement"]
    member_id: str
    domain: str
    client_endpoint: str | None = None
    access_token: SecretStr
    refresh_token: SecretStr
    application_token: SecretStr | None = None
    expires_in: int | None = None
    scope: tuple[str, ...] = ()


class AppUninstall(BaseModel):
    """An ``ONAPPUNINSTALL`` as sent: authentic only if its application token is the stored one."""

    model_config = ConfigDict(frozen=True)

    member_id: str
    domain: str | None = None
    application_token: SecretStr | None = None
    clean: bool = False


def parse_app_request(
    form: Mapping[str, Any], query: Mapping[str, str] | None = None
) -> AppInstall | AppUninstall:
    """Read an install (either shape) or uninstall request from its parsed form and query string."""
    query = query or {}
    event = form.get("event")
    if event is not None:
        name = event.strip().upper() if isinstance(event, str) else ""
        if name == INSTALL_EVENT:
            return _install_event(_auth(form))
        if name == UNINSTALL_EVENT:
            return _uninstall_event(form, _auth(form))
        raise InstallPayloadError(
            "Only ONAPPINSTALL and ONAPPUNINSTALL are accepted here; other events go to "
            "/bitrix24/events/<account id>."
        )
    if "AUTH_ID" in form or "REFRESH_ID" in form:
        return _placement(form, query)
    raise InstallPayloadError(
        "The request is neither a Bitrix24 install (ONAPPINSTALL or the installer page's AUTH_ID) "
        "nor an ONAPPUNINSTALL."
    )


def _auth(form: Mapping[str, Any]) -> Mapping[str, Any]:
    auth = form.get("auth")
    if not isinstance(auth, Mapping):
        raise InstallPayloadError("The request has no auth[...] fields.")
    return auth


def _install_event(auth: Mapping[str, Any]) -> AppInstall:
    expires_in = _optional(auth, "expires_in", _DIGITS, "auth[expires_in]")
    return AppInstall(
        variant="event",
        member_id=_required(auth, "member_id", _MEMBER, "auth[member_id]"),
        domain=_required(auth, "domain", _DOMAIN, "auth[domain]"),
        client_endpoint=_optional(auth, "client_endpoint", _ENDPOINT, "auth[client_endpoint]"),
        access_token=SecretStr(_required(auth, "access_token", _TOKEN, "auth[access_token]")),
        refresh_token=SecretStr(_required(auth, "refresh_token", _TOKEN, "auth[refresh_token]")),
        application_token=_secret(_optional(auth, "application_token", _TOKEN, "auth[application_token]")),
        expires_in=int(expires_in) if expires_in else None,
        scope=_scopes(_optional(auth, "scope", _SCOPE, "auth[scope]")),
    )


def _placement(form: Mapping[str, Any], query: Mapping[str, str]) -> AppInstall:
    domain_source = query if "DOMAIN" in query else form
    domain = _required(domain_source, "DOMAIN", _DOMAIN, "DOMAIN")
    protocol = _optional(query if "PROTOCOL" in query else form, "PROTOCOL", re.compile("[01]"), "PROTOCOL")
    expires_in = _optional(form, "AUTH_EXPIRES", _DIGITS, "AUTH_EXPIRES")
    scheme = "http" if protocol == "0" else "https"
    return AppInstall(
        variant="placement",
        member_id=_required(form, "member_id", _MEMBER, "member_id"),
        domain=domain,
        client_endpoint=f"{scheme}://{domain}/rest/",
        access_token=SecretStr(_required(form, "AUTH_ID", _TOKEN, "AUTH_ID")),
        refresh_token=SecretStr(_required(form, "REFRESH_ID", _TOKEN, "REFRESH_ID")),
        application_token=_secret(_optional(form, "APPLICATION_TOKEN", _TOKEN, "APPLICATION_TOKEN")),
        expires_in=int(expires_in) if expires_in else None,
        scope=_scopes(_optional(form, "APPLICATION_SCOPE", _SCOPE, "APPLICATION_SCOPE")),
    )


def _uninstall_event(form: Mapping[str, Any], auth: Mapping[str, Any]) -> AppUninstall:
    data = form.get("data")
    clean = (
        _optional(data, "CLEAN", re.compile("[01YN]?"), "data[CLEAN]") if isinstance(data, Mapping) else None
    )
    return AppUninstall(
        member_id=_required(auth, "member_id", _MEMBER, "auth[member_id]"),
        domain=_optional(auth, "domain", _DOMAIN, "auth[domain]"),
        application_token=_secret(_optional(auth, "application_token", _TOKEN, "auth[application_token]")),
        clean=clean in ("1", "Y"),
    )


def _required(source: Mapping[str, Any], key: str, pattern: re.Pattern[str], what: str) -> str:
    value = _optional(source, key, pattern, what)
    if not value:
        raise InstallPayloadError(f"The request has no {what}.")
    return value


def _optional(source: Mapping[str, Any], key: str, pattern: re.Pattern[str], what: str) -> str | None:
    """The field's text if present and well-formed; None if absent or empty (PHP sends '' for none)."""
    value = source.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InstallPayloadError(f"The request's {what} is not a single value.")
    text = value.strip()
    if not text:
        return None
    if pattern.fullmatch(text) is None:
        raise InstallPayloadError(f"The request's {what} is malformed.")
    return text


def _secret(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value else None


def _scopes(value: str | None) -> tuple[str, ...]:
    return tuple(s for s in (value or "").split(",") if s)
