"""Turn any exception of a sync into one safe sentence, a sync-log row and the account's health.

Configuration errors (revoked webhook, missing scope, portal gone, no credentials) are the
account owner's to fix: the account row gets status ``error`` with the sentence, and the step
fails with ``allow_retries=False``. Anything else is treated as transient and the step's
``RetryPolicy`` retries it with backoff and jitter. The original exception is never chained into
the Dagster failure (``from None``): its text could carry a URL with the webhook token.
"""

from __future__ import annotations

from typing import NoReturn

import dagster as dg

from bitrix24_assets.core import CoreStore, IntegrationAccount
from bitrix24_assets.core.secrets import redact_text

# Retries for transient Bitrix24/Core errors: 4 attempts over ~35 s, spread by jitter so that many
# portals failing together (a Core hiccup) do not come back in lockstep.
TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def is_configuration_error(exc: BaseException) -> bool:
    """True when retrying cannot help (client and Core errors say so themselves)."""
    return bool(getattr(exc, "is_configuration_error", False))


def sentence(exc: BaseException, account: IntegrationAccount | None, what: str) -> str:
    """One sentence naming the account and, through the layer's own message, the fix."""
    who = f"Bitrix24 account '{account.name}' ({account.id})" if account else "Bitrix24 account"
    if is_configuration_error(exc) or hasattr(exc, "hint"):
        detail = str(exc)
    else:
        detail = f"{what} failed unexpectedly ({type(exc).__name__}: {exc}); it will be retried"
    text = redact_text(f"{who}: {detail}".strip())
    return text if text.endswith(".") else text + "."


def fail_sync(
    context: dg.AssetExecutionContext,
    store: CoreStore | None,
    account: IntegrationAccount | None,
    sync_id: str | None,
    exc: BaseException,
    what: str,
    *,
    mark_account: bool = True,
    retry: bool | None = None,
) -> NoReturn:
    """Record the failure everywhere it must show, then raise the Dagster failure.

    ``retry`` overrides the default (retry unless a configuration error) for failures that are
    not the account owner's to fix but would fail the same way again (a bug in a mapper)."""
    message = sentence(exc, account, what)
    config_error = is_configuration_error(exc)
    context.log.error(message)
    if store is not None:
        try:
            if sync_id is not None:
                store.finish_sync(sync_id, status="failed", error=message)
            if config_error and mark_account and account is not None:
                store.set_account_status(account.id, "error", message)
        except Exception as log_exc:  # Core itself may be the thing that is down
            context.log.warning("Could not record the failure in Core: " + redact_text(str(log_exc)))
    raise dg.Failure(
        description=message,
        allow_retries=(not config_error) if retry is None else retry,
        metadata={"configuration_error": config_error, "error_type": type(exc).__name__},
    ) from None
