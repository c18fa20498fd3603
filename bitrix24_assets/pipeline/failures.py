"""Any exception of a sync becomes one safe sentence, and a decision: retry or not, whose to fix.

Retry only what can succeed the next time: the portal or Core unreachable or overloaded, a read
that could not be proven complete. Never retry what fails the same way again: a revoked webhook, a
missing scope, Core refusing the data (SQLSTATE classes 22/23), a mapper bug, a full read that
would remove too much. Configuration errors that the account owner must fix (credentials, scopes,
portal gone) also put the account into status ``error`` with the sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

from bitrix24_assets.bitrix24.errors import Bitrix24Error
from bitrix24_assets.core import IntegrationAccount
from bitrix24_assets.core.errors import CoreError, MassRemovalError
from bitrix24_assets.core.secrets import redact_text

__all__ = [
    "AccountNotSyncable",
    "MapperBug",
    "MassRemovalConfirmation",
    "SyncFailed",
    "account_label",
    "classify",
    "sentence",
]


class AccountNotSyncable(Exception):
    """The partition's account exists but is not a Bitrix24 account that may be synced."""

    is_configuration_error = True


class MapperBug(Exception):
    """A mapper raised: a bug, not bad data (bad records become rejections); retrying cannot help."""

    def __init__(self, entity: str, error: Exception) -> None:
        super().__init__(
            f"mapping {entity} records raised {type(error).__name__}: {error}; that is a bug in the "
            f"mapper (malformed records are counted as rejections, not raised): fix "
            f"bitrix24_assets/sync/{entity}.py and run again"
        )
        self.hint = "fix the mapper"


class MassRemovalConfirmation(Exception):
    """A full read would remove too much: the operator confirms it or finds what is wrong."""

    hint = "confirm with allow_mass_removal"


@dataclass(frozen=True)
class Verdict:
    """What a failure means: retry it, and is it the account owner's to fix (status ``error``)."""

    retryable: bool
    owner_must_fix: bool
    configuration_error: bool


def classify(exc: BaseException) -> Verdict:
    """Retry transient failures only; unknown exceptions count as transient (a retry is harmless)."""
    if isinstance(exc, MassRemovalError | MassRemovalConfirmation | MapperBug):
        return Verdict(retryable=False, owner_must_fix=False, configuration_error=False)
    if isinstance(exc, CoreError):
        return Verdict(exc.retryable, owner_must_fix=False, configuration_error=exc.is_configuration_error)
    configuration = bool(getattr(exc, "is_configuration_error", False))
    if isinstance(exc, Bitrix24Error):
        return Verdict(not configuration, owner_must_fix=configuration, configuration_error=configuration)
    return Verdict(not configuration, owner_must_fix=configuration, configuration_error=configuration)


def account_label(account: IntegrationAccount | None, account_id: str | None = None) -> str:
    """``Bitrix24 account 'acme' (uuid)``: how every sentence names the account."""
    if account is not None:
        return f"Bitrix24 account '{account.name}' ({account.id})"
    return f"Bitrix24 account {account_id}" if account_id else "Bitrix24 account"


def sentence(
    exc: BaseException, account: IntegrationAccount | None, what: str, account_id: str | None = None
) -> str:
    """One sentence naming the account and, through the layer's own message, the fix."""
    who = account_label(account, account_id)
    explains_itself = isinstance(exc, Bitrix24Error | CoreError | AccountNotSyncable | MapperBug)
    if explains_itself or hasattr(exc, "hint") or getattr(exc, "is_configuration_error", False):
        detail = str(exc)
    else:
        detail = f"{what} failed unexpectedly ({type(exc).__name__}: {exc}); it will be retried"
    text = redact_text(f"{who}: {detail}".strip())
    return text if text.endswith(".") else text + "."


class SyncFailed(Exception):
    """A sync failed and the failure is recorded in Core; ``str()`` is the one safe sentence."""

    def __init__(self, message: str, verdict: Verdict, error_type: str) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = verdict.retryable
        self.configuration_error = verdict.configuration_error
        self.error_type = error_type
