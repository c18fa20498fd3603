"""The application side of a Bitrix24 OAuth application: accounts that install and uninstall themselves.

``POST /bitrix24/app/install`` (the application's install path / installation callback) and
``POST /bitrix24/app/events`` (where the application binds ``ONAPPUNINSTALL``) take every shape
``install_form`` reads. An install is stored only after ``install_verify`` proved it (the OAuth
server accepted its refresh token for this application's ``client_id``/``client_secret`` and named
the same portal, and the portal accepted the new token of an administrator); an uninstall only
when its application token equals the one stored at install (``hmac.compare_digest``). After
storing an install, the application binds ``ONAPPUNINSTALL`` to ``/bitrix24/app/events`` and the
sync events to the account's ``/bitrix24/events/<account id>``, so no outgoing webhook has to be
set up by hand.

An account is the portal's ``member_id`` (migration 0006's portal key): an install of a portal that
already has an account, in any company, updates that account (tokens, application token) instead
of adding one; a new portal gets an account in the company ``BITRIX24_APP_COMPANY`` or, if unset, a
company named after the portal's domain. The accounts sensor then adds its partition and runs the
first full sync. ``ONAPPUNINSTALL`` sets the account ``disabled`` (the sensor removes the partition,
so its syncs stop); its rows stay in Core, also when the administrator ticked "delete data"
(``data[CLEAN]=1`` is recorded in the account's settings): removing them is an operator's
``bitrix24-core accounts remove``. Installing again re-enables an account disabled by an uninstall,
never one an operator disabled.

| answer | when |
|---|---|
| 200 JSON (or the installer page's HTML) | stored, or an uninstall that was already applied |
| 400 | not a readable install/uninstall request |
| 401 | the OAuth server or portal refused the tokens, the application token is wrong or none is stored |
| 403 | genuine tokens of a user who is not a portal administrator (the sync needs an administrator's) |
| 404 | an uninstall for a portal with no account |
| 413 / 415 | body too large / not form data |
| 503 | the application is not configured, or the OAuth server, the portal or Core is unreachable |

Tokens, the client secret and the application token are never logged, answered or put in a status.
Finding a portal's account reads the Bitrix24 accounts once per install/uninstall (rare events).
"""

from __future__ import annotations

import html
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from bitrix24_assets.bitrix24.events import EventName, EventPayloadError, parse_form, verify_application_token
from bitrix24_assets.bitrix24.oauth import DEFAULT_TOKEN_URL
from bitrix24_assets.core import CoreError, CoreStore, IntegrationAccount

from .bodies import FORM_MEDIA_TYPE, Refusal, read_form_body
from .install_form import UNINSTALL_EVENT, AppInstall, AppUninstall, InstallPayloadError, parse_app_request
from .install_verify import (
    InstallRefused,
    InstallUnverifiable,
    NotAnAdministrator,
    VerifiedInstall,
    bind_app_events,
    lifecycle_events,
    verify_install,
)

__all__ = ["APP_EVENTS_PATH", "INSTALL_PATH", "AppSettings", "add_install_routes"]

logger = logging.getLogger("bitrix24_assets.webhooks.install")

INSTALL_PATH = "/bitrix24/app/install"
APP_EVENTS_PATH = "/bitrix24/app/events"
UNINSTALLED_AT = "app_uninstalled_at"
# Installs are rare; one at a time per process, so two deliveries of one new portal's install (the
# installer page and the ONAPPINSTALL bound for its token) cannot both create its company and account.
_STORING = threading.Lock()


class AppSettings(BaseSettings):
    """The Bitrix24 application, from ``BITRIX24_APP_*`` environment variables.

    ``client_id`` / ``client_secret``: the application's keys from its card in Bitrix24 (without
    them every install is answered 503). ``token_url``: the OAuth server. ``public_url``: the
    receiver's public base URL, for the handler bound to ``ONAPPUNINSTALL`` (default: the URL the
    install request reached). ``company``: the Core company for newly installed portals (default:
    one company per portal, named after its domain).
    """

    model_config = SettingsConfigDict(env_prefix="BITRIX24_APP_")

    client_id: str | None = None
    client_secret: SecretStr | None = None
    token_url: str = DEFAULT_TOKEN_URL
    public_url: str | None = None
    company: str | None = None
    max_body_bytes: int = Field(default=64 * 1024, gt=0)


def add_install_routes(app: FastAPI, settings: AppSettings | None = None) -> None:
    """Register the install/uninstall endpoints; Core and the token cache come from ``app.state``."""
    config = settings or AppSettings()

    async def handle(request: Request) -> Any:
        try:
            body = await _read_body(request, config.max_body_bytes)
            try:
                form = parse_form(body)
                parsed = parse_app_request(form, dict(request.query_params))
            except (EventPayloadError, InstallPayloadError) as exc:
                raise Refusal(400, str(exc)) from None
            except Exception as exc:  # a parser bug must not become a 500 (nor show the body)
                raise _bug("read", exc, 400) from None
            try:
                if isinstance(parsed, AppUninstall):
                    answer = await run_in_threadpool(_uninstall, request.app.state.store, parsed)
                else:
                    answer = await run_in_threadpool(
                        _install, request.app.state.store, parsed, config, _base(request)
                    )
            except Refusal:
                raise
            except Exception as exc:  # a bug, or a failure nothing above expected: say so, never a 500
                raise _bug("processed", exc, 503) from None
            await run_in_threadpool(_forget_cached, request, answer["account_id"])
        except Refusal as exc:
            logger.warning("Refusal a Bitrix24 application request: %s", exc.message)
            return JSONResponse({"ok": False, "error": exc.message}, status_code=exc.status)
        if isinstance(parsed, AppInstall) and parsed.variant == "placement":
            return HTMLResponse(_finish_page(str(answer["message"])))
        return JSONResponse({"ok": True, **answer})

    app.add_api_route(INSTALL_PATH, handle, methods=["POST"], include_in_schema=False)
    app.add_api_route(APP_EVENTS_PATH, handle, methods=["POST"], include_in_schema=False)


def _forget_cached(request: Request, account_id: str) -> None:
    """Events check the new application token at once, not after the token cache's 30 s."""
    try:
        request.app.state.accounts.refresh(account_id)
    except Exception as exc:  # Core hiccup: the cached entry simply expires later
        logger.warning("Could not reload account %s after an install (%s).", account_id, type(exc).__name__)


def _bug(stage: str, exc: Exception, status: int) -> Refusal:
    logger.error(
        "A Bitrix24 application request could not be %s: %s (a bug; the body is not logged).",
        stage,
        type(exc).__name__,
    )
    return Refusal(status, f"The request could not be {stage}; install the application again.")


async def _read_body(request: Request, limit: int) -> bytes:
    return await read_form_body(
        request,
        limit,
        wrong_type=f"Bitrix24 application requests must be sent as {FORM_MEDIA_TYPE}.",
        what="request",
    )


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# ---- install ---------------------------------------------------------------------------------------


def _install(store: CoreStore, request: AppInstall, config: AppSettings, base_url: str) -> dict[str, Any]:
    if not config.client_id or config.client_secret is None:
        raise Refusal(
            503,
            f"The install on {request.domain} was not stored: the receiver has no application keys; "
            "set BITRIX24_APP_CLIENT_ID and BITRIX24_APP_CLIENT_SECRET.",
        )
    try:
        verified = verify_install(
            request,
            client_id=config.client_id,
            client_secret=config.client_secret,
            token_url=config.token_url,
        )
    except NotAnAdministrator as exc:
        raise Refusal(403, str(exc)) from None
    except InstallRefused as exc:
        raise Refusal(401, str(exc)) from None
    except InstallUnverifiable as exc:
        raise Refusal(503, str(exc)) from None
    oauth = verified.credentials(config.client_id, config.client_secret, config.token_url)
    credentials = {
        **oauth.to_storage(),
        "domain": verified.domain,
        "member_id": verified.member_id,
    }
    if request.application_token is not None:
        credentials["application_token"] = request.application_token.get_secret_value()
    settings = {
        "domain": verified.domain,
        "member_id": verified.member_id,
        "oauth_app": {
            "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "scope": list(verified.scope),
        },
        UNINSTALLED_AT: None,
    }
    try:
        with _STORING:
            answer = _store_install(store, verified, credentials, settings, config)
    except CoreError as exc:
        logger.error("Could not store the install on %s: %s", verified.domain, exc)
        raise Refusal(
            503, f"Core is not reachable; the install on {verified.domain} was not stored, install it again."
        ) from None
    public = (config.public_url or base_url).rstrip("/")
    bindings = [(event, public + APP_EVENTS_PATH) for event in lifecycle_events(request)]
    bindings += [(event.value, f"{public}/bitrix24/events/{answer['account_id']}") for event in EventName]
    account_id = str(answer["account_id"])
    failed = bind_app_events(oauth, bindings, lambda tokens: store.update_credentials(account_id, tokens))
    answer["events_not_bound"] = failed
    if failed:
        logger.warning(
            "Account %s: Bitrix24 did not bind %s for the application on %s; %s",
            answer["account_id"],
            ", ".join(failed),
            verified.domain,
            "uninstalling it will not disable the account (run `bitrix24-core accounts disable "
            f"{answer['account_id']}` then)."
            if UNINSTALL_EVENT in failed
            else "those changes reach Core with the scheduled syncs.",
        )
    return answer


def _store_install(
    store: CoreStore,
    verified: VerifiedInstall,
    credentials: dict[str, Any],
    settings: dict[str, Any],
    config: AppSettings,
) -> dict[str, Any]:
    existing = find_portal_account(store, verified.member_id)
    if existing is None:
        company_id = store.create_company(config.company or verified.domain)
        account, created = store.upsert_account(company_id, verified.domain, credentials, settings)
    else:
        account = store.update_account(existing.id, credentials=credentials, settings=settings)
        created = False
    if account.status == "disabled" and (existing is None or _uninstalled(existing)):
        store.enable_account(account.id)
        message = (
            f"The application was installed again on {verified.domain}; account {account.id} syncs again."
        )
    elif account.status == "disabled":
        message = (
            f"The application was installed on {verified.domain}, but account {account.id} stays disabled "
            f"because an operator disabled it; run `bitrix24-core accounts enable {account.id}` to sync it."
        )
    else:
        verb = "created" if created else "updated"
        message = f"The application was installed on {verified.domain}; account {account.id} was {verb}."
    logger.info("%s (member %s)", message, verified.member_id)
    return {"account_id": account.id, "created": created, "message": message}


def _uninstalled(account: IntegrationAccount) -> bool:
    return bool(account.settings.get(UNINSTALLED_AT))


def find_portal_account(store: CoreStore, member_id: str) -> IntegrationAccount | None:
    """The oldest Bitrix24 account of this portal (``member_id`` in credentials or settings), any company."""
    wanted = member_id.strip().lower()
    for account in store.list_accounts(provider="bitrix24"):
        stored = account.credentials.get_secret_value().get("member_id") or account.settings.get("member_id")
        if stored is not None and str(stored).strip().lower() == wanted:
            return account
    return None


# ---- uninstall -------------------------------------------------------------------------------------


def _uninstall(store: CoreStore, request: AppUninstall) -> dict[str, Any]:
    try:
        account = find_portal_account(store, request.member_id)
    except CoreError as exc:
        logger.error("Could not look up the portal of an uninstall: %s", exc)
        raise Refusal(503, "Core is not reachable; the uninstall was not applied.") from None
    if account is None:
        raise Refusal(
            404, f"No integration account has portal member {request.member_id}; nothing was changed."
        )
    if not verify_application_token(account.application_token, request.application_token):
        state = "missing" if request.application_token is None else "wrong"
        if account.application_token is None:
            state = "not stored for this account, so it cannot be checked"
        raise Refusal(401, f"The application token of the uninstall for account {account.id} is {state}.")
    if account.status == "disabled" and _uninstalled(account):
        return {"account_id": account.id, "disabled": True, "message": "The uninstall was already applied."}
    when = datetime.now(UTC)
    portal = request.domain or account.portal
    message = (
        f"The Bitrix24 application was uninstalled from {portal} on {when:%Y-%m-%d}; the account's data is "
        "kept, and installing the application again resumes syncing."
    )
    try:
        store.update_account(
            account.id,
            settings={
                UNINSTALLED_AT: when.isoformat(timespec="seconds"),
                "app_uninstall_clean": request.clean,
            },
        )
        store.disable_account(account.id, message)
    except CoreError as exc:
        logger.error("Could not disable account %s after an uninstall: %s", account.id, exc)
        raise Refusal(503, "Core is not reachable; the uninstall was not applied.") from None
    logger.info("Account %s disabled: %s", account.id, message)
    return {"account_id": account.id, "disabled": True, "message": message}


def _finish_page(message: str) -> str:
    """The installer page's answer: Bitrix24 counts the app installed once it calls installFinish."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<script src='//api.bitrix24.com/api/v1/'></script></head><body>"
        f"<p>{html.escape(message)}</p>"
        "<script>BX24.init(function () { BX24.installFinish(); });</script></body></html>"
    )
