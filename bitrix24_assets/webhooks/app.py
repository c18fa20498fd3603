"""The FastAPI app that receives Bitrix24 outgoing events and stores them in the Core inbox.

``POST /bitrix24/events/{account_id}`` answers as soon as the event is stored: Bitrix24's queue
gives slow handlers lower priority and never retries (docs/bitrix24-rest-api.md §7.5), so nothing
here waits for a sync. The sensor in ``defs/inbox.py`` turns stored events into runs.

Checks, in order, each with one JSON sentence ``{"ok": false, "error": ...}``:

==========================================  ======
path is not a UUID / account unknown          404
Content-Length or streamed body too large     413
body not form data / too many fields          400
application token wrong or missing            401
domain / member_id differ from settings       401
unknown event, no object id, malformed field  400
Core refused the event's data                 400
Core unreachable                              503
==========================================  ======

The token is checked before the event is validated, so an unauthenticated caller learns nothing
about what we accept. Neither the token nor the ``auth`` block is ever logged or stored, and the
access log shows no query string (:mod:`.access_log`). No body makes the receiver answer 500: a
parser failure other than :class:`EventPayloadError` is logged as a bug and answered 400.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool

from bitrix24_assets.bitrix24.events import (
    EventPayloadError,
    OutgoingEvent,
    parse_event,
    parse_form,
    verify_application_token,
)
from bitrix24_assets.core import AccountNotFoundError, CoreDataError, CoreError, CoreStore, open_store

from .access_log import install_access_log_filter
from .accounts import AccountAuth, AccountAuthCache
from .bodies import FORM_MEDIA_TYPE, Refusal, read_form_body
from .install import AppSettings, add_install_routes
from .settings import ReceiverSettings

__all__ = ["create_app"]

logger = logging.getLogger("bitrix24_assets.webhooks")


def create_app(
    store: CoreStore | None = None,
    *,
    settings: ReceiverSettings | None = None,
    store_factory: Callable[[], CoreStore] = open_store,
    app_settings: AppSettings | None = None,
) -> FastAPI:
    """Build the receiver.

    Args:
        store: an open Core store to use (tests); the caller keeps ownership and closes it.
        settings: limits and cache times; read from ``BITRIX24_WEBHOOKS_*`` env vars when omitted.
        store_factory: how to open Core when ``store`` is omitted; called once per process at
            startup (in a worker thread: the embedded Postgres may take seconds to start).
        app_settings: the Bitrix24 application's keys for installs (``install.py``); read from
            ``BITRIX24_APP_*`` env vars when omitted.
    """
    config = settings or ReceiverSettings()
    install_access_log_filter()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        core = store if store is not None else await run_in_threadpool(store_factory)
        app.state.store = core
        app.state.accounts = AccountAuthCache(
            lambda account_id: _load_account(core, account_id), ttl=config.token_cache_seconds
        )
        try:
            yield
        finally:
            if owned:
                await run_in_threadpool(core.close)

    app = FastAPI(
        title="Bitrix24 outgoing-event receiver",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        return JSONResponse({"ok": False, "error": exc.message}, status_code=exc.status)

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        """200 when Core answers; a load balancer can take the receiver out otherwise."""
        try:
            await run_in_threadpool(_ping, request.app.state.store)
        except Exception as exc:  # any Core failure means "not healthy"; the reason is logged
            logger.warning("Health check failed: Core is not reachable (%s).", type(exc).__name__)
            return JSONResponse({"ok": False, "error": "Core is not reachable."}, status_code=503)
        return JSONResponse({"ok": True})

    @app.post("/bitrix24/events/{account_id}")
    async def receive(account_id: str, request: Request) -> JSONResponse:
        account = await _authorised_account(request, account_id, config)
        body = await _read_body(request, account_id, config.max_body_bytes)
        form = _parse_form(body, account_id)
        await _check_sender(form, account, request, config)
        event = _parse_event(form, account_id)
        stored = await _store(request.app.state.store, account_id, event)
        logger.info(
            "%s %s %s for account %s %s.",
            event.event.value,
            event.entity.value,
            event.object_id,
            account_id,
            "stored" if stored else "was a duplicate delivery, ignored",
        )
        return JSONResponse({"ok": True, "stored": stored})

    add_install_routes(app, app_settings)
    return app


async def _authorised_account(request: Request, account_id: str, config: ReceiverSettings) -> AccountAuth:
    try:
        canonical = str(uuid.UUID(account_id))
    except ValueError:
        raise Refusal(404, "No such integration account: the URL must end with the account's UUID.") from None
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > config.max_body_bytes):
        raise Refusal(413, f"The event body is larger than {config.max_body_bytes} bytes.")
    cache: AccountAuthCache = request.app.state.accounts
    try:
        account = await run_in_threadpool(cache.get, canonical)
    except Exception as exc:
        logger.error(
            "Could not look up account %s: Core is not reachable (%s).", canonical, type(exc).__name__
        )
        raise Refusal(503, "Core is not reachable; the event was not stored.") from None
    if account is None:
        raise Refusal(404, f"No integration account {canonical}; check the handler URL in the portal.")
    return account


async def _read_body(request: Request, account_id: str, limit: int) -> bytes:
    return await read_form_body(
        request,
        limit,
        wrong_type=f"Events for account {account_id} must be sent as {FORM_MEDIA_TYPE}.",
        what="event",
    )


def _parse_form(body: bytes, account_id: str) -> dict[str, Any]:
    try:
        return parse_form(body)
    except EventPayloadError as exc:
        logger.warning("Refused an event for account %s: %s", account_id, exc)
        raise Refusal(400, str(exc)) from None
    except Exception as exc:  # a parser bug must not become a 500 (nor show the body)
        raise _unreadable(account_id, exc) from None


def _unreadable(account_id: str, exc: Exception) -> Refusal:
    logger.error(
        "Refused an event for account %s: the parser failed with %s (a bug; the body is not logged).",
        account_id,
        type(exc).__name__,
    )
    return Refusal(400, f"The event for account {account_id} could not be read; it was not stored.")


async def _check_sender(
    form: dict[str, Any], account: AccountAuth, request: Request, config: ReceiverSettings
) -> None:
    nested = form.get("auth")
    auth: dict[Any, Any] = nested if isinstance(nested, dict) else {}
    token = auth.get("application_token")
    received = token if isinstance(token, str) else None
    if account.application_token is None:
        logger.warning(
            "Refused an event for account %s (%s): no application token is stored; put the "
            "outgoing webhook's token into credentials.application_token.",
            account.account_id,
            account.name,
        )
        raise Refusal(
            401,
            f"Account {account.account_id} accepts no events until its application token "
            "is stored in credentials.application_token.",
        )
    if not verify_application_token(account.application_token, received):
        cache: AccountAuthCache = request.app.state.accounts
        refreshed = await run_in_threadpool(_maybe_refreshed, cache, account, config.token_recheck_seconds)
        if refreshed is None or not verify_application_token(refreshed.application_token, received):
            logger.warning(
                "Refused an event for account %s: the application token is %s.",
                account.account_id,
                "missing" if not received else "wrong",
            )
            raise Refusal(
                401,
                f"The application token for account {account.account_id} is "
                f"{'missing' if not received else 'wrong'}; copy it from the portal's "
                "outgoing webhook settings.",
            )
    for field, expected in (("domain", account.domain), ("member_id", account.member_id)):
        if expected and auth.get(field) != expected:
            logger.warning(
                "Refused an event for account %s: auth[%s] does not match the account settings.",
                account.account_id,
                field,
            )
            raise Refusal(401, f"The event's auth[{field}] does not match account {account.account_id}.")


def _maybe_refreshed(
    cache: AccountAuthCache, account: AccountAuth, recheck_after: float
) -> AccountAuth | None:
    """After a mismatch, reload once if the cached token is a few seconds old (it may have been rotated)."""
    age = cache.age(account.account_id)
    if age is not None and age < recheck_after:
        return account
    try:
        return cache.refresh(account.account_id)
    except Exception:
        return account


def _parse_event(form: dict[str, Any], account_id: str) -> OutgoingEvent:
    try:
        return parse_event(form)
    except EventPayloadError as exc:
        logger.warning("Refused an event for account %s: %s", account_id, exc)
        raise Refusal(400, str(exc)) from None
    except Exception as exc:  # a parser bug must not become a 500 (nor show the body)
        raise _unreadable(account_id, exc) from None


async def _store(store: CoreStore, account_id: str, event: OutgoingEvent) -> bool:
    """One insert: the event is stored whole or not at all."""
    try:
        return await run_in_threadpool(
            store.put_event, account_id, event.event.value, event.inbox_payload(), event.dedupe_key
        )
    except CoreDataError as exc:  # the parser should have refused it; say so instead of "unreachable"
        logger.error("Core refused %s for account %s: %s", event.event.value, account_id, exc)
        raise Refusal(
            400, f"Core refused the data of this {event.event.value} event; it was not stored."
        ) from None
    except CoreError as exc:  # unreachable, or misconfigured (grants, migrations): its sentence says which
        logger.error("Could not store %s for account %s: %s", event.event.value, account_id, exc)
        raise Refusal(503, "Core is not reachable; the event was not stored.") from None
    except Exception as exc:
        logger.error(
            "Could not store %s for account %s: Core is not reachable (%s).",
            event.event.value,
            account_id,
            type(exc).__name__,
        )
        raise Refusal(503, "Core is not reachable; the event was not stored.") from None


HEALTH_PROBE_ID = "00000000-0000-0000-0000-000000000000"


def _ping(store: CoreStore) -> None:
    """One primary-key lookup of an id that never exists: "not found" proves Core answers."""
    try:
        store.get_account(HEALTH_PROBE_ID)
    except AccountNotFoundError:
        return


def _load_account(store: CoreStore, account_id: str) -> AccountAuth | None:
    try:
        account = store.get_account(account_id)
    except AccountNotFoundError:
        return None
    if account.provider != "bitrix24":
        return None
    token = account.application_token
    settings = account.settings or {}
    return AccountAuth(
        account_id=account.id,
        name=account.name,
        application_token=SecretStr(token) if token else None,
        domain=_setting(settings, "domain"),
        member_id=_setting(settings, "member_id"),
    )


def _setting(settings: dict[str, Any], key: str) -> str | None:
    value = settings.get(key)
    return str(value) if value else None
