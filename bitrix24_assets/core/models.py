"""Records the Core SDK takes and returns: accounts, merge counts and the mass-removal guard, sync
logs, inbox events, health figures."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, Secret, field_validator

from .secrets import redact_webhook_url

__all__ = [
    "Credentials",
    "InboxEvent",
    "IntegrationAccount",
    "MergeCounts",
    "RemovalGuard",
    "SyncLog",
    "UnresolvedPeople",
]

Credentials = Secret[dict[str, Any]]
"""Account credentials (webhook URL or OAuth tokens): repr, str and JSON dumps show ``**********``."""


def _uuid_text(value: Any) -> Any:
    return str(value) if isinstance(value, UUID) else value


class IntegrationAccount(BaseModel):
    """One connected portal (a row of ``core.integration_accounts``).

    ``credentials`` is a :class:`pydantic.Secret`: it never shows in ``repr()``, ``str()``, logs or
    ``model_dump(mode="json")``. Use :attr:`webhook_url` / :attr:`oauth` to hand the real values to
    the Bitrix24 client, and :attr:`portal` whenever the portal is displayed.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    company_id: str
    provider: str = "bitrix24"
    name: str = ""
    status: str = "active"
    status_message: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    credentials: Credentials = Field(default_factory=lambda: Secret({}))
    created_at: datetime | None = None
    updated_at: datetime | None = None

    _ids = field_validator("id", "company_id", mode="before")(_uuid_text)

    @property
    def webhook_url(self) -> str | None:
        """The real inbound-webhook URL (a secret): pass it to the client, never print it."""
        value = self.credentials.get_secret_value().get("webhook_url")
        return str(value) if value else None

    @property
    def oauth(self) -> dict[str, Any] | None:
        """OAuth fields (client_id, client_secret, access_token, refresh_token, ...) or None."""
        creds = self.credentials.get_secret_value()
        keys = ("access_token", "refresh_token", "client_id", "client_secret")
        return (
            {k: v for k, v in creds.items() if k != "webhook_url"} if any(k in creds for k in keys) else None
        )

    @property
    def application_token(self) -> str | None:
        """Token Bitrix24 puts in outgoing events, used to validate them (a secret)."""
        value = self.credentials.get_secret_value().get("application_token")
        return str(value) if value else None

    @property
    def portal(self) -> str:
        """Display form of the portal, safe for logs: ``http://host/rest/1/***/`` or the OAuth domain."""
        if self.webhook_url:
            return redact_webhook_url(self.webhook_url)
        creds = self.credentials.get_secret_value()
        return str(creds.get("domain") or creds.get("client_endpoint") or f"account {self.id}")


class MergeCounts(BaseModel):
    """What a merge did, and the account's rows in the table after it.

    ``inserted`` / ``updated`` / ``unchanged`` / ``removed`` are this merge's rows; ``written`` is
    what actually touched the database. ``rows_in_table`` is the account's rows in the Core table
    after the merge (removed ones included: employees are deactivated, tasks and events marked
    deleted, never deleted) and ``live_rows`` the active employees / not-deleted tasks or events
    among them; both None when the merge did not count them.
    """

    model_config = ConfigDict(frozen=True)

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    rows_in_table: int | None = None
    live_rows: int | None = None

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.removed

    def __add__(self, other: MergeCounts) -> MergeCounts:
        """Counts of two merges of one table, ``other`` after ``self``: the per-merge figures add up,
        the table's figures are the later ones (where the later merge counted them)."""
        return MergeCounts(
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged,
            removed=self.removed + other.removed,
            rows_in_table=other.rows_in_table if other.rows_in_table is not None else self.rows_in_table,
            live_rows=other.live_rows if other.live_rows is not None else self.live_rows,
        )


class RemovalGuard(BaseModel):
    """What a full merge may remove without confirmation (the mass-removal guard).

    A full merge that would deactivate or mark deleted more than
    ``max(max_share * live rows, min_rows)`` of the live rows its read covers, or that carries no
    rows at all while there are live rows, changes nothing and raises
    :class:`~bitrix24_assets.core.errors.MassRemovalError`, unless ``allow``: an empty or cut-short
    answer that looked complete must never wipe an account. ``min_rows`` lets small portals lose a
    few rows without confirmation. Decided in SQL, in the merge's transaction, by both backends.
    """

    model_config = ConfigDict(frozen=True)

    max_share: float = Field(default=0.2, ge=0, le=1)
    min_rows: int = Field(default=10, ge=0)
    allow: bool = False


class UnresolvedPeople(BaseModel):
    """Live tasks whose responsible person or creator is not a known employee of the account.

    ``unknown``: at least one of those people is unknown altogether (a problem: an employee sync is
    missing or late). ``non_employees``: all of them are people the caller named as known
    non-employees (e.g. extranet users), which is expected.
    """

    model_config = ConfigDict(frozen=True)

    unknown: int = 0
    non_employees: int = 0


class SyncLog(BaseModel):
    """One row of ``core.integration_sync_logs``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    integration_account_id: str
    company_id: str | None = None
    provider: str = "bitrix24"
    entity: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    records_fetched: int | None = None
    inserted: int | None = None
    updated: int | None = None
    unchanged: int | None = None
    removed: int | None = None
    cursor: dict[str, Any] | None = None
    error: str | None = None
    rejected: dict[str, int] | None = None
    run_id: str | None = None

    _ids = field_validator("id", "integration_account_id", "company_id", mode="before")(_uuid_text)


class InboxEvent(BaseModel):
    """One Bitrix24 outgoing event waiting in ``core.integration_events``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    integration_account_id: str
    event: str
    payload: dict[str, Any] = Field(default_factory=dict)
    dedupe_key: str = ""
    received_at: datetime
    processed_at: datetime | None = None

    _ids = field_validator("id", "integration_account_id", mode="before")(_uuid_text)
